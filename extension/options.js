import { api, ask } from './format.js';
import { LANGUAGES, LANGUAGE_KEY, loadLanguage, localize, t } from './i18n.js';

const $ = (id) => document.getElementById(id);

function fill(s) {
  $('relay_url').value = s.settings.relay_url ?? '';
  $('relay_url').placeholder = s.relay_url;
  $('daily_cap_mb').value = s.settings.daily_cap_mb;
  $('monthly_cap_gb').value = s.settings.monthly_cap_gb;
  $('cap_reset_day').value = s.settings.cap_reset_day;
  $('max_mbps_down').value = s.settings.max_mbps_down;
  $('max_mbps_up').value = s.settings.max_mbps_up;
  $('schedule').value = s.settings.schedule;
  $('allow_metered').checked = s.settings.allow_metered;
  $('idle_only').checked = s.settings.idle_only;
  $('max_concurrency').value = s.settings.max_concurrency;
  $('payout_address').value = s.settings.payout_address ?? '';
  $('blocked_domains').value = s.settings.blocked_domains.join('\n');
}

$('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const msg = $('message');
  try {
    const status = await ask({
      type: 'updateSettings',
      settings: {
        relay_url: $('relay_url').value.trim(),
        daily_cap_mb: Number($('daily_cap_mb').value),
        monthly_cap_gb: Number($('monthly_cap_gb').value),
        cap_reset_day: Number($('cap_reset_day').value),
        max_mbps_down: Number($('max_mbps_down').value),
        max_mbps_up: Number($('max_mbps_up').value),
        schedule: $('schedule').value,
        allow_metered: $('allow_metered').checked,
        idle_only: $('idle_only').checked,
        max_concurrency: Number($('max_concurrency').value),
        payout_address: $('payout_address').value.trim(),
        blocked_domains: $('blocked_domains').value,
      },
    });
    await api.storage.local.set({ [LANGUAGE_KEY]: $('language').value });
    await showWords();
    fill(status);
    msg.className = '';
    msg.textContent = t('opt_saved');
  } catch (err) {
    msg.className = 'error';
    msg.textContent = err.message;
  }
});

// The page's words in the owner's language. Only some browsers say whether
// a connection is metered: that hint follows the browser this page runs in.
async function showWords() {
  const lang = await loadLanguage();
  localize();
  const reports = 'connection' in navigator;
  $('metered_hint').textContent = reports ? t('opt_metered_hint_chrome') : t('opt_metered_hint_none');
  const choices = [['', t('opt_language_browser')], ...Object.entries(LANGUAGES)];
  $('language').replaceChildren(...choices.map(([value, name]) => Object.assign(document.createElement('option'), { value, textContent: name })));
  $('language').value = lang;
}

showWords().then(() => ask({ type: 'status' })).then(fill);

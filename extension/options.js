import { ask } from './format.js';

const $ = (id) => document.getElementById(id);

function fill(s) {
  $('relay_url').value = s.settings.relay_url ?? '';
  $('relay_url').placeholder = s.relay_url;
  $('daily_cap_mb').value = s.settings.daily_cap_mb;
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
        idle_only: $('idle_only').checked,
        max_concurrency: Number($('max_concurrency').value),
        payout_address: $('payout_address').value.trim(),
        blocked_domains: $('blocked_domains').value,
      },
    });
    fill(status);
    msg.className = '';
    msg.textContent = 'Saved.';
  } catch (err) {
    msg.className = 'error';
    msg.textContent = err.message;
  }
});

ask({ type: 'status' }).then(fill);

import { ask } from './format.js';

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
    fill(status);
    msg.className = '';
    msg.textContent = 'Saved.';
  } catch (err) {
    msg.className = 'error';
    msg.textContent = err.message;
  }
});

// Only some browsers say whether a connection is metered: the words follow
// the browser this page runs in.
$('metered_hint').textContent = 'connection' in navigator
  ? 'When this browser reports the connection as metered, sharing pauses unless this is ticked: Chrome reports Data Saver on every system, and mobile data only on ChromeOS.'
  : 'This browser does not report whether a connection is metered, so this setting has no effect here: use the monthly cap or the schedule to stay within your plan.';

ask({ type: 'status' }).then(fill);

// Plain-words formatting shared by the popup and the options page.
export function bytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

// Exact bytes, as the relay's ledger and dashboard count them.
export function exactBytes(n) {
  return `${Number(n).toLocaleString('en-US')} B`;
}

// Rewards are integers: base units of an 18-decimal token. The same rule as
// the relay: floor(bytes × reward_per_gib / 2^30), in BigInt, never floats.
const GIB = 1n << 30n;
export function reward(bytes, rewardPerGib) {
  return (BigInt(bytes) * BigInt(rewardPerGib)) / GIB;
}

// Base units shown as tokens, in full: every decimal that is not zero.
export function tokens(base) {
  const v = BigInt(base);
  const one = 10n ** 18n;
  const frac = (v % one).toString().padStart(18, '0').replace(/0+$/, '');
  return `${(v / one).toLocaleString('en-US')}${frac ? `.${frac}` : ''}`;
}

export const api = globalThis.browser ?? globalThis.chrome;

export async function ask(message) {
  const res = await api.runtime.sendMessage(message);
  if (!res?.ok) {
    throw Object.assign(new Error(res?.error ?? 'no answer from the background'), {
      code: res?.code ?? 'no_answer',
      retryable: res?.retryable ?? true,
    });
  }
  return res.status;
}

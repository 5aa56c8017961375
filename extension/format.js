// Plain-words formatting shared by the popup and the options page.
export function bytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function requests(n) {
  return `${n} request${n === 1 ? '' : 's'} served`;
}

export const api = globalThis.browser ?? globalThis.chrome;

export async function ask(message) {
  const res = await api.runtime.sendMessage(message);
  if (!res?.ok) throw new Error(res?.error ?? 'no answer from the background');
  return res.status;
}

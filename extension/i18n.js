// The pages' words, from _locales (the extension convention:
// i18n.getMessage, in the browser's language). The owner may pick another
// language in the options; it is kept in storage beside the node's state
// and read from the same _locales files, with the same placeholders.
import { api } from './format.js';

/** Storage key of the owner's language choice ('' or absent: the browser's). */
export const LANGUAGE_KEY = 'language';
/** The languages _locales holds, as the options page offers them. */
export const LANGUAGES = { en: 'English', de: 'Deutsch' };

let chosen = null;

/** Reads the owner's choice; call once before the first `t`. */
export async function loadLanguage() {
  const { [LANGUAGE_KEY]: lang } = await api.storage.local.get(LANGUAGE_KEY);
  chosen = null;
  if (lang && Object.hasOwn(LANGUAGES, lang)) {
    const res = await fetch(api.runtime.getURL(`_locales/${lang}/messages.json`));
    chosen = await res.json();
  }
  document.documentElement.lang = lang || api.i18n.getUILanguage();
  return lang || '';
}

// A message with its $NAME$ placeholders filled, as the browsers do it.
function fill(entry, subs) {
  let text = entry.message;
  for (const [name, p] of Object.entries(entry.placeholders ?? {})) {
    const value = p.content.replace(/\$(\d)/g, (_, i) => String(subs[Number(i) - 1] ?? ''));
    text = text.replace(new RegExp(`\\$${name}\\$`, 'gi'), () => value);
  }
  return text;
}

/** The message `key` with `subs` for its placeholders. */
export function t(key, ...subs) {
  const entry = chosen?.[key];
  if (entry) return fill(entry, subs);
  return api.i18n.getMessage(key, subs.map(String)) || key;
}

/** Puts the words into every element that names a message. */
export function localize(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
}

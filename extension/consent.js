import { ask } from './format.js';
import { loadLanguage, localize } from './i18n.js';

loadLanguage().then(() => localize());

document.getElementById('agree').addEventListener('click', async () => {
  await ask({ type: 'setSharing', on: true });
  document.getElementById('agree').disabled = true;
  document.getElementById('done').hidden = false;
});

import { ask } from './format.js';

document.getElementById('agree').addEventListener('click', async () => {
  await ask({ type: 'setSharing', on: true });
  document.getElementById('agree').disabled = true;
  document.getElementById('done').hidden = false;
});

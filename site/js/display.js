// The pickup display: no login, no personal data, only the numbers being made and ready
// (GET /shop/board), updated live (the anonymous `display` topic) or every 2 s.
import { api } from './api.js';
import { startLive } from './live.js';
import { config } from './config.js';
import { h, $, showError, renderIfChanged } from './ui.js';

function numbers(list) {
  return list.map((n) => h('li', { 'data-number': n }, n));
}

async function loadBoard() {
  try {
    const board = await api('GET', '/shop/board');
    renderIfChanged($('#making'), board.making, () => numbers(board.making));
    renderIfChanged($('#ready'), board.ready, () => numbers(board.ready));
    showError($('#error'), null);
  } catch (e) {
    showError($('#error'), e);
  }
}

startLive({
  topics: [{ topic: 'display' }],
  reread: loadBoard,
  onPush: () => loadBoard(),
  onMode: (mode) => { $('#live-mode').textContent = mode === 'live' ? 'Live' : `Updating every ${config.pollMs / 1000} s`; },
});

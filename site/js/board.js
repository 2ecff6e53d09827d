// The barista board: staff log in, the queue oldest first with its age, one tap per step,
// open/close the shop, restock and take items off sale. Updates live, or every 2 s.
import { api, Session } from './api.js';
import { startLive } from './live.js';
import { config } from './config.js';
import { h, $, won, showError, busy, formValues, renderIfChanged, STATUS_WORDS } from './ui.js';

const session = new Session('staff');
const NEXT = {
  COMPLETED: ['PREPARING', 'Start'],
  PREPARING: ['READY', 'Ready'],
  READY: ['PICKED_UP', 'Picked up'],
};
let queue = [];
let live = null;

async function render() {
  const signedIn = session.signedIn;
  if (signedIn) {
    try {
      const me = await api('GET', `/member/${encodeURIComponent(session.memberId)}`, { session });
      if (me.role !== 'STAFF' && me.role !== 'ADMIN') {
        session.clear();
        showError($('#login-error'), new Error('This account is not staff: ask an admin for the STAFF role.'));
        return;
      }
    } catch (e) {
      showError($('#login-error'), e);
      if (e.status === 401 || e.status === 403) session.clear();
      return;
    }
  }
  $('#signed-out').hidden = signedIn;
  $('#signed-in').hidden = !signedIn;
  $('#account-bar').hidden = !signedIn;
  if (signedIn) {
    loadShop();
    loadItems();
    if (!live) {
      live = startLive({
        topics: [{ topic: 'orders' }],
        session,
        reread: () => Promise.all([loadQueue(), loadShop()]),
        onPush: () => loadQueue(),
        onMode: (mode) => { $('#live-mode').textContent = mode === 'live' ? 'Live' : `Updating every ${config.pollMs / 1000} s`; },
        onError: (e) => showError($('#queue-error'), e),
      });
    }
  } else if (live) {
    live.stop();
    live = null;
  }
}

$('#login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  busy(form.querySelector('button'), $('#login-error'), async () => {
    const { email, password } = formValues(form);
    const pair = await api('POST', '/auth/login', { body: { email, password } });
    session.set(pair);
    form.reset();
    await render();
    $('#queue-title').focus();
  });
});

$('#logout').addEventListener('click', () => session.logOut());
// Logged out, or the refresh failed (the session ended elsewhere): back to the log-in form.
session.onChange((signedIn) => { if (!signedIn) render(); });

// ---- the queue ----
async function loadQueue() {
  const pages = await Promise.all(['COMPLETED', 'PREPARING', 'READY']
    .map((status) => api('GET', `/admin/orders?status=${status}&limit=100`, { session })));
  queue = pages.flatMap((p) => p.orders).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  showError($('#queue-error'), null);
  renderQueue();
}

function ageClass(minutes) {
  if (minutes >= 5) return 'age-late';
  if (minutes >= 2) return 'age-warn';
  return 'age-fresh';
}

function renderQueue() {
  const now = Date.now();
  const minutesOf = (order) => Math.max(0, Math.floor((now - Date.parse(order.createdAt)) / 60000));
  renderIfChanged($('#queue'), queue.map((o) => [o.orderId, o.status, minutesOf(o)]), () => (queue.length ? queue.map((order) => {
    const minutes = minutesOf(order);
    const [next, words] = NEXT[order.status];
    return h('li', { class: `row ${ageClass(minutes)}`, 'data-order': order.orderId, 'data-status': order.status },
      h('span', { class: 'pickup', 'aria-label': `Pickup number ${order.pickupNumber ?? 'none'}` }, order.pickupNumber ? `#${order.pickupNumber}` : '—'),
      h('span', { class: 'grow' },
        h('strong', {}, STATUS_WORDS[order.status] || order.status), h('br'),
        order.items.map((l) => `${l.name} × ${l.quantity}`).join(', '), h('br'),
        h('span', {}, `${minutes < 1 ? 'under a minute' : `${minutes} min`} waiting · ${won(order.totalPrice)}`)),
      h('button', {
        type: 'button',
        'data-next': next,
        'aria-label': `${words}: order ${order.pickupNumber ? `#${order.pickupNumber}` : order.orderId}`,
        onclick: (e) => busy(e.currentTarget, $('#queue-error'), async () => {
          await api('PUT', `/admin/orders/${encodeURIComponent(order.orderId)}/status`, { session, body: { status: next } });
          await loadQueue();
        }),
      }, words));
  }) : [h('li', { class: 'muted' }, 'No orders waiting.')]));
}
// The ages move on between updates.
setInterval(() => { if (queue.length) renderQueue(); }, 15000);

// ---- the shop ----
async function loadShop() {
  try {
    const shop = await api('GET', '/shop');
    $('#shop-state').textContent = `${shop.open ? 'Open' : 'Closed'}${shop.message ? ` · ${shop.message}` : ''} · ${shop.ordersInProgress} in progress · ${shop.madeToday} made today`;
  } catch (e) {
    showError($('#shop-error'), e);
  }
}

$('#shop-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const button = event.submitter || $('#open-shop');
  const open = button.value === 'true';
  const message = formValues(event.currentTarget).message.trim();
  busy(button, $('#shop-error'), async () => {
    await api('PUT', '/admin/shop', { session, body: { open, message: message || null } });
    await loadShop();
  });
});

// ---- items ----
async function loadItems() {
  try {
    const items = await api('GET', '/admin/items', { session });
    showError($('#items-error'), null);
    $('#items').replaceChildren(...items.map((item) => {
      const qty = h('input', { type: 'number', min: '1', step: '1', value: '10', 'aria-label': `Units of ${item.name} to add`, style: 'width:5.5rem' });
      return h('tr', { 'data-item': item.name },
        h('th', { scope: 'row' }, item.name, h('br'), h('span', { class: 'muted' }, won(item.price))),
        h('td', { class: 'stock', 'data-stock': item.stock }, String(item.stock)),
        h('td', {}, h('div', { class: 'row' }, qty, h('button', {
          type: 'button', class: 'secondary', 'aria-label': `Add stock of ${item.name}`,
          onclick: (e) => busy(e.currentTarget, $('#items-error'), async () => {
            await api('POST', `/admin/items/${encodeURIComponent(item.itemId)}/stock`, {
              session, body: { mode: 'ADD', quantity: Number(qty.value), reason: 'Restocked from the board', version: item.version },
            });
            await loadItems();
          }),
        }, 'Add'))),
        h('td', {}, h('button', {
          type: 'button', class: item.active ? 'danger' : 'secondary', 'aria-pressed': String(item.active),
          'aria-label': `${item.active ? 'Take off sale' : 'Put on sale'}: ${item.name}`,
          onclick: (e) => busy(e.currentTarget, $('#items-error'), async () => {
            await api('PATCH', `/admin/items/${encodeURIComponent(item.itemId)}`, { session, body: { version: item.version, active: !item.active } });
            await loadItems();
          }),
        }, item.active ? 'Deactivate' : 'Activate')));
    }));
  } catch (e) {
    showError($('#items-error'), e);
  }
}

window.addEventListener('unhandledrejection', (event) => showError($('#global-error'), event.reason));
loadShop();
render();

// The customer's screen: sign up / log in, the menu with stock, a cart, paying in parts (one
// Idempotency-Key per attempt), the live order card, my orders, cancel, withdraw / restore.
import { api, Session, newIdempotencyKey } from './api.js';
import { startLive } from './live.js';
import { config } from './config.js';
import { h, $, won, showError, busy, formValues, renderIfChanged, STATUS_WORDS } from './ui.js';

const session = new Session('customer');
const PAYMENT_TYPES = [
  ['CARD', 'Card'], ['POINT', 'Points'], ['KAKAO_PAY', 'Kakao Pay'], ['NAVER_PAY', 'Naver Pay'], ['BANK_TRANSFER', 'Bank transfer'],
];
const CANCELLABLE = new Set(['PENDING_PAYMENT', 'COMPLETED']);
const FINAL = new Set(['PICKED_UP', 'CANCELLED', 'EXPIRED']);

let menu = [];
const cart = new Map(); // itemId → quantity
let pending = null; // the order being paid
let attempt = null; // { key, body } of the payment attempt in progress
let current = null; // the order the card shows
let live = null;
let lastEmail = ''; // the profile's, to fill in the log-in form after a restore

// ---- session ----
function render() {
  const signedIn = session.signedIn;
  $('#signed-out').hidden = signedIn;
  $('#signed-in').hidden = !signedIn;
  $('#account-bar').hidden = !signedIn;
  if (signedIn) {
    loadAll();
    if (!live) {
      live = startLive({
        topics: [{ topic: 'orders' }],
        session,
        reread: rereadOrders,
        onPush: (m) => { if (current && m.orderId === current.orderId) refreshCard(); loadOrders(); },
        onMode: (mode) => { $('#live-mode').textContent = mode === 'live' ? 'Updates live.' : `Updates every ${config.pollMs / 1000} s.`; },
      });
    }
  } else if (live) {
    live.stop();
    live = null;
  }
}
session.onChange(() => render());

$('#login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  busy(form.querySelector('button'), $('#login-error'), async () => {
    const { email, password } = formValues(form);
    session.set(await api('POST', '/auth/login', { body: { email, password } }));
    form.reset();
    $('#login-notice').hidden = true;
    $('#menu-title').focus();
  });
});

$('#signup-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  busy(form.querySelector('button'), $('#signup-error'), async () => {
    session.set(await api('POST', '/member', { body: formValues(form) }));
    form.reset();
    $('#menu-title').focus();
  });
});

$('#logout').addEventListener('click', () => {
  current = null;
  pending = null;
  attempt = null;
  cart.clear();
  $('#order-card').hidden = true;
  $('#pay-card').hidden = true;
  session.logOut();
});

// ---- reading ----
async function loadAll() {
  await Promise.all([loadShop(), loadMenu(), loadOrders(), loadProfile()]);
}

async function loadShop() {
  try {
    const shop = await api('GET', '/shop');
    $('#shop-state').textContent = shop.open
      ? `Open · about ${shop.estimatedWaitMinutes} min wait`
      : `Closed${shop.message ? ` · ${shop.message}` : ''}`;
  } catch (e) {
    $('#shop-state').textContent = `Shop status unavailable: ${e.message}`;
  }
}

async function loadMenu() {
  try {
    const result = await api('GET', '/items');
    menu = Array.isArray(result) ? result : result.items;
    showError($('#menu-error'), null);
  } catch (e) {
    showError($('#menu-error'), e);
  }
  renderMenu();
  renderCart();
}

function renderMenu() {
  $('#menu').replaceChildren(...menu.map((item) => {
    const inCart = cart.get(item.itemId) || 0;
    const soldOut = item.stock <= inCart;
    return h('li', { class: 'row', 'data-item': item.name },
      h('span', { class: 'grow' }, h('strong', {}, item.name), ' ', won(item.price)),
      h('span', { class: 'muted' }, item.stock > 0 ? `${item.stock} left` : 'Sold out'),
      h('button', {
        type: 'button',
        disabled: soldOut,
        'aria-label': `Add ${item.name} to the cart`,
        onclick: () => { cart.set(item.itemId, inCart + 1); renderMenu(); renderCart(); },
      }, 'Add'));
  }));
}

function cartLines() {
  return [...cart.entries()].map(([itemId, quantity]) => ({ item: menu.find((i) => i.itemId === itemId), itemId, quantity }))
    .filter((line) => line.item);
}

function renderCart() {
  const lines = cartLines();
  $('#cart').replaceChildren(...(lines.length ? lines.map(({ item, itemId, quantity }) => h('li', { class: 'row' },
    h('span', { class: 'grow' }, `${item.name} × ${quantity}`),
    h('span', {}, won(item.price * quantity)),
    h('button', {
      type: 'button', class: 'secondary', 'aria-label': `Remove one ${item.name}`,
      onclick: () => { if (quantity > 1) cart.set(itemId, quantity - 1); else cart.delete(itemId); renderMenu(); renderCart(); },
    }, '−'))) : [h('li', { class: 'muted' }, 'Nothing yet: add something from the menu.')]));
  $('#cart-total').textContent = won(lines.reduce((sum, l) => sum + l.item.price * l.quantity, 0));
  $('#place-order').disabled = lines.length === 0;
}

$('#place-order').addEventListener('click', (event) => {
  busy(event.currentTarget, $('#cart-error'), async () => {
    const items = cartLines().map(({ itemId, quantity }) => ({ itemId, quantity }));
    const order = await api('POST', '/order', { session, body: { items } });
    cart.clear();
    renderCart();
    startPaying(order);
    loadOrders();
  });
});

// ---- paying ----
function startPaying(order) {
  pending = order;
  attempt = null;
  $('#pay-card').hidden = false;
  $('#pay-total').textContent = won(order.totalPrice);
  $('#parts').replaceChildren();
  addPart(order.totalPrice);
  showError($('#pay-error'), null);
  showCard(order);
  $('#pay-card').scrollIntoView({ block: 'nearest' });
}

function addPart(amount) {
  const n = $('#parts').children.length + 1;
  if (n > 5) return;
  const row = h('div', { class: 'row part' },
    h('label', { class: 'grow' }, `Part ${n} type`,
      h('select', { name: 'type' }, ...PAYMENT_TYPES.map(([value, words]) => h('option', { value }, words)))),
    h('label', { class: 'grow' }, `Part ${n} amount (₩)`,
      h('input', { name: 'amount', type: 'number', min: '1', step: '1', inputmode: 'numeric', value: String(amount), required: true })),
  );
  row.addEventListener('input', updateLeft);
  $('#parts').append(row);
  updateLeft();
}

function parts() {
  return [...$('#parts').querySelectorAll('.part')].map((row) => ({
    type: row.querySelector('select').value,
    amount: Number(row.querySelector('input').value),
  }));
}

function updateLeft() {
  if (!pending) return;
  const left = pending.totalPrice - parts().reduce((sum, p) => sum + (Number.isFinite(p.amount) ? p.amount : 0), 0);
  $('#pay-left').textContent = won(left);
}

$('#add-part').addEventListener('click', () => {
  const assigned = parts().reduce((sum, p) => sum + p.amount, 0);
  addPart(Math.max(pending.totalPrice - assigned, 1));
});

$('#pay-form').addEventListener('submit', (event) => {
  event.preventDefault();
  busy($('#pay'), $('#pay-error'), async () => {
    const body = { orderId: pending.orderId, payments: parts() };
    const text = JSON.stringify(body);
    // One key per attempt: a retry of the same attempt (same body after a lost answer or a busy
    // lock) sends the same key, so the server answers the first result and never charges twice.
    if (!attempt || attempt.body !== text) attempt = { key: newIdempotencyKey(), body: text };
    try {
      await api('POST', '/payment', { session, body, headers: { 'Idempotency-Key': attempt.key } });
    } catch (e) {
      // A definite answer ends the attempt; the next try is a new one with a new key.
      if (!e.retryable) attempt = null;
      throw e;
    }
    attempt = null;
    pending = null;
    $('#pay-card').hidden = true;
    await refreshCard();
    loadOrders();
    loadMenu();
  });
});

// ---- the order card ----
function showCard(order) {
  if (!current || current.orderId !== order.orderId) live && live.reset();
  current = order;
  $('#order-card').hidden = false;
  const canCancel = CANCELLABLE.has(order.status);
  const { orderId, status, pickupNumber, wait, totalPrice } = order;
  renderIfChanged($('#order-body'), [orderId, status, pickupNumber, wait, totalPrice, (order.items || []).length], () => [
    h('p', { class: 'status', id: 'order-status', 'data-status': order.status }, STATUS_WORDS[order.status] || order.status),
    order.pickupNumber ? h('p', {}, 'Pickup number ', h('span', { class: 'pickup', id: 'pickup-number' }, order.pickupNumber)) : null,
    order.wait ? h('p', { class: 'muted' }, `About ${order.wait.estimatedWaitMinutes} min (${order.wait.ordersAhead} ahead)`) : null,
    h('ul', {}, ...(order.items || []).map((l) => h('li', {}, `${l.name} × ${l.quantity}`))),
    h('p', {}, 'Total ', h('strong', {}, won(order.totalPrice))),
    canCancel ? h('button', { type: 'button', class: 'danger', onclick: (e) => cancel(e.currentTarget, order) },
      order.status === 'COMPLETED' ? 'Cancel and refund' : 'Cancel order') : null,
    h('p', { class: 'error', role: 'alert', id: 'card-error', hidden: true }),
  ]);
}

async function refreshCard() {
  if (!current) return;
  showCard(await api('GET', `/order/${encodeURIComponent(current.orderId)}`, { session }));
}

async function rereadOrders() {
  if (!session.signedIn) return;
  if (current && !FINAL.has(current.status)) await refreshCard();
  await loadOrders();
}

async function cancel(button, order) {
  await busy(button, document.getElementById('card-error') || $('#orders-error'), async () => {
    await api('DELETE', `/order/${encodeURIComponent(order.orderId)}/cancel`, { session });
    if (pending && pending.orderId === order.orderId) {
      pending = null;
      $('#pay-card').hidden = true;
    }
    if (current && current.orderId === order.orderId) await refreshCard();
    await Promise.all([loadOrders(), loadMenu()]);
  });
}

// ---- my orders ----
async function loadOrders() {
  try {
    const page = await api('GET', '/orders?limit=20', { session });
    showError($('#orders-error'), null);
    const summary = page.orders.map((o) => [o.orderId, o.status, o.pickupNumber]);
    renderIfChanged($('#orders'), summary, () => (page.orders.length ? page.orders.map((o) => h('li', {},
      h('div', { class: 'row' },
        h('span', { class: 'grow' }, h('strong', {}, STATUS_WORDS[o.status] || o.status),
          o.pickupNumber ? ` · #${o.pickupNumber}` : '', ` · ${won(o.totalPrice)}`),
        h('span', { class: 'muted' }, new Date(o.createdAt).toLocaleString())),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Show this order (${won(o.totalPrice)})`, onclick: () => { showCard(o); refreshCard().catch((e) => showError($('#orders-error'), e)); } }, 'Show'),
        o.status === 'PENDING_PAYMENT' ? h('button', { type: 'button', 'aria-label': `Pay this order (${won(o.totalPrice)})`, onclick: () => startPaying(o) }, 'Pay') : null,
        CANCELLABLE.has(o.status) ? h('button', { type: 'button', class: 'danger', 'aria-label': `Cancel this order (${won(o.totalPrice)})`, onclick: (e) => cancel(e.currentTarget, o) }, 'Cancel') : null)))
      : [h('li', { class: 'muted' }, 'No orders yet.')]));
  } catch (e) {
    showError($('#orders-error'), e);
  }
}

// ---- account ----
async function loadProfile() {
  try {
    const me = await api('GET', `/member/${encodeURIComponent(session.memberId)}`, { session });
    lastEmail = me.email;
    $('#who').textContent = me.name;
    const withdrawn = me.status === 'WITHDRAWN';
    $('#account-state').textContent = withdrawn
      ? `Withdrawn on ${new Date(me.withdrawnAt).toLocaleDateString()}: restore within 30 days to order again.`
      : `${me.email} · member in service`;
    $('#withdraw').hidden = withdrawn;
    $('#restore').hidden = !withdrawn;
    showError($('#account-error'), null);
  } catch (e) {
    showError($('#account-error'), e);
  }
}

$('#withdraw').addEventListener('click', (event) => {
  if (!window.confirm('Withdraw your membership? You can restore it within 30 days.')) return;
  busy(event.currentTarget, $('#account-error'), async () => {
    await api('DELETE', `/member/${encodeURIComponent(session.memberId)}/withdraw`, { session });
    await loadProfile();
  });
});

$('#restore').addEventListener('click', (event) => {
  busy(event.currentTarget, $('#account-error'), async () => {
    await api('POST', `/member/${encodeURIComponent(session.memberId)}/restore`, { session });
    // The withdrawal ended every session from before it, for good (docs/auth.md, "Sessions"):
    // the member logs in again to go on.
    session.clear();
    const notice = $('#login-notice');
    notice.textContent = 'Your membership is restored. Log in again to order.';
    notice.hidden = false;
    const email = $('#login-form').querySelector('input[name="email"]');
    email.value = lastEmail;
    $('#login-form').querySelector('input[name="password"]').focus();
  });
});

window.addEventListener('unhandledrejection', (event) => {
  showError($('#global-error'), event.reason);
});

loadShop();
render();

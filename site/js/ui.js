// Small DOM helpers: elements are built from text, never from HTML strings, so nothing the API
// answers is ever parsed as markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else el.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector) => document.querySelector(selector);

const shown = new WeakMap();
// Replaces el's children with build()'s only when `what` (any JSON value) differs from what el
// shows: a poll that finds nothing new leaves the page alone, so a button being tapped is not
// swapped under the finger and a screen reader does not hear the same list again.
export function renderIfChanged(el, what, build) {
  const key = JSON.stringify(what);
  if (shown.get(el) === key) return;
  shown.set(el, key);
  el.replaceChildren(...build().filter(Boolean));
}

export function won(amount) {
  return `₩${Number(amount).toLocaleString('en-US')}`;
}

// Shows `error` (an ApiError, or anything) in the element, in words.
export function showError(el, error) {
  el.textContent = error ? (error.message || String(error)) : '';
  el.hidden = !error;
}

export function showNotice(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

// Runs `action` with `button` disabled (a double tap does nothing), showing a failure in
// `errorEl`. Answers what the action answered, or undefined after a failure.
export async function busy(button, errorEl, action) {
  if (button.disabled) return undefined;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (errorEl) showError(errorEl, null);
  try {
    return await action();
  } catch (e) {
    if (errorEl) showError(errorEl, e);
    else throw e;
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

export const STATUS_WORDS = {
  PENDING_PAYMENT: 'Waiting for payment',
  COMPLETED: 'Paid, in the queue',
  PREPARING: 'Being made',
  READY: 'Ready for pickup',
  PICKED_UP: 'Picked up',
  CANCELLED: 'Cancelled',
  CANCELED: 'Cancelled',
  EXPIRED: 'Expired (not paid in time)',
};

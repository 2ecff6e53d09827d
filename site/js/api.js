// The API client of every screen: JSON in and out, the contract's envelope, a bearer token from
// the screen's session with a silent refresh (POST /auth/refresh) on 401, and every failure as
// an ApiError whose message is the contract's detailMessage, in words.
import { config } from './config.js';

export class ApiError extends Error {
  constructor(status, code, message, retryable) {
    super(message);
    this.status = status;
    this.code = code;
    // The request may or may not have been done (network failure, 5xx, lock busy, the key's
    // first request still running): retry the same attempt.
    this.retryable = retryable;
  }
}

const RETRYABLE_CODES = new Set(['409PA001', '409PA002', '503CO000', '500CO000', '408CO000']);

// One signed-in member per screen kind ('customer', 'staff'), kept in localStorage so a reload
// keeps the session (tokens are only ever put in the Authorization header and the refresh body).
export class Session {
  constructor(kind) {
    this.key = `cafe.session.${kind}`;
    this.listeners = [];
    try {
      this.data = JSON.parse(localStorage.getItem(this.key) || 'null');
    } catch {
      this.data = null;
    }
    this.refreshing = null;
  }
  get signedIn() { return !!(this.data && this.data.accessToken); }
  get memberId() { return this.data ? this.data.memberId : null; }
  get accessToken() { return this.data ? this.data.accessToken : null; }
  set(pair) {
    this.data = { memberId: pair.memberId, accessToken: pair.accessToken, refreshToken: pair.refreshToken };
    localStorage.setItem(this.key, JSON.stringify(this.data));
    this.listeners.forEach((f) => f(true));
  }
  clear() {
    this.data = null;
    localStorage.removeItem(this.key);
    this.listeners.forEach((f) => f(false));
  }
  // Log out: the screen forgets the session at once, and POST /auth/logout revokes its refresh
  // token's family on the server (best effort: the screen does not wait for the answer).
  logOut() {
    const token = this.data && this.data.refreshToken;
    this.clear();
    if (token) send('POST', '/auth/logout', { body: { refreshToken: token } }).catch(() => {});
  }
  onChange(f) { this.listeners.push(f); }
  // One refresh at a time: concurrent 401s wait for the same new pair (refresh tokens are
  // single use, so two refreshes with one token would end the session).
  refresh() {
    if (!this.refreshing) {
      const token = this.data && this.data.refreshToken;
      this.refreshing = (async () => {
        if (!token) return false;
        try {
          const pair = await send('POST', '/auth/refresh', { body: { refreshToken: token } });
          this.set(pair);
          return true;
        } catch (e) {
          if (e.status === 401) this.clear();
          return false;
        }
      })().finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }
}

async function send(method, path, { body, headers = {}, token } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(config.apiBase + path, init);
  } catch {
    throw new ApiError(0, 'NETWORK', 'The cafe cannot be reached. Check your connection and try again.', true);
  }
  let json = null;
  try {
    json = await response.json();
  } catch {
    // Not JSON (a proxy's error page): described below by its status.
  }
  if (response.ok && json && json.status === 'success') return json.result;
  // A success outside the envelope (the live ticket's protocol writes its body bare).
  if (response.ok && json && json.status !== 'fail') return json;
  const error = json && json.error;
  const code = (error && error.code) || `${response.status}`;
  const message = (error && (error.detailMessage || error.message))
    || `The cafe answered ${response.status} ${response.statusText || ''}`.trim() + '.';
  throw new ApiError(response.status, code, message, response.status >= 500 || RETRYABLE_CODES.has(code));
}

// A request; with `session`, authenticated, refreshing the pair once on 401 and retrying.
export async function api(method, path, { session, ...options } = {}) {
  if (!session) return send(method, path, options);
  try {
    return await send(method, path, { ...options, token: session.accessToken });
  } catch (e) {
    if (e.status !== 401 || !(await session.refresh())) throw e;
    return send(method, path, { ...options, token: session.accessToken });
  }
}

// A fresh Idempotency-Key for one payment attempt.
export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

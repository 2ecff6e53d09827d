// The live channel (docs/site.md, "Live updates"): POST /live/ticket, a WebSocket to /live,
// subscribe, a ping every 5 minutes, stale versions dropped, state re-read after each
// (re)connect; whenever the channel is unavailable (no ticket, a refused or closed socket) the
// screen re-reads its state every 2 s instead, and tries the channel again later.
import { api } from './api.js';
import { config, liveUrl } from './config.js';

const RETRY_MIN_MS = 5000;
const RETRY_MAX_MS = 60000;
// A 404 on the ticket: this deployment has no live channel; look again much later.
const ABSENT_RETRY_MS = 5 * 60 * 1000;
// The lifecycle's last places (PICKED_UP 4, CANCELED/EXPIRED 5).
const FINAL_VERSION = 4;

// options: topics (subscribe messages without `action`), session (null: anonymous),
// reread() (async, re-reads the screen's state), onPush(message) (an order/display message
// newer than the last one applied), onMode(mode) ('live' | 'polling'), onError(error).
export function startLive({ topics, session = null, reread, onPush = () => {}, onMode = () => {}, onError = () => {} }) {
  const versions = new Map();
  let socket = null;
  let pingTimer = null;
  let pollTimer = null;
  let retryTimer = null;
  let retryMs = RETRY_MIN_MS;
  let stopped = false;

  const safeReread = async () => {
    try {
      await reread();
    } catch (e) {
      onError(e);
    }
  };

  function startPolling() {
    if (pollTimer || stopped) return;
    onMode('polling');
    pollTimer = setInterval(safeReread, config.pollMs);
  }
  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }
  function retryLater(ms) {
    clearTimeout(retryTimer);
    if (!stopped) retryTimer = setTimeout(connect, ms);
  }

  async function connect() {
    if (stopped) return;
    let url = liveUrl();
    if (session) {
      if (!session.signedIn) {
        startPolling();
        return retryLater(RETRY_MAX_MS);
      }
      let ticket;
      try {
        ticket = await api('POST', '/live/ticket', { session });
      } catch (e) {
        startPolling();
        return retryLater(e.status === 404 ? ABSENT_RETRY_MS : backoff());
      }
      url = `${ticket.url || url}${(ticket.url || url).includes('?') ? '&' : '?'}ticket=${encodeURIComponent(ticket.ticket)}`;
    }
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      startPolling();
      return retryLater(backoff());
    }
    socket = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      retryMs = RETRY_MIN_MS;
      topics.forEach((topic) => ws.send(JSON.stringify({ action: 'subscribe', ...topic })));
      pingTimer = setInterval(() => ws.send(JSON.stringify({ action: 'ping' })), config.pingMs);
      stopPolling();
      onMode('live');
      // What changed while the channel was not there.
      safeReread();
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'order' || message.type === 'display') {
        const key = message.type === 'order' ? `o:${message.orderId}` : `d:${message.pickupNumber}`;
        const last = versions.get(key);
        if (last !== undefined && !(message.version > last)) return;
        versions.set(key, message.version);
        // Pickup numbers start again each business day: once a number is done with (picked up,
        // cancelled, expired) its next message is a new day's order, not a stale one.
        if (message.type === 'display' && message.version >= FINAL_VERSION) versions.delete(key);
        onPush(message);
      }
    };
    ws.onclose = () => {
      clearInterval(pingTimer);
      pingTimer = null;
      if (socket === ws) socket = null;
      if (stopped) return;
      startPolling();
      // A socket refused at once (no channel here) waits longer than one that dropped.
      retryLater(opened ? RETRY_MIN_MS : backoff());
    };
  }

  function backoff() {
    const ms = retryMs;
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    return ms;
  }

  safeReread();
  connect();
  return {
    stop() {
      stopped = true;
      stopPolling();
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      if (socket) socket.close();
    },
    // Forget what was applied (another order shown).
    reset() { versions.clear(); },
  };
}

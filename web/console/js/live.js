// The WebSocket API of live chat (docs/websocket.md): the client sends
// {"action", "requestId", ...fields}; the server sends {"type", "requestId"?, "data"}. One connection per console.
//
// Resilience: a dropped connection is reopened with exponential backoff and jitter; a `ping` every 5 minutes
// keeps it inside API Gateway's 10-minute idle timeout; it is replaced before the 2-hour connection limit.
// After each (re)connection the console gets an "open" event and syncs its chats (nothing missed or doubled).

const PING_EVERY_MS = 5 * 60 * 1000;
const RENEW_AFTER_MS = 110 * 60 * 1000; // API Gateway closes a connection at 2 hours
const ANSWER_TIMEOUT_MS = 15000;

export class Live extends EventTarget {
  /** url: the WebSocket API (ws://127.0.0.1:3001); token(): the staff JWT, sent as ?token= on $connect. */
  constructor(url, token) {
    super();
    this.url = url.replace(/\/$/, "");
    this.token = token;
    this.ws = null;
    this.pending = new Map();
    this.counter = 0;
    this.attempt = 0;
    this.stopped = false;
    this.timers = [];
    this.state = "offline";
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.ws) this.ws.close(1000, "signed out");
  }

  /** Close the connection as a network drop would (the console reconnects). */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped");
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  clearTimers() {
    for (const timer of this.timers) clearTimeout(timer), clearInterval(timer);
    this.timers = [];
  }

  open() {
    this.clearTimers();
    this.setState("connecting");
    const ws = new WebSocket(`${this.url}/?token=${encodeURIComponent(this.token())}`);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.setState("online");
      this.timers.push(setInterval(() => this.send("ping"), PING_EVERY_MS));
      this.timers.push(setTimeout(() => this.renew(), RENEW_AFTER_MS));
      this.dispatchEvent(new CustomEvent("open"));
    });
    ws.addEventListener("message", (message) => this.receive(message.data));
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      for (const [, waiter] of this.pending) waiter.reject(new Error("the connection closed"));
      this.pending.clear();
      this.setState("offline");
      if (!this.stopped) this.retry();
    });
  }

  renew() {
    const old = this.ws;
    this.ws = null;
    if (old) old.close(1000, "renewing before the 2-hour limit");
    this.open();
  }

  retry() {
    // 0.5 s, 1 s, 2 s ... up to 30 s, each with up to half again of random jitter.
    const base = Math.min(30000, 500 * 2 ** this.attempt);
    this.attempt += 1;
    const wait = base + Math.random() * base * 0.5;
    this.timers.push(setTimeout(() => this.open(), wait));
  }

  receive(raw) {
    let event;
    try { event = JSON.parse(raw); } catch { return; }
    const waiter = event.requestId ? this.pending.get(event.requestId) : undefined;
    if (waiter) {
      this.pending.delete(event.requestId);
      clearTimeout(waiter.timer);
      if (event.type === "error") {
        const error = new Error(event.data?.message || "refused");
        error.code = event.data?.code;
        waiter.reject(error);
        return;
      }
      waiter.resolve(event);
    }
    this.dispatchEvent(new CustomEvent(event.type, { detail: { ...event, own: Boolean(waiter) } }));
    this.dispatchEvent(new CustomEvent("any", { detail: event }));
  }

  get online() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send without waiting; returns the requestId, or null when offline. */
  send(action, fields = {}) {
    if (!this.online) return null;
    const requestId = `c${++this.counter}`;
    this.ws.send(JSON.stringify({ action, requestId, ...fields }));
    return requestId;
  }

  /** Send and wait for the answer event (the one carrying our requestId); an error event rejects. */
  request(action, fields = {}) {
    return new Promise((resolve, reject) => {
      if (!this.online) {
        reject(new Error("not connected to the live chat service; reconnecting"));
        return;
      }
      const requestId = `c${++this.counter}`;
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new Error(`no answer to ${action}`));
      }, ANSWER_TIMEOUT_MS);
      this.pending.set(requestId, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ action, requestId, ...fields }));
    });
  }
}

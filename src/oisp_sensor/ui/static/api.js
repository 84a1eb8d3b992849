// The sensor's HTTP API and live WebSocket. When the page was opened with ?token=, the
// token goes with every API call and the WebSocket (browsers cannot set headers on a
// WebSocket, so the query string is the one way that works for both).

const pageParams = new URLSearchParams(location.search);
export const token = pageParams.get("token") || "";

/** Build an API URL with the token and the non-empty parameters. */
export function apiUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    url.searchParams.set(key, String(value));
  }
  if (token) url.searchParams.set("token", token);
  return url.pathname + url.search;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET a JSON endpoint; throws ApiError with the server's {"error": ...} message. */
export async function getJson(path, params = {}, { signal } = {}) {
  let response;
  try {
    response = await fetch(apiUrl(path, params), { signal, headers: { Accept: "application/json" } });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "the sensor is not reachable");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(response.status, message);
  }
  return response.json();
}

/**
 * The live event stream: reconnects with back-off; `onEvent(envelope)` for every event,
 * `onState("open"|"closed"|"connecting", detail)` when the connection changes.
 */
export class LiveStream {
  constructor({ onEvent, onState }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.delay = 500;
    this.ws = null;
    this.stopped = false;
    this.received = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close();
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}${apiUrl("/ws/events")}`;
  }

  connect() {
    this.onState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.retry(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      this.onState("open");
    };
    ws.onmessage = (msg) => {
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch {
        return; // not an event: ignore rather than break the page
      }
      this.received += 1;
      this.onEvent(event);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.retry(ev.reason || `closed (${ev.code})`);
    };
  }

  retry(reason) {
    this.onState("closed", reason);
    if (this.stopped) return;
    setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 10_000);
  }
}

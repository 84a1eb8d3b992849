// Page state that belongs in the URL (view, filters, what is open), so that a link or a
// reload shows the same thing. Views subscribe and re-read what they need.

export const FILTER_KEYS = ["provider", "model", "app", "pid", "status", "q"];
const KEYS = ["view", ...FILTER_KEYS, "call", "session", "proc", "window"];
export const VIEWS = ["timeline", "stats", "processes", "sessions", "health"];

function read() {
  const params = new URLSearchParams(location.search);
  const state = {};
  for (const key of KEYS) state[key] = params.get(key) || "";
  if (!VIEWS.includes(state.view)) state.view = "timeline";
  return state;
}

let current = read();
const listeners = new Set();

export function get() {
  return current;
}

/** The active filters, as API query parameters. */
export function filters() {
  const out = {};
  for (const key of FILTER_KEYS) if (current[key]) out[key] = current[key];
  return out;
}

export function filterKey() {
  return FILTER_KEYS.map((k) => current[k]).join("\u0000");
}

/**
 * Change state. `push` adds a history entry (views, opening things: Back undoes them);
 * otherwise the entry is replaced (typing in the search box).
 */
export function set(changes, { push = false } = {}) {
  const next = { ...current, ...changes };
  let changed = false;
  for (const key of KEYS) {
    if ((next[key] || "") !== (current[key] || "")) changed = true;
  }
  if (!changed) return;
  const prev = current;
  current = next;
  const params = new URLSearchParams(location.search);
  for (const key of KEYS) {
    if (next[key] && !(key === "view" && next[key] === "timeline")) params.set(key, next[key]);
    else params.delete(key);
  }
  const qs = params.toString();
  const url = `${location.pathname}${qs ? `?${qs}` : ""}${location.hash}`;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  notify(prev);
}

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify(prev) {
  for (const fn of listeners) fn(current, prev);
}

window.addEventListener("popstate", () => {
  const prev = current;
  current = read();
  notify(prev);
});

// The dashboard's shell: views, the filter bar (kept in the URL), the header totals, the
// live stream and the periodic refreshes, keyboard shortcuts. No framework: each view is a
// small class that renders into its own element.

import { getJson, LiveStream, token } from "./api.js";
import { $, h, replace, setText } from "./dom.js";
import { compact, num, usd } from "./fmt.js";
import { ExchangeView } from "./exchange.js";
import { HealthView } from "./health.js";
import { ProcessesView } from "./processes.js";
import { SessionsView } from "./sessions.js";
import * as state from "./state.js";
import { LONGEST, labelOf, StatsView, windowOf } from "./stats.js";
import { TimelineView } from "./timeline.js";

const REFRESH_MS = 5000;

const app = {
  views: {},
  liveRate: [],
  wsState: "connecting",
  options: null,
};
window.oispDashboard = app; // for the browser tests and the benchmark

function openCall(requestId) {
  state.set({ call: requestId }, { push: true });
}

function applyFilter(changes, view) {
  const next = { ...changes, call: "" };
  if (view) next.view = view;
  state.set(next, { push: true });
}

function init() {
  const s = state.get();
  app.exchange = new ExchangeView($("#exchange"), {
    onClose: () => state.set({ call: "" }, { push: true }),
    onFilter: (f) => applyFilter(f, "timeline"),
    onSession: (id) => state.set({ view: "sessions", session: id }, { push: true }),
  });
  app.views.timeline = new TimelineView($("#view-timeline"), { onOpen: openCall });
  app.views.stats = new StatsView($("#view-stats"), { onFilter: (f) => applyFilter(f, "timeline") });
  app.views.processes = new ProcessesView($("#view-processes"), { onFilter: applyFilter });
  app.views.sessions = new SessionsView($("#view-sessions"), { onOpenCall: openCall });
  app.views.health = new HealthView($("#view-health"));
  buildFilters();
  showView(s.view);
  // The first page of calls first: the totals and filter options (heavier queries) after it.
  const first = app.views.timeline.load();
  if (s.call) showExchange(s.call);
  state.subscribe(onState);
  app.stream = new LiveStream({ onEvent, onState: onWsState });
  app.stream.start();
  first.finally(refreshHeader);
  setInterval(refreshHeader, REFRESH_MS);
  setInterval(refreshVisible, REFRESH_MS);
  setInterval(() => {
    // without the WebSocket, poll the timeline so it still moves
    if (app.wsState !== "open") app.views.timeline.model.poke();
  }, 2000);
  document.addEventListener("keydown", onKey);
}

// ---- state changes -----------------------------------------------------------------

function onState(cur, prev) {
  if (state.FILTER_KEYS.some((k) => cur[k] !== prev[k])) {
    syncFilterInputs();
    app.views.timeline.load();
    refreshHeader();
    if (cur.view === "stats") app.views.stats.load();
  }
  if (cur.view !== prev.view) showView(cur.view);
  if (cur.window !== prev.window) {
    app.views.stats.load();
    refreshHeader();
  }
  if (cur.call !== prev.call) {
    if (cur.call) showExchange(cur.call);
    else hideExchange();
  }
  app.views.processes.onState(cur, prev);
  app.views.sessions.onState(cur, prev);
}

function showView(name) {
  for (const v of state.VIEWS) {
    const el = $(`#view-${v}`);
    el.hidden = v !== name;
    const tab = $(`.views a[data-view="${v}"]`);
    tab.classList.toggle("active", v === name);
    tab.setAttribute("aria-current", v === name ? "page" : "false");
  }
  document.body.dataset.page = name;
  if (name !== "timeline") app.views[name].load();
  else app.views.timeline.list.invalidate();
}

function showExchange(id) {
  document.body.classList.add("with-exchange");
  app.views.timeline.select(id);
  app.exchange.show(id);
}

function hideExchange() {
  document.body.classList.remove("with-exchange");
  app.exchange.close();
  app.views.timeline.list.invalidate();
}

function refreshVisible() {
  if (document.hidden) return;
  const view = state.get().view;
  if (view !== "timeline") app.views[view].load();
}

// ---- live stream -------------------------------------------------------------------

let exchangeTimer = 0;
let viewTimer = 0;

function onEvent(event) {
  app.liveRate.push(performance.now());
  app.views.timeline.onEvent(event);
  if (app.exchange.concerns(event)) {
    clearTimeout(exchangeTimer);
    exchangeTimer = setTimeout(() => app.exchange.refresh(event.event_id), 200);
  }
  // The process and session views follow along, at most every 1.5 s.
  const view = state.get().view;
  if ((view === "processes" || view === "sessions") && !viewTimer) {
    viewTimer = setTimeout(() => {
      viewTimer = 0;
      app.views[state.get().view]?.load?.();
    }, 1500);
  }
}

function onWsState(s, detail) {
  const wasOpen = app.wsState === "open";
  app.wsState = s;
  const el = $("#live");
  el.dataset.state = s;
  setText($("#live-text"), s === "open" ? "live" : s === "connecting" ? "connecting…" : "reconnecting…");
  el.title = s === "closed" && detail ? `stream closed: ${detail}` : "live event stream";
  // Back after a gap: catch up with what happened meanwhile.
  if (s === "open" && !wasOpen) app.views.timeline.model.poke();
}

setInterval(() => {
  const now = performance.now();
  while (app.liveRate.length && now - app.liveRate[0] > 5000) app.liveRate.shift();
  setText($("#live-rate"), app.liveRate.length ? `${compact(app.liveRate.length / 5)} ev/s` : "");
}, 1000);

// ---- header totals and filter options ----------------------------------------------

async function refreshHeader() {
  const w = windowOf(state.get().window);
  const f = state.filters();
  delete f.q;
  delete f.status;
  try {
    // Filter options cover more than the chart window: everything kept, unfiltered.
    const [filtered, all, health] = await Promise.all([
      getJson("/api/stats", { ...f, window_s: w.window, bucket_s: w.bucket }),
      getJson("/api/stats", { window_s: LONGEST.window, bucket_s: LONGEST.window }),
      getJson("/api/health").catch(() => null),
    ]);
    renderTotals(filtered, w);
    app.options = all;
    fillFilterOptions(all);
    if (health) renderHealthDot(health);
  } catch (err) {
    setText($("#totals"), `⚠ ${err.message}`);
  }
}

function renderTotals(d, w) {
  const t = d.totals || {};
  const lat = t.latency_ms || {};
  const item = (label, value, cls = "") => h("span", { class: `tot ${cls}`, "data-total": label }, h("b", { text: value }), ` ${label}`);
  replace($("#totals"),
    h("span", { class: "tot-window dim", text: `last ${w.label}:` }),
    item("calls", num(t.requests || 0)),
    item("errors", num(t.errors || 0), t.errors ? "bad" : ""),
    item("tokens", compact((t.input_tokens || 0) + (t.output_tokens || 0))),
    item("cost", usd(t.cost_usd || 0)),
    item("p95", lat.p95 == null ? "–" : `${Math.round(lat.p95)} ms`));
  document.title = `oisp-sensor · ${num(t.requests || 0)} calls`;
}

function renderHealthDot(health) {
  const tab = $('.views a[data-view="health"]');
  tab.dataset.health = health.status || "";
  tab.title = `sensor ${health.status}`;
}

// ---- filter bar --------------------------------------------------------------------

const SELECTS = [
  { key: "provider", label: "provider", group: "by_provider" },
  { key: "model", label: "model", group: "by_model" },
  { key: "app", label: "app", group: "by_app" },
  { key: "pid", label: "process", group: "by_process" },
];

function buildFilters() {
  const bar = $("#filters");
  app.selects = {};
  for (const sel of SELECTS) {
    const el = h("select", { class: "flt", "data-filter": sel.key, "aria-label": `filter by ${sel.label}` });
    el.addEventListener("change", () => state.set({ [sel.key]: el.value, call: "" }, { push: true }));
    app.selects[sel.key] = el;
    bar.appendChild(el);
  }
  const status = h("select", { class: "flt", "data-filter": "status", "aria-label": "filter by status" },
    h("option", { value: "", text: "any status" }),
    h("option", { value: "ok", text: "ok" }),
    h("option", { value: "error", text: "errors" }));
  status.addEventListener("change", () => state.set({ status: status.value, call: "" }, { push: true }));
  app.selects.status = status;
  const search = h("input", {
    type: "search",
    id: "search",
    class: "search",
    placeholder: "search text (press /)",
    "aria-label": "search",
    autocomplete: "off",
    spellcheck: "false",
  });
  let timer = 0;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => state.set({ q: search.value.trim() }), 250);
  });
  app.search = search;
  const clear = h("button", { class: "btn-small", id: "clear-filters", text: "clear", title: "clear all filters", onclick: () => applyFilter(Object.fromEntries(state.FILTER_KEYS.map((k) => [k, ""]))) });
  bar.append(status, search, clear);
  fillFilterOptions(null);
  syncFilterInputs();
}

function fillFilterOptions(stats) {
  for (const sel of SELECTS) {
    const el = app.selects[sel.key];
    const rows = stats ? (stats[sel.group] || []).slice().sort((a, b) => (b.requests || 0) - (a.requests || 0)) : [];
    const current = state.get()[sel.key];
    const opts = [["", `any ${sel.label}`]];
    for (const r of rows) {
      opts.push([String(r.key), `${labelOf(r, sel.group)} · ${num(r.requests)}`]);
    }
    if (current && !opts.some(([v]) => v === current)) opts.push([current, current]);
    const sig = JSON.stringify(opts);
    if (el.dataset.sig !== sig) {
      el.dataset.sig = sig;
      replace(el, opts.map(([value, text]) => h("option", { value, text })));
    }
    el.value = current;
    el.classList.toggle("set", Boolean(current));
  }
}

function syncFilterInputs() {
  const s = state.get();
  for (const sel of SELECTS) {
    const el = app.selects[sel.key];
    if (s[sel.key] && ![...el.options].some((o) => o.value === s[sel.key])) el.appendChild(h("option", { value: s[sel.key], text: s[sel.key] }));
    el.value = s[sel.key];
    el.classList.toggle("set", Boolean(s[sel.key]));
  }
  app.selects.status.value = s.status;
  app.selects.status.classList.toggle("set", Boolean(s.status));
  if (document.activeElement !== app.search) app.search.value = s.q;
  $("#clear-filters").hidden = !state.FILTER_KEYS.some((k) => s[k]);
}

// ---- keyboard ----------------------------------------------------------------------

function onKey(e) {
  const t = e.target;
  const typing = t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA");
  if (e.key === "Escape") {
    if (typing) t.blur();
    else if (state.get().call) state.set({ call: "" }, { push: true });
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  const view = state.get().view;
  const tl = app.views.timeline;
  switch (e.key) {
    case "/":
      e.preventDefault();
      app.search.focus();
      app.search.select();
      break;
    case "j":
    case "ArrowDown":
      if (view === "timeline") {
        e.preventDefault();
        tl.move(1);
        if (state.get().call) openCall(tl.selected);
      }
      break;
    case "k":
    case "ArrowUp":
      if (view === "timeline") {
        e.preventDefault();
        tl.move(-1);
        if (state.get().call) openCall(tl.selected);
      }
      break;
    case "Enter":
      if (view === "timeline") tl.openSelected();
      break;
    case "g":
      if (view === "timeline") tl.toTop();
      break;
    default:
      if (/^[1-5]$/.test(e.key)) state.set({ view: state.VIEWS[Number(e.key) - 1] }, { push: true });
  }
}

// Nav links keep the token and the filters (they are plain links for middle-click too).
for (const a of document.querySelectorAll(".views a[data-view]")) {
  a.href = `?view=${a.dataset.view}${token ? `&token=${encodeURIComponent(token)}` : ""}`;
  a.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    state.set({ view: a.dataset.view }, { push: true });
  });
}
if (token) document.body.dataset.token = "1";

init();

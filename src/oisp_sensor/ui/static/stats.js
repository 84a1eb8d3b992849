// Totals and charts: requests, errors, tokens, cost and latency percentiles over time, and
// the same broken down per provider, model, app and process. Refreshed periodically.

import { getJson } from "./api.js";
import { PercentileBars, TimeChart } from "./charts.js";
import { h, replace, setText } from "./dom.js";
import { compact, ms, num, usd } from "./fmt.js";
import * as state from "./state.js";

export const WINDOWS = [
  { key: "15m", label: "15 min", window: 900, bucket: 15 },
  { key: "1h", label: "1 hour", window: 3600, bucket: 60 },
  { key: "6h", label: "6 hours", window: 6 * 3600, bucket: 300 },
  { key: "24h", label: "24 hours", window: 86400, bucket: 900 },
];
// The sensor keeps aggregates for 24 hours: the longest window, and the one the filter
// options are taken from.
export const LONGEST = WINDOWS[WINDOWS.length - 1];

const GROUPS = [
  { key: "by_provider", label: "Provider", filter: "provider" },
  { key: "by_model", label: "Model", filter: "model" },
  { key: "by_app", label: "App", filter: "app" },
  { key: "by_process", label: "Process", filter: "pid" },
];

export function windowOf(key) {
  return WINDOWS.find((w) => w.key === key) || WINDOWS[1];
}

export class StatsView {
  constructor(root, { onFilter }) {
    this.root = root;
    this.onFilter = onFilter;
    this.group = "by_provider";
    this.data = null;
    this.busy = false;
    this.windowSel = h("div", { class: "seg", role: "group", "aria-label": "time window" });
    this.cards = h("div", { class: "cards" });
    this.status = h("span", { class: "dim" });
    const col = (v, fallback) => getComputedStyle(document.documentElement).getPropertyValue(v).trim() || fallback;
    const blue = col("--c1", "#5b8def");
    const SERIES = {
      requests: [
        { key: "ok", label: "ok", color: blue, kind: "bar", stack: true },
        { key: "errors", label: "errors", color: col("--bad", "#e5534b"), kind: "bar", stack: true },
      ],
      tokens: [
        { key: "input_tokens", label: "input", color: col("--c2", "#4fb477"), kind: "area" },
        { key: "output_tokens", label: "output", color: col("--c3", "#d4a72c"), kind: "area" },
      ],
      cost: [{ key: "cost_usd", label: "cost", color: col("--c4", "#a77bf0"), kind: "bar" }],
      latency: [
        { key: "latency_p50", label: "p50", color: blue, kind: "line" },
        { key: "latency_p95", label: "p95", color: col("--c5", "#e0823d"), kind: "line" },
      ],
    };
    const FORMAT = { requests: compact, tokens: compact, cost: (v) => usd(v), latency: (v) => ms(v) };
    const TITLES = { requests: "Requests", tokens: "Tokens", cost: "Cost (USD)", latency: "Latency percentiles" };
    const figures = [];
    this.charts = {};
    for (const name of Object.keys(SERIES)) {
      const canvas = h("canvas", { "data-chart": name, role: "img", "aria-label": `${TITLES[name]} over time` });
      figures.push(h("figure", { class: "chart" },
        h("figcaption", null, h("span", { text: TITLES[name] }),
          h("span", { class: "legend" }, SERIES[name].map((x) => h("span", { class: "lg" }, h("i", { style: { background: x.color } }), x.label)))),
        h("div", { class: "chart-canvas" }, canvas)));
      this.charts[name] = { canvas, series: SERIES[name], format: FORMAT[name] };
    }
    this.groupTabs = h("nav", { class: "tabs" });
    this.groupTable = h("div", { class: "group-table" });
    const c5 = h("canvas", { "data-chart": "latency-groups", role: "img", "aria-label": "latency p50 and p95 per group" });
    root.append(
      h("div", { class: "view-bar" }, h("h2", { text: "Totals and charts" }), this.windowSel, this.status),
      this.cards,
      h("div", { class: "charts" }, figures),
      h("section", { class: "groups" },
        h("div", { class: "view-bar" }, h("h3", { text: "Breakdown" }), this.groupTabs),
        h("div", { class: "groups-body" },
          this.groupTable,
          h("figure", { class: "chart" },
            h("figcaption", null, h("span", { text: "Latency per group" }),
              h("span", { class: "legend" },
                h("span", { class: "lg" }, h("i", { style: { background: blue } }), "p50"),
                h("span", { class: "lg" }, h("i", { style: { background: blue, opacity: "0.35" } }), "p95"))),
            h("div", { class: "chart-canvas" }, c5)))),
    );
    // Charts are created once their canvases are in the document (they measure it).
    for (const [name, c] of Object.entries(this.charts)) {
      this.charts[name] = new TimeChart(c.canvas, { series: c.series, yFormat: c.format });
    }
    this.groupBars = new PercentileBars(c5, { color: blue, format: (v) => ms(v) });
    this.renderControls();
  }

  renderControls() {
    const current = windowOf(state.get().window).key;
    replace(this.windowSel, WINDOWS.map((w) =>
      h("button", {
        class: `seg-btn${w.key === current ? " active" : ""}`,
        text: w.label,
        "data-window": w.key,
        onclick: () => state.set({ window: w.key === "1h" ? "" : w.key }),
      })));
    replace(this.groupTabs, GROUPS.map((g) =>
      h("button", {
        class: `tab${g.key === this.group ? " active" : ""}`,
        text: g.label,
        onclick: () => {
          this.group = g.key;
          this.renderControls();
          this.renderGroups();
        },
      })));
  }

  async load() {
    if (this.busy) return;
    this.busy = true;
    const w = windowOf(state.get().window);
    const f = state.filters();
    delete f.q; // stats are per provider/model/app/process; text search is the timeline's
    delete f.status;
    try {
      this.data = await getJson("/api/stats", { ...f, window_s: w.window, bucket_s: w.bucket });
      setText(this.status, `updated ${new Date().toLocaleTimeString()}`);
      this.render();
    } catch (err) {
      setText(this.status, `⚠ ${err.message}`);
    } finally {
      this.busy = false;
    }
  }

  render() {
    const d = this.data;
    if (!d) return;
    this.renderControls();
    const t = d.totals || {};
    const lat = t.latency_ms || {};
    const card = (label, value, sub, cls = "") =>
      h("div", { class: `card ${cls}`, "data-card": label }, h("div", { class: "card-label", text: label }), h("div", { class: "card-value", text: value }), sub ? h("div", { class: "card-sub", text: sub }) : null);
    const errRate = t.requests ? (100 * (t.errors || 0)) / t.requests : 0;
    replace(this.cards,
      card("Requests", num(t.requests || 0), t.streaming ? `${num(t.streaming)} streamed` : null),
      card("Errors", num(t.errors || 0), t.requests ? `${errRate.toFixed(1)} %` : null, t.errors ? "bad" : ""),
      card("Input tokens", compact(t.input_tokens || 0), num(t.input_tokens || 0)),
      card("Output tokens", compact(t.output_tokens || 0), num(t.output_tokens || 0)),
      card("Cost", usd(t.cost_usd || 0)),
      card("Latency p50", ms(lat.p50)),
      card("Latency p95", ms(lat.p95), lat.p99 != null ? `p99 ${ms(lat.p99)}` : null));
    const w = windowOf(state.get().window);
    const series = (d.series || []).map((p) => ({ ...p, ok: Math.max(0, (p.requests || 0) - (p.errors || 0)) }));
    for (const chart of Object.values(this.charts)) chart.setData(series, w.bucket);
    this.renderGroups();
  }

  renderGroups() {
    const d = this.data;
    if (!d) return;
    const group = GROUPS.find((g) => g.key === this.group);
    const rows = (d[group.key] || []).slice().sort((a, b) => (b.requests || 0) - (a.requests || 0));
    const table = h("table", { class: "grid-table" },
      h("thead", null, h("tr", null, [group.label, "Requests", "Errors", "In tok", "Out tok", "Cost", "p50", "p95"].map((x, i) => h("th", { class: i ? "num" : "", text: x })))),
      h("tbody", null, rows.map((r) => {
        const value = filterValue(group, r);
        return h("tr", { class: "clickable", title: `filter by ${group.label.toLowerCase()} ${r.key}`, onclick: () => this.onFilter({ [group.filter]: value }) },
          h("td", { text: labelOf(r, group.key) }),
          h("td", { class: "num", text: num(r.requests) }),
          h("td", { class: `num${r.errors ? " bad" : ""}`, text: num(r.errors) }),
          h("td", { class: "num", text: compact(r.input_tokens) }),
          h("td", { class: "num", text: compact(r.output_tokens) }),
          h("td", { class: "num", text: usd(r.cost_usd) }),
          h("td", { class: "num", text: ms(r.latency_ms && r.latency_ms.p50) }),
          h("td", { class: "num", text: ms(r.latency_ms && r.latency_ms.p95) }));
      })));
    replace(this.groupTable, rows.length ? table : h("div", { class: "empty", text: "No calls in this window." }));
    this.groupBars.setData(rows.filter((r) => r.latency_ms && r.latency_ms.p50 != null).slice(0, 25).map((r) => ({
      label: labelOf(r, group.key),
      p50: r.latency_ms.p50,
      p95: r.latency_ms.p95,
    })));
  }
}

/** What to display for a group row: the API's key (a pid for processes, an app id for
 * apps), with the name it carries when there is one. */
export function labelOf(r, group = "") {
  const key = String(r.key ?? "?");
  if (group === "by_process") return r.name ? `${r.name} (${key})` : key;
  if (r.name && r.name !== key) return String(r.name);
  return key;
}

function filterValue(group, r) {
  return String(r.key);
}

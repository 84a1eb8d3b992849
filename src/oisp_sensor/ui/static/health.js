// Sensor health: what the capture is attached to, records lost, and each exporter's state
// (from /api/health). Parts whose shape the page does not know are shown as a JSON tree.

import { getJson } from "./api.js";
import { empty, h, jsonTree, kv, replace, setText } from "./dom.js";
import { dateTime, duration, num } from "./fmt.js";

export class HealthView {
  constructor(root) {
    this.root = root;
    this.status = h("span", { class: "dim" });
    this.body = h("div", { class: "health" });
    root.append(h("div", { class: "view-bar" }, h("h2", { text: "Sensor health" }), this.status), this.body);
  }

  async load() {
    let d;
    try {
      d = await getJson("/api/health");
    } catch (err) {
      setText(this.status, `⚠ ${err.message}`);
      return null;
    }
    setText(this.status, `updated ${new Date().toLocaleTimeString()}`);
    this.render(d);
    return d;
  }

  render(d) {
    const sensor = d.sensor || {};
    const capture = d.capture;
    const exports = d.exports || {};
    const overall = h("div", { class: `health-status ${d.status === "healthy" ? "ok" : "bad"}`, "data-status": d.status },
      h("span", { class: "dot" }), h("span", { text: d.status || "unknown" }));
    const sections = [
      overall,
      h("section", { class: "panel" }, h("h3", { text: "Sensor" }), kv([
        ["Version", sensor.version],
        ["Mode", sensor.mode],
        ["Uptime", sensor.uptime_s == null ? null : duration(sensor.uptime_s)],
        ["Events seen", sensor.events == null ? null : num(sensor.events)],
        ...Object.entries(sensor)
          .filter(([k]) => !["version", "mode", "uptime_s", "events"].includes(k))
          .map(([k, v]) => [label(k), v && typeof v === "object" ? jsonTree(v, 0, 0) : k.endsWith("_at") && v > 1e9 ? dateTime(v) : scalar(v)]),
      ])),
      h("section", { class: "panel", "data-panel": "capture" }, h("h3", { text: "Capture" }), this.capture(capture)),
      h("section", { class: "panel", "data-panel": "exports" }, h("h3", { text: "Exporters" }), this.exporters(exports)),
    ];
    replace(this.body, sections);
  }

  capture(c) {
    if (!c) return empty(this.modeNote || "No live capture (replaying a file, or capture is off).");
    const parts = [];
    const targets = c.targets || c.attached || c.stacks;
    if (Array.isArray(targets)) {
      parts.push(h("h4", { text: `Attached (${targets.length} target${targets.length === 1 ? "" : "s"}${c.probes != null ? `, ${num(c.probes)} probes` : ""})` }));
      if (targets.length) {
        const cols = [...new Set(targets.flatMap((t) => (t && typeof t === "object" ? Object.keys(t) : [])))];
        parts.push(h("table", { class: "grid-table small", "data-table": "attached" },
          h("thead", null, h("tr", null, cols.map((k) => h("th", { text: k })))),
          h("tbody", null, targets.map((t) => h("tr", null, cols.map((k) => h("td", { text: scalar(t[k]) })))))));
      } else parts.push(empty("Nothing attached."));
    }
    if (Array.isArray(c.failed) && c.failed.length) {
      parts.push(h("h4", { class: "bad", text: `Failed to attach (${c.failed.length})` }));
      parts.push(h("ul", { class: "plain" }, c.failed.map((f) => h("li", { text: `${f.path || "?"}: ${f.error || ""}` }))));
    }
    // Counters: anything lost or dropped is what an operator looks for first.
    const counters = flatCounters(c);
    const lost = counters.filter(([k]) => /lost|drop|overflow|truncat|error|fail/i.test(k));
    if (lost.length) {
      parts.push(h("h4", { text: "Losses" }));
      parts.push(h("dl", { class: "kv" }, lost.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { class: v > 0 ? "bad" : "good", text: num(v) })])));
    }
    const rest = Object.fromEntries(Object.entries(c).filter(([k]) => !["targets", "attached", "stacks", "failed"].includes(k)));
    if (Object.keys(rest).length) {
      parts.push(h("details", { class: "more" }, h("summary", { text: "All capture details" }), jsonTree(rest, 0, 1)));
    }
    return h("div", null, parts);
  }

  exporters(exports) {
    const names = Object.keys(exports);
    if (!names.length) return empty("No exporters.");
    const cols = ["status", "events_exported", "events_dropped", "queue_depth", "last_error"];
    return h("table", { class: "grid-table", "data-table": "exporters" },
      h("thead", null, h("tr", null, h("th", { text: "exporter" }), cols.map((c) => h("th", { class: c === "last_error" || c === "status" ? "" : "num", text: c.replace(/_/g, " ") })))),
      h("tbody", null, names.map((name) => {
        const e = exports[name] || {};
        return h("tr", null,
          h("td", { text: name }),
          h("td", { class: e.status === "ok" || e.status === "closed" ? "good" : "bad", text: e.status ?? "" }),
          h("td", { class: "num", text: num(e.events_exported) }),
          h("td", { class: `num${e.events_dropped ? " bad" : ""}`, text: num(e.events_dropped) }),
          h("td", { class: "num", text: num(e.queue_depth) }),
          h("td", { class: "wrap", text: e.last_error || "" }));
      })));
  }
}

/** [dotted.key, number] for every numeric leaf (depth-limited). */
function flatCounters(obj, prefix = "", depth = 0, out = []) {
  if (!obj || typeof obj !== "object" || depth > 3) return out;
  for (const [k, v] of Object.entries(obj)) {
    if (Array.isArray(v)) continue;
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === "number") out.push([key, v]);
    else if (v && typeof v === "object") flatCounters(v, key, depth + 1, out);
  }
  return out;
}

/** "events_kept" -> "Events kept". */
function label(key) {
  const s = key.replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function scalar(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

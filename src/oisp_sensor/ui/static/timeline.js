// The live timeline of AI calls: a virtualised table, newest first, that keeps its place
// while calls arrive (unless it is following the newest), and opens an exchange on click.

import { CallsModel } from "./calls.js";
import { h, setText } from "./dom.js";
import { clock, compact, ms, num, usd, usdCell } from "./fmt.js";
import * as state from "./state.js";
import { VirtualList } from "./vlist.js";

const ROW_H = 28;
const FRESH_MS = 2500; // how long a new or updated row stays highlighted

export const COLUMNS = [
  { key: "time", label: "Time", cls: "c-time" },
  { key: "app", label: "App", cls: "c-app" },
  { key: "process", label: "Process", cls: "c-proc" },
  { key: "provider", label: "Provider", cls: "c-prov" },
  { key: "model", label: "Model", cls: "c-model" },
  { key: "in", label: "In tok", cls: "c-num", title: "input tokens" },
  { key: "out", label: "Out tok", cls: "c-num", title: "output tokens" },
  { key: "cost", label: "Cost", cls: "c-num" },
  { key: "latency", label: "Latency", cls: "c-num" },
  { key: "ttft", label: "TTFT", cls: "c-num", title: "time to first token" },
  { key: "mode", label: "Mode", cls: "c-mode" },
  { key: "status", label: "Status", cls: "c-status" },
];

export class TimelineView {
  constructor(root, { onOpen }) {
    this.root = root;
    this.onOpen = onOpen;
    this.selected = "";
    this.newAbove = 0;
    this.model = new CallsModel((kind, info) => this.changed(kind, info));
    this.countEl = h("span", { class: "tl-count", text: "loading…" });
    this.errorEl = h("span", { class: "tl-error", role: "alert" });
    this.newPill = h("button", {
      class: "pill pill-new",
      hidden: true,
      onclick: () => this.toTop(),
      text: "",
    });
    const head = h(
      "div",
      { class: "tl-head tl-grid", role: "row" },
      COLUMNS.map((c) => h("span", { class: c.cls, text: c.label, title: c.title, role: "columnheader" })),
    );
    this.scroller = h("div", { class: "tl-scroll", tabindex: "0", role: "rowgroup", "aria-label": "AI calls" });
    this.emptyEl = h("div", { class: "tl-empty", hidden: true });
    root.append(
      h("div", { class: "tl-bar" }, this.countEl, this.newPill, this.errorEl),
      h("div", { class: "tl-table", role: "table" }, head, this.scroller, this.emptyEl),
    );
    this.list = new VirtualList(this.scroller, {
      rowHeight: ROW_H,
      count: () => this.model.count,
      createRow: () => this.createRow(),
      renderRow: (el, i) => this.renderRow(el, i),
      clearRow: (el) => {
        el.dataset.id = "";
      },
      keyOf: (i) => {
        const row = this.model.rows[i];
        return row ? row.request_id : `~${i}`;
      },
    });
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop < ROW_H / 2 && this.newAbove) {
        this.newAbove = 0;
        this.newPill.hidden = true;
      }
      this.maybeLoadMore();
    });
    this.scroller.addEventListener("click", (e) => {
      const row = e.target.closest(".tl-row");
      if (row && row.dataset.id) this.open(row.dataset.id);
    });
    // Fresh-row highlights fade: re-render once a second while there are some.
    setInterval(() => {
      if (this.hasFresh) this.list.invalidate();
    }, 1000);
  }

  /** Load for the current filters (first call, or after they changed); resolves when the
   * first page is shown. */
  load() {
    this.newAbove = 0;
    this.newPill.hidden = true;
    this.scroller.scrollTop = 0;
    return this.model.reset(state.filters());
  }

  /** A live event arrived: AI calls trigger an incremental fetch. */
  onEvent(event) {
    const type = event && event.event_type;
    if (type === "ai.request" || type === "ai.response" || type === "ai.embedding") this.model.poke(event.event_id);
  }

  changed(kind, info) {
    this.updateBar();
    if (kind === "live" && info.added && this.scroller.scrollTop > ROW_H / 2) {
      // Keep what the user looks at in place unless they are at the top (following): move
      // the rows and the scroll position together, in this same frame.
      this.list.syncHeight();
      this.scroller.scrollTop += info.added * ROW_H;
      this.newAbove += info.added;
      this.newPill.textContent = `▲ ${num(this.newAbove)} new`;
      this.newPill.hidden = false;
      this.list.dirty = true;
      this.list.render();
    } else this.list.invalidate();
    this.maybeLoadMore();
  }

  updateBar() {
    const m = this.model;
    const filtered = Object.keys(state.filters()).length > 0;
    if (!m.loaded) setText(this.countEl, "loading…");
    else setText(this.countEl, `${num(m.count)} call${m.count === 1 ? "" : "s"}${filtered ? " match the filters" : ""}`);
    setText(this.errorEl, m.error ? `⚠ ${m.error}` : "");
    const none = m.loaded && !m.error && m.count === 0;
    this.emptyEl.hidden = !none;
    if (none) {
      this.emptyEl.textContent = filtered
        ? "No AI calls match these filters."
        : "No AI calls captured yet. Calls made by any process on this machine appear here as they happen.";
    }
  }

  maybeLoadMore() {
    const [, last] = this.list.range();
    this.model.ensureLoaded(Math.max(last, Math.ceil((this.scroller.scrollTop + this.scroller.clientHeight) / ROW_H)));
  }

  toTop() {
    this.scroller.scrollTop = 0;
    this.newAbove = 0;
    this.newPill.hidden = true;
  }

  createRow() {
    const el = h("div", { class: "tl-row tl-grid", role: "row" });
    el._cells = COLUMNS.map((c) => {
      const cell = h("span", { class: c.cls, role: "cell" });
      el.appendChild(cell);
      return cell;
    });
    return el;
  }

  renderRow(el, index) {
    const row = this.model.rows[index];
    const cells = el._cells;
    if (!row) {
      el.dataset.id = "";
      el.className = "tl-row tl-grid tl-loading";
      for (const cell of cells) setText(cell, "");
      setText(cells[0], "loading…");
      return;
    }
    el.dataset.id = row.request_id;
    const fresh = row._touched && performance.now() - row._touched < FRESH_MS;
    if (fresh) this.hasFresh = true;
    const pending = row.success === null || row.success === undefined;
    let cls = "tl-row tl-grid";
    if (row.request_id === this.selected) cls += " selected";
    if (fresh) cls += " fresh";
    if (row.success === false) cls += " failed";
    if (el.className !== cls) el.className = cls;
    const app = row.app ? row.app.name || row.app.id : "";
    const proc = row.process ? `${row.process.name || "?"} ${row.process.pid ?? ""}` : "";
    cellText(cells[0], clock(row.timestamp));
    cellText(cells[1], app, true);
    cellText(cells[2], proc, true);
    cellText(cells[3], row.provider || "", true);
    cellText(cells[4], row.model || "", true);
    cellText(cells[5], row.input_tokens == null ? "" : compact(row.input_tokens));
    cellText(cells[6], row.output_tokens == null ? "" : compact(row.output_tokens));
    cellText(cells[7], row.cost_usd == null ? "" : usdCell(row.cost_usd));
    if (row.cost_usd != null && cells[7].title !== usd(row.cost_usd)) cells[7].title = usd(row.cost_usd);
    cellText(cells[8], row.latency_ms == null ? "" : ms(row.latency_ms));
    cellText(cells[9], row.ttft_ms == null ? "" : ms(row.ttft_ms));
    const mode = [row.streaming ? "stream" : "", row.tool_calls ? `${row.tool_calls} tool${row.tool_calls > 1 ? "s" : ""}` : ""]
      .filter(Boolean)
      .join(" · ");
    cellText(cells[10], mode || (row.request_type && row.request_type !== "chat" ? row.request_type : ""));
    const status = pending ? "pending" : row.status ? String(row.status) : row.success ? "ok" : "error";
    cellText(cells[11], status);
    const scls = `c-status ${pending ? "st-pending" : row.success ? "st-ok" : "st-err"}`;
    if (cells[11].className !== scls) cells[11].className = scls;
  }

  get hasFresh() {
    return this._hasFresh && performance.now() - this._hasFresh < FRESH_MS + 1000;
  }

  set hasFresh(v) {
    if (v) this._hasFresh = performance.now();
  }

  open(requestId) {
    this.select(requestId);
    this.onOpen(requestId);
  }

  select(requestId) {
    this.selected = requestId;
    this.list.invalidate();
  }

  /** Keyboard: move the selection by `delta` rows (j/k, arrows). */
  move(delta) {
    const rows = this.model.rows;
    if (!rows.length) return;
    let i = this.model.indexOf(this.selected);
    i = i < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, i + delta));
    this.selected = rows[i].request_id;
    this.list.scrollToIndex(i);
    this.list.invalidate();
  }

  openSelected() {
    if (this.selected) this.onOpen(this.selected);
  }
}

function cellText(cell, text, withTitle = false) {
  setText(cell, text);
  if (withTitle && cell.title !== text) cell.title = text;
}

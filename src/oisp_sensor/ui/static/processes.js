// The process tree: which processes made AI calls, what started them, and the files and
// network connections of each (from /api/processes).

import { getJson } from "./api.js";
import { empty, h, kv, replace, setText } from "./dom.js";
import { bytes, clock, compact, dateTime, usd } from "./fmt.js";
import * as state from "./state.js";

const MAX_NODES = 3000; // beyond this the tree is cut (the AI-only view stays small)

export class ProcessesView {
  constructor(root, { onFilter }) {
    this.root = root;
    this.onFilter = onFilter;
    this.data = null;
    this.collapsed = new Set();
    this.aiOnly = true;
    this.reveal = true; // bring the selected process into view after the next render
    this.status = h("span", { class: "dim" });
    this.aiToggle = h("input", { type: "checkbox", checked: true, id: "proc-ai-only" });
    this.aiToggle.addEventListener("change", () => {
      this.aiOnly = this.aiToggle.checked;
      this.renderTree();
    });
    this.tree = h("div", { class: "ptree", role: "tree" });
    this.detail = h("aside", { class: "pdetail" });
    root.append(
      h("div", { class: "view-bar" },
        h("h2", { text: "Processes" }),
        h("label", { class: "check" }, this.aiToggle, " only AI activity (and what started it)"),
        this.status),
      h("div", { class: "psplit" }, this.tree, this.detail),
    );
  }

  async load() {
    try {
      this.data = await getJson("/api/processes");
      setText(this.status, `${this.data.processes.length} processes`);
    } catch (err) {
      setText(this.status, `⚠ ${err.message}`);
      return;
    }
    this.byPid = new Map(this.data.processes.map((p) => [p.pid, p]));
    this.renderTree();
    this.renderDetail();
  }

  /** Processes to show: with AI activity, their ancestors, and their descendants. */
  visibleSet() {
    if (!this.aiOnly) return null;
    const keep = new Set();
    const procs = this.data.processes;
    const mark = (p) => {
      for (let q = p, guard = 0; q && !keep.has(q.pid) && guard < 64; q = this.byPid.get(q.ppid), guard++) keep.add(q.pid);
    };
    const down = (p, guard = 0) => {
      if (guard > 64) return;
      for (const c of p.children || []) {
        const child = this.byPid.get(c);
        if (child && !keep.has(c)) {
          keep.add(c);
          down(child, guard + 1);
        }
      }
    };
    for (const p of procs) {
      if (p.ai_calls > 0) {
        mark(p);
        down(p);
      }
    }
    return keep;
  }

  renderTree() {
    if (!this.data) return;
    const keep = this.visibleSet();
    const selected = Number(state.get().proc) || null;
    const out = [];
    let count = 0;
    const seen = new Set();
    const walk = (pid, depth) => {
      const p = this.byPid.get(pid);
      if (!p || seen.has(pid) || (keep && !keep.has(pid))) return;
      seen.add(pid);
      if (count++ >= MAX_NODES) return;
      const kids = (p.children || []).filter((c) => this.byPid.has(c) && (!keep || keep.has(c)));
      const open = !this.collapsed.has(pid);
      out.push(this.node(p, depth, kids.length, open, pid === selected));
      if (open) for (const c of kids) walk(c, depth + 1);
    };
    const roots = this.data.roots && this.data.roots.length ? this.data.roots : this.data.processes.filter((p) => !this.byPid.has(p.ppid)).map((p) => p.pid);
    for (const r of roots) walk(r, 0);
    // Anything unreachable from the roots (a cycle or a missing parent) still shows.
    for (const p of this.data.processes) if (!seen.has(p.pid)) walk(p.pid, 0);
    if (!out.length) {
      replace(this.tree, empty(this.aiOnly ? "No process has made an AI call yet. Untick the box to see all processes." : "No processes seen yet."));
      return;
    }
    if (count > MAX_NODES) out.push(h("div", { class: "note", text: `… ${count - MAX_NODES} more not shown` }));
    replace(this.tree, out);
    if (this.reveal && selected) {
      const node = this.tree.querySelector(".pnode.selected");
      if (node) {
        node.scrollIntoView({ block: "center" });
        this.reveal = false;
      }
    }
  }

  node(p, depth, nkids, open, selected) {
    const twisty = h("button", {
      class: "twisty",
      text: nkids ? (open ? "▾" : "▸") : "",
      "aria-label": nkids ? (open ? "collapse" : "expand") : null,
      onclick: (e) => {
        e.stopPropagation();
        if (!nkids) return;
        if (open) this.collapsed.add(p.pid);
        else this.collapsed.delete(p.pid);
        this.renderTree();
      },
    });
    const app = p.app && p.app.name && p.app.id !== "unknown" ? p.app.name : "";
    return h("div", {
      class: `pnode${selected ? " selected" : ""}${p.exited ? " exited" : ""}${p.ai_calls ? " ai" : ""}`,
      role: "treeitem",
      "data-pid": p.pid,
      style: { paddingLeft: `${depth * 16 + 4}px` },
      onclick: () => {
        this.fromTree = true;
        state.set({ proc: String(p.pid) }, { push: true });
      },
    },
    twisty,
    h("span", { class: "pname", text: p.name || "?" }),
    h("span", { class: "ppid", text: ` ${p.pid}` }),
    app ? h("span", { class: "chip", text: app }) : null,
    p.ai_calls ? h("span", { class: "badge st-ai", text: `${p.ai_calls} AI call${p.ai_calls > 1 ? "s" : ""}` }) : null,
    p.ai_calls ? h("span", { class: "dim", text: ` ${compact((p.input_tokens || 0) + (p.output_tokens || 0))} tok · ${usd(p.cost_usd || 0)}` }) : null,
    (p.files || []).length ? h("span", { class: "pcount", title: "recent file events", text: `files ${p.files.length}` }) : null,
    (p.network || []).length ? h("span", { class: "pcount", title: "recent network events", text: `net ${p.network.length}` }) : null,
    p.exited ? h("span", { class: "dim", text: ` exited${p.exit_code != null ? ` (${p.exit_code})` : ""}` }) : null);
  }

  renderDetail() {
    const pid = Number(state.get().proc);
    const p = this.byPid && this.byPid.get(pid);
    if (!p) {
      replace(this.detail, empty("Select a process to see its command line, files and connections."));
      return;
    }
    const parent = this.byPid.get(p.ppid);
    const files = (p.files || []).slice().reverse();
    const net = (p.network || []).slice().reverse();
    replace(this.detail,
      h("header", { class: "pd-head" },
        h("h3", null, h("span", { text: p.name || "?" }), h("span", { class: "dim", text: ` pid ${p.pid}` })),
        p.ai_calls ? h("button", { class: "btn", text: `Show its ${p.ai_calls} AI call${p.ai_calls > 1 ? "s" : ""}`, onclick: () => this.onFilter({ pid: String(p.pid) }, "timeline") }) : null),
      kv([
        ["Command", (p.cmdline || []).join(" ")],
        ["Executable", p.exe],
        ["Working dir", p.cwd],
        ["Parent", parent ? h("button", { class: "link", text: `${parent.name} (${parent.pid})`, onclick: () => state.set({ proc: String(parent.pid) }, { push: true }) }) : p.ppid ? String(p.ppid) : null],
        ["App", p.app ? `${p.app.name || p.app.id}${p.app.category && p.app.category !== "unknown" ? ` · ${p.app.category}` : ""}` : null],
        ["Started", p.start_time ? dateTime(p.start_time) : null],
        ["Exited", p.exited ? `yes${p.exit_code != null ? `, code ${p.exit_code}` : ""}` : "no"],
        ["AI calls", p.ai_calls ? `${p.ai_calls} · ${compact(p.input_tokens || 0)} in · ${compact(p.output_tokens || 0)} out · ${usd(p.cost_usd || 0)}` : "none"],
      ]),
      h("h4", { text: `Network (${net.length})` }),
      net.length ? table(["Time", "Remote", "Host", "Protocol"], net.map((n) => [clock(n.timestamp), `${n.remote ?? ""}${n.port ? `:${n.port}` : ""}`, n.hostname || "", n.protocol || ""])) : empty("No network events."),
      h("h4", { text: `Files (${files.length})` }),
      files.length ? table(["Time", "Op", "Path", "Bytes"], files.map((f) => [clock(f.timestamp), f.op || "", f.path || "", f.bytes == null ? "" : bytes(f.bytes)])) : empty("No file events."));
  }

  onState(cur, prev) {
    if (cur.proc !== prev.proc) {
      this.reveal = !this.fromTree; // a click in the tree: the node is in view already
      this.fromTree = false;
      this.renderTree();
      this.renderDetail();
    }
  }
}

function table(head, rows) {
  return h("table", { class: "grid-table small" },
    h("thead", null, h("tr", null, head.map((x) => h("th", { text: x })))),
    h("tbody", null, rows.map((r) => h("tr", null, r.map((c) => h("td", { text: c, title: c.length > 40 ? c : null }))))));
}

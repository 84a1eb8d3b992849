// Agent sessions: the runs the sensor recognised as agents, and for one run the chain of
// model turns, tool calls and tool results in order (from /api/sessions).

import { getJson } from "./api.js";
import { empty, h, jsonTree, kv, replace, setText } from "./dom.js";
import { clock, compact, dateTime, ms, num, tsMs, usd } from "./fmt.js";
import * as state from "./state.js";

const KIND = {
  model_turn: { icon: "◆", label: "model turn" },
  tool_call: { icon: "▶", label: "tool call" },
  tool_result: { icon: "◀", label: "tool result" },
  plan_step: { icon: "☰", label: "plan step" },
  session: { icon: "●", label: "session" },
};

export class SessionsView {
  constructor(root, { onOpenCall }) {
    this.root = root;
    this.onOpenCall = onOpenCall;
    this.status = h("span", { class: "dim" });
    this.list = h("div", { class: "slist" });
    this.detail = h("div", { class: "sdetail" });
    this.lastDetail = "";
    root.append(
      h("div", { class: "view-bar" }, h("h2", { text: "Agent sessions" }), this.status),
      h("div", { class: "ssplit" }, this.list, this.detail),
    );
  }

  async load() {
    let body;
    try {
      body = await getJson("/api/sessions");
    } catch (err) {
      setText(this.status, `⚠ ${err.message}`);
      return;
    }
    const sessions = (body.sessions || []).slice().sort((a, b) => tsMs(b.start) - tsMs(a.start));
    setText(this.status, `${sessions.length} session${sessions.length === 1 ? "" : "s"}`);
    const selected = state.get().session;
    if (!sessions.length) {
      replace(this.list, empty("No agent sessions yet. A process that calls a model with tools, runs them and sends the results back is shown here as a session."));
    } else {
      replace(this.list, h("table", { class: "grid-table" },
        h("thead", null, h("tr", null, ["Started", "App", "Process", "Turns", "Tools", "Tokens", "Cost", "Duration", "Status"].map((x, i) => h("th", { class: i >= 3 && i <= 7 ? "num" : "", text: x })))),
        h("tbody", null, sessions.map((s) => h("tr", {
          class: `clickable${s.session_id === selected ? " selected" : ""}`,
          "data-session": s.session_id,
          onclick: () => state.set({ session: s.session_id }, { push: true }),
        },
        h("td", { text: dateTime(s.start) }),
        h("td", { text: appName(s.app) }),
        h("td", { text: s.pid == null ? "" : String(s.pid) }),
        h("td", { class: "num", text: num(s.turns) }),
        h("td", { class: "num", text: num(s.tool_calls) }),
        h("td", { class: "num", text: compact((s.input_tokens || 0) + (s.output_tokens || 0)) }),
        h("td", { class: "num", text: usd(s.cost_usd || 0) }),
        h("td", { class: "num", text: s.end && s.start ? ms(tsMs(s.end) - tsMs(s.start)) : "" }),
        h("td", { class: `st-${statusClass(s.status)}`, text: s.status || "" }))))));
    }
    await this.loadDetail();
  }

  async loadDetail() {
    const id = state.get().session;
    if (!id) {
      this.lastDetail = "";
      replace(this.detail, empty("Select a session to see its chain of model turns and tool calls."));
      return;
    }
    let body;
    try {
      body = await getJson(`/api/sessions/${encodeURIComponent(id)}`);
    } catch (err) {
      replace(this.detail, empty(`Cannot load session ${id}: ${err.message}`));
      return;
    }
    const key = JSON.stringify(body);
    if (key === this.lastDetail) return; // unchanged: keep what the user expanded
    this.lastDetail = key;
    const s = body.session || {};
    const steps = body.steps || [];
    const t0 = steps.length ? tsMs(steps[0].timestamp) : tsMs(s.start);
    replace(this.detail,
      h("header", { class: "sd-head" }, h("h3", { text: `Session ${s.session_id || id}` })),
      kv([
        ["App", appName(s.app)],
        ["Process", s.pid == null ? null : String(s.pid)],
        ["Started", s.start ? dateTime(s.start) : null],
        ["Turns", `${num(s.turns)} model turns, ${num(s.tool_calls)} tool calls`],
        ["Tokens", `${num(s.input_tokens)} in · ${num(s.output_tokens)} out`],
        ["Cost", usd(s.cost_usd || 0)],
        ["Status", s.status],
      ]),
      steps.length ? h("ol", { class: "chain" }, steps.map((step) => this.step(step, t0))) : empty("No steps recorded."));
  }

  step(step, t0) {
    const kind = KIND[step.kind] || { icon: "·", label: step.kind };
    const env = step.event || {};
    const callId = step.kind === "model_turn" ? requestIdOf(env) : null;
    const offset = tsMs(step.timestamp) - t0;
    return h("li", { class: `step step-${step.kind}`, "data-kind": step.kind },
      h("span", { class: "step-icon", text: kind.icon, title: kind.label }),
      h("div", { class: "step-main" },
        h("div", { class: "step-line" },
          h("span", { class: "step-time", text: clock(step.timestamp) }),
          h("span", { class: "step-off dim", text: Number.isFinite(offset) ? `+${ms(offset)}` : "" }),
          h("span", { class: "step-kind", text: kind.label }),
          h("span", { class: "step-sum", text: step.summary || "" }),
          callId ? h("button", { class: "link", text: "open exchange", onclick: () => this.onOpenCall(callId) }) : null),
        h("details", { class: "step-raw" }, h("summary", { text: "event" }), jsonTree(env.data || env, 0, 1))));
  }

  onState(cur, prev) {
    if (cur.session !== prev.session) {
      for (const tr of this.list.querySelectorAll("tr[data-session]")) tr.classList.toggle("selected", tr.dataset.session === cur.session);
      this.loadDetail();
    }
  }
}

/** The request id (ai.request event id) of a model turn's event. */
function requestIdOf(env) {
  if (!env || !env.event_type) return null;
  if (env.event_type === "ai.request") return env.event_id;
  if (env.data && env.data.related_event_id) return env.data.related_event_id;
  return null;
}

function appName(app) {
  if (!app) return "";
  if (typeof app === "string") return app;
  return app.name || app.id || "";
}

function statusClass(status) {
  if (!status) return "pending";
  if (/error|fail/i.test(status)) return "err";
  if (/active|running|open/i.test(status)) return "pending";
  return "ok";
}

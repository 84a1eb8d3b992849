// The exchange view: one AI call as captured (after redaction): the request's messages,
// tools and parameters, the response's choices and tool calls, timings, HTTP metadata and
// the raw envelopes. Every captured string is shown with textContent.

import { getJson } from "./api.js";
import { copyText, empty, h, jsonTree, kv, replace } from "./dom.js";
import { bytes, dateTime, ms, num, usd } from "./fmt.js";

const TABS = ["Messages", "Response", "Tools", "Timing", "HTTP", "JSON"];

export class ExchangeView {
  constructor(root, { onClose, onFilter, onSession }) {
    this.root = root;
    this.onClose = onClose;
    this.onFilter = onFilter;
    this.onSession = onSession;
    this.requestId = "";
    this.tab = "Messages";
    this.data = null;
    this.abort = null;
  }

  async show(requestId) {
    if (!requestId) return;
    const again = requestId === this.requestId;
    this.requestId = requestId;
    if (!again) {
      this.data = null;
      replace(this.root, this.header(null), h("div", { class: "ex-loading", text: "loading…" }));
    }
    await this.refresh();
  }

  /** Fetch again (the response may have arrived since); keeps the tab and scroll. `after`:
   * the live event that prompted it, which the server waits for (see CallsModel.poke). */
  async refresh(after = "") {
    const id = this.requestId;
    if (!id) return;
    if (this.abort) this.abort.abort();
    const abort = new AbortController();
    this.abort = abort;
    let data;
    try {
      data = await getJson(`/api/exchanges/${encodeURIComponent(id)}`, { after }, { signal: abort.signal });
    } catch (err) {
      if (err.name === "AbortError" || id !== this.requestId) return;
      replace(this.root, this.header(null), empty(`Cannot load this exchange: ${err.message}`));
      return;
    }
    if (id !== this.requestId) return;
    const same = this.data && JSON.stringify(this.data) === JSON.stringify(data);
    if (same) return;
    this.data = data;
    const body = this.root.querySelector(".ex-body");
    const scroll = body ? body.scrollTop : 0;
    this.render();
    const nb = this.root.querySelector(".ex-body");
    if (nb) nb.scrollTop = scroll;
  }

  /** A live event concerns the open exchange when it names its request. */
  concerns(event) {
    const d = event && event.data;
    if (!d || !this.requestId) return false;
    return (
      event.event_id === this.requestId ||
      d.related_event_id === this.requestId ||
      d.request_event_id === this.requestId
    );
  }

  close() {
    this.requestId = "";
    this.data = null;
    if (this.abort) this.abort.abort();
    this.root.replaceChildren();
  }

  header(summary) {
    return h(
      "header",
      { class: "ex-head" },
      h("div", { class: "ex-title" }, summary || h("span", { text: "Exchange" })),
      h("button", { class: "icon-btn", title: "Close (Esc)", "aria-label": "close", onclick: () => this.onClose(), text: "✕" }),
    );
  }

  render() {
    const { request, response } = this.data;
    const req = request ? request.data || {} : {};
    const res = response ? response.data || {} : {};
    const env = request || response || {};
    const provider = (req.provider && (req.provider.name || req.provider.id)) || (res.provider && res.provider.name) || "?";
    const model = (req.model && req.model.id) || (res.model && res.model.id) || "";
    const pending = !response;
    const ok = res.success !== false;
    const status = pending ? "pending" : res.status_code ? String(res.status_code) : ok ? "ok" : "error";
    const title = h(
      "span",
      null,
      h("span", { class: "ex-prov", text: provider }),
      model ? h("span", { class: "ex-model", text: ` ${model}` }) : null,
      h("span", { class: `badge ${pending ? "st-pending" : ok ? "st-ok" : "st-err"}`, text: status }),
      req.streaming || res.streaming ? h("span", { class: "badge", text: "stream" }) : null,
    );
    const proc = env.process || {};
    const procLink = h("button", {
      class: "link",
      title: "show the calls of this process",
      text: `${proc.name || "?"} (${proc.pid ?? "?"})`,
      onclick: () => this.onFilter({ pid: String(proc.pid ?? "") }),
    });
    const appName = env.app ? env.app.name || env.app.id : "";
    const usage = res.usage || {};
    const cost = res.cost ? res.cost.usd : req.token_estimate ? req.token_estimate.estimated_cost_usd : null;
    const costText = cost == null ? null : `${usd(cost)}${res.cost && res.cost.estimated ? " (est.)" : !res.cost ? " (est. input)" : ""}`;
    const summary = kv(
      [
        ["Time", dateTime(env.timestamp)],
        ["App", appName],
        ["Process", procLink],
        ["Endpoint", req.provider ? req.provider.endpoint : ""],
        ["Type", req.request_type],
        ["Latency", res.latency_ms == null ? null : ms(res.latency_ms)],
        ["TTFT", res.time_to_first_token_ms == null ? null : ms(res.time_to_first_token_ms)],
        ["Tokens", usage.prompt_tokens == null && usage.completion_tokens == null ? null
          : `${num(usage.prompt_tokens)} in · ${num(usage.completion_tokens)} out${usage.estimated ? " (est.)" : ""}`],
        ["Cost", costText],
        ["Finish", finishReasons(res)],
        ["Error", res.error ? errorText(res.error) : null],
      ],
      "kv ex-summary",
    );
    const tabs = h(
      "nav",
      { class: "tabs", role: "tablist" },
      TABS.map((name) =>
        h("button", {
          class: `tab${name === this.tab ? " active" : ""}`,
          role: "tab",
          "aria-selected": name === this.tab ? "true" : "false",
          "data-tab": name,
          text: name === "Tools" ? `Tools (${this.toolCount()})` : name,
          onclick: () => {
            this.tab = name;
            this.render();
          },
        }),
      ),
    );
    const body = h("div", { class: "ex-body" }, this.renderTab());
    replace(this.root, this.header(title), summary, this.sessionLine(req, res), tabs, body);
  }

  sessionLine(req, res) {
    const session = (this.data.row && this.data.row.session_id) || null;
    const conv = req.conversation_id || res.conversation_id;
    if (!session && !conv) return null;
    return h(
      "div",
      { class: "ex-conv" },
      conv ? h("span", { class: "dim", text: `conversation ${conv}` }) : null,
      session ? h("button", { class: "link", text: "open agent session", onclick: () => this.onSession(session) }) : null,
    );
  }

  toolCount() {
    const d = this.data;
    return (d.tool_calls || []).length + (d.tool_results || []).length;
  }

  renderTab() {
    const d = this.data;
    const req = d.request ? d.request.data || {} : {};
    const res = d.response ? d.response.data || {} : {};
    switch (this.tab) {
      case "Messages":
        return this.messagesTab(req);
      case "Response":
        return this.responseTab(res);
      case "Tools":
        return this.toolsTab(req);
      case "Timing":
        return this.timingTab(req, res);
      case "HTTP":
        return this.httpTab(req, res);
      default:
        return this.jsonTab();
    }
  }

  messagesTab(req) {
    if (!this.data.request) return empty("The request was not captured (the sensor joined mid-call).");
    const parts = [];
    if (req.parameters && Object.keys(req.parameters).length) {
      parts.push(h("div", { class: "params" }, Object.entries(req.parameters).map(([k, v]) =>
        h("span", { class: "chip", text: `${k}=${typeof v === "string" ? v : JSON.stringify(v)}` }))));
    }
    const messages = req.messages || [];
    if (!messages.length) {
      const input = req.input ?? req.prompt;
      parts.push(input !== undefined ? block("input", input) : empty("No messages in this request."));
    }
    messages.forEach((m, i) => parts.push(messageBlock(m, i)));
    if (req.messages_redacted || req.redaction) {
      const r = req.redaction || {};
      parts.push(h("p", { class: "note", text: `Redaction (${r.mode || "safe"}): ${r.redaction_count ?? "some"} item(s) replaced${(r.patterns_found || []).length ? ` (${r.patterns_found.join(", ")})` : ""}.` }));
    }
    return h("div", { class: "msgs" }, parts);
  }

  responseTab(res) {
    if (!this.data.response) return empty("No response yet: the call is still running (or the connection closed before an answer).");
    const parts = [];
    const choices = res.choices || [];
    choices.forEach((c, i) => {
      const msg = c.message || c.delta || {};
      parts.push(messageBlock({ ...msg, role: msg.role || "assistant" }, i, c.finish_reason ? `finish: ${c.finish_reason}` : ""));
    });
    if (!choices.length && res.content !== undefined) parts.push(block("content", res.content));
    if (res.error) parts.push(h("div", { class: "msg msg-error" }, h("div", { class: "msg-role", text: "error" }), pre(errorText(res.error))));
    if (d(this.data.embedding)) parts.push(h("h4", { text: "Embedding" }), jsonTree(this.data.embedding.data, 0, 1));
    if (res.usage) parts.push(h("h4", { text: "Usage" }), kv(Object.entries(res.usage).map(([k, v]) => [k, typeof v === "number" ? num(v) : String(v)])));
    if (!parts.length) parts.push(empty("The response carried no content."));
    return h("div", { class: "msgs" }, parts);
  }

  toolsTab(req) {
    const parts = [];
    const calls = this.data.tool_calls || [];
    const results = this.data.tool_results || [];
    const resultsByCall = new Map(results.map((r) => [r.data && r.data.call_id, r]));
    if (calls.length) {
      parts.push(h("h4", { text: `Tool calls made by the model (${calls.length})` }));
      for (const c of calls) {
        const cd = c.data || {};
        const result = resultsByCall.get(cd.call_id);
        parts.push(
          h(
            "div",
            { class: "tool" },
            h("div", { class: "tool-head" },
              h("span", { class: "tool-name", text: (cd.tool && cd.tool.name) || "?" }),
              cd.call_id ? h("span", { class: "dim", text: ` ${cd.call_id}` }) : null,
              result ? h("span", { class: `badge ${result.data.success === false ? "st-err" : "st-ok"}`, text: result.data.success === false ? "failed" : "result" }) : null),
            pre(pretty(cd.arguments)),
            result ? h("div", { class: "dim", text: `result: ${num(result.data.result_length)} chars${result.data.duration_ms != null ? `, ${ms(result.data.duration_ms)} later` : ""}` }) : null,
          ),
        );
      }
    }
    const unmatched = results.filter((r) => !calls.some((c) => c.data && r.data && c.data.call_id === r.data.call_id));
    if (unmatched.length) {
      parts.push(h("h4", { text: `Tool results sent in this request (${unmatched.length})` }));
      for (const r of unmatched) {
        const rd = r.data || {};
        parts.push(h("div", { class: "tool" },
          h("div", { class: "tool-head" },
            h("span", { class: "tool-name", text: (rd.tool && rd.tool.name) || "?" }),
            rd.call_id ? h("span", { class: "dim", text: ` ${rd.call_id}` }) : null,
            h("span", { class: `badge ${rd.success === false ? "st-err" : "st-ok"}`, text: rd.success === false ? "error" : "ok" })),
          h("div", { class: "dim", text: `${num(rd.result_length)} chars${rd.duration_ms != null ? `, tool ran ${ms(rd.duration_ms)}` : ""}` })));
      }
    }
    if (req.tools && req.tools.length) {
      parts.push(h("h4", { text: `Tools offered to the model (${req.tools.length})` }));
      for (const t of req.tools) {
        const name = t.name || (t.function && t.function.name) || "?";
        const desc = t.description || (t.function && t.function.description) || "";
        parts.push(h("details", { class: "tool-def" }, h("summary", null, h("span", { class: "tool-name", text: name }), desc ? h("span", { class: "dim", text: ` ${desc}` }) : null), jsonTree(t, 0, 3)));
      }
      if (req.tool_choice !== undefined) parts.push(h("div", { class: "dim", text: `tool_choice: ${JSON.stringify(req.tool_choice)}` }));
    }
    if (!parts.length) return empty("No tools in this exchange.");
    return h("div", { class: "tools" }, parts);
  }

  timingTab(req, res) {
    const chunks = this.data.chunks || {};
    const total = res.latency_ms;
    if (total == null) return empty("Timings are known once the response has arrived.");
    const marks = [
      ["request sent", 0],
      ["first byte", res.time_to_first_byte_ms],
      ["first token", res.time_to_first_token_ms],
      ["first chunk", chunks.first_ms],
      ["last chunk", chunks.last_ms],
      ["response complete", total],
    ].filter(([, v]) => v !== null && v !== undefined);
    const scale = Math.max(total, ...marks.map(([, v]) => v), 1);
    const bar = h("div", { class: "wf" },
      h("div", { class: "wf-wait", style: { width: `${pct(res.time_to_first_token_ms ?? res.time_to_first_byte_ms ?? 0, scale)}%` } }),
      h("div", { class: "wf-recv", style: { left: `${pct(res.time_to_first_token_ms ?? res.time_to_first_byte_ms ?? 0, scale)}%`, width: `${pct(total - (res.time_to_first_token_ms ?? res.time_to_first_byte_ms ?? 0), scale)}%` } }));
    const rows = marks.map(([label, v]) =>
      h("div", { class: "wf-row" },
        h("span", { class: "wf-label", text: label }),
        h("span", { class: "wf-track" }, h("span", { class: "wf-dot", style: { left: `${pct(v, scale)}%` } })),
        h("span", { class: "wf-val", text: ms(v) })));
    return h("div", { class: "timing" }, bar,
      h("div", { class: "wf-legend dim", text: "waiting for the first token · receiving" }),
      rows,
      kv([
        ["Chunks", chunks.count ? num(chunks.count) : res.chunk_count ? num(res.chunk_count) : null],
        ["Request size", req.request_bytes == null ? null : bytes(req.request_bytes)],
        ["Response size", res.response_bytes == null ? null : bytes(res.response_bytes)],
        ["Tokens / s", res.usage && res.usage.completion_tokens && total ? (res.usage.completion_tokens / ((total - (res.time_to_first_token_ms || 0)) / 1000 || 1)).toFixed(1) : null],
      ]));
  }

  httpTab(req, res) {
    const parts = [];
    if (req.http) parts.push(h("h4", { text: "Request" }), kv(Object.entries(req.http).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])));
    if (req.auth) parts.push(h("h4", { text: "Credentials (as redacted)" }), kv(Object.entries(req.auth).map(([k, v]) => [k, String(v)])));
    if (res.status_code !== undefined || res.request_id || res.http) {
      parts.push(h("h4", { text: "Response" }), kv([
        ["status", res.status_code],
        ["provider request id", res.request_id],
        ...Object.entries(res.http || {}).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
      ]));
    }
    const env = this.data.request || this.data.response;
    if (env && env.confidence) {
      const c = env.confidence;
      parts.push(h("h4", { text: "Capture" }), kv([
        ["confidence", `${c.level}, ${c.completeness}${(c.reasons || []).length ? ` (${c.reasons.join(", ")})` : ""}`],
        ["source", env.source ? `${env.source.capture_method} at ${env.source.capture_point}` : null],
      ]));
    }
    if (!parts.length) return empty("No HTTP metadata captured.");
    return h("div", null, parts);
  }

  jsonTab() {
    const d = this.data;
    const sections = [["ai.request", d.request], ["ai.response", d.response], ["embedding", d.embedding]];
    const parts = [];
    for (const [label, env] of sections) {
      if (!env) continue;
      const text = JSON.stringify(env, null, 2);
      parts.push(h("div", { class: "json-head" }, h("h4", { text: label }),
        h("button", { class: "btn-small", text: "copy", onclick: async (e) => { e.target.textContent = (await copyText(text)) ? "copied" : "copy failed"; } })));
      parts.push(pre(text, "json"));
    }
    for (const env of [...(d.tool_calls || []), ...(d.tool_results || [])]) {
      parts.push(h("h4", { text: env.event_type }), pre(JSON.stringify(env, null, 2), "json"));
    }
    return h("div", null, parts);
  }
}

function d(x) {
  return x !== null && x !== undefined;
}

function pct(v, scale) {
  return Math.max(0, Math.min(100, (v / scale) * 100));
}

function pre(text, cls = "") {
  return h("pre", { class: `content ${cls}`, text });
}

function pretty(v) {
  if (typeof v === "string") return v;
  return JSON.stringify(v, null, 2);
}

function block(label, content) {
  return h("div", { class: "msg" }, h("div", { class: "msg-role", text: label }), pre(pretty(content)));
}

function errorText(err) {
  if (typeof err === "string") return err;
  if (err && err.message) return `${err.type ? `${err.type}: ` : ""}${err.message}`;
  return JSON.stringify(err);
}

function finishReasons(res) {
  const reasons = (res.choices || []).map((c) => c.finish_reason).filter(Boolean);
  return reasons.length ? [...new Set(reasons)].join(", ") : null;
}

/** One message: role, content (or why there is none), tool calls it makes or answers. */
function messageBlock(m, index, note = "") {
  const role = m.role || "?";
  const head = h("div", { class: "msg-role" },
    h("span", { text: role }),
    m.name ? h("span", { class: "dim", text: ` ${m.name}` }) : null,
    m.tool_call_id ? h("span", { class: "dim", text: ` → ${m.tool_call_id}` }) : null,
    h("span", { class: "msg-meta", text: [note, m.content_length != null ? `${num(m.content_length)} chars` : ""].filter(Boolean).join(" · ") }));
  const parts = [head];
  if (m.content !== undefined && m.content !== null && m.content !== "") {
    parts.push(pre(pretty(m.content)));
  } else if (m.content_hash) {
    parts.push(h("div", { class: "redacted", text: `content not kept by the redaction settings (${m.content_hash.slice(0, 19)}…)` }));
  }
  for (const tc of m.tool_calls || []) {
    const fn = tc.function || tc;
    parts.push(h("div", { class: "msg-tool" },
      h("span", { class: "tool-name", text: `${fn.name || "?"}(…)` }),
      tc.id ? h("span", { class: "dim", text: ` ${tc.id}` }) : null,
      pre(pretty(tryJson(fn.arguments ?? tc.input ?? tc.args ?? {})))));
  }
  return h("div", { class: `msg msg-${cssSafe(role)}`, "data-index": index }, parts);
}

function tryJson(v) {
  if (typeof v !== "string") return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

function cssSafe(s) {
  return String(s).toLowerCase().replace(/[^a-z0-9_-]/g, "");
}

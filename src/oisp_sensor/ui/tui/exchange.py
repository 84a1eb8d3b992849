"""The exchange view's text: one AI call (store.exchange(...)) as sections of rich Text.

What is shown is what the store holds, i.e. the exported envelopes after redaction:
a message whose content the redaction mode dropped shows only its length.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from . import format as fmt

# Request/response fields shown in their own sections; the rest goes to "Other fields".
_SHOWN_REQUEST = {"messages", "provider", "model", "request_type", "streaming", "message_count", "tools"}
_SHOWN_RESPONSE = {
    "choices",
    "provider",
    "model",
    "usage",
    "cost",
    "latency_ms",
    "time_to_first_token_ms",
    "time_to_first_byte_ms",
    "status_code",
    "success",
    "error",
    "related_event_id",
    "streaming",
}


def _data(env: object) -> dict[str, Any]:
    data = env.get("data") if isinstance(env, dict) else None
    return data if isinstance(data, dict) else {}


def _heading(title: str) -> Text:
    return Text(f"\n── {title} ", style="bold magenta")


def _kv(label: str, value: object) -> Text:
    text = Text(f"  {label:<18}", style="dim")
    text.append(str(value))
    return text


def _content(value: object, length: object) -> Text:
    """Message content: text as captured (redacted), parts, or only its length when not kept."""
    if isinstance(value, str):
        return Text(value)
    if isinstance(value, list):
        out = Text()
        for part in value:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            else:
                out.append(fmt.short(part, 200), style="italic")
            out.append("\n")
        out.rstrip()
        return out
    if value is None:
        n = length if isinstance(length, int) else 0
        return Text(f"({n} chars, content not kept)" if n else "(no text)", style="dim italic")
    return Text(fmt.short(value, 400), style="italic")


def _tool_call_lines(calls: object) -> list[Text]:
    out: list[Text] = []
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        line = Text("    ↳ tool call ", style="yellow")
        line.append(str(fn.get("name") or "?"), style="bold yellow")
        args = fn.get("arguments")
        if args is not None:
            line.append(" " + fmt.short(args, 300))
        if call.get("id"):
            line.append(f"  [{call['id']}]", style="dim")
        out.append(line)
    return out


def _message(msg: object) -> list[Text]:
    if not isinstance(msg, dict):
        return [Text(fmt.short(msg), style="italic")]
    role = str(msg.get("role") or "?")
    head = Text("  ")
    head.append(role, style="bold cyan" if role != "assistant" else "bold green")
    if msg.get("tool_call_id"):
        head.append(f" (result of {msg['tool_call_id']})", style="dim")
    head.append(": ", style="bold")
    head.append_text(_content(msg.get("content"), msg.get("content_length")))
    return [head, *_tool_call_lines(msg.get("tool_calls"))]


def summary(ex: dict[str, Any]) -> list[Text]:
    row = ex.get("row") or {}
    title = Text()
    title.append(f"{row.get('provider') or '?'} · {row.get('model') or '?'}", style="bold")
    title.append("  ")
    title.append_text(fmt.status(row))
    lines = [title]
    lines.append(_kv("time", fmt.when(row.get("timestamp"))))
    lines.append(_kv("app", fmt.app_name(row.get("app"))))
    proc = row.get("process") or {}
    lines.append(_kv("process", f"{fmt.process_name(proc)} {proc.get('exe') or ''}".rstrip()))
    lines.append(
        _kv("type", f"{row.get('request_type') or '?'}{' (streaming)' if row.get('streaming') else ''}")
    )
    lines.append(
        _kv(
            "tokens",
            f"{fmt.tokens(row.get('input_tokens'))} in / {fmt.tokens(row.get('output_tokens'))} out"
            f"  cost {fmt.cost(row.get('cost_usd'))}",
        )
    )
    if row.get("session_id"):
        lines.append(_kv("agent session", row["session_id"]))
    lines.append(_kv("request id", ex.get("request_id")))
    return lines


def timings(ex: dict[str, Any]) -> list[Text]:
    resp = _data(ex.get("response"))
    chunks = ex.get("chunks") or {}
    lines = [
        _kv("latency", fmt.ms(resp.get("latency_ms"))),
        _kv("first byte", fmt.ms(resp.get("time_to_first_byte_ms"))),
        _kv("first token", fmt.ms(resp.get("time_to_first_token_ms"))),
    ]
    if chunks.get("count"):
        lines.append(
            _kv(
                "stream chunks",
                f"{chunks['count']} (first at {fmt.ms(chunks.get('first_ms'))}, "
                f"last at {fmt.ms(chunks.get('last_ms'))})",
            )
        )
    req = _data(ex.get("request"))
    sizes = [f"{k.split('_')[0]} {req.get(k) if k in req else resp.get(k)} B"
             for k in ("request_bytes", "response_bytes") if k in req or k in resp]  # fmt: skip
    if sizes:
        lines.append(_kv("bytes", ", ".join(sizes)))
    return lines


def request_lines(ex: dict[str, Any]) -> list[Text]:
    req = ex.get("request")
    if req is None:
        return [Text("  (the request was not seen: the sensor started during the call)", style="dim")]
    data = _data(req)
    lines: list[Text] = []
    for msg in data.get("messages") or []:
        lines.extend(_message(msg))
    if not lines:
        lines.append(Text("  (no messages)", style="dim"))
    tools = data.get("tools")
    if isinstance(tools, list) and tools:
        names = [str(t.get("name") or "?") if isinstance(t, dict) else str(t) for t in tools]
        lines.append(_kv("tools offered", ", ".join(names)))
    return lines


def response_lines(ex: dict[str, Any]) -> list[Text]:
    resp = ex.get("response")
    if resp is None:
        return [Text("  (no response yet)", style="yellow")]
    data = _data(resp)
    lines: list[Text] = []
    for choice in data.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        lines.extend(_message(choice.get("message") or {"role": "assistant"}))
        if choice.get("finish_reason"):
            lines.append(_kv("finish reason", choice["finish_reason"]))
    error = data.get("error")
    if error:
        err = Text("  error: ", style="bold red")
        err.append(fmt.short(error, 400))
        lines.append(err)
    if not lines:
        lines.append(Text("  (no message in the response)", style="dim"))
    return lines


def tool_lines(ex: dict[str, Any]) -> list[Text]:
    results: dict[str, dict[str, Any]] = {}
    for env in ex.get("tool_results") or []:
        data = _data(env)
        if isinstance(data.get("related_event_id"), str):
            results[data["related_event_id"]] = data
    lines: list[Text] = []
    for env in ex.get("tool_calls") or []:
        data = _data(env)
        tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
        line = Text("  ")
        line.append(str(tool.get("name") or "?"), style="bold yellow")
        if "arguments" in data:
            line.append(" " + fmt.short(data["arguments"], 300))
        lines.append(line)
        result = results.get(str(env.get("event_id")))
        if result is None:
            lines.append(Text("    result: (not seen yet)", style="dim"))
            continue
        ok = result.get("success")
        res = Text("    result: ", style="dim")
        res.append("ok" if ok is not False else "failed", style="green" if ok is not False else "red")
        if "result_length" in result:
            res.append(f", {result['result_length']} chars")
        if "duration_ms" in result:
            res.append(f", {fmt.ms(result['duration_ms'])} later")
        lines.append(res)
    return lines


def other_fields(ex: dict[str, Any]) -> list[Text]:
    extra: dict[str, Any] = {}
    req = {k: v for k, v in _data(ex.get("request")).items() if k not in _SHOWN_REQUEST}
    resp = {k: v for k, v in _data(ex.get("response")).items() if k not in _SHOWN_RESPONSE}
    if req:
        extra["request"] = req
    if resp:
        extra["response"] = resp
    return [Text(fmt.pretty_json(extra), style="dim")] if extra else []


def render(ex: dict[str, Any]) -> Text:
    """The whole exchange view as one Text (scrolled by the screen that shows it)."""
    sections: list[tuple[str, list[Text]]] = [
        ("Summary", summary(ex)),
        ("Timings", timings(ex)),
        ("Request messages", request_lines(ex)),
        ("Response", response_lines(ex)),
    ]
    tools = tool_lines(ex)
    if tools:
        sections.append(("Tool calls", tools))
    other = other_fields(ex)
    if other:
        sections.append(("Other fields (as exported)", other))
    out = Text()
    for title, lines in sections:
        out.append_text(_heading(title))
        out.append("\n")
        for line in lines:
            out.append_text(line)
            out.append("\n")
    return out

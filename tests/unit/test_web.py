"""Web context of AI calls made from browser pages (oisp_sensor.enrich.web), the request
headers that feed it (decode.ai_events), and the pipeline wiring of `app` and `web`."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.unit.helpers_ai import events_of, exchange, json_response, post

from oisp_sensor.config import SensorConfig
from oisp_sensor.enrich.apps import UNKNOWN_APP
from oisp_sensor.enrich.process import ProcessInfo
from oisp_sensor.enrich.web import CallContexts, WebApps, builtin_web_apps, parse_web_apps, strip_url
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.schema.envelope import Clock
from oisp_sensor.schema.events import SensorEvent


@pytest.fixture(scope="module")
def web() -> WebApps:
    return WebApps.default()


# ---- the table -----------------------------------------------------------------------------------


def test_builtin_web_apps_cover_the_common_ai_web_apps(web: WebApps) -> None:
    apps = builtin_web_apps()
    assert len(apps) >= 25 and len({a.id for a in apps}) == len(apps)
    for host, app_id in [
        ("chatgpt.com", "chatgpt-web"),
        ("claude.ai", "claude-web"),
        ("gemini.google.com", "gemini-web"),
        ("www.perplexity.ai", "perplexity-web"),
        ("copilot.microsoft.com", "copilot-web"),
        ("chat.mistral.ai", "le-chat"),
        ("poe.com", "poe-web"),
        ("chat.deepseek.com", "deepseek-web"),
        ("grok.com", "grok-web"),
        ("aistudio.google.com", "google-ai-studio"),
    ]:
        found = web.find(host)
        assert found is not None and found.id == app_id, host


def test_builtin_vendor_providers_exist_in_the_provider_registry() -> None:
    from oisp_sensor.decode.providers.registry import ProviderRegistry

    known = {p.id for p in ProviderRegistry.default()}
    for app in builtin_web_apps():
        assert app.providers <= known, app.id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[web_app]]\nid = "a"\nhosts = []\n', "hosts must not be empty"),
        ('[[web_app]]\nid = "a"\nhosts = ["a.com"]\npaths = ["chat"]\n', "paths must start with '/'"),
        ('[[web_app]]\nid = "a"\nhosts = ["a.com"]\nurl = "x"\n', "unknown key 'url'"),
        ('[[web_app]]\nid = "a"\nhosts = ["a.com"]\n[[web_app]]\nid = "a"\nhosts = ["b.com"]\n', "duplicate"),
    ],
)
def test_table_validation(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_web_apps(text)


def test_paths_and_globs(web: WebApps) -> None:
    def found(host: str, path: str | None) -> str | None:
        app = web.find(host, path)
        return app.id if app else None

    assert found("github.com", "/copilot") == "github-copilot-web"
    assert found("github.com", "/copilot/c/123") == "github-copilot-web"
    assert found("github.com", "/copilotx") is None
    assert found("github.com", "/") is None and found("github.com", None) is None
    assert found("huggingface.co", "/chat/conversation/1") == "huggingchat"
    assert found("x.com", "/i/grok") == "grok-on-x"
    assert found("sora.chatgpt.com", "/") == "chatgpt-web"
    assert found("eu-west-1.console.aws.amazon.com", "/bedrock/home") == "bedrock-console"
    assert found("eu-west-1.console.aws.amazon.com", "/ec2/home") is None
    assert found("CLAUDE.AI.", None) == "claude-web"


# ---- the context ---------------------------------------------------------------------------------


def test_seed_example(web: WebApps) -> None:
    assert web.context("https://chat.openai.com", "https://chat.openai.com/c/abc123", "openai") == {
        "origin": "https://chat.openai.com",
        "referer": "https://chat.openai.com/c/abc123",
        "web_app_id": "chatgpt-web",
        "web_app_name": "ChatGPT",
        "web_app_type": "direct",
    }


def test_referer_loses_query_and_fragment(web: WebApps) -> None:
    ctx = web.context(
        "https://chatgpt.com", "https://chatgpt.com/c/abc?model=gpt-4o&token=s3cr3t#x", "openai"
    )
    assert ctx is not None and ctx["referer"] == "https://chatgpt.com/c/abc"
    assert strip_url("https://a.b/c?d#e") == "https://a.b/c"


@pytest.mark.parametrize(
    ("origin", "referer", "provider", "fetch_site", "expected"),
    [
        ("https://claude.ai", None, "anthropic", "cross-site", ("claude-web", "direct")),
        # a multi-model app calling a lab's API
        ("https://poe.com", "https://poe.com/Claude-Sonnet", "anthropic", "cross-site", ("poe-web", "third_party")),
        ("https://lmarena.ai", None, "openai", None, ("lmarena", "third_party")),
        # a known app calling its own site (an AI-shaped path on a host no provider claims)
        ("https://chatgpt.com", None, "unknown", "same-origin", ("chatgpt-web", "direct")),
        # a site that is not an AI web app: AI embedded in it
        ("https://app.example.com", "https://app.example.com/tickets/42", "openai", "cross-site",
         ("unknown", "embedded")),
        ("http://localhost:3000", None, "openai", None, ("unknown", "embedded")),
    ],
)  # fmt: skip
def test_web_app_types(
    web: WebApps,
    origin: str,
    referer: str | None,
    provider: str,
    fetch_site: str | None,
    expected: tuple[str, str],
) -> None:
    ctx = web.context(origin, referer, provider, "api.example-provider.com", fetch_site)
    assert ctx is not None
    assert (ctx["web_app_id"], ctx["web_app_type"]) == expected
    assert ctx["origin"] == origin
    if fetch_site:
        assert ctx["fetch_site"] == fetch_site
    else:
        assert "fetch_site" not in ctx
    if expected[0] == "unknown":
        assert ctx["web_app_name"] == "Unknown"


def test_same_host_counts_as_own_site(web: WebApps) -> None:
    ctx = web.context("https://chat.mistral.ai", None, "unknown", "chat.mistral.ai")
    assert ctx is not None and ctx["web_app_type"] == "direct"


def test_referer_alone_gives_the_origin(web: WebApps) -> None:
    ctx = web.context(None, "https://gemini.google.com/app/abc?hl=en", "google")
    assert ctx == {
        "origin": "https://gemini.google.com",
        "referer": "https://gemini.google.com/app/abc",
        "web_app_id": "gemini-web",
        "web_app_name": "Gemini",
        "web_app_type": "direct",
    }


def test_null_origin_and_odd_values(web: WebApps) -> None:
    assert web.context(None, None, "openai") is None
    assert web.context("", "", "openai") is None
    ctx = web.context("null", None, "openai")  # sandboxed iframe, file:// page
    assert ctx is not None and (ctx["origin"], ctx["web_app_type"]) == ("null", "embedded")
    ctx = web.context("null", "https://claude.ai/chat/1", "anthropic")
    assert ctx is not None and (ctx["origin"], ctx["web_app_id"]) == ("https://claude.ai", "claude-web")
    ctx = web.context("not a url", None, "openai")
    assert ctx is not None and ctx["web_app_id"] == "unknown"
    ctx = web.context("https://[::1]:8443", None, "openai")
    assert ctx is not None and ctx["origin"] == "https://[::1]:8443"


# ---- per call ------------------------------------------------------------------------------------


def _request(
    origin: str | None = None, referer: str | None = None, host: str = "api.openai.com"
) -> dict[str, Any]:
    http: dict[str, Any] = {"method": "POST", "path": "/v1/chat/completions", "host": host}
    if origin:
        http["origin"] = origin
    if referer:
        http["referer"] = referer
    return {"provider": {"id": "openai", "name": "OpenAI"}, "http": http}


def test_call_contexts_follow_the_call(web: WebApps) -> None:
    calls = CallContexts(web)
    host, ctx = calls.lookup("ai.request", "R1", _request("https://chatgpt.com", "https://chatgpt.com/c/1"))
    assert host == "api.openai.com" and ctx is not None and ctx["web_app_id"] == "chatgpt-web"
    response = {"provider": {"id": "openai"}, "related_event_id": "R1"}
    assert calls.lookup("ai.response", "S1", response) == (host, ctx)
    assert calls.lookup("ai.streaming_chunk", "C1", response)[1] is ctx
    tool_call = {"provider": {"id": "openai"}, "related_event_id": "S1", "request_event_id": "R1"}
    assert calls.lookup("agent.tool_call", "T1", tool_call)[1] is ctx
    assert calls.lookup("ai.response", "S2", {"related_event_id": "nope"}) == (None, None)
    # a call that is not from a page: the host is still remembered (for app profiles)
    assert calls.lookup("ai.request", "R2", _request(host="localhost:11434")) == ("localhost", None)
    assert calls.lookup("ai.response", "S3", {"related_event_id": "R2"}) == ("localhost", None)


def test_call_contexts_are_bounded_and_cached(web: WebApps) -> None:
    calls = CallContexts(web, capacity=3)
    contexts = [calls.lookup("ai.request", f"R{i}", _request("https://claude.ai"))[1] for i in range(5)]
    assert all(c is contexts[0] for c in contexts)  # same headers: one context object
    assert calls.lookup("ai.response", "x", {"related_event_id": "R0"}) == (None, None)  # forgotten
    assert calls.lookup("ai.response", "x", {"related_event_id": "R4"})[1] is contexts[0]


# ---- the headers reach the request event ---------------------------------------------------------


def test_request_event_carries_origin_referer_and_fetch_site() -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    request = post(
        "api.openai.com",
        "/v1/chat/completions",
        body,
        (b"Authorization", b"Bearer sk-proj-abcdefghijklmnopqrstuvwxyz"),
        (b"Origin", b"https://chatgpt.com"),
        (b"Referer", b"https://chatgpt.com/c/abc?q=secret#frag"),
        (b"Sec-Fetch-Site", b"cross-site"),
    )
    events = events_of(exchange(request, json_response({"id": "x", "choices": []})))
    http = events[0].data["http"]
    assert http["origin"] == "https://chatgpt.com"
    assert http["referer"] == "https://chatgpt.com/c/abc"
    assert http["sec_fetch_site"] == "cross-site"
    plain = events_of(exchange(post("api.openai.com", "/v1/chat/completions", body), json_response({})))
    assert {"origin", "referer", "sec_fetch_site"}.isdisjoint(plain[0].data["http"])


# ---- the pipeline --------------------------------------------------------------------------------

FAKE_PID = 4_000_001  # above pid_max: /proc never answers for it


def _pipeline() -> tuple[Pipeline, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    pipeline = Pipeline(SensorConfig(), [], clock=Clock(0), on_event=seen.append)
    return pipeline, seen


def _event(event_type: str, event_id: str, data: dict[str, Any], pid: int = FAKE_PID) -> SensorEvent:
    return SensorEvent(event_type=event_type, event_id=event_id, ts_ns=1, data=data, pid=pid, comm="node")


def test_pipeline_puts_app_on_every_event_and_web_on_the_call() -> None:
    pipeline, seen = _pipeline()
    pipeline.processes.put(ProcessInfo(pid=FAKE_PID, ppid=0, name="claude", exe="/usr/bin/node",
                                       cmdline=["claude"], complete=True))  # fmt: skip
    request = _request("https://claude.ai", "https://claude.ai/chat/1?x=1", host="api.anthropic.com")
    request["provider"] = {"id": "anthropic", "name": "Anthropic"}
    pipeline.emit(_event("ai.request", "R1", request))
    pipeline.emit(_event("ai.response", "S1", {"provider": {"id": "anthropic"}, "related_event_id": "R1"}))
    pipeline.emit(_event("process.exit", "P1", {"pid": FAKE_PID}))
    req, resp, exit_event = seen
    claude = {
        "id": "claude-code",
        "name": "Claude Code",
        "tier": "profiled",
        "category": "agent",
        "via": "exe",
    }
    for event in seen:
        assert event["app"] == claude
    assert list(req)[:10] == ["oisp_version", "event_id", "event_type", "timestamp", "host", "actor",
                              "process", "app", "web", "source"]  # fmt: skip
    assert (
        req["web"]
        == resp["web"]
        == {
            "origin": "https://claude.ai",
            "referer": "https://claude.ai/chat/1",
            "web_app_id": "claude-web",
            "web_app_name": "Claude",
            "web_app_type": "direct",
        }
    )
    assert "web" not in exit_event


def test_pipeline_flags_calls_outside_the_profile_on_every_event_of_the_call() -> None:
    pipeline, seen = _pipeline()
    pipeline.processes.put(ProcessInfo(pid=FAKE_PID, ppid=0, name="claude", exe="/usr/bin/node",
                                       cmdline=["claude"], complete=True))  # fmt: skip
    pipeline.emit(_event("ai.request", "R1", _request(host="api.openai.com:443")))
    pipeline.emit(_event("ai.response", "S1", {"provider": {"id": "openai"}, "related_event_id": "R1"}))
    pipeline.emit(_event("process.exit", "P1", {"pid": FAKE_PID}))
    for event in seen[:2]:
        assert event["app"]["profile_violation"] is True
        assert event["app"]["unexpected"] == {"provider": "openai", "host": "api.openai.com"}
        assert "web" not in event
    assert "profile_violation" not in seen[2]["app"]


def test_pipeline_unknown_app_and_redacted_web() -> None:
    pipeline, seen = _pipeline()
    pipeline.processes.put(ProcessInfo(pid=FAKE_PID, ppid=0, name="curl", exe="/usr/bin/curl",
                                       cmdline=["curl"], complete=True))  # fmt: skip
    # personal data in a page path is redacted like any URL (safe mode)
    pipeline.emit(
        _event("ai.request", "R1", _request("https://chatgpt.com", "https://chatgpt.com/u/jane@example.com"))
    )
    event = seen[0]
    assert event["app"] == UNKNOWN_APP
    assert "jane@example.com" not in event["web"]["referer"]
    assert event["web"]["web_app_id"] == "chatgpt-web"


def test_per_event_cost_of_app_and_web_is_small() -> None:
    """The added work per event: an app lookup (+ a call lookup and profile check for AI
    events). Generous bound (CI machines vary); the report quotes the measured value."""
    pipeline, _ = _pipeline()
    info = ProcessInfo(
        pid=FAKE_PID, ppid=0, name="claude", exe="/usr/bin/node", cmdline=["claude"], complete=True
    )
    pipeline.processes.put(info)
    request = _request("https://claude.ai", "https://claude.ai/chat/1")
    response = {"provider": {"id": "anthropic"}, "related_event_id": "R0"}
    n = 20000
    start = time.perf_counter()
    for i in range(n):
        app = pipeline.apps.context(info)
        if i % 2:
            host, _ = pipeline.calls.lookup("ai.response", "S", response)
        else:
            host, _ = pipeline.calls.lookup("ai.request", f"R{i}", request)
        pipeline.apps.check_profile(app, "anthropic", host)
    per_event_us = (time.perf_counter() - start) / n * 1e6
    assert per_event_us < 20, per_event_us

"""The per-event caches of the decode -> envelope -> redaction path give the same answers
as computing every time (issue 4's throughput work): ids, auth, actors, URLs, headers."""

from __future__ import annotations

from typing import Any

from tests.unit.test_ai_events import CHAT_REQUEST, CHAT_RESPONSE, CONN, ids, request, response
from ulid import ULID

from oisp_sensor.decode.ai_events import AiEventBuilder
from oisp_sensor.decode.messages import ExchangeDone, RequestSeen
from oisp_sensor.decode.providers import ProviderRegistry
from oisp_sensor.enrich.process import ProcessCache, ProcessInfo
from oisp_sensor.redact import Redactor
from oisp_sensor.schema.envelope import Clock


def test_event_ids_stay_unique_and_time_ordered_across_batches() -> None:
    clock = Clock(offset_ns=1_700_000_000_000_000_000)
    made = [(n, clock.new_event_id(n * 250_000)) for n in range(3000)]  # ~12 batches, 4 per ms
    assert len({i for _, i in made}) == len(made)
    for n, text in made:
        assert len(text) == 26
        assert ULID.from_str(text).milliseconds == 1_700_000_000_000 + n // 4
    # sorting by id sorts by time (the random part only orders ids of one millisecond)
    assert [i for _, i in made] == sorted((i for _, i in made), key=lambda t: t[:10])


def _auth_of(builder: AiEventBuilder, header: str, host: str = "api.openai.com") -> Any:
    req = request(CHAT_REQUEST, auth=header, host=host)
    events = builder.process(RequestSeen(CONN, req, 1)) + builder.process(
        ExchangeDone(CONN, 1, req, response(CHAT_RESPONSE))
    )
    return events[0].data.get("auth")


def test_auth_is_remembered_per_credential_and_provider() -> None:
    builder = AiEventBuilder(ProviderRegistry.default(), ids)
    groq = "Bearer gsk_" + "a" * 52
    assert _auth_of(builder, groq) == {"type": "bearer", "key_prefix": "gsk_"}
    assert _auth_of(builder, "Bearer sometokenwithoutknownprefix") == {"type": "bearer", "key_prefix": "some"}
    assert _auth_of(builder, "Basic dXNlcjpwYXNzd29yZA==") == {"type": "basic"}
    assert _auth_of(builder, groq) == {"type": "bearer", "key_prefix": "gsk_"}  # from the cache
    assert _auth_of(builder, "Bearer ollama", host="localhost:11434") == {"type": "bearer"}


def test_first_header_of_a_name_wins() -> None:
    builder = AiEventBuilder(ProviderRegistry.default(), ids)
    req = request(CHAT_REQUEST, headers=[("user-agent", "second")])
    event = builder.process(RequestSeen(CONN, req, 1))[0]
    assert event.data["http"]["user_agent"] == "OpenAI/Python 1.54.0"


def test_actor_is_shared_per_process_and_follows_the_event_uid_when_proc_had_none() -> None:
    cache = ProcessCache()
    known = ProcessInfo(pid=10, uid=1000, gid=1000)
    first = cache.actor_context(known, 0)
    assert first is cache.actor_context(known, 5)  # /proc's uid wins, the dict is shared
    assert first["uid"] == 1000
    unknown = ProcessInfo(pid=11)  # gone before /proc could be read
    assert cache.actor_context(unknown, 0)["uid"] == 0
    assert cache.actor_context(unknown, 1000)["uid"] == 1000
    assert cache.actor_context(unknown, 1000) is cache.actor_context(unknown, 1000)


def _event(endpoint: str) -> dict[str, Any]:
    return {
        "event_type": "ai.request",
        "data": {
            "provider": {"id": "x", "endpoint": endpoint},
            "http": {"path": endpoint.partition("/v1")[1]},
        },
    }


def test_urls_remembered_clean_are_per_mode_and_never_hide_a_secret() -> None:
    redactor = Redactor()
    clean = "https://api.example.com/v1/chat"
    secret = "https://api.example.com/v1/chat?api_key=" + "Zx9" * 8
    for mode in ("safe", "minimal", "full", "safe"):
        assert redactor.apply(_event(clean), mode)["data"]["provider"]["endpoint"] == clean
        for _ in range(2):  # a redacted URL is never remembered as clean
            out = redactor.apply(_event(secret), mode)["data"]["provider"]["endpoint"]
            assert "Zx9" not in out and out.endswith("api_key=[REDACTED:secret]")

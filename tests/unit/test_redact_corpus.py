"""The redaction corpora, end to end through the exporters.

Leak corpus: every secret and personal-data sample (generated, see
tests/fixtures/redaction/corpus.py), embedded at a random position in a prompt, in tool
call arguments, in a URL and in headers, and split across two capture records in the
middle of the secret; in `safe` and `minimal` mode none of it may appear in any byte an
exporter writes.

False-positive corpus: ordinary prose, code, JSON, UUIDs, hashes and base64 images;
fewer than 1% of its tokens may be touched (BENCHMARKS.md records the measured rate,
from bench/bench_redaction.py).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from tests.fixtures.redaction.corpus import Sample, fp_documents, registry_prefixes, secret_samples
from tests.unit.helpers_decode import Conn, R, W, http_request, http_response

from oisp_sensor.config import JsonlExport
from oisp_sensor.decode.ai_events import AiEventBuilder
from oisp_sensor.decode.connection import ConnectionTracker
from oisp_sensor.decode.providers import ProviderRegistry
from oisp_sensor.export.jsonl import JsonlExporter
from oisp_sensor.redact import Redactor, Scanner
from oisp_sensor.redact.walker import _registry_prefixes
from oisp_sensor.schema.envelope import Clock, envelope

SAMPLES = secret_samples()
PROSE = (
    "Please review the deployment notes below and tell me what could go wrong. "
    "We moved the service to the new cluster on Tuesday; the rollout took 40 minutes. "
    "Here is the snippet the on-call engineer pasted into the incident channel, verbatim. "
)
MODES = ("safe", "minimal")


def _ids(prefix: str) -> list[str]:
    return [f"{prefix}{s.name}" for s in SAMPLES]


def _embed(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(PROSE) + 1)
    return f"{PROSE[:at]} {text} {PROSE[at:]}"


def _event(data: dict[str, Any], cmdline: list[str] | None = None) -> dict[str, Any]:
    return {
        "oisp_version": "0.1",
        "event_id": "01JCTESTTESTTESTTESTTESTTE",
        "event_type": "ai.request",
        "timestamp": "2026-11-22T10:00:00.000000Z",
        "host": {"hostname": "box"},
        "actor": {"uid": 1000, "username": "dev"},
        "process": {"pid": 42, "name": "agent", "cmdline": cmdline or ["python3", "agent.py"], "cwd": "/srv"},
        "data": data,
    }


def _in_prompt(sample: Sample, rng: random.Random) -> dict[str, Any]:
    return _event(
        {
            "provider": {
                "id": "openai",
                "name": "OpenAI",
                "endpoint": "https://api.openai.com/v1/chat/completions",
            },
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": _embed(rng, sample.text)},
            ],
        }
    )


def _in_tool_arguments(sample: Sample, rng: random.Random) -> dict[str, Any]:
    arguments = json.dumps({"query": _embed(rng, sample.text), "limit": 5})
    return _event(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "search", "arguments": arguments},
                            }
                        ],
                    },
                }
            ],
            # an agent.tool_call / tool_result shape too
            "arguments": {"command": _embed(rng, sample.text)},
            "result": _embed(rng, sample.text),
        }
    )


def _in_url(sample: Sample, rng: random.Random) -> dict[str, Any]:
    value = sample.text
    where = rng.choice(("query", "query_encoded", "path"))
    if where == "query":
        url = f"https://api.example.com/v1/search?page=2&q={value}&lang=en"
    elif where == "query_encoded":
        url = f"https://api.example.com/v1/search?q={quote(value, safe='')}"
    else:
        url = f"https://api.example.com/v1/items/{value}/detail"
    return _event({"url": url, "http": {"method": "GET", "path": url.partition(".com")[2]}, "web": {}})


def _in_headers(sample: Sample, rng: random.Random) -> dict[str, Any]:
    headers = {"Accept": "application/json", "X-Debug-Note": _embed(rng, sample.text)}
    cmdline = ["curl", "-sS", "-H", f"X-Note: {sample.text}", "https://api.example.com/v1/x"]
    return _event({"http": {"method": "POST", "headers": headers}}, cmdline=cmdline)


PLACES: dict[str, Callable[[Sample, random.Random], dict[str, Any]]] = {
    "prompt": _in_prompt,
    "tool_arguments": _in_tool_arguments,
    "url": _in_url,
    "header": _in_headers,
}


def _exported_bytes(events: list[dict[str, Any]], tmp_path: Path) -> dict[str, bytes]:
    """The bytes each exporter present would send: the JSONL file, and the compact JSON
    that the network exporters (WebSocket, webhook, Kafka) put on the wire."""
    path = tmp_path / "events.jsonl"
    exporter = JsonlExporter(JsonlExport(path=str(path)))
    exporter.start()
    for event in events:
        exporter.submit(event)
    assert exporter.flush(10)
    exporter.close(10)
    return {"jsonl": path.read_bytes(), "json": b"\n".join(orjson.dumps(e) for e in events)}


def _leaks(blob: bytes, samples: list[Sample]) -> list[str]:
    text = blob.decode("utf-8")
    found = []
    for sample in samples:
        for fragment in sample.fragments():
            if fragment in text or fragment.replace("/", "\\/") in text:
                found.append(f"{sample.name}: {fragment[:40]!r}")
    return found


def test_the_corpus_is_large_and_covers_every_kind() -> None:
    assert len(SAMPLES) >= 60
    kinds = {s.kinds[0] for s in SAMPLES}
    for kind in ("api_key", "aws_access_key", "aws_secret_key", "github_token", "slack_token", "jwt",
                 "bearer_token", "basic_auth", "private_key", "url_password", "email", "phone",
                 "credit_card", "ssn"):  # fmt: skip
        assert kind in kinds, kind
    # every provider key prefix of the registry has a sample
    texts = [s.secret for s in SAMPLES]
    for prefix in registry_prefixes():
        assert any(t.startswith(prefix) for t in texts), prefix


@pytest.mark.parametrize("place", list(PLACES))
def test_no_sample_is_exported(place: str, tmp_path: Path) -> None:
    rng = random.Random(f"{place}-2026")
    samples = [s for s in SAMPLES if place in s.places or place in ("prompt", "tool_arguments")]
    events = [PLACES[place](s, rng) for s in samples]
    redactor = Redactor()
    for mode in MODES:
        redacted = [redactor.apply(e, mode) for e in events]
        for name, blob in _exported_bytes(redacted, tmp_path / mode).items():
            assert _leaks(blob, samples) == [], f"{mode}/{name}"
    # the full-mode control: the corpus really is in the events
    assert len(_leaks(orjson.dumps(events), samples)) >= len(samples)


def test_each_sample_is_reported(tmp_path: Path) -> None:
    redactor = Redactor()
    rng = random.Random(7)
    for sample in SAMPLES:
        out = redactor.apply(_in_prompt(sample, rng), "safe")
        redaction = out["data"]["redaction"]
        assert out["data"]["messages_redacted"] is True
        assert redaction["redaction_count"] >= 1
        assert set(redaction["patterns_found"]) & set(sample.kinds), (
            sample.name,
            redaction["patterns_found"],
        )


# ---- split across two capture records ------------------------------------------------------


def _decoded_events(request: bytes, response: bytes, cut: int) -> list[dict[str, Any]]:
    """Feed request bytes cut in two at `cut`, then a response, through the decoder."""
    tracker = ConnectionTracker()
    builder = AiEventBuilder(ProviderRegistry.default(), lambda ts: f"ID{ts}")
    conn = Conn(pid=4242, conn_id=0x77)
    records = [conn.data(W, request[:cut]), conn.data(W, request[cut:]), conn.data(R, response), conn.close()]
    clock = Clock(offset_ns=1_700_000_000_000_000_000)
    out: list[dict[str, Any]] = []
    for record in records:
        for item in tracker.feed(record):
            for event in builder.process(item):
                out.append(
                    envelope(event, clock, host={}, actor={}, process={"pid": 4242, "cmdline": ["agent"]})
                )
    for item in tracker.flush(10**15):
        for event in builder.process(item):
            out.append(envelope(event, clock, host={}, actor={}, process={"pid": 4242, "cmdline": ["agent"]}))
    return out


def _sse(*deltas: str) -> bytes:
    chunks = [
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": None}],
        }
        for d in deltas
    ]
    chunks[-1]["choices"][0]["finish_reason"] = "stop"
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    return http_response(200, [(b"Content-Type", b"text/event-stream")], body)


def test_secret_split_across_two_capture_records(tmp_path: Path) -> None:
    redactor = Redactor()
    exported: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    rng = random.Random(11)
    api_key = next(s.secret for s in SAMPLES if s.name == "openai_project")
    for sample in SAMPLES:
        prompt = _embed(rng, sample.text)
        body = orjson.dumps(
            {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": prompt}]}
        )
        request = http_request(
            b"POST",
            b"/v1/chat/completions",
            [
                (b"Host", b"api.openai.com"),
                (b"Authorization", f"Bearer {api_key}".encode()),
                (b"Content-Type", b"application/json"),
            ],
            body,
        )
        # the secret as it sits in the JSON body (escaped newlines, quotes...)
        secret_json = orjson.dumps(sample.secret).decode()[1:-1].encode()
        start = request.index(secret_json)
        cut = start + len(secret_json) // 2
        # the model echoes the secret, split between two stream chunks as well
        half = len(sample.text) // 2
        response = _sse("You wrote: ", sample.text[:half], sample.text[half:], " - noted.")
        events = _decoded_events(request, response, cut)
        types = [e["event_type"] for e in events]
        assert types[0] == "ai.request" and types[-1] == "ai.response", (sample.name, types)
        # the decoder reassembled both: the secret is whole in the raw events
        assert sample.secret in events[0]["data"]["messages"][0]["content"]
        assert sample.text in events[-1]["data"]["choices"][0]["message"]["content"]
        chunks = [e for e in events if e["event_type"] == "ai.streaming_chunk"]
        assert "".join(e["data"]["delta"] for e in chunks) == f"You wrote: {sample.text} - noted."
        for mode in MODES:
            redacted = [redactor.apply(e, mode) for e in events]
            exported[mode].extend(redacted)
            if mode == "safe":  # the chunks' deltas, held back and released, read as the answer
                released = "".join(
                    e["data"]["delta"] for e in redacted if e["event_type"] == "ai.streaming_chunk"
                )
                assert released.startswith("You wrote: ") and released.endswith(" - noted."), released
                assert "[REDACTED:" in released, released
    # neither half of a credential may leak either (an e-mail's domain half may: it is no secret)
    halves = [
        h
        for s in SAMPLES
        if s.kinds[0] != "email"
        for h in (s.secret[: len(s.secret) // 2], s.secret[len(s.secret) // 2 :])
        if len(h) >= 8
    ]
    for mode in MODES:
        for name, blob in _exported_bytes(exported[mode], tmp_path / mode).items():
            assert _leaks(blob, SAMPLES) == [], f"{mode}/{name}"
            assert api_key.encode() not in blob and api_key[8:30].encode() not in blob
            text = blob.decode()
            assert [h for h in halves if h in text or h.replace("/", "\\/") in text] == [], f"{mode}/{name}"
    request_event = exported["safe"][0]
    assert request_event["data"]["auth"] == {"type": "bearer", "key_prefix": "sk-proj-"}


# ---- false positives -----------------------------------------------------------------------


def _wrong_token_rate(doc: str, scanner: Scanner) -> tuple[int, int, list[str]]:
    covered = bytearray(len(doc))
    for start, end, _kind in scanner.find(doc):
        covered[start:end] = b"\x01" * (end - start)
    tokens = wrong = 0
    examples: list[str] = []
    pos = 0
    for token in doc.split():
        start = doc.index(token, pos)
        pos = start + len(token)
        tokens += 1
        if any(covered[start:pos]):
            wrong += 1
            examples.append(token)
    return tokens, wrong, examples


def test_false_positive_rate_is_under_one_percent() -> None:
    scanner = Scanner(key_prefixes=_registry_prefixes(None))
    total = wrong_total = 0
    docs = fp_documents()
    assert {"prose", "code", "json", "uuids", "git_hashes", "sha256", "base64_images"} <= set(docs)
    for name, doc in docs.items():
        tokens, wrong, examples = _wrong_token_rate(doc, scanner)
        assert wrong / tokens < 0.01, (name, examples[:5])
        total += tokens
        wrong_total += wrong
    assert total > 5000
    assert wrong_total / total < 0.01


def test_false_positive_corpus_survives_safe_mode_unchanged() -> None:
    redactor = Redactor()
    for name, doc in fp_documents().items():
        event = {"data": {"messages": [{"role": "user", "content": doc}]}}
        out = redactor.apply(event, "safe")
        assert out["data"]["messages"][0]["content"] == doc, name

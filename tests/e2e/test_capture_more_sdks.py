"""The real Python SDKs of Google (google-genai), Mistral, Cohere and Ollama, captured end to end.

Each SDK runs in its own process against the fake provider, reached by the provider's real
hostname over TLS (Ollama through its cloud host, ollama.com, which serves the native API):
a plain chat call, a streamed one, a tool-call round trip and an embedding call. The sensor
must report each call with the provider, model, content and token counts the SDK itself saw,
the stream as chunks that add up to the text, the embedding, the tool call and its result,
and the process as an agent session whose totals are those of its calls.
"""

from __future__ import annotations

import json
import secrets
import string
import sys
from typing import Any

import pytest
from tests.support.fake_provider import EMBEDDING_DIM, words
from tests.support.fixtures import FakeProviderHandle
from tests.support.sensor import RunningSensor

pytestmark = pytest.mark.kernel

_ALNUM = string.ascii_letters + string.digits
MISTRAL_KEY = "".join(secrets.choice(_ALNUM) for _ in range(32))
COHERE_KEY = "".join(secrets.choice(_ALNUM) for _ in range(40))
OLLAMA_KEY = secrets.token_hex(16) + "." + "".join(secrets.choice(_ALNUM) for _ in range(24))

# Every script prints one JSON line: what the SDK itself returned, to compare with the events.
GENAI_PY = r"""
import json, os
from google import genai
from google.genai import types
client = genai.Client(api_key=os.environ["GEMINI_API_KEY"])
plain = client.models.generate_content(model="gemini-2.5-flash", contents="genai plain call")
stream = "".join(c.text or "" for c in client.models.generate_content_stream(
    model="gemini-2.5-flash", contents="genai stream call"))
weather = types.FunctionDeclaration(name="get_weather", description="Weather for a city.",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}))
config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[weather])],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
contents = [types.Content(role="user", parts=[types.Part(text="genai tools")])]
first = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
call = first.function_calls[0]
contents += [first.candidates[0].content, types.Content(role="user", parts=[
    types.Part.from_function_response(name=call.name, response={"result": "sunny"})])]
second = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
emb = client.models.embed_content(model="gemini-embedding-001", contents=["genai embed one", "two"])
u = plain.usage_metadata
print(json.dumps({"pid": os.getpid(), "text": plain.text, "usage": [u.prompt_token_count, u.candidates_token_count],
                  "stream": stream, "tool": call.name, "after_tool": second.text,
                  "dims": [len(e.values) for e in emb.embeddings]}))
"""

MISTRAL_PY = r"""
import json, os
from mistralai.client import Mistral
client = Mistral(api_key=os.environ["MISTRAL_API_KEY"])
model = "mistral-small-latest"
plain = client.chat.complete(model=model, messages=[{"role": "user", "content": "mistral plain call"}])
stream = "".join(e.data.choices[0].delta.content or "" for e in client.chat.stream(
    model=model, messages=[{"role": "user", "content": "mistral stream call"}]))
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
msgs = [{"role": "user", "content": "mistral tools"}]
first = client.chat.complete(model=model, messages=msgs, tools=tools)
call = first.choices[0].message.tool_calls[0]
msgs += [first.choices[0].message.model_dump(exclude_none=True),
         {"role": "tool", "tool_call_id": call.id, "name": call.function.name, "content": "sunny"}]
second = client.chat.complete(model=model, messages=msgs, tools=tools)
emb = client.embeddings.create(model="mistral-embed", inputs=["mistral embed one", "two"])
print(json.dumps({"pid": os.getpid(), "text": plain.choices[0].message.content,
                  "usage": [plain.usage.prompt_tokens, plain.usage.completion_tokens], "stream": stream,
                  "tool": call.function.name, "call_id": call.id, "after_tool": second.choices[0].message.content,
                  "dims": [len(d.embedding) for d in emb.data]}))
"""

COHERE_PY = r"""
import json, os
import cohere
client = cohere.ClientV2(api_key=os.environ["CO_API_KEY"])
model = "command-a-03-2025"
plain = client.chat(model=model, messages=[{"role": "user", "content": "cohere plain call"}])
stream = "".join(e.delta.message.content.text for e in client.chat_stream(
    model=model, messages=[{"role": "user", "content": "cohere stream call"}]) if e.type == "content-delta")
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
msgs = [{"role": "user", "content": "cohere tools"}]
first = client.chat(model=model, messages=msgs, tools=tools)
call = first.message.tool_calls[0]
msgs += [{"role": "assistant", "tool_plan": first.message.tool_plan,
          "tool_calls": [call.model_dump(exclude_none=True)]},
         {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
second = client.chat(model=model, messages=msgs, tools=tools)
emb = client.embed(model="embed-v4.0", texts=["cohere embed one", "two"], input_type="search_document",
                   embedding_types=["float"])
t = plain.usage.tokens
print(json.dumps({"pid": os.getpid(), "text": plain.message.content[0].text,
                  "usage": [int(t.input_tokens), int(t.output_tokens)], "stream": stream,
                  "tool": call.function.name, "call_id": call.id, "after_tool": second.message.content[0].text,
                  "dims": [len(v) for v in emb.embeddings.float_]}))
"""

OLLAMA_PY = r"""
import json, os
import ollama
client = ollama.Client(host="https://ollama.com", headers={"Authorization": "Bearer " + os.environ["OLLAMA_API_KEY"]})
model = "llama3.2"
plain = client.chat(model=model, messages=[{"role": "user", "content": "ollama plain call"}])
stream = "".join(p.message.content for p in client.chat(
    model=model, messages=[{"role": "user", "content": "ollama stream call"}], stream=True))
generated = "".join(p.response for p in client.generate(model=model, prompt="ollama generate call", stream=True))
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
msgs = [{"role": "user", "content": "ollama tools"}]
first = client.chat(model=model, messages=msgs, tools=tools)
call = first.message.tool_calls[0]
msgs += [first.message, {"role": "tool", "content": "sunny", "tool_name": call.function.name}]
second = client.chat(model=model, messages=msgs, tools=tools)
emb = client.embed(model="nomic-embed-text", input=["ollama embed one", "two"])
print(json.dumps({"pid": os.getpid(), "text": plain.message.content,
                  "usage": [plain.prompt_eval_count, plain.eval_count], "stream": stream, "generated": generated,
                  "tool": call.function.name, "after_tool": second.message.content,
                  "dims": [len(v) for v in emb.embeddings]}))
"""

SCRIPTS = {"google": GENAI_PY, "mistral": MISTRAL_PY, "cohere": COHERE_PY, "ollama": OLLAMA_PY}
EMBED_MODELS = {"google": "gemini-embedding-001", "mistral": "mistral-embed", "cohere": "embed-v4.0",
                "ollama": "nomic-embed-text"}  # fmt: skip
CHAT_MODELS = {"google": "gemini-2.5-flash", "mistral": "mistral-small-latest", "cohere": "command-a-03-2025",
               "ollama": "llama3.2"}  # fmt: skip


def _of(events: list[dict[str, Any]], pid: int, event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["process"]["pid"] == pid and e["event_type"] == event_type]


@pytest.fixture(scope="module")
def recording(fake_provider: FakeProviderHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("more_sdks") / "events.jsonl"
    env = {"MISTRAL_API_KEY": MISTRAL_KEY, "CO_API_KEY": COHERE_KEY, "OLLAMA_API_KEY": OLLAMA_KEY}
    results: dict[str, Any] = {}
    with RunningSensor(out) as sensor:
        for provider, script in SCRIPTS.items():
            res = fake_provider.run([sys.executable, "-c", script], env=env, timeout=120)
            assert res.returncode == 0, f"{provider}: {res.stderr[-3000:]}"
            results[provider] = json.loads(res.stdout.strip().splitlines()[-1])
    results["events"] = sensor.events()
    results["raw"] = out.read_text()
    return results


PROVIDERS = list(SCRIPTS)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plain_call(recording: dict[str, Any], provider: str) -> None:
    sdk = recording[provider]
    pid = sdk["pid"]
    requests = _of(recording["events"], pid, "ai.request")
    assert {r["data"]["provider"]["id"] for r in requests} == {provider}
    (plain,) = [r for r in _of(recording["events"], pid, "ai.response") if r["data"].get("choices")
                and r["data"]["choices"][0]["message"].get("content") == sdk["text"]]  # fmt: skip
    data = plain["data"]
    assert data["model"]["id"].endswith(CHAT_MODELS[provider])
    assert data["streaming"] is False and data["success"] is True
    assert [data["usage"]["prompt_tokens"], data["usage"]["completion_tokens"]] == sdk["usage"]
    request = next(r for r in requests if r["event_id"] == data["related_event_id"])
    assert request["data"]["model"]["id"] == CHAT_MODELS[provider]
    assert (
        request["data"]["messages"][-1]["content"]
        == f"{provider if provider != 'google' else 'genai'} plain call"
    )
    cost = data.get("cost", {}).get("usd", 0)
    if provider == "ollama":
        assert cost == 0  # a model server's tokens have no list price
    else:
        assert cost > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streamed_call(recording: dict[str, Any], provider: str) -> None:
    sdk, events = recording[provider], recording["events"]
    pid = sdk["pid"]
    streamed = [r for r in _of(events, pid, "ai.response") if r["data"]["streaming"]
                and r["data"]["choices"][0]["message"].get("content") == sdk["stream"]]  # fmt: skip
    assert len(streamed) == 1, [r["data"].get("choices") for r in _of(events, pid, "ai.response")]
    response = streamed[0]["data"]
    chunks = [c for c in _of(events, pid, "ai.streaming_chunk")
              if c["data"]["related_event_id"] == response["related_event_id"]]  # fmt: skip
    assert len(chunks) >= words(sdk["stream"])
    assert "".join(c["data"]["delta"] for c in chunks if c["data"]["delta_type"] == "text") == sdk["stream"]
    assert [c["data"]["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert response["usage"]["completion_tokens"] == words(sdk["stream"])
    assert "time_to_first_token_ms" in response


@pytest.mark.parametrize("provider", PROVIDERS)
def test_embedding_call(recording: dict[str, Any], provider: str) -> None:
    sdk = recording[provider]
    assert sdk["dims"] == [EMBEDDING_DIM, EMBEDDING_DIM]
    (embedding,) = _of(recording["events"], sdk["pid"], "ai.embedding")
    data = embedding["data"]
    assert data["provider"]["id"] == provider
    assert data["model"]["id"].endswith(EMBED_MODELS[provider])
    assert data["input_count"] == 2
    assert data["success"] is True
    if provider != "google":  # Gemini's embedding answers carry no token count
        assert data["dimensions"] == EMBEDDING_DIM
        assert data["tokens"] == words(f"{provider} embed one two")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_round_trip_and_agent_session(recording: dict[str, Any], provider: str) -> None:
    sdk, events = recording[provider], recording["events"]
    pid = sdk["pid"]
    assert sdk["tool"] == "get_weather" and sdk["after_tool"].startswith("Tool result received:")
    (call,) = _of(events, pid, "agent.tool_call")
    (result,) = _of(events, pid, "agent.tool_result")
    assert call["data"]["tool"]["name"] == "get_weather"
    assert call["data"]["arguments"] == {"city": "example"}
    if "call_id" in sdk:
        assert call["data"]["call_id"] == result["data"]["call_id"] == sdk["call_id"]
    assert result["data"]["related_event_id"] == call["event_id"]
    assert result["data"]["success"] is True and result["data"]["duration_ms"] >= 0

    start, end = _of(events, pid, "agent.session")
    assert start["data"]["action"] == "start" and start["data"]["trigger"] == "tools_offered"
    assert end["data"]["action"] == "end" and end["data"]["end_reason"] == "process_exit"
    assert end["data"]["session_id"] == start["data"]["session_id"]
    responses = _of(events, pid, "ai.response")
    assert end["data"]["ai_requests"] == len(_of(events, pid, "ai.request"))
    assert end["data"]["tool_calls"] == 1 and end["data"]["tools_used"] == {"get_weather": 1}
    assert end["data"]["usage"]["total_tokens"] == sum(
        r["data"]["usage"]["total_tokens"] for r in responses if "usage" in r["data"]
    )
    steps = _of(events, pid, "agent.plan_step")
    assert [s["data"]["step"] for s in steps] == list(range(1, end["data"]["turns"] + 1))
    asked = [s for s in steps if s["data"]["action"] == "tool_calls"]
    assert len(asked) == 1 and asked[0]["data"]["tools_requested"][0]["name"] == "get_weather"
    answered = next(s for s in steps if s["data"]["tool_results_in"] == 1)
    assert answered["data"]["action"] == "answer" and answered["data"]["step"] == asked[0]["data"]["step"] + 1


def test_ollama_generate_stream(recording: dict[str, Any]) -> None:
    sdk = recording["ollama"]
    (generated,) = [r for r in _of(recording["events"], sdk["pid"], "ai.response")
                    if r["data"].get("choices", [{}])[0].get("message", {}).get("content") == sdk["generated"]]  # fmt: skip
    assert generated["data"]["streaming"] is True
    assert generated["data"]["usage"]["completion_tokens"] == words(sdk["generated"])


def test_no_api_key_in_the_output(recording: dict[str, Any], fake_provider: FakeProviderHandle) -> None:
    raw = recording["raw"]
    for key in (MISTRAL_KEY, COHERE_KEY, OLLAMA_KEY, fake_provider.gemini_api_key):
        assert key not in raw

"""The plain-HTTP fake Ollama (``fake_ollama_plain``) answers the real ollama SDK like ``ollama serve``.

It is what the end-to-end tests of plain-HTTP (socket) capture talk to; here only the fake
itself is checked, without the sensor.
"""

from __future__ import annotations

import ast
import json
import sys

from tests.support.fake_provider import EMBEDDING_DIM, words
from tests.support.fixtures import OLLAMA_PORT, FakeProviderHandle

CLIENT_PY = r"""
import json, sys
import ollama
client = ollama.Client(host=sys.argv[1])
chat = client.chat(model="llama3.2", messages=[{"role": "user", "content": "plain chat"}])
parts = [p.message.content for p in client.chat(model="llama3.2", messages=[{"role": "user", "content": "plain stream"}],
                                                stream=True)]
generated = client.generate(model="llama3.2", prompt="plain generate")
emb = client.embed(model="nomic-embed-text", input=["one", "two words"])
print(json.dumps({"chat": chat.message.content, "counts": [chat.prompt_eval_count, chat.eval_count],
                  "done_reason": chat.done_reason, "parts": parts, "generated": generated.response,
                  "dims": [len(v) for v in emb.embeddings]}))
"""


def test_plain_fake_ollama_answers_the_sdk(fake_ollama_plain: FakeProviderHandle) -> None:
    assert fake_ollama_plain.port == OLLAMA_PORT
    url = f"http://127.0.0.1:{OLLAMA_PORT}"
    res = fake_ollama_plain.run([sys.executable, "-c", CLIENT_PY, url], timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["chat"] == "Hello! You said: plain chat"
    assert out["counts"] == [words("plain chat") + 1, words(out["chat"])]
    assert out["done_reason"] == "stop"
    assert out["parts"][:-1] == ["Hello!", " You", " said:", " plain", " stream"] and out["parts"][-1] == ""
    assert out["generated"] == "Hello! You said: plain generate"
    assert out["dims"] == [EMBEDDING_DIM, EMBEDDING_DIM]


def test_plain_fake_ollama_speaks_no_tls(fake_ollama_plain: FakeProviderHandle) -> None:
    """Raw bytes on the socket are HTTP/1.1 (what socket capture will see), not a TLS handshake."""
    probe = (
        f"import socket; s = socket.create_connection(('127.0.0.1', {OLLAMA_PORT}));"
        "s.sendall(b'GET /api/version HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n');"
        "print(repr(b''.join(iter(lambda: s.recv(65536), b''))))"
    )
    res = fake_ollama_plain.run([sys.executable, "-c", probe], timeout=30)
    assert res.returncode == 0, res.stderr
    raw: bytes = ast.literal_eval(res.stdout.strip())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["version"]

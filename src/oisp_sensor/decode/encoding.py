"""Incremental Content-Encoding decoders (gzip, deflate, br, zstd, identity, and stacks).

Bodies arrive piece by piece, and streaming responses (SSE) must be readable while the
stream is open, so decoding is incremental: every wire chunk goes in, whatever plain
bytes are available come out. Decoding never raises: a corrupt or unsupported coding
sets :attr:`ContentDecoder.problem` (``"decode-error:<coding>"``) and the caller keeps
the raw bytes instead. A sensor must not lose an event because a body was odd.

Memory stays bounded on hostile bodies: one call never inflates past ``max_output``
bytes (a few KiB of gzip or zstd can stand for gigabytes); a body that would is a
decompression bomb, reported as ``"decode-error:<coding>:inflation-limit"``. zstd frames
may not ask for a window past 8 MiB (RFC 9659), so a frame header cannot make the
decoder allocate more either.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Protocol

import brotli
import zstandard

_IDENTITY = frozenset({"", "identity"})
MAX_INFLATE = 16 << 20  # plain bytes one call may produce (a capture record is at most 1 MiB)
_ZSTD_MAX_WINDOW = 8 << 20  # RFC 9659: HTTP zstd decoders need not support larger windows
_ZSTD_RATIO_SHIFT = 15  # a 4-byte RLE block stands for 128 KiB: at most 2**15 out per byte in


class _Step(Protocol):
    """One layer of a coding stack; raises on corrupt input (the decoder catches it)."""

    def feed(self, data: bytes, budget: int) -> bytes: ...

    def finish(self) -> bytes: ...


class _IncompleteStream(Exception):
    """The compressed stream ended before its end marker."""


class _TooLarge(Exception):
    """One call would inflate past its budget: a decompression bomb."""


class _GzipStep:
    """gzip (RFC 1952), including several concatenated members.

    After a member ends, the next bytes must start another member (magic ``1f 8b``);
    anything else is trailing junk and is ignored, as browsers do.
    """

    __slots__ = ("_junk", "_obj", "_tail")

    def __init__(self) -> None:
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._tail = b""  # one byte after a member end: maybe the start of the next magic
        self._junk = False

    def feed(self, data: bytes, budget: int) -> bytes:
        if self._junk:
            return b""
        if self._tail:
            data = self._tail + data
            self._tail = b""
        out = b""
        while data:
            if self._obj.eof:
                if len(data) < 2 and data == b"\x1f":
                    self._tail = data
                    return out
                if not data.startswith(b"\x1f\x8b"):
                    self._junk = True
                    return out
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            room = budget - len(out)
            chunk = self._obj.decompress(data, room + 1)  # one byte more tells "too much"
            if len(chunk) > room:
                raise _TooLarge
            out += chunk
            data = self._obj.unused_data if self._obj.eof else b""
        return out

    def finish(self) -> bytes:
        out = self._obj.flush()
        if not self._obj.eof:
            raise _IncompleteStream
        return out


def _looks_like_zlib(head: bytes) -> bool:
    """True when two bytes form a valid zlib (RFC 1950) header: CM=8, CINFO<=7, FCHECK ok."""
    cmf, flg = head[0], head[1]
    return (cmf & 0x0F) == 8 and (cmf >> 4) <= 7 and ((cmf << 8) | flg) % 31 == 0


class _DeflateStep:
    """``deflate``: officially zlib-wrapped (RFC 1950), but some servers send raw deflate.

    The first two bytes decide which one it is, so they are held back until both arrived.
    """

    __slots__ = ("_head", "_obj")

    def __init__(self) -> None:
        self._obj: zlib._Decompress | None = None
        self._head = b""

    def feed(self, data: bytes, budget: int) -> bytes:
        if self._obj is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return b""
            self._head = b""
            wbits = zlib.MAX_WBITS if _looks_like_zlib(data) else -zlib.MAX_WBITS
            self._obj = zlib.decompressobj(wbits)
        out = self._obj.decompress(data, budget + 1)
        if len(out) > budget:
            raise _TooLarge
        return out

    def finish(self) -> bytes:
        if self._obj is None:
            if self._head:
                raise _IncompleteStream
            return b""
        out = self._obj.flush()
        if not self._obj.eof:
            raise _IncompleteStream
        return out


class _BrotliStep:
    """``br`` (RFC 7932) with the ``brotli`` package."""

    __slots__ = ("_obj",)

    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes, budget: int) -> bytes:
        obj = self._obj
        out = obj.process(data, output_buffer_limit=budget + 1)
        # output held back past the limit comes with more (empty) calls
        while len(out) <= budget and not obj.can_accept_more_data():
            more = obj.process(b"", output_buffer_limit=budget + 1 - len(out))
            if not more:
                break
            out += more
        if len(out) > budget:
            raise _TooLarge
        return out

    def finish(self) -> bytes:
        if not self._obj.is_finished():
            raise _IncompleteStream
        return b""


class _ZstdStep:
    """``zstd`` (RFC 8878) with the ``zstandard`` package, across several frames.

    Frames are decoded one object each (not ``read_across_frames``) so that the end of
    the last frame is observable and a cut stream can be told from a complete one.
    """

    __slots__ = ("_obj", "_seen")

    def __init__(self) -> None:
        self._obj = self._new()
        self._seen = False

    @staticmethod
    def _new() -> zstandard.ZstdDecompressionObj:
        return zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW).decompressobj()

    def feed(self, data: bytes, budget: int) -> bytes:
        # zstd cannot stop at an output size: input goes in pieces small enough that one
        # piece cannot inflate much past what is left of the budget
        parts: list[bytes] = []
        room = budget
        while data:
            self._seen = True
            if self._obj.eof:
                self._obj = self._new()
            size = max(64, room >> _ZSTD_RATIO_SHIFT)
            piece, data = data[:size], data[size:]
            chunk = self._obj.decompress(piece)
            room -= len(chunk)
            if room < 0:
                raise _TooLarge
            parts.append(chunk)
            if self._obj.eof:
                data = self._obj.unused_data + data
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def finish(self) -> bytes:
        if self._seen and not self._obj.eof:
            raise _IncompleteStream
        return b""


_STEPS: dict[str, type[_GzipStep] | type[_DeflateStep] | type[_BrotliStep] | type[_ZstdStep]] = {
    "gzip": _GzipStep,
    "x-gzip": _GzipStep,
    "deflate": _DeflateStep,
    "br": _BrotliStep,
    "zstd": _ZstdStep,
}


def parse_codings(header_value: str | None) -> list[str]:
    """Content-Encoding value -> codings in the order they were applied, identity removed."""
    if not header_value:
        return []
    codings = [part.strip().lower() for part in header_value.split(",")]
    return [c for c in codings if c not in _IDENTITY]


class ContentDecoder:
    """Undoes a stack of content codings incrementally; never raises.

    ``Content-Encoding: gzip, br`` means gzip was applied first, so bytes go through
    the br decoder first, then gzip. After the first error every later call returns
    ``b""`` and :attr:`problem` names the coding that failed.
    """

    __slots__ = ("_max", "_names", "_steps", "problem")

    def __init__(self, codings: Sequence[str], max_output: int = MAX_INFLATE) -> None:
        self.problem: str | None = None
        self._max = max_output
        self._names: list[str] = []
        self._steps: list[_Step] = []
        for name in reversed(codings):
            step_type = _STEPS.get(name)
            if step_type is None:
                self.problem = f"decode-error:{name}"
                self._steps = []
                return
            self._names.append(name)
            self._steps.append(step_type())

    @property
    def failed(self) -> bool:
        return self.problem is not None

    def feed(self, data: bytes) -> bytes:
        """Decode one more wire chunk; return the plain bytes available so far."""
        if self.problem is not None:
            return b""
        for index, step in enumerate(self._steps):
            try:
                data = step.feed(data, self._max)
            except _TooLarge:
                return self._fail(index, ":inflation-limit")
            except Exception:
                return self._fail(index)
            if not data:
                return b""
        return data

    def finish(self) -> bytes:
        """End of the body: flush every layer; an unterminated stream is a problem."""
        if self.problem is not None:
            return b""
        out = b""
        for index, step in enumerate(self._steps):
            try:
                if out:
                    out = step.feed(out, self._max)
                out += step.finish()
            except _TooLarge:
                return self._fail(index, ":inflation-limit")
            except Exception:
                return self._fail(index)
        return out

    def _fail(self, index: int, why: str = "") -> bytes:
        self.problem = f"decode-error:{self._names[index]}{why}"
        return b""


def make_decoder(content_encoding: str | None) -> ContentDecoder | None:
    """A decoder for a Content-Encoding header value, or None when nothing is to be undone."""
    codings = parse_codings(content_encoding)
    if not codings:
        return None
    return ContentDecoder(codings)


def decode_body(data: bytes, content_encoding: str | None) -> tuple[bytes, str | None]:
    """Decode a whole body at once: (plain bytes, problem). On a problem the raw bytes come back."""
    decoder = make_decoder(content_encoding)
    if decoder is None:
        return data, None
    out = decoder.feed(data) + decoder.finish()
    if decoder.problem is not None:
        return data, decoder.problem
    return out, None

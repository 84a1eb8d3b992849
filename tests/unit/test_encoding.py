"""Content-Encoding decoders: every coding whole and byte by byte, stacks, and failures."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from oisp_sensor.decode.encoding import ContentDecoder, decode_body, make_decoder, parse_codings

PLAIN = b'{"choices":[{"delta":{"content":"Hello"}}]}\n' * 40


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _zstd_two_frames(data: bytes) -> bytes:
    compressor = zstandard.ZstdCompressor()
    return compressor.compress(data[:500]) + compressor.compress(data[500:])


ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "gzip-two-members": ("gzip", lambda d: gzip.compress(d[:100]) + gzip.compress(d[100:])),
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", _raw_deflate),
    "br": ("br", brotli.compress),
    "zstd": ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
    "zstd-two-frames": ("zstd", _zstd_two_frames),
    "gzip-then-br": ("gzip, br", lambda d: brotli.compress(gzip.compress(d))),
    "br-then-zstd-upper": ("BR ,  ZSTD", lambda d: zstandard.ZstdCompressor().compress(brotli.compress(d))),
}


def _decode_pieces(header: str, pieces: list[bytes]) -> tuple[bytes, str | None]:
    decoder = make_decoder(header)
    assert decoder is not None
    out = b"".join(decoder.feed(piece) for piece in pieces) + decoder.finish()
    return out, decoder.problem


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_whole_and_byte_by_byte(name: str) -> None:
    header, encode = ENCODERS[name]
    wire = encode(PLAIN)
    assert _decode_pieces(header, [wire]) == (PLAIN, None)
    assert _decode_pieces(header, [wire[i : i + 1] for i in range(len(wire))]) == (PLAIN, None)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_two_piece_cut(name: str) -> None:
    header, encode = ENCODERS[name]
    wire = encode(PLAIN[:200])
    for cut in range(1, len(wire)):
        assert _decode_pieces(header, [wire[:cut], wire[cut:]]) == (PLAIN[:200], None), cut


def test_streaming_output_before_the_end() -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    decoder = make_decoder("gzip")
    assert decoder is not None
    first = compressor.compress(b"data: one\n\n") + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert decoder.feed(first) == b"data: one\n\n"  # available before the stream ends


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_garbage_is_a_problem_not_an_exception(name: str) -> None:
    header, _ = ENCODERS[name]
    body, problem = decode_body(b"\x00\x01 definitely not compressed \xff" * 3, header)
    assert body == b"\x00\x01 definitely not compressed \xff" * 3  # the raw bytes are kept
    assert problem is not None and problem.startswith("decode-error:")


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_truncated_stream_is_a_problem_at_finish(name: str) -> None:
    header, encode = ENCODERS[name]
    wire = encode(PLAIN)[:-3]  # the end of the last frame / member is missing
    body, problem = decode_body(wire, header)
    assert problem is not None and problem.startswith("decode-error:")
    assert body == wire


def test_failing_layer_is_named() -> None:
    assert decode_body(brotli.compress(b"not gzip inside"), "gzip, br")[1] == "decode-error:gzip"
    assert decode_body(b"junk", "gzip, br")[1] == "decode-error:br"


def test_after_an_error_nothing_more_comes_out() -> None:
    decoder = make_decoder("gzip")
    assert decoder is not None
    assert decoder.feed(b"garbage!") == b""
    assert decoder.failed
    assert decoder.feed(gzip.compress(b"x")) == b""
    assert decoder.finish() == b""
    assert decoder.problem == "decode-error:gzip"


def test_unknown_coding() -> None:
    decoder = make_decoder("compress")
    assert decoder is not None and decoder.problem == "decode-error:compress"
    assert decode_body(b"abc", "gzip, compress") == (b"abc", "decode-error:compress")


def test_identity_and_absent_need_no_decoder() -> None:
    assert make_decoder(None) is None
    assert make_decoder("") is None
    assert make_decoder("identity") is None
    assert decode_body(b"plain", "identity") == (b"plain", None)


def test_parse_codings() -> None:
    assert parse_codings("gzip, Identity , BR") == ["gzip", "br"]
    assert parse_codings(None) == []


def test_gzip_trailing_junk_is_ignored() -> None:
    assert decode_body(gzip.compress(b"hello") + b"\n\n", "gzip") == (b"hello", None)


def test_empty_deflate_body() -> None:
    decoder = ContentDecoder(["deflate"])
    assert decoder.finish() == b"" and decoder.problem is None

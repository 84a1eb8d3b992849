"""Every finding of the decoder fuzzing (bench/fuzz_decoders.py), as a regression test.

Each test replays the minimized input through the same target the fuzzer ran
(tests/fuzz/targets.py), and where the finding was about memory, measures it. A test
here failed before its fix: the message of each names what used to happen.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import brotli
import pytest
import zstandard
from tests.fuzz import targets
from tests.fuzz.script import encode_script
from tests.unit.helpers_decode import R, Step, W, http_request, http_response, of_type, records_for, run
from tests.unit.helpers_h2 import H2Script

from oisp_sensor.config import ConfigError, load_config
from oisp_sensor.decode.encoding import MAX_INFLATE, ContentDecoder
from oisp_sensor.decode.messages import ExchangeDone
from oisp_sensor.decode.providers import GEMINI_STREAM

# ---- config loader ---------------------------------------------------------------------------


def _config_file(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "c.toml"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("nesting", [b"a = " + b"[" * 5000, b"a = " + b"{b=" * 5000])
def test_deeply_nested_toml_is_a_config_error(tmp_path: Path, nesting: bytes) -> None:
    """Was: RecursionError out of tomllib (a traceback instead of a message)."""
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(_config_file(tmp_path, nesting), environ={})
    targets.config(nesting)


def test_config_file_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    """Was: UnicodeDecodeError out of Path.read_text."""
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(_config_file(tmp_path, b"[capture]\nssl = true # \xff\n"), environ={})
    targets.config(b"\xff\xfe")


def test_deeply_nested_environment_value_is_a_config_error() -> None:
    """Was: RecursionError while reading OISP_CAPTURE__SSL as a TOML value."""
    with pytest.raises(ConfigError, match=r"capture\.ssl"):
        load_config(None, environ={"OISP_CAPTURE__SSL": "[" * 5000})


# ---- provider parsers ---------------------------------------------------------------------


def test_gemini_stream_of_deeply_nested_array_is_unparsed_not_raised() -> None:
    """Was: RecursionError from the element-by-element scan of a cut JSON array."""
    parsed = GEMINI_STREAM.parse_response(b"[" * 5000)
    assert parsed.chunks == [] or not parsed.chunks
    index = targets.PARSERS.index(GEMINI_STREAM)
    targets.provider(bytes([index, 1]) + b"[" * 5000)


# ---- decompression bombs ----------------------------------------------------------------------

_MIB = 1 << 20


def _gzip_bomb(total_mib: int) -> bytes:
    member = gzip.compress(b"\0" * _MIB, 1)  # concatenated members: one gzip body
    return member * total_mib


def _zstd_bomb(total_mib: int) -> bytes:
    frame = zstandard.ZstdCompressor(level=1).compress(b"\0" * _MIB)
    return frame * total_mib


def _deflate_bomb(total_mib: int) -> bytes:
    return zlib.compress(b"\0" * (total_mib * _MIB), 1)


def _br_bomb(total_mib: int) -> bytes:
    return brotli.compress(b"\0" * (total_mib * _MIB), quality=1)


BOMBS: dict[str, Callable[[int], bytes]] = {
    "gzip": _gzip_bomb,
    "zstd": _zstd_bomb,
    "deflate": _deflate_bomb,
    "br": _br_bomb,
}


def _peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("coding", sorted(BOMBS))
def test_decompression_bomb_stops_at_the_inflation_limit(coding: str) -> None:
    """Was: one feed inflated the whole bomb (64 MiB here; gigabytes from a bigger one)."""
    bomb = BOMBS[coding](64)
    decoder = ContentDecoder([coding])
    out: list[bytes] = []
    peak = _peak(lambda: out.append(decoder.feed(bomb)))
    assert out == [b""]
    assert decoder.problem == f"decode-error:{coding}:inflation-limit"
    assert peak < 3 * MAX_INFLATE, f"peak {peak / _MIB:.0f} MiB"
    assert decoder.feed(bomb) == b"" and decoder.finish() == b""  # stays stopped


@pytest.mark.parametrize("coding", sorted(BOMBS))
def test_bodies_below_the_limit_still_decode(coding: str) -> None:
    """The limit is per call and generous: a large, ordinary body decodes whole."""
    plain = b'{"choices":[{"delta":{"content":"hello"}}]}\n' * 100_000  # 4.6 MB
    wire = {
        "gzip": lambda: gzip.compress(plain),
        "zstd": lambda: zstandard.ZstdCompressor().compress(plain),
        "deflate": lambda: zlib.compress(plain),
        "br": lambda: brotli.compress(plain, quality=5),
    }[coding]()
    decoder = ContentDecoder([coding])
    assert decoder.feed(wire) + decoder.finish() == plain
    assert decoder.problem is None


def test_zstd_frame_asking_for_a_huge_window_is_refused() -> None:
    """A frame header may ask for a 2 GiB window; HTTP zstd decoders need only 8 MiB (RFC 9659)."""
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    frame = bytearray(cctx.compress(b"x" * 1000))
    assert frame[4] == 0  # frame header: no content size, a window descriptor follows
    frame[5] = 17 << 3  # window 2**(10+17) = 128 MiB
    decoder = ContentDecoder(["zstd"])
    decoder.feed(bytes(frame))
    assert decoder.problem == "decode-error:zstd"


def test_bomb_in_an_http_response_is_a_counted_decode_error_with_bounded_memory() -> None:
    """The whole tracker path: the response is reported (raw body kept up to the cap)."""
    bomb = _gzip_bomb(64)
    steps = [
        Step(W, http_request(b"POST", b"/v1/chat/completions", body=b'{"model":"m"}')),
        Step(R, http_response(200, [(b"Content-Encoding", b"gzip")], bomb)),
    ]
    result: list[object] = []
    peak = _peak(lambda: result.append(run(steps, max_body_bytes=1 * _MIB)))
    outputs, tracker = result[0]  # type: ignore[misc]
    (done,) = of_type(outputs, ExchangeDone)
    assert done.response is not None and "decode-error:gzip:inflation-limit" in done.response.problems
    assert tracker.counters.decode_errors == 1 and tracker.counters.internal_errors == 0
    assert peak < 3 * MAX_INFLATE, f"peak {peak / _MIB:.0f} MiB"


# ---- HTTP/2 ---------------------------------------------------------------------------------


def test_h2_stream_aborted_while_its_last_data_frame_arrives_is_done_once() -> None:
    """Was: a frame error in the client's direction finished every stream; the server's
    DATA frame in flight (END_STREAM) then finished stream 1 a second time (two
    ExchangeDone for one exchange: a duplicate ai.response)."""
    script = H2Script()
    sid = script.request()
    script.respond(sid, body=b'{"id":"x"}')
    response = script.steps[-1].data
    steps = [*script.steps[:-1], Step(R, response[:-4])]
    steps.append(Step(W, b"\x00\x00\x00\x09\x00\x00\x00\x00\x01"))  # CONTINUATION out of nowhere
    steps.append(Step(R, response[-4:]))
    outputs, tracker = run(steps)
    done = of_type(outputs, ExchangeDone)
    assert [d.exchange_id for d in done] == [1]
    assert "h2-frame-error" in done[0].request.problems or tracker.counters.http2_frame_errors == 1
    targets.wire(encode_script(records_for(steps)))


# ---- HTTP/1.1 heads -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "filler"),
    [
        (b"GET / HTTP/1.1\r\nX-Long: ", b"a" * 65536),  # one endless header line
        (b"GET / HTTP/1.1\r\n", b"X-A: b\r\n" * 8192),  # endless headers
        (b"GET /", b"a" * 65536),  # endless request target
    ],
    ids=["header-line", "header-count", "request-line"],
)
def test_endless_request_head_is_dropped_with_bounded_memory(start: bytes, filler: bytes) -> None:
    """Was: every byte of a head that never ends was kept by llhttp's callbacks (20 MiB in,
    20 to 134 MiB kept, and re-copied per record: quadratic time)."""
    steps = [Step(W, start), *[Step(W, filler)] * 160, Step(W, http_request(b"GET", b"/after"))]
    result: list[object] = []
    peak = _peak(lambda: result.append(run(steps)))
    outputs, tracker = result[0]  # type: ignore[misc]
    assert tracker.counters.parse_errors == 1
    assert peak < 8 * _MIB, f"peak {peak / _MIB:.0f} MiB"
    # the stream resynchronises on the next request line
    assert [d.request.target for d in of_type(outputs, ExchangeDone)] == ["/after"]


def test_endless_status_line_is_dropped_with_bounded_memory() -> None:
    steps = [Step(W, http_request()), Step(R, b"HTTP/1.1 200 "), *[Step(R, b"a" * 65536)] * 160]
    result: list[object] = []
    peak = _peak(lambda: result.append(run(steps)))
    outputs, tracker = result[0]  # type: ignore[misc]
    assert tracker.counters.parse_errors == 1
    assert peak < 8 * _MIB, f"peak {peak / _MIB:.0f} MiB"
    (done,) = of_type(outputs, ExchangeDone)
    assert done.response is None


def test_large_but_plausible_head_still_parses() -> None:
    """The limit is far above real heads: 100 KiB of cookies goes through."""
    cookie = b"c=" + b"x" * 100_000
    steps = [
        Step(W, http_request(headers=[(b"Host", b"h"), (b"Cookie", cookie)])),
        Step(R, http_response(200)),
    ]
    pieces = {0: [steps[0].data[i : i + 4096] for i in range(0, len(steps[0].data), 4096)]}
    outputs, tracker = run(steps, pieces)
    (done,) = of_type(outputs, ExchangeDone)
    assert done.response is not None and done.response.status == 200
    assert tracker.counters.parse_errors == 0

"""Passive, sans-IO HTTP/2 decoding of one observed connection (both directions).

The capture hands us the plaintext of a TLS connection negotiated with ALPN ``h2``: the
client's preface and frames one way, the server's frames the other way, cut into records
wherever the application called SSL_write/SSL_read, sometimes with bytes lost. This
module turns that into the same :class:`HttpRequest` / :class:`HttpResponse` objects and
outputs the HTTP/1.1 decoder produces (``version="2"``), correlated by stream id.

Why by hand and not with ``h2``'s ``H2Connection``: that is an *endpoint* state machine.
It enforces flow control, answers SETTINGS and PINGs, refuses what a peer would refuse,
and cannot take both directions of one connection, nor bytes that were lost. An observer
must accept whatever the two real peers accepted, and survive whatever the capture lost.
Frames are therefore parsed here (their layout is simple); header blocks are decoded with
the ``hpack`` library, one :class:`hpack.Decoder` per direction, exactly as each real peer
keeps one for what it receives.

Robustness rules (``feed``/``gap``/``close`` never raise):

* DATA payloads are streamed into the stream's body as they arrive (never buffered whole),
  so bytes lost inside a DATA frame are accounted as lost body bytes, framing intact, as
  the HTTP/1.1 decoder does inside a Content-Length body.
* Bytes lost inside another frame skip that frame; a lost header block makes the dynamic
  HPACK table of that direction unknown.
* Bytes lost across frame boundaries, and corrupted frames (bad lengths, unknown types,
  wrong stream ids), lose the framing of that direction: it is resynchronised at the next
  record that starts with plausible frames (records follow SSL_write calls, and HTTP/2
  stacks write whole frames). A frame error also finishes every exchange in flight as
  incomplete (``h2-frame-error``).
* HPACK: a direction whose table state is unknown (capture joined midway, a header block
  was lost, or decoding failed) continues with a *fresh* decoder. Entries inserted after
  that point sit at the top of the real table too, so a block that decodes with the fresh
  decoder decodes exactly as the peer decoded it; a block that refers to older entries
  fails, its stream is reported incomplete (``hpack-error``), and the decoder starts fresh
  again (a failed block may have inserted entries we did not see, in an order we cannot
  know). So nothing is ever decoded *wrongly*, and a long-lived connection joined midway
  becomes readable as soon as its encoders insert what they refer to.
* Connection joined midway (no preface): which direction carries requests is learned from
  the first header block with a ``:method`` or a ``:status`` (decoded, or recognised from
  its first representation, which for pseudo-headers is nearly always a static index).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Protocol

import hpack

from oisp_sensor.decode.encoding import make_decoder
from oisp_sensor.decode.http1 import BodyCollector, decode_headers
from oisp_sensor.decode.messages import (
    ConnInfo,
    DecodeOutput,
    ExchangeDone,
    HttpRequest,
    HttpResponse,
    RequestSeen,
    ResponseStarted,
    SseEvent,
    StreamEvent,
)
from oisp_sensor.decode.sse import SseParser

__all__ = ["PREFACE", "Http2Counters", "Http2Decoder", "Http2Sink", "plausible_frames"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types (RFC 9113 section 6)
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9
# registered extension frames a peer may send; skipped (ALTSVC, ORIGIN, PRIORITY_UPDATE)
_EXTENSION_TYPES = frozenset({0xA, 0xC, 0x10})

# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_MAX_FRAME_SIZE = 0x5

DEFAULT_MAX_FRAME = 16_384
_MAX_FRAME_LIMIT = (1 << 24) - 1
_DEFAULT_TABLE = 4096
_LENIENT_TABLE = 1 << 24  # an unsynced decoder accepts any size update the encoder sends
_MAX_HEADER_BLOCK = 1 << 20  # bytes of one header block kept before it is given up
_MAX_HEADER_LIST = 1 << 20  # decoded header list size hpack accepts (real peers: 16-64 KiB)
MAX_STREAMS = 256  # exchanges in flight kept per connection (peers allow 100-250)
_PLAUSIBLE_WALK = 64  # frames checked by plausible_frames before it says yes
_BIG_RECORD = 4096  # a record this long may be cut by the capture inside its first frame

# the only flags each type defines (for plausibility checks; decoding ignores unknown flags)
_DEFINED_FLAGS = {
    DATA: END_STREAM | PADDED,
    HEADERS: END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG,
    PRIORITY: 0,
    RST_STREAM: 0,
    SETTINGS: ACK,
    PUSH_PROMISE: END_HEADERS | PADDED,
    PING: ACK,
    GOAWAY: 0,
    WINDOW_UPDATE: 0,
    CONTINUATION: END_HEADERS,
}
_STREAM_TYPES = frozenset({DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION})
_CONNECTION_TYPES = frozenset({SETTINGS, PING, GOAWAY})
_FIXED_LENGTH = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}

_HEADER = struct.Struct(">BHBBI")  # length (8 + 16 bits), type, flags, R + stream id
_SETTING = struct.Struct(">HI")

# side modes
_PREFACE_MODE = 0  # expecting (the rest of) the client preface
_HEAD = 1  # between frames, collecting a 9-byte frame header
_DATA = 2  # streaming a DATA payload (then its padding)
_PADLEN = 3  # the Pad Length byte of a padded DATA frame
_PAYLOAD = 4  # collecting the payload of a frame handled whole
_SKIP = 5  # skipping the rest of a frame's payload
_RESYNC = 6  # framing lost: waiting for a record that starts with plausible frames
_STOPPED = 7

_WRITE = 0
_READ = 1
_NO_EVENTS: list[SseEvent] = []


class Http2Counters(Protocol):
    """The sensor counters this decoder updates (``DecodeCounters`` has them all)."""

    requests: int
    responses: int
    exchanges: int
    incomplete_exchanges: int
    unanswered_requests: int
    sse_events: int
    orphan_responses: int
    decode_errors: int
    truncated_bodies: int
    dropped_requests: int
    http2_streams: int
    http2_frame_errors: int
    hpack_errors: int


class Http2Sink(Protocol):
    """Where a decoder's outputs go: the connection state that owns it.

    ``info`` is read at every output (the tracker replaces it when the thread changes);
    ``out`` is the list the current record's outputs are appended to.
    """

    info: ConnInfo
    out: list[DecodeOutput]
    counters: Http2Counters
    ids: Iterator[int]

    def h2_role(self, client: bool) -> bool:
        """A connection joined midway showed which side it is; False: stop decoding it."""

    def h2_confirmed(self, late: bool) -> None:
        """A connection not decided by its first bytes turned out to be HTTP/2.

        ``late``: joined midway (a header block decoded); otherwise its preface came after
        the first record (a server that wrote its SETTINGS before reading the preface).
        """

    def h2_abandon(self) -> None:
        """A connection joined midway, never confirmed, hit a frame error: not HTTP/2 after all."""


def _frame_problem(ftype: int, flags: int, sid: int, length: int, max_frame: int) -> str | None:
    """Why a frame header cannot be right (None when it can); unknown flags are allowed."""
    if length > max_frame:
        return "frame-too-large"
    if ftype > CONTINUATION:
        if ftype in _EXTENSION_TYPES or (ftype - 0x0B) % 0x1F == 0:  # registered or GREASE
            return None
        return "unknown-frame-type"
    if ftype in _STREAM_TYPES:
        if sid == 0:
            return "bad-stream-id"
    elif ftype in _CONNECTION_TYPES and sid != 0:
        return "bad-stream-id"
    fixed = _FIXED_LENGTH.get(ftype)
    if fixed is not None and length != fixed:
        return "bad-frame-length"
    if ftype == SETTINGS and (length % 6 or (flags & ACK and length)):
        return "bad-frame-length"
    if ftype == GOAWAY and length < 8:
        return "bad-frame-length"
    if ftype == PUSH_PROMISE and length < 4:
        return "bad-frame-length"
    return None


def plausible_frames(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> bool:
    """Does this record start at an HTTP/2 frame boundary? (resync, and midway detection)

    Strict on purpose, because a yes on random bytes would start decoding garbage: every
    frame header seen must be a known type with only defined flags, a sane stream id and
    length; and the frames must end exactly at the end of the record, or at least one
    complete frame must precede a partial one, or (a large write cut by the capture) the
    record must be long and start a DATA, HEADERS or CONTINUATION frame.
    """
    pos = 0
    end = len(data)
    frames = 0
    while pos + 9 <= end:
        hi, lo, ftype, flags, sid = _HEADER.unpack_from(data, pos)
        length = hi << 16 | lo
        if ftype > CONTINUATION or sid & 0x80000000 or flags & ~_DEFINED_FLAGS[ftype]:
            return False
        if _frame_problem(ftype, flags, sid, length, max_frame) is not None:
            return False
        if ftype == WINDOW_UPDATE and not int.from_bytes(data[pos + 9 : pos + 13], "big") & 0x7FFFFFFF:
            return False  # an increment of 0 is a protocol error (and typical of zeroed memory)
        pos += 9 + length
        if pos > end:
            return frames > 0 or (end >= _BIG_RECORD and ftype in (DATA, HEADERS, CONTINUATION))
        frames += 1
        if frames >= _PLAUSIBLE_WALK:
            return True
    return pos == end and frames > 0


class _Stream:
    """One stream: its request and response, as far as seen, and what was emitted."""

    __slots__ = (
        "events_sent",
        "ex_id",
        "ignored",
        "req_body",
        "req_done",
        "request",
        "resp_body",
        "resp_done",
        "response",
        "sid",
        "sse_budget",
        "started_sent",
    )

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.ex_id = 0
        self.ignored = False  # not ours to report (pushed, or its request was never seen)
        self.request: HttpRequest | None = None
        self.req_body: BodyCollector | None = None
        self.req_done = False  # RequestSeen emitted
        self.response: HttpResponse | None = None  # the final (non-1xx) response
        self.resp_body: BodyCollector | None = None
        self.resp_done = False
        self.started_sent = False
        self.events_sent = 0
        self.sse_budget = 0


class _Side:
    """Parsing state of one direction: framing position, header block, HPACK decoder."""

    __slots__ = (
        "block",
        "block_end_stream",
        "block_kind",
        "block_lost",
        "block_sid",
        "block_size",
        "block_ts",
        "buf",
        "data_left",
        "direction",
        "expect_cont",
        "flags",
        "frame_sid",
        "frame_ts",
        "ftype",
        "hpack",
        "last_ts",
        "max_frame",
        "max_table",
        "mode",
        "pad_left",
        "parts",
        "preface_left",
        "remaining",
        "stream",
        "synced",
    )

    def __init__(self, direction: int, synced: bool) -> None:
        self.direction = direction
        # seen from its start: frames begin at the first byte; otherwise at the first record
        # that starts with plausible frames
        self.mode = _HEAD if synced else _RESYNC
        self.buf = b""  # an incomplete frame header (< 9 bytes)
        self.preface_left = 0
        self.ftype = 0
        self.flags = 0
        self.frame_sid = 0
        self.frame_ts = 0
        self.last_ts = 0  # capture time of the last record of this direction
        self.remaining = 0  # payload bytes of the current frame still to come
        self.parts: list[bytes] = []  # payload collected so far (_PAYLOAD)
        self.data_left = 0  # DATA bytes still to come in the current frame
        self.pad_left = 0  # then padding bytes
        self.stream: _Stream | None = None  # stream of the current DATA frame
        self.expect_cont = False  # a header block is open: only its CONTINUATION may follow
        self.block: list[bytes] = []
        self.block_size = 0
        self.block_sid = 0
        self.block_kind = HEADERS
        self.block_end_stream = False
        self.block_lost = ""  # why the open header block cannot be decoded ("" if it can)
        self.block_ts = 0
        # frames this direction may carry: what the other side announced (lenient maximum)
        self.max_frame = DEFAULT_MAX_FRAME if synced else _MAX_FRAME_LIMIT
        self.max_table = _DEFAULT_TABLE  # largest table size the receiver allowed
        self.synced = synced
        self.hpack = self._new_hpack()

    def _new_hpack(self) -> hpack.Decoder:
        decoder = hpack.Decoder(max_header_list_size=_MAX_HEADER_LIST)
        if self.synced:
            decoder.max_allowed_table_size = self.max_table
        else:
            # entries known from here on are exactly the top of the real table; a bigger
            # table only keeps more of them, never a wrong one
            decoder.max_allowed_table_size = _LENIENT_TABLE
            decoder.header_table_size = self.max_table
        return decoder

    def unsync(self) -> None:
        """The dynamic table state is unknown from here: continue with a fresh decoder."""
        self.synced = False
        self.hpack = self._new_hpack()


class Http2Decoder:
    """Decodes both directions of one HTTP/2 connection; outputs go to the sink.

    ``req_dir`` is the direction that carries requests (the client's writes for a client
    process, reads for a server); None for a connection joined midway, until a header
    block tells. ``preface`` is True when the connection was seen from its first byte
    (the client preface is expected and checked), so HPACK state is known.
    """

    __slots__ = (
        "_broken",
        "_confirmed",
        "_from_start",
        "_last_sid",
        "_max_body",
        "_sides",
        "_streams",
        "req_dir",
        "sink",
    )

    def __init__(
        self, sink: Http2Sink, max_body: int, req_dir: int | None, *, preface: bool, confirmed: bool = False
    ) -> None:
        self.sink = sink
        self._max_body = max_body
        self.req_dir = req_dir
        self._confirmed = preface or confirmed
        self._from_start = preface
        self._broken = False
        self._streams: dict[int, _Stream] = {}
        self._last_sid = 0  # highest request stream id opened (checked when synced)
        self._sides = (_Side(_WRITE, preface), _Side(_READ, preface))
        if preface and req_dir is not None:
            client = self._sides[req_dir]
            client.mode = _PREFACE_MODE
            client.preface_left = len(PREFACE)

    @property
    def broken(self) -> bool:
        """A frame error was seen on this connection."""
        return self._broken

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # ---- bytes in ---------------------------------------------------------------------------

    def feed(self, direction: int, data: bytes, ts_ns: int) -> None:
        """The next bytes of one direction (contiguous with the previous ones)."""
        side = self._sides[direction]
        mode = side.mode
        if mode == _STOPPED or not data:
            return
        side.last_ts = ts_ns
        if mode == _RESYNC:
            if self.req_dir is None and len(data) >= 4 and data[:24] == PREFACE[: len(data)]:
                if not self._late_preface(side):
                    return
            elif not plausible_frames(data, side.max_frame):
                return
            else:
                side.mode = _HEAD
        if side.buf:
            data = side.buf + data
            side.buf = b""
        pos = 0
        end = len(data)
        while pos < end:
            mode = side.mode
            if mode == _DATA:
                pos = self._data_bytes(side, data, pos, end, ts_ns)
            elif mode == _HEAD:
                if end - pos < 9:
                    side.buf = data[pos:]
                    return
                hi, lo, ftype, flags, sid = _HEADER.unpack_from(data, pos)
                pos += 9
                self._frame_header(side, hi << 16 | lo, ftype, flags, sid & 0x7FFFFFFF, ts_ns)
            elif mode == _PAYLOAD:
                take = min(side.remaining, end - pos)
                side.parts.append(data[pos : pos + take])
                pos += take
                side.remaining -= take
                if not side.remaining:
                    self._frame_payload(side, ts_ns)
            elif mode == _SKIP:
                take = min(side.remaining, end - pos)
                pos += take
                side.remaining -= take
                if not side.remaining:
                    self._frame_skipped(side, ts_ns)
            elif mode == _PADLEN:
                side.remaining -= 1
                pad = data[pos]
                pos += 1
                if pad > side.remaining:
                    self._frame_error(side, "bad-padding", ts_ns)
                    return
                side.data_left = side.remaining - pad
                side.pad_left = pad
                side.mode = _DATA
                if not side.remaining:
                    self._data_frame_end(side, ts_ns)
            elif mode == _PREFACE_MODE:
                pos = self._preface(side, data, pos, end, ts_ns)
            else:  # _RESYNC or _STOPPED, entered while parsing this record
                return

    def gap(self, direction: int, nbytes: int, ts_ns: int) -> None:
        """``nbytes`` of one direction were lost just before the next bytes."""
        side = self._sides[direction]
        mode = side.mode
        if mode in (_RESYNC, _STOPPED) or nbytes <= 0:
            return
        if mode == _DATA and nbytes <= side.data_left + side.pad_left:
            lost = min(nbytes, side.data_left)
            side.data_left -= lost
            side.pad_left -= nbytes - lost
            self._mark_gap(side.stream, direction, lost)
            if not side.data_left and not side.pad_left:
                self._data_frame_end(side, ts_ns)
            return
        if mode in (_PAYLOAD, _SKIP, _PADLEN) and nbytes <= side.remaining:
            if mode == _PADLEN:  # where data ends and padding starts is unknown now
                self._mark_gap(side.stream, direction, nbytes)
            elif side.ftype in (HEADERS, CONTINUATION, PUSH_PROMISE):
                side.block_lost = side.block_lost or "gap"
                side.block = []
            side.parts = []
            side.mode = _SKIP
            side.remaining -= nbytes
            if not side.remaining:
                self._frame_skipped(side, ts_ns)
            return
        self._lose_framing(side)

    def close(self) -> None:
        """The connection ended: finish every exchange in flight; ignore what follows."""
        for side in self._sides:
            side.mode = _STOPPED
        self._finish_all("incomplete", ts_ns=None)

    def stop(self) -> None:
        """Stop decoding without reporting anything (a server not to be reported)."""
        for side in self._sides:
            side.mode = _STOPPED
        self._streams.clear()

    def _late_preface(self, side: _Side) -> bool:
        """The preface arrives after frames of the other direction: seen from the start after all.

        A server writes its SETTINGS as soon as TLS is up, often before it reads the
        client's preface, so its first record is a frame. Both directions were seen from
        their first byte: their (fresh) HPACK decoders are in step with the peers'.
        """
        self.req_dir = side.direction
        self._from_start = True
        if not self._confirmed:
            self._confirmed = True
            self.sink.h2_confirmed(late=False)
        if not self.sink.h2_role(side.direction == _WRITE):
            self.stop()
            return False
        for each in self._sides:
            each.synced = True
            each.hpack.max_allowed_table_size = max(_DEFAULT_TABLE, each.max_table)
        side.mode = _PREFACE_MODE
        side.preface_left = len(PREFACE)
        return True

    # ---- framing --------------------------------------------------------------------------

    def _preface(self, side: _Side, data: bytes, pos: int, end: int, ts_ns: int) -> int:
        start = len(PREFACE) - side.preface_left
        take = min(side.preface_left, end - pos)
        if data[pos : pos + take] != PREFACE[start : start + take]:
            self._frame_error(side, "bad-preface", ts_ns)
            return end
        side.preface_left -= take
        if not side.preface_left:
            side.mode = _HEAD
        return pos + take

    def _frame_header(self, side: _Side, length: int, ftype: int, flags: int, sid: int, ts_ns: int) -> None:
        side.ftype = ftype
        side.flags = flags
        side.frame_sid = sid
        side.frame_ts = ts_ns
        side.remaining = length
        if side.expect_cont and (ftype != CONTINUATION or sid != side.block_sid):
            self._frame_error(side, "expected-continuation", ts_ns)
            return
        problem = _frame_problem(ftype, flags, sid, length, side.max_frame)
        if problem is None and ftype == CONTINUATION and not side.expect_cont:
            problem = "unexpected-continuation"
        if problem is not None:
            self._frame_error(side, problem, ts_ns)
            return
        if ftype == DATA:
            side.stream = self._streams.get(sid)
            if flags & PADDED:
                if not length:
                    self._frame_error(side, "bad-padding", ts_ns)
                    return
                side.mode = _PADLEN
                return
            side.data_left = length
            side.pad_left = 0
            if length:
                side.mode = _DATA
            else:
                self._data_frame_end(side, ts_ns)
            return
        if ftype in (HEADERS, PUSH_PROMISE):
            side.block = []
            side.block_size = 0
            side.block_lost = ""
            side.block_sid = sid
            side.block_kind = ftype
            side.block_end_stream = bool(flags & END_STREAM) and ftype == HEADERS
            side.block_ts = ts_ns
        if ftype in (HEADERS, PUSH_PROMISE, CONTINUATION, SETTINGS, RST_STREAM, GOAWAY):
            side.parts = []
            if length > _MAX_HEADER_BLOCK:  # never buffered (possible when joined midway)
                if ftype in (HEADERS, PUSH_PROMISE, CONTINUATION):
                    side.block_lost = "headers-too-large"
                side.mode = _SKIP
            elif length:
                side.mode = _PAYLOAD
            else:
                self._frame_payload(side, ts_ns)
        elif length:
            side.mode = _SKIP  # PING, WINDOW_UPDATE, PRIORITY, extensions: nothing to learn
        else:
            side.mode = _HEAD

    def _frame_payload(self, side: _Side, ts_ns: int) -> None:
        """A frame handled whole is complete."""
        side.mode = _HEAD
        parts = side.parts
        payload = parts[0] if len(parts) == 1 else b"".join(parts)
        side.parts = []
        ftype = side.ftype
        if ftype in (HEADERS, PUSH_PROMISE):
            fragment = self._strip(side, payload, ts_ns)
            if fragment is None:
                return
            self._block_fragment(side, fragment, ts_ns)
        elif ftype == CONTINUATION:
            self._block_fragment(side, payload, ts_ns)
        elif ftype == SETTINGS:
            if not side.flags & ACK:
                self._settings(side, payload)
        elif ftype == RST_STREAM:
            self._reset(side.frame_sid, ts_ns)
        elif ftype == GOAWAY:
            self._goaway(side, int.from_bytes(payload[:4], "big") & 0x7FFFFFFF, ts_ns)

    def _frame_skipped(self, side: _Side, ts_ns: int) -> None:
        """The rest of a frame was skipped (nothing to learn, or its bytes were lost)."""
        side.mode = _HEAD
        ftype = side.ftype
        if ftype in (HEADERS, PUSH_PROMISE, CONTINUATION):
            self._block_fragment(side, b"", ts_ns)
        elif ftype == DATA:
            self._data_frame_end(side, ts_ns)
        elif ftype == RST_STREAM and not side.parts:  # the code was lost, not the reset
            self._reset(side.frame_sid, ts_ns)

    def _strip(self, side: _Side, payload: bytes, ts_ns: int) -> bytes | None:
        """The header block fragment of a HEADERS / PUSH_PROMISE payload (None on error)."""
        start = 0
        stop = len(payload)
        flags = side.flags
        if flags & PADDED:
            if not payload:
                self._frame_error(side, "bad-padding", ts_ns)
                return None
            start = 1
            stop -= payload[0]
        if side.ftype == HEADERS:
            if flags & PRIORITY_FLAG:
                start += 5
        else:
            start += 4  # promised stream id
        if start > stop:
            self._frame_error(side, "bad-padding", ts_ns)
            return None
        return payload[start:stop] if start or stop != len(payload) else payload

    def _settings(self, side: _Side, payload: bytes) -> None:
        """What a peer announces about what it receives: the other direction's limits."""
        other = self._sides[1 - side.direction]
        for offset in range(0, len(payload), 6):
            ident, value = _SETTING.unpack_from(payload, offset)
            if ident == SETTINGS_HEADER_TABLE_SIZE:
                # The table of the decoder of the other direction may grow up to this once
                # acknowledged; taking the maximum never rejects what the real decoder took.
                if value > other.max_table:
                    other.max_table = value
                    if other.synced:
                        other.hpack.max_allowed_table_size = value
            elif ident == SETTINGS_MAX_FRAME_SIZE and DEFAULT_MAX_FRAME <= value <= _MAX_FRAME_LIMIT:
                other.max_frame = max(other.max_frame, value)

    def _lose_framing(self, side: _Side) -> None:
        """Bytes were lost across frames: resync this direction at a plausible record."""
        side.mode = _RESYNC
        side.buf = b""
        side.parts = []
        if side.expect_cont:
            side.block_lost = side.block_lost or "gap"
            self._block_complete(side, side.frame_ts)
        side.expect_cont = False
        side.unsync()
        for stream in list(self._streams.values()):
            self._mark_gap(stream, side.direction, 0)

    def _frame_error(self, side: _Side, problem: str, ts_ns: int) -> None:
        """A frame that cannot be right: count, finish what is in flight, resync."""
        self.sink.counters.http2_frame_errors += 1
        side.mode = _RESYNC
        side.buf = b""
        side.parts = []
        side.expect_cont = False
        side.block = []
        side.unsync()
        self._broken = True
        self._finish_all("h2-frame-error", ts_ns)
        if not self._confirmed:
            for each in self._sides:
                each.mode = _STOPPED
            self.sink.h2_abandon()

    # ---- DATA -----------------------------------------------------------------------------

    def _data_bytes(self, side: _Side, data: bytes, pos: int, end: int, ts_ns: int) -> int:
        """Stream DATA payload bytes (then padding) into the stream's body."""
        if side.data_left:
            take = min(side.data_left, end - pos)
            side.data_left -= take
            stream = side.stream
            if stream is not None:
                chunk = data[pos : pos + take] if take != end - pos or pos else data
                self._body(stream, side.direction, chunk, ts_ns)
            pos += take
        if not side.data_left and side.pad_left and pos < end:
            take = min(side.pad_left, end - pos)
            side.pad_left -= take
            pos += take
        if not side.data_left and not side.pad_left:
            self._data_frame_end(side, ts_ns)
        return pos

    def _data_frame_end(self, side: _Side, ts_ns: int) -> None:
        side.mode = _HEAD
        stream = side.stream
        side.stream = None
        # the stream may have been finished while its frame arrived (a frame error in the
        # other direction aborts every stream): it was reported done already
        if stream is not None and side.flags & END_STREAM and self._streams.get(stream.sid) is stream:
            self._end_stream(stream, side.direction, ts_ns)

    def _body(self, stream: _Stream, direction: int, chunk: bytes, ts_ns: int) -> None:
        if stream.ignored:
            return
        if direction == self.req_dir:
            if stream.request is None or stream.req_done:
                return
            collector = stream.req_body
            if collector is None:
                collector = stream.req_body = self._collector(stream.request, None)
            collector.add(chunk, ts_ns)
            return
        response = stream.response
        if response is None or stream.resp_done:
            return
        collector = stream.resp_body
        if collector is None:
            collector = stream.resp_body = self._collector(response, stream)
        events = collector.add(chunk, ts_ns)
        if events:
            self._events(stream, response, events)

    def _collector(self, msg: HttpRequest | HttpResponse, stream: _Stream | None) -> BodyCollector:
        """Body state, made at the first body byte (many messages have none)."""
        encoding: str | None = None
        ctype = ""
        for name, value in msg.headers:
            if name == "content-encoding":
                encoding = value if encoding is None else f"{encoding}, {value}"
            elif name == "content-type" and not ctype:
                ctype = value
        sse = None
        if stream is not None and ctype and ctype.split(";", 1)[0].strip().lower() == "text/event-stream":
            sse = SseParser(max_event_bytes=self._max_body)
            stream.sse_budget = self._max_body
        return BodyCollector(self._max_body, make_decoder(encoding) if encoding else None, sse)

    def _mark_gap(self, stream: _Stream | None, direction: int, nbytes: int) -> None:
        """Bytes of ``direction`` were lost; a message of it in progress is truncated."""
        if stream is None or stream.ignored:
            return
        if direction == self.req_dir:
            msg: HttpRequest | HttpResponse | None = None if stream.req_done else stream.request
            collector = stream.req_body
        else:
            msg = None if stream.resp_done else stream.response
            collector = stream.resp_body
        if msg is None:
            return
        msg.truncated = True
        if "gap" not in msg.problems:
            msg.problems.append("gap")
        if collector is None:
            collector = self._collector(msg, stream if isinstance(msg, HttpResponse) else None)
            if isinstance(msg, HttpRequest):
                stream.req_body = collector
            else:
                stream.resp_body = collector
        collector.skip(nbytes)

    # ---- header blocks ------------------------------------------------------------------------

    def _block_fragment(self, side: _Side, fragment: bytes, ts_ns: int) -> None:
        if fragment and not side.block_lost:
            side.block_size += len(fragment)
            if side.block_size > _MAX_HEADER_BLOCK:
                side.block_lost = "headers-too-large"
                side.block = []
            else:
                side.block.append(fragment)
        if side.flags & END_HEADERS:
            side.expect_cont = False
            self._block_complete(side, ts_ns)
        else:
            side.expect_cont = True

    def _block_complete(self, side: _Side, ts_ns: int) -> None:
        """A whole header block arrived: decode it (always: the table must follow)."""
        block = side.block
        side.block = []
        headers: list[tuple[str, str]] = []
        problem = side.block_lost
        kind = 0
        if problem:
            side.unsync()
        else:
            data = block[0] if len(block) == 1 else b"".join(block)
            try:
                raw = side.hpack.decode(data, raw=True)
            except Exception:  # hpack errors, and whatever corrupt input makes it raise
                problem = "hpack-error"
                self.sink.counters.hpack_errors += 1
                side.unsync()  # the block may have changed the table in ways not seen
                kind = _peek_kind(data)
            else:
                headers = decode_headers([h[0] for h in raw], [h[1] for h in raw])
                kind = _kind_of(headers)
                if not self._confirmed:
                    self._confirmed = True
                    self.sink.h2_confirmed(late=True)
        if side.block_kind == PUSH_PROMISE:
            return  # the promised request: pushed streams are not the client's calls
        if self.req_dir is None:
            if not kind:
                return
            req_dir = side.direction if kind == _REQUEST else 1 - side.direction
            if not self.sink.h2_role(req_dir == _WRITE):
                self.stop()
                return
            self.req_dir = req_dir
        if side.direction == self.req_dir:
            self._request_headers(
                side.block_sid, headers, problem, side.block_ts, ts_ns, side.block_end_stream
            )
        else:
            self._response_headers(
                side.block_sid, headers, problem, side.block_ts, ts_ns, side.block_end_stream
            )

    def _request_headers(
        self,
        sid: int,
        headers: list[tuple[str, str]],
        problem: str,
        start_ts: int,
        ts_ns: int,
        end_stream: bool,
    ) -> None:
        stream = self._streams.get(sid)
        if stream is not None:
            if stream.ignored:
                if end_stream:
                    self._end_stream(stream, self.req_dir or 0, ts_ns)
                return
            request = stream.request
            if request is not None and not stream.req_done:  # trailers
                request.headers.extend(headers)
                if problem:
                    _add_problem(request, problem)
                    request.truncated = True
                if end_stream:
                    self._end_stream(stream, self.req_dir or 0, ts_ns)
            return
        if self._from_start and (sid % 2 == 0 or sid <= self._last_sid):
            # client streams are odd and increasing: this cannot be a new request
            self._frame_error(self._sides[self.req_dir or 0], "bad-stream-id", ts_ns)
            return
        self._last_sid = max(self._last_sid, sid)
        stream = _Stream(sid)
        method = target = authority = ""
        has_host = False
        pseudo_end = 0
        for index, (name, value) in enumerate(headers):
            if name[:1] == ":":
                pseudo_end = index + 1
                if name == ":method":
                    method = value
                elif name == ":path":
                    target = value
                elif name == ":authority":
                    authority = value
            elif name == "host":
                has_host = True
        if not target and method == "CONNECT":
            target = authority
        if authority and not has_host:
            headers.insert(pseudo_end, ("host", authority))
        request = HttpRequest(
            method=method,
            target=target,
            version="2",
            headers=headers,
            body=b"",
            start_ts_ns=start_ts,
            end_ts_ns=ts_ns,
            stream_id=sid,
        )
        if problem:
            request.truncated = True
            request.problems.append(problem)
        stream.request = request
        stream.ex_id = next(self.sink.ids)
        self.sink.counters.http2_streams += 1
        streams = self._streams
        streams[sid] = stream
        if len(streams) > MAX_STREAMS:
            self._drop_oldest()
        if end_stream:
            self._end_stream(stream, self.req_dir or 0, ts_ns)

    def _response_headers(
        self,
        sid: int,
        headers: list[tuple[str, str]],
        problem: str,
        start_ts: int,
        ts_ns: int,
        end_stream: bool,
    ) -> None:
        resp_dir = 1 - (self.req_dir or 0)
        stream = self._streams.get(sid)
        if stream is None:
            stream = _Stream(sid)
            stream.ignored = True
            if sid % 2:  # a client stream whose request we never saw (joined midway)
                self.sink.counters.orphan_responses += 1
            if not end_stream:
                self._streams[sid] = stream
            return
        if stream.ignored:
            if end_stream:
                self._end_stream(stream, resp_dir, ts_ns)
            return
        response = stream.response
        if response is not None:  # trailers
            if not stream.resp_done:
                response.headers.extend(headers)
                if problem:
                    _add_problem(response, problem)
                    response.complete = False
                if end_stream:
                    self._end_stream(stream, resp_dir, ts_ns)
            return
        status = 0
        for name, value in headers:
            if name == ":status":
                try:
                    status = int(value)
                except ValueError:
                    problem = problem or "bad-status"
                break
        if 100 <= status < 200 and not end_stream:
            return  # 100 Continue, 103 Early Hints: not the answer
        response = HttpResponse(
            status=status,
            reason="",
            version="2",
            headers=headers,
            body=b"",
            start_ts_ns=start_ts,
            end_ts_ns=ts_ns,
            stream_id=sid,
        )
        if problem:
            response.complete = False
            response.problems.append(problem)
        stream.response = response
        if stream.req_done:
            self._send_started(stream)
        if end_stream:
            self._end_stream(stream, resp_dir, ts_ns)

    # ---- stream life cycle ----------------------------------------------------------------------

    def _end_stream(self, stream: _Stream, direction: int, ts_ns: int) -> None:
        """END_STREAM arrived in ``direction``."""
        if stream.ignored:
            if direction != self.req_dir:
                self._streams.pop(stream.sid, None)
            return
        if direction == self.req_dir:
            if not stream.req_done:
                self._request_end(stream, ts_ns, None)
        elif not stream.resp_done:
            if stream.response is None:
                stream.resp_done = True  # ended without a final head: no answer to report
                if stream.request is not None:
                    _add_problem(stream.request, "response-lost")
            else:
                self._response_end(stream, ts_ns, None)
        if stream.req_done and stream.resp_done:
            self._send_done(stream)

    def _reset(self, sid: int, ts_ns: int) -> None:
        """RST_STREAM: the stream ends now, whatever was still due."""
        stream = self._streams.get(sid)
        if stream is None:
            return
        if stream.ignored:
            self._streams.pop(sid, None)
            return
        self._abort(stream, "reset", ts_ns)

    def _goaway(self, side: _Side, last_sid: int, ts_ns: int) -> None:
        """GOAWAY from the server: client streams above ``last_sid`` will not be answered."""
        if self.req_dir is None or side.direction == self.req_dir:
            return  # a client's GOAWAY concerns pushed streams only
        for sid in sorted(self._streams):
            if sid > last_sid and sid % 2:
                self._abort(self._streams[sid], "goaway", ts_ns)

    def _abort(self, stream: _Stream, problem: str, ts_ns: int | None) -> None:
        """Finish one exchange now: what is missing is marked with ``problem``."""
        if stream.ignored:
            self._streams.pop(stream.sid, None)
            return
        req_dir = self.req_dir or 0
        if not stream.req_done:
            self._request_end(stream, self._sides[req_dir].last_ts if ts_ns is None else ts_ns, problem)
        if not stream.resp_done:
            stream.resp_done = True
            if stream.response is not None:
                end = self._sides[1 - req_dir].last_ts if ts_ns is None else ts_ns
                self._response_end(stream, max(end, stream.response.start_ts_ns), problem)
            elif stream.request is not None and problem not in ("incomplete",):
                _add_problem(stream.request, problem)
        self._send_done(stream)

    def _finish_all(self, problem: str, ts_ns: int | None) -> None:
        for sid in sorted(self._streams):
            stream = self._streams.get(sid)
            if stream is not None:
                self._abort(stream, problem, ts_ns)
        self._streams.clear()

    def _drop_oldest(self) -> None:
        """Too many streams in flight: give the oldest up (memory stays bounded)."""
        streams = self._streams
        while len(streams) > MAX_STREAMS:
            stream = streams[min(streams)]
            if not stream.ignored:
                self.sink.counters.dropped_requests += 1
            self._abort(stream, "dropped", None)
            streams.pop(stream.sid, None)

    def _request_end(self, stream: _Stream, ts_ns: int | None, problem: str | None) -> None:
        request = stream.request
        stream.req_done = True
        if request is None:
            return
        collector = stream.req_body
        stream.req_body = None
        end_ts = request.end_ts_ns if ts_ns is None else ts_ns
        if collector is not None:
            body, _ = collector.finish(problem is None, end_ts)
            request.body = body
            request.body_size = collector.wire_size
            if collector.capped:
                request.truncated = True
                request.problems.append("body-limit")
            if collector.problem is not None:
                request.problems.append(collector.problem)
        request.end_ts_ns = end_ts
        if problem is not None:
            request.truncated = True
            _add_problem(request, problem)
        counters = self.sink.counters
        counters.requests += 1
        self._count_problems(request.problems)
        sink = self.sink
        sink.out.append(RequestSeen(sink.info, request, stream.ex_id))
        if stream.response is not None and not stream.started_sent:
            self._send_started(stream)

    def _response_end(self, stream: _Stream, ts_ns: int, problem: str | None) -> None:
        response = stream.response
        stream.resp_done = True
        if response is None:
            return
        collector = stream.resp_body
        stream.resp_body = None
        if collector is not None:
            body, events = collector.finish(problem is None, ts_ns)
            response.body = body
            response.body_size = collector.wire_size
            if collector.capped:
                response.truncated = True
                response.problems.append("body-limit")
            if collector.problem is not None:
                response.problems.append(collector.problem)
            if events:
                self._events(stream, response, events)
        response.end_ts_ns = ts_ns
        if problem is not None:
            response.complete = False
            _add_problem(response, problem)
        self.sink.counters.responses += 1
        self._count_problems(response.problems)

    def _events(self, stream: _Stream, response: HttpResponse, events: list[SseEvent]) -> None:
        """SSE events completed: kept in the response while they fit, streamed out always."""
        sink = self.sink
        for event in events:
            size = len(event.data)
            if size <= stream.sse_budget:
                stream.sse_budget -= size
                response.sse_events.append(event)
            else:
                stream.sse_budget = -1
            if stream.started_sent:
                sink.counters.sse_events += 1
                sink.out.append(StreamEvent(sink.info, stream.ex_id, event, stream.events_sent))
                stream.events_sent += 1

    def _send_started(self, stream: _Stream) -> None:
        stream.started_sent = True
        response = stream.response
        if response is None:
            return
        sink = self.sink
        out = sink.out
        out.append(ResponseStarted(sink.info, stream.ex_id, response))
        for event in response.sse_events[stream.events_sent :]:  # held while the request was open
            sink.counters.sse_events += 1
            out.append(StreamEvent(sink.info, stream.ex_id, event, stream.events_sent))
            stream.events_sent += 1

    def _send_done(self, stream: _Stream) -> None:
        self._streams.pop(stream.sid, None)
        request = stream.request
        if request is None:
            return
        sink = self.sink
        counters = sink.counters
        counters.exchanges += 1
        response = stream.response
        if response is None:
            counters.incomplete_exchanges += 1
            counters.unanswered_requests += 1
        elif not response.complete:
            counters.incomplete_exchanges += 1
        sink.out.append(ExchangeDone(sink.info, stream.ex_id, request, response))

    def _count_problems(self, problems: list[str]) -> None:
        if not problems:
            return
        counters = self.sink.counters
        for problem in problems:
            if problem == "body-limit":
                counters.truncated_bodies += 1
            elif problem.startswith("decode-error"):
                counters.decode_errors += 1


_REQUEST = 1
_RESPONSE = 2


def _kind_of(headers: list[tuple[str, str]]) -> int:
    """Request or response header block, from its pseudo-headers (0: cannot tell)."""
    for name, _ in headers:
        if name == ":status":
            return _RESPONSE
        if name in (":method", ":path", ":scheme", ":authority"):
            return _REQUEST
        if name[:1] != ":":
            break
    return 0


def _skip_integer(block: bytes, pos: int, prefix_bits: int) -> int:
    """Position after an HPACK integer (RFC 7541 section 5.1) starting at ``pos``."""
    mask = (1 << prefix_bits) - 1
    if block[pos] & mask != mask:
        return pos + 1
    pos += 1
    while pos < len(block) and block[pos] & 0x80:
        pos += 1
    return pos + 1


def _peek_kind(block: bytes) -> int:
    """Request or response, from the first representation of an undecodable block.

    Pseudo-headers come first, and encoders use the static table for them: ``:authority``
    ``:method`` ``:path`` ``:scheme`` are static indexes 1-7, ``:status`` 8-14, either as
    an indexed field or as the indexed name of a literal.
    """
    pos = 0
    while pos < len(block) and block[pos] & 0xE0 == 0x20:  # dynamic table size updates
        pos = _skip_integer(block, pos, 5)
    if pos >= len(block):
        return 0
    first = block[pos]
    if first & 0x80:
        index = first & 0x7F
    elif first & 0x40:
        index = first & 0x3F
    else:
        index = first & 0x0F
    if 1 <= index <= 7:
        return _REQUEST
    if 8 <= index <= 14:
        return _RESPONSE
    return 0


def _add_problem(msg: HttpRequest | HttpResponse, problem: str) -> None:
    if problem not in msg.problems:
        msg.problems.append(problem)

"""AWS event-stream binary framing (`application/vnd.amazon.eventstream`).

Bedrock's ConverseStream and InvokeModelWithResponseStream answer with a sequence of
frames, each:

    total_length u32 | headers_length u32 | prelude_crc u32 (CRC32 of the 8 bytes before)
    headers (headers_length bytes) | payload | message_crc u32 (CRC32 of all bytes before)

all big-endian. A header is name_len u8, name, value_type u8, value; value types: 0/1
bool true/false (no bytes), 2 byte, 3 i16, 4 i32, 5 i64, 6 bytes (u16 length), 7
string (u16 length), 8 timestamp (i64 ms), 9 uuid (16 bytes).

Captured bodies may be cut or have lost bytes, so decoding never raises: a frame whose
CRCs do not match is skipped by scanning for the next valid prelude, and the caller
gets the frames it could read plus counts of what it could not.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

_PRELUDE = struct.Struct(">III")
_MIN_FRAME = 16  # prelude (12) + message CRC (4)
_MAX_FRAME = 16 * 1024 * 1024  # AWS caps messages far below this
_FIXED_SIZES = {2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_INT_FORMATS = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}

HeaderValue = bool | int | bytes | str


@dataclass(slots=True)
class Frame:
    """One decoded message: its headers, payload and byte offset in the body."""

    offset: int
    headers: dict[str, HeaderValue]
    payload: bytes

    @property
    def event_type(self) -> str:
        value = self.headers.get(":event-type") or self.headers.get(":exception-type") or ""
        return value if isinstance(value, str) else ""

    @property
    def message_type(self) -> str:
        value = self.headers.get(":message-type", "event")
        return value if isinstance(value, str) else ""


@dataclass(slots=True)
class DecodeResult:
    frames: list[Frame] = field(default_factory=list)
    bad_frames: int = 0  # CRC mismatches and malformed headers (skipped)
    skipped_bytes: int = 0  # bytes passed over while looking for a valid prelude
    trailing_bytes: int = 0  # an incomplete frame at the end (a cut body)


def looks_like_eventstream(body: bytes) -> bool:
    """True when the body starts with a valid event-stream prelude."""
    if len(body) < _MIN_FRAME:
        return False
    total, headers_len, crc = _PRELUDE.unpack_from(body, 0)
    return (
        _MIN_FRAME <= total <= _MAX_FRAME
        and headers_len <= total - _MIN_FRAME
        and (zlib.crc32(body[:8]) == crc)
    )


def _headers(data: bytes) -> dict[str, HeaderValue] | None:
    """Parse a headers block; None when it is malformed."""
    out: dict[str, HeaderValue] = {}
    pos = 0
    end = len(data)
    try:
        while pos < end:
            name_len = data[pos]
            pos += 1
            name = data[pos : pos + name_len].decode("utf-8", "replace")
            pos += name_len
            vtype = data[pos]
            pos += 1
            value: HeaderValue
            if vtype == 0:
                value = True
            elif vtype == 1:
                value = False
            elif vtype in (6, 7):
                (length,) = struct.unpack_from(">H", data, pos)
                pos += 2
                raw = data[pos : pos + length]
                if len(raw) != length:
                    return None
                pos += length
                value = raw.decode("utf-8", "replace") if vtype == 7 else raw
            elif vtype in _FIXED_SIZES:
                size = _FIXED_SIZES[vtype]
                raw = data[pos : pos + size]
                if len(raw) != size:
                    return None
                pos += size
                value = raw if vtype == 9 else struct.unpack(_INT_FORMATS[vtype], raw)[0]
            else:
                return None
            out[name] = value
    except (IndexError, struct.error):
        return None
    return out


def decode_frames(body: bytes) -> DecodeResult:
    """Every frame of an event-stream body, in order (see the module docstring)."""
    result = DecodeResult()
    pos = 0
    end = len(body)
    view = memoryview(body)
    while pos < end:
        if end - pos < _MIN_FRAME:
            result.trailing_bytes = end - pos
            break
        total, headers_len, prelude_crc = _PRELUDE.unpack_from(body, pos)
        valid_prelude = (
            _MIN_FRAME <= total <= _MAX_FRAME
            and headers_len <= total - _MIN_FRAME
            and zlib.crc32(view[pos : pos + 8]) == prelude_crc
        )
        if not valid_prelude:
            pos += 1
            result.skipped_bytes += 1
            continue
        if pos + total > end:
            result.trailing_bytes = end - pos
            break
        (message_crc,) = struct.unpack_from(">I", body, pos + total - 4)
        if zlib.crc32(view[pos : pos + total - 4]) != message_crc:
            result.bad_frames += 1
            pos += 1  # the prelude may have been a coincidence: rescan from the next byte
            result.skipped_bytes += 1
            continue
        headers = _headers(body[pos + 12 : pos + 12 + headers_len])
        if headers is None:
            result.bad_frames += 1
        else:
            payload = body[pos + 12 + headers_len : pos + total - 4]
            result.frames.append(Frame(pos, headers, payload))
        pos += total
    return result


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One frame with string headers: what the decoder reads (used to build fixtures)."""
    block = b"".join(
        bytes([len(name.encode())])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + block + payload
    return message + struct.pack(">I", zlib.crc32(message))

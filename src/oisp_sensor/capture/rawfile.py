"""Raw capture files: ring-buffer records saved as-is, to replay without the kernel.

This is how decoders get realistic fixtures and how the decode benchmark runs: a
capture made once (`record --save-raw F`) replays through exactly the pipeline code.

Format: the magic line `OISPRAW1\\n`, one JSON metadata line (clock offset, sensor
version, host), then records, each as a little-endian u32 length and the record bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO, Any

import orjson

MAGIC = b"OISPRAW1\n"
_LEN = struct.Struct("<I")
MAX_RECORD = 1 << 20


class RawFileError(ValueError):
    """Not a raw capture file, or a damaged one (one-line message)."""


class RawWriter:
    def __init__(self, f: IO[bytes], metadata: dict[str, Any]) -> None:
        self.f = f
        f.write(MAGIC)
        f.write(orjson.dumps(metadata) + b"\n")
        self.records = 0

    def write(self, records: list[bytes]) -> None:
        out = bytearray()
        for rec in records:
            out += _LEN.pack(len(rec))
            out += rec
        self.f.write(out)
        self.records += len(records)

    def close(self) -> None:
        self.f.close()


def read_raw(f: IO[bytes]) -> tuple[dict[str, Any], Iterator[bytes]]:
    """Metadata and an iterator over records. A file cut midway ends at the last whole record."""
    if f.read(len(MAGIC)) != MAGIC:
        raise RawFileError("not an oisp-sensor raw capture (bad magic)")
    try:
        metadata = orjson.loads(f.readline())
    except orjson.JSONDecodeError:
        raise RawFileError("raw capture metadata line is not JSON") from None

    def records() -> Iterator[bytes]:
        while True:
            head = f.read(4)
            if len(head) < 4:
                return
            (length,) = _LEN.unpack(head)
            if length > MAX_RECORD:
                raise RawFileError(f"raw capture damaged: record of {length} bytes")
            body = f.read(length)
            if len(body) < length:
                return
            yield body

    return metadata, records()

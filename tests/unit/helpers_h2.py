"""Real HTTP/2 byte streams for decoder tests, made by two ``h2`` endpoints talking in memory.

Why real endpoints: hand-made frames would only test the decoder against our own reading
of the RFC. ``h2`` (hyper-h2) is a widely used, independent implementation: its client
and server negotiate SETTINGS, flow control and HPACK exactly as deployed stacks do, so
what it writes is what a capture of httpx or a Python server looks like. A script drives
both ends; every byte one end writes is handed to the other (so the peers stay in a valid
state) and recorded as a :class:`Step` of the client process: its writes are ``W``, what
it reads ``R``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import h2.config
import h2.connection
import h2.events
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame
from tests.unit.helpers_decode import R, Step, W

from oisp_sensor.capture.records import Direction

Headers = Sequence[tuple[bytes, bytes]]

CHAT_PATH = b"/v1/chat/completions"


def request_headers(
    method: bytes = b"POST",
    path: bytes = CHAT_PATH,
    authority: bytes = b"api.openai.com",
    extra: Headers = ((b"content-type", b"application/json"),),
) -> list[tuple[bytes, bytes]]:
    """Request pseudo-headers (in the order clients send them) then ``extra``."""
    return [
        (b":method", method),
        (b":scheme", b"https"),
        (b":authority", authority),
        (b":path", path),
        (b"authorization", b"Bearer sk-test"),
        (b"user-agent", b"h2-test/1.0"),
        *extra,
    ]


def response_headers(
    status: int = 200, extra: Headers = ((b"content-type", b"application/json"),)
) -> list[tuple[bytes, bytes]]:
    """``:status`` then ``extra``."""
    return [(b":status", str(status).encode()), *extra]


class H2Script:
    """A client and a server ``H2Connection`` in memory; their bytes become Steps."""

    def __init__(self, *, server_settings: dict[int, int] | None = None) -> None:
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.steps: list[Step] = []
        self.client.initiate_connection()
        self.server.initiate_connection()
        if server_settings:
            self.server.update_settings(server_settings)
        self.server_events: list[h2.events.Event] = []
        self.client_events: list[h2.events.Event] = []
        self.flush()

    # ---- moving bytes -------------------------------------------------------------------------

    def client_out(self) -> bool:
        """What the client wrote so far reaches the server (one step); False if nothing."""
        data = self.client.data_to_send()
        if data:
            self.steps.append(Step(W, data))
            self.server_events += self.server.receive_data(data)
        return bool(data)

    def server_out(self) -> bool:
        """What the server wrote so far reaches the client (one step); False if nothing."""
        data = self.server.data_to_send()
        if data:
            self.steps.append(Step(R, data))
            self.client_events += self.client.receive_data(data)
        return bool(data)

    def flush(self) -> None:
        """Exchange bytes until both ends are quiet (acks, window updates)."""
        for _ in range(10):
            moved = self.client_out()
            if not self.server_out() and not moved:
                return

    def raw(self, direction: Direction, data: bytes) -> None:
        """Bytes that did not come from an endpoint (hand-made or corrupt frames)."""
        self.steps.append(Step(direction, data))

    # ---- conversation ----------------------------------------------------------------------

    def request(self, headers: Headers | None = None, body: bytes = b"", *, flush: bool = True) -> int:
        """A whole request on a new stream; returns its id."""
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, list(headers or request_headers()), end_stream=not body)
        if body:
            self.send_body(self.client, sid, body)
        if flush:
            self.client_out()
        return sid

    def respond(
        self,
        sid: int,
        headers: Headers | None = None,
        body: bytes = b"",
        *,
        pieces: Sequence[bytes] | None = None,
        end: bool = True,
    ) -> None:
        """A response: head, then ``body`` (or each of ``pieces`` as its own step)."""
        self.server.send_headers(
            sid, list(headers or response_headers()), end_stream=end and not (body or pieces)
        )
        if pieces is not None:
            for index, piece in enumerate(pieces):
                self.server.send_data(sid, piece, end_stream=end and index == len(pieces) - 1)
                self.server_out()
            return
        if body:
            self.send_body(self.server, sid, body, end=end)
        self.server_out()

    def send_body(self, conn: h2.connection.H2Connection, sid: int, body: bytes, *, end: bool = True) -> None:
        """Send ``body`` in frames of the peer's maximum size, pausing for window updates."""
        sender_is_client = conn is self.client
        while True:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            chunk, body = body[:room], body[room:]
            conn.send_data(sid, chunk, end_stream=end and not body)
            if not body:
                return
            if conn.local_flow_control_window(sid) == 0:
                # the receiver read everything so far and opens the windows again
                if sender_is_client:
                    self.client_out()
                    self._ack(self.server)
                    self.server_out()
                else:
                    self.server_out()
                    self._ack(self.client)
                    self.client_out()

    def _ack(self, receiver: h2.connection.H2Connection) -> None:
        events = self.server_events if receiver is self.server else self.client_events
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                receiver.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        events.clear()

    # ---- hand-made frames --------------------------------------------------------------------

    def padded_request(self, headers: Headers, body: bytes, pad: int) -> int:
        """A request whose HEADERS (with a priority) and DATA frames are padded.

        h2 pads DATA only: the HEADERS frame it wrote is re-serialised with padding, so the
        block is still the client's own encoder's and both endpoints stay in step.
        """
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(
            sid, list(headers), priority_weight=16, priority_depends_on=0, priority_exclusive=False
        )
        self.client.send_data(sid, body, end_stream=True, pad_length=pad)
        wire = b""
        for frame in parse_frames(self.client.data_to_send()):
            if isinstance(frame, HeadersFrame):
                frame.flags.add("PADDED")
                frame.pad_length = pad
            wire += frame.serialize()
        self.steps.append(Step(W, wire))
        self.server_events += self.server.receive_data(wire)
        return sid


def parse_frames(data: bytes) -> list[Frame]:
    """hyperframe's reading of some whole frames."""
    frames: list[Frame] = []
    pos = 0
    while pos < len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
        frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
        frames.append(frame)
        pos += 9 + length
    return frames


def continuation_split(frame_bytes: bytes) -> int:
    """Number of CONTINUATION frames in some bytes (to check a sample really has them)."""
    count = 0
    pos = 0
    while pos + 9 <= len(frame_bytes):
        length = int.from_bytes(frame_bytes[pos : pos + 3], "big")
        if frame_bytes[pos + 3] == ContinuationFrame.type:
            count += 1
        pos += 9 + length
    return count


def gzip_stream(parts: Sequence[bytes]) -> list[bytes]:
    """gzip-compress a stream, sync-flushing after each part (as a streaming server does)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    pieces = [compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH) for part in parts]
    pieces[-1] += compressor.flush()
    return pieces

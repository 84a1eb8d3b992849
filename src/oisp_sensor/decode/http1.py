"""Incremental HTTP/1.1 request and response parsers for one observed byte stream.

The capture hands us each direction of a connection as chunks cut wherever the
application called SSL_write/SSL_read, sometimes with bytes missing (the kernel ring
buffer overflowed) or garbage in between. These parsers turn such a stream into
:class:`HttpRequest` / :class:`HttpResponse` objects and report them, as they happen,
to a *sink* (the connection tracker, which pairs requests with responses).

Framing is done by ``httptools`` (llhttp, in C) through its callbacks; this module adds
what a passive observer needs on top of it:

* bodies: Content-Encoding undone incrementally, capped at ``max_body_bytes`` (the first
  N decoded bytes are kept; framing continues), SSE events for ``text/event-stream``;
* lost bytes (:meth:`gap`): inside a Content-Length body they are accounted as body and
  parsing continues; otherwise the message in progress is finished as incomplete and the
  stream is *resynchronised* at the next message start (a request line, or ``HTTP/1.``);
* malformed input: llhttp errors are counted, the message in progress is emitted as far
  as known, and the stream resynchronises; nothing is raised;
* responses to ``HEAD`` (and ``2xx`` to ``CONNECT``) have no body whatever their headers
  say. llhttp cannot be told this through httptools, so while such a request is awaiting
  its answer the response stream is fed in pieces cut before every ``HTTP/1.`` and the
  head of that response is parsed on its own (see :class:`ResponseParser`);
* 1xx interim responses are skipped; a ``101`` ends HTTP on the connection.
"""

from __future__ import annotations

import codecs
import itertools
import re
from typing import ClassVar, Protocol

import httptools
from httptools import HttpParserError, HttpParserUpgrade
from httptools.parser.errors import HttpParserCallbackError, HttpParserInvalidMethodError

from oisp_sensor.decode.encoding import ContentDecoder, make_decoder
from oisp_sensor.decode.messages import HttpRequest, HttpResponse, SseEvent
from oisp_sensor.decode.sse import SseParser

__all__ = [
    "METHODS",
    "REQUEST_LINE_RE",
    "REQUEST_START_RE",
    "STATUS_LINE_RE",
    "BodyCollector",
    "RequestParser",
    "RequestSink",
    "ResponseParser",
    "ResponseSink",
]

METHODS: tuple[bytes, ...] = (
    b"GET",
    b"POST",
    b"PUT",
    b"PATCH",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"CONNECT",
    b"TRACE",
)
_METHOD_ALT = b"|".join(METHODS)
REQUEST_START_RE = re.compile(rb"(?:" + _METHOD_ALT + rb") ")
"""A method token and a space: how a request starts."""
REQUEST_LINE_RE = re.compile(rb"(?:" + _METHOD_ALT + rb") [!-~\x80-\xff]+ HTTP/1\.[01]\r\n")
"""A whole request line: what a request stream resynchronises on."""
STATUS_LINE_RE = re.compile(rb"HTTP/1\.[01] [1-5][0-9][0-9](?: [^\r\n]*)?\r\n")
"""A whole status line: what a response stream resynchronises on."""
_RESPONSE_START_RE = re.compile(rb"HTTP/")
_RESPONSE_PREFIX = b"HTTP/1."

_BODYLESS_METHODS = frozenset({"HEAD", "CONNECT"})
_MAX_HEAD_BYTES = 64 * 1024  # a bodyless response head held while waiting for its end
# A message head (start line and headers) longer than this is not HTTP anyone serves
# (servers refuse 8 to 64 KiB): past it the message is dropped as a parse error, since
# llhttp's callbacks would keep every byte (and re-copy it) until the head ends.
_MAX_HEAD_TOTAL = 256 * 1024
_NO_EVENTS: list[SseEvent] = []  # shared, never mutated: "no SSE events from this chunk"

Chunks = list[tuple[int, bytes]]
"""Bytes of a stream with the capture time of the record each piece came in."""

# parser modes
_NORMAL = 0  # llhttp is fed
_RESYNC = 1  # looking for the next message start after lost or malformed bytes
_HEAD_ONLY = 2  # buffering the head of a response that has no body (HEAD / CONNECT)
_MANUAL_BODY = 3  # rest of a Content-Length body counted by hand (after a gap)
_STOPPED = 4  # stream is no longer HTTP (upgrade, tunnel) or was closed

# body framing of the message in progress
_NO_BODY = 0
_LENGTH = 1
_CHUNKED = 2
_UNTIL_CLOSE = 3


class RequestSink(Protocol):
    """Receives what a :class:`RequestParser` finds, synchronously, in stream order."""

    def request_head(self, request: HttpRequest) -> None:
        """A request's head was parsed (its body may still be coming)."""

    def request_done(self, request: HttpRequest) -> None:
        """The request ended: complete, or marked ``truncated`` with a problem."""

    def request_resync(self) -> None:
        """Bytes were lost or unreadable: requests may have vanished at this point."""

    def parse_error(self) -> None:
        """llhttp rejected the stream (counted; the parser resynchronises)."""


class ResponseSink(Protocol):
    """Receives what a :class:`ResponseParser` finds, and answers what it must know.

    The parser asks which request the next response answers because the request
    method decides whether that response has a body.
    """

    def bodyless_pending(self) -> bool:
        """Is any request still awaiting its answer a HEAD or a CONNECT?"""

    def next_request_method(self, ts_ns: int) -> str | None:
        """Method of the request a response starting at ``ts_ns`` would answer."""

    def response_head(self, response: HttpResponse) -> None:
        """A final (non-1xx) response head was parsed."""

    def response_event(self, response: HttpResponse, event: SseEvent) -> None:
        """One more SSE event of that response completed."""

    def response_done(self, response: HttpResponse) -> None:
        """The response ended (``complete`` False when it was cut)."""

    def response_lost(self) -> None:
        """A response started but its head was lost or unreadable."""

    def response_resync(self) -> None:
        """Bytes were lost or unreadable: responses may have vanished at this point."""

    def parse_error(self) -> None:
        """llhttp rejected the stream (counted; the parser resynchronises)."""

    def upgraded(self) -> None:
        """The connection left HTTP/1.1 (101 Switching Protocols, CONNECT tunnel)."""


class BodyCollector:
    """One message body: wire size, Content-Encoding undone, size cap, SSE events.

    Why a class of its own: the same rules apply to requests and responses, whether the
    bytes come from llhttp or are counted by hand after a gap. When an encoding is
    present the raw bytes are kept too (up to the cap), because a decode error must
    leave the raw body, not half-decoded bytes.
    """

    __slots__ = (
        "_decode_off",
        "_decoder",
        "_kept",
        "_limit",
        "_parts",
        "_raw",
        "_raw_cut",
        "_raw_kept",
        "_sse",
        "_text",
        "capped",
        "problem",
        "wire_size",
    )

    def __init__(self, limit: int, decoder: ContentDecoder | None, sse: SseParser | None) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._kept = 0
        self.wire_size = 0
        self.capped = False
        self._decoder = decoder
        self._sse = sse
        self._text: codecs.IncrementalDecoder | None = None
        self.problem: str | None = None
        if sse is not None:
            self._text = codecs.getincrementaldecoder("utf-8")("replace")
        if decoder is not None:  # raw bytes are only kept (and looked at) when decoding
            self.problem = decoder.problem
            self._decode_off = decoder.failed
            self._raw: list[bytes] = []
            self._raw_kept = 0
            self._raw_cut = False

    def add(self, data: bytes, ts_ns: int) -> list[SseEvent]:
        """Take one wire chunk of body; return the SSE events it completed."""
        self.wire_size += len(data)
        decoder = self._decoder
        if decoder is None:
            plain = data
        else:
            room = self._limit - self._raw_kept
            if len(data) <= room:
                self._raw.append(data)
                self._raw_kept += len(data)
            else:
                self._raw_cut = True
                if room > 0:
                    self._raw.append(data[:room])
                    self._raw_kept = self._limit
            if self._decode_off:
                return _NO_EVENTS
            plain = decoder.feed(data)
            if decoder.problem is not None:
                self.problem = decoder.problem
                self._decode_off = True
                return _NO_EVENTS
        if not plain:
            return _NO_EVENTS
        self._keep(plain)
        if self._sse is not None and self._text is not None:
            return self._sse.feed(self._text.decode(plain), ts_ns)
        return _NO_EVENTS

    def skip(self, nbytes: int) -> None:
        """``nbytes`` of body were lost: count them; a compressed stream cannot go on."""
        self.wire_size += nbytes
        if self._decoder is not None:
            self._decode_off = True
        if self._sse is not None:
            self._sse.reset_partial()
            self._text = codecs.getincrementaldecoder("utf-8")("replace")

    def finish(self, complete: bool, ts_ns: int) -> tuple[bytes, list[SseEvent]]:
        """End of body: (body to report, last SSE events)."""
        events = _NO_EVENTS
        decoder = self._decoder
        if decoder is not None and not self._decode_off and complete:
            tail = decoder.finish()
            if decoder.problem is not None:
                self.problem = decoder.problem
            elif tail:
                self._keep(tail)
                if self._sse is not None and self._text is not None:
                    events = self._sse.feed(self._text.decode(tail), ts_ns)
        if decoder is not None and self.problem is not None:
            self.capped = self._raw_cut
            return b"".join(self._raw), events
        if len(self._parts) == 1:
            return self._parts[0], events
        return b"".join(self._parts), events

    def _keep(self, plain: bytes) -> None:
        """Keep decoded bytes up to the cap; past it only remember that we cut."""
        room = self._limit - self._kept
        if len(plain) <= room:
            self._parts.append(plain)
            self._kept += len(plain)
            return
        self.capped = True
        if room > 0:
            self._parts.append(plain[:room])
            self._kept = self._limit
        if self._sse is None and self._decoder is not None:
            self._decode_off = True  # nothing more will be kept: stop paying for inflation


def decode_headers(raw_names: list[bytes], raw_values: list[bytes]) -> list[tuple[str, str]]:
    """Header pairs as reported: names lower-cased, latin-1 (never fails), wire order.

    Names and values are joined, decoded and split in one go (llhttp rejects line feeds
    inside them), which costs a fraction of decoding pair by pair.
    """
    count = len(raw_names)
    if not count:
        return []
    names = b"\n".join(raw_names).lower().decode("latin-1").split("\n")
    values = b"\n".join(raw_values).decode("latin-1").split("\n")
    if len(names) != count or len(values) != count:  # a stray line feed: pair by pair
        names = [name.lower().decode("latin-1") for name in raw_names]
        values = [value.decode("latin-1") for value in raw_values]
    return list(zip(names, values))  # noqa: B905 - lengths checked above; strict= is slow


def _framing_headers(headers: list[tuple[str, str]]) -> tuple[int | None, bool]:
    """(Content-Length, chunked) of a head; only needed after a gap or at close."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == "content-length":
            try:
                length = int(value.split(",")[0].strip())
            except ValueError:
                length = None
        elif name == "transfer-encoding":  # the last coding of the last header decides
            chunked = value.rstrip().lower().endswith("chunked")
    return length, chunked


def _is_event_stream(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def _split_chunks(chunks: Chunks, at: int) -> tuple[Chunks, Chunks]:
    """Cut timestamped chunks at byte position ``at`` of their concatenation."""
    before: Chunks = []
    after: Chunks = []
    pos = 0
    for ts_ns, chunk in chunks:
        end = pos + len(chunk)
        if end <= at:
            before.append((ts_ns, chunk))
        elif pos >= at:
            after.append((ts_ns, chunk))
        else:
            before.append((ts_ns, chunk[: at - pos]))
            after.append((ts_ns, chunk[at - pos :]))
        pos = end
    return before, after


def _keep_tail(chunks: Chunks, keep: int) -> Chunks:
    """The last ``keep`` bytes of timestamped chunks, each byte keeping its record's time."""
    total = sum(len(chunk) for _, chunk in chunks)
    if keep <= 0:
        return []
    return _split_chunks(chunks, total - keep)[1] if total > keep else chunks


def _join(chunks: Chunks) -> bytes:
    if len(chunks) == 1:
        return chunks[0][1]
    return b"".join(chunk for _, chunk in chunks)


class _MessageParser:
    """What requests and responses share: llhttp callbacks, modes, gaps, resync, close.

    Subclasses provide the llhttp parser type, the resync patterns, and what to do
    with a head, a finished message and an aborted one.
    """

    _line_re: ClassVar[re.Pattern[bytes]]  # a whole first line, to resync on
    _start_re: ClassVar[re.Pattern[bytes]]  # a loose message start, to locate a failed one
    _max_partial_line: ClassVar[int]  # longest unfinished first line kept while resyncing

    __slots__ = (
        "_begins",
        "_body",
        "_head_fed",
        "_in_msg",
        "_last_ts",
        "_max_body",
        "_mode",
        "_msg",
        "_parser",
        "_pending",
        "_raw_names",
        "_raw_values",
        "_remaining",
        "_sse_budget",
        "_start_ts",
        "_ts",
    )

    def __init__(self, max_body_bytes: int) -> None:
        self._max_body = max_body_bytes
        self._mode = _NORMAL
        self._parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = self._new_parser()
        self._ts = 0  # capture time of the chunk being parsed
        self._last_ts = 0  # capture time of the last chunk seen (end time of aborted messages)
        self._pending: Chunks = []  # bytes held while resyncing / head-only
        self._begins = 0
        self._sse_budget = 0  # event data bytes response.sse_events may still keep
        self._reset_message()

    # ---- public API ------------------------------------------------------------------

    def feed(self, data: bytes, ts_ns: int) -> None:
        """Parse the next bytes of the stream (contiguous with the previous ones)."""
        if not data:
            return
        more = self._feed_normal(data, ts_ns) if self._mode == _NORMAL else self._dispatch(data, ts_ns)
        # A mode change (resync, end of a hand-counted body, a bodyless head...) hands back
        # the bytes after it, to parse in the new mode: a loop, so hostile input cannot
        # make it recurse.
        while more:
            chunk_ts, chunk = more.pop(0)
            extra = self._dispatch(chunk, chunk_ts) if chunk else None
            if extra:
                more[0:0] = extra

    def _dispatch(self, data: bytes, ts_ns: int) -> Chunks | None:
        mode = self._mode
        if mode == _NORMAL:
            return self._feed_normal(data, ts_ns)
        if mode == _MANUAL_BODY:
            return self._feed_manual(data, ts_ns)
        if mode == _RESYNC:
            return self._feed_resync(data, ts_ns)
        if mode == _HEAD_ONLY:
            return self._feed_head_only(data, ts_ns)
        return None  # stopped

    def gap(self, nbytes: int, ts_ns: int) -> None:
        """``nbytes`` of the stream were lost just before the next chunk (arriving at ts_ns)."""
        mode = self._mode
        if mode == _STOPPED or nbytes <= 0:
            return
        if mode == _RESYNC:
            self._pending = []  # what was held is no longer contiguous with what comes
            return
        msg = self._msg
        if msg is not None and mode != _HEAD_ONLY:
            if self._absorb_gap(msg, nbytes, ts_ns):
                return
            self._mark_gap(msg)
            self._finish(self._last_ts, "gap")
        else:
            self._lost_start()
        self.start_resync()

    def close(self) -> None:
        """End of the stream: finish what can be finished, then ignore everything.

        A parser closed between two messages keeps its llhttp state (at a message start)
        so that :meth:`rebind` can reuse it for another connection.
        """
        clean = self._mode == _NORMAL and not self._in_msg and self._parser is not None
        if self._msg is not None:
            if self._mode != _MANUAL_BODY and self._framing() == _UNTIL_CLOSE:
                self._finish(self._last_ts)
            else:
                self._finish(self._last_ts, "incomplete")
        if clean:
            self._mode = _STOPPED
        else:
            self.stop()

    @property
    def reusable(self) -> bool:
        """Closed cleanly between messages: :meth:`rebind` may give it another stream."""
        return self._mode == _STOPPED and self._parser is not None

    def rebind(self, sink: RequestSink | ResponseSink) -> None:
        """Start over on a new stream, reporting to ``sink`` (only when :attr:`reusable`)."""
        self._sink = sink
        self._mode = _NORMAL
        self._ts = 0
        self._last_ts = 0
        self._pending = []
        self._begins = 0
        self._reset_message()

    def stop(self) -> None:
        """The stream stops being HTTP (upgrade, tunnel, close): ignore what follows."""
        self._reset_message()
        self._mode = _STOPPED
        self._parser = None
        self._pending = []

    def start_resync(self) -> None:
        """Skip bytes until the next message start (after lost or malformed bytes)."""
        self._reset_message()
        self._mode = _RESYNC
        self._parser = None
        self._pending = []
        self._on_resync()

    @property
    def in_message(self) -> bool:
        """True while a message has started and not finished."""
        return self._in_msg

    # ---- llhttp callbacks (shared) ----------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_msg = True
        self._head_fed = 0
        self._begins += 1
        self._start_ts = self._ts
        self._raw_names = []
        self._raw_values = []

    def on_header(self, name: bytes, value: bytes) -> None:
        msg = self._msg
        if msg is None:
            self._raw_names.append(name)
            self._raw_values.append(value)
        else:  # trailer after a chunked body: reported after the head's headers
            msg.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        collector = self._body
        if collector is None:
            collector = self._body = self._new_collector()
        events = collector.add(body, self._ts)
        if events:
            self._deliver_events(events, self._msg)

    def on_message_complete(self) -> None:
        self._finish(self._ts)

    # ---- feeding -------------------------------------------------------------------

    def _feed_normal(self, data: bytes, ts_ns: int) -> Chunks | None:
        return self._feed_llhttp(data, ts_ns)

    def _feed_llhttp(self, data: bytes, ts_ns: int) -> Chunks | None:
        """Run llhttp over one chunk; turn its exceptions into upgrade / resync."""
        self._ts = ts_ns
        self._last_ts = ts_ns
        self._begins = 0
        parser = self._parser
        if parser is None:
            parser = self._parser = self._new_parser()
        try:
            parser.feed_data(data)
        except HttpParserUpgrade as exc:
            return self._on_upgrade(data[int(exc.args[0]) :], ts_ns)
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            if cause is not None and not isinstance(cause, HttpParserError):
                raise cause from None  # a bug in a callback: not the traffic's fault
            return self._on_parse_error(data, ts_ns, bad_start=False)
        except HttpParserError as exc:
            return self._on_parse_error(data, ts_ns, bad_start=self._bad_start(exc))
        if self._in_msg and self._msg is None:  # the head goes on past this chunk
            self._head_fed += len(data)
            if self._head_fed > _MAX_HEAD_TOTAL:
                self._count_parse_error()
                self._lost_start()
                self.start_resync()
        return None

    def _feed_manual(self, data: bytes, ts_ns: int) -> Chunks | None:
        """Rest of a Content-Length body after a gap: counted here, llhttp is detached."""
        self._ts = ts_ns
        self._last_ts = ts_ns
        remaining = self._remaining
        if len(data) < remaining:
            self._remaining -= len(data)
            self.on_body(data)
            return None
        self._remaining = 0
        self.on_body(data[:remaining])
        self._finish(ts_ns)
        self._mode = _NORMAL
        self._parser = self._new_parser()
        return [(ts_ns, data[remaining:])] if len(data) > remaining else None

    def _feed_resync(self, data: bytes, ts_ns: int) -> Chunks | None:
        """Hold bytes until a message start appears, then parse from there."""
        self._last_ts = ts_ns
        pending = self._pending
        pending.append((ts_ns, data))
        buf = _join(pending)
        match = self._line_re.search(buf)
        if match is None:
            # A start line has no line feed: only what follows the last one can begin it.
            # The kept tail is merged into one chunk (stamped with its oldest record's time)
            # so that a stream arriving byte by byte is not rescanned chunk by chunk.
            line_start = buf.rfind(b"\n") + 1
            keep = min(len(buf) - line_start, self._max_partial_line)
            kept = _keep_tail(pending, keep)
            self._pending = [(kept[0][0], buf[len(buf) - keep :])] if kept else []
            return None
        self._pending = []
        self._mode = _NORMAL
        self._parser = self._new_parser()
        return _split_chunks(pending, match.start())[1]

    def _feed_head_only(self, data: bytes, ts_ns: int) -> Chunks | None:
        raise NotImplementedError  # responses only

    # ---- errors, gaps, upgrades ---------------------------------------------------

    def _on_parse_error(self, data: bytes, ts_ns: int, *, bad_start: bool) -> Chunks | None:
        """llhttp rejected the stream: report, keep what is known, resync after the bad start.

        llhttp does not say where it failed, so the restart point is inferred: the failing
        message is the ``begun``-th one that began in this chunk, and the ones before it
        were valid, so each began with a method (or ``HTTP/``). Resync starts just after
        the failing message's first byte (so it is not parsed again), or, when it did not
        even start like a message (``bad_start``), just after the last valid start.
        """
        self._count_parse_error()
        begun = self._begins
        if self._msg is not None:
            self._finish(ts_ns, "parse-error")
        elif self._in_msg:
            self._lost_start()
        restart = 0  # nothing began here: the bad message came from an earlier chunk
        index = begun - 2 if bad_start else begun - 1
        if begun and index >= 0:
            starts = [m.start() for m in itertools.islice(self._start_re.finditer(data), index + 1)]
            restart = starts[index] + 1 if len(starts) > index else len(data)
        self.start_resync()
        return [(ts_ns, data[restart:])] if restart < len(data) else None

    def _absorb_gap(self, msg: HttpRequest | HttpResponse, nbytes: int, ts_ns: int) -> bool:
        """Account lost bytes as body when framing allows it; False if the message is lost."""
        collector = self._body
        if collector is None:
            collector = self._body = self._new_collector()
        if self._mode == _MANUAL_BODY:
            framing = _LENGTH
        else:
            framing = self._framing()
            if framing == _LENGTH:
                length, _ = _framing_headers(msg.headers)
                self._remaining = (length or 0) - collector.wire_size
        if framing == _LENGTH and nbytes <= self._remaining:
            self._mark_gap(msg)
            collector.skip(nbytes)
            self._remaining -= nbytes
            self._parser = None  # llhttp would need the lost bytes; count the rest by hand
            self._mode = _MANUAL_BODY
            if self._remaining == 0:
                self._finish(ts_ns)
                self._mode = _NORMAL
                self._parser = self._new_parser()
            return True
        if framing == _UNTIL_CLOSE:
            self._mark_gap(msg)
            collector.skip(nbytes)
            return True
        return False

    @staticmethod
    def _mark_gap(msg: HttpRequest | HttpResponse) -> None:
        msg.truncated = True
        if "gap" not in msg.problems:
            msg.problems.append("gap")

    def _on_upgrade(self, rest: bytes, ts_ns: int) -> Chunks | None:
        raise NotImplementedError

    # ---- message life cycle --------------------------------------------------------

    def _reset_message(self) -> None:
        self._in_msg = False
        self._head_fed = 0  # bytes of the current message head fed so far (approximately)
        self._msg: HttpRequest | HttpResponse | None = None
        self._body: BodyCollector | None = None
        self._remaining = 0  # Content-Length bytes still due, counted by hand after a gap
        self._start_ts = 0
        self._raw_names: list[bytes] = []
        self._raw_values: list[bytes] = []

    def _framing(self) -> int:
        """How the body of the message in progress ends (llhttp frames; this is for gaps/close)."""
        msg = self._msg
        if msg is None:
            return _NO_BODY
        length, chunked = _framing_headers(msg.headers)
        if chunked:
            return _CHUNKED
        if length is not None:
            return _LENGTH
        return _UNTIL_CLOSE if isinstance(msg, HttpResponse) else _NO_BODY

    def _new_collector(self) -> BodyCollector:
        """Body state, made at the first body byte (many messages have no body)."""
        msg = self._msg
        if msg is None:  # cannot happen: llhttp sends a body only after a head
            return BodyCollector(self._max_body, None, None)
        encoding: str | None = None
        ctype = ""
        for name, value in msg.headers:
            if name == "content-encoding":
                encoding = value if encoding is None else f"{encoding}, {value}"
            elif name == "content-type" and not ctype:
                ctype = value
        sse = None
        if ctype and isinstance(msg, HttpResponse) and _is_event_stream(ctype):
            sse = SseParser(max_event_bytes=self._max_body)
            self._sse_budget = self._max_body
        return BodyCollector(self._max_body, make_decoder(encoding) if encoding else None, sse)

    def _finish(self, ts_ns: int, problem: str | None = None) -> None:
        """The message in progress ended (complete when ``problem`` is None)."""
        msg = self._msg
        collector = self._body
        self._reset_message()
        if msg is None:
            return
        if collector is not None:
            body, events = collector.finish(problem is None, ts_ns)
            msg.body = body
            msg.body_size = collector.wire_size
            if collector.capped:
                msg.truncated = True
                msg.problems.append("body-limit")
            if collector.problem is not None:
                msg.problems.append(collector.problem)
            if events:
                self._deliver_events(events, msg)
        msg.end_ts_ns = ts_ns
        if problem is not None:
            self._mark_incomplete(msg, problem)
        self._deliver(msg)

    # ---- hooks ----------------------------------------------------------------------

    _sink: RequestSink | ResponseSink

    def _new_parser(self) -> httptools.HttpRequestParser | httptools.HttpResponseParser:
        raise NotImplementedError

    def _deliver_events(self, events: list[SseEvent], msg: HttpRequest | HttpResponse | None) -> None:
        """SSE events completed by the body (responses only)."""

    def _mark_incomplete(self, msg: HttpRequest | HttpResponse, problem: str) -> None:
        raise NotImplementedError

    def _deliver(self, msg: HttpRequest | HttpResponse) -> None:
        raise NotImplementedError

    def _lost_start(self) -> None:
        """A message began but its head never made it (lost or malformed)."""

    def _bad_start(self, exc: HttpParserError) -> bool:
        """True when llhttp failed on the very first bytes: not a message start at all."""
        raise NotImplementedError

    def _on_resync(self) -> None:
        raise NotImplementedError

    def _count_parse_error(self) -> None:
        raise NotImplementedError


class RequestParser(_MessageParser):
    """Requests of one stream (the client's writes, or a server's reads)."""

    _line_re = REQUEST_LINE_RE
    _start_re = REQUEST_START_RE
    _max_partial_line = 8192

    __slots__ = ("_sink", "_url")

    def __init__(self, sink: RequestSink, max_body_bytes: int) -> None:
        self._sink = sink
        self._url = b""
        super().__init__(max_body_bytes)

    def _new_parser(self) -> httptools.HttpRequestParser:
        parser = httptools.HttpRequestParser(self)
        parser.set_dangerous_leniencies(lenient_keep_alive=True)
        return parser

    def on_message_begin(self) -> None:
        # (the shared part is repeated, not called through super(): this runs per message)
        self._in_msg = True
        self._head_fed = 0
        self._begins += 1
        self._start_ts = self._ts
        self._raw_names = []
        self._raw_values = []
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        request = HttpRequest(
            method=parser.get_method().decode("ascii", "replace"),
            target=self._url.decode("latin-1"),
            version=parser.get_http_version(),
            headers=decode_headers(self._raw_names, self._raw_values),
            body=b"",
            start_ts_ns=self._start_ts,
            end_ts_ns=self._ts,
        )
        self._msg = request
        self._sink.request_head(request)

    def _on_upgrade(self, rest: bytes, ts_ns: int) -> Chunks | None:
        # The request asked for an upgrade (or is a CONNECT); whether it happens is the
        # response's call. Until then, keep parsing requests after it.
        self._parser = self._new_parser()
        return [(ts_ns, rest)] if rest else None

    def _mark_incomplete(self, msg: HttpRequest | HttpResponse, problem: str) -> None:
        msg.truncated = True
        if problem not in msg.problems:
            msg.problems.append(problem)

    def _deliver(self, msg: HttpRequest | HttpResponse) -> None:
        assert isinstance(msg, HttpRequest)
        self._sink.request_done(msg)

    def _on_resync(self) -> None:
        self._sink.request_resync()

    def _count_parse_error(self) -> None:
        self._sink.parse_error()

    def _bad_start(self, exc: HttpParserError) -> bool:
        return isinstance(exc, HttpParserInvalidMethodError)


class ResponseParser(_MessageParser):
    """Responses of one stream (the client's reads, or a server's writes).

    Bodyless answers (HEAD, CONNECT 2xx) need the message boundary before the response
    head reaches llhttp. While such a request awaits its answer, chunks are cut before
    every ``HTTP/1.`` (and before a trailing partial ``HTTP/1``), which are the only
    places a response can start; at a boundary whose next answer is bodyless, the head
    is collected up to its blank line and parsed by a fresh llhttp parser.
    """

    _line_re = STATUS_LINE_RE
    _start_re = _RESPONSE_START_RE
    _max_partial_line = 512

    __slots__ = ("_bodyless_method", "_head_tail", "_interim", "_reason", "_scan_from", "_sink", "_status")

    def __init__(self, sink: ResponseSink, max_body_bytes: int) -> None:
        self._sink = sink
        self._reason = b""
        self._interim = False
        self._bodyless_method: str | None = None
        self._scan_from = 0  # bytes of a bodyless head collected so far
        self._head_tail = b""  # their last 3 bytes (a blank line may straddle chunks)
        self._status = 0  # status of the last final response head
        super().__init__(max_body_bytes)

    def rebind(self, sink: RequestSink | ResponseSink) -> None:
        super().rebind(sink)
        self._bodyless_method = None
        self._interim = False
        self._status = 0
        self._scan_from = 0

    def _new_parser(self) -> httptools.HttpResponseParser:
        parser = httptools.HttpResponseParser(self)
        parser.set_dangerous_leniencies(lenient_keep_alive=True)
        return parser

    # ---- llhttp callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_msg = True
        self._head_fed = 0
        self._begins += 1
        self._start_ts = self._ts
        self._raw_names = []
        self._raw_values = []
        self._reason = b""
        self._interim = False

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints...: not the answer
            return
        self._status = status
        response = HttpResponse(
            status=status,
            reason=self._reason.decode("latin-1"),
            version=parser.get_http_version(),
            headers=decode_headers(self._raw_names, self._raw_values),
            body=b"",
            start_ts_ns=self._start_ts,
            end_ts_ns=self._ts,
        )
        self._msg = response
        self._sink.response_head(response)

    def on_message_complete(self) -> None:
        if self._interim:
            self._reset_message()
            return
        self._finish(self._ts)

    # ---- feeding ----------------------------------------------------------------------

    def _feed_normal(self, data: bytes, ts_ns: int) -> Chunks | None:
        if self._sink.bodyless_pending():
            return self._feed_careful(data, ts_ns)
        return self._feed_llhttp(data, ts_ns)

    def _feed_careful(self, data: bytes, ts_ns: int) -> Chunks | None:
        """Feed llhttp piece by piece so that a bodyless answer's head can be caught."""
        pos = 0
        end = len(data)
        while pos < end:
            if self._mode != _NORMAL:
                return [(ts_ns, data[pos:])]
            if not self._in_msg:
                method = self._sink.next_request_method(ts_ns)
                if method in _BODYLESS_METHODS:
                    self._bodyless_method = method
                    self._mode = _HEAD_ONLY
                    self._pending = []
                    self._scan_from = 0
                    self._head_tail = b""
                    return [(ts_ns, data[pos:])]
            cut = self._next_boundary(data, pos + 1)
            more = self._feed_llhttp(data[pos:cut], ts_ns)
            pos = cut
            if more:
                return [*more, (ts_ns, data[pos:])] if pos < end else more
        return None

    @staticmethod
    def _next_boundary(data: bytes, start: int) -> int:
        """Next place a response could start: before ``HTTP/1.`` or a partial one at the end."""
        found = data.find(_RESPONSE_PREFIX, start)
        if found >= 0:
            return found
        end = len(data)
        for size in range(min(len(_RESPONSE_PREFIX) - 1, end - start), 0, -1):
            if data.endswith(_RESPONSE_PREFIX[:size]):
                return end - size
        return end

    def _feed_head_only(self, data: bytes, ts_ns: int) -> Chunks | None:
        """Collect a bodyless response's head; parse it alone, then go on after it."""
        self._last_ts = ts_ns
        self._pending.append((ts_ns, data))
        # look for the blank line in the new bytes (and the 3 before): never rescan
        seen = self._scan_from
        tail = self._head_tail
        window = tail + data
        found = window.find(b"\r\n\r\n")
        self._scan_from = seen + len(data)
        self._head_tail = window[-3:]
        if found < 0:
            if self._scan_from > _MAX_HEAD_BYTES:
                self._count_parse_error()
                self._lost_start()
                self.start_resync()
            return None
        end = seen - len(tail) + found
        head, rest = _split_chunks(self._pending, end + 4)
        self._pending = []
        self._mode = _NORMAL
        self._parser = self._new_parser()
        self._status = 0
        method = self._bodyless_method
        leftover: Chunks = []
        for index, (chunk_ts, chunk) in enumerate(head):
            more = self._feed_llhttp(chunk, chunk_ts)
            if more or self._mode != _NORMAL:  # the head was malformed: resync over the rest
                leftover = [*(more or []), *head[index + 1 :]]
                break
        self._bodyless_method = None
        if not leftover and self._mode == _NORMAL:
            self._end_bodyless_head(method, head[-1][0])
        return leftover + rest

    def _end_bodyless_head(self, method: str | None, ts_ns: int) -> None:
        """After a head parsed alone: the message ends here, whatever llhttp expects."""
        if self._msg is not None:
            self._finish(ts_ns)
        elif self._in_msg:  # a head cut by its blank line? llhttp should have finished it
            self._count_parse_error()
            self._lost_start()
            self.start_resync()
            return
        self._parser = self._new_parser()
        if method == "CONNECT" and 200 <= self._status < 300:
            self.stop()
            self._sink.upgraded()

    # ---- hooks --------------------------------------------------------------------

    def _on_upgrade(self, rest: bytes, ts_ns: int) -> Chunks | None:
        # 101 Switching Protocols: llhttp already finished the response.
        self.stop()
        self._sink.upgraded()
        return None

    def _deliver_events(self, events: list[SseEvent], msg: HttpRequest | HttpResponse | None) -> None:
        if not isinstance(msg, HttpResponse):
            return
        sink = self._sink
        for event in events:
            # Every event streams out; response.sse_events keeps them while their data fits
            # in max_body_bytes, then stops (memory stays bounded on endless streams).
            size = len(event.data)
            if size <= self._sse_budget:
                self._sse_budget -= size
                msg.sse_events.append(event)
            else:
                self._sse_budget = -1
            sink.response_event(msg, event)

    def _mark_incomplete(self, msg: HttpRequest | HttpResponse, problem: str) -> None:
        assert isinstance(msg, HttpResponse)
        msg.complete = False
        if problem not in msg.problems:
            msg.problems.append(problem)

    def _deliver(self, msg: HttpRequest | HttpResponse) -> None:
        assert isinstance(msg, HttpResponse)
        self._sink.response_done(msg)

    def _lost_start(self) -> None:
        self._sink.response_lost()

    def _bad_start(self, exc: HttpParserError) -> bool:
        return "Expected HTTP/" in str(exc)  # llhttp's reason for a bad protocol token

    def _on_resync(self) -> None:
        self._sink.response_resync()

    def _count_parse_error(self) -> None:
        self._sink.parse_error()

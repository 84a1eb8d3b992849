"""Incremental Server-Sent Events parser (WHATWG "event stream interpretation").

Streaming AI responses (OpenAI, Anthropic, ...) are ``text/event-stream`` bodies that
arrive in arbitrary pieces: a record may end in the middle of a line, or between the
``\\r`` and ``\\n`` of one line ending. This parser keeps only the unfinished line and
the event being built, and returns each event the moment its terminating blank line
arrives, so downstream can emit per-chunk events while the stream is still open.

Rules implemented (https://html.spec.whatwg.org/multipage/server-sent-events.html):

* lines end in ``\\r\\n``, ``\\n`` or ``\\r``; a leading BOM of the stream is ignored;
* ``:comment`` lines are ignored;
* ``field:value`` with one leading space of the value removed; a line without a colon
  is a field with an empty value;
* ``data`` values are joined with ``\\n``; ``event`` sets the type; ``id`` sets the
  last event id (kept for later events, ignored when it contains NUL); ``retry`` and
  unknown fields are ignored;
* a blank line dispatches the event, unless its data buffer is empty;
* an unterminated event at the end of the stream is discarded (never dispatched).

Memory is bounded: an event (its unfinished line plus its data) larger than
``max_event_bytes`` characters is dropped, counted in :attr:`SseParser.dropped_events`,
and the stream is skipped up to the next blank line.
"""

from __future__ import annotations

from oisp_sensor.decode.messages import SseEvent

_BOM = "\ufeff"
DEFAULT_MAX_EVENT = 8 * 1024 * 1024
_SKIPPED = "-"  # stands for the text of a line being skipped (only its non-blankness matters)


class SseParser:
    """Turns decoded text chunks into completed :class:`SseEvent` objects.

    The parser is pure: no I/O, no clock. ``ts_ns`` passed to :meth:`feed` is stamped
    on the events completed by that chunk (the capture time of the record that carried
    the blank line).
    """

    __slots__ = (
        "_data",
        "_event",
        "_has_data",
        "_last_id",
        "_max",
        "_overflow",
        "_partial",
        "_partial_size",
        "_size",
        "_skip_lf",
        "_started",
        "dropped_events",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT) -> None:
        self._max = max_event_bytes
        self._partial: list[str] = []  # pieces of the line not terminated yet
        self._partial_size = 0
        self._skip_lf = False  # previous chunk ended in "\r": a leading "\n" belongs to it
        self._started = False  # the first character (possible BOM) has been seen
        self._data: list[str] = []
        self._size = 0  # characters of data in the event being built
        self._has_data = False
        self._overflow = False  # the event being built was too big: skip to its blank line
        self._event = ""
        self._last_id = ""
        self.dropped_events = 0

    def feed(self, text: str, ts_ns: int = 0) -> list[SseEvent]:
        """Parse one more chunk of the stream; return the events it completed, in order."""
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == _BOM:
                text = text[1:]
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            if not self._overflow:
                self._partial.append(text)
                self._partial_size += len(text)
                if self._partial_size + self._size <= self._max:
                    return []
                self._drop_event()
            self._partial = [_SKIPPED]  # the line goes on (not blank), its text is not kept
            self._partial_size = 0
            return []
        lines = text.split("\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
        last = lines.pop()
        self._partial = [last] if last else []
        self._partial_size = len(last)
        events: list[SseEvent] = []
        for line in lines:
            if line:
                if not self._overflow:
                    self._field(line)
            elif self._overflow:
                self._overflow = False  # the blank line ending the dropped event
            elif self._has_data:
                events.append(self._dispatch(ts_ns))
            else:
                self._event = ""
        return events

    def reset_partial(self) -> None:
        """Forget the unfinished line and event (bytes of the stream were lost in between)."""
        self._partial = []
        self._partial_size = 0
        self._skip_lf = False
        self._overflow = False
        self._reset_event()

    @property
    def pending(self) -> bool:
        """True when an event or line is half built (it would be discarded at stream end)."""
        return bool(self._partial) or self._has_data

    def _drop_event(self) -> None:
        """The event being built outgrew the limit: forget it, skip to its blank line."""
        self.dropped_events += 1
        self._overflow = True
        self._reset_event()

    def _reset_event(self) -> None:
        self._data = []
        self._size = 0
        self._has_data = False
        self._event = ""

    def _field(self, line: str) -> None:
        """Apply one non-blank line to the event being built."""
        colon = line.find(":")
        if colon == 0:
            return  # comment
        if colon < 0:
            name, value = line, ""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == " ":
                value = value[1:]
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
            self._has_data = True
            if self._size > self._max:
                self._drop_event()
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:  # an id with NUL is ignored
            self._last_id = value
        # "retry" and unknown fields are ignored on purpose.

    def _dispatch(self, ts_ns: int) -> SseEvent:
        """Build the event from the buffers and reset them (the last event id persists)."""
        event = SseEvent(data="\n".join(self._data), event=self._event, id=self._last_id, ts_ns=ts_ns)
        self._reset_event()
        return event


def split_sse_body(body: bytes) -> list[SseEvent]:
    """Minimal SSE split for an event-stream body the HTTP decoder did not split.

    `data:` lines are joined per event with newlines and the `event:` name kept, which
    is all the chunk formats use. Timestamps are unknown (0).
    """
    events: list[SseEvent] = []
    text = body.decode("utf-8", "replace").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        lines = block.split("\n")
        data = [line[5:].removeprefix(" ") for line in lines if line.startswith("data:")]
        if data:
            name = next((line[6:].strip() for line in lines if line.startswith("event:")), "")
            events.append(SseEvent(data="\n".join(data), event=name))
    return events

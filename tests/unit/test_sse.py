"""SseParser: the WHATWG event stream rules, fed whole, cut everywhere, and char by char."""

from __future__ import annotations

import pytest

from oisp_sensor.decode.messages import SseEvent
from oisp_sensor.decode.sse import SseParser


def _parse(*chunks: str) -> list[tuple[str, str, str]]:
    parser = SseParser()
    events: list[SseEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return [(e.data, e.event, e.id) for e in events]


STREAM = (
    "\ufeff: a comment line\r\n"
    "event: message_start\r\n"
    "id: 7\r\n"
    'data: {"type":"message_start"}\r\n'
    "\r\n"
    "data: first line\n"
    "data:second line\n"
    "data:  two spaces keep one\n"
    "\n"
    "retry: 1000\r"
    "unknown: field\r"
    "data\r"
    "\r"
    "event: ping\n"
    "\n"
    "data: [DONE]\n"
    "\n"
    "data: never finished"
)
EXPECTED = [
    ('{"type":"message_start"}', "message_start", "7"),
    ("first line\nsecond line\n two spaces keep one", "", "7"),
    ("", "", "7"),
    ("[DONE]", "", "7"),
]


def test_stream_whole() -> None:
    assert _parse(STREAM) == EXPECTED


def test_stream_cut_at_every_point() -> None:
    for cut in range(1, len(STREAM)):
        assert _parse(STREAM[:cut], STREAM[cut:]) == EXPECTED, cut


def test_stream_char_by_char() -> None:
    assert _parse(*STREAM) == EXPECTED


def test_cr_lf_split_across_chunks_is_one_line_end() -> None:
    assert _parse("data: a\r", "\n", "\r", "\n") == [("a", "", "")]
    # a lone CR then an LF in the next chunk, then a real blank line
    assert _parse("data: a\r", "\ndata: b\r\n\r\n") == [("a\nb", "", "")]


def test_cr_alone_ends_lines() -> None:
    assert _parse("data: x\r\rdata: y\r\r") == [("x", "", ""), ("y", "", "")]


def test_event_with_empty_data_buffer_is_not_dispatched_and_type_resets() -> None:
    assert _parse("event: lonely\n\ndata: after\n\n") == [("after", "", "")]


def test_only_one_leading_space_is_removed() -> None:
    assert _parse("data:   x \n\n") == [("  x ", "", "")]


def test_field_name_without_colon() -> None:
    assert _parse("data\ndata\n\n") == [("\n", "", "")]


def test_last_event_id_persists_and_nul_ids_are_ignored() -> None:
    stream = "id: 1\ndata: a\n\ndata: b\n\nid: bad\x00id\ndata: c\n\nid\ndata: d\n\n"
    assert _parse(stream) == [("a", "", "1"), ("b", "", "1"), ("c", "", "1"), ("d", "", "")]


def test_bom_only_at_stream_start() -> None:
    assert _parse("\ufeff", "data: a\n\n") == [("a", "", "")]
    assert _parse("data: \ufeffb\n\n") == [("\ufeffb", "", "")]


def test_unterminated_event_is_discarded_but_pending() -> None:
    parser = SseParser()
    assert parser.feed("data: half") == []
    assert parser.pending
    assert parser.feed(" done\n") == []
    assert parser.pending  # data buffered, no blank line yet
    (event,) = parser.feed("\n", ts_ns=42)
    assert (event.data, event.ts_ns) == ("half done", 42)
    assert not parser.pending


def test_events_are_stamped_with_the_completing_chunk_time() -> None:
    parser = SseParser()
    first = parser.feed("data: a\n\ndata: b\n", ts_ns=1)
    second = parser.feed("\n", ts_ns=2)
    assert [(e.data, e.ts_ns) for e in first + second] == [("a", 1), ("b", 2)]


def test_reset_partial_forgets_the_half_built_event() -> None:
    parser = SseParser()
    parser.feed("event: x\ndata: lost\ndata: part")
    parser.reset_partial()
    assert parser.feed("ial\n\ndata: next\n\n") == [SseEvent(data="next")]


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_oversized_event_is_dropped_and_stream_continues(chunk: int) -> None:
    parser = SseParser(max_event_bytes=100)
    stream = "data: " + "x" * 300 + "\n" + "data: more\n\n" + "data: ok\n\n"
    events = []
    for i in range(0, len(stream), chunk):
        events += parser.feed(stream[i : i + chunk])
    assert [e.data for e in events] == ["ok"]
    assert parser.dropped_events == 1


def test_many_data_lines_over_limit_are_dropped() -> None:
    parser = SseParser(max_event_bytes=50)
    events = parser.feed("data: 0123456789\n" * 10 + "\ndata: fine\n\n")
    assert [e.data for e in events] == ["fine"]
    assert parser.dropped_events == 1

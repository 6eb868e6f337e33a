"""The server-sent events parser: chunking, line endings, comments, multi-line data."""

from __future__ import annotations

import pytest

from yiju.sdk.sse import ServerSentEvent, SSEDecoder


def feed_all(chunks: list[str]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


STREAM = (
    ": connected\n\n"
    'event: order\ndata: {"status": "ACCEPTED"}\n\n'
    ":keepalive\n\n"
    'event: order\nid: 2\ndata: {"status":\n'
    'data:  "COMPLETED"}\n\n'
)
EXPECTED = [
    ServerSentEvent(event="order", data='{"status": "ACCEPTED"}'),
    ServerSentEvent(event="order", data='{"status":\n "COMPLETED"}', id="2"),
]


def test_whole_stream() -> None:
    assert feed_all([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
def test_events_split_across_chunks_at_any_point(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert feed_all(chunks) == EXPECTED


@pytest.mark.parametrize("ending", ["\r\n", "\r", "\n"])
def test_every_line_ending(ending: str) -> None:
    text = STREAM.replace("\n", ending)
    assert feed_all([text]) == EXPECTED
    assert feed_all(list(text)) == EXPECTED  # one character at a time: CRLF split across chunks


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    assert feed_all(["data: a\r", "\ndata: b\r", "\n\r", "\n"]) == [ServerSentEvent(data="a\nb")]


def test_comments_and_empty_blocks_dispatch_nothing() -> None:
    assert feed_all([": ping\n\n:\n\nevent: order\n\n\n\n"]) == []


def test_field_parsing_rules() -> None:
    events = feed_all(["data\n\n", "data:no-space\n\n", "data:  two spaces\n\n", "unknown: x\ndata: y\n\n"])
    assert [e.data for e in events] == ["", "no-space", " two spaces", "y"]
    assert all(e.event == "message" for e in events)


def test_event_type_resets_after_dispatch() -> None:
    events = feed_all(["event: order\ndata: 1\n\ndata: 2\n\n"])
    assert [(e.event, e.data) for e in events] == [("order", "1"), ("message", "2")]


def test_id_is_sticky_and_retry_is_read() -> None:
    decoder = SSEDecoder()
    events = decoder.feed("id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nretry: soon\ndata: c\n\n")
    assert [(e.id, e.retry) for e in events] == [("7", 1500), ("7", None), ("7", None)]
    assert decoder.last_event_id == "7"
    assert decoder.reconnect_ms == 1500


def test_leading_bom_is_ignored() -> None:
    assert feed_all(["\ufeffdata: x\n\n"]) == [ServerSentEvent(data="x")]


def test_unterminated_event_at_end_of_stream_is_dropped() -> None:
    assert feed_all(["data: complete\n\ndata: cut off"]) == [ServerSentEvent(data="complete")]
    assert feed_all(["data: complete\n\ndata: no blank line\n"]) == [ServerSentEvent(data="complete")]


def test_non_ascii_data() -> None:
    assert feed_all(["data: 两杯拿", "铁\n\n"]) == [ServerSentEvent(data="两杯拿铁")]

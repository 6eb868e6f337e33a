"""An incremental parser for ``text/event-stream`` (the WHATWG server-sent events format).

Feed it text in chunks of any size; it returns the events completed by each chunk. Lines may end in LF,
CRLF or CR (also when a CRLF is split across chunks), comment lines (``:keepalive``) are ignored, multi-line
``data`` is joined with LF, and an event is only dispatched at the blank line that ends it, so an event cut
off by the end of the stream is dropped, as the specification requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event; ``event`` defaults to ``"message"`` as in the browser API."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns a stream of text chunks into :class:`ServerSentEvent` objects."""

    def __init__(self) -> None:
        self._pending = ""
        self._skip_lf = False
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._retry: int | None = None
        self.last_event_id: str | None = None
        """The last ``id`` the server sent (sticky across events, as in the spec)."""
        self.reconnect_ms: int | None = None
        """The last ``retry`` the server sent: its advice on how long to wait before reconnecting."""

    def feed(self, chunk: str) -> list[ServerSentEvent]:
        """Consume a chunk of the stream; return the events it completed."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk.startswith("\n"):
                chunk = chunk[1:]
        if not self._started and chunk:
            self._started = True
            chunk = chunk.removeprefix("\ufeff")
        text = self._pending + chunk
        events: list[ServerSentEvent] = []
        pos = 0
        for match in _LINE_END.finditer(text):
            event = self._line(text[pos : match.start()])
            pos = match.end()
            if event is not None:
                events.append(event)
        self._pending = text[pos:]
        # A CR at the very end may be the first half of a CRLF: the line is done, but drop a leading LF next.
        self._skip_lf = text.endswith("\r")
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / keepalive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = self.reconnect_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event_type, data, retry = self._event, self._data, self._retry
        self._event, self._data, self._retry = "", [], None
        if not data:
            return None
        return ServerSentEvent(
            event=event_type or "message", data="\n".join(data), id=self.last_event_id, retry=retry
        )

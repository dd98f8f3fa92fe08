"""The channel between the guest's trusted bootstrap and the controller.

A unix stream socket; the guest's end is descriptor 3.  Messages are tuples
of plain data, framed and encoded by ``guest/wire.py`` (the same file the
guest uses).  Everything that arrives is the guest's word, never trusted:
untrusted guest code can write to descriptor 3 as well as the bootstrap can.
The reader either returns well-formed messages or raises ``ProtocolError``,
and the controller decides what a message may cause.

Guest -> controller, in every run through the bootstrap:

``("exception", type, message, traceback)``
    the script ended with an uncaught exception (sent just before exit).

Sessions (``embed/``) add their own messages; see ``embed/protocol.py``.
"""

from __future__ import annotations

from typing import Any

from ..guest import wire

MAX_FRAME = wire.MAX_FRAME
#: Bounds on the text of an exception report.
TYPE_LIMIT, MESSAGE_LIMIT, TRACEBACK_LIMIT = 200, 4000, 64_000


class ProtocolError(Exception):
    """The guest sent something that is not a valid message (its fault)."""


class Reader:
    """Incremental reader: feed bytes, get complete messages (kind, fields)."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._frames = wire.FrameReader(max_frame)

    def feed(self, data: bytes) -> list[tuple[str, tuple[Any, ...]]]:
        try:
            return [wire.split(m) for m in self._frames.feed(data)]
        except wire.WireError as e:
            raise ProtocolError(str(e)) from None


def text(value: Any, limit: int) -> str:
    if type(value) is not str:
        raise ProtocolError("expected a string")
    return value[:limit]


def exception_report(fields: tuple[Any, ...]) -> tuple[str, str, str]:
    """(type, message, traceback) from an "exception" message, bounded."""
    if len(fields) != 3:
        raise ProtocolError("an exception report has three fields")
    kind, message, tb = fields
    return text(kind, TYPE_LIMIT), text(message, MESSAGE_LIMIT), text(tb, TRACEBACK_LIMIT)

"""The channel between the guest's trusted bootstrap and the controller.

The guest reads and writes one descriptor (one end of a socket pair, so
that the descriptor exists), numbered at its RLIMIT_NOFILE so that the guest
can never make another descriptor with that number.  Its ``read`` and
``write`` of that descriptor are carried by the controller (``handlers/
channel.py``), never by the socket: the seccomp hand-over runs the guest
and the controller on one CPU, where a socket would wake the other side on
another one.  Messages are tuples of plain data, framed and encoded by
``guest/wire.py`` (the same file the guest uses).  Everything that arrives is
the guest's word, never trusted: untrusted guest code can write to the
channel as well as the bootstrap can.  The reader either returns
well-formed messages or raises ``ProtocolError``, and the controller decides
what a message may cause.

Guest -> controller, in every run through the bootstrap:

``("exception", type, message, traceback)``
    the script ended with an uncaught exception (sent just before exit).

Sessions (``embed/``) add their own messages; see ``embed/protocol.py``.
"""

from __future__ import annotations

from collections.abc import Callable
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


#: What the guest may write to its channel in one run, when it is not a
#: session (its only message is the exception report).
ONE_SHOT_BUDGET = 1 << 20


class GuestChannel:
    """Both directions of one guest's channel.

    ``send`` queues framed messages for the guest, which takes them with
    ``read(3)``; what it writes with ``write(3)`` is decoded and passed, a
    message at a time, to ``on_message`` (which may raise ProtocolError).
    """

    def __init__(
        self,
        fd: int,
        on_message: Callable[[str, tuple[Any, ...]], None],
        budget: int | None = ONE_SHOT_BUDGET,
    ) -> None:
        self.fd = fd  # its number in the guest (beyond any the guest can make)
        self.on_message = on_message
        self.budget = budget
        self.broken: str | None = None  # why the guest's messages are no longer read
        self.on_broken: Callable[[str], None] | None = None
        self._reader = Reader()
        self._outbox = bytearray()
        #: the guest's read waiting for a message: called with True to
        #: interrupt it, False when there is something to read
        self.waiter: Callable[[bool], None] | None = None

    # --- controller -> guest -------------------------------------------------------
    def send(self, data: bytes) -> None:
        self._outbox += data
        self._wake(False)

    def interrupt(self) -> None:
        """A read the guest is waiting in returns EINTR (the signal sent just
        before is then delivered to it)."""
        self._wake(True)

    def _wake(self, interrupted: bool) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter(interrupted)

    @property
    def ready(self) -> int:
        """Bytes waiting for the guest's next read."""
        return len(self._outbox)

    def take(self, count: int) -> bytes:
        data = bytes(self._outbox[:count])
        del self._outbox[:count]
        return data

    # --- guest -> controller -------------------------------------------------------
    def received(self, data: bytes) -> None:
        """Bytes the guest wrote: decode and pass on each complete message."""
        if self.broken is not None:
            return
        try:
            if self.budget is not None:
                self.budget -= len(data)
                if self.budget < 0:
                    raise ProtocolError("the guest wrote too much to its channel")
            for kind, fields in self._reader.feed(data):
                self.on_message(kind, fields)
        except ProtocolError as e:
            self.broken = str(e)
            if self.on_broken is not None:
                self.on_broken(self.broken)
            raise

"""The network audit log: every attempt, allowed or denied, with its reason.

Events go to an optional sink as they happen (the CLI's ``--audit FILE``
writes one JSON object per line) and are kept for the Result, up to
``MAX_KEPT``; past that they are counted, not kept, so a guest cannot grow
the controller's memory without bound.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One network decision.

    ``action``: ``socket``, ``resolve``, ``connect``, ``send``, ``bind``,
    ``listen``, ``accept``, ``rights`` (a descriptor sent over a socket) or
    ``limit`` (a byte or connection limit reached).
    """

    time: float  # seconds since the sandbox started
    action: str
    allowed: bool
    reason: str
    proto: str | None = None  # "tcp" or "udp"
    address: str | None = None
    port: int | None = None
    name: str | None = None  # the host name asked for, or the pin that allowed it

    def to_json(self) -> str:
        return json.dumps(
            {k: v for k, v in asdict(self).items() if v is not None}, separators=(",", ":")
        )


AuditSink = Callable[[AuditEvent], None]
log = logging.getLogger("sandbox_run")


class AuditLog:
    MAX_KEPT = 10_000
    #: Events written to the sink; past this a guest could fill a disk.
    MAX_SINK = 1_000_000

    def __init__(self, sink: AuditSink | None = None) -> None:
        self.events: list[AuditEvent] = []
        self.dropped = 0
        self.sink = sink
        self.sent = 0
        self.started = time.monotonic()

    def record(
        self,
        action: str,
        allowed: bool,
        reason: str,
        *,
        proto: str | None = None,
        address: str | None = None,
        port: int | None = None,
        name: str | None = None,
    ) -> AuditEvent:
        ev = AuditEvent(
            round(time.monotonic() - self.started, 6),
            action,
            allowed,
            reason,
            proto,
            address,
            port,
            name,
        )
        if len(self.events) < self.MAX_KEPT:
            self.events.append(ev)
        else:
            self.dropped += 1
        if self.sink is not None and self.sent <= self.MAX_SINK:
            self.sent += 1
            if self.sent > self.MAX_SINK:
                ev = AuditEvent(
                    ev.time,
                    "limit",
                    False,
                    f"{self.MAX_SINK} events written: later ones are only counted",
                )
            try:
                self.sink(ev)
            except Exception:  # the Result still has it; the guest's call must not fail
                log.exception("audit sink failed")
        return ev

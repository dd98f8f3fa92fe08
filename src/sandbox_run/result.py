"""What a sandbox run produced: its outcome, output and accounting."""

from __future__ import annotations

import enum
import os
import signal as _signal
from dataclasses import dataclass, field

from .net.audit import AuditEvent


class Outcome(enum.Enum):
    """How a run ended.  Each has a distinct CLI exit status (see ``exit_status``)."""

    COMPLETED = "completed"  # the guest exited by itself
    TIMEOUT = "timeout"  # wall-clock limit reached; the guest was killed
    POLICY_VIOLATION = "policy_violation"  # killed for a forbidden action
    CRASHED = "crashed"  # killed by a signal it did not survive
    ERROR = "error"  # the sandbox itself failed (could not start the guest)


#: CLI exit statuses for outcomes other than COMPLETED (which passes the
#: guest's own status through) and CRASHED (128 + signal number).
EXIT_USAGE = 125
EXIT_TIMEOUT = 124
EXIT_POLICY_VIOLATION = 120
EXIT_ERROR = 119


@dataclass(frozen=True, slots=True)
class Denial:
    """A system call the sandbox refused."""

    syscall: str
    errno: str
    reason: str


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str  # one line, for people
    exit_code: int | None  # the guest's exit status, if it exited
    signal: int | None  # the signal that ended it, if any
    stdout: bytes | None  # captured output, when asked for
    stderr: bytes | None
    wall_time: float  # seconds
    cpu_time: float = 0.0  # seconds of CPU the guest used (user + system)
    max_rss: int = 0  # the guest's peak resident memory, bytes
    syscalls: dict[str, int] = field(default_factory=dict)  # mediated calls by name
    denials: tuple[Denial, ...] = ()
    audit: tuple[AuditEvent, ...] = ()  # network attempts, allowed or denied, in order
    audit_dropped: int = 0  # events past the first 10,000 (still sent to --audit FILE)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.COMPLETED and self.exit_code == 0

    @property
    def exit_status(self) -> int:
        """The status the CLI exits with for this result."""
        if self.outcome is Outcome.COMPLETED:
            return self.exit_code if self.exit_code is not None else EXIT_ERROR
        if self.outcome is Outcome.TIMEOUT:
            return EXIT_TIMEOUT
        if self.outcome is Outcome.POLICY_VIOLATION:
            return EXIT_POLICY_VIOLATION
        if self.outcome is Outcome.CRASHED and self.signal is not None:
            return 128 + self.signal
        return EXIT_ERROR


def signal_name(sig: int) -> str:
    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def errno_name(err: int) -> str:
    import errno as _errno

    return _errno.errorcode.get(err, str(err)) if err else os.strerror(err)

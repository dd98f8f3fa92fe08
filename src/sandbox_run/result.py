"""What a sandbox run produced: its outcome, output and accounting."""

from __future__ import annotations

import base64
import enum
import os
import signal as _signal
from dataclasses import dataclass, field

from .net.audit import AuditEvent


class Outcome(enum.Enum):
    """How a run ended.  Each has a distinct CLI exit status (see ``exit_status``)."""

    COMPLETED = "completed"  # the guest exited by itself
    EXCEPTION = "exception"  # the script ended with an uncaught exception
    TIMEOUT = "timeout"  # wall-clock limit reached; the guest was killed
    CPU_LIMIT = "cpu_limit"  # CPU-time limit reached; the guest was killed
    MEMORY_LIMIT = "memory_limit"  # memory exhausted (MemoryError, or killed at the cap)
    OUTPUT_LIMIT = "output_limit"  # output limit reached; the rest discarded, guest killed
    POLICY_VIOLATION = "policy_violation"  # killed for a forbidden action
    CRASHED = "crashed"  # killed by a signal it did not survive
    ERROR = "error"  # the sandbox itself failed (could not start the guest)


#: CLI exit statuses for outcomes other than COMPLETED and EXCEPTION (which
#: pass the guest's own status through) and CRASHED (128 + signal number).
EXIT_USAGE = 125
EXIT_TIMEOUT = 124
EXIT_CPU_LIMIT = 123
EXIT_MEMORY_LIMIT = 122
EXIT_OUTPUT_LIMIT = 121
EXIT_POLICY_VIOLATION = 120
EXIT_ERROR = 119
_EXIT = {
    Outcome.TIMEOUT: EXIT_TIMEOUT,
    Outcome.CPU_LIMIT: EXIT_CPU_LIMIT,
    Outcome.MEMORY_LIMIT: EXIT_MEMORY_LIMIT,
    Outcome.OUTPUT_LIMIT: EXIT_OUTPUT_LIMIT,
    Outcome.POLICY_VIOLATION: EXIT_POLICY_VIOLATION,
    Outcome.ERROR: EXIT_ERROR,
}


@dataclass(frozen=True, slots=True)
class GuestException:
    """An uncaught exception of the script, as text (nothing else crosses)."""

    type: str  # e.g. "ValueError", "json.decoder.JSONDecodeError"
    message: str
    traceback: str


@dataclass(frozen=True, slots=True)
class Denial:
    """A system call the sandbox refused."""

    syscall: str
    errno: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileChange:
    """One change the guest made in a writable area."""

    path: str  # virtual path, as the guest saw it
    kind: str  # "added", "modified", "deleted", or "renamed" (from ``source``)
    is_dir: bool = False
    size: int = 0
    source: str = ""  # the old path of a renamed directory


@dataclass(frozen=True, slots=True)
class AreaReport:
    """A writable area of the sandbox: its quota, its use, its changes."""

    path: str  # where the guest saw it ("/sandbox, /tmp" for the private area)
    mode: str  # "private", "tmpfs", "overlay" or "rw"
    bytes_used: int
    files_used: int  # files, directories and links
    max_bytes: int
    max_files: int
    max_file_size: int
    changes: tuple[FileChange, ...] = ()  # overlay and rw areas
    diff: str | None = None  # when the mount asked for one
    applied: bool | None = None  # rw: whether the changes were applied to the host
    notes: tuple[str, ...] = ()  # rw: entries not applied, and why


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
    peak_memory: int = 0  # the guest's peak resident memory, bytes
    read_bytes: int = 0  # read by read-like calls: files, pipes, sockets
    written_bytes: int = 0  # written by write-like calls
    output_bytes: int = 0  # of stdout and stderr, delivered
    net_bytes_sent: int = 0  # TCP payload the guest sent
    net_bytes_received: int = 0  # TCP payload the guest received
    syscalls: dict[str, int] = field(default_factory=dict)  # mediated calls by name
    denials: tuple[Denial, ...] = ()
    filesystem: tuple[AreaReport, ...] = ()  # the writable areas
    exception: GuestException | None = None  # the script's uncaught exception, if any
    violation: Denial | None = None  # the refused call that ended the guest, if any
    audit: tuple[AuditEvent, ...] = ()  # network attempts, allowed or denied, in order
    audit_dropped: int = 0  # events past the first 10,000 (still sent to --audit FILE)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.COMPLETED and self.exit_code == 0

    @property
    def exit_status(self) -> int:
        """The status the CLI exits with for this result."""
        if self.outcome in (Outcome.COMPLETED, Outcome.EXCEPTION):
            return self.exit_code if self.exit_code is not None else EXIT_ERROR
        if self.outcome is Outcome.CRASHED and self.signal is not None:
            return 128 + self.signal
        return _EXIT.get(self.outcome, EXIT_ERROR)

    def usage(self) -> dict[str, object]:
        """The accounting, as plain data (for JSON)."""
        return {
            "wall_time": round(self.wall_time, 6),
            "cpu_time": round(self.cpu_time, 6),
            "peak_memory": self.peak_memory,
            "read_bytes": self.read_bytes,
            "written_bytes": self.written_bytes,
            "output_bytes": self.output_bytes,
            "net_bytes_sent": self.net_bytes_sent,
            "net_bytes_received": self.net_bytes_received,
            "syscalls": dict(sorted(self.syscalls.items())),
            "filesystem": [
                {
                    "path": a.path,
                    "mode": a.mode,
                    "bytes_used": a.bytes_used,
                    "files_used": a.files_used,
                    "max_bytes": a.max_bytes,
                    "max_files": a.max_files,
                    "max_file_size": a.max_file_size,
                }
                for a in self.filesystem
            ],
        }

    def to_dict(self) -> dict[str, object]:
        """The whole result as plain data: what ``sandbox-run --json`` prints.

        Output that is valid UTF-8 is given as text; anything else as base64,
        with ``stdout_encoding``/``stderr_encoding`` saying which, so no byte
        is lost.
        """
        d: dict[str, object] = {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "exit_status": self.exit_status,
            "exit_code": self.exit_code,
            "signal": signal_name(self.signal) if self.signal is not None else None,
        }
        for name in ("stdout", "stderr"):
            data = getattr(self, name)
            if data is None:
                continue
            try:
                d[name], d[f"{name}_encoding"] = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                d[name], d[f"{name}_encoding"] = base64.b64encode(data).decode(), "base64"
        e = self.exception
        d["exception"] = (
            {"type": e.type, "message": e.message, "traceback": e.traceback} if e else None
        )
        v = self.violation
        d["violation"] = {"syscall": v.syscall, "errno": v.errno, "reason": v.reason} if v else None
        d["denials"] = [
            {"syscall": x.syscall, "errno": x.errno, "reason": x.reason} for x in self.denials
        ]
        d["usage"] = self.usage()
        d["changes"] = [
            {
                "area": a.path,
                "applied": a.applied,
                "notes": list(a.notes),
                "files": [
                    {"path": c.path, "kind": c.kind, "is_dir": c.is_dir, "size": c.size}
                    | ({"source": c.source} if c.source else {})
                    for c in a.changes
                ],
            }
            for a in self.filesystem
            if a.changes or a.notes
        ]
        return d


def signal_name(sig: int) -> str:
    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def errno_name(err: int) -> str:
    import errno as _errno

    return _errno.errorcode.get(err, str(err)) if err else os.strerror(err)

"""Exceptions shared by the controller, the VFS and the public API."""

from __future__ import annotations

import os


class SandboxError(Exception):
    """Base class of the errors sandbox-run raises to its users."""


class PolicyError(SandboxError):
    """A policy is invalid: an unknown key, a bad value, a missing file."""


class LaunchError(SandboxError):
    """The guest could not be started."""


class SyscallError(Exception):
    """A system call of the guest fails with ``errno``.

    Raised by handlers and the VFS; the dispatcher turns it into the guest's
    error return.  ``reason`` is for logs and traces, never shown to the guest.
    """

    __slots__ = ("errno", "reason")

    def __init__(self, err: int, reason: str = "") -> None:
        super().__init__(err, reason)
        self.errno = err
        self.reason = reason or os.strerror(err)

    def __str__(self) -> str:
        return f"{os.strerror(self.errno)} ({self.reason})"


class Refused(SyscallError):
    """A call refused by policy, whatever its errno (ENOPROTOOPT for a socket
    option, EADDRNOTAVAIL for a non-loopback bind ...): always recorded as a
    denial, where other SyscallErrors are the ordinary failures of a call."""

    __slots__ = ()


class GuestError(SandboxError):
    """Guest code raised an exception in a session call.  Only text crosses:
    the exception's type name, its message and the traceback."""

    def __init__(self, type_name: str, message: str, traceback: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type = type_name
        self.message = message
        self.traceback = traceback


class CallDeadlineExceeded(GuestError):
    """A session call ran past its deadline (``deadline`` is "wall" or
    "cpu") and was interrupted; the session goes on unless the policy ends it."""

    def __init__(self, deadline: str, limit: float, type_name: str, message: str, tb: str):
        super().__init__(type_name, message, tb)
        self.deadline = deadline
        self.limit = limit
        what = "wall-clock" if deadline == "wall" else "CPU"
        self.args = (f"the call's {what} deadline of {limit:g}s passed",)


class SandboxClosed(SandboxError):
    """The session's guest is gone (it exited, crashed, or hit a limit);
    ``result`` says how it ended."""

    def __init__(self, result: object) -> None:
        reason = getattr(result, "reason", "the sandbox is closed")
        super().__init__(f"the sandbox is closed: {reason}")
        self.result = result


class CapabilityError(Exception):
    """Raised by a host function to fail the guest's call with this message.

    Other exceptions of host functions reach the guest only as "host function
    'name' failed" (their text stays on the host, in the log)."""

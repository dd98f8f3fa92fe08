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

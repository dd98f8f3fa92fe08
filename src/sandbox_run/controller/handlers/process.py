"""Program execution: never, after the launcher's own exec of the guest."""

from __future__ import annotations

import errno

from ...errors import SyscallError
from ..dispatch import Call
from . import handles


@handles("execve", "execveat", argc=3)
def execve(call: Call) -> int:
    raise SyscallError(errno.EACCES, "executing programs is not allowed")

"""The guest's identity: a fixed, unprivileged virtual user."""

from __future__ import annotations

import struct

from ...vfs.stat import GUEST_GID, GUEST_UID
from ..dispatch import Call
from . import handles

#: What getppid(2) answers: the guest's parent is outside its world.
VIRTUAL_PPID = 1


@handles("getuid", "geteuid", argc=0)
def getuid(call: Call) -> int:
    return GUEST_UID


@handles("getgid", "getegid", argc=0)
def getgid(call: Call) -> int:
    return GUEST_GID


@handles("getppid", argc=0)
def getppid(call: Call) -> int:
    return VIRTUAL_PPID


def _three(call: Call, value: int) -> int:
    for i in range(3):
        call.write(call.args[i], struct.pack("<I", value))
    return 0


@handles("getresuid", argc=3)
def getresuid(call: Call) -> int:
    return _three(call, GUEST_UID)


@handles("getresgid", argc=3)
def getresgid(call: Call) -> int:
    return _three(call, GUEST_GID)


@handles("getgroups", argc=2)
def getgroups(call: Call) -> int:
    # The guest belongs to its own group only.
    size = call.args[0] & 0xFFFF_FFFF
    if size == 0:
        return 1
    if size >= 1 << 31:
        import errno

        from ...errors import SyscallError

        raise SyscallError(errno.EINVAL, "negative size")
    call.write(call.args[1], struct.pack("<I", GUEST_GID))
    return 1

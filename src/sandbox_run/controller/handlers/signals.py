"""Signals: a guest may signal itself, nothing else."""

from __future__ import annotations

import errno

from ...errors import SyscallError
from ..dispatch import CONTINUE, Call, _Continue
from ..kernel import tgkill
from . import handles


def _pid(call: Call, i: int) -> int:
    v = call.args[i] & 0xFFFF_FFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _signal_number(call: Call, i: int) -> int:
    sig = call.args[i] & 0xFFFF_FFFF
    if sig > 64:
        raise SyscallError(errno.EINVAL, "bad signal number")
    return sig


@handles("kill", argc=2)
def kill(call: Call) -> _Continue:
    pid = _pid(call, 0)
    _signal_number(call, 1)
    own = call.guest.pid
    # The guest is alone in its process group, so 0 and -own also mean itself.
    if pid not in (own, 0, -own):
        raise SyscallError(errno.EPERM, "signals to other processes are not allowed")
    return CONTINUE


@handles("tgkill", argc=3)
def tgkill_(call: Call) -> _Continue:
    _signal_number(call, 2)
    if _pid(call, 0) != call.guest.pid:
        raise SyscallError(errno.EPERM, "signals to other processes are not allowed")
    return CONTINUE  # the kernel checks that the thread belongs to this group


@handles("tkill", argc=2)
def tkill(call: Call) -> int:
    # tkill names a thread without its group: send it ourselves, scoped to the
    # guest's group, so a recycled thread id can never reach another process.
    sig = _signal_number(call, 1)
    try:
        tgkill(call.guest.pid, _pid(call, 0), sig)
    except OSError as e:
        raise SyscallError(e.errno or errno.ESRCH, "no such thread in the guest") from None
    return 0


@handles("rt_sigqueueinfo", argc=3)
def rt_sigqueueinfo(call: Call) -> _Continue:
    _signal_number(call, 1)
    if _pid(call, 0) != call.guest.pid:
        raise SyscallError(errno.EPERM, "signals to other processes are not allowed")
    return CONTINUE


@handles("rt_tgsigqueueinfo", argc=4)
def rt_tgsigqueueinfo(call: Call) -> _Continue:
    _signal_number(call, 2)
    if _pid(call, 0) != call.guest.pid:
        raise SyscallError(errno.EPERM, "signals to other processes are not allowed")
    return CONTINUE

"""read and write of the channel descriptor of a guest started through the
bootstrap (``controller/channel.py``), carried by the controller.

These handlers read and write the guest's memory without re-checking the
notification afterwards, unlike those that act on a path: what they read is
a message (the guest's word, whichever thread wrote it) that decides no
access, and the guest's pid cannot be reused while the controller holds it
unreaped.

The filter sends only calls on that descriptor here.  Its number is the
guest's RLIMIT_NOFILE, which no descriptor the guest makes can have: a call
on it is a call on the channel (or, if the guest closed it, on nothing, and
answering it as the channel harms no one else).
"""

from __future__ import annotations

import errno

from ...errors import SyscallError
from ..channel import GuestChannel, ProtocolError
from ..dispatch import CONTINUE, PARKED, Call, Reply, answer_parked
from ..kernel import GuestFault
from . import handles

#: Bytes taken from the guest per write call (it writes the rest next).
MAX_CHUNK = 1 << 20


def _channel(call: Call) -> GuestChannel | None:
    chan = call.guest.channel
    if chan is None or call.fd_arg(0) != chan.fd:
        return None
    return chan


@handles("write", argc=3)
def write(call: Call) -> Reply:
    chan = _channel(call)
    if chan is None:
        return CONTINUE
    count = min(call.args[2], MAX_CHUNK)
    try:
        data = call.guest.mem.read_exact(call.args[1], count) if count else b""
    except GuestFault:
        raise SyscallError(errno.EFAULT, "bad buffer") from None
    try:
        chan.received(data)
    except ProtocolError:
        raise SyscallError(errno.EPIPE, "the guest broke its channel's protocol") from None
    return len(data)


@handles("read", argc=3)
def read(call: Call) -> Reply:
    chan = _channel(call)
    if chan is None:
        return CONTINUE
    buf, count = call.args[1], min(call.args[2], MAX_CHUNK)
    if count == 0:
        return 0
    if chan.ready:
        return _deliver(call, chan, buf, count)
    if chan.waiter is not None:
        raise SyscallError(errno.EBUSY, "another thread is reading the channel")
    guest = call.guest

    def deliver(interrupted: bool) -> None:
        # Called by the session, when it sends a message or interrupts a call.
        def produce() -> Reply:
            if interrupted:
                raise SyscallError(errno.EINTR, "interrupted by the host")
            return _deliver(call, chan, buf, count)

        answer_parked(guest, call, produce)

    chan.waiter = deliver
    return PARKED


def _deliver(call: Call, chan: GuestChannel, buf: int, count: int) -> int:
    data = chan.take(count)
    try:
        call.guest.mem.write(buf, data)
    except GuestFault:
        raise SyscallError(errno.EFAULT, "bad buffer") from None
    return len(data)

"""Calls that close descriptors, seen by the controller only when the policy
grants network access (``syscalls.NETWORK_HANDLED``): before a TCP socket of
the guest goes away, its traffic counters are read, so the Result can say
how many bytes went over the network.  Every one of them then continues in
the kernel unchanged.
"""

from __future__ import annotations

import select
import socket

from ...net import tcpinfo
from ...net.state import Kind, cookie_of
from .. import kernel
from ..dispatch import CONTINUE, Call, Reply
from ..guest import Guest
from . import handles

CLOSE_RANGE_CLOEXEC = 1 << 2  # only marks the range close-on-exec
_TCP = (Kind.STREAM, Kind.ACCEPTED)


def count_sockets(guest: Guest, fds: list[int] | None = None) -> None:
    """Read the traffic of the guest's TCP connections among ``fds`` (all of
    them if None).  Best effort: a descriptor closed meanwhile is skipped."""
    net = guest.net
    if not net.sockets:
        return
    candidates = guest.socket_fds() if fds is None else fds
    for fd in candidates:
        if fds is not None:
            try:
                if not guest.fd_link(fd).startswith(b"socket:["):
                    continue
            except OSError:
                continue
        try:
            sock = socket.socket(fileno=guest.getfd(fd))
        except OSError:
            continue
        with sock:
            try:
                cookie = cookie_of(sock)
            except OSError:
                continue
            info = net.sockets.get(cookie)
            if info is None or info.kind not in _TCP:
                continue
            counts = _read(sock)
            if counts is not None:
                net.count_tcp(cookie, *counts)


def _read(sock: socket.socket) -> tuple[int, int] | None:
    try:
        c = tcpinfo.parse(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256))
        if c is None:
            return None
        unsent = kernel.socket_unsent(sock.fileno())
    except OSError:
        return None
    p = select.poll()
    p.register(sock, select.POLLRDHUP)
    finished = any(ev & select.POLLRDHUP for _fd, ev in p.poll(0))
    return tcpinfo.traffic(c, unsent, finished)


def _fd(value: int) -> int:
    return value & 0xFFFF_FFFF  # the kernel reads an unsigned int


@handles("close", argc=1)
def close(call: Call) -> Reply:
    count_sockets(call.guest, [_fd(call.args[0])])
    return CONTINUE


@handles("dup2", "dup3", argc=2)
def dup2(call: Call) -> Reply:
    # The target descriptor, if open, is closed by the call.
    if _fd(call.args[0]) != _fd(call.args[1]):
        count_sockets(call.guest, [_fd(call.args[1])])
    return CONTINUE


@handles("close_range", argc=3)
def close_range(call: Call) -> Reply:
    first, last, flags = _fd(call.args[0]), _fd(call.args[1]), call.args[2]
    if not flags & CLOSE_RANGE_CLOEXEC and first <= last:
        fds = [fd for fd in call.guest.socket_fds() if first <= fd <= last]
        count_sockets(call.guest, fds)
    return CONTINUE


@handles("exit", "exit_group", argc=1)
def exit_group(call: Call) -> Reply:
    # The last thread's exit closes every descriptor; the counts are read
    # for any thread's, since which one is last cannot be known here.
    count_sockets(call.guest)
    return CONTINUE

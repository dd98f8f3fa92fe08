"""Byte-counted relays, used when the policy caps bytes transferred.

The guest's end is one side of a unix stream socket pair; the controller
holds the other side and the real connection, and copies between them.  It
counts every byte before copying it: a read never asks for more than what
is left of the sandbox's budget, so the cap is exact.  When the budget is
spent every relay of the sandbox is closed, and the guest sees end of file.
"""

from __future__ import annotations

import errno
import select
import socket

import trio

from .state import NetState

CHUNK = 1 << 16
_DONTWAIT = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL


class Relay:
    """One relayed connection: ``ours`` (the pair end) and ``remote``."""

    def __init__(self, net: NetState, ours: socket.socket, remote: socket.socket) -> None:
        self.net = net
        self.ours = ours
        self.remote = remote

    async def run(self) -> None:
        net = self.net
        net.relay_started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, self.ours, self.remote, nursery.cancel_scope, True)
                nursery.start_soon(self._pump, self.remote, self.ours, nursery.cancel_scope, False)
        finally:
            for s in (self.ours, self.remote):
                trio.lowlevel.notify_closing(s)
                s.close()
            net.relay_ended()

    async def _pump(
        self, src: socket.socket, dst: socket.socket, scope: trio.CancelScope, up: bool
    ) -> None:
        net = self.net
        cap = net.policy.max_bytes or 0
        while True:
            if net.bytes_used >= cap:
                net.byte_cap_reached()
                scope.cancel()
                return
            await trio.lowlevel.wait_readable(src)
            try:
                data = src.recv(min(CHUNK, cap - net.bytes_used), _DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                data = b""  # reset: end both directions
                scope.cancel()
            if not data:
                # End of file: pass the half-close on.  If the guest has
                # closed its end entirely, nothing more can reach it.
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    scope.cancel()
                if up and _hung_up(src):
                    scope.cancel()
                return
            net.bytes_used += len(data)
            if not await _send_all(dst, data):
                scope.cancel()
                return
            if up:
                net.relayed_sent += len(data)
            else:
                net.relayed_received += len(data)


def _hung_up(s: socket.socket) -> bool:
    p = select.poll()
    p.register(s, select.POLLHUP)
    return any(ev & select.POLLHUP for _fd, ev in p.poll(0))


async def _send_all(s: socket.socket, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            n = s.send(view, _DONTWAIT)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(s)
            continue
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                return False
            raise
        view = view[n:]
    return True

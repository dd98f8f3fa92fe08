"""Controller-side state of one running guest."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import trio

from ..net.config import NetworkPolicy
from ..net.state import NetState
from ..vfs import hostfs
from ..vfs.tree import Vfs
from . import kernel, syscalls
from .channel import GuestChannel
from .dispatch import CallStats, Denial


class Guest:
    """What handlers may touch: the guest's memory, descriptors, filesystem."""

    __slots__ = (
        "_fd_dir",
        "_fd_dir_b",
        "channel",
        "listener",
        "mem",
        "memory_bytes",
        "net",
        "nursery",
        "on_refusal",
        "pending",
        "pid",
        "pidfd",
        "spawned",
        "started",
        "stats",
        "stopping",
        "table",
        "trace",
        "vfs",
    )

    def __init__(
        self,
        pid: int,
        pidfd: int,
        listener: kernel.Listener,
        vfs: Vfs,
        *,
        memory_bytes: int,
        trace: Callable[[str], None] | None,
        net: NetState | None = None,
        channel: GuestChannel | None = None,
    ) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.listener = listener
        self.mem: kernel.GuestMemory  # opened once the guest program is exec'd
        self.vfs = vfs
        self.memory_bytes = memory_bytes
        self.trace = trace
        self.stats = CallStats()
        self.started = time.monotonic()
        self.nursery: trio.Nursery  # where asynchronous handlers run; set by the session
        self.pending = 0  # calls waiting in asynchronous handlers
        self.spawned = 0  # tasks started for it (asynchronous handlers, host calls)
        self.stopping = False  # the sandbox is ending it: answer nothing more
        #: called with each refused call, when the policy kills on refusal
        self.on_refusal: Callable[[Denial], None] | None = None
        self.net = net if net is not None else NetState(NetworkPolicy())
        #: the syscall table this guest's filter was compiled from
        self.table = syscalls.table_for(
            self.net.enabled, channel.fd if channel is not None else None
        )
        #: the bootstrap's channel, carried by the read and write handlers
        self.channel = channel
        self._fd_dir = f"/proc/{pid}/fd/"
        self._fd_dir_b = os.fsencode(self._fd_dir)

    def attach_memory(self) -> None:
        self.mem = kernel.GuestMemory(self.pid)

    def getfd(self, guest_fd: int) -> int:
        """A duplicate of a guest descriptor: for acting on the object itself."""
        return kernel.pidfd_getfd(self.pidfd, guest_fd)

    def fd_stat(self, guest_fd: int) -> os.stat_result:
        """stat(2) of a guest descriptor's object, through /proc (no duplicate).

        For inspection only: the guest may replace the descriptor at any time,
        so whatever acts on the object works on a duplicate (``getfd``).
        """
        return os.stat(self._fd_dir + str(guest_fd))

    def fd_mount_id(self, guest_fd: int) -> int:
        """The mount a guest descriptor's object lives on."""
        return hostfs.path_mount_id(b"%s%d" % (self._fd_dir_b, guest_fd))

    def fd_link(self, guest_fd: int) -> bytes:
        """What /proc says a guest descriptor points to (a host path for files)."""
        return os.readlink(b"%s%d" % (self._fd_dir_b, guest_fd))

    def socket_fds(self) -> dict[int, int]:
        """The sockets in the guest's descriptor table: inode by descriptor."""
        out = {}
        try:
            with os.scandir(self._fd_dir) as it:
                for e in it:
                    try:
                        link = os.readlink(self._fd_dir + e.name)
                    except OSError:
                        continue
                    if link.startswith("socket:["):
                        out[int(e.name)] = int(link[8:-1])
        except OSError:
            pass
        return out

    def socket_inodes(self) -> set[int]:
        """Inode numbers of the sockets in the guest's descriptor table."""
        return set(self.socket_fds().values())

    def close(self) -> None:
        self.listener.close()
        if hasattr(self, "mem"):
            self.mem.close()

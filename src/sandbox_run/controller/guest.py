"""Controller-side state of one running guest."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..vfs.tree import Vfs
from . import kernel
from .dispatch import CallStats


class Guest:
    """What handlers may touch: the guest's memory, descriptors, filesystem."""

    __slots__ = (
        "listener",
        "mem",
        "memory_bytes",
        "pid",
        "pidfd",
        "started",
        "stats",
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

    def attach_memory(self) -> None:
        self.mem = kernel.GuestMemory(self.pid)

    def getfd(self, guest_fd: int) -> int:
        return kernel.pidfd_getfd(self.pidfd, guest_fd)

    def close(self) -> None:
        self.listener.close()
        if hasattr(self, "mem"):
            self.mem.close()

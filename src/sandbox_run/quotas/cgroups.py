"""Per-sandbox cgroups: a hard memory cap the kernel enforces (OOM kill), a
limit on tasks (threads), and exact peak-memory accounting.

Works with cgroup v2 when the memory and pids controllers are delegated to
the controller's own cgroup, and with cgroup v1 hierarchies; where neither is
usable, ``Cgroups.create`` returns None and the sandbox relies on rlimits and
the controller's own checks (see quotas/limits.py).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
from dataclasses import dataclass

_counter = itertools.count()
log = logging.getLogger("sandbox_run")


@dataclass(frozen=True, slots=True)
class _Layout:
    version: int
    memory: str  # directory under which sandbox cgroups are made
    pids: str


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for ``controller`` ("" for the v2 line)."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _id, names, path = line.rstrip("\n").split(":", 2)
                if controller in names.split(",") or (controller == "" and names == ""):
                    return path
    except OSError:
        return None
    return None


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of cgroup filesystems."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                fstype, _src, opts = right.split()[:3]
                if fstype in ("cgroup", "cgroup2"):
                    out.append((fields[4], fstype, set(opts.split(","))))
    except OSError:
        pass
    return out


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)


@functools.lru_cache(maxsize=1)
def _layout() -> _Layout | None:
    mounts = _mounts()
    for point, fstype, _opts in mounts:
        if fstype != "cgroup2":
            continue
        own = _own_path("")
        if own is None:
            continue
        base = os.path.join(point, own.lstrip("/"))
        try:
            with open(os.path.join(base, "cgroup.subtree_control")) as f:
                enabled = set(f.read().split())
        except OSError:
            continue
        if {"memory", "pids"} <= enabled and _writable_dir(base):
            return _Layout(2, base, base)
    bases = {}
    for controller in ("memory", "pids"):
        for point, fstype, opts in mounts:
            if fstype == "cgroup" and controller in opts:
                own = _own_path(controller)
                if own is not None:
                    base = os.path.join(point, own.lstrip("/"))
                    if _writable_dir(base):
                        bases[controller] = base
                break
    if len(bases) == 2:
        return _Layout(1, bases["memory"], bases["pids"])
    return None


@functools.lru_cache(maxsize=1)
def _warn_unavailable() -> None:
    log.warning(
        "no usable cgroups (neither a delegated cgroup v2 with memory and pids, nor "
        "writable v1 memory and pids hierarchies): the thread limit is not enforced "
        "(each thread's stack still counts toward the memory limit) and there is no "
        "kernel memory cap behind RLIMIT_AS"
    )


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


class Cgroups:
    """The memory and pids cgroups of one sandbox."""

    def __init__(self, layout: _Layout, memory_dir: str, pids_dir: str) -> None:
        self.layout = layout
        self.memory_dir = memory_dir
        self.pids_dir = pids_dir

    @classmethod
    def available(cls) -> bool:
        return _layout() is not None

    @classmethod
    def create(cls, memory_limit: int, max_tasks: int) -> Cgroups | None:
        """New cgroups with these limits, or None where cgroups are unusable."""
        layout = _layout()
        if layout is None:
            _warn_unavailable()
            return None
        name = f"sandbox-run-{os.getpid()}-{next(_counter)}"
        mem = os.path.join(layout.memory, name)
        pids = os.path.join(layout.pids, name)
        made: list[str] = []
        try:
            for d in dict.fromkeys((mem, pids)):
                os.mkdir(d)
                made.append(d)
            if layout.version == 2:
                _write(os.path.join(mem, "memory.max"), str(memory_limit))
                with contextlib.suppress(OSError):
                    _write(os.path.join(mem, "memory.swap.max"), "0")
            else:
                _write(os.path.join(mem, "memory.limit_in_bytes"), str(memory_limit))
            _write(os.path.join(pids, "pids.max"), str(max_tasks))
        except OSError:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
            return None
        return cls(layout, mem, pids)

    def attach(self, pid: int) -> None:
        """Move ``pid`` (before it runs untrusted code) into both cgroups."""
        for d in dict.fromkeys((self.memory_dir, self.pids_dir)):
            _write(os.path.join(d, "cgroup.procs"), str(pid))

    def oom_killed(self) -> bool:
        """Whether the kernel killed a task here for exceeding the memory cap."""
        name = "memory.events" if self.layout.version == 2 else "memory.oom_control"
        try:
            for line in _read(os.path.join(self.memory_dir, name)).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def peak_memory(self) -> int | None:
        """Highest memory use of the cgroup, in bytes (files it wrote included)."""
        name = "memory.peak" if self.layout.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(_read(os.path.join(self.memory_dir, name)))
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Delete the cgroups (once every task in them is gone)."""
        for d in dict.fromkeys((self.memory_dir, self.pids_dir)):
            with contextlib.suppress(OSError):
                os.rmdir(d)

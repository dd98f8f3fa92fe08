"""What enforces each limit of a policy.  Pure: policy in, settings out.

| limit | in the guest | hard stop behind it |
|---|---|---|
| wall clock | — | the controller's cancel scope: SIGKILL |
| CPU time | — | the controller's CPU-clock monitor (exact), then RLIMIT_CPU (later) |
| memory | PYPY_GC_MAX: MemoryError | RLIMIT_AS (allocations fail); cgroup cap (OOM kill) |
| output | — | counted before copying; at the cap, truncated and SIGKILL |
| open descriptors | RLIMIT_NOFILE: EMFILE | — |
| threads | the cgroup's task limit: EAGAIN | — |
| file sizes | RLIMIT_FSIZE: EFBIG | — |
| recursion | sys.setrecursionlimit: RecursionError | — |

Signals the guest could catch (SIGXCPU) are never what stops it: every hard
stop is SIGKILL, sent by the kernel or the controller.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

from ..policy.schema import Policy

MiB = 1 << 20
#: Address space the interpreter needs besides its heap (measured: about
#: 70 MiB at start), with room for JIT code and raw buffers.
INTERPRETER_HEADROOM = 128 * MiB
DEFAULT_STACK = 8 * MiB
STACK_PER_LEVEL = 1024
STACK_MARGIN = 1 * MiB


@dataclass(frozen=True, slots=True)
class Enforcement:
    rlimits: tuple[tuple[int, int, int], ...]  # (resource, soft, hard)
    gc_max: int  # PYPY_GC_MAX, bytes
    cgroup_memory: int  # the cgroup's memory cap, bytes
    cgroup_tasks: int  # the cgroup's task limit
    #: the number of the bootstrap's channel descriptor in the guest: its
    #: RLIMIT_NOFILE, the first number the guest can never give a descriptor
    channel_fd: int

    @property
    def env(self) -> tuple[tuple[str, str], ...]:
        """Environment settings for the guest's interpreter and C library."""
        return (
            ("PYPY_GC_MAX", str(self.gc_max)),
            # glibc gives each thread its own malloc arena, reserving 64 MiB
            # of address space apiece: under RLIMIT_AS that would cap a
            # 512 MiB guest at six threads.  PyPy's heap is its own, and it
            # runs one thread at a time, so a single arena costs nothing.
            ("MALLOC_ARENA_MAX", "1"),
        )


def heap_limit(memory: int) -> int:
    """PyPy's GC limit for a memory limit: leaves room for the interpreter."""
    return max(memory // 2, min(memory - INTERPRETER_HEADROOM, memory * 3 // 4))


def cpu_backstop_seconds(cpu_time: float) -> int:
    """RLIMIT_CPU behind the controller's exact CPU limit.

    The kernel checks RLIMIT_CPU against tick-sampled CPU time, which
    overcharges a busy guest on a busy machine (measured: 4 s sampled for
    2.9 s really used, beside a guest making calls non-stop).  The backstop
    must never fire before the controller, so it is half as much again,
    plus two seconds.
    """
    return math.ceil(cpu_time * 1.5) + 2


def stack_size(recursion_limit: int) -> int:
    """The stack a recursion limit needs.

    PyPy turns the limit into an amount of stack (measured: about 770 bytes
    per unit, so 10,000 fits the usual 8 MiB and 12,000 overflows it with
    SIGSEGV).  The stack rlimit is sized to match, so that deep recursion
    ends in RecursionError, never in a crash.  glibc gives every thread a
    stack of this size too.
    """
    return max(DEFAULT_STACK, recursion_limit * STACK_PER_LEVEL + STACK_MARGIN)


def plan(policy: Policy, *, largest_file: int, staged_bytes: int) -> Enforcement:
    """Settings for ``policy``.  ``largest_file`` is the smallest largest-file
    quota of the writable areas; ``staged_bytes`` what they may hold in memory
    (tmpfs pages count toward the writer's cgroup)."""
    cpu_backstop = cpu_backstop_seconds(policy.cpu_time)
    stack = stack_size(policy.recursion_limit)
    rlimits = (
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_AS, policy.memory, policy.memory),
        (resource.RLIMIT_FSIZE, largest_file, largest_file),
        (resource.RLIMIT_NOFILE, policy.open_files, policy.open_files),
        (resource.RLIMIT_CPU, cpu_backstop, cpu_backstop),
        (resource.RLIMIT_STACK, stack, stack),
        # No real-time scheduling and no raised priority: a guest must never
        # be able to starve the controller that enforces its limits.
        (resource.RLIMIT_RTPRIO, 0, 0),
        (resource.RLIMIT_NICE, 0, 0),
    )
    return Enforcement(
        rlimits=rlimits,
        gc_max=heap_limit(policy.memory),
        cgroup_memory=policy.memory + staged_bytes,
        cgroup_tasks=policy.threads,
        channel_fd=policy.open_files,
    )


def crashed_at_heap_limit(peak_rss: int, gc_max: int) -> bool:
    """Whether a guest that died of a signal had reached its heap limit.

    PyPy does not always turn an exhausted heap into a MemoryError: with many
    small objects it can crash (SIGSEGV) inside the collector.  A death with
    the resident set at least as large as the heap limit is reported as the
    memory limit, not as a crash.
    """
    return peak_rss >= gc_max * 9 // 10

"""Run one guest from launch to reaping, under one trio task tree.

``run_guest`` owns everything a run creates (the private directory, pipes,
the listener, the process) and releases all of it on every path out:
normal exit, timeout, cancellation by the caller, or a controller error.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from ..errors import LaunchError, PolicyError
from ..policy.schema import Policy
from ..vfs import layout
from ..vfs.system import SystemImage
from ..vfs.tree import Vfs
from . import bpf, kernel, syscalls
from .dispatch import CallStats, serve
from .guest import Guest
from .handlers import handler_table

#: The unprivileged identity the guest runs under when the controller is root.
NOBODY = (65534, 65534)
_FILTER: bytes | None = None
_HANDLERS = handler_table()
_NR_EXECVEAT = syscalls.NR["execveat"]
log = logging.getLogger("sandbox_run")

Sink = Callable[[bytes], None]


def _filter() -> bytes:
    global _FILTER
    if _FILTER is None:
        _FILTER = bpf.pack(bpf.compile_filter())
    return _FILTER


@dataclass(frozen=True, slots=True)
class GuestProgram:
    """What to execute and the files it needs."""

    image: SystemImage
    exe: str  # the virtual path /proc/self/exe names
    argv: tuple[str, ...]  # guest argv, argv[0] a virtual path
    env: tuple[tuple[str, str], ...]
    scripts: tuple[layout.Script, ...] = ()
    bootstrap: bool = False
    files: tuple[tuple[str, str], ...] = ()  # (virtual path, host path), read-only


@dataclass(slots=True)
class Exit:
    """How a run ended, in controller terms (the API builds its Result from this)."""

    status: int | None = None  # exit code, if the guest exited
    signal: int | None = None  # the signal that killed it, if any
    timed_out: bool = False
    launch_error: str | None = None
    wall_time: float = 0.0
    cpu_time: float = 0.0  # user + system seconds of the guest
    max_rss: int = 0  # peak resident memory of the guest, bytes
    stats: CallStats = field(default_factory=CallStats)


def _rlimits(policy: Policy) -> tuple[tuple[int, int, int], ...]:
    core = (resource.RLIMIT_CORE, 0, 0)
    mem = (resource.RLIMIT_AS, policy.memory, policy.memory)
    return (core, mem)


async def _handshake(sp: kernel.Spawned) -> kernel.Listener:
    """Take the listener from the launcher and let its exec of the guest through."""
    await trio.lowlevel.wait_readable(sp.sync_fd)
    rec = kernel.read_sync(sp.sync_fd)
    if rec is None:
        raise LaunchError("the launcher exited before loading the filter")
    step, value = rec
    if step != 0:
        raise LaunchError(str(kernel.LaunchError(step, value)))
    listener = kernel.Listener(kernel.pidfd_getfd(sp.pidfd, value))
    if not os.environ.get("NOSYNC"):
        listener.sync_wakeups()  # best effort: only a speed-up
    try:
        await trio.lowlevel.wait_readable(listener.fd)
        note = listener.recv()
        # The launcher is trusted and single-threaded, and its exec is the
        # only call it makes after loading the filter.
        if note is None or note.pid != sp.pid or note.nr != _NR_EXECVEAT:
            raise LaunchError("the launcher's first call was not the exec of the guest")
        listener.allow(note.id)
        await trio.lowlevel.wait_readable(sp.sync_fd)
        rec = kernel.read_sync(sp.sync_fd)  # end of file: the exec happened
        if rec is not None:
            raise LaunchError(str(kernel.LaunchError(*rec)))
    except BaseException:
        listener.close()
        raise
    return listener


async def _pump(stream: trio.lowlevel.FdStream, sink: Sink) -> None:
    while True:
        data = await stream.receive_some(65536)
        if not data:
            return
        sink(data)


async def _feed(stream: trio.lowlevel.FdStream, data: bytes | int) -> None:
    """Write ``data`` to the guest's stdin, or forward from host descriptor ``data``."""
    try:
        if isinstance(data, bytes):
            await stream.send_all(data)
            return
        while True:
            # A blocking read in a thread: the descriptor may be the user's
            # terminal, whose flags must not change.
            chunk = await trio.to_thread.run_sync(os.read, data, 65536, abandon_on_cancel=True)
            if not chunk:
                return
            await stream.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the guest stopped reading
    finally:
        stream.close()


async def _run_in(
    scope: trio.CancelScope, fn: Callable[..., Awaitable[None]], *args: object
) -> None:
    with scope:
        await fn(*args)


async def _wait_exit(sp: kernel.Spawned, result: Exit) -> int:
    await trio.lowlevel.wait_readable(sp.pidfd)
    reaped = kernel.reap(sp.pid)
    if reaped is None:
        raise LaunchError("the guest process vanished")
    status, usage = reaped
    result.cpu_time = usage.ru_utime + usage.ru_stime
    result.max_rss = usage.ru_maxrss * 1024
    return status


async def run_guest(
    program: GuestProgram,
    policy: Policy,
    *,
    stdout: Sink,
    stderr: Sink,
    stdin: bytes | int | None = None,
    trace: Callable[[str], None] | None = None,
) -> Exit:
    start = time.monotonic()
    result = Exit()
    private = tempfile.mkdtemp(prefix="sandbox-run-")
    vfs = Vfs()
    sp: kernel.Spawned | None = None
    streams: list[trio.lowlevel.FdStream] = []
    guest: Guest | None = None
    reaped = False
    try:
        layout.build(
            vfs,
            private,
            program.image,
            policy,
            program.scripts,
            exe=program.exe,
            bootstrap=program.bootstrap,
            files=program.files,
        )
        cfg = kernel.LaunchConfig(
            program=program.image.program,
            argv=program.argv,
            env=program.env,
            filter=_filter(),
            rlimits=_rlimits(policy),
            drop_to=NOBODY if os.geteuid() == 0 else None,
        )
        sp = kernel.spawn(cfg, pipe_stdin=stdin is not None)
        # The streams own the pipe descriptors from here on.
        streams = [trio.lowlevel.FdStream(sp.stdout_fd), trio.lowlevel.FdStream(sp.stderr_fd)]
        if sp.stdin_fd is not None:
            streams.append(trio.lowlevel.FdStream(sp.stdin_fd))
        with trio.move_on_after(policy.timeout) as scope:
            listener = await _handshake(sp)
            guest = Guest(sp.pid, sp.pidfd, listener, vfs, memory_bytes=policy.memory, trace=trace)
            guest.attach_memory()
            result.stats = guest.stats
            async with trio.open_nursery() as nursery:
                guest.nursery = nursery
                nursery.start_soon(serve, guest, _HANDLERS, (sp.stdout_fd, sp.stderr_fd))
                nursery.start_soon(_pump, streams[0], stdout)
                nursery.start_soon(_pump, streams[1], stderr)
                feeder = trio.CancelScope()
                if stdin is not None and len(streams) == 3:
                    nursery.start_soon(_run_in, feeder, _feed, streams[2], stdin)
                status = await _wait_exit(sp, result)
                reaped = True
                feeder.cancel()
                _decode_status(status, result)
                # The pumps end at end of file; the server when no task is left.
        if scope.cancelled_caught:
            result.timed_out = True
    except PolicyError:
        raise  # the user's mistake (a missing mount directory, say): not a sandbox failure
    except LaunchError as e:
        result.launch_error = str(e)
    except OSError as e:
        if sp is not None:
            log.exception("sandbox failed")
            result.launch_error = f"internal error in the controller: {e}"
        else:
            result.launch_error = f"could not start the guest: {e.strerror or e}"
    except Exception as e:  # a controller bug: end this sandbox, not the host program
        log.exception("sandbox failed")
        result.launch_error = f"internal error in the controller: {type(e).__name__}: {e}"
    finally:
        with trio.CancelScope(shield=True):
            if sp is not None and not reaped:
                kernel.kill_group(sp.pid, sp.pidfd)
                status = await _wait_exit(sp, result)
                if not result.timed_out and result.launch_error is None:
                    _decode_status(status, result)
                elif result.timed_out:
                    result.signal = signal.SIGKILL
            for stream in streams:
                stream.close()
            _release(sp, guest, vfs, private)
        result.wall_time = time.monotonic() - start
    return result


def _decode_status(status: int, result: Exit) -> None:
    if os.WIFEXITED(status):
        result.status = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        result.signal = os.WTERMSIG(status)


def _release(sp: kernel.Spawned | None, guest: Guest | None, vfs: Vfs, private: str) -> None:
    if guest is not None:
        guest.close()
    if sp is not None:
        os.close(sp.pidfd)
        os.close(sp.sync_fd)
    vfs.close()
    shutil.rmtree(private, ignore_errors=True)

"""Run one guest from launch to reaping, under one trio task tree.

``run_guest`` owns everything a run creates (the private directory, pipes,
the listener, the process) and releases all of it on every path out:
normal exit, timeout, cancellation by the caller, or a controller error.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import resource
import select
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from ..errors import LaunchError, PolicyError
from ..net.audit import AuditSink
from ..net.state import NetState
from ..policy.schema import Policy
from ..quotas import limits
from ..quotas.cgroups import Cgroups
from ..result import AreaReport
from ..vfs import areas, layout
from ..vfs.system import SystemImage
from ..vfs.tree import Vfs
from . import bpf, channel, kernel, syscalls
from .dispatch import CallStats, Denial, dispatch, serve
from .guest import Guest
from .handlers import handler_table
from .handlers.closing import count_sockets

#: The unprivileged identity the guest runs under when the controller is root.
NOBODY = (65534, 65534)
_FILTERS: dict[tuple[bool, int | None], bytes] = {}
_HANDLERS = handler_table()
_NR_EXECVEAT = syscalls.NR["execveat"]
log = logging.getLogger("sandbox_run")
#: After the guest exits, how long its output and channel may take to drain.
DRAIN_TIME = 5.0

Sink = Callable[[bytes], None]
#: What a session does with each message its guest sends (``embed/``); the
#: default only takes the bootstrap's exception report.
MessageHandler = Callable[["Run", str, tuple[object, ...]], None]
#: The signal that interrupts a session's call (the bootstrap handles it).
INTERRUPT_SIGNAL = signal.SIGUSR1
#: Bounds on how long the CPU watcher sleeps between readings.
CPU_WATCH_MIN, CPU_WATCH_MAX = 0.002, 1.0


@functools.cache
def _raise_fd_limit() -> None:
    """Let the controller hold the descriptors of many sandboxes (about 15
    each): its soft RLIMIT_NOFILE (often 1024) goes up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _filter(network: bool, channel_fd: int | None) -> bytes:
    """The packed filter for a guest with or without network access, and
    with or without the bootstrap's channel."""
    key = (network, channel_fd)
    if key not in _FILTERS:
        _FILTERS[key] = bpf.pack(bpf.compile_filter(syscalls.table_for(*key)))
    return _FILTERS[key]


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
    stopped: str | None = None  # why the sandbox killed it: timeout, cpu, output, violation
    violation: Denial | None = None  # the refused call that ended it (kill_on_refusal)
    launch_error: str | None = None
    exception: tuple[str, str, str] | None = None  # (type, message, traceback) from the guest
    oom_killed: bool = False  # the kernel killed it at its memory cap
    gc_max: int = 0  # the heap limit it ran with, bytes
    wall_time: float = 0.0
    cpu_time: float = 0.0  # user + system seconds of the guest
    peak_memory: int = 0  # peak resident memory of the guest, bytes
    read_bytes: int = 0  # bytes read by read-like calls (files, pipes, sockets)
    written_bytes: int = 0  # bytes written by write-like calls
    output_bytes: int = 0  # stdout and stderr bytes delivered
    stats: CallStats = field(default_factory=CallStats)
    filesystem: tuple[AreaReport, ...] = ()
    net: NetState | None = None  # the network state, with its audit log


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


class _Placement:
    """Moving the guest into its cgroups, in a thread: a move can wait
    several milliseconds for an RCU grace period, which the guest's exec and
    dynamic loading then overlap instead of following."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: OSError | None = None

    async def attach(self, cgroups: Cgroups, pid: int) -> None:
        try:
            await trio.to_thread.run_sync(cgroups.attach, pid)
        except OSError as e:
            self.error = e
        finally:
            self.done.set()

    async def wait(self) -> None:
        await self.done.wait()
        if self.error is not None:
            raise LaunchError(f"could not place the guest in its cgroup: {self.error.strerror}")


class Run:
    """One running guest as the rest of the controller sees it: why it
    stopped, the scope to cancel, its clocks, its output, and (for sessions,
    ``embed/``) the way to interrupt what it is doing."""

    def __init__(self, result: Exit, deadline: float, cpu_limit: float, output: Output) -> None:
        self.result = result
        self.scope = trio.CancelScope(deadline=deadline)
        self.guest: Guest | None = None
        self.pid = 0
        #: the reading of the guest's CPU clock at which it is stopped
        self.cpu_limit = cpu_limit
        self.output = output
        self.channel: channel.GuestChannel | None = None
        self._poller: select.poll | None = None  # for serve_inline

    def stop(self, why: str) -> None:
        """End the run (the guest is then killed) for reason ``why``."""
        if self.result.stopped is None:
            self.result.stopped = why
        if self.guest is not None:
            self.guest.stopping = True  # the serve loop stops answering at once
        self.scope.cancel()

    def refused(self, denial: Denial) -> None:
        """kill_on_refusal: the first refused call ends the guest."""
        if self.result.violation is None:
            self.result.violation = denial
        self.stop("violation")

    def cpu_time(self) -> float:
        """CPU seconds the guest has used so far, all threads."""
        try:
            return time.clock_gettime(_cpu_clock(self.pid))
        except OSError:
            return 0.0  # gone

    def hold_clock(self) -> None:
        """Stop counting the wall clock and CPU limits (a guest waiting in a pool)."""
        self.scope.deadline = math.inf
        self.cpu_limit = math.inf

    def start_clock(self, timeout: float, cpu_time: float) -> None:
        """Count the limits from now: ``timeout`` seconds, ``cpu_time`` CPU seconds."""
        self.scope.deadline = trio.current_time() + timeout
        self.cpu_limit = self.cpu_time() + cpu_time

    def interrupt(self) -> None:
        """Signal the guest's main thread (its bootstrap turns the signal into
        an exception in the call being made).  Nothing happens if it is gone."""
        if self.pid and self.result.status is None and self.result.signal is None:
            with contextlib.suppress(OSError):  # it has just ended
                kernel.tgkill(self.pid, self.pid, INTERRUPT_SIGNAL)
            if self.channel is not None:
                self.channel.interrupt()  # a read of the channel it waits in ends

    def serve_inline(self, done: Callable[[], bool], budget: float) -> bool:
        """Answer this guest's calls right here, without a trip through the
        event loop, until ``done()`` or ``budget`` seconds have passed; True
        if done.

        For a session's call round trip: a trip through trio for each of the
        guest's two channel calls costs more than the calls themselves.  It
        runs only while no other task is runnable, and ``budget`` bounds how
        long the event loop waits meanwhile (the caller keeps it short).
        """
        guest = self.guest
        if guest is None or guest.stopping:
            return done()
        if trio.lowlevel.current_statistics().tasks_runnable:
            return done()
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(guest.listener.fd, select.POLLIN)
            for fd in self.output.fds:
                poller.register(fd, select.POLLIN)
        end = time.monotonic() + budget
        spawned = guest.spawned
        while not done():
            left = end - time.monotonic()
            if left <= 0 or guest.stopping or guest.spawned != spawned:
                return False  # over budget, ending, or a task needs the loop
            events = poller.poll(max(1, int(left * 1000)))
            for fd, ev in events:
                if fd != guest.listener.fd:
                    self.output.drain()
                elif ev & select.POLLIN:
                    note = guest.listener.recv()
                    if note is not None:
                        dispatch(guest, note, _HANDLERS)
                else:
                    return done()  # the guest is gone
        # Its next call is nearly always the read that waits for the next
        # message: if it is already there, taken here, it costs the event
        # loop no wake-up (waiting for it would block the loop).
        for fd, ev in poller.poll(0):
            if fd == guest.listener.fd and ev & select.POLLIN:
                note = guest.listener.recv()
                if note is not None:
                    dispatch(guest, note, _HANDLERS)
        return True

    def record_exception(self, fields: tuple[object, ...]) -> None:
        if self.result.exception is None:
            try:
                self.result.exception = channel.exception_report(fields)
            except channel.ProtocolError as e:
                log.info("guest channel: bad exception report: %s", e)


def _cpu_clock(pid: int) -> int:
    return ((~pid) << 3) | 2  # the process CPU clock of ``pid`` (CPUCLOCK_SCHED)


class Output:
    """The guest's stdout and stderr on their way to their sinks, at most
    ``cap`` bytes in all.

    Each read asks for no more than fits under the cap (plus one byte, to see
    that more is coming), and nothing beyond the cap reaches a sink.  The
    room is counted again after each read: the other stream may have used
    it meanwhile.  At the cap the run is stopped ("output").
    """

    def __init__(self, result: Exit, cap: int, sinks: tuple[Sink, Sink]) -> None:
        self.result = result
        self.cap = cap
        self.sinks = sinks
        self.fds: tuple[int, ...] = ()
        self.run: Run | None = None
        self._poller: select.poll | None = None  # for drain

    def _deliver(self, index: int, data: bytes) -> bool:
        """Pass ``data`` on; False once the cap is reached."""
        room = self.cap - self.result.output_bytes
        if len(data) > room:
            self.sinks[index](data[:room])
            self.result.output_bytes = self.cap
            if self.run is not None:
                self.run.stop("output")
            return False
        self.result.output_bytes += len(data)
        self.sinks[index](data)
        return True

    async def pump(self, streams: list[trio.lowlevel.FdStream]) -> None:
        async def one(index: int, stream: trio.lowlevel.FdStream) -> None:
            while True:
                room = self.cap - self.result.output_bytes
                data = await stream.receive_some(min(65536, room + 1))
                if not data or not self._deliver(index, data):
                    return

        async with trio.open_nursery() as n:
            for index, stream in enumerate(streams):
                n.start_soon(one, index, stream)

    def drain(self) -> None:
        """Deliver, now, what the guest has written so far (sessions call this
        when a call ends, so that its output comes with its answer)."""
        if self._poller is None:
            self._poller = select.poll()
            for fd in self.fds:
                self._poller.register(fd, select.POLLIN)
        ready = {fd for fd, _ev in self._poller.poll(0)}
        for index, fd in enumerate(self.fds):
            while fd in ready:
                room = self.cap - self.result.output_bytes
                try:
                    data = os.read(fd, min(65536, room + 1))
                except (BlockingIOError, OSError):
                    break  # nothing more now, or closed
                if not data or not self._deliver(index, data):
                    break


async def _watch_cpu(run: Run, threads: int) -> None:
    """Kill the guest when its CPU clock (all threads) reaches ``run.cpu_limit``.

    It sleeps no longer than the guest could take to reach the limit with
    every thread busy, so the overshoot is bounded by the last, shortest
    sleep.  (The limit moves when a pooled guest's clock starts.)
    """
    while True:
        used = run.cpu_time()
        left = run.cpu_limit - used
        if left <= 0:
            run.stop("cpu")
            return
        await trio.sleep(min(CPU_WATCH_MAX, max(CPU_WATCH_MIN, left / threads)))


def one_shot_message(run: Run, kind: str, fields: tuple[object, ...]) -> None:
    """A run's only message: the bootstrap's report of an uncaught exception."""
    if kind != "exception":
        raise channel.ProtocolError(f"unexpected message {kind!r}")
    run.record_exception(fields)


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


async def _background(
    scope: trio.CancelScope, guest: Guest, *, task_status: trio.TaskStatus[None]
) -> None:
    """The nursery where a guest's waiting calls, resolver conversations and
    relays run; cancelled once the guest is gone."""
    with scope:
        async with trio.open_nursery() as inner:
            guest.nursery = inner
            task_status.started()
            await trio.sleep_forever()


#: After the guest exits, how long relays may take to deliver what it sent.
RELAY_DRAIN = 5.0


async def _wait_exit(sp: kernel.Spawned, result: Exit) -> int:
    """Wait for the guest to end, take its last accounting, and reap it."""
    await trio.lowlevel.wait_readable(sp.pidfd)
    io = kernel.final_io(sp.pid)  # between its death and its reaping
    if io is not None:
        result.read_bytes, result.written_bytes = io
    reaped = kernel.reap(sp.pid)
    if reaped is None:
        raise LaunchError("the guest process vanished")
    status, usage = reaped
    result.cpu_time = usage.ru_utime + usage.ru_stime
    result.peak_memory = usage.ru_maxrss * 1024
    return status


async def run_guest(
    program: GuestProgram,
    policy: Policy,
    *,
    stdout: Sink,
    stderr: Sink,
    stdin: bytes | int | None = None,
    trace: Callable[[str], None] | None = None,
    audit: AuditSink | None = None,
    on_message: MessageHandler = one_shot_message,
    session: bool = False,
    on_start: Callable[[Run], None] | None = None,
) -> Exit:
    """Run ``program`` to its end under ``policy``; the guest's output goes
    to the sinks.  A session (``embed/``) takes its guest's messages with
    ``on_message`` and gets the Run, to send its own, from ``on_start``."""
    _raise_fd_limit()
    start = time.monotonic()
    result = Exit()
    output = Output(result, policy.output, (stdout, stderr))
    run = Run(result, trio.current_time() + policy.timeout, policy.cpu_time, output)
    output.run = run
    vfs = Vfs()
    sp: kernel.Spawned | None = None
    streams: list[trio.lowlevel.FdStream] = []
    guest: Guest | None = None
    reaped = False
    area_list: list[areas.Area] = []
    written: list[tuple[int, bytes]] = []
    cgroups: Cgroups | None = None
    ours: socket.socket | None = None
    theirs: socket.socket | None = None
    try:
        area_list = layout.build(
            vfs,
            program.image,
            policy,
            program.scripts,
            exe=program.exe,
            bootstrap=program.bootstrap,
            files=program.files,
        )
        plan = limits.plan(
            policy,
            largest_file=min(a.quota.max_file_size for a in area_list),
            staged_bytes=sum(a.quota.max_bytes for a in area_list),
        )
        result.gc_max = plan.gc_max
        cgroups = Cgroups.create(plan.cgroup_memory, plan.cgroup_tasks)
        env = (*program.env, *plan.env)
        chan: channel.GuestChannel | None = None
        if program.bootstrap:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            chan = channel.GuestChannel(
                plan.channel_fd,
                lambda kind, fields: on_message(run, kind, fields),
                budget=None if session else channel.ONE_SHOT_BUDGET,
            )
            run.channel = chan
            if session:
                # A session cannot go on without its protocol: end it.
                chan.on_broken = lambda why: run.stop("protocol")
            else:
                chan.on_broken = lambda why: log.info("guest channel: %s", why)
            ours.close()  # the controller carries the channel itself, never by the socket
            ours = None
        cfg = kernel.LaunchConfig(
            program=program.image.program,
            argv=program.argv,
            env=env,
            filter=_filter(policy.network.enabled, chan.fd if chan is not None else None),
            rlimits=plan.rlimits,
            drop_to=NOBODY if os.geteuid() == 0 else None,
        )
        sp = kernel.spawn(
            cfg,
            pipe_stdin=stdin is not None,
            channel=(theirs.fileno(), plan.channel_fd) if theirs is not None else None,
        )
        run.pid = sp.pid
        output.fds = (sp.stdout_fd, sp.stderr_fd)
        if theirs is not None:
            theirs.close()  # the guest has it now
            theirs = None
        # The streams own the pipe descriptors from here on.
        streams = [trio.lowlevel.FdStream(sp.stdout_fd), trio.lowlevel.FdStream(sp.stderr_fd)]
        if sp.stdin_fd is not None:
            streams.append(trio.lowlevel.FdStream(sp.stdin_fd))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output.pump, streams[:2])
            placed: _Placement | None = None
            if cgroups is not None:
                placed = _Placement()
                nursery.start_soon(placed.attach, cgroups, sp.pid)
            if on_start is not None:
                on_start(run)
            feeder = trio.CancelScope()
            if stdin is not None and len(streams) == 3:
                nursery.start_soon(_run_in, feeder, _feed, streams[2], stdin)
            watcher = trio.CancelScope()
            background = trio.CancelScope()
            net: NetState | None = None
            # The run's scope covers the handshake and the guest's life: its
            # deadline is the wall clock, and stop() cancels it.  The output
            # pumps are outside it, so that what the guest wrote before it
            # was stopped still reaches the user.
            with run.scope:
                listener = await _handshake(sp)
                if placed is not None:
                    # The exec and the dynamic loader ran meanwhile; no
                    # notification is answered, so nothing untrusted runs,
                    # before the guest is in its cgroups.
                    await placed.wait()
                net = NetState(policy.network, audit_sink=audit)
                result.net = net
                guest = Guest(
                    sp.pid,
                    sp.pidfd,
                    listener,
                    vfs,
                    memory_bytes=policy.memory,
                    trace=trace,
                    net=net,
                    channel=chan,
                )
                net.socket_inodes = guest.socket_inodes
                if net.enabled:
                    from ..net.resolver import Resolver

                    net.resolver = Resolver(net)
                if policy.kill_on_refusal:
                    guest.on_refusal = run.refused
                run.guest = guest
                guest.attach_memory()
                result.stats = guest.stats
                await nursery.start(_background, background, guest)
                nursery.start_soon(serve, guest, _HANDLERS, (sp.stdout_fd, sp.stderr_fd))
                nursery.start_soon(_run_in, watcher, _watch_cpu, run, policy.threads)
                await trio.lowlevel.wait_readable(sp.pidfd)
            if run.scope.cancelled_caught:
                if result.stopped is None:
                    result.stopped = "timeout"
                if guest is not None:
                    guest.stopping = True
                    count_sockets(guest)  # its connections' traffic, before they close
                # Nothing is being answered any more, so the guest cannot
                # open another file: what it may still be writing is known.
                written = kernel.written_files(sp.pid)
                kernel.kill_group(sp.pid, sp.pidfd)
            status = await _wait_exit(sp, result)
            reaped = True
            feeder.cancel()
            watcher.cancel()
            _decode_status(status, result)
            if net is not None:
                with trio.move_on_after(RELAY_DRAIN):
                    await net.relays_done()
            background.cancel()
            # The pumps and the channel end at end of file, the server when
            # no task is left.
            nursery.cancel_scope.deadline = trio.current_time() + DRAIN_TIME
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
    except Exception as e:
        launch = _sole_launch_error(e)
        if launch is not None:  # raised in the run's nursery, which wrapped it
            result.launch_error = str(launch)
        else:  # a controller bug: end this sandbox, not the host program
            log.exception("sandbox failed")
            result.launch_error = f"internal error in the controller: {type(e).__name__}: {e}"
    finally:
        with trio.CancelScope(shield=True):
            if sp is not None and not reaped:
                # Nothing is being answered any more, so the guest cannot open
                # another file: what it may still be writing is known.
                written = kernel.written_files(sp.pid)
                kernel.kill_group(sp.pid, sp.pidfd)
                status = await _wait_exit(sp, result)
                _decode_status(status, result)
            for stream in streams:
                stream.close()
            for sock in (ours, theirs):
                if sock is not None:
                    sock.close()
            try:
                if cgroups is not None:
                    result.oom_killed = cgroups.oom_killed()
                if result.status is not None and result.stopped is None:
                    how = "exited"
                elif result.stopped is not None and result.launch_error is None:
                    how = "killed"
                else:
                    how = "crashed"
                result.filesystem = areas.finish(area_list, how=how, written=written)
            finally:
                for a in area_list:
                    a.close()
                if cgroups is not None:
                    cgroups.remove()
                _release(sp, guest, vfs)
        result.wall_time = time.monotonic() - start
    return result


def _sole_launch_error(e: BaseException) -> LaunchError | None:
    """The LaunchError inside ``e``, if ``e`` is one, alone, in the exception
    groups a trio nursery wraps what its body raises in."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e if isinstance(e, LaunchError) else None


def _decode_status(status: int, result: Exit) -> None:
    if os.WIFEXITED(status):
        result.status = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        result.signal = os.WTERMSIG(status)


def _release(sp: kernel.Spawned | None, guest: Guest | None, vfs: Vfs) -> None:
    if guest is not None:
        guest.close()
    if sp is not None:
        os.close(sp.pidfd)
        os.close(sp.sync_fd)
    vfs.close()

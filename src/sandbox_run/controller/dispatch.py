"""Answer a guest's notified system calls, one table lookup each.

``serve`` is the per-guest trio task: it waits for the listener to become
readable, then drains pending notifications without returning to the
scheduler (up to a batch limit, for fairness between sandboxes).  Each
notification is looked up in ``syscalls.TABLE``; ``handle`` entries go to the
handler of the same name, ``refuse`` entries are answered with their errno and
logged.  Every path through ``dispatch`` ends in exactly one answer, and no
exception from a handler can escape it: a bug in a handler fails the call,
never the controller, and never lets the call through.
"""

from __future__ import annotations

import errno
import logging
import os
import select
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import trio

from ..errors import Refused, SyscallError
from ..vfs.stat import VStat
from ..vfs.tree import Loc
from . import syscalls
from .kernel import GuestFault, Notification

if TYPE_CHECKING:
    from .guest import Guest

log = logging.getLogger("sandbox_run")

#: Notifications handled in a row before yielding to other sandboxes.
BATCH = 64
#: Longest path argument the controller reads (PATH_MAX, with its NUL).
PATH_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Inject:
    """Answer with a new descriptor: ``host_fd`` installed in the guest."""

    host_fd: int
    cloexec: bool


@dataclass(frozen=True, slots=True)
class Install:
    """Put ``host_fd`` in the guest at ``guest_fd`` (replacing what is there),
    then answer with ``value``, or with ``-error`` if ``error``: how a connect
    hands the guest the socket the controller connected."""

    host_fd: int
    guest_fd: int
    cloexec: bool
    value: int = 0
    error: int = 0


class _Continue:
    """Let the kernel run the call as made (register-only calls)."""

    __slots__ = ()


CONTINUE: Final = _Continue()


class _Parked:
    """The handler keeps the call, to answer it later with ``answer_parked``
    (a read of the channel, waiting for the host's next message)."""

    __slots__ = ()


PARKED: Final = _Parked()


class Later:
    """A synchronous handler's answer when the call must wait after all (a
    blocking connect still in progress): ``fn`` finishes it as an
    asynchronous handler would, while the controller serves other calls."""

    __slots__ = ("cleanup", "fn")

    def __init__(
        self, fn: Callable[[], Awaitable[Reply]], cleanup: Callable[[], None] | None = None
    ) -> None:
        self.fn = fn
        self.cleanup = cleanup  # releases what fn owns, should fn never run


Reply = int | Inject | Install | _Continue | Later | _Parked
Handler = Callable[["Call"], Reply]


class AsyncHandler:
    """A handler that must wait (a network connect, say) without stopping the
    controller.  It answers with an int or an Inject, never CONTINUE."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Call], Awaitable[Reply]]) -> None:
        self.fn = fn


AnyHandler = Handler | AsyncHandler
#: Calls of one guest that may wait in asynchronous handlers at once.
MAX_PENDING = 64

#: Calls whose handlers may answer CONTINUE: their pointer arguments (if
#: any) never decide what the call reaches.  The dispatcher enforces this.
CONTINUE_OK: Final = frozenset(
    {"kill", "tgkill", "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"}
    | set(syscalls.NETWORK_HANDLED)
    # read and write of descriptor 3 that is not the channel any more: the
    # buffer is the guest's own memory; the descriptor decides the object.
    | set(syscalls.CHANNEL_HANDLED)
)


class Call:
    """One notified system call, as a handler sees it."""

    __slots__ = ("_touched", "_valid", "args", "guest", "id", "name", "note", "shown")

    def __init__(self, guest: Guest, note: Notification, name: str) -> None:
        self.guest = guest
        self.note = note
        self.id = note.id
        self.args = note.args
        self.name = name
        self.shown: dict[int, str] = {}  # decoded arguments, for the trace
        self._touched = False
        self._valid = False

    # --- reading the guest ---------------------------------------------
    def path(self, i: int) -> bytes:
        """The NUL-terminated path in argument ``i``."""
        addr = self.args[i]
        self._touched = True
        try:
            s = self.guest.mem.read_cstring(addr, PATH_LIMIT - 1)
        except GuestFault:
            raise SyscallError(errno.EFAULT, "bad path pointer") from None
        if s is None:
            raise SyscallError(errno.ENAMETOOLONG, "path longer than PATH_MAX")
        self.shown[i] = repr(s)[1:]
        return s

    def read(self, addr: int, size: int) -> bytes:
        self._touched = True
        try:
            return self.guest.mem.read_exact(addr, size)
        except GuestFault:
            raise SyscallError(errno.EFAULT, "bad pointer") from None

    def check_id(self) -> None:
        """Confirm the call is still pending after reading guest memory.

        Handlers with side effects call this between decoding and acting; the
        dispatcher calls it before answering any call that read memory.
        """
        if not self._valid:
            if not self.guest.listener.id_valid(self.id):
                raise _Vanished()
            self._valid = True

    # --- answering -------------------------------------------------------
    def write(self, addr: int, data: bytes) -> None:
        if self._touched:
            self.check_id()
        try:
            self.guest.mem.write(addr, data)
        except GuestFault:
            raise SyscallError(errno.EFAULT, "bad output pointer") from None

    def fd_arg(self, i: int) -> int:
        """The guest descriptor number in argument ``i`` (an int, as the kernel reads it)."""
        v = self.args[i] & 0xFFFF_FFFF
        return v - (1 << 32) if v >= 1 << 31 else v

    def stat_fd(self, guest_fd: int) -> VStat:
        """The guest's view of one of its descriptors (fstat)."""
        if guest_fd < 0:
            raise SyscallError(errno.EBADF, "negative descriptor")
        guest = self.guest
        try:
            st = guest.fd_stat(guest_fd)
        except OSError:
            raise SyscallError(errno.EBADF, "no such descriptor") from None

        def link() -> bytes:
            try:
                return guest.fd_link(guest_fd)
            except OSError:
                return b""  # closed meanwhile: stat what we saw

        return guest.vfs.stat_object(st, link, lambda: guest.fd_mount_id(guest_fd))

    def locate(self, guest_fd: int) -> tuple[os.stat_result, Loc]:
        """stat and place in the VFS of a guest descriptor, without duplicating it.

        For inspection only (see ``Guest.fd_stat``): whatever acts on the
        object works on a duplicate.
        """
        if guest_fd < 0:
            raise SyscallError(errno.EBADF, "negative descriptor")
        guest = self.guest
        try:
            st = guest.fd_stat(guest_fd)
            link = guest.fd_link(guest_fd)
        except OSError:
            raise SyscallError(errno.EBADF, "no such descriptor") from None
        return st, guest.vfs.locate(st, link, lambda: guest.fd_mount_id(guest_fd))

    def dup(self, guest_fd: int) -> int:
        """A controller-side duplicate of a guest descriptor (caller closes it)."""
        if guest_fd < 0:
            raise SyscallError(errno.EBADF, "negative descriptor")
        try:
            return self.guest.getfd(guest_fd)
        except OSError as e:
            raise SyscallError(
                errno.EBADF if e.errno == errno.EBADF else e.errno or errno.EBADF,
                "no such descriptor",
            ) from None

    @property
    def touched(self) -> bool:
        return self._touched


class _Vanished(Exception):
    """The guest call went away (its thread died) while we handled it."""


@dataclass(slots=True)
class Denial:
    """A refused call, kept for the Result and the log."""

    syscall: str
    errno: int
    reason: str


@dataclass(slots=True)
class CallStats:
    counts: Counter[str] = field(default_factory=Counter)
    denials: list[Denial] = field(default_factory=list)
    denials_dropped: int = 0

    MAX_DENIALS = 200

    def deny(self, d: Denial) -> None:
        if len(self.denials) < self.MAX_DENIALS:
            self.denials.append(d)
        else:
            self.denials_dropped += 1


def _format_result(reply: Reply | None, err: SyscallError | None) -> str:
    if err is not None:
        return f"-1 {errno.errorcode.get(err.errno, str(err.errno))} ({err.reason})"
    if isinstance(reply, Inject):
        return "<fd>"
    if isinstance(reply, Install):
        return (
            f"-1 {errno.errorcode.get(reply.error, reply.error)} <fd installed>"
            if reply.error
            else f"{reply.value} <fd installed>"
        )
    if reply is CONTINUE:
        return "<allowed>"
    return str(reply)


def _trace_line(call: Call, result: str) -> str:
    args = []
    for i in range(syscalls_argc(call.name)):
        v = call.args[i]
        args.append(call.shown.get(i, str(v) if v < 1 << 16 else hex(v)))
    return f"[{call.note.pid}] {call.name}({', '.join(args)}) = {result}"


_ARGC: dict[str, int] = {}


def syscalls_argc(name: str) -> int:
    return _ARGC.get(name, 3)


def dispatch(guest: Guest, note: Notification, handlers: list[AnyHandler | None]) -> None:
    """Answer one notification.  Never raises for anything the guest did.

    Asynchronous handlers (``AsyncHandler``) run in their own task; the
    guest thread that made the call stays stopped until they answer, while
    the controller goes on serving everything else.
    """
    nr = note.nr
    entry = guest.table[nr] if 0 <= nr <= syscalls.MAX_NR else syscalls.entry_for(nr)
    name = entry.name
    guest.stats.counts[name] += 1
    call = Call(guest, note, name)
    reply: Reply | None = None
    err: SyscallError | None = None
    try:
        if note.arch != syscalls.AUDIT_ARCH_X86_64:
            # The filter kills foreign ABIs; reaching here means it did not.
            raise SyscallError(errno.ENOSYS, "foreign system-call ABI")
        handler = handlers[nr] if 0 <= nr < len(handlers) else None
        if not entry.handled or handler is None:
            raise SyscallError(entry.errno or errno.ENOSYS, entry.reason)
        if isinstance(handler, AsyncHandler):
            _start_async(guest, call, entry, handler.fn, call)
            return
        reply = handler(call)
        if reply is PARKED:
            guest.pending += 1  # answered by answer_parked
            return
        if isinstance(reply, Later):
            later, reply = reply, None
            try:
                _start_async(guest, call, entry, later.fn)
            except BaseException:
                if later.cleanup is not None:
                    later.cleanup()
                raise
            return
        if reply is CONTINUE and name not in CONTINUE_OK:
            raise SyscallError(errno.ENOSYS, f"internal: {name} may not continue")
        if call.touched:
            call.check_id()
    except SyscallError as e:
        err = e
    except _Vanished:
        _close_reply(reply)
        return
    except Exception:  # a controller bug: fail the call, keep serving
        log.exception("handler for %s failed", name)
        _close_reply(reply)
        reply = None
        err = SyscallError(errno.EIO, "internal error in the controller")
    _finish(guest, call, entry, reply, err)


def _start_async(
    guest: Guest,
    call: Call,
    entry: syscalls.Entry,
    fn: Callable[..., Awaitable[Reply]],
    *args: object,
) -> None:
    if guest.pending >= MAX_PENDING:
        raise SyscallError(errno.EAGAIN, "too many calls in progress")
    guest.pending += 1
    guest.spawned += 1
    guest.nursery.start_soon(_run_async, guest, call, entry, fn, *args)


async def _run_async(
    guest: Guest,
    call: Call,
    entry: syscalls.Entry,
    fn: Callable[..., Awaitable[Reply]],
    *args: object,
) -> None:
    reply: Reply | None = None
    err: SyscallError | None = None
    try:
        reply = await fn(*args)
        if reply is CONTINUE or reply is PARKED or isinstance(reply, Later):
            raise SyscallError(errno.ENOSYS, f"internal: {call.name} may not continue")
        if call.touched:
            call.check_id()
    except SyscallError as e:
        err = e
    except _Vanished:
        _close_reply(reply)
        return
    except Exception:
        log.exception("handler for %s failed", call.name)
        _close_reply(reply)
        reply = None
        err = SyscallError(errno.EIO, "internal error in the controller")
    finally:
        guest.pending -= 1
    _finish(guest, call, entry, reply, err)


def answer_parked(guest: Guest, call: Call, produce: Callable[[], Reply]) -> None:
    """Answer a call its handler parked, with what ``produce`` returns or
    raises (as a handler would).  Never raises for anything the guest did."""
    guest.pending -= 1
    reply: Reply | None = None
    err: SyscallError | None = None
    try:
        reply = produce()
        if call.touched:
            call.check_id()
    except SyscallError as e:
        err = e
    except _Vanished:
        return
    except Exception:  # a controller bug: fail the call, keep serving
        log.exception("answering a parked %s failed", call.name)
        reply, err = None, SyscallError(errno.EIO, "internal error in the controller")
    _finish(guest, call, guest.table[call.note.nr], reply, err)


def _finish(
    guest: Guest, call: Call, entry: syscalls.Entry, reply: Reply | None, err: SyscallError | None
) -> None:
    """Log a refusal, send the answer, trace it."""
    name = call.name
    if err is not None and (
        not entry.handled
        or err.errno in (errno.ENOSYS, errno.EPERM, errno.EACCES)
        or isinstance(err, Refused)
    ):
        denial = Denial(name, err.errno, err.reason)
        guest.stats.deny(denial)
        log.info("guest %d: %s refused: %s", guest.pid, name, err)
        if guest.on_refusal is not None:
            guest.on_refusal(denial)
    try:
        err = _answer(guest, call.id, reply, err)
    except OSError:
        # The listener itself failed: nothing more can be answered for this
        # guest, but the controller and other sandboxes carry on.
        log.exception("answering %s for guest %d failed", name, guest.pid)
    if guest.trace is not None:
        guest.trace(_trace_line(call, _format_result(reply, err)))


def _answer(
    guest: Guest, nid: int, reply: Reply | None, err: SyscallError | None
) -> SyscallError | None:
    """Send exactly one answer for notification ``nid``; returns the error sent, if any."""
    listener = guest.listener
    if err is not None:
        listener.reply(nid, error=err.errno)
        return err
    if isinstance(reply, Inject):
        try:
            listener.inject_fd(nid, reply.host_fd, reply.cloexec)
        except OSError as e:
            # EMFILE in the guest, for instance: that is the call's error.
            listener.reply(nid, error=e.errno or errno.EIO)
            return SyscallError(e.errno or errno.EIO, "descriptor injection failed")
        finally:
            os.close(reply.host_fd)
        return None
    if isinstance(reply, Install):
        try:
            if not listener.install_fd(nid, reply.host_fd, reply.guest_fd, reply.cloexec):
                return None  # the call vanished
        except OSError as e:
            listener.reply(nid, error=e.errno or errno.EIO)
            return SyscallError(e.errno or errno.EIO, "descriptor installation failed")
        finally:
            os.close(reply.host_fd)
        if reply.error:
            listener.reply(nid, error=reply.error)
        else:
            listener.reply(nid, value=reply.value)
        return None
    if reply is CONTINUE:
        listener.allow(nid)
    elif isinstance(reply, int):
        listener.reply(nid, value=reply)
    else:
        listener.reply(nid, error=errno.EIO)
        return SyscallError(errno.EIO, "internal: no answer")
    return None


def _close_reply(reply: Reply | None) -> None:
    if isinstance(reply, (Inject, Install)):
        os.close(reply.host_fd)


#: Guests being served in each trio run: with only one, ``serve`` may wait
#: for its next call in a blocking poll instead of a trip through trio.
_ACTIVE: trio.lowlevel.RunVar[int] = trio.lowlevel.RunVar("sandbox_run_active", default=0)
#: Longest a blocking wait for the next call may last (milliseconds), and the
#: longest ``serve`` keeps trio waiting, in seconds.
EXCLUSIVE_WAIT_MS = 1
EXCLUSIVE_SLICE = 0.02


async def serve(
    guest: Guest, handlers: list[AnyHandler | None], watch: tuple[int, ...] = ()
) -> None:
    """Answer the guest's notifications until it has no task left.

    ``watch`` are the guest's output pipes.  When this is the only guest of
    the trio run and no other task is runnable, the next call is awaited in a
    short blocking poll on the listener and ``watch``: a start-up makes
    hundreds of calls in a row, and a trip through the scheduler for each
    costs more than the call itself.  Output ready on a pipe, a quiet guest,
    or the time slice ending all return to trio.
    """
    listener_fd = guest.listener.fd
    poller = select.poll()
    poller.register(listener_fd, select.POLLIN)
    for fd in watch:
        poller.register(fd, select.POLLIN)
    _ACTIVE.set(_ACTIVE.get() + 1)
    try:
        while True:
            await trio.lowlevel.wait_readable(listener_fd)
            exclusive = (
                _ACTIVE.get() == 1
                and guest.pending == 0
                and trio.lowlevel.current_statistics().tasks_runnable == 0
            )
            deadline = trio.current_time() + EXCLUSIVE_SLICE if exclusive else 0.0
            for _ in range(BATCH if not exclusive else 1 << 30):
                events = poller.poll(EXCLUSIVE_WAIT_MS if exclusive else 0)
                if not events:
                    break
                fd, ev = events[0]
                if fd != listener_fd or len(events) > 1:
                    # Output is waiting for the pumps (or more than one fd is
                    # ready): let trio run them.
                    if any(f == listener_fd and e & select.POLLIN for f, e in events):
                        note = guest.listener.recv()
                        if note is not None:
                            dispatch(guest, note, handlers)
                    elif any(f == listener_fd and e & _GONE for f, e in events):
                        return
                    break
                if guest.stopping:
                    break  # the sandbox is ending the guest: answer nothing more
                if ev & select.POLLIN:
                    note = guest.listener.recv()
                    if note is not None:
                        dispatch(guest, note, handlers)
                    if exclusive and (guest.pending or trio.current_time() > deadline):
                        break  # an asynchronous handler now needs trio
                    continue
                if ev & _GONE:
                    return  # every task of the guest is gone
                break
            await trio.lowlevel.checkpoint()
    finally:
        _ACTIVE.set(_ACTIVE.get() - 1)


_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


def set_argc(table: dict[str, int]) -> None:
    _ARGC.update(table)

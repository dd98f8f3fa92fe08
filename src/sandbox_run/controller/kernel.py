"""Every ioctl, pidfd and process-memory operation of the controller.

Kept in one small module so that the rest of the controller deals in plain
values.  Nothing here decides policy.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import resource
import socket
import struct
import threading
from dataclasses import dataclass

# --- seccomp user notification (linux/seccomp.h) --------------------------
_NOTIF = struct.Struct("=QII" + "iIQ6Q")  # seccomp_notif: id, pid, flags, seccomp_data
_RESP = struct.Struct("=QqiI")  # seccomp_notif_resp: id, val, error, flags
_ADDFD = struct.Struct("=QIIII")  # seccomp_notif_addfd: id, flags, srcfd, newfd, newfd_flags
_ID = struct.Struct("=Q")


def _ioc(direction: int, nr: int, size: int) -> int:
    return direction << 30 | size << 16 | ord("!") << 8 | nr


IOCTL_NOTIF_RECV = _ioc(3, 0, _NOTIF.size)
IOCTL_NOTIF_SEND = _ioc(3, 1, _RESP.size)
IOCTL_NOTIF_ID_VALID = _ioc(1, 2, _ID.size)
IOCTL_NOTIF_ADDFD = _ioc(1, 3, _ADDFD.size)
IOCTL_NOTIF_SET_FLAGS = _ioc(1, 4, 8)
USER_NOTIF_FD_SYNC_WAKE_UP = 1
USER_NOTIF_FLAG_CONTINUE = 1
ADDFD_FLAG_SETFD = 1
ADDFD_FLAG_SEND = 2

_NR_PIDFD_GETFD = 438

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _check(ret: int) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


class Notification:
    """One stopped system call, as the kernel reported it."""

    __slots__ = ("arch", "args", "id", "ip", "nr", "pid")

    def __init__(
        self,
        nid: int,
        pid: int,
        nr: int,
        arch: int,
        ip: int,
        args: tuple[int, int, int, int, int, int],
    ) -> None:
        self.id = nid
        self.pid = pid
        self.nr = nr
        self.arch = arch
        self.ip = ip
        self.args = args


class Listener:
    """The controller's end of a guest's seccomp filter."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def sync_wakeups(self) -> bool:
        """Hand the CPU straight between guest and controller on each call
        (Linux 6.6+); without it every call pays two cross-CPU wake-ups."""
        try:
            fcntl.ioctl(self.fd, IOCTL_NOTIF_SET_FLAGS, USER_NOTIF_FD_SYNC_WAKE_UP)
        except OSError:
            return False
        return True

    def recv(self) -> Notification | None:
        """The next notification, or None if it vanished (the caller died)."""
        buf = bytearray(_NOTIF.size)  # must be zeroed before every RECV
        try:
            fcntl.ioctl(self.fd, IOCTL_NOTIF_RECV, buf)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EINTR):
                return None
            raise
        nid, pid, _flags, nr, arch, ip, a0, a1, a2, a3, a4, a5 = _NOTIF.unpack(buf)
        return Notification(nid, pid, nr, arch, ip, (a0, a1, a2, a3, a4, a5))

    def id_valid(self, nid: int) -> bool:
        try:
            fcntl.ioctl(self.fd, IOCTL_NOTIF_ID_VALID, _ID.pack(nid))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    def reply(self, nid: int, value: int = 0, error: int = 0) -> bool:
        """Answer a call: ``-error`` if error, else ``value``.  False if it vanished."""
        return self._send(_RESP.pack(nid, value if not error else 0, -error, 0))

    def allow(self, nid: int) -> bool:
        """Let the kernel run the call as made.  Only for register-only calls."""
        return self._send(_RESP.pack(nid, 0, 0, USER_NOTIF_FLAG_CONTINUE))

    def _send(self, resp: bytes) -> bool:
        try:
            fcntl.ioctl(self.fd, IOCTL_NOTIF_SEND, resp)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    def inject_fd(self, nid: int, host_fd: int, cloexec: bool) -> int | None:
        """Install ``host_fd`` in the guest and answer the call with its number.

        Atomic (ADDFD_FLAG_SEND): either the guest gets the descriptor as the
        result of its call, or nothing is installed.  None if the call vanished.
        """
        return self._add_fd(nid, ADDFD_FLAG_SEND, host_fd, 0, cloexec)

    def install_fd(self, nid: int, host_fd: int, guest_fd: int, cloexec: bool) -> bool:
        """Put ``host_fd`` in the guest at number ``guest_fd``, replacing what is
        there (as dup2 would), without answering the call.  False if it vanished.
        """
        return self._add_fd(nid, ADDFD_FLAG_SETFD, host_fd, guest_fd, cloexec) is not None

    def _add_fd(
        self, nid: int, flags: int, host_fd: int, guest_fd: int, cloexec: bool
    ) -> int | None:
        """SECCOMP_IOCTL_NOTIF_ADDFD: the descriptor's number in the guest, or
        None if the call vanished."""
        buf = bytearray(_ADDFD.pack(nid, flags, host_fd, guest_fd, os.O_CLOEXEC if cloexec else 0))
        try:
            return int(fcntl.ioctl(self.fd, IOCTL_NOTIF_ADDFD, buf))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class GuestFault(Exception):
    """A guest pointer could not be read or written (EFAULT for the guest)."""


_NR_PROCESS_VM_WRITEV = 311
_WRITE_BUF = 1 << 14  # per-guest bounce buffer; larger writes are split
_process_vm_writev = _libc["syscall"]  # a separate function object with its own signature
_process_vm_writev.restype = ctypes.c_long
_process_vm_writev.argtypes = [
    ctypes.c_long,
    ctypes.c_long,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


class GuestMemory:
    """The guest's address space.

    Reads go through ``/proc/<pid>/mem``: the descriptor pins the address
    space it was opened on, so a recycled pid can never redirect a read.
    Writes use process_vm_writev(2), which honours page protections (writes
    through /proc/<pid>/mem are forced past them), so a read-only buffer
    gets EFAULT as the kernel would give.  The pid is the controller's own
    child and is written to only while one of its calls is stopped, before
    the controller reaps it.
    """

    __slots__ = ("_buf", "_iov", "_iov_addr", "fd", "pid")

    #: Highest user-space address on x86-64 (47-bit, or 56-bit with LA57).
    LIMIT = 1 << 56

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        # [local base, local len, remote base, remote len], reused for every write
        self._buf = ctypes.create_string_buffer(_WRITE_BUF)
        self._iov = (ctypes.c_uint64 * 4)(ctypes.addressof(self._buf), 0, 0, 0)
        self._iov_addr = ctypes.addressof(self._iov)

    def read(self, addr: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``addr``; short if the range runs into unmapped memory."""
        if addr <= 0 or addr >= self.LIMIT or size < 0:
            raise GuestFault(addr)
        size = min(size, self.LIMIT - addr)
        try:
            data = os.pread(self.fd, size, addr)
        except OSError as e:
            raise GuestFault(addr) from e
        if not data and size:
            raise GuestFault(addr)
        return data

    def read_exact(self, addr: int, size: int) -> bytes:
        data = self.read(addr, size) if size else b""
        if len(data) != size:
            raise GuestFault(addr + len(data))
        return data

    def read_cstring(self, addr: int, limit: int) -> bytes | None:
        """The NUL-terminated string at ``addr``, or None if longer than ``limit``."""
        out = b""
        chunk = 256  # most paths are short; grow for long ones
        while True:
            here = addr + len(out)
            # Never read across a page boundary in one go: a string may end
            # just before an unmapped page.
            size = min(chunk, 4096 - here % 4096, limit + 1 - len(out))
            data = self.read(here, size)
            nul = data.find(b"\0")
            if nul >= 0:
                out += data[:nul]
                return out if len(out) <= limit else None
            out += data
            if len(out) > limit:
                return None
            chunk = 4096

    def write(self, addr: int, data: bytes) -> None:
        if addr <= 0 or addr + len(data) > self.LIMIT:
            raise GuestFault(addr)
        if not data:
            return
        for off in range(0, len(data), _WRITE_BUF):
            chunk = data[off : off + _WRITE_BUF]
            n = len(chunk)
            ctypes.memmove(self._buf, chunk, n)
            iov = self._iov
            iov[1] = n
            iov[2] = addr + off
            iov[3] = n
            done = _process_vm_writev(
                _NR_PROCESS_VM_WRITEV, self.pid, self._iov_addr, 1, self._iov_addr + 16, 1, 0
            )
            if done != n:
                raise GuestFault(addr + off + max(done, 0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A duplicate, in the controller, of descriptor ``target_fd`` of the guest."""
    # The kernel sets close-on-exec on the new descriptor.
    return _check(
        _syscall(
            ctypes.c_long(_NR_PIDFD_GETFD),
            ctypes.c_long(pidfd),
            ctypes.c_long(target_fd),
            ctypes.c_long(0),
        )
    )


# --- starting a guest through the launcher ---------------------------------
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox-run-launcher")
_CONFIG_MAGIC = 0x4C58_4253  # b"SBXL"
_CONFIG_VERSION = 1
FLAG_DROP_PRIVILEGES = 1
_SYNC = struct.Struct("=II")
LAUNCH_STEPS = {
    1: "parsing the launcher's arguments",
    2: "reading the launch configuration",
    3: "setting a resource limit",
    4: "dropping privileges",
    5: "setting no_new_privs",
    6: "setting the parent-death signal",
    7: "closing inherited descriptors",
    8: "loading the seccomp filter",
    9: "executing the guest program",
    10: "passing the channel descriptor",
}
# Descriptor numbers the launcher receives; stdio takes 0-2.
_CONFIG_FD, _SYNC_FD, _EXEC_FD, _CHANNEL_FD = 3, 4, 5, 6


class LaunchError(Exception):
    """The launcher could not start the guest."""

    def __init__(self, step: int, err: int) -> None:
        what = LAUNCH_STEPS.get(step, f"step {step}")
        super().__init__(f"launching the guest failed while {what}: {os.strerror(err)}")
        self.step = step
        self.errno = err


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    program: str  # host path of the executable
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    filter: bytes  # packed sock_filter instructions
    rlimits: tuple[tuple[int, int, int], ...] = ()  # (resource, soft, hard)
    drop_to: tuple[int, int] | None = None  # (uid, gid) when the controller is root

    def pack(self) -> bytes:
        flags = FLAG_DROP_PRIVILEGES if self.drop_to else 0
        uid, gid = self.drop_to or (0, 0)
        out = [
            struct.pack("=6I", _CONFIG_MAGIC, _CONFIG_VERSION, flags, uid, gid, len(self.rlimits))
        ]
        out += [struct.pack("=IIQQ", r, 0, soft, hard) for r, soft, hard in self.rlimits]
        out.append(struct.pack("=II", len(self.filter) // 8, 0))
        out.append(self.filter)
        return b"".join(out)


@dataclass(slots=True)
class Spawned:
    """A launcher process on its way to becoming the guest."""

    pid: int
    pidfd: int
    sync_fd: int
    stdin_fd: int | None  # controller's write end, if stdin is piped
    stdout_fd: int
    stderr_fd: int


def _high_dup(fd: int) -> int:
    """A close-on-exec copy numbered above the launcher's fixed descriptors."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _CHANNEL_FD + 1)


def spawn(
    cfg: LaunchConfig, *, pipe_stdin: bool, channel: tuple[int, int] | None = None
) -> Spawned:
    """Start the launcher (posix_spawn: thread-safe, no Python code in the child).

    The guest's standard streams are pipes owned by the controller; stdin is
    /dev/null unless ``pipe_stdin``.  ``channel`` (descriptor, number), if
    given: the descriptor becomes that number in the guest (the caller keeps
    its own copy).
    """
    opened: list[int] = []

    def track(*fds: int) -> None:
        opened.extend(fds)

    try:
        cfg_r, cfg_w = os.pipe2(os.O_CLOEXEC)
        track(cfg_r, cfg_w)
        os.write(cfg_w, cfg.pack())  # a few KiB: fits the pipe buffer
        os.close(cfg_w)
        opened.remove(cfg_w)
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        track(sync_r, sync_w)
        exec_fd = os.open(cfg.program, os.O_PATH | os.O_CLOEXEC)
        track(exec_fd)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        track(out_r, out_w)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        track(err_r, err_w)
        if pipe_stdin:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        track(in_r, *([in_w] if in_w >= 0 else []))
        fixed = [in_r, out_w, err_w, cfg_r, sync_w, exec_fd]
        if channel is not None:
            fixed.append(channel[0])
        sources = [_high_dup(fd) for fd in fixed]
        track(*sources)
        actions = [(os.POSIX_SPAWN_DUP2, src, dst) for dst, src in enumerate(sources)]
        channel_arg = f"{_CHANNEL_FD}:{channel[1]}" if channel is not None else "-1"
        pid = os.posix_spawn(
            LAUNCHER,
            [LAUNCHER, str(_CONFIG_FD), str(_SYNC_FD), str(_EXEC_FD), channel_arg, *cfg.argv],
            dict(cfg.env),
            file_actions=actions,
            setsid=True,
        )
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise
        keep = {sync_r, out_r, err_r, in_w}
        for fd in opened:
            if fd not in keep:
                os.close(fd)
        opened.clear()
        return Spawned(pid, pidfd, sync_r, in_w if pipe_stdin else None, out_r, err_r)
    finally:
        for fd in opened:
            os.close(fd)


def read_sync(fd: int) -> tuple[int, int] | None:
    """One record from the launcher, or None at end of file (the exec happened)."""
    data = os.read(fd, _SYNC.size)
    if not data:
        return None
    if len(data) != _SYNC.size:
        raise LaunchError(2, errno.EPROTO)
    step, value = _SYNC.unpack(data)
    return step, value


def kill_group(pid: int, pidfd: int) -> None:
    """SIGKILL the guest's whole process group.  Call only before reaping it."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def reap(pid: int) -> tuple[int, resource.struct_rusage] | None:
    """The wait status and resource usage of an exited guest, or None if it
    is still running."""
    try:
        done, status, usage = os.wait4(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return (status, usage) if done == pid else None


_NR_TGKILL = 234
_NR_SETNS = 308
_NR_UNSHARE = 272
CLONE_NEWNET = 0x4000_0000


def tgkill(tgid: int, tid: int, sig: int) -> None:
    """Signal thread ``tid`` only if it belongs to thread group ``tgid``."""
    _check(
        _syscall(
            ctypes.c_long(_NR_TGKILL), ctypes.c_long(tgid), ctypes.c_long(tid), ctypes.c_long(sig)
        )
    )


def written_files(pid: int) -> list[tuple[int, bytes]]:
    """(mount id, /proc link) of every file the process can still write to:
    descriptors open for writing, and shared writable file mappings (which
    outlive their descriptor).  Call only while the process cannot open new
    files (no call of it is being answered)."""
    from ..vfs.hostfs import path_mount_id

    out: list[tuple[int, bytes]] = []
    base = f"/proc/{pid}"
    try:
        fds = os.listdir(f"{base}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            with open(f"{base}/fdinfo/{fd}", "rb") as f:
                flags = next(
                    (int(line.split()[1], 8) for line in f if line.startswith(b"flags:")),
                    os.O_RDONLY,
                )
            if flags & (os.O_WRONLY | os.O_RDWR) == 0:
                continue
            path = f"{base}/fd/{fd}".encode()
            out.append((path_mount_id(path), os.readlink(path)))
        except OSError:
            continue  # closed meanwhile, or not a file
    try:
        with open(f"{base}/maps", "rb") as f:
            maps = f.read().splitlines()
    except OSError:
        maps = []
    for line in maps:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[1][1:2] != b"w" or parts[1][3:4] != b"s":
            continue
        path = f"{base}/map_files/".encode() + parts[0]
        try:
            out.append((path_mount_id(path), os.readlink(path)))
        except OSError:
            continue
    return out


SIOCOUTNSD = 0x894B  # bytes in a socket's send queue not yet sent


def socket_unsent(fd: int) -> int:
    """Bytes written to a TCP socket that the kernel has not sent yet."""
    buf = bytearray(4)
    fcntl.ioctl(fd, SIOCOUTNSD, buf)
    return int.from_bytes(buf, "little", signed=True)


def final_io(pid: int) -> tuple[int, int] | None:
    """(bytes read, bytes written) by an exited guest's read- and write-like
    calls, read between its death and its reaping (the zombie keeps them)."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        with open(f"/proc/{pid}/io", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
        return int(fields[b"rchar"]), int(fields[b"wchar"])
    except (OSError, KeyError, ValueError):
        return None


# --- network namespaces ------------------------------------------------------
# Sockets the guest holds before the controller connects them are created in
# an empty network namespace: nothing is reachable from there, not even the
# host's loopback, whatever the guest does with them.
_isolated: list[int | None] = []  # [fd] once tried; [None] if not permitted
_ns_lock = threading.Lock()
_own_ns = threading.local()


def isolated_netns() -> int | None:
    """A descriptor of an empty network namespace (made once per process), or
    None if this process may not make one (no CAP_SYS_ADMIN)."""
    if _isolated:
        return _isolated[0]
    with _ns_lock:
        if not _isolated:
            _isolated.append(_make_empty_netns())
    return _isolated[0]


def _make_empty_netns() -> int | None:
    # unshare(2) moves only the calling thread, so a throwaway thread does it
    # and leaves a descriptor that keeps the namespace alive.
    result: list[int | None] = [None]

    def make() -> None:
        if _syscall(ctypes.c_long(_NR_UNSHARE), ctypes.c_long(CLONE_NEWNET)) != 0:
            return
        result[0] = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    t = threading.Thread(target=make, name="sandbox-run-netns")
    t.start()
    t.join()
    return result[0]


def _setns(fd: int) -> None:
    _check(_syscall(ctypes.c_long(_NR_SETNS), ctypes.c_long(fd), ctypes.c_long(CLONE_NEWNET)))


def socket_in_netns(ns_fd: int, family: int, type_: int, proto: int) -> socket.socket:
    """A new socket in the network namespace ``ns_fd``."""
    return sockets_in_netns(ns_fd, family, type_, proto, 1)[0]


def sockets_in_netns(
    ns_fd: int, family: int, type_: int, proto: int, count: int
) -> list[socket.socket]:
    """``count`` new sockets in the network namespace ``ns_fd``.

    The calling thread enters it for the one socket(2) call and returns to its
    own namespace.  Should it fail to return, every socket it makes later is
    in the empty namespace too: a failure that closes, never one that opens.
    """
    own = getattr(_own_ns, "fd", None)
    if own is None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        _own_ns.fd = own
    out: list[socket.socket] = []
    _setns(ns_fd)
    try:
        for _ in range(count):
            out.append(socket.socket(family, type_, proto))
    except BaseException:
        for s in out:
            s.close()
        raise
    finally:
        _setns(own)
    return out

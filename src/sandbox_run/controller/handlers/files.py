"""File and directory calls, answered from the sandbox's virtual filesystem."""

from __future__ import annotations

import errno
import os
import stat as stat_
import struct
import time

from ...errors import SyscallError
from ...vfs.stat import STATX_SIZE, pack_statfs
from ...vfs.tree import Loc, Mount
from ..dispatch import Call, Inject
from . import handles

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
RENAME_NOREPLACE = 1
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
_U32 = 0xFFFF_FFFF


def _flags(call: Call, i: int) -> int:
    return call.args[i] & _U32


def _start(call: Call, dirfd_index: int | None, path: bytes) -> Loc:
    """Where a relative ``path`` starts: the cwd, or the directory ``dirfd``."""
    vfs = call.guest.vfs
    if dirfd_index is None:
        return vfs.cwd
    dirfd = call.fd_arg(dirfd_index)
    if dirfd == AT_FDCWD:
        call.shown[dirfd_index] = "AT_FDCWD"
        return vfs.cwd
    if path.startswith(b"/"):
        return vfs.cwd  # the directory is not used
    return _fd_loc(call, dirfd, need_dir=True)


def _fd_loc(call: Call, guest_fd: int, *, need_dir: bool) -> Loc:
    st, loc = call.locate(guest_fd)
    if need_dir and not stat_.S_ISDIR(st.st_mode):
        raise SyscallError(errno.ENOTDIR, "not a directory")
    return loc


# --- open ---------------------------------------------------------------
def _open(call: Call, dirfd_index: int | None, path: bytes, flags: int, mode: int) -> Inject:
    start = _start(call, dirfd_index, path)
    call.check_id()
    fd = call.guest.vfs.open(start, path, flags, mode & 0o7777)
    return Inject(fd, bool(flags & os.O_CLOEXEC))


@handles("open", argc=3)
def open_(call: Call) -> Inject:
    return _open(call, None, call.path(0), _flags(call, 1), call.args[2])


@handles("openat", argc=4)
def openat(call: Call) -> Inject:
    return _open(call, 0, call.path(1), _flags(call, 2), call.args[3])


@handles("creat", argc=2)
def creat(call: Call) -> Inject:
    return _open(call, None, call.path(0), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, call.args[1])


@handles("openat2", argc=4)
def openat2(call: Call) -> Inject:
    size = call.args[3]
    if size < 24 or size > 4096:
        raise SyscallError(errno.EINVAL, "bad open_how size")
    how = call.read(call.args[2], size)
    flags, mode, resolve = struct.unpack_from("<QQQ", how)
    if any(how[24:]):
        raise SyscallError(errno.E2BIG, "unknown open_how fields")
    if resolve:
        raise SyscallError(errno.EINVAL, "openat2 resolve flags are not supported")
    if flags >> 32:
        raise SyscallError(errno.EINVAL, "unknown open flags")
    return _open(call, 0, call.path(1), flags, mode)


# --- stat ---------------------------------------------------------------
def _write_stat(call: Call, addr: int, data: bytes) -> int:
    call.write(addr, data)
    return 0


def _stat_path(
    call: Call, dirfd_index: int | None, path_index: int, flags: int, statx: bool = False
) -> bytes:
    vfs = call.guest.vfs
    path = call.path(path_index)
    if not path and flags & AT_EMPTY_PATH:
        if dirfd_index is None or call.fd_arg(dirfd_index) == AT_FDCWD:
            st = vfs.stat(vfs.cwd, b".", follow=True)
        else:
            st = call.stat_fd(call.fd_arg(dirfd_index))
    else:
        start = _start(call, dirfd_index, path)
        st = vfs.stat(start, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    return st.pack_statx() if statx else st.pack()


@handles("stat", argc=2)
def stat(call: Call) -> int:
    return _write_stat(call, call.args[1], _stat_path(call, None, 0, 0))


@handles("lstat", argc=2)
def lstat(call: Call) -> int:
    return _write_stat(call, call.args[1], _stat_path(call, None, 0, AT_SYMLINK_NOFOLLOW))


@handles("newfstatat", argc=4)
def newfstatat(call: Call) -> int:
    flags = _flags(call, 3)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800):  # 0x800: AT_NO_AUTOMOUNT
        raise SyscallError(errno.EINVAL, "unknown flags")
    return _write_stat(call, call.args[2], _stat_path(call, 0, 1, flags))


@handles("fstat", argc=2)
def fstat(call: Call) -> int:
    st = call.stat_fd(call.fd_arg(0))
    return _write_stat(call, call.args[1], st.pack())


@handles("statx", argc=5)
def statx(call: Call) -> int:
    flags = _flags(call, 2)
    if call.args[4] == 0:
        raise SyscallError(errno.EFAULT, "null buffer")
    data = _stat_path(call, 0, 1, flags, statx=True)
    if len(data) != STATX_SIZE:
        raise SyscallError(errno.EIO, "internal: statx size")
    return _write_stat(call, call.args[4], data)


# --- access, readlink, cwd -------------------------------------------------
def _access(call: Call, dirfd_index: int | None, path_index: int, mode: int, flags: int) -> int:
    if mode & ~7:
        raise SyscallError(errno.EINVAL, "bad mode")
    path = call.path(path_index)
    vfs = call.guest.vfs
    if not path and flags & AT_EMPTY_PATH:
        vfs.access(_start(call, dirfd_index, b"x"), b".", mode, True)
        return 0
    vfs.access(_start(call, dirfd_index, path), path, mode, not flags & AT_SYMLINK_NOFOLLOW)
    return 0


@handles("access", argc=2)
def access(call: Call) -> int:
    return _access(call, None, 0, call.args[1] & _U32, 0)


@handles("faccessat", argc=3)
def faccessat(call: Call) -> int:
    return _access(call, 0, 1, call.args[2] & _U32, 0)


@handles("faccessat2", argc=4)
def faccessat2(call: Call) -> int:
    flags = _flags(call, 3)
    if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(errno.EINVAL, "unknown flags")
    return _access(call, 0, 1, call.args[2] & _U32, flags)


def _readlink(call: Call, dirfd_index: int | None, path_index: int, buf: int, size: int) -> int:
    if size <= 0 or size > 1 << 31:
        raise SyscallError(errno.EINVAL, "bad buffer size")
    path = call.path(path_index)
    target = call.guest.vfs.readlink(_start(call, dirfd_index, path), path)[:size]
    call.write(buf, target)
    return len(target)


@handles("readlink", argc=3)
def readlink(call: Call) -> int:
    return _readlink(call, None, 0, call.args[1], call.args[2] & _U32)


@handles("readlinkat", argc=4)
def readlinkat(call: Call) -> int:
    return _readlink(call, 0, 1, call.args[2], call.args[3] & _U32)


@handles("getcwd", argc=2)
def getcwd(call: Call) -> int:
    cwd = call.guest.vfs.getcwd() + b"\0"
    if call.args[1] < len(cwd):
        raise SyscallError(errno.ERANGE, "buffer too small")
    call.write(call.args[0], cwd)
    return len(cwd)


@handles("chdir", argc=1)
def chdir(call: Call) -> int:
    path = call.path(0)
    call.check_id()
    call.guest.vfs.chdir(call.guest.vfs.cwd, path)
    return 0


@handles("fchdir", argc=1)
def fchdir(call: Call) -> int:
    loc = _fd_loc(call, call.fd_arg(0), need_dir=True)
    call.guest.vfs.chdir_to(loc)
    return 0


@handles("getdents64", argc=3)
def getdents64(call: Call) -> int:
    count = call.args[2] & _U32
    host = call.dup(call.fd_arg(0))
    try:
        data, pos = call.guest.vfs.getdents(host, min(count, 1 << 20))
        if data:
            call.write(call.args[1], data)
        call.guest.vfs.seek_dir(host, pos)  # only once the records are delivered
    finally:
        os.close(host)
    return len(data)


# --- changes ---------------------------------------------------------------
def _mkdir(call: Call, dirfd_index: int | None, path_index: int, mode: int) -> int:
    path = call.path(path_index)
    start = _start(call, dirfd_index, path)
    call.check_id()
    call.guest.vfs.mkdir(start, path, mode)
    return 0


@handles("mkdir", argc=2)
def mkdir(call: Call) -> int:
    return _mkdir(call, None, 0, call.args[1] & 0o7777)


@handles("mkdirat", argc=3)
def mkdirat(call: Call) -> int:
    return _mkdir(call, 0, 1, call.args[2] & 0o7777)


def _remove(call: Call, dirfd_index: int | None, path_index: int, is_dir: bool) -> int:
    path = call.path(path_index)
    start = _start(call, dirfd_index, path)
    call.check_id()
    if is_dir:
        call.guest.vfs.rmdir(start, path)
    else:
        call.guest.vfs.unlink(start, path)
    return 0


@handles("unlink", argc=1)
def unlink(call: Call) -> int:
    return _remove(call, None, 0, False)


@handles("rmdir", argc=1)
def rmdir(call: Call) -> int:
    return _remove(call, None, 0, True)


@handles("unlinkat", argc=3)
def unlinkat(call: Call) -> int:
    flags = _flags(call, 2)
    if flags & ~AT_REMOVEDIR:
        raise SyscallError(errno.EINVAL, "unknown flags")
    return _remove(call, 0, 1, bool(flags & AT_REMOVEDIR))


def _rename(call: Call, od: int | None, op: int, nd: int | None, np: int, flags: int) -> int:
    old = call.path(op)
    new = call.path(np)
    o_start = _start(call, od, old)
    n_start = _start(call, nd, new)
    call.check_id()
    call.guest.vfs.rename(o_start, old, n_start, new, flags)
    return 0


@handles("rename", argc=2)
def rename(call: Call) -> int:
    return _rename(call, None, 0, None, 1, 0)


@handles("renameat", argc=4)
def renameat(call: Call) -> int:
    return _rename(call, 0, 1, 2, 3, 0)


@handles("renameat2", argc=5)
def renameat2(call: Call) -> int:
    return _rename(call, 0, 1, 2, 3, _flags(call, 4))


def _symlink(call: Call, target_index: int, dirfd_index: int | None, path_index: int) -> int:
    target = call.path(target_index)
    path = call.path(path_index)
    start = _start(call, dirfd_index, path)
    call.check_id()
    call.guest.vfs.symlink(target, start, path)
    return 0


@handles("symlink", argc=2)
def symlink(call: Call) -> int:
    return _symlink(call, 0, None, 1)


@handles("symlinkat", argc=3)
def symlinkat(call: Call) -> int:
    return _symlink(call, 0, 1, 2)


def _link(call: Call, od: int | None, op: int, nd: int | None, np: int, flags: int) -> int:
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise SyscallError(errno.EINVAL, "unknown flags")
    old = call.path(op)
    new = call.path(np)
    if not old and flags & AT_EMPTY_PATH:
        # Linking a descriptor needs CAP_DAC_READ_SEARCH, which the guest lacks.
        raise SyscallError(errno.ENOENT, "linking a descriptor is not allowed")
    o_start = _start(call, od, old)
    n_start = _start(call, nd, new)
    call.check_id()
    call.guest.vfs.link(o_start, old, n_start, new, follow=bool(flags & AT_SYMLINK_FOLLOW))
    return 0


@handles("link", argc=2)
def link(call: Call) -> int:
    return _link(call, None, 0, None, 1, 0)


@handles("linkat", argc=5)
def linkat(call: Call) -> int:
    return _link(call, 0, 1, 2, 3, _flags(call, 4))


@handles("truncate", argc=2)
def truncate(call: Call) -> int:
    length = call.args[1]
    if length >= 1 << 63:
        raise SyscallError(errno.EINVAL, "negative length")
    path = call.path(0)
    call.check_id()
    call.guest.vfs.truncate(call.guest.vfs.cwd, path, length)
    return 0


def _chmod(call: Call, dirfd_index: int | None, path_index: int, mode: int, flags: int) -> int:
    path = call.path(path_index)
    start = _start(call, dirfd_index, path)
    call.check_id()
    call.guest.vfs.chmod(start, path, mode, follow=not flags & AT_SYMLINK_NOFOLLOW)
    return 0


@handles("chmod", argc=2)
def chmod(call: Call) -> int:
    return _chmod(call, None, 0, call.args[1] & 0o7777, 0)


@handles("fchmodat", argc=3)
def fchmodat(call: Call) -> int:
    return _chmod(call, 0, 1, call.args[2] & 0o7777, 0)


@handles("fchmodat2", argc=4)
def fchmodat2(call: Call) -> int:
    flags = _flags(call, 3)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(errno.EINVAL, "unknown flags")
    return _chmod(call, 0, 1, call.args[2] & 0o7777, flags)


@handles("fchmod", argc=2)
def fchmod(call: Call) -> int:
    host = call.dup(call.fd_arg(0))
    try:
        call.guest.vfs.chmod_fd(host, call.args[1] & 0o7777)
    finally:
        os.close(host)
    return 0


def _times_from_timespecs(call: Call, addr: int) -> tuple[int | None, int | None] | None:
    """(atime_ns, mtime_ns) from a timespec[2]; None entries mean 'omit'."""
    if addr == 0:
        return None
    a_s, a_ns, m_s, m_ns = struct.unpack("<qqqq", call.read(addr, 32))
    now = time.time_ns()
    out: list[int | None] = []
    for s, ns in ((a_s, a_ns), (m_s, m_ns)):
        if ns == UTIME_NOW:
            out.append(now)
        elif ns == UTIME_OMIT:
            out.append(None)
        elif 0 <= ns < 1_000_000_000:
            out.append(s * 1_000_000_000 + ns)
        else:
            raise SyscallError(errno.EINVAL, "bad nanoseconds")
    return out[0], out[1]


def _utimes(
    call: Call,
    dirfd_index: int | None,
    path: bytes | None,
    times: tuple[int | None, int | None] | None,
    flags: int,
) -> int:
    vfs = call.guest.vfs
    follow = not flags & AT_SYMLINK_NOFOLLOW
    if times is not None and (times[0] is None or times[1] is None):
        if times[0] is None and times[1] is None:
            return 0
        # Fill the omitted one from the current value.
        if path is None:
            if dirfd_index is None:
                raise SyscallError(errno.EBADF, "no file")
            cur = call.stat_fd(call.fd_arg(dirfd_index))
        else:
            cur = vfs.stat(_start(call, dirfd_index, path), path, follow)
        times = (
            cur.atime_ns if times[0] is None else times[0],
            cur.mtime_ns if times[1] is None else times[1],
        )
    full = None if times is None else (int(times[0] or 0), int(times[1] or 0))
    call.check_id()
    if path is None:
        if dirfd_index is None:
            raise SyscallError(errno.EBADF, "no file")
        host = call.dup(call.fd_arg(dirfd_index))
        try:
            vfs.utimens(None, None, host, full, follow)
        finally:
            os.close(host)
    else:
        vfs.utimens(_start(call, dirfd_index, path), path, None, full, follow)
    return 0


@handles("utimensat", argc=4)
def utimensat(call: Call) -> int:
    flags = _flags(call, 3)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise SyscallError(errno.EINVAL, "unknown flags")
    path = call.path(1) if call.args[1] else None
    if path == b"" and flags & AT_EMPTY_PATH:
        path = None
    return _utimes(call, 0, path, _times_from_timespecs(call, call.args[2]), flags)


def _timevals(call: Call, addr: int) -> tuple[int | None, int | None] | None:
    if addr == 0:
        return None
    a_s, a_us, m_s, m_us = struct.unpack("<qqqq", call.read(addr, 32))
    if not (0 <= a_us < 1_000_000 and 0 <= m_us < 1_000_000):
        raise SyscallError(errno.EINVAL, "bad microseconds")
    return a_s * 1_000_000_000 + a_us * 1000, m_s * 1_000_000_000 + m_us * 1000


@handles("utimes", argc=2)
def utimes(call: Call) -> int:
    return _utimes(call, None, call.path(0), _timevals(call, call.args[1]), 0)


@handles("futimesat", argc=3)
def futimesat(call: Call) -> int:
    return _utimes(call, 0, call.path(1), _timevals(call, call.args[2]), 0)


@handles("utime", argc=2)
def utime(call: Call) -> int:
    path = call.path(0)
    if call.args[1] == 0:
        return _utimes(call, None, path, None, 0)
    a, m = struct.unpack("<qq", call.read(call.args[1], 16))
    return _utimes(call, None, path, (a * 1_000_000_000, m * 1_000_000_000), 0)


# --- filesystem figures ------------------------------------------------------
_TMPFS_MAGIC = 0x01021994
_RO_MAGIC = 0x794C7630  # overlayfs: a plausible read-only system filesystem


def _statfs_for(loc: Loc) -> bytes:
    node = loc.node
    if isinstance(node, Mount):
        try:
            sv = os.statvfs(f"/proc/self/fd/{node.root_fd}")
        except OSError:
            raise SyscallError(errno.EIO, "statfs failed") from None
        return pack_statfs(
            fs_type=_TMPFS_MAGIC if node.writable else _RO_MAGIC,
            bsize=sv.f_bsize,
            blocks=sv.f_blocks,
            bfree=sv.f_bavail,
            files=sv.f_files,
            ffree=sv.f_favail,
            read_only=not node.writable,
        )
    return pack_statfs(
        fs_type=_RO_MAGIC, bsize=4096, blocks=0, bfree=0, files=0, ffree=0, read_only=True
    )


@handles("statfs", argc=2)
def statfs(call: Call) -> int:
    path = call.path(0)
    vfs = call.guest.vfs
    loc = vfs.resolve(vfs.cwd, path, follow=True)
    vfs.stat(vfs.cwd, path, follow=True)  # ENOENT for missing names below a mount
    return _write_stat(call, call.args[1], _statfs_for(loc))


@handles("fstatfs", argc=2)
def fstatfs(call: Call) -> int:
    try:
        loc = call.locate(call.fd_arg(0))[1]
    except SyscallError as e:
        if e.errno == errno.EBADF:
            raise
        loc = Loc(call.guest.vfs.root)  # a pipe or socket
    return _write_stat(call, call.args[1], _statfs_for(loc))


@handles("umask", argc=1)
def umask(call: Call) -> int:
    vfs = call.guest.vfs
    old = vfs.umask
    vfs.umask = call.args[0] & 0o777
    return old

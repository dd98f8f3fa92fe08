"""Host filesystem calls the ``os`` module lacks (openat2), and fd helpers."""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_NR_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

#: What every lookup inside a mount uses: stay beneath the mount's root, and
#: never follow /proc-style magic links.
BENEATH = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_HOW = struct.Struct("=QQQ")


def openat2(dirfd: int, path: bytes, flags: int, mode: int = 0, resolve: int = BENEATH) -> int:
    """openat2(2); raises OSError.  The result is always close-on-exec."""
    how = ctypes.create_string_buffer(_HOW.pack(flags | os.O_CLOEXEC, mode, resolve), _HOW.size)
    while True:
        fd = _syscall(
            ctypes.c_long(_NR_OPENAT2),
            ctypes.c_long(dirfd),
            ctypes.c_char_p(path),
            how,
            ctypes.c_size_t(_HOW.size),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EINTR:
            continue
        raise OSError(err, os.strerror(err))


def fd_path(fd: int) -> bytes:
    """The host path the kernel currently gives for ``fd`` (d_path)."""
    return os.readlink(f"/proc/self/fd/{fd}".encode())


def reopen(fd: int, flags: int) -> int:
    """A new open file description of the object behind an O_PATH ``fd``.

    Goes through the controller's own /proc magic link, so it names exactly
    the inode already checked; the guest never controls this path.
    """
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


# --- detached mounts (the new mount API: fsopen, fsconfig, fsmount) --------
# A detached mount is attached nowhere in any namespace: it is reachable only
# through its descriptor, and the kernel frees it when the last one closes.
_NR_FSOPEN, _NR_FSCONFIG, _NR_FSMOUNT = 430, 431, 432
_FSOPEN_CLOEXEC = 1
_FSMOUNT_CLOEXEC = 1
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4


def _sc(*args: int | bytes | None) -> int:
    cargs = [ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args]
    r = _syscall(*cargs)
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(r)


def _detached(fstype: bytes, options: list[tuple[bytes, bytes]]) -> int:
    fs = _sc(_NR_FSOPEN, fstype, _FSOPEN_CLOEXEC)
    try:
        for key, value in options:
            _sc(_NR_FSCONFIG, fs, _FSCONFIG_SET_STRING, key, value, 0)
        _sc(_NR_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0)
        # No set-id programs and no device nodes, whatever ends up inside.
        return _sc(_NR_FSMOUNT, fs, _FSMOUNT_CLOEXEC, _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV)
    finally:
        os.close(fs)


def detached_tmpfs(max_bytes: int, max_inodes: int) -> int:
    """A private in-memory filesystem; the kernel enforces both limits (ENOSPC)."""
    return _detached(
        b"tmpfs",
        [
            (b"size", str(max_bytes).encode()),
            (b"nr_inodes", str(max_inodes).encode()),
            (b"mode", b"0700"),
        ],
    )


def detached_overlay(lower_fd: int, upper_fd: int, work_fd: int) -> int:
    """A read-write view of the directory ``lower_fd`` whose changes all go to
    ``upper_fd`` (on the same filesystem as ``work_fd``)."""

    def path(fd: int) -> bytes:
        # A magic link, so that no host path, and none of the characters
        # overlayfs treats as separators, ever appears in the options.
        return f"/proc/self/fd/{fd}".encode()

    return _detached(
        b"overlay",
        [
            (b"lowerdir", path(lower_fd)),
            (b"upperdir", path(upper_fd)),
            (b"workdir", path(work_fd)),
            (b"redirect_dir", b"on"),
            (b"index", b"off"),
            (b"metacopy", b"off"),
        ],
    )


def mount_id(fd: int) -> int:
    """The id of the mount the controller's descriptor ``fd`` lives on."""
    return path_mount_id(b"/proc/self/fd/%d" % fd)


_CAN_MOUNT: bool | None = None


def can_mount() -> bool:
    """Whether this process may create detached mounts (CAP_SYS_ADMIN)."""
    global _CAN_MOUNT
    if _CAN_MOUNT is None:
        try:
            os.close(detached_tmpfs(1 << 20, 16))
            _CAN_MOUNT = True
        except OSError:
            _CAN_MOUNT = False
    return _CAN_MOUNT


_NR_STATX = 332
_STATX_MNT_ID = 0x1000
_STATX_BUF = 256
_STATX_MNT_ID_OFFSET = 144


def path_mount_id(path: bytes) -> int:
    """The mount id of what ``path`` names (following magic /proc links)."""
    buf = ctypes.create_string_buffer(_STATX_BUF)
    r = _syscall(
        ctypes.c_long(_NR_STATX),
        ctypes.c_long(-100),
        ctypes.c_char_p(path),
        ctypes.c_long(0),
        ctypes.c_long(_STATX_MNT_ID),
        buf,
    )
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    mask = struct.unpack_from("<I", buf, 0)[0]
    if not mask & _STATX_MNT_ID:
        raise OSError(errno.ENOSYS, "statx gave no mount id")
    return int(struct.unpack_from("<Q", buf, _STATX_MNT_ID_OFFSET)[0])


_NR_RENAMEAT2 = 316
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def renameat2(olddir: int, old: bytes, newdir: int, new: bytes, flags: int) -> None:
    r = _syscall(
        ctypes.c_long(_NR_RENAMEAT2),
        ctypes.c_long(olddir),
        ctypes.c_char_p(old),
        ctypes.c_long(newdir),
        ctypes.c_char_p(new),
        ctypes.c_long(flags),
    )
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_NR_FSPICK = 433
_FSPICK_CLOEXEC = 1
_FSPICK_EMPTY_PATH = 8
_FSCONFIG_CMD_RECONFIGURE = 7


def set_tmpfs_inodes(mount_fd: int, nr_inodes: int) -> None:
    """Change the inode limit of a tmpfs the controller mounted."""
    fs = _sc(_NR_FSPICK, mount_fd, b"", _FSPICK_CLOEXEC | _FSPICK_EMPTY_PATH)
    try:
        _sc(_NR_FSCONFIG, fs, _FSCONFIG_SET_STRING, b"nr_inodes", str(nr_inodes).encode(), 0)
        _sc(_NR_FSCONFIG, fs, _FSCONFIG_CMD_RECONFIGURE, None, None, 0)
    finally:
        os.close(fs)

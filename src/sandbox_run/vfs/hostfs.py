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

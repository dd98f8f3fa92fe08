"""Virtual stat results and directory entries, packed as the kernel would.

The guest never sees a host device or inode number, nor a host owner.
Virtual inode numbers are a keyed hash of the host (device, inode) pair: the
key is random per controller process, so the numbers reveal nothing about the
host, yet stay stable across sandboxes, which lets listings of read-only
directories be cached once for all of them.  Synthetic nodes use small
numbers (below 2**32); hashed ones are always above.
"""

from __future__ import annotations

import hashlib
import os
import stat as S
import struct
from typing import NamedTuple

# struct stat on x86-64 (144 bytes)
_STAT = struct.Struct("<QQQIIIiQqqqqqqqqq24x")
# struct statx (256 bytes); see statx(2)
_STATX_HEAD = struct.Struct("<IIQIIIHxxQQQQ")
_STATX_TS = struct.Struct("<qIi")
_STATX_TAIL = struct.Struct("<IIIIQ")
STATX_SIZE = 256
STATX_BASIC_STATS = 0x7FF
# struct statfs on x86-64 (120 bytes)
_STATFS = struct.Struct("<qqqqqqq2iqqq4q")
# struct linux_dirent64 header: d_ino, d_off, d_reclen, d_type
_DIRENT = struct.Struct("<QqHB")
_NS = 1_000_000_000

#: The virtual identity of the guest (files it may write belong to it).
GUEST_UID = 1000
GUEST_GID = 1000
ROOT_UID = 0
#: The fixed time synthetic nodes report (2024-01-01T00:00:00Z).
SYNTHETIC_TIME = 1_704_067_200

_KEY = os.urandom(16)
_HASHED_BASE = 1 << 32
_HASH_MASK = (1 << 62) - 1


_INO_CACHE: dict[tuple[int, int], int] = {}
_INO_CACHE_MAX = 1 << 16


def host_ino(host_dev: int, host_ino_: int) -> int:
    """The virtual inode number of a host object (keyed hash, >= 2**32)."""
    key = (host_dev, host_ino_)
    v = _INO_CACHE.get(key)
    if v is None:
        h = hashlib.blake2b(
            host_dev.to_bytes(8, "little") + host_ino_.to_bytes(8, "little"),
            digest_size=8,
            key=_KEY,
        )
        v = (int.from_bytes(h.digest(), "little") & _HASH_MASK) | _HASHED_BASE
        if len(_INO_CACHE) >= _INO_CACHE_MAX:
            _INO_CACHE.clear()
        _INO_CACHE[key] = v
    return v


class VStat(NamedTuple):
    """A stat result in guest terms."""

    dev: int
    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int

    def pack(self) -> bytes:
        a, an = divmod(self.atime_ns, _NS)
        m, mn = divmod(self.mtime_ns, _NS)
        c, cn = divmod(self.ctime_ns, _NS)
        return _STAT.pack(
            self.dev,
            self.ino,
            self.nlink,
            self.mode,
            self.uid,
            self.gid,
            0,
            self.rdev,
            self.size,
            self.blksize,
            self.blocks,
            a,
            an,
            m,
            mn,
            c,
            cn,
        )

    def pack_statx(self) -> bytes:
        head = _STATX_HEAD.pack(
            STATX_BASIC_STATS,
            self.blksize,
            0,
            self.nlink,
            self.uid,
            self.gid,
            self.mode,
            self.ino,
            self.size,
            self.blocks,
            0,
        )
        ts = b"".join(
            _STATX_TS.pack(*divmod(t, _NS), 0)
            for t in (self.atime_ns, 0, self.ctime_ns, self.mtime_ns)  # atime btime ctime mtime
        )
        tail = _STATX_TAIL.pack(
            os.major(self.rdev), os.minor(self.rdev), os.major(self.dev), os.minor(self.dev), 0
        )
        out = head + ts + tail
        return out + bytes(STATX_SIZE - len(out))


def synthetic_stat(dev: int, ino: int, mode: int, size: int = 0, nlink: int = 1) -> VStat:
    t = SYNTHETIC_TIME * _NS
    return VStat(
        dev, ino, mode, nlink, ROOT_UID, ROOT_UID, 0, size, 4096, (size + 511) // 512, t, t, t
    )


class Devices:
    """Virtual device numbers for one sandbox: one per mount, one per kind of
    kernel object."""

    __slots__ = ("_devs",)

    def __init__(self) -> None:
        self._devs: dict[object, int] = {}

    def dev(self, key: object) -> int:
        d = self._devs.get(key)
        if d is None:
            d = self._devs[key] = os.makedev(0, 0x20 + len(self._devs))
        return d

    def translate(self, st: os.stat_result, dev_key: object, uid: int, gid: int) -> VStat:
        mode = st.st_mode
        rdev = st.st_rdev if S.S_ISCHR(mode) or S.S_ISBLK(mode) else 0
        return VStat(
            self.dev(dev_key),
            host_ino(st.st_dev, st.st_ino),
            mode,
            st.st_nlink,
            uid,
            gid,
            rdev,
            st.st_size,
            st.st_blksize,
            st.st_blocks,
            st.st_atime_ns,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )


def pack_statfs(
    *,
    fs_type: int,
    bsize: int,
    blocks: int,
    bfree: int,
    files: int,
    ffree: int,
    read_only: bool,
    namelen: int = 255,
) -> bytes:
    ST_RDONLY = 1
    return _STATFS.pack(
        fs_type,
        bsize,
        blocks,
        bfree,
        bfree,
        files,
        ffree,
        0,
        0,
        namelen,
        bsize,
        ST_RDONLY if read_only else 0,
        0,
        0,
        0,
        0,
    )


def dirent(ino: int, next_off: int, dtype: int, name: bytes) -> bytes:
    """One linux_dirent64 record, padded to 8 bytes."""
    size = _DIRENT.size + len(name) + 1
    size += -size % 8
    rec = _DIRENT.pack(ino, next_off, size, dtype) + name + b"\0"
    return rec + bytes(size - len(rec))


DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = 0, 1, 2, 4, 6, 8, 10, 12
_DTYPES = {
    S.S_IFREG: DT_REG,
    S.S_IFDIR: DT_DIR,
    S.S_IFLNK: DT_LNK,
    S.S_IFCHR: DT_CHR,
    S.S_IFBLK: DT_BLK,
    S.S_IFIFO: DT_FIFO,
    S.S_IFSOCK: DT_SOCK,
}


def dtype_of_mode(mode: int) -> int:
    return _DTYPES.get(S.S_IFMT(mode), DT_UNKNOWN)

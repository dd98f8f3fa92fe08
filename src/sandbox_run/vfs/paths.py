"""Pure helpers for guest paths (bytes, as the kernel passes them)."""

from __future__ import annotations

import errno

from ..errors import SyscallError

PATH_MAX = 4096  # including the terminating NUL
NAME_MAX = 255


def split(path: bytes) -> list[bytes]:
    """Components of ``path``, without empty ones ("a//b/" -> [a, b]).

    "." and ".." are kept: their meaning depends on symlinks met on the way,
    which only resolution can know.
    """
    return [c for c in path.split(b"/") if c]


def check(path: bytes) -> None:
    """The kernel's own checks on a path argument."""
    if not path:
        raise SyscallError(errno.ENOENT, "empty path")
    if len(path) >= PATH_MAX:
        raise SyscallError(errno.ENAMETOOLONG, "path too long")
    for c in path.split(b"/"):
        if len(c) > NAME_MAX:
            raise SyscallError(errno.ENAMETOOLONG, "path component too long")


def join(base: bytes, rel: bytes) -> bytes:
    if rel.startswith(b"/"):
        return rel
    if base.endswith(b"/"):
        return base + rel
    return base + b"/" + rel


def normalize(path: bytes) -> bytes:
    """Lexically normalised absolute path: no ".", "..", or repeated slashes."""
    out: list[bytes] = []
    for c in split(path):
        if c == b".":
            continue
        if c == b"..":
            if out:
                out.pop()
            continue
        out.append(c)
    return b"/" + b"/".join(out)


def is_single_name(name: bytes) -> bool:
    """A name that can be created inside a directory."""
    return bool(name) and b"/" not in name and name not in (b".", b"..")

"""Apply the changes of a read-write area to the host.

A read-write mount is an overlay during the run: the host directory is not
touched until the sandbox ends.  Then its upper layer is replayed onto the
host directory:

- every file is written to a temporary name in its directory and renamed
  over the old one, so a host file always holds its old content or its new
  complete content;
- renamed directories (overlay redirects) are renamed on the host first,
  through temporary names, deepest first, so swaps and nested moves work;
- deleted entries (whiteouts) and replaced directories (opaque) are removed;
- new entries get the owner of the mount's host directory and never set-id
  bits; symlinks are committed only if their target stays inside the mount.

Every host path is reached from the mount's root descriptor with
``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``: a host-side symlink can
divert nothing.  Failures are collected, not raised: one bad entry does not
lose the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat as S

from . import hostfs
from .areas import OPAQUE, REDIRECT, Area, _is_whiteout, _xattr, copy_fd, file_copy_path

_TMP = ".sandbox-run-commit-"
_counter = itertools.count()
_CONFINED = hostfs.BENEATH | hostfs.RESOLVE_NO_SYMLINKS


class _Host:
    """The host directory of an area, reached only beneath its root."""

    def __init__(self, root_fd: int) -> None:
        self.root = root_fd
        st = os.fstat(root_fd)
        self.uid, self.gid = st.st_uid, st.st_gid

    def dir(self, rel: str) -> int:
        """An O_PATH descriptor of the directory ``rel`` (caller closes)."""
        return hostfs.openat2(
            self.root, os.fsencode(rel) or b".", os.O_PATH | os.O_DIRECTORY, resolve=_CONFINED
        )

    def split(self, rel: str) -> tuple[int, str]:
        parent, _, name = rel.rpartition("/")
        return self.dir(parent), name

    def lstat(self, rel: str) -> os.stat_result | None:
        d, name = self.split(rel)
        try:
            return os.stat(name, dir_fd=d, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(d)

    def remove(self, rel: str) -> None:
        """Delete ``rel`` (a whole tree for a directory); missing is fine."""
        d, name = self.split(rel)
        try:
            _remove_at(d, name)
        finally:
            os.close(d)

    def own(self, dirfd: int, name: str) -> None:
        os.chown(name, self.uid, self.gid, dir_fd=dirfd, follow_symlinks=False)


def _remove_at(dirfd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not S.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dirfd)
        return
    sub = hostfs.openat2(dirfd, os.fsencode(name), os.O_RDONLY | os.O_DIRECTORY, resolve=_CONFINED)
    try:
        for child in os.listdir(sub):
            _remove_at(sub, child)
    finally:
        os.close(sub)
    os.rmdir(name, dir_fd=dirfd)


def commit(area: Area, dirty: frozenset[str] = frozenset()) -> None:
    """Apply ``area``'s changes to its host directory or file.

    ``dirty`` holds paths (relative to the area) that were open for writing
    when the sandbox was killed; they keep their old content.
    """
    if area.lower_fd < 0 or area.mode != "rw":
        return
    if area.is_file:
        _commit_file(area, dirty)
    else:
        _commit_dir(area, dirty)
    area.committed = True


def _commit_file(area: Area, dirty: frozenset[str]) -> None:
    if "" in dirty:
        area.commit_errors.append(
            f"{area.guest}: not applied: it was being written when the sandbox was killed"
        )
        return
    host_file = area.host
    parent = os.open(os.path.dirname(host_file), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.stat(os.path.basename(host_file), dir_fd=parent, follow_symlinks=False)
        if not S.S_ISREG(st.st_mode):
            raise OSError(0, "the host file was replaced by something else")
        _replace_file(
            parent, os.path.basename(host_file), file_copy_path(area), st.st_uid, st.st_gid
        )
    except OSError as e:
        area.commit_errors.append(f"{area.guest}: not applied: {e.strerror or e}")
    finally:
        os.close(parent)


def _replace_file(dirfd: int, name: str, source: str, uid: int, gid: int) -> None:
    """Write ``source`` under a temporary name in ``dirfd``, then rename it to ``name``."""
    st = os.stat(source, follow_symlinks=False)
    tmp = f"{_TMP}{os.getpid()}-{next(_counter)}"
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dirfd,
        )
        try:
            copy_fd(src, dst)
            os.fchown(dst, uid, gid)
            os.fchmod(dst, st.st_mode & 0o777)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dst)
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)
        raise
    finally:
        os.close(src)


def _commit_dir(area: Area, dirty: frozenset[str]) -> None:
    host = _Host(area.lower_fd)
    upper = area.upper
    moved = _park_renamed_dirs(area, host, upper)
    _apply(area, host, upper, "", dirty, moved)


def _redirects(upper: str, rel_dir: str = "") -> list[tuple[str, str]]:
    """(target, source) of every renamed directory, relative to the area."""
    out: list[tuple[str, str]] = []
    here = os.path.join(upper, rel_dir) if rel_dir else upper
    for name in os.listdir(here):
        rel = f"{rel_dir}/{name}" if rel_dir else name
        full = os.path.join(upper, rel)
        st = os.lstat(full)
        if not S.S_ISDIR(st.st_mode):
            continue
        r = _xattr(full, REDIRECT)
        if r is not None:
            src = r.decode(errors="surrogateescape")
            src = (
                src.lstrip("/") if src.startswith("/") else (f"{rel_dir}/{src}" if rel_dir else src)
            )
            out.append((rel, src))
        out += _redirects(upper, rel)
    return out


def _park_renamed_dirs(area: Area, host: _Host, upper: str) -> dict[str, str]:
    """Move the sources of renamed directories aside (deepest first).

    Returns target -> temporary name (in the host root) to move in later.
    """
    parked: dict[str, str] = {}
    for target, source in sorted(_redirects(upper), key=lambda ts: -ts[1].count("/")):
        tmp = f"{_TMP}dir-{os.getpid()}-{next(_counter)}"
        try:
            d, name = host.split(source)
            try:
                os.rename(name, tmp, src_dir_fd=d, dst_dir_fd=host.root)
            finally:
                os.close(d)
            parked[target] = tmp
        except OSError as e:
            area.commit_errors.append(f"{_gp(area, target)}: rename not applied: {e.strerror or e}")
    return parked


def _gp(area: Area, rel: str) -> str:
    return area.guest.rstrip("/") + "/" + rel


def _apply(
    area: Area, host: _Host, upper: str, rel_dir: str, dirty: frozenset[str], moved: dict[str, str]
) -> None:
    here = os.path.join(upper, rel_dir) if rel_dir else upper
    for name in sorted(os.listdir(here)):
        rel = f"{rel_dir}/{name}" if rel_dir else name
        full = os.path.join(upper, rel)
        try:
            st = os.lstat(full)
            if _is_whiteout(st):
                host.remove(rel)
            elif S.S_ISDIR(st.st_mode):
                _apply_dir(area, host, rel, full, st, moved)
                _apply(area, host, upper, rel, dirty, moved)
            elif S.S_ISREG(st.st_mode):
                if rel in dirty:
                    area.commit_errors.append(
                        f"{_gp(area, rel)}: not applied: it was being "
                        "written when the sandbox was killed"
                    )
                    continue
                d, fname = host.split(rel)
                try:
                    old = _lstat_at(d, fname)
                    if old is not None and S.S_ISDIR(old.st_mode):
                        _remove_at(d, fname)
                    _replace_file(d, fname, full, host.uid, host.gid)
                finally:
                    os.close(d)
            elif S.S_ISLNK(st.st_mode):
                _apply_symlink(area, host, rel, os.readlink(full))
        except OSError as e:
            area.commit_errors.append(f"{_gp(area, rel)}: not applied: {e.strerror or e}")


def _lstat_at(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _apply_dir(
    area: Area, host: _Host, rel: str, full: str, st: os.stat_result, moved: dict[str, str]
) -> None:
    d, name = host.split(rel)
    try:
        old = _lstat_at(d, name)
        parked = moved.pop(rel, None)
        if parked is not None:
            if old is not None:
                _remove_at(d, name)
            os.rename(parked, name, src_dir_fd=host.root, dst_dir_fd=d)
        elif _xattr(full, OPAQUE) == b"y" or (old is not None and not S.S_ISDIR(old.st_mode)):
            _remove_at(d, name)
            os.mkdir(name, 0o700, dir_fd=d)
            host.own(d, name)
        elif old is None:
            os.mkdir(name, 0o700, dir_fd=d)
            host.own(d, name)
        os.chmod(name, st.st_mode & 0o777, dir_fd=d, follow_symlinks=False)
    finally:
        os.close(d)


def _apply_symlink(area: Area, host: _Host, rel: str, target: str) -> None:
    inside = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    if target.startswith("/") or inside == ".." or inside.startswith("../"):
        area.commit_errors.append(
            f"{_gp(area, rel)}: not applied: a symlink pointing outside "
            "the mount is not created on the host"
        )
        return
    d, name = host.split(rel)
    try:
        tmp = f"{_TMP}ln-{os.getpid()}-{next(_counter)}"
        os.symlink(target, tmp, dir_fd=d)
        try:
            host.own(d, tmp)
            old = _lstat_at(d, name)
            if old is not None and S.S_ISDIR(old.st_mode):
                _remove_at(d, name)
            os.rename(tmp, name, src_dir_fd=d, dst_dir_fd=d)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=d)
            raise
    finally:
        os.close(d)

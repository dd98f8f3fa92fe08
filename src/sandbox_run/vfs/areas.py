"""Writable areas: where the guest's writes go, their quotas, their fate.

Every writable place the guest sees is backed by a detached tmpfs of its own,
whose size and inode limits the kernel enforces (ENOSPC):

- the private area (``/sandbox`` and ``/tmp``);
- ``tmpfs`` mounts;
- ``overlay`` and ``rw`` mounts of a host directory: an overlayfs whose lower
  layer is the host directory (never written) and whose upper layer is the
  tmpfs, so every change stays in the sandbox;
- ``overlay`` and ``rw`` mounts of a single host file: a copy in the tmpfs.

When the sandbox ends, the changes of each area are listed (and diffed on
request); those of ``rw`` areas are then committed to the host by
``commit.py``.  Closing the area's descriptors frees everything.
"""

from __future__ import annotations

import difflib
import errno
import os
import shutil
import stat as S
from dataclasses import dataclass, field

from ..errors import PolicyError
from ..policy.schema import Mount as MountSpec
from ..policy.schema import Quota
from ..result import AreaReport, FileChange
from . import hostfs

_UPPER = b"upper"
_WORK = b"work"
_FILE = b"file"
#: Inodes the controller may use while setting an area up (directories,
#: overlay metadata, scripts); the exact count is taken afterwards.
_SETUP_INODES = 64
#: Diffs are made of text files up to this size; larger ones are listed only.
DIFF_LIMIT = 1 << 20


@dataclass(slots=True)
class Area:
    """One writable area of a sandbox, and what became of it."""

    guest: str  # virtual path of the area (for a file mount: of the file)
    mode: str  # "private", "tmpfs", "overlay", "rw"
    quota: Quota
    fs_fd: int  # the detached tmpfs, or -1 when running without mounts
    host: str = ""  # rw/overlay: the host directory or file
    is_file: bool = False
    diff_requested: bool = False
    fallback_dir: str = ""  # private area without mount privileges: a host temp dir
    overlay_fd: int = -1  # the overlay mount, for directory areas
    lower_fd: int = -1  # O_PATH of the host directory or file
    guest_mnt_id: int = -1  # the mount the guest's files of this area live on
    guest_dev: int = -1  # the device the guest's own objects report (see probe_guest_dev)
    base_inodes: int = 0  # inodes the controller used (set by ``seal``)
    changes: list[FileChange] = field(default_factory=list)
    diff: str | None = None
    committed: bool = False
    commit_errors: list[str] = field(default_factory=list)

    @property
    def upper(self) -> str:
        """A controller-side path of the layer holding the guest's changes."""
        return f"/proc/self/fd/{self.fs_fd}/{_UPPER.decode()}"

    def usage(self) -> tuple[int, int]:
        """(bytes, files) in use, as the kernel counts them against the quota
        (files: those the guest made, not the controller's own)."""
        if self.fs_fd < 0 or self.fallback_dir:
            return 0, 0
        sv = os.fstatvfs(self.fs_fd)
        used_bytes = (sv.f_blocks - sv.f_bfree) * sv.f_frsize
        used_files = max(0, sv.f_files - sv.f_ffree - self.base_inodes)
        return used_bytes, used_files

    def seal(self) -> None:
        """Set the inode limit to exactly the quota plus what set-up used."""
        if self.fs_fd < 0 or self.fallback_dir:
            return
        sv = os.fstatvfs(self.fs_fd)
        self.base_inodes = sv.f_files - sv.f_ffree
        hostfs.set_tmpfs_inodes(self.fs_fd, self.quota.max_files + self.base_inodes)

    def close(self) -> None:
        for name in ("overlay_fd", "lower_fd", "fs_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        if self.fallback_dir:
            shutil.rmtree(self.fallback_dir, ignore_errors=True)
            self.fallback_dir = ""


def _tmpfs(quota: Quota) -> int:
    # Generous until set-up is done; ``Area.seal`` then sets the exact limit.
    return hostfs.detached_tmpfs(quota.max_bytes, quota.max_files + _SETUP_INODES)


def private_area(quota: Quota, fallback_parent: str) -> Area:
    """The tmpfs behind /sandbox and /tmp (subdirectories ``sandbox``, ``tmp``).

    Without the privilege to mount, a host temporary directory stands in:
    the byte and file quotas are then not enforced (the largest-file limit,
    an rlimit, still is).
    """
    if hostfs.can_mount():
        fd = _tmpfs(quota)
        for sub in ("sandbox", "tmp"):
            os.mkdir(sub, 0o700, dir_fd=fd)
        area = Area("/sandbox, /tmp", "private", quota, fd)
        area.guest_dev = os.fstat(fd).st_dev
        return area  # sealed by the caller once the scripts are in
    import tempfile

    d = tempfile.mkdtemp(prefix="sandbox-run-", dir=fallback_parent or None)
    for sub in ("sandbox", "tmp"):
        os.mkdir(os.path.join(d, sub), 0o700)
    fd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return Area("/sandbox, /tmp", "private", quota, fd, fallback_dir=d)


def _need_mounts(spec: MountSpec) -> None:
    if not hostfs.can_mount():
        raise PolicyError(
            f"mount {spec.guest}: {spec.mode} mounts need the privilege to create mounts "
            "(CAP_SYS_ADMIN; run sandbox-run as root)"
        )


def tmpfs_area(spec: MountSpec) -> Area:
    _need_mounts(spec)
    area = Area(spec.guest, "tmpfs", spec.quota, _tmpfs(spec.quota))
    area.guest_dev = os.fstat(area.fs_fd).st_dev
    area.seal()
    return area


def _probe_guest_dev(overlay_fd: int) -> int:
    """The device overlayfs reports for objects on its upper layer (what the
    guest makes); host objects report another.  Learnt with a probe file."""
    name = ".sandbox-run-probe"
    fd = os.open(
        name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=overlay_fd
    )
    try:
        return os.fstat(fd).st_dev
    finally:
        os.close(fd)
        os.unlink(name, dir_fd=overlay_fd)


def host_area(spec: MountSpec) -> Area:
    """An overlay (or, for a file, a staged copy) over a host directory or file."""
    _need_mounts(spec)
    try:
        st = os.stat(spec.host)
    except FileNotFoundError:
        raise PolicyError(f"mount {spec.guest}: host path {spec.host} does not exist") from None
    is_file = S.S_ISREG(st.st_mode)
    if not is_file and not S.S_ISDIR(st.st_mode):
        raise PolicyError(f"mount {spec.guest}: {spec.host} is neither a file nor a directory")
    if is_file and st.st_size > spec.quota.max_bytes:
        raise PolicyError(f"mount {spec.guest}: {spec.host} is larger than the mount's max_bytes")
    real = os.path.realpath(spec.host)
    fs = _tmpfs(spec.quota)
    area = Area(
        spec.guest, spec.mode, spec.quota, fs, host=real, is_file=is_file, diff_requested=spec.diff
    )
    try:
        area.lower_fd = os.open(real, os.O_PATH | os.O_CLOEXEC | (0 if is_file else os.O_DIRECTORY))
        if is_file:
            # A private copy the guest may rewrite; the original is untouched.
            src = hostfs.reopen(area.lower_fd, os.O_RDONLY)
            try:
                dst = os.open(
                    _FILE,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                    st.st_mode & 0o777,
                    dir_fd=fs,
                )
                try:
                    copy_fd(src, dst)
                finally:
                    os.close(dst)
            finally:
                os.close(src)
        else:
            os.mkdir(_UPPER, 0o755, dir_fd=fs)
            os.mkdir(_WORK, 0o700, dir_fd=fs)
            up = os.open(_UPPER, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fs)
            wk = os.open(_WORK, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fs)
            try:
                area.overlay_fd = hostfs.detached_overlay(area.lower_fd, up, wk)
            finally:
                os.close(up)
                os.close(wk)
        area.guest_mnt_id = hostfs.mount_id(area.overlay_fd if not is_file else fs)
        area.guest_dev = _probe_guest_dev(area.overlay_fd) if not is_file else os.fstat(fs).st_dev
        area.seal()
    except BaseException:
        area.close()
        raise
    return area


def file_copy_path(area: Area) -> str:
    """The controller-side path of a file area's copy."""
    return f"/proc/self/fd/{area.fs_fd}/{_FILE.decode()}"


def copy_fd(src: int, dst: int) -> None:
    """Copy all of ``src`` to ``dst`` inside the kernel."""
    try:
        while os.copy_file_range(src, dst, 1 << 24):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
    # Across filesystems, copy_file_range refuses; sendfile copies file to file.
    while os.sendfile(dst, src, None, 1 << 24):
        pass


# --- listing the changes ------------------------------------------------------
OPAQUE = "trusted.overlay.opaque"
REDIRECT = "trusted.overlay.redirect"


def _xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _is_whiteout(st: os.stat_result) -> bool:
    return S.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _lower_exists(area: Area, rel: str) -> bool:
    try:
        fd = hostfs.openat2(
            area.lower_fd,
            os.fsencode(rel),
            os.O_PATH | os.O_NOFOLLOW,
            resolve=hostfs.BENEATH | hostfs.RESOLVE_NO_SYMLINKS,
        )
    except OSError:
        return False
    os.close(fd)
    return True


def list_changes(area: Area) -> list[FileChange]:
    """What the guest changed in an overlay or file area, as guest paths."""
    if area.is_file:
        copy = file_copy_path(area)
        st = os.stat(copy)
        try:
            orig = hostfs.reopen(area.lower_fd, os.O_RDONLY)
        except OSError:
            return [FileChange(area.guest, "added", size=st.st_size)]
        try:
            with open(copy, "rb") as f, os.fdopen(orig, "rb", closefd=False) as g:
                same = _same_content(f, g)
        finally:
            os.close(orig)
        return [] if same else [FileChange(area.guest, "modified", size=st.st_size)]
    out: list[FileChange] = []
    _walk_upper(area, area.upper, "", out)
    return out


def _same_content(f: object, g: object) -> bool:
    import io

    if not isinstance(f, io.BufferedReader) or not isinstance(g, io.BufferedReader):
        return False
    while True:
        a = f.read(1 << 16)
        b = g.read(1 << 16)
        if a != b:
            return False
        if not a:
            return True


def _guest_path(area: Area, rel: str) -> str:
    return area.guest.rstrip("/") + "/" + rel if rel else area.guest


def _walk_upper(area: Area, top: str, rel_dir: str, out: list[FileChange]) -> None:
    here = os.path.join(top, rel_dir) if rel_dir else top
    for name in sorted(os.listdir(here)):
        rel = f"{rel_dir}/{name}" if rel_dir else name
        full = os.path.join(top, rel)
        st = os.lstat(full)
        if _is_whiteout(st):
            out.append(FileChange(_guest_path(area, rel), "deleted"))
            continue
        if S.S_ISDIR(st.st_mode):
            redirect = _xattr(full, REDIRECT)
            if redirect is not None:
                src = redirect.decode(errors="surrogateescape")
                src = (
                    src.lstrip("/")
                    if src.startswith("/")
                    else (f"{rel_dir}/{src}" if rel_dir else src)
                )
                out.append(
                    FileChange(
                        _guest_path(area, rel), "renamed", True, source=_guest_path(area, src)
                    )
                )
            elif _xattr(full, OPAQUE) == b"y" or not _lower_exists(area, rel):
                out.append(FileChange(_guest_path(area, rel), "added", True))
            _walk_upper(area, top, rel, out)
            continue
        kind = "modified" if _lower_exists(area, rel) else "added"
        out.append(FileChange(_guest_path(area, rel), kind, size=st.st_size))


def make_diff(area: Area, changes: list[FileChange]) -> str:
    """A unified diff of the changed text files of an overlay or file area."""
    chunks: list[str] = []
    for ch in changes:
        if ch.is_dir or ch.kind == "renamed":
            continue
        rel = ch.path[len(area.guest.rstrip("/")) :].lstrip("/")
        old = b"" if ch.kind == "added" else _read_lower(area, rel)
        new = b"" if ch.kind == "deleted" else _read_upper(area, rel)
        if old is None or new is None:
            chunks.append(f"Binary files or files too large to diff differ: {ch.path}\n")
            continue
        try:
            a = old.decode().splitlines(keepends=True)
            b = new.decode().splitlines(keepends=True)
        except UnicodeDecodeError:
            chunks.append(f"Binary files differ: {ch.path}\n")
            continue
        chunks.extend(
            difflib.unified_diff(
                a,
                b,
                "/dev/null" if ch.kind == "added" else f"a{ch.path}",
                "/dev/null" if ch.kind == "deleted" else f"b{ch.path}",
            )
        )
    return "".join(chunks)


def _read_limited(fd: int) -> bytes | None:
    data = os.read(fd, DIFF_LIMIT + 1)
    return None if len(data) > DIFF_LIMIT else data


def _read_lower(area: Area, rel: str) -> bytes | None:
    try:
        if area.is_file:
            fd = hostfs.reopen(area.lower_fd, os.O_RDONLY)
        else:
            fd = hostfs.openat2(
                area.lower_fd,
                os.fsencode(rel),
                os.O_RDONLY,
                resolve=hostfs.BENEATH | hostfs.RESOLVE_NO_SYMLINKS,
            )
    except OSError:
        return b""
    try:
        return _read_limited(fd)
    finally:
        os.close(fd)


def _read_upper(area: Area, rel: str) -> bytes | None:
    path = file_copy_path(area) if area.is_file else os.path.join(area.upper, rel)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None
        raise
    try:
        return _read_limited(fd)
    finally:
        os.close(fd)


def finish(
    area_list: list[Area], *, how: str, written: list[tuple[int, bytes]]
) -> tuple[AreaReport, ...]:
    """List, diff and (for rw areas) commit each area's changes; report usage.

    ``how`` is how the guest ended: "exited" (by itself: every change is
    applied), "killed" (by the sandbox: files in ``written``, still open for
    writing, keep their old content), or "crashed" (nothing is applied).
    """
    from .commit import commit

    reports = []
    for a in area_list:
        notes: list[str] = []
        applied: bool | None = None
        try:
            if a.mode in ("overlay", "rw"):
                a.changes = list_changes(a)
                if a.diff_requested and a.changes:
                    a.diff = make_diff(a, a.changes)
            if a.mode == "rw":
                if how == "crashed":
                    applied = False
                    notes.append("not applied: the guest did not end normally")
                elif a.changes:
                    dirty = frozenset(
                        ("" if a.is_file else os.fsdecode(link).lstrip("/"))
                        for mnt, link in written
                        if mnt == a.guest_mnt_id
                    )
                    commit(a, dirty)
                    applied = True
                    notes += a.commit_errors
                else:
                    applied = True
        except OSError as e:
            notes.append(f"could not read the area's changes: {e.strerror or e}")
            applied = False if a.mode == "rw" else None
        used_bytes, used_files = a.usage()
        q = a.quota
        reports.append(
            AreaReport(
                a.guest,
                a.mode,
                used_bytes,
                used_files,
                q.max_bytes,
                q.max_files,
                q.max_file_size,
                tuple(a.changes),
                a.diff,
                applied,
                tuple(notes),
            )
        )
    return tuple(reports)

"""The guest's virtual filesystem: a skeleton of virtual nodes with mounts.

Below a mount point, every lookup is done by the kernel with
``openat2(root, rel, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)``, so no path,
symlink or rename race can leave the mount.  When such a lookup would leave
it (``..`` past the mount root, an absolute symlink), openat2 answers EXDEV
and ``_canonical`` re-walks the path one component at a time, following the
symlink inside the *virtual* namespace instead.

Every failure is a ``SyscallError`` carrying the errno a real filesystem
would give.  Host paths never appear in any result or error.
"""

from __future__ import annotations

import errno
import os
import stat as S
import threading
from collections.abc import Callable, Iterator

from ..errors import SyscallError
from . import hostfs, paths
from .nodes import SHARED, Loc, Mount, Node, PlanStep, VDir, VFile, VLink
from .stat import (
    DT_DIR,
    DT_LNK,
    DT_REG,
    DT_UNKNOWN,
    GUEST_GID,
    GUEST_UID,
    ROOT_UID,
    Devices,
    VStat,
    dirent,
    dtype_of_mode,
    host_ino,
    synthetic_stat,
)

__all__ = ["Loc", "Mount", "VDir", "VFile", "VLink", "Vfs"]

MAX_SYMLINKS = 40
#: What an absolute symlink pointing outside every mount reads as: a path that
#: exists nowhere in the sandbox, instead of a host path.
OUTSIDE = b"/.outside-the-sandbox"

_O_ACCMODE = os.O_RDONLY | os.O_WRONLY | os.O_RDWR
_O_TMPFILE = 0o20000000 | os.O_DIRECTORY
# Flags passed through to the host open; everything else is dropped.
_PASS_FLAGS = (
    _O_ACCMODE
    | os.O_CREAT
    | os.O_EXCL
    | os.O_TRUNC
    | os.O_APPEND
    | os.O_DIRECTORY
    | os.O_NOFOLLOW
    | os.O_NONBLOCK
    | os.O_DSYNC
    | os.O_SYNC
    | os.O_NOATIME
    | os.O_PATH
    | _O_TMPFILE
    | os.O_LARGEFILE
)

# Listings of read-only host directories, shared by all sandboxes:
# (dev, ino, mtime, ctime) of the directory -> packed records after "." and "..".
_RO_LISTINGS: dict[tuple[int, int, int, int], list[bytes]] = {}
_RO_LISTINGS_MAX = 256
_RO_LOCK = threading.Lock()


def _want_write(flags: int) -> bool:
    return (
        (flags & _O_ACCMODE) != os.O_RDONLY
        or bool(flags & (os.O_TRUNC | os.O_CREAT))
        or flags & _O_TMPFILE == _O_TMPFILE
    )


def _oserror(e: OSError, what: str) -> SyscallError:
    return SyscallError(e.errno or errno.EIO, what)


class _Elsewhere(Exception):
    """A mount-relative lookup led back into the skeleton."""

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc


class Vfs:
    """The filesystem of one sandbox."""

    def __init__(self) -> None:
        self._next_ino = 2
        self.root = VDir(self._new_ino())
        self.devs = Devices()
        self.mounts: list[Mount] = []
        self.cwd = Loc(self.root)
        self.umask = 0o022
        self._host_files: dict[tuple[int, int], VFile] = {}
        self._snapshots: dict[tuple[int, int], list[bytes]] = {}
        self._owners: dict[tuple[int, int, int], Node | tuple[object, int, int]] = {}

    def _new_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    # --- building the skeleton ----------------------------------------
    def _dir_at(self, vpath: bytes) -> VDir:
        node: VDir = self.root
        for c in paths.split(vpath):
            child = node.children.get(c)
            if child is None:
                child = VDir(self._new_ino())
                self._attach(node, c, child)
            if not isinstance(child, VDir):
                raise ValueError(f"{vpath!r}: {c!r} is already something other than a directory")
            node = child
        return node

    @staticmethod
    def _attach(parent: VDir, name: bytes, node: Node) -> None:
        if name in parent.children:
            raise ValueError(f"{name.decode(errors='replace')} already exists in the sandbox")
        node.name = name
        node.parent = parent
        parent.children[name] = node

    def _place(self, vpath: bytes, node: Node) -> None:
        vpath = paths.normalize(vpath)
        if vpath == b"/":
            raise ValueError("cannot replace the root")
        parent, name = vpath.rsplit(b"/", 1)
        self._attach(self._dir_at(parent), name, node)

    def add_dir(self, vpath: bytes) -> None:
        self._dir_at(paths.normalize(vpath))

    def add_symlink(self, vpath: bytes, target: bytes) -> None:
        self._place(vpath, VLink(self._new_ino(), target))

    def add_file(
        self,
        vpath: bytes,
        *,
        host_path: str | None = None,
        content: bytes | None = None,
        writable: bool = False,
        owned: bool = False,
    ) -> None:
        self._place(
            vpath,
            VFile(
                self._new_ino(),
                host_path=host_path,
                content=content,
                writable=writable,
                owned=owned,
            ),
        )

    def add_mount(self, vpath: bytes, host_dir: str, *, writable: bool) -> Mount:
        """Mount the host directory ``host_dir`` at ``vpath``."""
        return self.attach(
            vpath,
            Mount.host(self._new_ino(), host_dir, writable, label=vpath.decode(errors="replace")),
        )

    def attach(self, vpath: bytes, m: Mount) -> Mount:
        """Place an already opened mount at ``vpath``."""
        if m.ino == 0:
            m.ino = self._new_ino()
        try:
            self._place(vpath, m)
        except ValueError:
            m.close()
            raise
        self.mounts.append(m)
        return m

    def new_ino(self) -> int:
        return self._new_ino()

    def apply_plan(self, plan: tuple[PlanStep, ...]) -> None:
        """Apply a ``mirror_plan``; steps for paths already present are skipped
        (several host paths share their leading directories)."""
        for step in plan:
            if self._skeleton_node(step.vpath) is not None:
                continue
            if step.kind == "dir":
                self.add_dir(step.vpath)
            elif step.kind == "link" and isinstance(step.target, bytes):
                self.add_symlink(step.vpath, step.target)
            elif step.kind == "file" and isinstance(step.target, str):
                self.add_file(step.vpath, host_path=step.target)
            elif step.kind == "mount" and isinstance(step.target, str):
                self.add_mount(step.vpath, step.target, writable=False)
            else:
                raise ValueError(f"bad plan step {step}")

    def _skeleton_node(self, vpath: bytes) -> Node | None:
        """The skeleton node at exactly ``vpath`` (no symlinks followed)."""
        node: Node = self.root
        for c in paths.split(vpath):
            if not isinstance(node, VDir):
                return None
            child = node.children.get(c)
            if child is None:
                return None
            node = child
        return node

    # --- resolution ----------------------------------------------------
    def vpath(self, loc: Loc) -> bytes:
        parts: list[bytes] = []
        node: Node | None = loc.node
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        base = b"/" + b"/".join(reversed(parts))
        if loc.rel:
            return paths.join(base, loc.rel.rstrip(b"/"))
        return base

    def resolve(self, start: Loc, path: bytes, follow: bool, _links: int = 0) -> Loc:
        """Where ``path`` leads from ``start``.  Inside a mount the result is
        lexical (``rel`` may still hold symlinks and ``..``); the host lookup
        finishes it."""
        trailing = path.endswith(b"/")
        comps = paths.split(path)
        cur = Loc(self.root) if path.startswith(b"/") else start
        links = _links
        i = 0
        while i < len(comps):
            node = cur.node
            if isinstance(node, Mount):
                rest = b"/".join(comps[i:])
                rel = paths.join(cur.rel, rest) if cur.rel else rest
                return Loc(node, rel + (b"/" if trailing else b""))
            c = comps[i]
            if not isinstance(node, VDir):
                raise SyscallError(errno.ENOTDIR, "not a directory")
            if c == b".":
                i += 1
                continue
            if c == b"..":
                cur = Loc(node.parent or self.root)
                i += 1
                continue
            child = node.children.get(c)
            if child is None:
                raise SyscallError(errno.ENOENT, "no such entry")
            if isinstance(child, VLink) and (i < len(comps) - 1 or follow or trailing):
                links += 1
                if links > MAX_SYMLINKS:
                    raise SyscallError(errno.ELOOP, "too many symlinks")
                comps = paths.split(child.target) + comps[i + 1 :]
                i = 0
                if child.target.startswith(b"/"):
                    cur = Loc(self.root)
                continue
            cur = Loc(child)
            i += 1
        if trailing and not isinstance(cur.node, (VDir, Mount)):
            raise SyscallError(errno.ENOTDIR, "not a directory")
        return cur

    def _canonical(self, loc: Loc, follow: bool, links: int = 0) -> Loc:
        """Re-walk a mount-relative path one component at a time.

        Used when openat2 refused a lookup for leaving the mount (EXDEV):
        ``..`` above the mount root continues in the skeleton, and symlinks
        are followed in the virtual namespace.  The resulting ``rel`` has no
        symlinks (but a final one when not following) and no ``..``.
        """
        mount = loc.node
        if not isinstance(mount, Mount):
            return loc
        trailing = loc.rel.endswith(b"/")
        comps = paths.split(loc.rel)
        stack: list[tuple[bytes, int]] = []
        try:
            i = 0
            while i < len(comps):
                c = comps[i]
                last = i == len(comps) - 1
                if c == b".":
                    i += 1
                    continue
                if c == b"..":
                    if stack:
                        os.close(stack.pop()[1])
                        i += 1
                        continue
                    rest = b"/".join(comps[i + 1 :]) + (b"/" if trailing else b"")
                    parent = Loc(mount.parent or self.root)
                    return self._finish(
                        self.resolve(parent, rest or b".", follow, links), follow, links
                    )
                try:
                    fd = hostfs.openat2(
                        stack[-1][1] if stack else mount.root_fd,
                        c,
                        os.O_PATH | os.O_NOFOLLOW,
                        resolve=hostfs.BENEATH | hostfs.RESOLVE_NO_SYMLINKS,
                    )
                except OSError as e:
                    if e.errno == errno.ENOENT and last:
                        names = [n for n, _ in stack] + [c]
                        return Loc(mount, b"/".join(names) + (b"/" if trailing else b""))
                    raise _oserror(e, "lookup failed") from None
                st = os.fstat(fd)
                if S.S_ISLNK(st.st_mode) and (not last or follow or trailing):
                    target = self.guest_target(os.readlink(b"", dir_fd=fd), mount, st)
                    os.close(fd)
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise SyscallError(errno.ELOOP, "too many symlinks")
                    rest_comps = comps[i + 1 :]
                    if target.startswith(b"/"):
                        rest = b"/".join([target, *rest_comps]) + (b"/" if trailing else b"")
                        return self._finish(
                            self.resolve(Loc(self.root), rest, follow, links), follow, links
                        )
                    comps = paths.split(target) + rest_comps
                    i = 0
                    continue
                stack.append((c, fd))
                i += 1
            names = [n for n, _ in stack]
            return Loc(mount, b"/".join(names) + (b"/" if trailing and names else b""))
        finally:
            for _, fd in stack:
                os.close(fd)

    def _finish(self, loc: Loc, follow: bool, links: int) -> Loc:
        return self._canonical(loc, follow, links) if loc.hosted else loc

    def _host_open(self, loc: Loc, flags: int, mode: int = 0) -> tuple[Loc, int]:
        """openat2 below a mount, re-walking if the path leaves it.

        Returns the (possibly changed) location and the host descriptor; raises
        ``_Elsewhere`` when the path led out of the mount into the skeleton.
        """
        for _attempt in range(8):
            mount = loc.node
            if not isinstance(mount, Mount):
                raise _Elsewhere(loc)
            try:
                return loc, hostfs.openat2(mount.root_fd, loc.rel or b".", flags, mode)
            except OSError as e:
                if e.errno == errno.EXDEV:
                    loc = self._canonical(loc, follow=not flags & os.O_NOFOLLOW)
                    continue
                if e.errno == errno.EAGAIN:  # a rename raced with the lookup
                    continue
                raise _oserror(e, "host open failed") from None
        raise SyscallError(errno.ELOOP, "lookup kept leaving the mount")

    def _opath(self, loc: Loc, follow: bool) -> tuple[Loc, int]:
        return self._host_open(loc, os.O_PATH | (0 if follow else os.O_NOFOLLOW))

    # --- descriptors of the guest ----------------------------------------
    def locate(self, st: os.stat_result, link: bytes, mnt_id: Callable[[], int]) -> Loc:
        """Where a descriptor points, from its stat, its /proc link and (asked
        for only when needed) the id of the mount it lives on."""
        vp = SHARED.vpath_of(st)
        if vp is not None:
            node = self._skeleton_node(vp)
            if node is None:
                raise SyscallError(errno.ENOENT, "stale synthetic object")
            return Loc(node)
        hf = self._host_files.get((st.st_dev, st.st_ino))
        if hf is not None:
            return Loc(hf)
        if not link.startswith(b"/"):
            raise SyscallError(errno.ENOTDIR, "descriptor is not in the filesystem")
        m = self._mount_of(link, mnt_id)
        if m is None:
            raise SyscallError(errno.ENOTDIR, "descriptor is not in the filesystem")
        return Loc(m, m.rel(link))

    def locate_host_fd(self, fd: int) -> Loc:
        """``locate`` for a descriptor the controller holds (a duplicate)."""
        return self.locate(os.fstat(fd), hostfs.fd_path(fd), lambda: hostfs.mount_id(fd))

    def _mount_of(self, link: bytes, mnt_id: Callable[[], int]) -> Mount | None:
        try:
            mid: int | None = mnt_id()
        except OSError:
            mid = None
        best: Mount | None = None
        detached_ids = {m.mnt_id for m in self.mounts if m.detached}
        for m in self.mounts:
            # Detached mounts are matched by id only: their links look like
            # host paths.  A host directory may contain other host mounts, so
            # its objects are matched by path alone.
            same_mount = m.mnt_id == mid or (not m.detached and mid not in detached_ids)
            if (
                same_mount
                and m.holds(link)
                and (best is None or len(m.link_root) > len(best.link_root))
            ):
                best = m
        return best

    def _owner(self, loc: Loc) -> tuple[int, int]:
        if isinstance(loc.node, Mount) and loc.node.writable:
            return GUEST_UID, GUEST_GID
        return ROOT_UID, ROOT_UID

    def node_stat(self, node: Node) -> VStat:
        dev = self.devs.dev("skeleton")
        if isinstance(node, VDir):
            subdirs = sum(isinstance(c, (VDir, Mount)) for c in node.children.values())
            return synthetic_stat(dev, node.ino, S.S_IFDIR | 0o555, 4096, 2 + subdirs)
        if isinstance(node, VLink):
            return synthetic_stat(dev, node.ino, S.S_IFLNK | 0o777, len(node.target))
        if isinstance(node, VFile):
            if node.content is not None:
                return synthetic_stat(dev, node.ino, S.S_IFREG | 0o444, len(node.content))
            if node.host_path is None:
                raise SyscallError(errno.EIO, "internal: file without source")
            st = os.stat(node.host_path)
            uid = GUEST_UID if node.owned else ROOT_UID
            return self.devs.translate(st, ("host", st.st_dev), uid, uid)
        raise SyscallError(errno.EIO, "internal: unknown node")

    def stat_object(
        self, st: os.stat_result, link: Callable[[], bytes], mnt_id: Callable[[], int]
    ) -> VStat:
        """The guest's view of the object behind one of its descriptors.

        ``link`` gives the descriptor's /proc link; it is only asked for the
        first time an object is seen.  Where an object belongs is remembered
        by (device, inode, ctime): a rename or a reused inode changes ctime.
        """
        key = (st.st_dev, st.st_ino, st.st_ctime_ns)
        known = self._owners.get(key)
        if known is None:
            known = self._attribute(st, link(), mnt_id)
            if len(self._owners) >= 4096:
                self._owners.clear()
            self._owners[key] = known
        if isinstance(known, Node):
            return self.node_stat(known)
        dev_key, uid, gid = known
        return self.devs.translate(st, dev_key, uid, gid)

    def _attribute(
        self, st: os.stat_result, link: bytes, mnt_id: Callable[[], int]
    ) -> Node | tuple[object, int, int]:
        try:
            loc = self.locate(st, link, mnt_id)
        except SyscallError:
            # Pipes, sockets, devices: kernel objects with no place in the tree.
            return ("kernel", st.st_dev), GUEST_UID, GUEST_GID
        if not loc.hosted:
            if isinstance(loc.node, VFile) and loc.node.host_path is not None:
                uid = GUEST_UID if loc.node.owned else ROOT_UID
                return ("host", st.st_dev), uid, uid
            return loc.node
        uid, gid = self._owner(loc)
        return (id(loc.node), st.st_dev), uid, gid

    # --- stat ------------------------------------------------------------
    def stat(self, start: Loc, path: bytes, follow: bool) -> VStat:
        paths.check(path)
        return self._stat_loc(self.resolve(start, path, follow), follow)

    def _stat_loc(self, loc: Loc, follow: bool) -> VStat:
        if not loc.hosted:
            return self.node_stat(loc.node)
        try:
            loc, fd = self._opath(loc, follow)
        except _Elsewhere as e:
            return self._stat_loc(e.loc, follow)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        uid, gid = self._owner(loc)
        return self.devs.translate(st, (id(loc.node), st.st_dev), uid, gid)

    # --- open ------------------------------------------------------------
    def open(self, start: Loc, path: bytes, flags: int, mode: int) -> int:
        """A host descriptor for the guest's open(2); the caller injects it."""
        paths.check(path)
        excl_create = flags & (os.O_CREAT | os.O_EXCL) == (os.O_CREAT | os.O_EXCL)
        follow = not (flags & os.O_NOFOLLOW or excl_create)
        try:
            loc = self.resolve(start, path, follow)
        except SyscallError as e:
            if e.errno == errno.ENOENT and flags & os.O_CREAT:
                raise self._create_refusal(start, path) from None
            raise
        return self._open_loc(loc, flags, mode)

    def _create_refusal(self, start: Loc, path: bytes) -> SyscallError:
        """ENOENT for a missing parent, EROFS for a missing name in a read-only place."""
        parent = path.rstrip(b"/").rpartition(b"/")[0]
        try:
            ploc = self.resolve(start, parent or (b"/" if path.startswith(b"/") else b"."), True)
        except SyscallError as e:
            return e
        if isinstance(ploc.node, VDir):
            return SyscallError(errno.EROFS, "read-only directory")
        return SyscallError(errno.ENOENT, "no such entry")

    def _open_loc(self, loc: Loc, flags: int, mode: int) -> int:
        node = loc.node
        if isinstance(node, Mount):
            return self._open_hosted(loc, flags, mode)
        if flags & (os.O_CREAT | os.O_EXCL) == (os.O_CREAT | os.O_EXCL):
            raise SyscallError(errno.EEXIST, "exists")
        if isinstance(node, VLink):
            raise SyscallError(errno.ELOOP, "is a symlink")
        vp = self.vpath(loc)
        if isinstance(node, VDir):
            if _want_write(flags):
                raise SyscallError(errno.EISDIR, "is a directory")
            o_flags = os.O_RDONLY | os.O_DIRECTORY | (flags & (os.O_PATH | os.O_NONBLOCK))
            return os.open(SHARED.placeholder(vp), o_flags | os.O_CLOEXEC)
        if isinstance(node, VFile):
            if flags & os.O_DIRECTORY:
                raise SyscallError(errno.ENOTDIR, "not a directory")
            if _want_write(flags) and not node.writable:
                raise SyscallError(errno.EROFS, "read-only file")
            keep = flags & (os.O_NONBLOCK | os.O_PATH)
            if node.content is not None:
                return os.open(SHARED.content(vp, node.content), os.O_RDONLY | keep | os.O_CLOEXEC)
            if node.host_path is None:
                raise SyscallError(errno.EIO, "internal: file without source")
            if node.writable:
                keep |= flags & (os.O_TRUNC | os.O_APPEND)
            fd = os.open(node.host_path, (flags & _O_ACCMODE) | keep | os.O_CLOEXEC | os.O_NOCTTY)
            st = os.fstat(fd)
            self._host_files[(st.st_dev, st.st_ino)] = node
            return fd
        raise SyscallError(errno.ENOENT, "unknown node")

    def _open_hosted(self, loc: Loc, flags: int, mode: int) -> int:
        mount = loc.node
        if not isinstance(mount, Mount):
            raise SyscallError(errno.EIO, "internal: not a mount")
        if _want_write(flags) and not mount.writable:
            if flags & os.O_CREAT and not flags & (os.O_TRUNC | _O_ACCMODE):
                # O_CREAT of an existing file for reading is allowed.
                try:
                    return self._open_hosted(loc, flags & ~os.O_CREAT, mode)
                except SyscallError as e:
                    if e.errno != errno.ENOENT:
                        raise
            raise SyscallError(errno.EROFS, "read-only mount")
        host_flags = flags & _PASS_FLAGS
        creating = bool(flags & os.O_CREAT) or flags & _O_TMPFILE == _O_TMPFILE
        try:
            if creating or flags & os.O_PATH:
                # Nothing to check before the open: creating needs the real
                # call, and an O_PATH descriptor cannot be read or written.
                mode = mode & 0o777 & ~self.umask  # never set-id bits
                loc, fd = self._host_open(loc, host_flags | os.O_NONBLOCK | os.O_NOCTTY, mode)
                try:
                    self._check_type(fd, allow_any=bool(flags & os.O_PATH))
                    if not flags & (os.O_NONBLOCK | os.O_PATH):
                        os.set_blocking(fd, True)
                except BaseException:
                    os.close(fd)
                    raise
                return fd
            # Look first (O_PATH), then open the very same inode: opening a
            # FIFO or device in a mounted directory must never happen.
            look = os.O_PATH | (host_flags & (os.O_NOFOLLOW | os.O_DIRECTORY))
            loc, opath = self._host_open(loc, look)
        except _Elsewhere as e:
            return self._open_loc(e.loc, flags, mode)
        try:
            self._check_type(opath, allow_any=False)
            reopen = host_flags & ~(os.O_NOFOLLOW | os.O_CREAT | os.O_EXCL) | os.O_NOCTTY
            try:
                return hostfs.reopen(opath, reopen)
            except OSError as e:
                raise _oserror(e, "host open failed") from None
        finally:
            os.close(opath)

    @staticmethod
    def _check_type(fd: int, *, allow_any: bool) -> None:
        """Refuse symlinks and special files (the caller closes ``fd``)."""
        mode = os.fstat(fd).st_mode
        if S.S_ISLNK(mode):
            raise SyscallError(errno.ELOOP, "is a symlink")
        if not allow_any and not (S.S_ISREG(mode) or S.S_ISDIR(mode)):
            raise SyscallError(errno.EACCES, "special files in mounts are not served")

    # --- other lookups -----------------------------------------------------
    def access(self, start: Loc, path: bytes, mode: int, follow: bool) -> None:
        paths.check(path)
        loc = self.resolve(start, path, follow)
        st = self._stat_loc(loc, follow)
        if mode & os.W_OK:
            writable = (isinstance(loc.node, Mount) and loc.node.writable) or (
                isinstance(loc.node, VFile) and loc.node.writable
            )
            if not writable:
                raise SyscallError(errno.EROFS, "read-only")
        bits = st.mode & 0o777
        perm = bits >> 6 if st.uid == GUEST_UID else bits & 0o7
        for want, bit in ((os.R_OK, 4), (os.W_OK, 2), (os.X_OK, 1)):
            if mode & want and not perm & bit:
                raise SyscallError(errno.EACCES, "permission bits deny it")

    def readlink(self, start: Loc, path: bytes) -> bytes:
        paths.check(path)
        loc = self.resolve(start, path, follow=False)
        if not loc.hosted:
            if isinstance(loc.node, VLink):
                return loc.node.target
            raise SyscallError(errno.EINVAL, "not a symlink")
        try:
            loc, fd = self._opath(loc, follow=False)
        except _Elsewhere as e:
            if isinstance(e.loc.node, VLink):
                return e.loc.node.target
            raise SyscallError(errno.EINVAL, "not a symlink") from None
        try:
            st = os.fstat(fd)
            if not S.S_ISLNK(st.st_mode) or not isinstance(loc.node, Mount):
                raise SyscallError(errno.EINVAL, "not a symlink")
            return self.guest_target(os.readlink(b"", dir_fd=fd), loc.node, st)
        finally:
            os.close(fd)

    def guest_target(self, target: bytes, mount: Mount, st: os.stat_result) -> bytes:
        """The target of a symlink found in ``mount``, as the guest may see it.

        A link the guest made reads back as written.  A link that came from
        the host never shows a host path: an absolute target inside a mounted
        host directory becomes the path of the same place in the sandbox, any
        other absolute target becomes ``OUTSIDE``.
        """
        if not target.startswith(b"/") or st.st_dev == mount.guest_dev:
            return target
        best: Mount | None = None
        for m in self.mounts:
            hr = m.host_root
            if (
                hr
                and (target == hr or target.startswith(hr + b"/"))
                and (best is None or len(hr) > len(best.host_root))
            ):
                best = m
        if best is None:
            return OUTSIDE
        return self.vpath(Loc(best)) + target[len(best.host_root) :]

    def chdir_to(self, loc: Loc) -> None:
        if loc.hosted:
            try:
                loc, fd = self._host_open(loc, os.O_PATH | os.O_DIRECTORY)
            except _Elsewhere as e:
                self.chdir_to(e.loc)
                return
            try:
                self.cwd = self.locate_host_fd(fd)
            finally:
                os.close(fd)
            return
        if not isinstance(loc.node, VDir):
            raise SyscallError(errno.ENOTDIR, "not a directory")
        self.cwd = loc

    def chdir(self, start: Loc, path: bytes) -> None:
        paths.check(path)
        self.chdir_to(self.resolve(start, path, follow=True))

    def getcwd(self) -> bytes:
        cwd = self.cwd
        if isinstance(cwd.node, Mount):
            # The directory may have been removed since.
            try:
                fd = hostfs.openat2(cwd.node.root_fd, cwd.rel or b".", os.O_PATH | os.O_DIRECTORY)
            except OSError:
                raise SyscallError(errno.ENOENT, "working directory was removed") from None
            os.close(fd)
        return self.vpath(cwd)

    # --- directory listings ------------------------------------------------
    def _skeleton_records(self, node: VDir) -> list[bytes]:
        out = []
        for i, (name, child) in enumerate(node.children.items(), start=2):
            if isinstance(child, (VDir, Mount)):
                dt = DT_DIR
            elif isinstance(child, VLink):
                dt = DT_LNK
            elif isinstance(child, VFile) and child.host_path is not None:
                dt = dtype_of_mode(os.stat(child.host_path).st_mode)
            else:
                dt = DT_REG
            out.append(dirent(child.ino, i + 1, dt, name))
        return out

    @staticmethod
    def _host_records(dir_fd: int, dev: int) -> list[bytes]:
        out = []
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            with os.scandir(fd) as it:
                for i, e in enumerate(it, start=2):
                    # d_type from the host's getdents: no stat per entry.
                    if e.is_symlink():
                        dt = DT_LNK
                    elif e.is_dir(follow_symlinks=False):
                        dt = DT_DIR
                    elif e.is_file(follow_symlinks=False):
                        dt = DT_REG
                    else:
                        try:
                            dt = dtype_of_mode(e.stat(follow_symlinks=False).st_mode)
                        except OSError:
                            dt = DT_UNKNOWN
                    out.append(dirent(host_ino(dev, e.inode()), i + 1, dt, os.fsencode(e.name)))
        finally:
            os.close(fd)
        return out

    def _records(self, loc: Loc, host_fd: int, st: os.stat_result, fresh: bool) -> list[bytes]:
        node = loc.node
        if isinstance(node, VDir):
            return self._skeleton_records(node)
        if not isinstance(node, Mount):
            raise SyscallError(errno.ENOTDIR, "not a directory")
        if not node.writable:
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            cached = _RO_LISTINGS.get(key)
            if cached is None:
                cached = self._host_records(host_fd, st.st_dev)
                with _RO_LOCK:
                    if len(_RO_LISTINGS) >= _RO_LISTINGS_MAX:
                        _RO_LISTINGS.pop(next(iter(_RO_LISTINGS)))
                    _RO_LISTINGS[key] = cached
            return cached
        # Writable: a snapshot per listing, taken when the guest starts over.
        skey = (st.st_dev, st.st_ino)
        snap = None if fresh else self._snapshots.get(skey)
        if snap is None:
            snap = self._snapshots[skey] = self._host_records(host_fd, st.st_dev)
        return snap

    def getdents(self, host_fd: int, count: int) -> tuple[bytes, int]:
        """The next directory records for a guest's getdents64, and the offset
        to set once they are delivered (``seek_dir``).

        The descriptor's file offset is the index of the next entry: the state
        lives with the guest's descriptor, as it does in the kernel.
        """
        st = os.fstat(host_fd)
        if not S.S_ISDIR(st.st_mode):
            raise SyscallError(errno.ENOTDIR, "not a directory")
        loc = self.locate_host_fd(host_fd)
        pos = os.lseek(host_fd, 0, os.SEEK_CUR)
        records = self._records(loc, host_fd, st, fresh=pos == 0)
        out = bytearray()
        i = pos
        while i < len(records) + 2:
            if i < 2:
                rec = self._dot_record(loc, host_fd, st, i)
            else:
                rec = records[i - 2]
            if len(out) + len(rec) > count:
                if not out:
                    raise SyscallError(errno.EINVAL, "buffer too small")
                break
            out += rec
            i += 1
        return bytes(out), i

    def _dot_record(self, loc: Loc, host_fd: int, st: os.stat_result, i: int) -> bytes:
        node = loc.node
        if i == 0:
            ino = host_ino(st.st_dev, st.st_ino) if loc.hosted else node.ino
            return dirent(ino, 1, DT_DIR, b".")
        if not loc.hosted or not loc.rel:
            ino = (node.parent or self.root).ino
        else:
            up = os.stat(b"..", dir_fd=host_fd, follow_symlinks=False)
            ino = host_ino(up.st_dev, up.st_ino)
        return dirent(ino, 2, DT_DIR, b"..")

    @staticmethod
    def seek_dir(host_fd: int, pos: int) -> None:
        os.lseek(host_fd, pos, os.SEEK_SET)

    # --- changes (writable mounts only) ---------------------------------------
    # What Linux answers when the last component is "." or "..", per operation.
    _DOT_ERRNO = {
        "mkdir": (errno.EEXIST, errno.EEXIST),
        "rmdir": (errno.EINVAL, errno.ENOTEMPTY),
        "unlink": (errno.EISDIR, errno.EISDIR),
        "rename": (errno.EBUSY, errno.EBUSY),
        "symlink": (errno.EEXIST, errno.EEXIST),
        "link": (errno.EEXIST, errno.EEXIST),
    }

    def _split(self, path: bytes, op: str) -> tuple[bytes, bytes]:
        """(parent, name) of a path whose last entry is to be changed."""
        paths.check(path)
        stripped = path.rstrip(b"/")
        if not stripped:
            raise SyscallError(
                errno.EEXIST if op in ("mkdir", "symlink", "link") else errno.EBUSY,
                "the root directory",
            )
        parent, _, name = stripped.rpartition(b"/")
        if not parent and stripped.startswith(b"/"):
            parent = b"/"
        if name in (b".", b".."):
            dot, dotdot = self._DOT_ERRNO[op]
            raise SyscallError(dot if name == b"." else dotdot, "cannot change '.' or '..'")
        return parent or b".", name

    def _parent_fd(self, start: Loc, parent: bytes) -> tuple[Loc, int]:
        """The parent directory as (location, O_PATH descriptor); fd is -1 if it
        is not below a mount."""
        loc = self.resolve(start, parent, follow=True)
        try:
            return self._host_open(loc, os.O_PATH | os.O_DIRECTORY)
        except _Elsewhere as e:
            return e.loc, -1

    def _writable_parent(self, start: Loc, path: bytes, op: str) -> tuple[Mount, int, bytes]:
        """An O_PATH descriptor of the parent directory inside a writable mount,
        and the final name.  Raises EROFS outside writable mounts."""
        parent, name = self._split(path, op)
        loc, fd = self._parent_fd(start, parent)
        m = loc.node
        creating = op in ("mkdir", "symlink", "link")
        if not isinstance(m, Mount):
            if isinstance(m, VDir):
                if creating and name in m.children:
                    raise SyscallError(errno.EEXIST, "exists")
                raise SyscallError(errno.EROFS, "read-only directory")
            raise SyscallError(errno.ENOTDIR, "not a directory")
        if not m.writable:
            try:
                if creating:
                    # Linux reports an existing name before a read-only filesystem.
                    try:
                        os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        pass
                    else:
                        raise SyscallError(errno.EEXIST, "exists")
                raise SyscallError(errno.EROFS, "read-only mount")
            finally:
                os.close(fd)
        return m, fd, name

    def _change(self, start: Loc, path: bytes, op: str, mode: int = 0) -> None:
        _m, dfd, name = self._writable_parent(start, path, op)
        try:
            if op == "mkdir":
                os.mkdir(name, mode & 0o777 & ~self.umask, dir_fd=dfd)
            elif op == "unlink":
                os.unlink(name, dir_fd=dfd)
            elif op == "rmdir":
                os.rmdir(name, dir_fd=dfd)
            else:
                raise ValueError(op)
        except OSError as e:
            raise _oserror(e, f"{op} failed") from None
        finally:
            os.close(dfd)

    def mkdir(self, start: Loc, path: bytes, mode: int) -> None:
        self._change(start, path, "mkdir", mode)

    def unlink(self, start: Loc, path: bytes) -> None:
        if path.endswith(b"/"):
            st = self.stat(start, path, follow=True)
            raise SyscallError(
                errno.EISDIR if S.S_ISDIR(st.mode) else errno.ENOTDIR, "trailing slash"
            )
        self._change(start, path, "unlink")

    def rmdir(self, start: Loc, path: bytes) -> None:
        self._change(start, path, "rmdir")

    def symlink(self, target: bytes, start: Loc, path: bytes) -> None:
        """Create a symlink; its target is only ever followed inside the sandbox."""
        if not target:
            raise SyscallError(errno.ENOENT, "empty symlink target")
        if len(target) >= paths.PATH_MAX:
            raise SyscallError(errno.ENAMETOOLONG, "symlink target too long")
        _m, dfd, name = self._writable_parent(start, path, "symlink")
        try:
            os.symlink(target, name, dir_fd=dfd)
        except OSError as e:
            raise _oserror(e, "symlink failed") from None
        finally:
            os.close(dfd)

    def link(self, old_start: Loc, old: bytes, new_start: Loc, new: bytes, follow: bool) -> None:
        """A hard link within one writable mount.

        With ``follow`` the source's final symlink is resolved here, in the
        virtual namespace, and the kernel links what it points to: the
        kernel itself never follows a symlink for us.
        """
        paths.check(old)
        src = self.resolve(old_start, old, follow)
        if src.hosted:
            src = self._canonical(src, follow)
        if not isinstance(src.node, Mount):
            # A system file, a synthetic node: another filesystem.
            self._split(new, "link")
            raise SyscallError(errno.EXDEV, "link across filesystems")
        if not src.rel:
            raise SyscallError(errno.EPERM, "cannot link a mount point")
        sparent, _, sname = src.rel.rstrip(b"/").rpartition(b"/")
        m2, d2, n2 = self._writable_parent(new_start, new, "link")
        try:
            if m2 is not src.node:
                raise SyscallError(errno.EXDEV, "link across mounts")
            try:
                d1 = hostfs.openat2(src.node.root_fd, sparent or b".", os.O_PATH | os.O_DIRECTORY)
            except OSError as e:
                raise _oserror(e, "link failed") from None
            try:
                st = os.stat(sname, dir_fd=d1, follow_symlinks=False)
                if S.S_ISDIR(st.st_mode):
                    raise SyscallError(errno.EPERM, "cannot hard-link a directory")
                os.link(sname, n2, src_dir_fd=d1, dst_dir_fd=d2, follow_symlinks=False)
            except OSError as e:
                raise _oserror(e, "link failed") from None
            finally:
                os.close(d1)
        finally:
            os.close(d2)

    def rename(
        self, old_start: Loc, old: bytes, new_start: Loc, new: bytes, flags: int = 0
    ) -> None:
        if flags & ~(hostfs.RENAME_NOREPLACE | hostfs.RENAME_EXCHANGE) or (
            flags == hostfs.RENAME_NOREPLACE | hostfs.RENAME_EXCHANGE
        ):
            raise SyscallError(errno.EINVAL, "unsupported rename flags")
        m1, d1, n1 = self._writable_parent(old_start, old, "rename")
        try:
            m2, d2, n2 = self._writable_parent(new_start, new, "rename")
        except BaseException:
            os.close(d1)
            raise
        try:
            if m1 is not m2:
                raise SyscallError(errno.EXDEV, "rename across mounts")
            if old.endswith(b"/") or new.endswith(b"/"):
                # A trailing slash demands a directory (the source's type decides).
                st = os.stat(n1, dir_fd=d1, follow_symlinks=False)
                if not S.S_ISDIR(st.st_mode):
                    raise SyscallError(errno.ENOTDIR, "not a directory")
            if flags:
                hostfs.renameat2(d1, n1, d2, n2, flags)
            else:
                os.rename(n1, n2, src_dir_fd=d1, dst_dir_fd=d2)
        except OSError as e:
            raise _oserror(e, "rename failed") from None
        finally:
            os.close(d1)
            os.close(d2)

    def _writable_hosted_fd(self, start: Loc, path: bytes, follow: bool) -> int:
        paths.check(path)
        loc = self.resolve(start, path, follow)
        try:
            loc, fd = self._opath(loc, follow)
        except _Elsewhere:
            raise SyscallError(errno.EROFS, "read-only") from None
        if not (isinstance(loc.node, Mount) and loc.node.writable):
            os.close(fd)
            raise SyscallError(errno.EROFS, "read-only mount")
        return fd

    def truncate(self, start: Loc, path: bytes, length: int) -> None:
        fd = self._writable_hosted_fd(start, path, follow=True)
        try:
            self._check_type(fd, allow_any=False)
            if S.S_ISDIR(os.fstat(fd).st_mode):
                raise SyscallError(errno.EISDIR, "is a directory")
            wfd = hostfs.reopen(fd, os.O_WRONLY)
        except OSError as e:
            raise _oserror(e, "truncate failed") from None
        finally:
            os.close(fd)
        try:
            os.ftruncate(wfd, length)
        except OSError as e:
            raise _oserror(e, "truncate failed") from None
        finally:
            os.close(wfd)

    def chmod(self, start: Loc, path: bytes, mode: int, follow: bool = True) -> None:
        fd = self._writable_hosted_fd(start, path, follow)
        try:
            if S.S_ISLNK(os.fstat(fd).st_mode):
                raise SyscallError(errno.EOPNOTSUPP, "symlink modes cannot change")
            os.chmod(f"/proc/self/fd/{fd}", mode & 0o1777)  # never set-id bits
        except OSError as e:
            raise _oserror(e, "chmod failed") from None
        finally:
            os.close(fd)

    def _check_writable_fd(self, host_fd: int) -> None:
        loc = self.locate_host_fd(host_fd)
        if not (isinstance(loc.node, Mount) and loc.node.writable):
            raise SyscallError(errno.EROFS, "read-only")

    def chmod_fd(self, host_fd: int, mode: int) -> None:
        self._check_writable_fd(host_fd)
        os.fchmod(host_fd, mode & 0o1777)

    def utimens(
        self,
        start: Loc | None,
        path: bytes | None,
        host_fd: int | None,
        times: tuple[int, int] | None,
        follow: bool,
    ) -> None:
        """Set (atime_ns, mtime_ns) of a file, or both to now when ``times`` is None."""
        if path is None or start is None:
            if host_fd is None:
                raise SyscallError(errno.EBADF, "no file")
            self._check_writable_fd(host_fd)
            target, close = host_fd, False
        else:
            target, close = self._writable_hosted_fd(start, path, follow), True
        try:
            if S.S_ISLNK(os.fstat(target).st_mode):
                return  # symlink times: accepted, not changed
            where = f"/proc/self/fd/{target}"
            if times is None:
                os.utime(where)
            else:
                os.utime(where, ns=times)
        except OSError as e:
            raise _oserror(e, "utime failed") from None
        finally:
            if close:
                os.close(target)

    def close(self) -> None:
        for m in self.mounts:
            m.close()

    def walk_nodes(self) -> Iterator[tuple[bytes, Node]]:
        """Every skeleton node with its virtual path (for docs and tests)."""
        todo: list[tuple[bytes, Node]] = [(b"/", self.root)]
        while todo:
            p, n = todo.pop()
            yield p, n
            if isinstance(n, VDir):
                for name, c in n.children.items():
                    todo.append((paths.join(p, name), c))

"""The guest's virtual filesystem: a skeleton of virtual nodes with mounts.

The *skeleton* holds synthetic directories, symlinks and files (the system
image, /proc/self/exe, /etc/ld.so.cache ...).  *Mounts* attach host
directories; everything below a mount point is looked up by the kernel with
``openat2(root, rel, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`` so that no
path, symlink or rename race can leave the mount.  When such a lookup would
leave it (``..`` past the mount root, an absolute symlink), openat2 answers
EXDEV and ``_canonical`` re-walks the path one component at a time, following
the symlink inside the *virtual* namespace instead.

Every failure is a ``SyscallError`` carrying the errno a real filesystem
would give.  Host paths never appear in any result or error.
"""

from __future__ import annotations

import errno
import os
import stat as S
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import SyscallError
from . import hostfs, paths
from .stat import (
    DT_DIR,
    DT_LNK,
    DT_REG,
    GUEST_GID,
    GUEST_UID,
    ROOT_UID,
    Identities,
    VStat,
    dtype_of_mode,
    synthetic_stat,
)

MAX_SYMLINKS = 40


class Node:
    __slots__ = ("ino", "name", "parent")

    def __init__(self, ino: int) -> None:
        self.ino = ino
        self.name = b""
        self.parent: VDir | None = None


class VDir(Node):
    """A synthetic, read-only directory."""

    __slots__ = ("children",)

    def __init__(self, ino: int) -> None:
        super().__init__(ino)
        self.children: dict[bytes, Node] = {}


class VLink(Node):
    __slots__ = ("target",)

    def __init__(self, ino: int, target: bytes) -> None:
        super().__init__(ino)
        self.target = target


class VFile(Node):
    """A read-only file: a host file the controller names, or fixed content."""

    __slots__ = ("content", "host_path", "writable")

    def __init__(
        self,
        ino: int,
        *,
        host_path: str | None = None,
        content: bytes | None = None,
        writable: bool = False,
    ) -> None:
        super().__init__(ino)
        if (host_path is None) == (content is None):
            raise ValueError("a VFile has either a host path or content")
        self.host_path = host_path
        self.content = content
        self.writable = writable  # only for devices like /dev/null


class Mount(Node):
    """A host directory mounted at this point."""

    __slots__ = ("host_root", "root_fd", "writable")

    def __init__(self, ino: int, host_root: str, writable: bool) -> None:
        super().__init__(ino)
        self.host_root = os.path.realpath(host_root)
        self.writable = writable
        self.root_fd = os.open(self.host_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1


@dataclass(frozen=True, slots=True)
class Loc:
    """A resolved location: a skeleton node, or a path below a mount's root."""

    node: Node
    rel: bytes = b""  # only for mounts; b"" is the mount root

    @property
    def hosted(self) -> bool:
        return isinstance(self.node, Mount)


@dataclass(slots=True)
class _Listing:
    entries: list[tuple[bytes, int, int]]  # name, ino, d_type


@dataclass(slots=True)
class PrivateArea:
    """Host-side scratch space of one sandbox: placeholders, generated files."""

    root: str
    _n: int = 0
    created: list[str] = field(default_factory=list)

    def new_path(self, prefix: str) -> str:
        self._n += 1
        return os.path.join(self.root, f"{prefix}{self._n}")


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


def _want_write(flags: int) -> bool:
    return (
        (flags & _O_ACCMODE) != os.O_RDONLY
        or bool(flags & (os.O_TRUNC | os.O_CREAT))
        or (flags & _O_TMPFILE == _O_TMPFILE)
    )


class Vfs:
    """The filesystem of one sandbox."""

    def __init__(self, private_root: str) -> None:
        self.ids = Identities()
        self.root = VDir(self.ids.new_ino())
        self.private = PrivateArea(private_root)
        self.mounts: list[Mount] = []
        self.cwd = Loc(self.root)
        self.umask = 0o022
        # Host (dev, ino) of objects the controller made for synthetic nodes.
        self._objects: dict[tuple[int, int], Node] = {}
        self._materialized: dict[int, str] = {}
        self._listings: dict[tuple[int, int], _Listing] = {}

    # --- building the skeleton ----------------------------------------
    def _dir_at(self, vpath: bytes) -> VDir:
        node: VDir = self.root
        for c in paths.split(vpath):
            child = node.children.get(c)
            if child is None:
                child = VDir(self.ids.new_ino())
                self._attach(node, c, child)
            if not isinstance(child, VDir):
                raise ValueError(f"{vpath!r}: {c!r} is already something other than a directory")
            node = child
        return node

    def _attach(self, parent: VDir, name: bytes, node: Node) -> None:
        if name in parent.children:
            raise ValueError(f"{name!r} already exists in the virtual filesystem")
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
        self._place(vpath, VLink(self.ids.new_ino(), target))

    def add_file(
        self,
        vpath: bytes,
        *,
        host_path: str | None = None,
        content: bytes | None = None,
        writable: bool = False,
    ) -> None:
        self._place(
            vpath,
            VFile(self.ids.new_ino(), host_path=host_path, content=content, writable=writable),
        )

    def add_mount(self, vpath: bytes, host_dir: str, *, writable: bool) -> Mount:
        m = Mount(self.ids.new_ino(), host_dir, writable)
        self._place(vpath, m)
        self.mounts.append(m)
        return m

    def mirror_host_path(self, host_path: str, *, as_dir: bool = False) -> None:
        """Expose ``host_path`` at the same virtual path, read-only.

        Symlinks met on the way (``/lib -> usr/lib``, ``libffi.so.8 ->
        libffi.so.8.1.2``) are mirrored as virtual symlinks, so the guest's
        usual paths resolve as they do on the host.
        """
        todo = [os.path.abspath(host_path)]
        seen = 0
        while todo:
            path = todo.pop()
            seen += 1
            if seen > MAX_SYMLINKS:
                raise ValueError(f"too many symlinks under {host_path}")
            comps = [c for c in path.split("/") if c]
            node: VDir = self.root
            for i, c in enumerate(comps):
                here = "/" + "/".join(comps[: i + 1])
                last = i == len(comps) - 1
                cb = os.fsencode(c)
                existing = node.children.get(cb)
                if os.path.islink(here):
                    target = os.readlink(here)
                    if existing is None:
                        self._attach(node, cb, VLink(self.ids.new_ino(), os.fsencode(target)))
                    rest = "/".join(comps[i + 1 :])
                    resolved = os.path.normpath(os.path.join(os.path.dirname(here), target))
                    todo.append(os.path.join(resolved, rest) if rest else resolved)
                    break
                if last:
                    if existing is not None:
                        break
                    if as_dir:
                        self.mounts.append(m := Mount(self.ids.new_ino(), here, False))
                        self._attach(node, cb, m)
                    else:
                        self._attach(node, cb, VFile(self.ids.new_ino(), host_path=here))
                    break
                if existing is None:
                    existing = VDir(self.ids.new_ino())
                    self._attach(node, cb, existing)
                if not isinstance(existing, VDir):
                    break  # already covered by a mount or file
                node = existing

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
        """Where ``path`` leads from ``start``.  Inside a mount the result is lexical
        (``rel`` may still hold symlinks and ``..``); the host lookup finishes it."""
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
            last = i == len(comps) - 1
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
            if isinstance(child, VLink) and (not last or follow or trailing):
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
        if isinstance(cur.node, Mount) and trailing and not cur.rel:
            return cur
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

        def cur_fd() -> int:
            return stack[-1][1] if stack else mount.root_fd

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
                        cur_fd(),
                        c,
                        os.O_PATH | os.O_NOFOLLOW,
                        resolve=hostfs.BENEATH | hostfs.RESOLVE_NO_SYMLINKS,
                    )
                except OSError as e:
                    if e.errno == errno.ENOENT and last:
                        names = [n for n, _ in stack] + [c]
                        return Loc(mount, b"/".join(names) + (b"/" if trailing else b""))
                    raise SyscallError(e.errno or errno.EIO, "lookup failed") from None
                st = os.fstat(fd)
                if S.S_ISLNK(st.st_mode) and (not last or follow or trailing):
                    target = os.readlink(b"", dir_fd=fd)
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
        """openat2 below a mount, re-walking once if the path leaves it.

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
                    follow = not flags & os.O_NOFOLLOW
                    loc = self._canonical(loc, follow)
                    continue
                if e.errno == errno.EAGAIN:  # a rename raced with the lookup
                    continue
                raise SyscallError(e.errno or errno.EIO, "host open failed") from None
        raise SyscallError(errno.ELOOP, "lookup kept leaving the mount")

    def _opath(self, loc: Loc, follow: bool) -> tuple[Loc, int]:
        return self._host_open(loc, os.O_PATH | (0 if follow else os.O_NOFOLLOW))

    # --- locations of guest descriptors -----------------------------------
    def locate_fd(self, host_fd: int) -> Loc:
        """Where a descriptor of the guest (duplicated into the controller) points."""
        st = os.fstat(host_fd)
        node = self._objects.get((st.st_dev, st.st_ino))
        if node is not None:
            return Loc(node)
        if not S.S_ISDIR(st.st_mode) and not S.S_ISREG(st.st_mode):
            raise SyscallError(errno.ENOTDIR, "descriptor is not a file or directory")
        try:
            host = hostfs.fd_path(host_fd)
        except OSError:
            raise SyscallError(errno.ENOENT, "descriptor has no path") from None
        best: Mount | None = None
        for m in self.mounts:
            root = os.fsencode(m.host_root)
            if (host == root or host.startswith(root + b"/")) and (
                best is None or len(m.host_root) > len(best.host_root)
            ):
                best = m
        if best is None:
            raise SyscallError(errno.ENOENT, "descriptor is outside every mount")
        rel = host[len(os.fsencode(best.host_root)) :].lstrip(b"/")
        return Loc(best, rel)

    def start_for(self, dir_loc: Loc | None) -> Loc:
        return self.cwd if dir_loc is None else dir_loc

    # --- stat ------------------------------------------------------------
    def _owner(self, loc: Loc) -> tuple[int, int]:
        if isinstance(loc.node, Mount) and loc.node.writable:
            return GUEST_UID, GUEST_GID
        return ROOT_UID, ROOT_UID

    def _dev_key(self, loc: Loc, st: os.stat_result) -> object:
        return (id(loc.node), st.st_dev) if loc.hosted else ("host", st.st_dev)

    def node_stat(self, node: Node) -> VStat:
        dev = self.ids.dev("skeleton")
        if isinstance(node, VDir):
            return synthetic_stat(
                dev,
                node.ino,
                S.S_IFDIR | 0o555,
                4096,
                2 + sum(isinstance(c, (VDir, Mount)) for c in node.children.values()),
            )
        if isinstance(node, VLink):
            return synthetic_stat(dev, node.ino, S.S_IFLNK | 0o777, len(node.target))
        if isinstance(node, VFile):
            if node.content is not None:
                return synthetic_stat(dev, node.ino, S.S_IFREG | 0o444, len(node.content))
            assert node.host_path is not None
            st = os.stat(node.host_path)
            return self.ids.translate(st, ("host", st.st_dev), ROOT_UID, ROOT_UID)
        raise TypeError(node)

    def stat_fd(self, host_fd: int) -> VStat:
        st = os.fstat(host_fd)
        node = self._objects.get((st.st_dev, st.st_ino))
        if node is not None:
            return self.node_stat(node)
        try:
            loc = self.locate_fd(host_fd)
        except SyscallError:
            # Pipes, sockets, devices: kernel objects with no place in the tree.
            return self.ids.translate(st, ("kernel", st.st_dev), GUEST_UID, GUEST_GID)
        uid, gid = self._owner(loc)
        return self.ids.translate(st, self._dev_key(loc, st), uid, gid)

    def stat(self, start: Loc, path: bytes, follow: bool) -> VStat:
        paths.check(path)
        loc = self.resolve(start, path, follow)
        return self._stat_loc(loc, follow)

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
        return self.ids.translate(st, self._dev_key(loc, st), uid, gid)

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
        parent, _, _name = path.rstrip(b"/").rpartition(b"/")
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
            if flags & os.O_PATH:
                raise SyscallError(errno.ELOOP, "symlink descriptors are not supported")
            raise SyscallError(errno.ELOOP, "is a symlink")
        if isinstance(node, VDir):
            if _want_write(flags):
                raise SyscallError(errno.EISDIR, "is a directory")
            return self._placeholder(node, flags)
        if isinstance(node, VFile):
            if flags & os.O_DIRECTORY:
                raise SyscallError(errno.ENOTDIR, "not a directory")
            if _want_write(flags) and not node.writable:
                raise SyscallError(errno.EROFS, "read-only file")
            return self._open_vfile(node, flags)
        raise SyscallError(errno.ENOENT, "unknown node")

    def _open_hosted(self, loc: Loc, flags: int, mode: int) -> int:
        mount = loc.node
        assert isinstance(mount, Mount)
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
                    if not flags & os.O_NONBLOCK and not flags & os.O_PATH:
                        os.set_blocking(fd, True)
                except BaseException:
                    os.close(fd)
                    raise
                return fd
            # Look first (O_PATH), then open the very same inode: opening a
            # FIFO or device in a mounted directory must never happen.
            loc, opath = self._host_open(
                loc, os.O_PATH | (host_flags & (os.O_NOFOLLOW | os.O_DIRECTORY))
            )
        except _Elsewhere as e:
            return self._open_loc(e.loc, flags, mode)
        try:
            self._check_type(opath, allow_any=False)
            try:
                return hostfs.reopen(
                    opath, host_flags & ~(os.O_NOFOLLOW | os.O_CREAT | os.O_EXCL) | os.O_NOCTTY
                )
            except OSError as e:
                raise SyscallError(e.errno or errno.EIO, "host open failed") from None
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

    def _placeholder(self, node: VDir, flags: int) -> int:
        """A descriptor standing for a synthetic directory: an empty host
        directory, recognised later by its inode."""
        path = self._materialized.get(node.ino)
        if path is None:
            path = self.private.new_path("d")
            os.mkdir(path, 0o555)
            st = os.stat(path)
            self._objects[(st.st_dev, st.st_ino)] = node
            self._materialized[node.ino] = path
        o_flags = os.O_RDONLY | os.O_DIRECTORY | (flags & (os.O_PATH | os.O_NONBLOCK))
        return os.open(path, o_flags | os.O_CLOEXEC)

    def _open_vfile(self, node: VFile, flags: int) -> int:
        if node.host_path is not None:
            fd = os.open(
                node.host_path,
                (flags & (_O_ACCMODE | os.O_NONBLOCK | os.O_PATH)) | os.O_CLOEXEC | os.O_NOCTTY,
            )
            st = os.fstat(fd)
            self._objects.setdefault((st.st_dev, st.st_ino), node)
            return fd
        path = self._materialized.get(node.ino)
        if path is None:
            path = self.private.new_path("f")
            assert node.content is not None
            with open(path, "xb") as f:
                f.write(node.content)
            os.chmod(path, 0o444)
            st = os.stat(path)
            self._objects[(st.st_dev, st.st_ino)] = node
            self._materialized[node.ino] = path
        return os.open(path, os.O_RDONLY | (flags & (os.O_NONBLOCK | os.O_PATH)) | os.O_CLOEXEC)

    # --- other lookups -----------------------------------------------------
    def access(self, start: Loc, path: bytes, mode: int, follow: bool) -> None:
        paths.check(path)
        loc = self.resolve(start, path, follow)
        st = self._stat_loc(loc, follow)
        writable_place = isinstance(loc.node, Mount) and loc.node.writable
        if mode & os.W_OK:
            if isinstance(loc.node, VFile) and loc.node.writable:
                pass
            elif not writable_place:
                raise SyscallError(errno.EROFS, "read-only")
        bits = st.mode & 0o777
        perm = bits >> 6 if st.uid == GUEST_UID else bits & 0o7
        for want, bit in ((os.R_OK, 4), (os.W_OK, 2), (os.X_OK, 1)):
            if mode & want and not perm & bit:
                raise SyscallError(errno.EACCES, "permission bits deny it")

    def readlink(self, start: Loc, path: bytes) -> bytes:
        paths.check(path)
        loc = self.resolve(start, path, follow=False)
        if isinstance(loc.node, VLink):
            return loc.node.target
        if not loc.hosted:
            raise SyscallError(errno.EINVAL, "not a symlink")
        try:
            loc, fd = self._opath(loc, follow=False)
        except _Elsewhere as e:
            if isinstance(e.loc.node, VLink):
                return e.loc.node.target
            raise SyscallError(errno.EINVAL, "not a symlink") from None
        try:
            if not S.S_ISLNK(os.fstat(fd).st_mode):
                raise SyscallError(errno.EINVAL, "not a symlink")
            return os.readlink(b"", dir_fd=fd)
        finally:
            os.close(fd)

    def chdir_to(self, loc: Loc) -> None:
        if loc.hosted:
            try:
                loc, fd = self._host_open(loc, os.O_PATH | os.O_DIRECTORY)
            except _Elsewhere as e:
                return self.chdir_to(e.loc)
            try:
                self.cwd = self.locate_fd(fd)
            finally:
                os.close(fd)
            return None
        if not isinstance(loc.node, VDir):
            raise SyscallError(errno.ENOTDIR, "not a directory")
        self.cwd = loc
        return None

    def chdir(self, start: Loc, path: bytes) -> None:
        paths.check(path)
        self.chdir_to(self.resolve(start, path, follow=True))

    def getcwd(self) -> bytes:
        cwd = self.cwd
        if cwd.hosted:
            # The directory may have been removed or renamed since.
            assert isinstance(cwd.node, Mount)
            try:
                fd = hostfs.openat2(cwd.node.root_fd, cwd.rel or b".", os.O_PATH | os.O_DIRECTORY)
            except OSError:
                raise SyscallError(errno.ENOENT, "working directory was removed") from None
            os.close(fd)
        return self.vpath(cwd)

    # --- directory listings ------------------------------------------------
    def _list(self, loc: Loc, host_fd: int | None) -> list[tuple[bytes, int, int]]:
        node = loc.node
        parent = node.parent or self.root
        if isinstance(node, VDir):
            entries = [(b".", node.ino, DT_DIR), (b"..", parent.ino, DT_DIR)]
            for name, child in node.children.items():
                if isinstance(child, (VDir, Mount)):
                    dt = DT_DIR
                elif isinstance(child, VLink):
                    dt = DT_LNK
                elif isinstance(child, VFile) and child.host_path is not None:
                    dt = dtype_of_mode(os.stat(child.host_path).st_mode)
                else:
                    dt = DT_REG
                entries.append((name, child.ino, dt))
            return entries
        if host_fd is None:
            raise SyscallError(errno.ENOTDIR, "not a directory")
        st = os.fstat(host_fd)
        dot = self.ids.ino(st.st_dev, st.st_ino)
        up = parent.ino if loc.rel == b"" else dot
        entries = [(b".", dot, DT_DIR), (b"..", up, DT_DIR)]
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=host_fd)
        try:
            with os.scandir(fd) as it:
                for e in it:
                    try:
                        dt = dtype_of_mode(e.stat(follow_symlinks=False).st_mode)
                    except OSError:
                        continue
                    entries.append((os.fsencode(e.name), self.ids.ino(st.st_dev, e.inode()), dt))
        finally:
            os.close(fd)
        return entries

    def getdents(self, host_fd: int, count: int) -> tuple[bytes, int]:
        """The next directory records for a guest's getdents64, and the offset
        to set once they are delivered (see ``seek_dir``).

        The descriptor's file offset is the index of the next entry: state
        lives with the guest's descriptor, as it does in the kernel.
        """
        from .stat import dirent

        st = os.fstat(host_fd)
        if not S.S_ISDIR(st.st_mode):
            raise SyscallError(errno.ENOTDIR, "not a directory")
        loc = self.locate_fd(host_fd)
        pos = os.lseek(host_fd, 0, os.SEEK_CUR)
        key = (st.st_dev, st.st_ino)
        listing = self._listings.get(key)
        if pos == 0 or listing is None:
            listing = _Listing(self._list(loc, None if isinstance(loc.node, VDir) else host_fd))
            self._listings[key] = listing
        out = bytearray()
        i = pos
        while i < len(listing.entries):
            name, ino, dt = listing.entries[i]
            rec = dirent(ino, i + 1, dt, name)
            if len(out) + len(rec) > count:
                if not out:
                    raise SyscallError(errno.EINVAL, "buffer too small")
                break
            out += rec
            i += 1
        return bytes(out), i

    @staticmethod
    def seek_dir(host_fd: int, pos: int) -> None:
        os.lseek(host_fd, pos, os.SEEK_SET)

    # --- changes (writable mounts only) ---------------------------------------
    def _parent_and_name(self, start: Loc, path: bytes) -> tuple[Mount, int, bytes]:
        """An O_PATH descriptor of the parent directory inside a writable mount,
        and the final name.  Raises EROFS outside writable mounts."""
        paths.check(path)
        stripped = path.rstrip(b"/") or b"/"
        parent, _, name = stripped.rpartition(b"/")
        if not parent and stripped.startswith(b"/"):
            parent = b"/"
        if not paths.is_single_name(name):
            raise SyscallError(
                errno.EINVAL if name == b"." else errno.ENOTEMPTY if name == b".." else errno.EBUSY,
                "cannot change this entry",
            )
        loc = self.resolve(start, parent or b".", follow=True)
        if not loc.hosted:
            if isinstance(loc.node, VDir):
                if name in loc.node.children:
                    raise SyscallError(errno.EROFS, "read-only directory")
                raise SyscallError(errno.EROFS, "read-only directory")
            raise SyscallError(errno.ENOTDIR, "not a directory")
        try:
            loc, fd = self._host_open(loc, os.O_PATH | os.O_DIRECTORY)
        except _Elsewhere as e:
            if isinstance(e.loc.node, VDir):
                raise SyscallError(errno.EROFS, "read-only directory") from None
            raise SyscallError(errno.ENOTDIR, "not a directory") from None
        mount = loc.node
        assert isinstance(mount, Mount)
        if not mount.writable:
            os.close(fd)
            raise SyscallError(errno.EROFS, "read-only mount")
        return mount, fd, name

    def _change(self, start: Loc, path: bytes, op: str, *args: int) -> None:
        _m, dfd, name = self._parent_and_name(start, path)
        try:
            if op == "mkdir":
                os.mkdir(name, args[0] & 0o777 & ~self.umask, dir_fd=dfd)
            elif op == "unlink":
                os.unlink(name, dir_fd=dfd)
            elif op == "rmdir":
                os.rmdir(name, dir_fd=dfd)
            else:
                raise ValueError(op)
        except OSError as e:
            raise SyscallError(e.errno or errno.EIO, f"{op} failed") from None
        finally:
            os.close(dfd)

    def mkdir(self, start: Loc, path: bytes, mode: int) -> None:
        self._change(start, path, "mkdir", mode)

    def unlink(self, start: Loc, path: bytes) -> None:
        if path.endswith(b"/"):
            # unlink("dir/") is EISDIR or ENOTDIR on Linux; let stat decide.
            st = self.stat(start, path, follow=True)
            raise SyscallError(
                errno.EISDIR if S.S_ISDIR(st.mode) else errno.ENOTDIR, "trailing slash"
            )
        self._change(start, path, "unlink")

    def rmdir(self, start: Loc, path: bytes) -> None:
        self._change(start, path, "rmdir")

    def rename(
        self, old_start: Loc, old: bytes, new_start: Loc, new: bytes, flags: int = 0
    ) -> None:
        m1, d1, n1 = self._parent_and_name(old_start, old)
        try:
            m2, d2, n2 = self._parent_and_name(new_start, new)
        except BaseException:
            os.close(d1)
            raise
        try:
            if m1 is not m2:
                raise SyscallError(errno.EXDEV, "rename across mounts")
            if flags:
                raise SyscallError(errno.EINVAL, "rename flags are not supported")
            os.rename(n1, n2, src_dir_fd=d1, dst_dir_fd=d2)
        except OSError as e:
            raise SyscallError(e.errno or errno.EIO, "rename failed") from None
        finally:
            os.close(d1)
            os.close(d2)

    def _writable_hosted_fd(self, start: Loc, path: bytes, follow: bool) -> int:
        paths.check(path)
        loc = self.resolve(start, path, follow)
        if not loc.hosted:
            raise SyscallError(errno.EROFS, "read-only")
        try:
            loc, fd = self._opath(loc, follow)
        except _Elsewhere:
            raise SyscallError(errno.EROFS, "read-only") from None
        assert isinstance(loc.node, Mount)
        if not loc.node.writable:
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
            raise SyscallError(e.errno or errno.EIO, "truncate failed") from None
        finally:
            os.close(fd)
        try:
            os.ftruncate(wfd, length)
        except OSError as e:
            raise SyscallError(e.errno or errno.EIO, "truncate failed") from None
        finally:
            os.close(wfd)

    def chmod(self, start: Loc, path: bytes, mode: int, follow: bool = True) -> None:
        fd = self._writable_hosted_fd(start, path, follow)
        try:
            if S.S_ISLNK(os.fstat(fd).st_mode):
                raise SyscallError(errno.EOPNOTSUPP, "symlink modes cannot change")
            os.chmod(f"/proc/self/fd/{fd}", mode & 0o1777)  # never set-id bits
        except OSError as e:
            raise SyscallError(e.errno or errno.EIO, "chmod failed") from None
        finally:
            os.close(fd)

    def chmod_fd(self, host_fd: int, mode: int) -> None:
        loc = self.locate_fd(host_fd)
        if not (isinstance(loc.node, Mount) and loc.node.writable):
            raise SyscallError(errno.EROFS, "read-only")
        os.fchmod(host_fd, mode & 0o1777)

    def utimens(
        self,
        start: Loc | None,
        path: bytes | None,
        host_fd: int | None,
        times: tuple[int, int] | None,
        follow: bool,
    ) -> None:
        """Set (atime_ns, mtime_ns), or both to now when ``times`` is None."""
        if path is None:
            if host_fd is None:
                raise SyscallError(errno.EBADF, "no file")
            loc = self.locate_fd(host_fd)
            if not (isinstance(loc.node, Mount) and loc.node.writable):
                raise SyscallError(errno.EROFS, "read-only")
            target: int = host_fd
            close = False
        else:
            assert start is not None
            target = self._writable_hosted_fd(start, path, follow)
            close = True
        try:
            if S.S_ISLNK(os.fstat(target).st_mode):
                return  # like Linux with AT_SYMLINK_NOFOLLOW on most filesystems: a no-op here
            os.utime(f"/proc/self/fd/{target}", ns=times) if times else os.utime(
                f"/proc/self/fd/{target}"
            )
        except OSError as e:
            raise SyscallError(e.errno or errno.EIO, "utime failed") from None
        finally:
            if close:
                os.close(target)

    def statfs_loc(self, loc: Loc) -> tuple[bool, os.statvfs_result | None]:
        if isinstance(loc.node, Mount):
            return not loc.node.writable, os.fstatvfs(loc.node.root_fd) if False else os.statvfs(
                f"/proc/self/fd/{loc.node.root_fd}"
            )
        return True, None

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


class _Elsewhere(Exception):
    """A mount-relative lookup led back into the skeleton."""

    def __init__(self, loc: Loc) -> None:
        super().__init__()
        self.loc = loc

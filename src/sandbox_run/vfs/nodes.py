"""The pieces a virtual filesystem is made of.

- Skeleton nodes: ``VDir`` (synthetic directory), ``VLink``, ``VFile`` (a host
  file the controller names, or fixed content), and ``Mount`` (a host
  directory; everything below it is looked up by the kernel, beneath it).
- ``SHARED``: host objects that stand for synthetic nodes in the guest's
  descriptor table.  A guest that opens a synthetic directory gets a
  descriptor to an empty host directory (a *placeholder*); one that opens
  synthetic content gets a read-only host file holding it.  They are shared by
  all sandboxes of the controller and are inert: every call that could use
  them is mediated.  The controller recognises them by inode.
- ``mirror_plan``: how to expose a host path at the same virtual path,
  symlinks included; computed once per path.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import NamedTuple

from . import hostfs


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
    """A file: a host file the controller names, or fixed content."""

    __slots__ = ("content", "host_path", "owned", "writable")

    def __init__(
        self,
        ino: int,
        *,
        host_path: str | None = None,
        content: bytes | None = None,
        writable: bool = False,
        owned: bool = False,
    ) -> None:
        super().__init__(ino)
        if (host_path is None) == (content is None):
            raise ValueError("a VFile has either a host path or content")
        self.host_path = host_path
        self.content = content
        self.writable = writable  # devices such as /dev/null, and writable file mounts
        self.owned = owned  # shown as the guest's own (a writable file mount)


class Mount(Node):
    """A directory tree the kernel resolves for us, beneath ``root_fd``.

    Either a host directory (``Mount.host``) or a directory on a detached
    mount the controller created (``Mount.on``: a private tmpfs, an overlay).
    ``mnt_id`` and ``link_root`` identify the objects below it: a descriptor
    belongs here when it lives on mount ``mnt_id`` and its /proc link starts
    with ``link_root`` (a host path, or a path from the detached mount's root).
    """

    __slots__ = (
        "detached",
        "guest_dev",
        "host_root",
        "label",
        "link_root",
        "mnt_id",
        "root_fd",
        "writable",
    )

    def __init__(
        self,
        ino: int,
        root_fd: int,
        *,
        writable: bool,
        link_root: bytes,
        detached: bool,
        label: str,
    ) -> None:
        super().__init__(ino)
        self.root_fd = root_fd
        self.writable = writable
        self.link_root = link_root.rstrip(b"/")
        self.detached = detached
        self.label = label  # for messages and the Result: never a host path
        #: the host directory behind the mount (b"" for a tmpfs): absolute
        #: symlinks that point into it are shown as pointing into the mount
        self.host_root = link_root if not detached else b""
        #: the device of objects the guest made here (a tmpfs, an overlay's
        #: upper layer); None where everything comes from the host
        self.guest_dev: int | None = None
        try:
            self.mnt_id = hostfs.mount_id(root_fd)
        except OSError:
            os.close(root_fd)
            raise

    @classmethod
    def host(cls, ino: int, host_dir: str, writable: bool, label: str = "") -> Mount:
        real = os.path.realpath(host_dir)
        fd = os.open(real, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return cls(
            ino, fd, writable=writable, link_root=os.fsencode(real), detached=False, label=label
        )

    @classmethod
    def on(
        cls,
        ino: int,
        fs_fd: int,
        subdir: bytes,
        writable: bool,
        label: str,
        host_root: str = "",
    ) -> Mount:
        """The directory ``subdir`` (b"" for the root) of the detached mount
        ``fs_fd``; ``host_root`` is the host directory an overlay shows."""
        fd = os.open(subdir or b".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fs_fd)
        m = cls(
            ino,
            fd,
            writable=writable,
            link_root=b"/" + subdir.strip(b"/") if subdir else b"",
            detached=True,
            label=label,
        )
        m.host_root = os.fsencode(host_root)
        return m

    def holds(self, link: bytes) -> bool:
        root = self.link_root
        return link.startswith(root + b"/") or link == root

    def rel(self, link: bytes) -> bytes:
        return link[len(self.link_root) :].lstrip(b"/")

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1


class Loc(NamedTuple):
    """A resolved location: a skeleton node, or a path below a mount's root."""

    node: Node
    rel: bytes = b""  # only for mounts; b"" is the mount root

    @property
    def hosted(self) -> bool:
        return isinstance(self.node, Mount)


class _SharedPool:
    """Controller-wide host objects standing for synthetic nodes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._root: str | None = None
        self._paths: dict[tuple[str, bytes, bytes], str] = {}
        self._vpaths: dict[tuple[int, int], bytes] = {}

    def _base(self) -> str:
        if self._root is None:
            self._root = tempfile.mkdtemp(prefix="sandbox-run-shared-")
            atexit.register(shutil.rmtree, self._root, True)
        return self._root

    def _get(self, kind: str, vpath: bytes, content: bytes) -> str:
        digest = hashlib.sha256(content).digest() if content else b""
        key = (kind, vpath, digest)
        path = self._paths.get(key)
        if path is not None:
            return path
        with self._lock:
            path = self._paths.get(key)
            if path is None:
                path = os.path.join(self._base(), f"{kind}{len(self._paths)}")
                if kind == "d":
                    os.mkdir(path, 0o555)
                else:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
                    try:
                        os.write(fd, content)
                    finally:
                        os.close(fd)
                st = os.stat(path)
                self._vpaths[(st.st_dev, st.st_ino)] = vpath
                self._paths[key] = path
        return path

    def placeholder(self, vpath: bytes) -> str:
        """An empty host directory standing for the synthetic directory ``vpath``."""
        return self._get("d", vpath, b"")

    def content(self, vpath: bytes, data: bytes) -> str:
        """A read-only host file holding ``data``, standing for ``vpath``."""
        return self._get("f", vpath, data)

    def vpath_of(self, st: os.stat_result) -> bytes | None:
        """The virtual path a shared object stands for, if ``st`` is one."""
        return self._vpaths.get((st.st_dev, st.st_ino))


SHARED = _SharedPool()


@dataclass(frozen=True, slots=True)
class PlanStep:
    """Create ``kind`` at ``vpath``: "dir", "link" (to ``target``), "file" or
    "mount" (of host path ``target``)."""

    kind: str
    vpath: bytes
    target: str | bytes = b""


MAX_MIRROR_LINKS = 40


@functools.lru_cache(maxsize=256)
def mirror_plan(host_path: str, as_dir: bool) -> tuple[PlanStep, ...]:
    """The steps exposing ``host_path`` at the same virtual path, read-only.

    Symlinks on the way (``/lib -> usr/lib``, ``libffi.so.8 ->
    libffi.so.8.1.2``) become virtual symlinks, so the guest's usual paths
    resolve as they do on the host.
    """
    steps: list[PlanStep] = []
    todo = [os.path.abspath(host_path)]
    hops = 0
    while todo:
        path = todo.pop()
        hops += 1
        if hops > MAX_MIRROR_LINKS:
            raise ValueError(f"too many symlinks under {host_path}")
        comps = [c for c in path.split("/") if c]
        for i in range(len(comps)):
            here = "/" + "/".join(comps[: i + 1])
            vhere = os.fsencode(here)
            if os.path.islink(here):
                target = os.readlink(here)
                steps.append(PlanStep("link", vhere, os.fsencode(target)))
                rest = "/".join(comps[i + 1 :])
                resolved = os.path.normpath(os.path.join(os.path.dirname(here), target))
                todo.append(os.path.join(resolved, rest) if rest else resolved)
                break
            if i == len(comps) - 1:
                steps.append(PlanStep("mount" if as_dir else "file", vhere, here))
                break
            steps.append(PlanStep("dir", vhere))
    return tuple(steps)

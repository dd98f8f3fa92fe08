"""What the guest's filesystem contains, assembled for one run.

    /usr/bin/pypy3 ...        the interpreter, its libraries and stdlib (read-only)
    /usr/lib/sandbox-run/     the guest bootstrap (read-only)
    /usr/lib/sandbox-run-prelude/NAME.py   the prelude, if the run has one (read-only)
    /etc/ld.so.cache          generated: lists only the libraries above
    /proc/self/exe, /proc/cpuinfo, /proc/meminfo, /sys/.../cpu/online   virtual
    /dev/null, zero, full, random, urandom
    /sandbox/                 private, writable: the script, and the working directory
    /tmp/                     private, writable
    user mounts               from the policy (see areas.py for the writable kinds)

With network access in the policy, also (docs/network.md):

    /etc/hosts, nsswitch.conf, resolv.conf, host.conf    generated (net/etc.py)
    /etc/services, /etc/protocols                         the host's, read-only
    /etc/ssl/certs, /usr/share/ca-certificates            the host's CA bundle, read-only
    /etc/ssl/openssl.cnf, /usr/lib/ssl/{certs,cert.pem,openssl.cnf}
                              cert.pem holds the policy's ca_file as well, if any

Nothing else exists.  The two private directories share one detached tmpfs
(the private area, with its quota), which disappears with the sandbox.
"""

from __future__ import annotations

import functools
import os
import stat as S
from dataclasses import dataclass

from ..errors import PolicyError
from ..net import etc
from ..net.allowlist import AllowList
from ..net.config import NetworkPolicy
from ..policy.schema import Mount as MountSpec
from ..policy.schema import Policy
from . import areas
from .nodes import Mount, mirror_plan
from .system import SystemImage
from .tree import Loc, Vfs

GUEST_PACKAGE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guest"
)
ENTRY_VPATH = "/usr/lib/sandbox-run/entry.py"
PRELUDE_VDIR = "/usr/lib/sandbox-run-prelude"
SANDBOX_DIR = b"/sandbox"
DEVICES = {"null": True, "zero": True, "full": True, "random": False, "urandom": False}


@dataclass(frozen=True, slots=True)
class Script:
    """A file placed in /sandbox before the guest starts."""

    name: str  # file name inside /sandbox
    content: bytes


def _cpuinfo(ncpu: int) -> bytes:
    # The GC sizes its nursery from the L2 cache size; give the host's figure
    # and nothing else about the CPU.
    cache = "1024 KB"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cache size"):
                    cache = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "".join(f"processor\t: {i}\ncache size\t: {cache}\n\n" for i in range(ncpu)).encode()


@functools.lru_cache(maxsize=4)
def _cpuinfo_cached(ncpu: int) -> bytes:
    return _cpuinfo(ncpu)


def build(
    vfs: Vfs,
    image: SystemImage,
    policy: Policy,
    scripts: tuple[Script, ...] = (),
    *,
    exe: str,
    bootstrap: bool,
    files: tuple[tuple[str, str], ...] = (),
) -> list[areas.Area]:
    """Populate ``vfs`` for one run and set its working directory to /sandbox.

    ``files`` are (virtual path, host path) pairs of read-only host files.
    Returns the writable areas (the caller closes them, after ``finish``).
    """
    for path in image.files:
        vfs.apply_plan(mirror_plan(path, False))
    for d in image.dirs:
        vfs.apply_plan(mirror_plan(d, True))
    vfs.add_file(b"/etc/ld.so.cache", content=image.ld_cache)
    vfs.add_symlink(b"/proc/self/exe", os.fsencode(exe))
    ncpu = len(os.sched_getaffinity(0))
    vfs.add_file(b"/proc/cpuinfo", content=_cpuinfo_cached(ncpu))
    kib = policy.memory // 1024
    vfs.add_file(
        b"/proc/meminfo",
        content=f"MemTotal:       {kib} kB\nMemFree:        {kib} kB\n"
        f"MemAvailable:   {kib} kB\n".encode(),
    )
    vfs.add_file(
        b"/sys/devices/system/cpu/online",
        content=(f"0-{ncpu - 1}\n" if ncpu > 1 else "0\n").encode(),
    )
    for name, writable in DEVICES.items():
        vfs.add_file(b"/dev/" + name.encode(), host_path=f"/dev/{name}", writable=writable)
    if bootstrap:
        vfs.add_mount(os.fsencode(os.path.dirname(ENTRY_VPATH)), GUEST_PACKAGE_DIR, writable=False)
    for file_vpath, host_path in files:  # read-only host files (the prelude)
        vfs.add_file(os.fsencode(file_vpath), host_path=host_path)
    made: list[areas.Area] = []
    try:
        private = areas.private_area(policy.private, "")
        made.append(private)
        for s in scripts:
            fd = os.open(
                f"sandbox/{s.name}",
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                0o644,
                dir_fd=private.fs_fd,
            )
            try:
                _write_all(fd, s.content, s.name)
            finally:
                os.close(fd)
        for sub in (b"sandbox", b"tmp"):
            vpath = b"/" + sub
            if private.fallback_dir:
                vfs.add_mount(
                    vpath, os.path.join(private.fallback_dir, sub.decode()), writable=True
                )
            else:
                mount = vfs.attach(vpath, Mount.on(0, private.fs_fd, sub, True, vpath.decode()))
                mount.guest_dev = private.guest_dev
        private.seal()
        if policy.network.enabled:
            _add_network_files(vfs, policy.network)
        for m in policy.mounts:
            area = _add_user_mount(vfs, m)
            if area is not None:
                made.append(area)
    except BaseException:
        for a in made:
            a.close()
        raise
    vfs.cwd = vfs.resolve(Loc(vfs.root), SANDBOX_DIR, follow=True)
    return made


def _write_all(fd: int, data: bytes, name: str) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as e:
            raise PolicyError(f"{name} does not fit in the private area: {e.strerror}") from None
        view = view[n:]


def _add_user_mount(vfs: Vfs, m: MountSpec) -> areas.Area | None:
    vpath = os.fsencode(m.guest)
    try:
        if m.mode == "ro":
            try:
                st = os.stat(m.host)
            except FileNotFoundError:
                raise PolicyError(f"mount {m.guest}: host path {m.host} does not exist") from None
            if S.S_ISDIR(st.st_mode):
                vfs.add_mount(vpath, m.host, writable=False)
            elif S.S_ISREG(st.st_mode):
                vfs.add_file(vpath, host_path=os.path.realpath(m.host))
            else:
                raise PolicyError(f"mount {m.guest}: {m.host} is neither a file nor a directory")
            return None
        area = areas.tmpfs_area(m) if m.mode == "tmpfs" else areas.host_area(m)
        try:
            if area.is_file:
                vfs.add_file(vpath, host_path=areas.file_copy_path(area), writable=True, owned=True)
            else:
                fs = area.overlay_fd if area.overlay_fd >= 0 else area.fs_fd
                mount = vfs.attach(vpath, Mount.on(0, fs, b"", True, m.guest, host_root=area.host))
                mount.guest_dev = area.guest_dev
        except BaseException:
            area.close()
            raise
        return area
    except ValueError as e:
        raise PolicyError(f"mount {m.guest}: {e}") from None


_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_HOST_ONLY = ("/etc/services", "/etc/protocols", "/etc/ssl/openssl.cnf")
_HOST_DIRS = ("/etc/ssl/certs", "/usr/share/ca-certificates")


def _add_network_files(vfs: Vfs, net: NetworkPolicy) -> None:
    vfs.add_file(b"/etc/hosts", content=etc.hosts_file(AllowList(net).static_hosts()))
    vfs.add_file(b"/etc/nsswitch.conf", content=etc.NSSWITCH_CONF)
    vfs.add_file(b"/etc/resolv.conf", content=etc.RESOLV_CONF)
    vfs.add_file(b"/etc/host.conf", content=etc.HOST_CONF)
    for path in _HOST_ONLY:
        if os.path.isfile(path):
            vfs.add_file(os.fsencode(path), host_path=path)
    for d in _HOST_DIRS:
        if os.path.isdir(d):
            vfs.add_mount(os.fsencode(d), d, writable=False)
    vfs.add_symlink(b"/usr/lib/ssl/certs", b"/etc/ssl/certs")
    vfs.add_symlink(b"/usr/lib/ssl/openssl.cnf", b"/etc/ssl/openssl.cnf")
    if net.ca_file is None:
        vfs.add_symlink(b"/usr/lib/ssl/cert.pem", _CA_BUNDLE.encode())
    else:
        vfs.add_file(b"/usr/lib/ssl/cert.pem", content=_bundle_with(net.ca_file))


def _bundle_with(ca_file: str) -> bytes:
    """The system CA bundle followed by the policy's own CA certificates."""

    def stamp(p: str) -> tuple[int, int]:
        try:
            st = os.stat(p)
        except OSError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_size)

    return _bundle_cached(ca_file, stamp(ca_file), stamp(_CA_BUNDLE))


@functools.lru_cache(maxsize=8)
def _bundle_cached(ca_file: str, _ca: tuple[int, int], _sys: tuple[int, int]) -> bytes:
    parts = []
    for p in (_CA_BUNDLE, ca_file):
        try:
            with open(p, "rb") as f:
                parts.append(f.read(16 << 20))
        except FileNotFoundError:
            if p == ca_file:
                raise PolicyError(f"network.ca_file: {ca_file} does not exist") from None
    return b"\n".join(part.rstrip(b"\n") for part in parts) + b"\n"

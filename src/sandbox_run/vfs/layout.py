"""What the guest's filesystem contains, assembled for one run.

    /usr/bin/pypy3 ...        the interpreter, its libraries and stdlib (read-only)
    /usr/lib/sandbox-run/     the guest bootstrap (read-only)
    /etc/ld.so.cache          generated: lists only the libraries above
    /proc/self/exe, /proc/cpuinfo, /proc/meminfo, /sys/.../cpu/online   virtual
    /dev/null, zero, full, random, urandom
    /sandbox/                 private, writable: the script, and the working directory
    /tmp/                     private, writable
    user mounts               from the policy

With network access in the policy, also (docs/network.md):

    /etc/hosts, nsswitch.conf, resolv.conf, host.conf    generated (net/etc.py)
    /etc/services, /etc/protocols                         the host's, read-only
    /etc/ssl/certs, /usr/share/ca-certificates            the host's CA bundle, read-only
    /etc/ssl/openssl.cnf, /usr/lib/ssl/{certs,cert.pem,openssl.cnf}
                              cert.pem holds the policy's ca_file as well, if any

Nothing else exists.  The two private directories live in a host temporary
directory that is removed with the sandbox.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ..errors import PolicyError
from ..net import etc
from ..net.allowlist import AllowList
from ..net.config import NetworkPolicy
from ..policy.schema import Mount, Policy
from .nodes import mirror_plan
from .system import SystemImage
from .tree import Loc, Vfs

GUEST_PACKAGE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guest"
)
BOOTSTRAP_VPATH = "/usr/lib/sandbox-run/bootstrap.py"
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
    private_root: str,
    image: SystemImage,
    policy: Policy,
    scripts: tuple[Script, ...] = (),
    *,
    exe: str,
    bootstrap: bool,
) -> None:
    """Populate ``vfs`` for one run and set its working directory to /sandbox."""
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
        vfs.add_mount(
            os.fsencode(os.path.dirname(BOOTSTRAP_VPATH)), GUEST_PACKAGE_DIR, writable=False
        )
    sandbox = os.path.join(private_root, "sandbox")
    tmp = os.path.join(private_root, "tmp")
    os.mkdir(sandbox, 0o700)
    os.mkdir(tmp, 0o700)
    for s in scripts:
        with open(os.path.join(sandbox, s.name), "xb") as f:
            f.write(s.content)
    vfs.add_mount(SANDBOX_DIR, sandbox, writable=True)
    vfs.add_mount(b"/tmp", tmp, writable=True)
    if policy.network.enabled:
        _add_network_files(vfs, policy.network)
    for m in policy.mounts:
        _add_user_mount(vfs, m)
    vfs.cwd = vfs.resolve(Loc(vfs.root), SANDBOX_DIR, follow=True)


def _add_user_mount(vfs: Vfs, m: Mount) -> None:
    if not os.path.isdir(m.host):
        raise PolicyError(f"mount {m.guest}: host directory {m.host} does not exist")
    try:
        vfs.add_mount(os.fsencode(m.guest), m.host, writable=m.writable)
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

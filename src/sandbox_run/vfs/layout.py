"""What the guest's filesystem contains, assembled for one run.

    /usr/bin/pypy3 ...        the interpreter, its libraries and stdlib (read-only)
    /usr/lib/sandbox-run/     the guest bootstrap (read-only)
    /usr/lib/sandbox-run-prelude/NAME.py   the prelude, if the run has one (read-only)
    /etc/ld.so.cache          generated: lists only the libraries above
    /proc/self/exe, /proc/cpuinfo, /proc/meminfo, /sys/.../cpu/online   virtual
    /dev/null, zero, full, random, urandom
    /sandbox/                 private, writable: the script, and the working directory
    /tmp/                     private, writable
    user mounts               from the policy

Nothing else exists.  The two private directories live in a host temporary
directory that is removed with the sandbox.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ..errors import PolicyError
from ..policy.schema import Mount, Policy
from .nodes import mirror_plan
from .system import SystemImage
from .tree import Loc, Vfs

GUEST_PACKAGE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guest"
)
BOOTSTRAP_VPATH = "/usr/lib/sandbox-run/bootstrap.py"
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
    private_root: str,
    image: SystemImage,
    policy: Policy,
    scripts: tuple[Script, ...] = (),
    *,
    exe: str,
    bootstrap: bool,
    files: tuple[tuple[str, str], ...] = (),
) -> None:
    """Populate ``vfs`` for one run and set its working directory to /sandbox.

    ``files`` are (virtual path, host path) pairs of read-only host files.
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
        vfs.add_mount(
            os.fsencode(os.path.dirname(BOOTSTRAP_VPATH)), GUEST_PACKAGE_DIR, writable=False
        )
    for vpath, host_path in files:  # read-only host files (the prelude)
        vfs.add_file(os.fsencode(vpath), host_path=host_path)
    sandbox = os.path.join(private_root, "sandbox")
    tmp = os.path.join(private_root, "tmp")
    os.mkdir(sandbox, 0o700)
    os.mkdir(tmp, 0o700)
    for s in scripts:
        with open(os.path.join(sandbox, s.name), "xb") as f:
            f.write(s.content)
    vfs.add_mount(SANDBOX_DIR, sandbox, writable=True)
    vfs.add_mount(b"/tmp", tmp, writable=True)
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

"""Find the host files a guest program needs: its binary, libraries, data.

The result, a ``SystemImage``, lists host paths to expose read-only at their
usual places, plus the synthetic ``/etc/ld.so.cache`` that points the guest's
dynamic loader straight at them.  Computed once per program and cached.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from . import elf

_DEFAULT_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64")
_HOST_LD_CACHE = "/etc/ld.so.cache"
# Locale data for LC_ALL=C.UTF-8 (the guest's only locale).
_LOCALE_DIRS = ("/usr/lib/locale/C.utf8",)


@dataclass(frozen=True, slots=True)
class SystemImage:
    program: str  # host path of the executable (as named, before symlinks)
    files: tuple[str, ...]  # host paths of single files to expose
    dirs: tuple[str, ...]  # host directories to expose whole
    ld_cache: bytes  # contents of the guest's /etc/ld.so.cache


def _read(path: str, limit: int = 1 << 28) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


@functools.lru_cache(maxsize=1)
def _host_cache() -> dict[str, str]:
    try:
        pairs = elf.read_ld_cache(_read(_HOST_LD_CACHE))
    except (OSError, elf.ElfError):
        return {}
    out: dict[str, str] = {}
    for soname, path in pairs:
        out.setdefault(soname, path)
    return out


def _find_library(soname: str, runpath: tuple[str, ...], origin: str) -> str | None:
    if "/" in soname:
        return soname if os.path.isfile(soname) else None
    for d in runpath:
        d = d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
        p = os.path.join(d, soname)
        if os.path.isfile(p):
            return p
    cached = _host_cache().get(soname)
    if cached and os.path.isfile(cached):
        return cached
    for d in _DEFAULT_LIB_DIRS:
        p = os.path.join(d, soname)
        if os.path.isfile(p):
            return p
    return None


def library_closure(roots: list[str]) -> dict[str, str]:
    """soname -> host path for every library the ELF files ``roots`` load."""
    found: dict[str, str] = {}
    todo = list(roots)
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        try:
            with elf.opened(real) as data:
                info = elf.dynamic_info(data)
        except (OSError, elf.ElfError):
            continue
        origin = os.path.dirname(path)
        for soname in info.needed:
            if soname in found:
                continue
            lib = _find_library(soname, info.runpath, origin)
            if lib is not None:
                found[soname] = lib
                todo.append(lib)
    return found


@functools.lru_cache(maxsize=16)
def image_for(
    program: str, data_dirs: tuple[str, ...] = (), *, expose_program: bool = False
) -> SystemImage:
    """What ``program`` needs to run: its libraries and ``data_dirs`` (and, with
    ``expose_program``, itself at its host path).

    Shared objects inside ``data_dirs`` (an interpreter's extension modules)
    add their libraries too.
    """
    roots = [program]
    for d in data_dirs:
        for top, _dirs, names in os.walk(d):
            roots += sorted(os.path.join(top, n) for n in names if n.endswith(".so"))
    libs = library_closure(roots)
    files = [program] if expose_program else []
    try:
        with elf.opened(os.path.realpath(program)) as data:
            interp = elf.interpreter(data)
    except (OSError, elf.ElfError):
        interp = None
    if interp:
        files.append(interp)
    files += sorted(libs.values())
    dirs = [*data_dirs, *(d for d in _LOCALE_DIRS if os.path.isdir(d))]
    cache = elf.build_ld_cache(sorted(libs.items()))
    return SystemImage(program, tuple(dict.fromkeys(files)), tuple(dirs), cache)


def pypy_image(executable: str) -> SystemImage:
    """The image of a PyPy interpreter: binary, libraries and standard library."""
    real = os.path.realpath(executable)
    prefix = os.path.dirname(os.path.dirname(real))
    name = os.path.basename(real)  # e.g. pypy3.9
    stdlib = os.path.join(prefix, "lib", name)
    if not os.path.isdir(stdlib):
        raise FileNotFoundError(f"no standard library for {executable} at {stdlib}")
    return image_for(executable, (stdlib,), expose_program=True)

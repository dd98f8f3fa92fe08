"""Read the dynamic-linking facts of ELF files, and write a loader cache.

Parsing of bytes, from memory or read on demand from a file.  Used to find
the shared libraries a guest program needs (so exactly those become
visible), and to give the guest a small ``/etc/ld.so.cache`` listing only
them, which spares the dynamic loader dozens of failing path probes per
library.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import overload

_PT_LOAD = 1
_PT_DYNAMIC = 2
_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_RPATH = 15
_DT_RUNPATH = 29
_EM_X86_64 = 62


class ElfError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DynamicInfo:
    needed: tuple[str, ...]
    runpath: tuple[str, ...]


class FileView:
    """A file's bytes, read on demand with ``pread``: the parsers below touch
    a few small regions, and the dynamic section of a large library
    (libpypy: 40 MB) sits near its end, so reading a prefix would read
    nearly all of it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, key: int) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> bytes: ...
    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, int):
            data = os.pread(self.fd, 1, key) if 0 <= key < self.size else b""
            if not data:
                raise IndexError(key)
            return data[0]
        begin, stop, step = key.indices(self.size)
        if step != 1:
            raise ValueError("only contiguous slices")
        return os.pread(self.fd, max(0, stop - begin), begin) if stop > begin else b""

    def find(self, sub: bytes, start: int) -> int:
        """First ``sub`` (one byte) at or after ``start``, or -1."""
        pos = start
        while pos < self.size:
            chunk = self[pos : pos + 256]
            i = chunk.find(sub)
            if i >= 0:
                return pos + i
            pos += len(chunk)
        return -1


#: What the parsers read: a whole file in memory, or a FileView.
Data = bytes | FileView


@contextmanager
def opened(path: str) -> Iterator[FileView]:
    """A FileView of ``path`` for the parsers, closed afterwards."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield FileView(fd)
    finally:
        os.close(fd)


def _unpack(fmt: str, data: Data, offset: int) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    chunk = data[offset : offset + size]
    if len(chunk) != size:
        raise ElfError("truncated file")
    return struct.unpack(fmt, chunk)


def is_elf(data: Data) -> bool:
    return data[:4] == b"\x7fELF"


def _program_headers(data: Data) -> list[tuple[int, int, int, int]]:
    """(type, offset, vaddr, filesz) of each program header."""
    (phoff,) = _unpack("<Q", data, 32)
    phentsize, phnum = _unpack("<HH", data, 54)
    if phentsize < 56 and phnum:
        raise ElfError("bad program header size")
    table = data[phoff : phoff + phentsize * phnum]
    if len(table) != phentsize * phnum:
        raise ElfError("truncated program headers")
    out = []
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", table, i * phentsize
        )
        out.append((p_type, p_offset, p_vaddr, p_filesz))
    return out


def dynamic_info(data: Data) -> DynamicInfo:
    """DT_NEEDED and DT_RUNPATH/DT_RPATH of a 64-bit little-endian x86-64 ELF file."""
    if not is_elf(data) or len(data) < 64:
        raise ElfError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError("only 64-bit little-endian ELF files are supported")
    (machine,) = _unpack("<H", data, 18)
    if machine != _EM_X86_64:
        raise ElfError("not an x86-64 ELF file")
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dyn: tuple[int, int] | None = None
    for p_type, p_offset, p_vaddr, p_filesz in _program_headers(data):
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dyn = (p_offset, p_filesz)
    if dyn is None:
        return DynamicInfo((), ())  # statically linked

    def file_offset(vaddr: int) -> int:
        for v, o, sz in loads:
            if v <= vaddr < v + sz:
                return vaddr - v + o
        raise ElfError(f"address {vaddr:#x} is not in a loaded segment")

    entries: list[tuple[int, int]] = []
    start, size = dyn
    section = data[start : start + min(size, 1 << 20)]
    for off in range(0, len(section) - 15, 16):
        tag, val = struct.unpack_from("<qQ", section, off)
        if tag == 0:
            break
        entries.append((tag, val))
    strtab = next((v for t, v in entries if t == _DT_STRTAB), None)
    if strtab is None:
        raise ElfError("dynamic section without a string table")
    base = file_offset(strtab)

    def string(offset: int) -> str:
        end = data.find(b"\0", base + offset)
        if end < 0:
            raise ElfError("unterminated string in the dynamic string table")
        return data[base + offset : end].decode("utf-8", "surrogateescape")

    needed = tuple(string(v) for t, v in entries if t == _DT_NEEDED)
    runpath: list[str] = []
    for t, v in entries:
        if t in (_DT_RUNPATH, _DT_RPATH):
            runpath.extend(p for p in string(v).split(":") if p)
    return DynamicInfo(needed, tuple(runpath))


def interpreter(data: Data) -> str | None:
    """The PT_INTERP path (the dynamic loader), if any."""
    if not is_elf(data) or len(data) < 64:
        return None
    for p_type, p_offset, _vaddr, p_filesz in _program_headers(data):
        if p_type == 3:  # PT_INTERP
            return (
                data[p_offset : p_offset + min(p_filesz, 4096)]
                .rstrip(b"\0")
                .decode("utf-8", "surrogateescape")
            )
    return None


# --- /etc/ld.so.cache ("glibc-ld.so.cache1.1" format) ----------------------
_CACHE_MAGIC = b"glibc-ld.so.cache1.1"
_CACHE_HEADER = struct.Struct("<20sIIB3xI12x")  # magic, nlibs, len_strings, flags, ext offset
_CACHE_ENTRY = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap
_FLAG_ELF_X8664 = 0x0303  # FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
_FLAGS_LITTLE_ENDIAN = 2


def libcmp(a: bytes, b: bytes) -> int:
    """glibc's ``_dl_cache_libcmp``: runs of digits compare as numbers."""
    i = j = 0
    while i < len(a):
        ca = a[i]
        cb = b[j] if j < len(b) else 0
        if 48 <= ca <= 57:
            if 48 <= cb <= 57:
                va = vb = 0
                while i < len(a) and 48 <= a[i] <= 57:
                    va = va * 10 + a[i] - 48
                    i += 1
                while j < len(b) and 48 <= b[j] <= 57:
                    vb = vb * 10 + b[j] - 48
                    j += 1
                if va != vb:
                    return va - vb
                continue
            return 1
        if 48 <= cb <= 57:
            return -1
        if ca != cb:
            return ca - cb
        i += 1
        j += 1
    return 0 - (b[j] if j < len(b) else 0)


def build_ld_cache(libs: Iterable[tuple[str, str]]) -> bytes:
    """An ld.so.cache mapping each soname to its path.

    The loader binary-searches the entries, which must therefore be sorted in
    *descending* ``libcmp`` order.
    """
    import functools

    def descending(x: tuple[bytes, bytes], y: tuple[bytes, bytes]) -> int:
        return libcmp(y[0], x[0])

    items = sorted(
        {(k.encode(), v.encode()) for k, v in libs}, key=functools.cmp_to_key(descending)
    )
    strings_start = _CACHE_HEADER.size + _CACHE_ENTRY.size * len(items)
    strings = bytearray()
    entries = []
    for key, value in items:
        k_off = strings_start + len(strings)
        strings += key + b"\0"
        v_off = strings_start + len(strings)
        strings += value + b"\0"
        entries.append(_CACHE_ENTRY.pack(_FLAG_ELF_X8664, k_off, v_off, 0, 0))
    header = _CACHE_HEADER.pack(_CACHE_MAGIC, len(items), len(strings), _FLAGS_LITTLE_ENDIAN, 0)
    return header + b"".join(entries) + bytes(strings)


def read_ld_cache(data: bytes) -> list[tuple[str, str]]:
    """(soname, path) pairs of an ld.so.cache in the new format, in file order."""
    if not data.startswith(_CACHE_MAGIC) or len(data) < _CACHE_HEADER.size:
        raise ElfError("not a glibc-ld.so.cache1.1 file")
    _magic, nlibs, _len, _flags, _ext = _CACHE_HEADER.unpack_from(data, 0)
    out = []
    for i in range(nlibs):
        off = _CACHE_HEADER.size + i * _CACHE_ENTRY.size
        if off + _CACHE_ENTRY.size > len(data):
            raise ElfError("truncated cache")
        _fl, k, v, _os, _hw = _CACHE_ENTRY.unpack_from(data, off)
        key = data[k : data.index(b"\0", k)].decode()
        val = data[v : data.index(b"\0", v)].decode()
        out.append((key, val))
    return out

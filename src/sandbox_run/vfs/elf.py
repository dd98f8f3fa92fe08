"""Read the dynamic-linking facts of ELF files, and write a loader cache.

Pure parsing of bytes.  Used to find the shared libraries a guest program
needs (so exactly those become visible), and to give the guest a small
``/etc/ld.so.cache`` listing only them, which spares the dynamic loader dozens
of failing path probes per library.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

_PT_LOAD = 1
_PT_DYNAMIC = 2
_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_STRSZ = 10
_DT_RPATH = 15
_DT_RUNPATH = 29
_EM_X86_64 = 62


class ElfError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DynamicInfo:
    needed: tuple[str, ...]
    runpath: tuple[str, ...]


def is_elf(data: bytes) -> bool:
    return data[:4] == b"\x7fELF"


def read_headers(path: str, limit: int = 64 << 20) -> bytes:
    """The prefix of an ELF file that ``dynamic_info`` and ``interpreter`` need:
    program headers, the dynamic section and the dynamic string table (which
    normally sit near the start), instead of the whole file."""
    with open(path, "rb") as f:
        head = f.read(4096)
        if not is_elf(head) or len(head) < 64:
            return head
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        need = phoff + phentsize * phnum
        if need > len(head):
            f.seek(0)
            head = f.read(min(need, limit))
        loads: list[tuple[int, int, int]] = []
        dyn: tuple[int, int] | None = None
        for i in range(phnum):
            off = phoff + i * phentsize
            if off + 56 > len(head):
                break
            p_type, _fl, p_offset, p_vaddr, _p, p_filesz = struct.unpack_from("<IIQQQQ", head, off)
            if p_type == _PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == _PT_DYNAMIC:
                dyn = (p_offset, p_filesz)
            if p_type in (_PT_DYNAMIC, 3):  # PT_INTERP
                need = max(need, p_offset + p_filesz)
        f.seek(0)
        data = f.read(min(need, limit))
        if dyn is None:
            return data
        strtab = strsz = 0
        for off in range(dyn[0], min(dyn[0] + dyn[1], len(data) - 15), 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == 0:
                break
            if tag == _DT_STRTAB:
                strtab = val
            elif tag == _DT_STRSZ:
                strsz = val
        for v, o, sz in loads:
            if v <= strtab < v + sz:
                end = strtab - v + o + strsz
                if end > len(data):
                    f.seek(0)
                    data = f.read(min(end, limit))
                break
        return data


def dynamic_info(data: bytes) -> DynamicInfo:
    """DT_NEEDED and DT_RUNPATH/DT_RPATH of a 64-bit little-endian x86-64 ELF file."""
    if not is_elf(data) or len(data) < 64:
        raise ElfError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError("only 64-bit little-endian ELF files are supported")
    (machine,) = struct.unpack_from("<H", data, 18)
    if machine != _EM_X86_64:
        raise ElfError("not an x86-64 ELF file")
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dyn: tuple[int, int] | None = None
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 56 > len(data):
            raise ElfError("truncated program headers")
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, off
        )
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
    for off in range(start, min(start + size, len(data) - 15), 16):
        tag, val = struct.unpack_from("<qQ", data, off)
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


def interpreter(data: bytes) -> str | None:
    """The PT_INTERP path (the dynamic loader), if any."""
    if not is_elf(data):
        return None
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type, _f, p_offset, _v, _p, p_filesz = struct.unpack_from("<IIQQQQ", data, off)
        if p_type == 3:  # PT_INTERP
            return data[p_offset : p_offset + p_filesz].rstrip(b"\0").decode()
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

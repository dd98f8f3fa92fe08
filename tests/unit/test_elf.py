"""ELF dynamic sections and the generated loader cache."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_run.vfs import elf, system

PYPY = "/usr/bin/pypy3"


def test_libcmp_orders_like_the_host_cache() -> None:
    pairs = elf.read_ld_cache(pathlib.Path("/etc/ld.so.cache").read_bytes())
    keys = [k.encode() for k, _ in pairs]
    assert len(keys) > 10
    for a, b in itertools.pairwise(keys):
        assert elf.libcmp(a, b) >= 0, (a, b)


def test_libcmp_compares_digit_runs_as_numbers() -> None:
    assert elf.libcmp(b"libz.so.10", b"libz.so.9") > 0
    assert elf.libcmp(b"libz.so.1", b"libz.so.1") == 0
    assert elf.libcmp(b"liba.so", b"libb.so") < 0


names = st.text(alphabet="abcxyz0123456789._-", min_size=1, max_size=20).map(lambda s: "lib" + s)


@given(st.dictionaries(names, st.text(alphabet="/abc0123", min_size=1, max_size=30), max_size=30))
def test_cache_round_trip_and_order(libs: dict[str, str]) -> None:
    data = elf.build_ld_cache(libs.items())
    back = elf.read_ld_cache(data)
    assert dict(back) == libs
    keys = [k.encode() for k, _ in back]
    assert keys == sorted(keys, key=functools.cmp_to_key(lambda a, b: elf.libcmp(b, a)))


def test_pypy_dynamic_info() -> None:
    real = os.path.realpath(PYPY)
    info = elf.dynamic_info(pathlib.Path(real).read_bytes())
    assert "libc.so.6" in info.needed
    assert elf.interpreter(pathlib.Path(real).read_bytes()) == "/lib64/ld-linux-x86-64.so.2"


def test_pypy_image_includes_its_libraries_and_stdlib() -> None:
    image = system.pypy_image(PYPY)
    names = {os.path.basename(f) for f in image.files}
    assert {"libc.so.6", "libpypy3.9-c.so", "libffi.so.8", "libssl.so.3"} <= names
    assert any(d.endswith("/lib/pypy3.9") for d in image.dirs)
    cached = dict(elf.read_ld_cache(image.ld_cache))
    assert cached["libc.so.6"].endswith("/libc.so.6")


@pytest.mark.parametrize("data", [b"", b"\x7fELF", b"not an elf file at all" * 10])
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(elf.ElfError):
        elf.dynamic_info(data)


def test_reading_on_demand_gives_what_reading_the_whole_file_gives() -> None:
    image = system.pypy_image(PYPY)
    checked = 0
    for path in (os.path.realpath(PYPY), *image.files):
        whole = pathlib.Path(path).read_bytes()
        if not elf.is_elf(whole):
            continue
        with elf.opened(path) as view:
            assert len(view) == len(whole)
            assert view[:64] == whole[:64] and view[4] == whole[4]
            assert elf.dynamic_info(view) == elf.dynamic_info(whole), path
            assert elf.interpreter(view) == elf.interpreter(whole), path
        checked += 1
    assert checked >= 10


def test_truncated_file_read_on_demand_is_an_elf_error(tmp_path: pathlib.Path) -> None:
    whole = pathlib.Path(os.path.realpath(PYPY)).read_bytes()
    cut = tmp_path / "cut"
    cut.write_bytes(whole[:80])  # the header, but not the program headers
    with elf.opened(str(cut)) as view, pytest.raises(elf.ElfError):
        elf.dynamic_info(view)


_PYPY_HEAD = pathlib.Path(os.path.realpath(PYPY)).read_bytes()[:4096]


@given(st.integers(0, 4095), st.binary(min_size=1, max_size=16))
def test_corrupted_headers_give_elf_errors_only(offset: int, patch: bytes) -> None:
    # A damaged file is skipped by the library search: the parsers may only
    # answer or raise ElfError, never crash with another exception.
    data = _PYPY_HEAD[:offset] + patch + _PYPY_HEAD[offset + len(patch) :]
    with contextlib.suppress(elf.ElfError):
        elf.dynamic_info(data)
    with contextlib.suppress(elf.ElfError):
        elf.interpreter(data)

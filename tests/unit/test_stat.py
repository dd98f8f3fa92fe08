"""Packing of kernel structures the controller writes into the guest."""

from __future__ import annotations

import os

from sandbox_run.vfs import stat as vstat


def test_struct_sizes_match_x86_64() -> None:
    st = vstat.synthetic_stat(1, 2, 0o100644, 10)
    assert len(st.pack()) == 144
    assert len(st.pack_statx()) == vstat.STATX_SIZE == 256
    assert (
        len(
            vstat.pack_statfs(
                fs_type=1, bsize=4096, blocks=1, bfree=1, files=1, ffree=1, read_only=True
            )
        )
        == 120
    )


def test_dirent_records_are_aligned_and_terminated() -> None:
    for name in (b"a", b"abcdefg", b"x" * 255):
        rec = vstat.dirent(7, 3, vstat.DT_REG, name)
        assert len(rec) % 8 == 0
        assert int.from_bytes(rec[16:18], "little") == len(rec)
        assert rec[19 : 19 + len(name)] == name and rec[19 + len(name)] == 0


def test_identities_hide_host_numbers() -> None:
    devs = vstat.Devices()
    st = os.stat("/usr/bin")
    v = devs.translate(st, "k", 1000, 1000)
    assert v.ino != st.st_ino and v.ino == vstat.host_ino(st.st_dev, st.st_ino)
    assert v.ino >= 2**32  # never collides with synthetic nodes
    assert v.dev != st.st_dev and v.uid == 1000
    assert vstat.Devices().translate(st, "other", 0, 0).ino == v.ino  # stable across sandboxes
    assert vstat.host_ino(st.st_dev, st.st_ino + 1) != v.ino

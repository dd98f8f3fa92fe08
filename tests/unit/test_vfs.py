"""Virtual filesystem resolution and confinement, on real host directories.

No guest process: these drive the VFS directly, as handlers do.
"""

from __future__ import annotations

import errno
import os
import pathlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_run.errors import SyscallError
from sandbox_run.vfs import hostfs, paths
from sandbox_run.vfs.nodes import SHARED
from sandbox_run.vfs.tree import OUTSIDE, Loc, Mount, VDir, Vfs


@pytest.fixture
def world(tmp_path: pathlib.Path) -> Iterator[tuple[Vfs, pathlib.Path]]:
    """A VFS with a skeleton file and a writable mount full of hostile links."""
    (tmp_path / "meta").mkdir()
    data = tmp_path / "data"
    (data / "dir" / "sub").mkdir(parents=True)
    (data / "file.txt").write_text("inside")
    (data / "dir" / "f").write_text("nested")
    outside = tmp_path / "outside.txt"
    outside.write_text("HOST-SECRET")
    os.symlink("/etc/passwd", data / "abs_host")
    os.symlink("../outside.txt", data / "rel_escape")
    os.symlink("../../../../../../../../etc/passwd", data / "deep_escape")
    os.symlink("/usr/bin/tool", data / "abs_virtual")
    os.symlink("dir/f", data / "rel_inside")
    os.symlink("loop2", data / "loop1")
    os.symlink("loop1", data / "loop2")
    os.symlink(str(outside), data / "abs_outside")
    os.symlink("/proc/self/root/etc/passwd", data / "magic")
    vfs = Vfs()
    vfs.add_file(b"/usr/bin/tool", content=b"TOOL")
    vfs.add_symlink(b"/lib", b"usr/lib")
    vfs.add_dir(b"/usr/lib")
    vfs.add_mount(b"/data", str(data), writable=True)
    vfs.cwd = vfs.resolve(Loc(vfs.root), b"/data", True)
    yield vfs, tmp_path
    vfs.close()


def read_open(vfs: Vfs, path: bytes, flags: int = os.O_RDONLY) -> bytes:
    fd = vfs.open(vfs.cwd, path, flags, 0o644)
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def err(fn: object, *args: object) -> int:
    with pytest.raises(SyscallError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.errno


def test_plain_files_inside_the_mount(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, _ = world
    assert read_open(vfs, b"file.txt") == b"inside"
    assert read_open(vfs, b"/data/dir/f") == b"nested"
    assert read_open(vfs, b"dir/sub/../f") == b"nested"
    assert read_open(vfs, b"rel_inside") == b"nested"


def test_absolute_host_symlinks_never_reach_the_host(
    world: tuple[Vfs, pathlib.Path],
) -> None:
    vfs, _ = world
    # A host symlink never names a host path in the sandbox: unless it points
    # into a mounted host directory, it leads nowhere.
    assert err(read_open, vfs, b"abs_virtual") == errno.ENOENT
    assert err(read_open, vfs, b"abs_host") == errno.ENOENT
    assert err(read_open, vfs, b"abs_outside") == errno.ENOENT


def test_relative_escapes_climb_into_the_skeleton_not_the_host(
    world: tuple[Vfs, pathlib.Path],
) -> None:
    vfs, _ = world
    assert err(read_open, vfs, b"rel_escape") == errno.ENOENT  # /outside.txt: no such virtual file
    assert err(read_open, vfs, b"deep_escape") == errno.ENOENT
    assert err(read_open, vfs, b"../../../outside.txt") == errno.ENOENT
    assert read_open(vfs, b"../data/file.txt") == b"inside"
    assert read_open(vfs, b"../usr/bin/tool") == b"TOOL"


def test_absolute_symlinks_into_the_mounted_directory_are_translated(
    world: tuple[Vfs, pathlib.Path],
) -> None:
    vfs, tmp = world
    os.symlink(str(tmp / "data" / "dir" / "f"), tmp / "data" / "abs_inside")
    assert vfs.readlink(vfs.cwd, b"abs_inside") == b"/data/dir/f"
    assert read_open(vfs, b"abs_inside") == b"nested"
    assert vfs.readlink(vfs.cwd, b"abs_outside") == OUTSIDE


def test_magic_links_and_loops(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, _ = world
    assert err(read_open, vfs, b"magic") == errno.ENOENT  # /proc/self/root is not in the VFS
    assert err(read_open, vfs, b"loop1") == errno.ELOOP


def test_no_follow_and_trailing_slash(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, _ = world
    assert err(read_open, vfs, b"rel_inside", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    assert err(read_open, vfs, b"file.txt/") == errno.ENOTDIR
    assert vfs.readlink(vfs.cwd, b"abs_host") == OUTSIDE  # a host path is never shown
    assert vfs.readlink(vfs.cwd, b"abs_virtual") == OUTSIDE
    assert err(vfs.readlink, vfs.cwd, b"file.txt") == errno.EINVAL


def test_skeleton_is_read_only(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, _ = world
    assert err(vfs.open, vfs.cwd, b"/usr/bin/new", os.O_CREAT | os.O_WRONLY, 0o644) == errno.EROFS
    assert err(vfs.open, vfs.cwd, b"/usr/bin/tool", os.O_WRONLY, 0) == errno.EROFS
    assert err(vfs.mkdir, vfs.cwd, b"/usr/newdir", 0o755) == errno.EROFS
    assert err(vfs.open, vfs.cwd, b"/nope/x", os.O_CREAT | os.O_WRONLY, 0o644) == errno.ENOENT


def test_skeleton_symlinks(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, _ = world
    loc = vfs.resolve(vfs.cwd, b"/lib", True)
    assert isinstance(loc.node, VDir) and vfs.vpath(loc) == b"/usr/lib"
    assert vfs.stat(vfs.cwd, b"/lib", follow=False).mode & 0o170000 == 0o120000


def test_writes_stay_inside_the_mount(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, tmp = world
    fd = vfs.open(vfs.cwd, b"new.txt", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o4755)
    os.write(fd, b"x")
    os.close(fd)
    made = tmp / "data" / "new.txt"
    assert made.read_text() == "x"
    assert made.stat().st_mode & 0o7777 == 0o755  # no set-id bits, umask applied
    # Creating through an escaping symlink does not create outside.
    os.symlink("../created_outside", tmp / "data" / "dangling")
    assert err(vfs.open, vfs.cwd, b"dangling", os.O_CREAT | os.O_WRONLY, 0o644) == errno.ENOENT
    assert not (tmp / "created_outside").exists()
    vfs.mkdir(vfs.cwd, b"d2", 0o755)
    vfs.rename(vfs.cwd, b"new.txt", vfs.cwd, b"d2/moved.txt")
    assert (tmp / "data" / "d2" / "moved.txt").exists()
    vfs.unlink(vfs.cwd, b"d2/moved.txt")
    vfs.rmdir(vfs.cwd, b"d2")
    assert err(vfs.rename, vfs.cwd, b"file.txt", vfs.cwd, b"/usr/bin/x") == errno.EROFS


def test_stat_is_virtual(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, tmp = world
    st = vfs.stat(vfs.cwd, b"file.txt", follow=True)
    host = (tmp / "data" / "file.txt").stat()
    assert st.size == host.st_size
    assert st.ino != host.st_ino and st.dev != host.st_dev
    assert st.uid == 1000  # writable mount: the guest's own
    assert vfs.stat(vfs.cwd, b"/usr/bin/tool", follow=True).uid == 0


def test_cwd_and_getcwd(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, _ = world
    assert vfs.getcwd() == b"/data"
    vfs.chdir(vfs.cwd, b"dir/sub")
    assert vfs.getcwd() == b"/data/dir/sub"
    vfs.chdir(vfs.cwd, b"../../../usr")
    assert vfs.getcwd() == b"/usr"
    assert err(vfs.chdir, vfs.cwd, b"/usr/bin/tool") == errno.ENOTDIR


def test_listing_a_synthetic_and_a_mounted_directory(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, _ = world
    root = vfs.open(vfs.cwd, b"/", os.O_RDONLY | os.O_DIRECTORY, 0)
    try:
        names = _names(_getdents(vfs, root, 4096))
    finally:
        os.close(root)
    assert names == [b".", b"..", b"usr", b"lib", b"data"]
    d = vfs.open(vfs.cwd, b".", os.O_RDONLY | os.O_DIRECTORY, 0)
    try:
        first = _names(_getdents(vfs, d, 200))
        rest = []
        while chunk := _getdents(vfs, d, 200):
            rest += _names(chunk)
    finally:
        os.close(d)
    got = first + rest
    assert got[:2] == [b".", b".."]
    assert sorted(got[2:]) == sorted(
        os.fsencode(n) for n in os.listdir(f"/proc/self/fd/{vfs.mounts[0].root_fd}")
    )


def _getdents(vfs: Vfs, fd: int, count: int) -> bytes:
    data, pos = vfs.getdents(fd, count)
    vfs.seek_dir(fd, pos)
    return data


def _names(buf: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(buf):
        reclen = int.from_bytes(buf[i + 16 : i + 18], "little")
        out.append(buf[i + 19 : i + reclen].split(b"\0", 1)[0])
        i += reclen
    return out


COMPONENTS = [
    b"..",
    b".",
    b"data",
    b"dir",
    b"sub",
    b"f",
    b"file.txt",
    b"abs_host",
    b"rel_escape",
    b"deep_escape",
    b"abs_virtual",
    b"rel_inside",
    b"magic",
    b"abs_outside",
    b"usr",
    b"bin",
    b"tool",
    b"lib",
    b"loop1",
    b"",
    b"etc",
    b"passwd",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=8), st.booleans())
def test_no_path_opens_anything_outside_the_mount(
    world: tuple[Vfs, pathlib.Path], comps: list[bytes], absolute: bool
) -> None:
    vfs, tmp = world
    path = (b"/" if absolute else b"") + b"/".join(comps)
    if not path:
        return
    try:
        fd = vfs.open(vfs.cwd, path, os.O_RDONLY, 0)
    except SyscallError:
        return
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        allowed = (str(tmp / "data"), SHARED._base())
        assert real.startswith(allowed), (path, real)
        assert b"SECRET" not in os.read(fd, 100) if not os.path.isdir(real) else True
    finally:
        os.close(fd)


@given(st.lists(st.sampled_from([b"a", b"..", b".", b"", b"b"]), max_size=10))
def test_normalize_never_climbs_above_root(comps: list[bytes]) -> None:
    p = paths.normalize(b"/" + b"/".join(comps))
    assert p.startswith(b"/") and b"/../" not in p + b"/" and b"//" not in p
    assert paths.normalize(p) == p


def test_stat_of_descriptors_is_virtual(world: tuple[Vfs, pathlib.Path]) -> None:
    vfs, _ = world
    for path in (b"/", b"/usr/bin/tool", b"file.txt", b"dir"):
        fd = vfs.open(vfs.cwd, path, os.O_RDONLY, 0)
        try:
            by_fd = vfs.stat_object(
                os.fstat(fd),
                lambda fd=fd: os.readlink(f"/proc/self/fd/{fd}".encode()),
                lambda fd=fd: hostfs.mount_id(fd),
            )
        finally:
            os.close(fd)
        assert by_fd == vfs.stat(vfs.cwd, path, follow=True), path


def test_mount_nodes_are_closed(tmp_path: pathlib.Path) -> None:
    (tmp_path / "m").mkdir()
    m = Mount.host(1, str(tmp_path / "m"), False)
    fd = m.root_fd
    m.close()
    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.fixture
def overlay_world(
    world: tuple[Vfs, pathlib.Path],
) -> Iterator[tuple[Vfs, pathlib.Path, int]]:
    """The same hostile directory as ``world``, mounted rw (an overlay), with
    hostile symlinks the guest made in the upper layer as well."""
    from sandbox_run.policy.schema import Mount as MountSpec
    from sandbox_run.vfs import areas
    from sandbox_run.vfs.nodes import Mount as MountNode

    _, tmp = world
    area = areas.host_area(MountSpec(str(tmp / "data"), "/ov", "rw"))
    vfs = Vfs()
    vfs.add_file(b"/usr/bin/tool", content=b"TOOL")
    m = vfs.attach(b"/ov", MountNode.on(0, area.overlay_fd, b"", True, "/ov", host_root=area.host))
    m.guest_dev = area.guest_dev
    vfs.cwd = vfs.resolve(Loc(vfs.root), b"/ov", True)
    vfs.symlink(str(tmp / "outside.txt").encode(), vfs.cwd, b"g_abs")
    vfs.symlink(b"../../../../../../../.." + str(tmp / "outside.txt").encode(), vfs.cwd, b"g_rel")
    vfs.symlink(b"..", vfs.cwd, b"g_up")
    yield vfs, tmp, m.mnt_id
    vfs.close()
    area.close()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from([*COMPONENTS, b"ov", b"g_abs", b"g_rel", b"g_up"]), min_size=1, max_size=8
    ),
    st.booleans(),
)
def test_no_path_opens_anything_outside_an_overlay(
    overlay_world: tuple[Vfs, pathlib.Path, int], comps: list[bytes], absolute: bool
) -> None:
    vfs, _tmp, overlay_id = overlay_world
    path = (b"/" if absolute else b"") + b"/".join(comps)
    if not path:
        return
    try:
        fd = vfs.open(vfs.cwd, path, os.O_RDONLY, 0)
    except SyscallError:
        return
    try:
        on_overlay = hostfs.mount_id(fd) == overlay_id
        shared = os.readlink(f"/proc/self/fd/{fd}").startswith(SHARED._base())
        assert on_overlay or shared, (path, os.readlink(f"/proc/self/fd/{fd}"))
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            assert b"SECRET" not in os.read(fd, 100)
    finally:
        os.close(fd)

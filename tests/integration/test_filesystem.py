"""The virtual filesystem with real guests: semantics, mounts, quotas, nothing lost."""

from __future__ import annotations

import os
import pathlib
import subprocess
import textwrap

import sandbox_run
from sandbox_run import Mount, Outcome, Policy
from sandbox_run.policy.schema import Quota

HERE = pathlib.Path(__file__).parent
MiB = 1 << 20


def run(code: str, *mounts: Mount, **kw: object) -> sandbox_run.Result:
    # The OS layer's file semantics, tested with every call os offers (the
    # restricted mode hides some, such as os.mknod and os.abort).
    policy = kw.pop("policy", None) or Policy(mounts=mounts)
    if not isinstance(policy, Policy):
        raise TypeError(policy)
    policy = policy.replace(restricted=False)
    return sandbox_run.run(textwrap.dedent(code), policy=policy, **kw)  # type: ignore[arg-type]


def host_tree(root: pathlib.Path) -> list[str]:
    out = []
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
        extra = os.readlink(p) if kind == "l" else p.read_bytes() if kind == "f" else b""
        out.append(f"{p.relative_to(root)} {kind} {oct(st.st_mode & 0o777)} {extra!r}")
    return out


def area(r: sandbox_run.Result, path: str) -> sandbox_run.AreaReport:
    return next(a for a in r.filesystem if a.path == path)


def test_differential_native_and_sandboxed_agree(tmp_path: pathlib.Path) -> None:
    native_dir = tmp_path / "native"
    sandbox_dir = tmp_path / "sandboxed"
    native_dir.mkdir()
    sandbox_dir.mkdir()
    script = HERE / "fs_script.py"
    native = subprocess.run(
        ["/usr/bin/pypy3", str(script), str(native_dir)], capture_output=True, timeout=60
    )
    assert native.returncode == 0, native.stderr
    r = sandbox_run.run_path(
        script, argv=["/work"], policy=Policy(mounts=(Mount(str(sandbox_dir), "/work", "rw"),))
    )
    assert r.ok, r.stderr
    assert r.stdout.decode() == native.stdout.decode()
    # The changes reached the host exactly as the native run made them.
    assert host_tree(sandbox_dir) == host_tree(native_dir)
    rw = area(r, "/work")
    assert rw.applied is True and rw.notes == ()


def test_read_only_mounts_refuse_every_change(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f.txt").write_text("keep")
    r = run(
        """
        import os, errno
        for name, fn in [
            ("write", lambda: open("/ro/f.txt", "w")),
            ("append", lambda: open("/ro/f.txt", "a")),
            ("create", lambda: open("/ro/new", "x")),
            ("mkdir", lambda: os.mkdir("/ro/d")),
            ("unlink", lambda: os.unlink("/ro/f.txt")),
            ("rename", lambda: os.rename("/ro/f.txt", "/ro/g")),
            ("chmod", lambda: os.chmod("/ro/f.txt", 0o777)),
            ("utime", lambda: os.utime("/ro/f.txt")),
            ("symlink", lambda: os.symlink("x", "/ro/l")),
            ("truncate", lambda: os.truncate("/ro/f.txt", 0)),
        ]:
            try:
                fn(); print(name, "ok")
            except OSError as e:
                print(name, errno.errorcode[e.errno])
        print(open("/ro/f.txt").read(), os.access("/ro/f.txt", os.W_OK))
    """,
        Mount(str(tmp_path), "/ro"),
    )
    assert r.ok, r.stderr
    lines = r.stdout.decode().splitlines()
    assert all(ln.endswith("EROFS") for ln in lines[:-1]), lines
    assert lines[-1] == "keep False"
    assert host_tree(tmp_path) == ["f.txt f 0o644 b'keep'"]


def test_private_area_quota_bytes(tmp_path: pathlib.Path) -> None:
    policy = Policy(private=Quota(max_bytes=2 * MiB, max_file_size=64 * MiB))
    r = run(
        """
        import errno
        with open("/tmp/under", "wb") as f:
            f.write(b"x" * (1 * 1024 * 1024))
        try:
            with open("/tmp/over", "wb") as f:
                f.write(b"y" * (2 * 1024 * 1024))
        except OSError as e:
            print(errno.errorcode[e.errno])
    """,
        policy=policy,
    )
    assert r.stdout == b"ENOSPC\n"
    private = area(r, "/sandbox, /tmp")
    assert private.max_bytes == 2 * MiB
    assert private.bytes_used >= 2 * MiB - 64 * 1024  # full, as the kernel counts


def test_private_area_quota_files() -> None:
    r = run(
        """
        import errno, os
        n = 0
        try:
            for i in range(1000):
                open(f"/tmp/f{i}", "w").close()
                n += 1
        except OSError as e:
            print(errno.errorcode[e.errno], n)
    """,
        policy=Policy(private=Quota(max_files=50)),
    )
    code, n = r.stdout.split()
    assert code == b"ENOSPC"
    assert int(n) == 50  # exactly the quota: the script and the directories do not count
    assert area(r, "/sandbox, /tmp").files_used == 50


def test_largest_file_limit_gives_efbig() -> None:
    r = run(
        """
        import errno
        with open("/tmp/ok", "wb") as f:
            f.write(b"x" * 100_000)
        try:
            with open("/tmp/big", "wb") as f:
                f.write(b"x" * 300_000)
        except OSError as e:
            print(errno.errorcode[e.errno])
    """,
        policy=Policy(private=Quota(max_file_size=200_000)),
    )
    assert r.stdout == b"EFBIG\n"


def test_rw_mount_quota_and_usage(tmp_path: pathlib.Path) -> None:
    m = Mount(str(tmp_path), "/out", "rw", Quota(max_bytes=1 * MiB, max_files=20))
    r = run(
        """
        import errno
        with open("/out/a", "wb") as f:
            f.write(b"a" * 300_000)
        try:
            with open("/out/b", "wb") as f:
                f.write(b"b" * 2_000_000)
        except OSError as e:
            print(errno.errorcode[e.errno])
    """,
        m,
    )
    assert r.stdout == b"ENOSPC\n"
    out = area(r, "/out")
    assert out.max_bytes == 1 * MiB and out.bytes_used > 300_000
    assert (tmp_path / "a").read_bytes() == b"a" * 300_000


def test_tmpfs_mount() -> None:
    r = run(
        """
        import os, errno
        with open("/scratch/x", "w") as f:
            f.write("in memory")
        print(os.listdir("/scratch"), open("/scratch/x").read())
        try:
            with open("/scratch/big", "wb") as f:
                f.write(b"z" * (3 * 1024 * 1024))
        except OSError as e:
            print(errno.errorcode[e.errno])
    """,
        Mount("", "/scratch", "tmpfs", Quota(max_bytes=1 * MiB)),
    )
    assert r.stdout == b"['x'] in memory\nENOSPC\n"


def test_files_written_and_closed_reach_the_host_complete(tmp_path: pathlib.Path) -> None:
    (tmp_path / "old.txt").write_text("old content")
    (tmp_path / "gone.txt").write_text("delete me")
    (tmp_path / "sub").mkdir()
    r = run(
        """
        import os
        with open("/out/old.txt", "w") as f:
            f.write("new content, complete")
        with open("/out/sub/new.bin", "wb") as f:
            f.write(bytes(range(256)) * 1000)
        os.remove("/out/gone.txt")
        os.makedirs("/out/a/b")
        os.rename("/out/sub", "/out/a/b/sub2")
    """,
        Mount(str(tmp_path), "/out", "rw"),
    )
    assert r.ok, r.stderr
    assert (tmp_path / "old.txt").read_text() == "new content, complete"
    assert (tmp_path / "a/b/sub2/new.bin").read_bytes() == bytes(range(256)) * 1000
    assert not (tmp_path / "gone.txt").exists() and not (tmp_path / "sub").exists()
    changes = {(c.path, c.kind) for c in area(r, "/out").changes}
    assert {
        ("/out/old.txt", "modified"),
        ("/out/gone.txt", "deleted"),
        ("/out/a/b/sub2", "renamed"),
    } <= changes
    # Nothing the controller used along the way is left behind.
    assert not [p for p in tmp_path.rglob("*") if ".sandbox-run" in p.name]


def test_killed_mid_write_keeps_old_content(tmp_path: pathlib.Path) -> None:
    # The guarantee (docs/filesystem.md): a file still open for writing when
    # the sandbox kills the guest keeps its old content; files it had
    # closed get their new content.
    (tmp_path / "busy.txt").write_text("old busy")
    (tmp_path / "done.txt").write_text("old done")
    r = run(
        """
        with open("/out/done.txt", "w") as f:
            f.write("new done")
        f = open("/out/busy.txt", "w")
        f.write("partial " * 1000)
        f.flush()
        print("writing", flush=True)
        while True:
            f.write("more ")
    """,
        policy=Policy(timeout=1.0, mounts=(Mount(str(tmp_path), "/out", "rw"),)),
    )
    assert r.outcome is Outcome.TIMEOUT
    assert r.stdout == b"writing\n"
    assert (tmp_path / "busy.txt").read_text() == "old busy"
    assert (tmp_path / "done.txt").read_text() == "new done"
    out = area(r, "/out")
    assert out.applied is True
    assert any("busy.txt: not applied" in n and "being written" in n for n in out.notes)


def test_shared_writable_mappings_count_as_being_written(tmp_path: pathlib.Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"o" * 4096)
    r = run(
        """
        import mmap, os, time
        fd = os.open("/out/m.bin", os.O_RDWR)
        m = mmap.mmap(fd, 4096)
        os.close(fd)
        m[:3] = b"new"
        print("mapped", flush=True)
        time.sleep(30)
    """,
        policy=Policy(timeout=1.0, mounts=(Mount(str(tmp_path), "/out", "rw"),)),
    )
    assert r.outcome is Outcome.TIMEOUT and r.stdout == b"mapped\n"
    assert (tmp_path / "m.bin").read_bytes() == b"o" * 4096


def test_a_crash_applies_nothing(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f.txt").write_text("before")
    r = run(
        """
        import os
        with open("/out/f.txt", "w") as f:
            f.write("after")
        open("/out/new.txt", "w").close()
        os.abort()
    """,
        Mount(str(tmp_path), "/out", "rw"),
    )
    assert r.outcome is Outcome.CRASHED
    assert (tmp_path / "f.txt").read_text() == "before"
    assert not (tmp_path / "new.txt").exists()
    assert area(r, "/out").applied is False


def test_overlay_changes_are_reported_never_applied(tmp_path: pathlib.Path) -> None:
    (tmp_path / "keep.txt").write_text("line 1\nline 2\n")
    (tmp_path / "del.txt").write_text("bye\n")
    before = host_tree(tmp_path)
    m = Mount(str(tmp_path), "/work", "overlay", diff=True)
    r = run(
        """
        import os
        with open("/work/keep.txt", "a") as f:
            f.write("line 3\\n")
        with open("/work/added.txt", "w") as f:
            f.write("fresh\\n")
        os.remove("/work/del.txt")
        print(sorted(os.listdir("/work")))
    """,
        m,
    )
    assert r.stdout == b"['added.txt', 'keep.txt']\n"
    assert host_tree(tmp_path) == before
    ov = area(r, "/work")
    assert ov.applied is None
    assert {(c.path, c.kind) for c in ov.changes} == {
        ("/work/keep.txt", "modified"),
        ("/work/added.txt", "added"),
        ("/work/del.txt", "deleted"),
    }
    assert ov.diff is not None
    assert "+line 3\n" in ov.diff and "+fresh\n" in ov.diff and "-bye\n" in ov.diff
    assert "--- a/work/keep.txt" in ov.diff


def test_single_file_mounts(tmp_path: pathlib.Path) -> None:
    for name in ("ro.json", "rw.json", "ov.json"):
        (tmp_path / name).write_text('{"v": 1}')
    r = run(
        """
        import json, os, errno
        print(json.load(open("/cfg/ro.json")))
        try:
            open("/cfg/ro.json", "w")
        except OSError as e:
            print(errno.errorcode[e.errno])
        for n in ("rw", "ov"):
            with open(f"/cfg/{n}.json", "w") as f:
                json.dump({"v": 2, "n": n}, f)
        print(json.load(open("/cfg/ov.json")), os.stat("/cfg/rw.json").st_uid)
    """,
        Mount(str(tmp_path / "ro.json"), "/cfg/ro.json"),
        Mount(str(tmp_path / "rw.json"), "/cfg/rw.json", "rw"),
        Mount(str(tmp_path / "ov.json"), "/cfg/ov.json", "overlay"),
    )
    assert r.ok, r.stderr
    assert r.stdout == b"{'v': 1}\nEROFS\n{'v': 2, 'n': 'ov'} 1000\n"
    assert (tmp_path / "rw.json").read_text() == '{"v": 2, "n": "rw"}'
    assert (tmp_path / "ov.json").read_text() == '{"v": 1}'
    assert [c.kind for c in area(r, "/cfg/ov.json").changes] == ["modified"]


def test_stat_shows_virtual_owners_devices_and_inodes(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_text("x")
    host = os.stat(tmp_path / "f")
    r = run(
        """
        import os
        for p in ("/data/f", "/tmp", "/usr/lib/pypy3.9/os.py", "/", "/dev/null"):
            st = os.stat(p)
            print(p, st.st_uid, st.st_gid, st.st_ino, st.st_dev)
    """,
        Mount(str(tmp_path), "/data"),
    )
    rows = {ln.split()[0]: ln.split()[1:] for ln in r.stdout.decode().splitlines()}
    assert rows["/data/f"][:2] == ["0", "0"] and rows["/tmp"][:2] == ["1000", "1000"]
    assert int(rows["/data/f"][2]) != host.st_ino and int(rows["/data/f"][3]) != host.st_dev
    devices = {int(v[3]) for v in rows.values()}
    assert all(d < 0x100 for d in devices)  # virtual devices 0:0x20...


def test_errors_name_only_guest_paths(tmp_path: pathlib.Path) -> None:
    (tmp_path / "d").mkdir()
    os.symlink("/etc/shadow", tmp_path / "d" / "to_host")
    os.symlink(str(tmp_path / "d"), tmp_path / "abs_to_self")
    r = run(
        """
        import os
        for fn in (lambda: open("/data/d/to_host"), lambda: open("/data/missing"),
                   lambda: os.listdir("/data/d/to_host"), lambda: os.rmdir("/data/d")):
            try:
                fn()
            except OSError as e:
                print(e)
        print(os.readlink("/data/d/to_host"), os.readlink("/data/abs_to_self"))
        print(os.path.realpath("/data/abs_to_self"), os.listdir("/data/abs_to_self"))
    """,
        Mount(str(tmp_path), "/data", "overlay"),
    )
    out = r.stdout.decode()
    assert str(tmp_path) not in out and "/etc/shadow" not in out
    assert "/.outside-the-sandbox /data/d" in out  # readlink: host links never show host paths
    assert "/data/d ['to_host']" in out  # ... and resolve inside the sandbox


def test_links_the_guest_makes_read_back_as_written(tmp_path: pathlib.Path) -> None:
    r = run(
        """
        import os
        os.symlink("/etc/anything", "/tmp/l1")
        os.symlink("/w/later", "/w/l2")
        print(os.readlink("/tmp/l1"), os.readlink("/w/l2"))
    """,
        Mount(str(tmp_path), "/w", "rw"),
    )
    assert r.stdout == b"/etc/anything /w/later\n"


def test_file_semantics_details(tmp_path: pathlib.Path) -> None:
    r = run(
        """
        import os, errno
        def e(fn):
            try:
                return fn()
            except OSError as x:
                return errno.errorcode[x.errno]
        os.mkdir("/w/d")
        print(e(lambda: os.rmdir("/w/d/.")), e(lambda: os.rmdir("/w/d/..")),
              e(lambda: os.mkdir("/w/d/..")), e(lambda: os.unlink("/w/d/.")),
              e(lambda: os.rename("/w/d/.", "/w/x")), e(lambda: os.mkdir("/w")))
        open("/w/f", "w").close()
        print(e(lambda: os.unlink("/w/f/")), e(lambda: os.rename("/w/f", "/w/g/")),
              e(lambda: os.link("/w/d", "/w/dd")), e(lambda: os.link("/usr/bin/pypy3", "/w/p")),
              e(lambda: os.mknod("/w/n")), e(lambda: os.symlink("", "/w/empty")))
        fd = os.open("/w/f", os.O_WRONLY)
        print(e(lambda: os.fchmod(fd, 0o4755)), oct(os.stat("/w/f").st_mode & 0o7777))
        os.close(fd)
        print(e(lambda: os.chown("/w/f", 0, 0)), e(lambda: os.getxattr("/w/f", "user.x")))
    """,
        Mount(str(tmp_path), "/w", "rw"),
    )
    assert r.ok, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "EINVAL ENOTEMPTY EEXIST EISDIR EBUSY EEXIST"
    assert lines[1] == "ENOTDIR ENOTDIR EPERM EXDEV EPERM ENOENT"
    assert lines[2] == "None 0o755"  # set-id bits are never set
    assert lines[3] == "EPERM ENOTSUP"  # errno 95, EOPNOTSUPP


def test_statvfs_reports_the_quota() -> None:
    r = run(
        """
        import os, shutil
        sv = os.statvfs("/tmp")
        print(sv.f_blocks * sv.f_frsize, shutil.disk_usage("/sandbox").total)
    """,
        policy=Policy(private=Quota(max_bytes=8 * MiB)),
    )
    assert r.stdout == b"%d %d\n" % (8 * MiB, 8 * MiB)


def test_unlink_of_open_file_and_rename_over_open_file(tmp_path: pathlib.Path) -> None:
    r = run(
        """
        import os
        f = open("/w/a", "w+"); f.write("data"); f.flush()
        os.unlink("/w/a")
        f.seek(0); print(f.read(), os.path.exists("/w/a"))
        with open("/w/b", "w") as g: g.write("new")
        h = open("/w/c", "w"); h.write("old"); h.close()
        r = open("/w/c")
        os.replace("/w/b", "/w/c")
        print(r.read(), open("/w/c").read())
    """,
        Mount(str(tmp_path), "/w", "rw"),
    )
    assert r.stdout == b"data False\nold new\n"
    assert sorted(os.listdir(tmp_path)) == ["c"]

"""Attacks on mount confinement.  Nothing below a mount may reach outside it.

Every test plants a host secret next to (outside) the mounted directory and
asserts that no path the guest can build reads it, and how each attempt fails.
"""

from __future__ import annotations

import os
import pathlib
import textwrap
import threading
from collections.abc import Callable, Iterator

import pytest
from hostile import lines, native

import sandbox_run
from sandbox_run import Mount, Policy

SECRET = "HOST-SECRET-5f1c"


@pytest.fixture
def world(tmp_path: pathlib.Path) -> Iterator[tuple[pathlib.Path, pathlib.Path]]:
    """A mounted directory ``data`` full of hostile host-side links, and a secret
    file beside it (absolute path known to the attacker)."""
    data = tmp_path / "data"
    (data / "dir").mkdir(parents=True)
    (data / "dir" / "f").write_text("inside")
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    os.symlink(str(secret), data / "abs")
    os.symlink("../secret.txt", data / "rel")
    os.symlink("../" * 12 + str(secret).lstrip("/"), data / "deep")
    os.symlink("c2", data / "c1")
    os.symlink("dir/../c3", data / "c2")
    os.symlink(str(tmp_path), data / "c3")  # c1 -> c2 -> c3 -> the parent directory
    os.symlink(f"/proc/self/root{secret}", data / "magic")
    os.symlink("/proc/self/cwd", data / "magic_cwd")
    os.symlink(str(data / ".."), data / "up")
    yield data, secret


def run(code: str, data: pathlib.Path, mode: str = "rw", **kw: object) -> sandbox_run.Result:
    policy = Policy(mounts=(Mount(str(data), "/data", mode),), **kw)  # type: ignore[arg-type]
    return sandbox_run.run(textwrap.dedent(code), policy=policy)


ATTEMPTS = """
import errno, os
def attempt(name, fn):
    try:
        out = fn()
        print(name, "READ" if isinstance(out, str) and "{secret}" in out else "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
def read(p):
    with open(p) as f:
        return f.read()
"""


@pytest.mark.parametrize("mode", ["ro", "rw", "overlay"])
def test_host_planted_links_and_dotdot(world: tuple[pathlib.Path, pathlib.Path], mode: str) -> None:
    data, secret = world
    r = run(
        ATTEMPTS.format(secret=SECRET)
        + f"""
for p in ["/data/abs", "/data/rel", "/data/deep", "/data/c1/secret.txt", "/data/magic",
          "/data/magic_cwd/secret.txt", "/data/up/secret.txt", "/data/../{secret.name}",
          "/data/dir/../../secret.txt", "/data/dir/../../../../..{secret}",
          "/data/c3/secret.txt", "/proc/self/root{secret}", "/proc/self/cwd/x",
          "/proc/1/root/etc/passwd", "/proc/self/fd/0"]:
    attempt(p, lambda: read(p))
attempt("listdir up", lambda: str(sorted(os.listdir("/data/up"))))
attempt("listdir ..", lambda: str(sorted(os.listdir("/data/.."))))
print(sorted(os.listdir("/data/..")))
""",
        data,
        mode,
    )
    assert r.ok, r.stderr
    out = r.stdout.decode()
    assert "READ" not in out and SECRET not in out
    rows = dict(ln.rsplit(" ", 1) for ln in out.splitlines()[:-1])
    for p, result in rows.items():
        if p.startswith("listdir"):
            continue
        assert result == "ENOENT", (p, result)
    # ".." above the mount is the sandbox's root, never the host's
    assert out.splitlines()[-1] == str(
        sorted(["data", "dev", "etc", "lib", "lib64", "proc", "sandbox", "sys", "tmp", "usr"])
    )


def test_guest_made_links_stay_inside(world: tuple[pathlib.Path, pathlib.Path]) -> None:
    data, secret = world
    r = run(
        ATTEMPTS.format(secret=SECRET)
        + f"""
attempt("symlink abs", lambda: os.symlink("{secret}", "/data/g1"))
attempt("follow abs", lambda: read("/data/g1"))
attempt("symlink rel", lambda: os.symlink("{"../" * 12}{str(secret).lstrip("/")}", "/data/g2"))
attempt("follow rel", lambda: read("/data/g2"))
attempt("symlink to dotdot", lambda: os.symlink("..", "/data/g3"))
attempt("follow dotdot", lambda: read("/data/g3/{secret.name}"))
attempt("hardlink host path", lambda: os.link("{secret}", "/data/h1"))
# PyPy's os.link uses link(2), which links a symlink itself, not its target:
# the new name is one more symlink, leading nowhere.
attempt("hardlink via symlink", lambda: os.link("/data/g1", "/data/h2", follow_symlinks=True))
attempt("follow h2", lambda: read("/data/h2"))
attempt("hardlink host link", lambda: os.link("/data/abs", "/data/h3", follow_symlinks=True))
attempt("follow h3", lambda: read("/data/h3"))
attempt("hardlink system file", lambda: os.link("/usr/lib/pypy3.9/os.py", "/data/h4"))
attempt("hardlink plain", lambda: os.link("/data/dir/f", "/data/h5"))
attempt("rename out", lambda: os.rename("/data/dir/f", "/tmp/f"))
attempt("rename in", lambda: os.rename("/sandbox/main.py", "/data/main.py"))
""",
        data,
    )
    assert r.ok, r.stderr
    rows = dict(ln.rsplit(" ", 1) for ln in r.stdout.decode().splitlines())
    assert rows == {
        "symlink abs": "ok",
        "follow abs": "ENOENT",
        "symlink rel": "ok",
        "follow rel": "ENOENT",
        "symlink to dotdot": "ok",
        "follow dotdot": "ENOENT",
        "hardlink host path": "ENOENT",
        "hardlink via symlink": "ok",
        "follow h2": "ENOENT",
        "hardlink host link": "ok",
        "follow h3": "ENOENT",
        "hardlink system file": "EXDEV",
        "hardlink plain": "ok",
        "rename out": "EXDEV",
        "rename in": "EXDEV",
    }
    # After the commit: no hard link to the secret, no symlink out of the mount.
    assert os.stat(secret).st_nlink == 1
    assert (data / "h5").read_text() == "inside"
    for name in ("g1", "g2", "g3"):  # each points outside the mount: never created on the host
        assert not (data / name).is_symlink()
    notes = next(a for a in r.filesystem if a.path == "/data").notes
    for name in ("g1", "g2", "g3"):
        assert any(f"/data/{name}: not applied: a symlink pointing outside" in n for n in notes)


def test_host_side_rename_race(world: tuple[pathlib.Path, pathlib.Path]) -> None:
    """A host process swaps a mounted directory for a symlink to the secret's
    directory while the guest keeps opening a path through it."""
    data, secret = world
    (data / "sw").mkdir()
    (data / "sw" / "secret.txt").write_text("inside")
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            try:
                os.rename(data / "sw", data / "sw.real")
                os.symlink(str(secret.parent), data / "sw")
                os.unlink(data / "sw")
                os.rename(data / "sw.real", data / "sw")
            except OSError:
                pass

    t = threading.Thread(target=swapper)
    t.start()
    try:
        r = run(
            """
            seen = set()
            for _ in range(3000):
                try:
                    with open("/data/sw/secret.txt") as f:
                        seen.add(f.read())
                except OSError as e:
                    seen.add(e.errno)
            print(sorted(map(str, seen)))
        """,
            data,
            "ro",
        )
    finally:
        stop.set()
        t.join()
    assert r.ok, r.stderr
    assert SECRET not in r.stdout.decode()
    assert "inside" in r.stdout.decode()


NATIVE_RACE = r"""
#include <pthread.h>
static volatile int stop;
static void *flipper(void *arg) {
    (void)arg;
    while (!stop) {
        rename("/data/a/b", "/data/b");
        rename("/data/b", "/data/a/b");
    }
    return 0;
}
"""


def test_native_confinement(
    world: tuple[pathlib.Path, pathlib.Path], compile_c: Callable[..., str]
) -> None:
    data, secret = world
    (data / "a" / "b" / "c").mkdir(parents=True)
    body = rf"""
        char buf[256];
        TRY("abs", open("/data/abs", O_RDONLY));
        TRY("chain", open("/data/c1/secret.txt", O_RDONLY));
        TRY("magic", open("/data/magic", O_RDONLY));
        TRY("dotdot", open("/data/dir/../../secret.txt", O_RDONLY));
        int d = open("/data/dir", O_RDONLY | O_DIRECTORY);
        TRY("at_dotdot", openat(d, "../../secret.txt", O_RDONLY));
        TRY("at_abs", openat(d, "{secret}", O_RDONLY));
        struct {{ unsigned long long flags, mode, resolve; }} how = {{O_RDONLY, 0, 0}};
        TRY("openat2", syscall(SYS_openat2, d, "../../secret.txt", &how, sizeof how));
        TRY("symlink", symlink("{secret}", "/data/n1"));
        TRY("follow", open("/data/n1", O_RDONLY));
        TRY("linkat_follow", linkat(AT_FDCWD, "/data/n1", AT_FDCWD, "/data/n2", AT_SYMLINK_FOLLOW));
        TRY("linkat_host", linkat(AT_FDCWD, "{secret}", AT_FDCWD, "/data/n3", 0));
        TRY("linkat_fd", linkat(d, "", AT_FDCWD, "/data/n4", AT_EMPTY_PATH));
        TRY("readlink_len", readlink("/data/abs", buf, sizeof buf));
        buf[readlink("/data/abs", buf, sizeof buf)] = 0;
        printf("readlink=%s\n", buf);
        /* Race: a thread flips /data/a/b while this one walks ".." out of it. */
        pthread_t t;
        pthread_create(&t, 0, flipper, 0);
        int leaked = 0, opened = 0;
        for (int i = 0; i < 3000; i++) {{
            int fd = open("/data/a/b/c/../../../../../../..{secret}", O_RDONLY);
            if (fd >= 0) {{
                opened++;
                int n = read(fd, buf, sizeof buf - 1);
                if (n > 0) {{ buf[n] = 0; if (strstr(buf, "{SECRET}")) leaked++; }}
                close(fd);
            }}
        }}
        stop = 1;
        pthread_join(t, 0);
        printf("race_opened=%d\nrace_leaked=%d\n", opened, leaked);
    """
    r = native(
        compile_c,
        body,
        policy=Policy(mounts=(Mount(str(data), "/data", "rw"),)),
        prelude_extra=NATIVE_RACE,
        link_flags=("-pthread",),
    )
    assert SECRET not in r.stdout.decode()
    assert lines(r) == {
        "abs": "ENOENT",
        "chain": "ENOENT",
        "magic": "ENOENT",
        "dotdot": "ENOENT",
        "at_dotdot": "ENOENT",
        "at_abs": "ENOENT",
        "openat2": "ENOENT",
        "symlink": "ok",
        "follow": "ENOENT",
        "linkat_follow": "ENOENT",
        "linkat_host": "ENOENT",
        "linkat_fd": "ENOENT",
        "readlink_len": "ok",
        "readlink": "/.outside-the-sandbox",
        "race_opened": "0",
        "race_leaked": "0",
    }
    assert os.stat(secret).st_nlink == 1

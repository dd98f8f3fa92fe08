"""A file-manipulating script for the differential test.

Run as ``fs_script.py ROOT``: it works only below ROOT and prints a
transcript of what it did and what came back (results, or the errno name of
each failure), with nothing that legitimately differs between a host and a
sandbox (absolute paths, inode numbers, owners, random names).
"""

import errno
import glob
import os
import pathlib
import shutil
import stat
import sys
import tempfile

ROOT = sys.argv[1]
OUT = []


def rel(p):
    p = os.fspath(p)
    return os.path.relpath(p, ROOT) if os.path.isabs(p) else p


def step(name, fn, *args, **kw):
    try:
        r = fn(*args, **kw)
    except OSError as e:
        OUT.append(f"{name}: {errno.errorcode.get(e.errno, e.errno)}")
        return None
    OUT.append(f"{name}: {show(r)}")
    return r


def show(r):
    if isinstance(r, os.stat_result):
        return f"{stat.filemode(r.st_mode)} size={r.st_size}"
    if isinstance(r, (list, tuple)):
        return "[" + ", ".join(show(x) for x in r) + "]"
    if isinstance(r, pathlib.Path):
        return rel(r)
    if isinstance(r, str) and r.startswith(ROOT):
        return rel(r)
    return repr(r)


def slurp(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def touch_open(path, mode):
    with open(path, mode):
        return "opened"


def tree():
    lines = []
    for top, dirs, files in os.walk(ROOT):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(top, n)
            st = os.lstat(p)
            extra = ""
            if stat.S_ISLNK(st.st_mode):
                extra = " -> " + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    extra = " " + repr(f.read(40))
            lines.append(f"  {rel(p)} {stat.filemode(st.st_mode)}{extra}")
    return "\n".join(lines)


def main():
    os.chdir(ROOT)
    j = os.path.join
    # open modes, binary and text
    with open("a.txt", "w") as f:
        f.write("hello\nworld\n")
    with open("a.txt", "a") as f:
        f.write("more\n")
    step("read a", slurp, "a.txt")
    with open("a.txt", "r+") as f:
        f.seek(6)
        f.write("WORLD")
        f.seek(0)
        OUT.append("r+: " + repr(f.read()))
    with open("b.bin", "wb+") as f:
        f.write(bytes(range(20)))
        f.seek(5)
        OUT.append("wb+ read: " + repr(f.read(3)) + f" tell={f.tell()}")
        f.truncate(8)
    step("b size", lambda: os.path.getsize("b.bin"))
    step("x exists", touch_open, "a.txt", "x")
    with open("new.txt", "x") as f:
        f.write("x")
    with open("c.txt", "ab+") as f:
        f.write(b"abc")
        f.seek(0)
        OUT.append("ab+: " + repr(f.read()))
    with open("d.txt", "w", encoding="utf-8", newline="\r\n") as f:
        f.write("é\nline\n")
    step("d bytes", slurp, "d.txt", "rb")
    step("open dir for write", touch_open, ".", "w")
    step("open missing", touch_open, "missing/x", "r")
    step("open file as dir", touch_open, "a.txt/x", "r")
    # fsync, truncate by path, os-level I/O
    fd = os.open("e.txt", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
    os.write(fd, b"0123456789")
    os.fsync(fd)
    os.lseek(fd, 2, os.SEEK_SET)
    OUT.append("pread/lseek: " + repr(os.read(fd, 3)) + " " + repr(os.pread(fd, 2, 8)))
    os.ftruncate(fd, 4)
    step("fstat e", os.fstat, fd)
    os.close(fd)
    step("truncate path", os.truncate, "e.txt", 2)
    step("stat e", os.stat, "e.txt")
    # directories
    step("mkdir", os.mkdir, "d1")
    step("mkdir again", os.mkdir, "d1")
    step("makedirs", os.makedirs, j("d1", "d2", "d3"))
    step("makedirs exist_ok", os.makedirs, j("d1", "d2"), exist_ok=True)
    step("rmdir non-empty", os.rmdir, "d1")
    step("rmdir file", os.rmdir, "a.txt")
    step("unlink dir", os.unlink, "d1")
    step("listdir", lambda: sorted(os.listdir(".")))
    step(
        "scandir",
        lambda: sorted((e.name, e.is_dir(), e.is_file(), e.is_symlink()) for e in os.scandir(".")),
    )
    step("walk", lambda: [(rel(t), sorted(d), sorted(f)) for t, d, f in os.walk(".")])
    # rename and replace
    step("rename", os.rename, "new.txt", j("d1", "moved.txt"))
    step("replace over file", os.replace, "c.txt", j("d1", "moved.txt"))
    step("rename dir", os.rename, j("d1", "d2"), "d2renamed")
    step("rename dir over non-empty", os.rename, "d2renamed", "d1")
    step("rename missing", os.rename, "nope", "nope2")
    # symlinks
    step("symlink", os.symlink, "a.txt", "link")
    step("symlink dir", os.symlink, "d2renamed", "dirlink")
    step("symlink dangling", os.symlink, "nowhere", "dangling")
    step("readlink", os.readlink, "link")
    step("read through link", lambda: slurp("link")[:5])
    step("lstat link", os.lstat, "link")
    step("stat dangling", os.stat, "dangling")
    step("exists dangling", os.path.exists, "dangling")
    step("islink", os.path.islink, "dirlink")
    step("listdir via link", lambda: sorted(os.listdir("dirlink")))
    step("readlink file", os.readlink, "a.txt")
    # hard links
    step("link", os.link, "a.txt", "hard.txt")
    step("nlink", lambda: os.stat("a.txt").st_nlink)
    step("link dir", os.link, "d1", "hardd")
    # times and modes
    step("utime", os.utime, "a.txt", (1_000_000_000, 1_100_000_000))
    step("mtime", lambda: os.stat("a.txt").st_mtime)
    step("utime ns", os.utime, "b.bin", ns=(5, 1_234_567_891_123_456_789))
    step("mtime_ns", lambda: os.stat("b.bin").st_mtime_ns)
    step("chmod", os.chmod, "e.txt", 0o600)
    step("mode", lambda: oct(os.stat("e.txt").st_mode & 0o777))
    step("chmod dir", os.chmod, "d1", 0o750)
    step("access R", os.access, "a.txt", os.R_OK)
    step("access missing", os.access, "zzz", os.F_OK)
    # cwd
    step("chdir", os.chdir, "d1")
    step("getcwd", lambda: rel(os.getcwd()))
    step("relative open", lambda: slurp(j("..", "a.txt"))[:5])
    step("chdir file", os.chdir, j("..", "a.txt"))
    os.chdir(ROOT)
    # pathlib
    p = pathlib.Path(ROOT, "pl")
    step("pl mkdir", p.mkdir, parents=True, exist_ok=True)
    step("pl write_text", (p / "t.txt").write_text, "text")
    step("pl read_text", (p / "t.txt").read_text)
    step("pl touch", (p / "empty").touch)
    step("pl iterdir", lambda: sorted(x.name for x in p.iterdir()))
    step("pl glob", lambda: sorted(x.name for x in p.glob("*.txt")))
    step("pl rglob", lambda: sorted(rel(x) for x in pathlib.Path(ROOT).rglob("*.txt")))
    step("pl symlink_to", (p / "sl").symlink_to, "t.txt")
    step("pl resolve", lambda: rel((p / "sl").resolve()))
    step("pl rename", (p / "empty").rename, p / "empty2")
    step("pl unlink", (p / "empty2").unlink)
    step("pl exists", (p / "empty2").exists)
    step("pl stat size", lambda: (p / "t.txt").stat().st_size)
    # glob
    step("glob *", lambda: sorted(glob.glob("*")))
    step("glob **", lambda: sorted(glob.glob("**/*.txt", recursive=True)))
    step("glob missing", lambda: glob.glob("zz*"))
    # shutil
    step("copy", shutil.copy, "a.txt", "copy.txt")
    step("copy2", shutil.copy2, "b.bin", "copy2.bin")
    step(
        "copy2 mtime kept", lambda: os.stat("copy2.bin").st_mtime_ns == os.stat("b.bin").st_mtime_ns
    )
    step("copytree", shutil.copytree, "d1", "d1copy", symlinks=True)
    step("move file", shutil.move, "copy.txt", "d1copy")
    step("move dir", shutil.move, "d1copy", "d1moved")
    step("rmtree", shutil.rmtree, "d1moved")
    step("rmtree missing", shutil.rmtree, "nope")
    # tempfile (names are random: show only what is stable)
    fd, name = tempfile.mkstemp(dir=ROOT, prefix="mk", suffix=".tmp")
    os.write(fd, b"tmp")
    os.close(fd)
    step("mkstemp", lambda: (os.path.basename(name)[:2], os.path.getsize(name)))
    os.unlink(name)
    with tempfile.TemporaryDirectory(dir=ROOT) as td:
        with open(j(td, "x"), "w") as f:
            f.write("y")
        step("tempdir contents", lambda: os.listdir(td))
    step("tempdir removed", lambda: os.path.exists(td))
    with tempfile.NamedTemporaryFile(dir=ROOT, delete=True) as nt:
        nt.write(b"12345")
        nt.flush()
        step("named size", lambda: os.path.getsize(nt.name))
    step("named removed", lambda: os.path.exists(nt.name))
    with tempfile.SpooledTemporaryFile(max_size=4, dir=ROOT) as sp:
        sp.write(b"123456789")
        sp.seek(0)
        step("spooled", sp.read)
    # deletions at the end, so the final trees also show deletions
    step("unlink", os.unlink, "copy2.bin")
    step("unlink missing", os.unlink, "copy2.bin")
    step("rmdir", os.rmdir, j("d1", "d3") if os.path.isdir(j("d1", "d3")) else "zz")
    print("\n".join(OUT))
    print("TREE")
    print(tree())


main()

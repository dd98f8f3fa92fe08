"""Ordinary Python attempts to reach the host.  Each must fail with an
ordinary Python exception, and the host must be untouched.

These test the OS layer, so they run with the restricted mode off: the
threat model assumes a fully compromised interpreter, and the raw ``os``,
``signal`` and ``subprocess`` modules reach the system calls directly.  The
in-guest layer has its own corpus in tests/guest."""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import textwrap
import threading

import sandbox_run

OS_LAYER_ONLY = sandbox_run.Policy(restricted=False)


def run(code: str, **kw: object) -> sandbox_run.Result:
    kw.setdefault("policy", OS_LAYER_ONLY)
    return sandbox_run.run(textwrap.dedent(code), **kw)  # type: ignore[arg-type]


def test_reading_etc_passwd_fails(host_canary: pathlib.Path) -> None:
    r = run(f"""
        for p in ["/etc/passwd", "/etc/shadow", {str(host_canary)!r}, "/proc/self/environ",
                  "/proc/1/cmdline", "/root/.bashrc", "../../etc/passwd"]:
            try:
                open(p).read()
                print("READ", p)
            except FileNotFoundError as e:
                print("ENOENT", e.filename)
    """)
    assert r.ok, r.stderr
    assert b"READ" not in r.stdout and b"HOST-SECRET" not in r.stdout
    assert r.stdout.count(b"ENOENT") == 7


def test_listing_root_shows_only_the_virtual_tree() -> None:
    r = run("import os; print(sorted(os.listdir('/')))")
    assert r.stdout == b"['dev', 'etc', 'lib', 'lib64', 'proc', 'sandbox', 'sys', 'tmp', 'usr']\n"
    r = run("import os; print(sorted(os.listdir('/etc')), sorted(os.listdir('/proc')))")
    assert r.stdout == b"['ld.so.cache'] ['cpuinfo', 'meminfo', 'self']\n"


def test_connecting_to_a_local_port_fails() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def watch() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    t = threading.Thread(target=watch)
    t.start()
    try:
        r = run(f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("CONNECTED")
            except PermissionError as e:
                print("PermissionError", e.errno)
        """)
    finally:
        t.join()
        server.close()
    assert r.stdout == b"PermissionError 13\n"
    assert accepted == []


def test_subprocess_fails() -> None:
    r = run("""
        import subprocess
        try:
            subprocess.run(["/bin/sh", "-c", "echo pwned"])
            print("RAN")
        except (PermissionError, FileNotFoundError) as e:
            print(type(e).__name__)
    """)
    assert r.ok, r.stderr
    assert r.stdout in (b"PermissionError\n", b"FileNotFoundError\n")


def test_os_system_runs_nothing(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    r = run(f"import os; print(os.system('touch {marker}') != 0)")
    assert r.ok, r.stderr
    assert r.stdout == b"True\n"
    assert not marker.exists()


def test_fork_fails() -> None:
    r = run("""
        import os
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            print("FORKED")
        except PermissionError:
            print("PermissionError")
    """)
    assert r.stdout == b"PermissionError\n"


def test_killing_the_parent_fails() -> None:
    controller = os.getpid()
    r = run(f"""
        import os, signal
        for pid in (os.getppid(), {controller}, -1, 1):
            try:
                os.kill(pid, signal.SIGKILL)
                print("SENT", pid)
            except PermissionError:
                print("denied", pid)
    """)
    assert r.stdout == f"denied 1\ndenied {controller}\ndenied -1\ndenied 1\n".encode()


def test_signals_to_itself_still_work() -> None:
    r = run("""
        import os, signal
        got = []
        signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
        os.kill(os.getpid(), signal.SIGUSR1)
        print(got, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    """)
    assert r.stdout == b"[1]\n"
    assert r.outcome is sandbox_run.Outcome.CRASHED and r.signal == 15


def test_threads_work_but_not_processes() -> None:
    r = run("""
        import threading
        out = []
        ts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]
        for t in ts: t.start()
        for t in ts: t.join()
        print(sorted(out))
    """)
    assert r.stdout == b"[0, 1, 2, 3, 4, 5, 6, 7]\n"


def test_no_host_path_reaches_the_guest(tmp_path: pathlib.Path) -> None:
    import tempfile

    r = run("""
        import os, sys
        seen = [os.getcwd(), os.readlink("/proc/self/exe"), sys.executable, repr(sys.path),
                __file__, repr(os.environ), repr(os.uname())]
        for top in ("/sandbox", "/tmp", "/proc", "/etc", "/dev", "/sys", "/usr/lib/sandbox-run"):
            for root, dirs, files in os.walk(top):
                seen.append(root); seen += dirs + files
                for n in files:
                    try:
                        st = os.stat(os.path.join(root, n))
                        seen.append(repr(st))
                    except OSError as e:
                        seen.append(str(e))
        try:
            open("/nonexistent/file")
        except OSError as e:
            seen.append(str(e))
        print("\\n".join(seen))
    """)
    assert r.ok, r.stderr
    out = r.stdout.decode()
    for host_thing in (
        tempfile.gettempdir() + "/sandbox-run-",
        "/work/",
        "/root",
        str(tmp_path),
        os.uname().nodename + "\n",
        str(pathlib.Path(sandbox_run.__file__).parent),
    ):
        assert host_thing not in out, host_thing
    assert "st_uid=1000" in out

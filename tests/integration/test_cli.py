"""The sandbox-run command, run as a user would run it."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import pytest

CLI = os.path.join(os.path.dirname(sys.executable), "sandbox-run")


def cli(
    *args: str, stdin: bytes = b"", cwd: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, cwd=cwd, timeout=60)


def test_script_with_arguments(tmp_path: pathlib.Path) -> None:
    s = tmp_path / "greet.py"
    s.write_text("import sys\nprint('hi', *sys.argv[1:])\nsys.exit(4)\n")
    p = cli(str(s), "a", "--not-an-option")
    assert p.stdout == b"hi a --not-an-option\n"
    assert p.stderr == b""
    assert p.returncode == 4


def test_dash_c() -> None:
    p = cli("-c", "import sys; print(sys.argv[1:]); print('e', file=sys.stderr)", "x")
    assert (p.returncode, p.stdout, p.stderr) == (0, b"['x']\n", b"e\n")


def test_uncaught_exception_exits_1_with_a_traceback() -> None:
    p = cli("-c", "1/0")
    assert p.returncode == 1
    assert p.stderr.endswith(b"ZeroDivisionError: division by zero\n")


def test_stdin_only_on_request() -> None:
    code = "import sys; print(repr(sys.stdin.read()))"
    assert cli("-c", code, stdin=b"secret").stdout == b"''\n"
    assert cli("--stdin", "-c", code, stdin=b"data").stdout == b"'data'\n"


def test_timeout_status_and_reason() -> None:
    p = cli("--timeout", "500ms", "-c", "while True: pass")
    assert p.returncode == 124
    assert p.stderr == b"sandbox-run: timeout: wall-clock timeout: killed after 500ms\n"


def test_killed_by_a_signal_status() -> None:
    # raw os and signal: the OS layer's business, so without the restricted mode
    p = cli("--no-restrict", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert p.returncode == 128 + 15
    assert p.stderr == b"sandbox-run: crashed: killed by SIGTERM\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus", "x.py"], b"unrecognized arguments: --bogus"),
        ([], b"nothing to run: give a SCRIPT, -c CODE or --exec PROGRAM"),
        (["missing.py"], b"missing.py: no such file"),
        (["--timeout", "10", "-c", "pass"], b"--timeout: give a unit, e.g. '10s'"),
        (["--memory", "lots", "-c", "pass"], b"--memory: cannot read size 'lots'"),
        (["--memory", "1MiB", "-c", "pass"], b"memory: at least 96MiB is needed"),
        (
            ["--mount", "/nonexistent-dir:/data", "-c", "pass"],
            b"host path /nonexistent-dir does not exist",
        ),
        (["--mount", "/tmp:/usr", "-c", "pass"], b"/usr is provided by the sandbox"),
        (["--mount", "nocolon", "-c", "pass"], b"expected HOST:GUEST[:ro|rw|overlay]"),
        (["--policy", "/nonexistent.toml", "-c", "pass"], b"does not exist"),
        (["--exec", "/nonexistent-prog"], b"/nonexistent-prog: no such file"),
    ],
)
def test_usage_errors_are_one_line_with_status_125(args: list[str], message: bytes) -> None:
    p = cli(*args)
    assert p.returncode == 125
    assert p.stderr.startswith(b"sandbox-run: error: ")
    assert message in p.stderr
    assert p.stderr.count(b"\n") == 1
    assert p.stdout == b""


def test_policy_file_and_flag_override(tmp_path: pathlib.Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("from the host")
    pol = tmp_path / "policy.toml"
    pol.write_text('[limits]\ntimeout = "20s"\n[[mount]]\nhost = "data"\nguest = "/data"\n')
    code = "print(open('/data/in.txt').read(), flush=True); import time; time.sleep(3)"
    p = cli("--policy", str(pol), "--timeout", "1s", "-c", code)
    assert p.stdout == b"from the host\n"
    assert p.returncode == 124  # the flag overrode the file's 20s


def test_policy_file_errors_name_the_key(tmp_path: pathlib.Path) -> None:
    pol = tmp_path / "policy.toml"
    pol.write_text('[limits]\ntimeout = "5s"\nwall = "1s"\n')
    p = cli("--policy", str(pol), "-c", "pass")
    assert p.returncode == 125
    assert b"unknown key 'wall'" in p.stderr


def test_mounts_read_only_and_read_write(tmp_path: pathlib.Path) -> None:
    ro = tmp_path / "ro"
    rw = tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "a.txt").write_text("read me")
    code = (
        "import os\n"
        "print(open('/in/a.txt').read())\n"
        "try:\n    open('/in/b.txt', 'w')\nexcept OSError as e:\n    print('ro:', e.strerror)\n"
        "with open('/out/result.txt', 'w') as f:\n    f.write('written in the sandbox')\n"
        "print(sorted(os.listdir('/out')))\n"
    )
    p = cli("--mount", f"{ro}:/in", "--mount", f"{rw}:/out:rw", "-c", code)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"read me\nro: Read-only file system\n['result.txt']\n"
    assert (rw / "result.txt").read_text() == "written in the sandbox"
    assert not (ro / "b.txt").exists()


def test_trace_prints_mediated_calls() -> None:
    p = cli("--trace", "-c", "open('/nonexistent/x')")
    lines = p.stderr.decode().splitlines()
    assert any("openat(AT_FDCWD, '/nonexistent/x'" in ln and "= -1 ENOENT" in ln for ln in lines), (
        lines[-5:]
    )
    assert any("newfstatat(" in ln and ") = 0" in ln for ln in lines)
    assert all(ln.startswith("[") or not ln.startswith("  ") for ln in lines[:5])


def test_exec_runs_a_native_program(compile_c: Callable[..., str]) -> None:
    exe = compile_c(
        '#include <stdio.h>\nint main(int c, char **v) { printf("%s|%s\\n", v[0], v[1]);'
        " return 3; }\n"
    )
    p = cli("--exec", exe, "arg")
    assert p.stdout == f"/sandbox/{os.path.basename(exe)}|arg\n".encode()
    assert p.returncode == 3


def test_launch_failure_is_one_line_with_status_119(tmp_path: pathlib.Path) -> None:
    prog = tmp_path / "garbage"
    prog.write_bytes(b"\x00\x01 not a program")
    prog.chmod(0o755)
    p = cli("--exec", str(prog))
    assert p.returncode == 119
    assert p.stderr == (
        b"sandbox-run: error: launching the guest failed while executing the guest "
        b"program: Exec format error\n"
    )


def test_version() -> None:
    p = cli("--version")
    assert p.returncode == 0 and p.stdout.startswith(b"sandbox-run ")


def test_changes_and_diff_of_an_overlay(tmp_path: pathlib.Path) -> None:
    (tmp_path / "notes.txt").write_text("one\n")
    code = "open('/w/notes.txt', 'a').write('two\\n'); open('/w/new', 'w').close()"
    p = cli("--mount", f"{tmp_path}:/w:overlay", "--changes", "--diff", "-c", code)
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode()
    assert "sandbox-run: modified /w/notes.txt\n" in err
    assert "sandbox-run: added /w/new\n" in err
    assert "+two\n" in err and "--- a/w/notes.txt" in err
    assert (tmp_path / "notes.txt").read_text() == "one\n"


def test_unapplied_changes_are_warned_about(tmp_path: pathlib.Path) -> None:
    p = cli("--mount", f"{tmp_path}:/w:rw", "-c", "import os; os.symlink('/etc/passwd', '/w/l')")
    assert p.returncode == 0
    assert p.stderr == (
        b"sandbox-run: warning: /w/l: not applied: a symlink pointing outside "
        b"the mount is not created on the host\n"
    )


def test_without_the_privilege_to_mount() -> None:
    # The controller itself unprivileged: /sandbox and /tmp fall back to a host
    # temporary directory; modes that need a mount are refused up front.
    unprivileged = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    code = (
        "import os\nwith open('/tmp/x', 'w') as f: f.write('ok')\n"
        "print(os.getuid(), open('/tmp/x').read())"
    )
    p = subprocess.run([*unprivileged, CLI, "-c", code], capture_output=True, env=env, timeout=60)
    assert (p.returncode, p.stdout) == (0, b"1000 ok\n")
    # Nor can it make cgroups: it says what that leaves unenforced, in one line.
    assert p.stderr.startswith(b"sandbox-run: warning: no usable cgroups")
    assert p.stderr.count(b"\n") == 1 and b"the thread limit is not enforced" in p.stderr
    p = subprocess.run(
        [*unprivileged, CLI, "--tmpfs", "/s", "-c", "pass"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 125
    assert p.stderr == (
        b"sandbox-run: error: mount /s: tmpfs mounts need the privilege to create "
        b"mounts (CAP_SYS_ADMIN; run sandbox-run as root)\n"
    )


def test_restricted_mode_is_on_and_no_restrict_turns_it_off() -> None:
    code = "import sys\nprint(type(sys).__name__, hasattr(sys, '_getframe'))"
    p = cli("-c", code)
    assert p.stdout == b"SysView False\n", p.stderr
    p = cli("--no-restrict", "-c", code)
    assert p.stdout == b"module True\n", p.stderr


def test_prelude_grants_names(tmp_path: pathlib.Path) -> None:
    prelude = tmp_path / "tools.py"
    prelude.write_text(
        "_count = [0]\ndef bump():\n    _count[0] += 1\n    return _count[0]\n__all__ = ['bump']\n"
    )
    p = cli("--prelude", str(prelude), "-c", "bump(); print(bump(), bump.__name__)")
    assert p.stdout == b"2 bump\n", p.stderr
    p = cli("--prelude", str(prelude), "-c", "print(bump.__closure__)")
    assert p.returncode == 1
    assert p.stderr.startswith(
        b"SandboxAttributeError: sandbox policy blocks attribute "
        b"'__closure__' (/sandbox/main.py, line 1)"
    )


def test_bad_prelude_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    p = cli("--prelude", str(tmp_path / "missing.py"), "-c", "pass")
    assert p.returncode == 125
    assert p.stderr == f"sandbox-run: error: prelude {tmp_path}/missing.py: no such file\n".encode()
    p = cli("--prelude", str(tmp_path / "x.py"), "--exec", "/bin/true")
    assert p.returncode == 125
    assert p.stderr == b"sandbox-run: error: --prelude runs Python: it cannot be used with --exec\n"


def test_capability_example_runs() -> None:
    root = pathlib.Path(__file__).resolve().parents[2] / "examples"
    p = cli("--prelude", str(root / "grants.py"), str(root / "bot.py"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().splitlines() == [
        "scores: {'alice': 3, 'bob': 5}",
        "moves so far: 1",
        "board._moves: sandbox policy blocks private attribute '_moves' of Board object",
        "scores.__closure__: sandbox policy blocks attribute '__closure__' (<string>, line 1)",
        "scores.__globals__: sandbox policy blocks attribute '__globals__' (<string>, line 1)",
    ]

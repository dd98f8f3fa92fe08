"""Python scripts in the real sandboxed PyPy: the basics users rely on."""

from __future__ import annotations

import os
import pathlib
import textwrap

import pytest
import trio

import sandbox_run
from sandbox_run import Outcome, Policy


def run(code: str, **kw: object) -> sandbox_run.Result:
    return sandbox_run.run(textwrap.dedent(code), **kw)  # type: ignore[arg-type]


def test_hello_world() -> None:
    r = run("print('hello, world')")
    assert r.outcome is Outcome.COMPLETED
    assert r.exit_code == 0 and r.ok
    assert r.stdout == b"hello, world\n"
    assert r.stderr == b""
    assert r.reason == "exited with status 0"


def test_exit_status_is_the_guests() -> None:
    r = run("import sys; sys.exit(7)")
    assert r.outcome is Outcome.COMPLETED and r.exit_code == 7
    assert run("exit(3)").exit_code == 3  # the builtin site would have provided
    assert run("raise SystemExit('bye')").exit_code == 1


def test_uncaught_exception_traceback_starts_at_the_script() -> None:
    r = run("""
        def f():
            raise ValueError("boom")
        f()
    """)
    assert r.exit_code == 1
    err = r.stderr.decode()
    assert err.startswith("Traceback (most recent call last):\n")
    assert 'File "/sandbox/main.py", line 4, in <module>' in err
    assert err.rstrip().endswith("ValueError: boom")
    assert "bootstrap" not in err


def test_argv() -> None:
    r = run("import sys; print(sys.argv)", argv=["a", "b c", "--x"])
    assert r.stdout == b"['/sandbox/main.py', 'a', 'b c', '--x']\n"


def test_stdlib_imports_work() -> None:
    r = run("""
        import json, re, collections, math, datetime, decimal, itertools, dataclasses, typing
        import functools, random, hashlib, heapq, bisect, enum, string, textwrap, statistics
        import fractions, io, csv, base64, struct, time, pathlib, tempfile, operator, copy
        @dataclasses.dataclass
        class P:
            x: int
            y: typing.List[int]
        out = {
            "json": json.loads(json.dumps({"a": [1, 2]})),
            "re": re.findall(r"\\d+", "a1b22c333"),
            "counter": collections.Counter("abca").most_common(1),
            "math": math.isqrt(10**6),
            "date": datetime.date(2024, 2, 29).isoformat(),
            "decimal": str(decimal.Decimal("1.1") + decimal.Decimal("2.2")),
            "perm": len(list(itertools.permutations(range(4)))),
            "dc": dataclasses.asdict(P(1, [2])),
            "sha": hashlib.sha256(b"x").hexdigest()[:8],
            "frac": str(fractions.Fraction(1, 3) * 3),
            "mean": statistics.mean([1, 2, 3, 4]),
        }
        print(json.dumps(out, sort_keys=True))
    """)
    assert r.ok, r.stderr
    assert r.stdout == (
        b'{"counter": [["a", 2]], "date": "2024-02-29", "dc": {"x": 1, "y": [2]}, '
        b'"decimal": "3.3", "frac": "1", "json": {"a": [1, 2]}, "math": 1000, "mean": 2.5, '
        b'"perm": 24, "re": ["1", "22", "333"], "sha": "2d711642"}\n'
    )


def test_tmp_is_private_and_writable() -> None:
    r = run("""
        import os, tempfile
        with open("/tmp/a.txt", "w") as f:
            f.write("data" * 1000)
        with open("/tmp/a.txt") as f:
            assert f.read() == "data" * 1000
        os.makedirs("/tmp/x/y/z")
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "t")
            with open(p, "wb") as f:
                f.write(b"1")
            assert os.path.getsize(p) == 1
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"abc"); f.flush()
            assert os.stat(f.name).st_size == 3
        os.rename("/tmp/a.txt", "/tmp/x/b.txt")
        print(sorted(os.listdir("/tmp")), sorted(os.listdir("/tmp/x")))
        os.remove("/tmp/x/b.txt")
    """)
    assert r.ok, r.stderr
    assert r.stdout == b"['x'] ['b.txt', 'y']\n"
    # A second sandbox starts with an empty /tmp.
    assert run("import os; print(os.listdir('/tmp'))").stdout == b"[]\n"


def test_working_directory_is_sandbox() -> None:
    r = run("""
        import os
        print(os.getcwd())
        print(sorted(os.listdir(".")))
        with open("out.txt", "w") as f:
            f.write("x")
        print(os.path.exists("/sandbox/out.txt"))
    """)
    assert r.stdout == b"/sandbox\n['main.py']\nTrue\n"


def test_stdin_is_empty_unless_given() -> None:
    assert run("import sys; print(repr(sys.stdin.read()))").stdout == b"''\n"
    r = run("import sys; print(sys.stdin.read().upper())", stdin=b"abc\ndef\n")
    assert r.stdout == b"ABC\nDEF\n\n"


def test_stderr_is_separate() -> None:
    r = run("import sys; print('out'); print('err', file=sys.stderr)")
    assert r.stdout == b"out\n" and r.stderr == b"err\n"


def test_unicode_output_and_filenames() -> None:
    r = run("""
        with open("/tmp/naïve-файл.txt", "w") as f:
            f.write("✓")
        import os; print(os.listdir("/tmp"), open("/tmp/naïve-файл.txt").read())
    """)
    assert r.ok, r.stderr
    assert r.stdout.decode() == "['naïve-файл.txt'] ✓\n"


def test_virtual_identity_and_host() -> None:
    r = run("""
        import os, platform
        print(os.getuid(), os.getgid(), os.geteuid(), os.getppid())
        print(platform.node(), platform.system())
    """)
    assert r.stdout == b"1000 1000 1000 1\nsandbox Linux\n"


def test_timeout_kills_and_reports() -> None:
    r = run("import time\nprint('started', flush=True)\ntime.sleep(60)", policy=Policy(timeout=1.0))
    assert r.outcome is Outcome.TIMEOUT
    assert r.stdout == b"started\n"
    assert r.reason == "wall-clock timeout: killed after 1s"
    assert r.exit_status == 124
    assert 1.0 <= r.wall_time < 5.0


def test_timeout_kills_a_busy_loop() -> None:
    r = run("while True: pass", policy=Policy(timeout=0.5))
    assert r.outcome is Outcome.TIMEOUT


def test_run_path(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "tool.py"
    script.write_text("import sys, os\nprint(__file__, sys.argv[1:], os.getcwd())\n")
    r = sandbox_run.run_path(script, argv=["x"])
    assert r.stdout == b"/sandbox/tool.py ['x'] /sandbox\n"
    with pytest.raises(sandbox_run.PolicyError, match="no such file"):
        sandbox_run.run_path(tmp_path / "missing.py")


def test_concurrent_sandboxes_in_one_trio_loop() -> None:
    results: dict[int, sandbox_run.Result] = {}

    async def one(i: int) -> None:
        results[i] = await sandbox_run.run_async(f"import time; time.sleep(0.2); print({i} * {i})")

    async def main() -> None:
        async with trio.open_nursery() as n:
            for i in range(6):
                n.start_soon(one, i)

    trio.run(main)
    assert {i: r.stdout for i, r in results.items()} == {i: b"%d\n" % (i * i) for i in range(6)}


def test_private_directory_is_removed(tmp_path: pathlib.Path) -> None:
    import tempfile

    before = set(os.listdir(tempfile.gettempdir()))
    run("with open('/tmp/keep', 'w') as f: f.write('x')")
    after = set(os.listdir(tempfile.gettempdir()))
    # The controller-wide pool (sandbox-run-shared-*) lives until the process exits.
    private = {n for n in after - before if n.startswith("sandbox-run-")}
    assert not {n for n in private if not n.startswith("sandbox-run-shared-")}


def test_mediated_calls_and_resources_are_counted() -> None:
    r = run("open('/tmp/x', 'w').close()\nsum(i * i for i in range(3_000_000))")
    assert r.syscalls["openat"] > 10
    assert r.syscalls["newfstatat"] > 10
    assert 0 < r.cpu_time < r.wall_time + 0.5
    assert 20 << 20 < r.peak_memory < 512 << 20

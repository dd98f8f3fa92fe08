"""Each limit of a policy, against the real sandboxed PyPy: a script that stays
just under it completes normally; one that goes a little over gets the
limit's outcome, reason and exit status.

The bounds on times here are the tolerances docs/limits.md states, with
room for a loaded machine; scripts/bench_limits.py measures the real delays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import sandbox_run
from sandbox_run import Outcome, Policy, Quota
from sandbox_run.result import (
    EXIT_CPU_LIMIT,
    EXIT_MEMORY_LIMIT,
    EXIT_OUTPUT_LIMIT,
    EXIT_POLICY_VIOLATION,
    EXIT_TIMEOUT,
)

MiB = 1 << 20
#: Slack for the controller noticing a limit and the kernel delivering SIGKILL,
#: on a shared machine (the stated tolerance is far tighter; see the module doc).
SLACK = 2.0


def run(code: str, **kw: object) -> sandbox_run.Result:
    return sandbox_run.run(textwrap.dedent(code), **kw)  # type: ignore[arg-type]


# --- wall clock ----------------------------------------------------------


def test_wall_clock_just_under_completes() -> None:
    r = run("import time\ntime.sleep(0.5)\nprint('done')", policy=Policy(timeout=3.0))
    assert r.outcome is Outcome.COMPLETED, r.reason
    assert r.stdout == b"done\n"


def test_wall_clock_just_over_is_a_timeout() -> None:
    r = run(
        "import time\nprint('started', flush=True)\ntime.sleep(1.5)\nprint('late')",
        policy=Policy(timeout=1.0),
    )
    assert r.outcome is Outcome.TIMEOUT
    assert r.exit_status == EXIT_TIMEOUT
    assert r.reason == "wall-clock timeout: killed after 1s"
    assert r.stdout == b"started\n"
    assert 1.0 <= r.wall_time < 1.0 + SLACK


# --- CPU time ------------------------------------------------------------

SPIN_UNTIL = """
import time
while time.process_time() < {until}:
    pass
print("done")
"""


def test_cpu_time_just_under_completes() -> None:
    r = run(SPIN_UNTIL.format(until=0.8), policy=Policy(cpu_time=1.5, timeout=20))
    assert r.outcome is Outcome.COMPLETED, r.reason
    assert r.stdout == b"done\n"
    assert 0.8 <= r.cpu_time < 1.5


def test_cpu_time_just_over_is_the_cpu_limit() -> None:
    r = run(SPIN_UNTIL.format(until=1.3), policy=Policy(cpu_time=1.0, timeout=20))
    assert r.outcome is Outcome.CPU_LIMIT
    assert r.exit_status == EXIT_CPU_LIMIT
    assert r.reason == "CPU time limit: killed after 1s of CPU time"
    assert r.stdout == b""
    assert 1.0 <= r.cpu_time < 1.0 + 0.5


def test_cpu_time_counts_user_and_system_time() -> None:
    # A loop of cheap in-kernel calls burns system time, not user time.
    code = """
    import os
    while True:
        os.getpid()
        os.lseek(0, 0, 0) if False else None
        os.times()
    """
    r = run(code, policy=Policy(cpu_time=1.0, timeout=20))
    assert r.outcome is Outcome.CPU_LIMIT
    assert r.cpu_time < 1.5


# --- memory --------------------------------------------------------------

HOLD = """
chunks = [bytes({chunk}) for _ in range({count})]
print("held", sum(map(len, chunks)) >> 20, "MiB")
"""


def test_memory_just_under_completes() -> None:
    # 256 MiB gives a heap of 128 MiB (docs/limits.md): 96 MiB of live data fits.
    r = run(HOLD.format(chunk=MiB, count=96), policy=Policy(memory=256 * MiB))
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr[-300:])
    assert r.stdout == b"held 96 MiB\n"
    assert r.peak_memory < 256 * MiB


def test_memory_just_over_is_the_memory_limit_with_memory_error() -> None:
    r = run(HOLD.format(chunk=MiB, count=140), policy=Policy(memory=256 * MiB))
    assert r.outcome is Outcome.MEMORY_LIMIT
    assert r.exit_status == EXIT_MEMORY_LIMIT
    assert r.reason == "memory limit: MemoryError at the heap limit of 128MiB (--memory 256MiB)"
    assert r.exception is not None and r.exception.type == "MemoryError"
    assert r.stderr is not None and r.stderr.endswith(b"MemoryError\n")


@pytest.mark.parametrize(
    "grow",
    [
        "l.append([0])",  # many tiny GC objects
        "l.append('x' * 1000)",  # strings
        "l.append(bytearray(1 << 16))",  # raw buffers
    ],
)
def test_growing_without_bound_ends_at_the_memory_limit(grow: str) -> None:
    r = run(f"l = []\nwhile True:\n    {grow}", policy=Policy(memory=256 * MiB, timeout=30))
    assert r.outcome is Outcome.MEMORY_LIMIT, (r.reason, r.stderr[-300:])
    assert r.peak_memory <= 256 * MiB


def test_a_script_may_catch_memory_error_and_go_on() -> None:
    r = run(
        """
        chunks = []
        try:
            while True:
                chunks.append(bytearray(8 << 20))
        except MemoryError:
            n = len(chunks)
            del chunks
        print("recovered", n > 4)
        """,
        policy=Policy(memory=256 * MiB),
    )
    assert r.outcome is Outcome.COMPLETED, r.reason
    assert r.stdout == b"recovered True\n"


# --- output --------------------------------------------------------------


def test_output_just_under_completes() -> None:
    r = run("import sys\nsys.stdout.write('x' * 999)", policy=Policy(output=1000))
    assert r.outcome is Outcome.COMPLETED, r.reason
    assert r.stdout == b"x" * 999


def test_output_just_over_is_truncated_at_the_cap_and_ends_the_guest() -> None:
    r = run(
        """
        import sys, time
        sys.stdout.write('x' * 1001)
        sys.stdout.flush()
        time.sleep(30)
        """,
        policy=Policy(output=1000, timeout=60),
    )
    assert r.outcome is Outcome.OUTPUT_LIMIT
    assert r.exit_status == EXIT_OUTPUT_LIMIT
    assert r.reason == (
        "output limit: 1000B of stdout and stderr written; the rest was discarded "
        "and the guest killed"
    )
    assert r.stdout == b"x" * 1000
    assert r.output_bytes == 1000
    assert r.wall_time < SLACK + 1


def test_output_limit_counts_stdout_and_stderr_together() -> None:
    r = run(
        """
        import os
        os.write(1, b'o' * 600)
        os.write(2, b'e' * 600)
        """,
        policy=Policy(output=1000),
    )
    assert r.outcome is Outcome.OUTPUT_LIMIT
    assert r.stdout is not None and r.stderr is not None
    # Which stream is read first is up to the scheduler; together they fill the cap.
    assert len(r.stdout) + len(r.stderr) == 1000
    assert r.stdout == b"o" * len(r.stdout)
    assert r.stderr == b"e" * len(r.stderr)
    assert r.output_bytes == 1000


# --- open descriptors ----------------------------------------------------

OPEN_FILES = """
files = [open('/sandbox/main.py') for _ in range({n})]
print('opened', len(files))
"""


def test_open_files_just_under_completes() -> None:
    # 0, 1 and 2 are open already (the bootstrap's channel is numbered
    # beyond the limit, and does not count).
    r = run(OPEN_FILES.format(n=29), policy=Policy(open_files=32))
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr)
    assert r.stdout == b"opened 29\n"


def test_open_files_just_over_gives_emfile() -> None:
    r = run(OPEN_FILES.format(n=30), policy=Policy(open_files=32))
    assert r.outcome is Outcome.EXCEPTION
    assert r.exception is not None
    assert r.exception.type == "OSError"
    assert r.exception.message.startswith("[Errno 24] Too many open files")


# --- threads -------------------------------------------------------------

THREADS = """
import threading
gate = threading.Event()
started = []
try:
    for i in range({n}):
        t = threading.Thread(target=gate.wait)
        t.start()
        started.append(t)
finally:
    gate.set()  # let the others end, so that the interpreter can exit
for t in started:
    t.join()
print('threads', len(started))
"""


def test_threads_just_under_completes() -> None:
    r = run(THREADS.format(n=3), policy=Policy(threads=4, allow_threads=True))  # 3 + main
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr)
    assert r.stdout == b"threads 3\n"


def test_threads_just_over_cannot_start() -> None:
    r = run(THREADS.format(n=4), policy=Policy(threads=4, allow_threads=True, timeout=20))
    assert r.outcome is Outcome.EXCEPTION, (r.reason, r.stderr)
    assert r.exception is not None
    assert (r.exception.type, r.exception.message) == ("RuntimeError", "can't start new thread")


# --- recursion -----------------------------------------------------------

RECURSE = """
import sys
def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)
print(sys.getrecursionlimit(), depth({n}))
"""


def test_recursion_just_under_completes() -> None:
    r = run(RECURSE.format(n=180), policy=Policy(recursion_limit=200))
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr)
    assert r.stdout == b"200 180\n"


def test_recursion_over_is_a_recursion_error() -> None:
    # PyPy applies the limit as stack space, so a small frame reaches about
    # four times the limit (docs/limits.md); five times always fails.
    r = run(RECURSE.format(n=1000), policy=Policy(recursion_limit=200))
    assert r.outcome is Outcome.EXCEPTION
    assert r.exception is not None and r.exception.type == "RecursionError"


def test_a_high_recursion_limit_gets_the_stack_it_needs() -> None:
    # 20,000 needs more than the usual 8 MiB stack: without a matching stack
    # rlimit PyPy would die of SIGSEGV instead of raising RecursionError.
    r = run(
        """
        def depth(n):
            return 0 if n == 0 else 1 + depth(n - 1)
        try:
            depth(10 ** 7)
        except RecursionError:
            print('RecursionError')
        """,
        policy=Policy(recursion_limit=20_000),
    )
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr[-300:])
    assert r.stdout == b"RecursionError\n"


# --- bytes written to files ----------------------------------------------

WRITE = """
with open('/tmp/out', 'wb') as f:
    f.write(b'x' * {n})
print('wrote', {n})
"""


def test_file_bytes_just_under_completes() -> None:
    quota = Quota(max_bytes=2 * MiB, max_file_size=1 * MiB)
    r = run(WRITE.format(n=MiB - 1), policy=Policy(private=quota))
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr)
    assert r.written_bytes >= MiB - 1


def test_file_bytes_over_the_largest_file_gives_efbig() -> None:
    quota = Quota(max_bytes=4 * MiB, max_file_size=1 * MiB)
    r = run(WRITE.format(n=MiB + 1), policy=Policy(private=quota))
    assert r.outcome is Outcome.EXCEPTION
    assert r.exception is not None
    assert r.exception.message.startswith("[Errno 27] File too large")


def test_file_bytes_over_the_area_quota_gives_enospc() -> None:
    quota = Quota(max_bytes=1 * MiB, max_file_size=4 * MiB)
    r = run(WRITE.format(n=MiB + 4096), policy=Policy(private=quota))
    assert r.outcome is Outcome.EXCEPTION
    assert r.exception is not None
    assert r.exception.message.startswith("[Errno 28] No space left on device")


# --- refused calls -------------------------------------------------------


# The restricted mode has no os.fork: these run without it, to reach the call.
OS_LAYER = Policy(restricted=False)


def test_refused_calls_are_errors_by_default() -> None:
    r = run(
        "import os\ntry:\n    os.fork()\nexcept OSError as e:\n    print(e.errno)", policy=OS_LAYER
    )
    assert r.outcome is Outcome.COMPLETED
    assert r.stdout == b"1\n"
    assert [d.syscall for d in r.denials] == ["clone"]


def test_kill_on_refusal_ends_the_guest_at_its_first_refused_call() -> None:
    r = run(
        "import os\nprint('before', flush=True)\nos.fork()\nprint('after')",
        policy=OS_LAYER.replace(kill_on_refusal=True),
    )
    assert r.outcome is Outcome.POLICY_VIOLATION
    assert r.exit_status == EXIT_POLICY_VIOLATION
    assert r.stdout == b"before\n"
    assert r.violation is not None
    assert r.violation.syscall == "clone"
    assert r.reason.startswith("refused clone (")
    assert r.reason.endswith("); the policy ends the guest at its first refused call")


def test_kill_on_refusal_leaves_ordinary_programs_alone() -> None:
    r = run(
        "import json, os, re, tempfile\nprint(json.dumps(sorted(os.listdir('.'))))",
        policy=Policy(kill_on_refusal=True),
    )
    assert r.outcome is Outcome.COMPLETED, r.reason
    assert r.denials == ()


# --- the same limits from the command line --------------------------------


# PyPy does not flush files left open at exit: close them to see the error.
FILE_2KIB = "with open('/tmp/f', 'wb') as f: f.write(bytes(2048))"
FILE_1MIB = "with open('/tmp/f', 'wb') as f: f.write(bytes(1 << 20))"


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox_run.cli", *args], capture_output=True, timeout=60
    )


@pytest.mark.parametrize(
    ("flags", "code", "status", "outcome"),
    [
        (("--cpu-time", "1s"), "while True: pass", EXIT_CPU_LIMIT, "cpu_limit"),
        (("--output", "10B"), "print('x' * 20)", EXIT_OUTPUT_LIMIT, "output_limit"),
        (("--memory", "256MiB"), "x = bytes(200 << 20)", EXIT_MEMORY_LIMIT, "memory_limit"),
        (("--open-files", "16"), "l = [open('main.py') for _ in range(20)]", 1, "exception"),
        (("--threads", "1"), "import threading; threading.Thread().start()", 1, "exception"),
        (("--recursion-limit", "50"), "def f(n): return f(n + 1)\nf(0)", 1, "exception"),
        (("--disk", "64KiB"), FILE_1MIB, 1, "exception"),
        (("--max-file-size", "1KiB"), FILE_2KIB, 1, "exception"),
        (
            ("--kill-on-refusal", "--no-restrict"),
            "import os; os.fork()",
            EXIT_POLICY_VIOLATION,
            "policy_violation",
        ),
    ],
)
def test_cli_flags_set_each_limit(
    flags: tuple[str, ...], code: str, status: int, outcome: str
) -> None:
    p = cli("--json", "--timeout", "20s", *flags, "-c", code)
    assert p.returncode == status, p.stderr
    report = json.loads(p.stdout)
    assert report["outcome"] == outcome
    assert report["exit_status"] == status


def test_cli_json_is_one_object_with_outcome_usage_and_output() -> None:
    p = cli("--json", "-c", "import sys; print('hello'); sys.stderr.buffer.write(b'\\xff')")
    assert p.returncode == 0, p.stderr
    assert p.stderr == b""
    report = json.loads(p.stdout)
    assert report["outcome"] == "completed"
    assert report["reason"] == "exited with status 0"
    assert report["exit_code"] == 0
    assert report["stdout"] == "hello\n"
    assert report["stdout_encoding"] == "utf-8"
    assert (report["stderr"], report["stderr_encoding"]) == ("/w==", "base64")
    usage = report["usage"]
    assert usage["cpu_time"] > 0
    assert usage["peak_memory"] > 10 * MiB
    assert usage["output_bytes"] == 7
    assert usage["syscalls"]["openat"] > 0
    assert report["exception"] is None


def test_cli_json_carries_the_exception_as_text() -> None:
    p = cli("--json", "-c", "raise KeyError('nope')")
    assert p.returncode == 1
    report = json.loads(p.stdout)
    assert report["outcome"] == "exception"
    assert report["exception"]["type"] == "KeyError"
    assert report["exception"]["message"] == "'nope'"
    assert report["exception"]["traceback"].startswith("Traceback (most recent call last):")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--cpu-time", "10", "--cpu-time: give a unit, e.g. '10s'"),
        ("--output", "lots", "--output"),
        ("--threads", "many", "argument --threads: expected a whole number, got 'many'"),
        ("--open-files", "3", "open_files: expected a whole number from 16 to"),
        ("--recursion-limit", "1000000", "recursion_limit: expected a whole number from 50"),
    ],
)
def test_cli_rejects_bad_limit_values_in_one_line(flag: str, value: str, message: str) -> None:
    p = cli(flag, value, "-c", "pass")
    assert p.returncode == 125
    lines = p.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sandbox-run: error: ")
    assert message in lines[0]

"""Hostile scripts against enforcement: each tries to keep running past a
limit, and each must still be stopped, promptly, with the right outcome.

Every stop is a SIGKILL from the controller (or the kernel), which no
handler, mask, block or state of the guest can delay.  The scripts run without
the restricted mode, as if they had broken out of it.  Time bounds are
generous (shared machines); scripts/bench_limits.py measures the real delays.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest
from hostile import lines, native

import sandbox_run
from sandbox_run import Outcome, Policy

SLACK = 2.0


def run(code: str, policy: Policy | None = None) -> sandbox_run.Result:
    # Without the restricted mode: enforcement must hold against a script
    # that controls its interpreter completely.
    policy = (policy or Policy()).replace(restricted=False)
    return sandbox_run.run(textwrap.dedent(code), policy=policy)


IGNORE_ALL_SIGNALS = """
import signal
for s in signal.Signals:
    try:
        signal.signal(s, signal.SIG_IGN)
    except (OSError, ValueError, RuntimeError):
        pass
"""


def test_catching_sigxcpu_does_not_stop_the_cpu_limit() -> None:
    r = run(
        IGNORE_ALL_SIGNALS
        + """
import signal
hits = []
signal.signal(signal.SIGXCPU, lambda *a: hits.append(1))
while True:
    pass
""",
        policy=Policy(cpu_time=1.0, timeout=30),
    )
    assert r.outcome is Outcome.CPU_LIMIT
    assert r.signal == 9
    assert r.cpu_time < 1.5


def test_ignoring_every_signal_does_not_stop_the_wall_clock() -> None:
    r = run(IGNORE_ALL_SIGNALS + "import time\ntime.sleep(3600)", policy=Policy(timeout=1.0))
    assert r.outcome is Outcome.TIMEOUT
    assert r.wall_time < 1.0 + SLACK


@pytest.mark.parametrize(
    "block",
    [
        "import time; time.sleep(3600)",
        "import signal; signal.pause()",
        "import threading; l = threading.Lock(); l.acquire(); l.acquire()",
        "import select; select.select([], [], [])",
        "import os; r, w = os.pipe(); os.read(r, 1)",
        "import os, signal; os.kill(os.getpid(), signal.SIGSTOP)",
    ],
    ids=["sleep", "pause", "deadlock", "select", "read-own-pipe", "sigstop"],
)
def test_blocking_does_not_outlast_the_wall_clock(block: str) -> None:
    r = run(f"print('blocking', flush=True)\n{block}", policy=Policy(timeout=1.0))
    assert r.outcome is Outcome.TIMEOUT, (r.reason, r.stderr)
    assert r.stdout == b"blocking\n"
    assert r.wall_time < 1.0 + SLACK


def test_filling_a_pipe_nobody_reads_ends_at_the_wall_clock() -> None:
    r = run(
        """
        import os
        r, w = os.pipe()
        print('filling', flush=True)
        while True:
            os.write(w, b'x' * 65536)
        """,
        policy=Policy(timeout=1.0),
    )
    assert r.outcome is Outcome.TIMEOUT
    assert r.stdout == b"filling\n"
    assert r.wall_time < 1.0 + SLACK


def test_flooding_stdout_ends_at_the_output_limit() -> None:
    r = run(
        "import os\nwhile True:\n    os.write(1, b'x' * 65536)",
        policy=Policy(output=1 << 20, timeout=30),
    )
    assert r.outcome is Outcome.OUTPUT_LIMIT
    assert r.stdout == b"x" * (1 << 20)
    assert r.wall_time < SLACK + 1


def test_closing_stdout_and_stderr_does_not_escape_the_limits() -> None:
    r = run("import os\nos.close(1)\nos.close(2)\nwhile True: pass", policy=Policy(cpu_time=1.0))
    assert r.outcome is Outcome.CPU_LIMIT


@pytest.mark.parametrize(
    "spin",
    [
        "import re; re.match(r'(a+)+$', 'a' * 64 + 'b')",  # catastrophic backtracking
        "x = 7 ** 300_000_000",  # one bignum operation
        "import hashlib; hashlib.pbkdf2_hmac('sha256', b'k', b's', 10 ** 9)",  # key stretching
    ],
    ids=["regex", "bignum", "pbkdf2"],
)
def test_a_single_long_c_level_call_is_stopped_at_the_cpu_limit(spin: str) -> None:
    r = run(spin, policy=Policy(cpu_time=1.0, timeout=30))
    assert r.outcome is Outcome.CPU_LIMIT, (r.reason, r.stderr)
    assert r.cpu_time < 1.5


def test_a_single_long_c_level_call_is_stopped_at_the_wall_clock() -> None:
    r = run("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')", policy=Policy(timeout=1.0))
    assert r.outcome is Outcome.TIMEOUT
    assert r.wall_time < 1.0 + SLACK


def test_a_thread_bomb_is_capped_at_the_thread_limit() -> None:
    r = run(
        """
        import threading, time
        n = 0
        try:
            while True:
                threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
                n += 1
        except RuntimeError as e:
            print(n, e)
        """,
        policy=Policy(threads=8, timeout=30),
    )
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr)
    assert r.stdout == b"7 can't start new thread\n"


def test_many_threads_burning_cpu_share_one_cpu_limit(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        """
        pthread_t t[3];
        for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, spin, 0);
        spin(0);
        """,
        prelude_extra="#include <pthread.h>\nstatic void *spin(void *a) { for (;;) ; return a; }\n",
        link_flags=("-pthread",),
        policy=Policy(cpu_time=1.0, timeout=30, threads=8),
    )
    assert r.outcome is Outcome.CPU_LIMIT
    # Four threads burn up to two cores here: the limit is on their sum.
    assert 1.0 <= r.cpu_time < 1.5


def test_native_thread_bomb_is_capped(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        """
        int n = 0, err = 0;
        for (;;) {
            pthread_t t;
            err = pthread_create(&t, 0, idle, 0);
            if (err) break;
            n++;
        }
        printf("threads=%d\\nerror=%s\\n", n, ename(err));
        """,
        prelude_extra="#include <pthread.h>\nstatic void *idle(void *a) { pause(); return a; }\n",
        link_flags=("-pthread",),
        policy=Policy(threads=8, timeout=30),
    )
    assert r.outcome is Outcome.COMPLETED, r.reason
    assert lines(r) == {"threads": "7", "error": "EAGAIN"}


def test_a_fork_bomb_creates_nothing(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        """
        int made = 0, failed = 0;
        for (int i = 0; i < 1000; i++) {
            pid_t p = fork();
            if (p == 0) { for (;;) fork(); }
            if (p > 0) made++; else failed++;
        }
        printf("made=%d\\nfailed=%d\\n", made, failed);
        """,
        policy=Policy(timeout=30),
    )
    assert r.outcome is Outcome.COMPLETED, r.reason
    assert lines(r) == {"made": "0", "failed": "1000"}


def test_own_limits_cannot_be_raised_or_priority_gained(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        """
        struct rlimit big = {RLIM_INFINITY, RLIM_INFINITY};
        TRY("raise_cpu", setrlimit(RLIMIT_CPU, &big));
        TRY("raise_as", setrlimit(RLIMIT_AS, &big));
        TRY("raise_nofile", setrlimit(RLIMIT_NOFILE, &big));
        TRY("raise_fsize", setrlimit(RLIMIT_FSIZE, &big));
        TRY("prlimit_self", prlimit(0, RLIMIT_CPU, &big, 0));
        TRY("prlimit_parent", prlimit(getppid(), RLIMIT_CPU, &big, 0));
        struct sched_param sp = {1};
        TRY("realtime", sched_setscheduler(0, SCHED_FIFO, &sp));
        TRY("nice_up", setpriority(PRIO_PROCESS, 0, -5));
        TRY("lower_cpu", setrlimit(RLIMIT_CPU, &(struct rlimit){5, 5}));
        """,
    )
    assert lines(r) == {
        "raise_cpu": "EPERM",
        "raise_as": "EPERM",
        "raise_nofile": "EPERM",
        "raise_fsize": "EPERM",
        "prlimit_self": "EPERM",
        "prlimit_parent": "EPERM",
        "realtime": "EPERM",
        "nice_up": "EACCES",
        "lower_cpu": "ok",  # lowering its own limits is harmless
    }


def test_memory_cannot_be_taken_natively_past_the_limit(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        """
        size_t got = 0;
        for (;;) {
            char *p = mmap(0, 16 << 20, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
            if (p == MAP_FAILED) break;
            got += 16 << 20;
        }
        printf("mib=%zu\\nerror=%s\\n", got >> 20, ename(errno));
        """,
        policy=Policy(memory=128 << 20),
    )
    assert r.outcome is Outcome.COMPLETED, r.reason
    out = lines(r)
    assert out["error"] == "ENOMEM"
    assert int(out["mib"]) < 128

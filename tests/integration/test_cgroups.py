"""The per-sandbox cgroups against the real kernel, with an ordinary child
process in them (the sandbox's own use is covered by test_limits.py)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from sandbox_run.quotas.cgroups import Cgroups

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not Cgroups.available(), reason="this machine gives the controller no usable cgroups"
)

CHILD = """
import sys, threading, time
sys.stdin.readline()  # wait until placed in the cgroups
what = sys.argv[1]
if what == "memory":
    hog = bytearray(256 << 20)
    for i in range(0, len(hog), 4096):
        hog[i] = 1
    print("survived")
else:
    n = 0
    try:
        while True:
            threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
            n += 1
    except RuntimeError:
        print("threads", n)
"""


def child_in_cgroups(cg: Cgroups, what: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, what],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        cg.attach(p.pid)
        out, _ = p.communicate("go\n", timeout=60)
    finally:
        p.kill()
        p.wait()
    return subprocess.CompletedProcess(p.args, p.returncode, out)


def test_memory_cap_is_an_oom_kill_that_is_reported() -> None:
    cg = Cgroups.create(64 * MiB, 16)
    assert cg is not None
    try:
        done = child_in_cgroups(cg, "memory")
        assert done.returncode == -signal.SIGKILL
        assert done.stdout == ""
        assert cg.oom_killed()
        peak = cg.peak_memory()
        assert peak is not None and peak <= 64 * MiB
    finally:
        cg.remove()


def test_task_limit_caps_threads() -> None:
    cg = Cgroups.create(256 * MiB, 5)
    assert cg is not None
    try:
        done = child_in_cgroups(cg, "threads")
        assert done.stdout == "threads 4\n"  # and the main thread makes 5
        assert not cg.oom_killed()
    finally:
        cg.remove()


def test_removed_cgroups_are_gone() -> None:
    cg = Cgroups.create(64 * MiB, 4)
    assert cg is not None
    cg.remove()
    import os

    assert not os.path.exists(cg.memory_dir)
    assert not os.path.exists(cg.pids_dir)

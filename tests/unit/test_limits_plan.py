"""The pure parts of limits and outcomes: the enforcement plan, the
classification of how a run ended, and the Result's plain-data forms."""

from __future__ import annotations

import base64
import json
import resource
import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_run.api import _classify
from sandbox_run.controller.dispatch import Denial as RawDenial
from sandbox_run.controller.session import Exit
from sandbox_run.policy.schema import MIN_MEMORY, Policy, Quota
from sandbox_run.quotas import limits
from sandbox_run.result import (
    EXIT_CPU_LIMIT,
    EXIT_ERROR,
    EXIT_MEMORY_LIMIT,
    EXIT_OUTPUT_LIMIT,
    EXIT_POLICY_VIOLATION,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    AreaReport,
    FileChange,
    GuestException,
    Outcome,
    Result,
)

MiB = 1 << 20


# --- the plan ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "heap"),
    [(96 * MiB, 48 * MiB), (256 * MiB, 128 * MiB), (512 * MiB, 384 * MiB), (1024 * MiB, 768 * MiB)],
)
def test_heap_limit_leaves_room_for_the_interpreter(memory: int, heap: int) -> None:
    assert limits.heap_limit(memory) == heap


@given(st.integers(MIN_MEMORY, 1 << 40))
def test_heap_limit_is_between_half_and_three_quarters(memory: int) -> None:
    heap = limits.heap_limit(memory)
    assert memory // 2 <= heap <= memory * 3 // 4
    assert heap <= max(memory // 2, memory - limits.INTERPRETER_HEADROOM)


def test_stack_follows_the_recursion_limit() -> None:
    assert limits.stack_size(1000) == 8 * MiB  # the usual default
    assert limits.stack_size(20_000) == 20_000 * 1024 + MiB
    assert limits.stack_size(50_000) > 50_000 * 770  # PyPy's measured need per unit


def rlimits(policy: Policy, largest: int = 64 * MiB) -> dict[int, tuple[int, int]]:
    plan = limits.plan(policy, largest_file=largest, staged_bytes=256 * MiB)
    return {res: (soft, hard) for res, soft, hard in plan.rlimits}


def test_plan_sets_each_rlimit_soft_equal_to_hard() -> None:
    r = rlimits(Policy(memory=300 * MiB, cpu_time=2.5, open_files=64), largest=5 * MiB)
    assert r[resource.RLIMIT_AS] == (300 * MiB, 300 * MiB)
    assert r[resource.RLIMIT_NOFILE] == (64, 64)
    assert r[resource.RLIMIT_FSIZE] == (5 * MiB, 5 * MiB)
    assert r[resource.RLIMIT_CORE] == (0, 0)
    # The kernel's CPU limit is only a backstop, well after the controller's:
    # its tick-sampled clock can run ahead of the real one.
    assert r[resource.RLIMIT_CPU] == (6, 6)
    # Soft equal to hard: the kernel kills (SIGKILL) rather than sending SIGXCPU.
    assert all(soft == hard for soft, hard in r.values())


def test_plan_forbids_real_time_scheduling_and_raised_priority() -> None:
    r = rlimits(Policy())
    assert r[resource.RLIMIT_RTPRIO] == (0, 0)
    assert r[resource.RLIMIT_NICE] == (0, 0)


def test_plan_cgroup_covers_memory_and_staged_files() -> None:
    plan = limits.plan(Policy(memory=256 * MiB, threads=7), largest_file=MiB, staged_bytes=MiB)
    assert plan.cgroup_memory == 257 * MiB
    assert plan.cgroup_tasks == 7
    assert dict(plan.env) == {"PYPY_GC_MAX": str(128 * MiB), "MALLOC_ARENA_MAX": "1"}


def test_a_crash_is_at_the_heap_limit_only_near_it() -> None:
    assert limits.crashed_at_heap_limit(120 * MiB, 128 * MiB)
    assert not limits.crashed_at_heap_limit(60 * MiB, 128 * MiB)


# --- classification ----------------------------------------------------------

POLICY = Policy(timeout=5.0, cpu_time=2.0, memory=256 * MiB, output=MiB)


def classify(**fields: object) -> tuple[Outcome, str]:
    ex = Exit(gc_max=limits.heap_limit(POLICY.memory))
    for k, v in fields.items():
        setattr(ex, k, v)
    return _classify(ex, POLICY)


def test_completed_with_any_status() -> None:
    assert classify(status=0) == (Outcome.COMPLETED, "exited with status 0")
    assert classify(status=3) == (Outcome.COMPLETED, "exited with status 3")
    # Status 1 without a reported exception is the script's own choice.
    assert classify(status=1) == (Outcome.COMPLETED, "exited with status 1")


def test_uncaught_exception() -> None:
    got = classify(status=1, exception=("ValueError", "bad input", "Traceback..."))
    assert got == (Outcome.EXCEPTION, "ValueError: bad input")
    assert classify(status=1, exception=("KeyboardInterrupt", "", "")) == (
        Outcome.EXCEPTION,
        "KeyboardInterrupt",
    )


def test_memory_error_is_the_memory_limit() -> None:
    assert classify(status=1, exception=("MemoryError", "", "")) == (
        Outcome.MEMORY_LIMIT,
        "memory limit: MemoryError at the heap limit of 128MiB (--memory 256MiB)",
    )


def test_stops_by_the_controller() -> None:
    assert classify(stopped="timeout", signal=9) == (
        Outcome.TIMEOUT,
        "wall-clock timeout: killed after 5s",
    )
    assert classify(stopped="cpu", signal=9) == (
        Outcome.CPU_LIMIT,
        "CPU time limit: killed after 2s of CPU time",
    )
    assert classify(stopped="output", signal=9)[0] is Outcome.OUTPUT_LIMIT


def test_the_kernels_cpu_backstop_is_the_cpu_limit() -> None:
    assert classify(signal=signal.SIGKILL, cpu_time=2.9)[0] is Outcome.CPU_LIMIT
    assert classify(signal=signal.SIGXCPU, cpu_time=0.5)[0] is Outcome.CPU_LIMIT
    assert classify(signal=signal.SIGKILL, cpu_time=0.5)[0] is Outcome.CRASHED


def test_oom_kill_is_the_memory_limit() -> None:
    assert classify(signal=9, oom_killed=True) == (
        Outcome.MEMORY_LIMIT,
        "memory limit: killed by the kernel at 256MiB",
    )


def test_a_crash_at_the_heap_limit_is_the_memory_limit_elsewhere_a_crash() -> None:
    outcome, reason = classify(signal=signal.SIGABRT, peak_memory=250 * MiB)
    assert outcome is Outcome.MEMORY_LIMIT
    assert "crashed with SIGABRT at its heap limit of 128MiB" in reason
    assert classify(signal=signal.SIGSEGV, peak_memory=70 * MiB) == (
        Outcome.CRASHED,
        "killed by SIGSEGV",
    )


def test_violation_and_foreign_abi() -> None:
    denial = RawDenial("clone", 1, "creating processes is not allowed")
    outcome, reason = classify(stopped="violation", violation=denial, signal=9)
    assert outcome is Outcome.POLICY_VIOLATION
    assert reason.startswith("refused clone (creating processes is not allowed)")
    assert classify(signal=signal.SIGSYS)[0] is Outcome.POLICY_VIOLATION


def test_launch_errors_win() -> None:
    assert classify(launch_error="could not start", stopped="timeout") == (
        Outcome.ERROR,
        "could not start",
    )


# --- the Result's forms --------------------------------------------------------


def result(**kw: object) -> Result:
    base: dict[str, object] = {
        "outcome": Outcome.COMPLETED,
        "reason": "exited with status 0",
        "exit_code": 0,
        "signal": None,
        "stdout": b"hi\n",
        "stderr": b"",
        "wall_time": 0.5,
    }
    base.update(kw)
    return Result(**base)  # type: ignore[arg-type]


def test_exit_statuses_are_distinct_per_outcome() -> None:
    statuses = {
        Outcome.TIMEOUT: EXIT_TIMEOUT,
        Outcome.CPU_LIMIT: EXIT_CPU_LIMIT,
        Outcome.MEMORY_LIMIT: EXIT_MEMORY_LIMIT,
        Outcome.OUTPUT_LIMIT: EXIT_OUTPUT_LIMIT,
        Outcome.POLICY_VIOLATION: EXIT_POLICY_VIOLATION,
        Outcome.ERROR: EXIT_ERROR,
    }
    for outcome, status in statuses.items():
        assert result(outcome=outcome, exit_code=None, signal=9).exit_status == status
    assert len({*statuses.values(), EXIT_USAGE}) == len(statuses) + 1
    assert all(118 < s < 126 for s in statuses.values())
    assert result(outcome=Outcome.CRASHED, exit_code=None, signal=11).exit_status == 139
    assert result(outcome=Outcome.EXCEPTION, exit_code=1).exit_status == 1
    assert result(exit_code=7).exit_status == 7


def test_to_dict_is_json_and_keeps_every_byte() -> None:
    r = result(
        stdout="héllo\n".encode(),
        stderr=b"\xff\xfe",
        exception=GuestException("ValueError", "x", "Traceback..."),
        filesystem=(
            AreaReport(
                "/out",
                "rw",
                10,
                1,
                100,
                10,
                100,
                changes=(FileChange("/out/a", "added", size=10),),
                applied=True,
            ),
        ),
    )
    d = json.loads(json.dumps(r.to_dict()))
    assert d["stdout"] == "héllo\n" and d["stdout_encoding"] == "utf-8"
    assert base64.b64decode(d["stderr"]) == b"\xff\xfe" and d["stderr_encoding"] == "base64"
    assert d["exception"] == {"type": "ValueError", "message": "x", "traceback": "Traceback..."}
    assert d["changes"] == [
        {
            "area": "/out",
            "applied": True,
            "notes": [],
            "files": [{"path": "/out/a", "kind": "added", "is_dir": False, "size": 10}],
        }
    ]
    assert d["usage"]["filesystem"][0]["max_bytes"] == 100
    assert d["signal"] is None


def test_to_dict_names_the_signal_and_leaves_out_uncaptured_output() -> None:
    d = result(
        outcome=Outcome.CRASHED, exit_code=None, signal=11, stdout=None, stderr=None
    ).to_dict()
    assert d["signal"] == "SIGSEGV"
    assert "stdout" not in d and "stderr" not in d


def test_quota_flags_build_a_private_quota() -> None:
    from sandbox_run.cli import _parser, _policy

    ns = _parser().parse_args(["--disk", "1MiB", "--max-file-size", "4KiB", "-c", "pass"])
    policy = _policy(ns)
    assert isinstance(policy, Policy)
    assert policy.private == Quota(max_bytes=MiB, max_files=10_000, max_file_size=4096)

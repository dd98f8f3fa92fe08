#!/usr/bin/env python3
"""Enforcement benchmarks: what watching a sandbox costs the controller, and
how quickly each limit stops a guest.

    .venv/bin/python scripts/bench_limits.py [--rounds N] [--seconds S]

Sections:
  controller CPU   the controller's own CPU time per second of a guest's
                   life, for an idle guest and for guests making 10,000
                   mediated calls a second (getuid, the cheapest, and stat).
                   Start-up is taken out by running each guest for S and for
                   S/4 seconds and dividing the difference.
  call cost        100,000 getuid calls sandboxed, on bare pypy3 and on
                   CPython, side by side.
  stop delay       from the moment a guest crosses a limit to the moment
                   run_async() returns its Result (so an upper bound on the
                   guest being dead).  The guest prints CLOCK_MONOTONIC, which
                   it shares with the controller, just before it crosses.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import trio

import sandbox_run
from sandbox_run import Outcome, Policy

PYPY = "/usr/bin/pypy3"

PACED = """
import os, sys, time
rate, seconds = {rate}, {seconds}
call = {call}
batch = max(1, rate // 100)
start = time.monotonic()
n = 0
tick = start
while tick - start < seconds:
    for _ in range(batch):
        call()
    n += batch
    tick += batch / rate
    delay = tick - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(n / (time.monotonic() - start))
"""

CALLS = {
    "idle": ("lambda: None", 0),
    "getuid": ("os.getuid", 10_000),
    "stat": ("lambda: os.stat('/sandbox/main.py')", 10_000),
}


def controller_cpu(code: str, seconds: float) -> tuple[float, float, float]:
    """(controller CPU seconds, guest wall seconds, achieved call rate) of one run."""
    before = time.process_time()
    r = sandbox_run.run(code, policy=Policy(timeout=seconds * 4 + 30))
    used = time.process_time() - before
    if r.outcome is not Outcome.COMPLETED or r.stdout is None:
        raise SystemExit(f"benchmark guest failed: {r.reason}\n{r.stderr!r}")
    return used, r.wall_time, float(r.stdout)


def bench_controller(rounds: int, seconds: float) -> None:
    controller_cpu(PACED.format(rate=1, seconds=0.1, call="lambda: 0"), 0.1)  # warm up
    print(f"controller CPU per sandbox-second ({rounds} rounds, {seconds:g}s vs {seconds / 4:g}s)")
    for name, (call, rate) in CALLS.items():
        per_second = []
        rates = []
        for _ in range(rounds):
            long_cpu, long_wall, achieved = controller_cpu(
                PACED.format(rate=rate or 1, seconds=seconds, call=call if rate else "lambda: 0"),
                seconds,
            )
            short_cpu, short_wall, _ = controller_cpu(
                PACED.format(
                    rate=rate or 1, seconds=seconds / 4, call=call if rate else "lambda: 0"
                ),
                seconds / 4,
            )
            per_second.append((long_cpu - short_cpu) / (long_wall - short_wall))
            rates.append(achieved)
        label = f"{name} ({statistics.median(rates):,.0f} calls/s)" if rate else "idle guest"
        print(f"  {label:32s} {statistics.median(per_second) * 1000:7.1f} ms CPU per second")


CALL_LOOP = "import os, time\nt = time.perf_counter()\nfor _ in range(100_000): os.getuid()\n"
CALL_LOOP += "print(time.perf_counter() - t)\n"


def bench_call_cost(rounds: int) -> None:
    def sandboxed() -> float:
        r = sandbox_run.run(CALL_LOOP)
        if r.stdout is None or not r.ok:
            raise SystemExit(r.reason)
        return float(r.stdout)

    def bare(exe: str) -> float:
        out = subprocess.run([exe, "-c", CALL_LOOP], check=True, capture_output=True).stdout
        return float(out)

    samples: dict[str, list[float]] = {"sandboxed": [], "pypy3": [], "cpython": []}
    for _ in range(rounds):
        samples["sandboxed"].append(sandboxed())
        samples["pypy3"].append(bare(PYPY))
        samples["cpython"].append(bare(sys.executable))
    med = {k: statistics.median(v) for k, v in samples.items()}
    print("100,000 getuid calls (median seconds)")
    for k, v in med.items():
        ratio = v / med["pypy3"]
        print(f"  {k:10s} {v:8.4f} s   {v / 1e5 * 1e6:6.2f} us/call   {ratio:6.1f}x bare pypy3")


#: Each guest writes the moment it crosses its limit (or, for the wall
#: clock, the moment its deadline falls) on stderr, then crosses it.
PRELUDE = "import os, time\n"

LIMITS: dict[str, tuple[str, Policy, Outcome]] = {
    # The wall clock's deadline starts when run_async() is called.
    "wall clock (sleeping)": ("time.sleep(60)", Policy(timeout=1.0), Outcome.TIMEOUT),
    "wall clock (busy in C)": (
        "import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')",
        Policy(timeout=1.0),
        Outcome.TIMEOUT,
    ),
    "CPU time": (
        # The stamp is taken a little before the limit and moved forward by
        # the CPU time still to go (the guest has a core to itself).
        "while time.process_time() < 0.95: pass\n"
        "os.write(2, b'%r\\n' % (time.monotonic() + 1.0 - time.process_time()))\n"
        "while True: pass",
        Policy(cpu_time=1.0, timeout=30),
        Outcome.CPU_LIMIT,
    ),
    "output": (
        "os.write(2, b'%r\\n' % time.monotonic())\nwhile True: os.write(1, b'x' * 65536)",
        Policy(output=1 << 20, timeout=30),
        Outcome.OUTPUT_LIMIT,
    ),
    "memory (MemoryError)": (
        "os.write(2, b'%r\\n' % time.monotonic())\nx = bytearray(1 << 30)",
        Policy(memory=256 << 20, timeout=30),
        Outcome.MEMORY_LIMIT,
    ),
    "refused call (kill_on_refusal)": (
        "os.write(2, b'%r\\n' % time.monotonic())\nos.fork()",
        # Unrestricted: the restricted mode has no os.fork to make the call.
        Policy(kill_on_refusal=True, timeout=30, restricted=False),
        Outcome.POLICY_VIOLATION,
    ),
}


async def stop_delay(code: str, policy: Policy, outcome: Outcome) -> float:
    stamps: list[float] = []

    def on_stderr(data: bytes) -> None:
        for line in data.splitlines():
            if line.strip() and not stamps:
                stamps.append(float(line))

    called = time.monotonic()
    r = await sandbox_run.run_async(PRELUDE + code, policy=policy, stderr=on_stderr)
    returned = time.monotonic()
    if r.outcome is not outcome:
        raise SystemExit(f"expected {outcome.value}, got {r.outcome.value}: {r.reason}")
    if outcome is Outcome.TIMEOUT:
        return returned - (called + policy.timeout)
    if not stamps:
        raise SystemExit(f"{outcome.value}: the guest wrote no time stamp")
    return returned - stamps[0]


def bench_stop_delay(rounds: int) -> None:
    print(f"stop delay: crossing a limit -> Result returned ({rounds} rounds)")
    for name, (code, policy, outcome) in LIMITS.items():
        delays = [trio.run(stop_delay, code, policy, outcome) for _ in range(rounds)]
        print(
            f"  {name:32s} median {statistics.median(delays) * 1000:7.1f} ms"
            f"   max {max(delays) * 1000:7.1f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0)
    ns = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {sys.implementation.name} {sys.version.split()[0]}")
    bench_controller(max(1, ns.rounds // 2), ns.seconds)
    bench_call_cost(ns.rounds)
    bench_stop_delay(ns.rounds)


if __name__ == "__main__":
    main()

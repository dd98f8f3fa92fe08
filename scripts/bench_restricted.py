#!/usr/bin/env python3
"""Restricted mode against unrestricted, on the CPU-bound workload.

Both run the same PyPy with the same bootstrap, alternating, so that machine
noise hits them alike; the only difference is the configuration the
controller would pass (``"restricted": true`` or ``false``).  No sandbox:
this measures the in-guest layer alone (the OS layer's own cost is measured
by bench_core.py).  Prints the medians of the workload's own timings and the
ratio (target: restricted at least 0.9x as fast).

    .venv/bin/python scripts/bench_restricted.py [--rounds N] [--scale S]

Also prints the start-up cost: ``pass`` through the bootstrap, both ways,
without a sandbox and in one (``sandbox_run.run("pass")``, with the number
of mediated calls each way).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYPY = "/usr/bin/pypy3"
ENTRY = os.path.join(ROOT, "src", "sandbox_run", "guest", "entry.py")
WORKLOAD = os.path.join(HERE, "workloads", "cpu_bound.py")
CONFIG_ENV = "SANDBOX_RUN_GUEST"


def run(restricted: bool, script: str, *args: str) -> str:
    env = dict(os.environ)
    env[CONFIG_ENV] = json.dumps({"version": 1, "restricted": restricted})
    cmd = [PYPY, "-S", "-B", ENTRY, script, *args]
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def workload_seconds(restricted: bool, scale: str, expected: str | None) -> tuple[float, str]:
    out = run(restricted, WORKLOAD, scale).splitlines()
    if expected is not None and out[0] != expected:
        raise SystemExit(f"restricted={restricted}: checksums {out[0]!r}, expected {expected!r}")
    return float(out[1].split()[-1]), out[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--scale", type=float, default=2.0)
    args = ap.parse_args()
    scale = str(args.scale)
    _, expected = workload_seconds(False, scale, None)
    workload_seconds(True, scale, expected)  # warm the caches
    samples: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for restricted in (False, True):
            samples[restricted].append(workload_seconds(restricted, scale, expected)[0])
    plain = statistics.median(samples[False])
    rest = statistics.median(samples[True])
    print(f"# restricted mode vs unrestricted, same PyPy, {os.cpu_count()} CPUs, medians")
    print(
        f"CPU-bound workload  unrestricted {plain:.3f} s   restricted {rest:.3f} s   "
        f"throughput {plain / rest:.2f}x (target >= 0.9x)"
    )
    empty = os.path.join(HERE, "workloads", "empty.py")
    with open(empty, "w") as f:
        f.write("pass\n")
    try:
        start: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds * 3):
            for restricted in (False, True):
                t = time.perf_counter()
                run(restricted, empty)
                start[restricted].append(time.perf_counter() - t)
    finally:
        os.unlink(empty)
    s_plain = statistics.median(start[False]) * 1e3
    s_rest = statistics.median(start[True]) * 1e3
    print(
        f"start-up ('pass')   unrestricted {s_plain:.1f} ms   restricted {s_rest:.1f} ms   "
        f"(+{s_rest - s_plain:.1f} ms)"
    )
    bench_sandboxed_startup(args.rounds * 3)


def bench_sandboxed_startup(rounds: int) -> None:
    import sandbox_run

    calls = {}
    for restricted in (False, True):
        lines: list[str] = []
        sandbox_run.run(
            "pass", policy=sandbox_run.Policy(restricted=restricted), trace=lines.append
        )
        calls[restricted] = len(lines)
    start: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for restricted in (False, True):
            policy = sandbox_run.Policy(restricted=restricted)
            t = time.perf_counter()
            result = sandbox_run.run("pass", policy=policy)
            start[restricted].append(time.perf_counter() - t)
            if not result.ok:
                raise SystemExit(f"sandboxed run failed: {result.reason}")
    s_plain = statistics.median(start[False]) * 1e3
    s_rest = statistics.median(start[True]) * 1e3
    print(
        f"in the sandbox      unrestricted {s_plain:.1f} ms   restricted {s_rest:.1f} ms   "
        f"(+{s_rest - s_plain:.1f} ms; {calls[False]} against {calls[True]} mediated calls)"
    )


if __name__ == "__main__":
    main()

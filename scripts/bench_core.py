#!/usr/bin/env python3
"""Core benchmarks: guest start-up, CLI cold start, CPU-bound throughput.

Everything is measured side by side in one run, alternating the contenders
so that machine noise hits them alike, and reported as medians and ratios.

    .venv/bin/python scripts/bench_core.py [--rounds N] [--scale S]

Sections:
  start-up   sandbox_run.run("pass") from a process whose controller is
             already imported, against subprocess.run([pypy3, -c, pass]).
  cli        `sandbox-run -c pass` against `pypy3 -c pass`, with the
             controller's own import time and the guest's time split out.
  cpu        scripts/workloads/cpu_bound.py sandboxed, on bare pypy3, and on
             CPython (the interpreter running this script).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYPY = "/usr/bin/pypy3"
CLI = os.path.join(os.path.dirname(sys.executable), "sandbox-run")
WORKLOAD = os.path.join(HERE, "workloads", "cpu_bound.py")
IMPORTS = "import sandbox_run.cli, sandbox_run.api"  # what a plain CLI run imports


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternate(rounds: int, **contenders: Callable[[], object]) -> dict[str, float]:
    """Median seconds of each contender, run in turn ``rounds`` times."""
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        fn()  # warm up caches
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in samples.items()}


def run_quiet(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def bench_startup(rounds: int) -> dict[str, float]:
    import sandbox_run

    def sandboxed() -> None:
        r = sandbox_run.run("pass")
        if not r.ok:
            raise SystemExit(f"sandboxed run failed: {r.reason}")

    m = alternate(rounds, sandbox=sandboxed, bare=lambda: run_quiet([PYPY, "-c", "pass"]))
    print(
        f"guest start-up     sandbox_run.run('pass') {m['sandbox'] * 1e3:7.1f} ms   "
        f"pypy3 -c pass {m['bare'] * 1e3:7.1f} ms   ratio {m['sandbox'] / m['bare']:.2f}x "
        f"(target <= 1.5x)"
    )
    return m


def bench_cli(rounds: int, guest_s: float) -> None:
    m = alternate(
        rounds,
        cli=lambda: run_quiet([CLI, "-c", "pass"]),
        bare=lambda: run_quiet([PYPY, "-c", "pass"]),
        python=lambda: run_quiet([sys.executable, "-c", "pass"]),
        imports=lambda: run_quiet(
            [sys.executable, "-c", "import sandbox_run.cli, sandbox_run.api"]
        ),
    )
    own_imports = m["imports"] - m["python"]
    print(
        f"CLI cold start     sandbox-run -c pass {m['cli'] * 1e3:7.1f} ms   "
        f"pypy3 -c pass {m['bare'] * 1e3:7.1f} ms   ratio {m['cli'] / m['bare']:.2f}x"
    )
    print(
        f"  split:           CPython start-up {m['python'] * 1e3:.1f} ms, controller imports "
        f"(trio included) {own_imports * 1e3:.1f} ms, guest run {guest_s * 1e3:.1f} ms, "
        f"rest {max(0.0, m['cli'] - m['imports'] - guest_s) * 1e3:.1f} ms"
    )


def bench_cpu(rounds: int, scale: float) -> None:
    def seconds(cmd: list[str]) -> float:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        checks = out.splitlines()[0]
        if checks != expected:
            raise SystemExit(f"workload gave {checks!r}, expected {expected!r}")
        return float(out.splitlines()[1].split()[-1])

    arg = str(scale)
    expected = subprocess.run(
        [PYPY, WORKLOAD, arg], check=True, capture_output=True, text=True
    ).stdout.splitlines()[0]
    samples: dict[str, list[float]] = {"sandbox": [], "pypy": [], "cpython": []}
    for _ in range(rounds):
        samples["sandbox"].append(seconds([CLI, "--timeout", "10m", WORKLOAD, arg]))
        samples["pypy"].append(seconds([PYPY, WORKLOAD, arg]))
        samples["cpython"].append(seconds([sys.executable, WORKLOAD, arg]))
    m = {k: statistics.median(v) for k, v in samples.items()}
    print(
        f"CPU-bound work     sandboxed {m['sandbox']:.2f} s   bare pypy3 {m['pypy']:.2f} s   "
        f"CPython {m['cpython']:.2f} s"
    )
    print(
        f"  throughput:      {m['pypy'] / m['sandbox']:.2f}x bare pypy3 (target >= 0.95x), "
        f"{m['cpython'] / m['sandbox']:.1f}x CPython"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="alternations per measurement")
    ap.add_argument("--scale", type=float, default=2.0, help="size of the CPU-bound workload")
    ap.add_argument("--only", choices=["startup", "cli", "cpu"])
    args = ap.parse_args()
    print(f"# sandbox-run core benchmarks, {os.cpu_count()} CPUs, Linux {os.uname().release}")
    if args.only in (None, "startup", "cli"):
        m = bench_startup(args.rounds)
        if args.only != "startup":
            bench_cli(max(5, args.rounds // 2), m["sandbox"])
    if args.only in (None, "cpu"):
        bench_cpu(max(5, args.rounds // 4), args.scale)


if __name__ == "__main__":
    main()

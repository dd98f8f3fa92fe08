#!/usr/bin/env python3
"""Embedding benchmarks: the warm pool, calls into a sandbox and out of it,
idle sandboxes per GiB, and the 100-bot game loop.

    .venv/bin/python scripts/bench_embed.py [--calls N] [--idle N] [--bots N] [--ticks N]

Sections:
  pool      time for ``pool.take()`` to hand over a ready sandbox, against
            starting a fresh Sandbox without a pool.
  call      round trip of ``await sb.call("f")`` on a trivial guest function
            (median of per-call times), against the same request and answer
            over a socket pair to a bare pypy3 process (no sandbox), and an
            in-process CPython call.
  host      round trip of a guest -> host capability call, timed in the guest.
  idle      N idle sandboxes at once: memory per sandbox (the host's
            MemAvailable drop, and the guests' PSS) and how many fit in 24 GiB.
  bots      examples/game_loop.py: tick time for N bots, all well-behaved,
            and with one in ten hostile (whose budgets then set the pace).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

import trio

import sandbox_run
from sandbox_run.guest import wire

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "examples"))
import game_loop  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def bench_pool(rounds: int) -> None:
    takes: list[float] = []
    async with sandbox_run.Pool(size=4) as pool:
        for _ in range(rounds):
            while pool.ready < 4:
                await trio.sleep(0.05)
            for _ in range(4):
                t = time.perf_counter()
                sb = await pool.take()
                takes.append(time.perf_counter() - t)
                await sb.aclose()
    fresh: list[float] = []
    for _ in range(5):
        t = time.perf_counter()
        async with sandbox_run.Sandbox():
            fresh.append(time.perf_counter() - t)
    print("pool: a ready sandbox")
    took, worst = median_us(takes) / 1000, max(takes) * 1000
    print(f"  from the pool        median {took:7.2f} ms   max {worst:7.2f} ms")
    print(f"  started fresh        median {median_us(fresh) / 1000:7.2f} ms")


BARE_SERVER = """
import os, sys
sys.path.insert(0, {path!r})
import wire
fd = {fd}
reader = wire.FrameReader()
def f():
    return 1
while True:
    data = os.read(fd, 65536)
    if not data:
        break
    for msg in reader.feed(data):
        os.write(fd, wire.frame(("done", msg[1], f())))
"""


async def bench_call(n: int) -> None:
    async with sandbox_run.Sandbox() as sb:
        await sb.exec("def f():\n    return 1")
        for _ in range(2000):  # warm up both JITs' worth of paths
            await sb.call("f")
        sandboxed: list[float] = []
        for _ in range(n):
            t = time.perf_counter()
            await sb.call("f")
            sandboxed.append(time.perf_counter() - t)

    ours, theirs = socket.socketpair()
    code = BARE_SERVER.format(path=os.path.dirname(wire.__file__), fd=theirs.fileno())
    proc = subprocess.Popen(["/usr/bin/pypy3", "-S", "-c", code], pass_fds=[theirs.fileno()])
    theirs.close()
    sock = trio.socket.from_stdlib_socket(ours)
    reader = wire.FrameReader()

    async def bare_call(i: int) -> None:
        await sock.send(wire.frame(("call", i, "f", (), {})))
        while not reader.feed(await sock.recv(65536)):
            pass

    for i in range(2000):
        await bare_call(i)
    bare: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        await bare_call(i)
        bare.append(time.perf_counter() - t)
    sock.close()
    proc.wait()

    def f() -> int:
        return 1

    t = time.perf_counter()
    for _ in range(n):
        f()
    local = (time.perf_counter() - t) / n

    s, b = median_us(sandboxed), median_us(bare)
    print(f"call: round trip of a trivial call ({n} calls, medians)")
    print(f"  sandboxed sb.call          {s:8.1f} us")
    print(f"  bare pypy3 over a socket   {b:8.1f} us   (sandboxed is {b / s:.2f}x its speed)")
    print(f"  in-process CPython call    {local * 1e6:8.3f} us")


async def bench_host_call(n: int) -> None:
    async with sandbox_run.Sandbox(capabilities={"ping": lambda: 1}) as sb:
        await sb.exec(
            "import time\n"
            "def loop(n):\n"
            "    times = []\n"
            "    for _ in range(n):\n"
            "        t = time.perf_counter()\n"
            "        ping()\n"
            "        times.append(time.perf_counter() - t)\n"
            "    times.sort()\n"
            "    return times[len(times) // 2]"
        )
        await sb.call("loop", 1000)
        per_call = await sb.call("loop", n, timeout=300)
    print(f"host: guest -> host capability call, median {per_call * 1e6:8.1f} us ({n} calls)")


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


async def bench_idle(n: int) -> None:
    before = _available()
    start = time.perf_counter()
    # Long limits: the first sandboxes wait while the last ones start.
    policy = sandbox_run.Policy(timeout=3600, cpu_time=3600)
    async with sandbox_run.Pool(policy, size=8) as pool:
        sandboxes = [await pool.take() for _ in range(n)]
        await pool.stop()
        took = time.perf_counter() - start
        await trio.sleep(2)
        alive = n
        drop = (before - _available()) / alive
        pss = sum(_pss(sb._run.pid) for sb in sandboxes if sb._run) / n
        answers = [await sb.eval("6 * 7") for sb in sandboxes]
        for sb in sandboxes:
            await sb.aclose()
    if answers != [42] * n:
        raise SystemExit("an idle sandbox did not answer")
    print(f"idle: {n} sandboxes at once, all answering (started in {took:.1f} s)")
    print(
        f"  memory per sandbox: {drop / MIB:.1f} MiB (MemAvailable), guest PSS {pss / MIB:.1f} MiB"
    )
    print(f"  sandboxes that fit in 24 GiB: {int(24 * GIB / drop)}")


async def bench_bots(bots: int, ticks: int) -> None:
    for hostile in (False, True):
        out = await game_loop.play(bots, ticks, seed=1, hostile=hostile)
        times = out["ticks"]
        assert isinstance(times, list)
        label = "one in ten hostile" if hostile else "all well-behaved  "
        print(
            f"bots: {bots} bots, {label}: tick median {statistics.median(times) * 1000:7.1f} ms"
            f"   max {max(times) * 1000:7.1f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--idle", type=int, default=100)
    ap.add_argument("--bots", type=int, default=100)
    ap.add_argument("--ticks", type=int, default=10)
    ns = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {sys.implementation.name} {sys.version.split()[0]}")
    trio.run(bench_pool, 5)
    trio.run(bench_call, ns.calls)
    trio.run(bench_host_call, ns.calls)
    trio.run(bench_idle, ns.idle)
    trio.run(bench_bots, ns.bots, ns.ticks)


if __name__ == "__main__":
    main()

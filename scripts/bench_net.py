#!/usr/bin/env python3
"""Network benchmarks: connection set-up and bulk throughput, sandboxed
against bare pypy3, measured side by side in one run.

    .venv/bin/python scripts/bench_net.py [--rounds N] [--connects N] [--megabytes N]

A local server runs in its own process (so that it competes with neither
side for the controller's interpreter).  Each round runs the same guest
program in the sandbox and on bare pypy3, alternating; the program times
itself and prints the result, so start-up is not counted.  Medians of the
rounds are reported, and ratios of speed (bare time / sandboxed time):

  connect     socket.create_connection + close to 127.0.0.1, per connection
              (target: sandboxed at least 0.8x the speed of bare)
  throughput  receiving N MB (default 1000: smaller transfers are lost in noise)
              (target: at least 0.95x)
  relayed     the same transfer with a byte cap (max_bytes), which relays the
              connection through the controller; no target, for information
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap

import sandbox_run
from sandbox_run import NetworkPolicy, Policy

PYPY = "/usr/bin/pypy3"

SERVER = textwrap.dedent("""
    import socket, sys, threading
    size = int(sys.argv[1])
    chunk = b"x" * (1 << 20)
    def listener(kind):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        print(kind, s.getsockname()[1], flush=True)  # one thread prints: no interleaving
        return s
    def serve(kind, s):
        def handle(c):
            with c:
                left = size
                while left > 0:
                    n = c.send(chunk[: min(left, len(chunk))])
                    left -= n
        while True:
            c, _ = s.accept()
            if kind == "connect":
                c.close()
            else:
                threading.Thread(target=handle, args=(c,), daemon=True).start()
    sockets = {kind: listener(kind) for kind in ("connect", "bulk")}
    threading.Thread(target=serve, args=("connect", sockets["connect"]), daemon=True).start()
    serve("bulk", sockets["bulk"])
""")

CONNECTS = textwrap.dedent("""
    import socket, sys, time
    port, n = int(sys.argv[1]), int(sys.argv[2])
    for _ in range(50):  # warm up (JIT, caches)
        socket.create_connection(("127.0.0.1", port)).close()
    t = time.perf_counter()
    for _ in range(n):
        socket.create_connection(("127.0.0.1", port)).close()
    print((time.perf_counter() - t) / n)
""")

BULK = textwrap.dedent("""
    import socket, sys, time
    port, size = int(sys.argv[1]), int(sys.argv[2])
    buf = bytearray(1 << 20)  # no memoryview: the restricted mode refuses it
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    got = 0
    while True:
        n = s.recv_into(buf)
        if not n:
            break
        got += n
    took = time.perf_counter() - t
    if got != size:
        raise SystemExit(f"received {got} bytes, expected {size}")
    print(took)
""")


def bare(code: str, *args: object) -> float:
    p = subprocess.run(
        [PYPY, "-c", code, *map(str, args)], capture_output=True, text=True, check=True
    )
    return float(p.stdout)


def sandboxed(code: str, policy: Policy, *args: object) -> float:
    r = sandbox_run.run(code, policy=policy, argv=[str(a) for a in args])
    if not r.ok or r.stdout is None:
        raise SystemExit(f"sandboxed run failed: {r.reason}\n{(r.stderr or b'').decode()}")
    return float(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--connects", type=int, default=1000)
    ap.add_argument("--megabytes", type=int, default=1000)
    opts = ap.parse_args()
    size = opts.megabytes * 1_000_000
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(size)], stdout=subprocess.PIPE, text=True
    )
    try:
        if server.stdout is None:
            raise SystemExit("no server output")
        ports = dict(server.stdout.readline().split() for _ in range(2))
        connect_port, bulk_port = int(ports["connect"]), int(ports["bulk"])
        allow = (f"127.0.0.1:{connect_port}", f"127.0.0.1:{bulk_port}")
        policy = Policy(timeout=300, network=NetworkPolicy(allow=allow))
        relayed = Policy(timeout=300, network=NetworkPolicy(allow=allow, max_bytes=size * 2))
        samples: dict[str, list[float]] = {
            k: [] for k in ("conn_box", "conn_bare", "bulk_box", "bulk_bare", "bulk_relay")
        }
        for _ in range(opts.rounds):
            samples["conn_box"].append(sandboxed(CONNECTS, policy, connect_port, opts.connects))
            samples["conn_bare"].append(bare(CONNECTS, connect_port, opts.connects))
            samples["bulk_box"].append(sandboxed(BULK, policy, bulk_port, size))
            samples["bulk_bare"].append(bare(BULK, bulk_port, size))
            samples["bulk_relay"].append(sandboxed(BULK, relayed, bulk_port, size))
    finally:
        server.kill()
        server.wait()
    m = {k: statistics.median(v) for k, v in samples.items()}
    mb = size / 1e6
    print(f"rounds {opts.rounds}, {opts.connects} connects and {opts.megabytes} MB per round")
    print(
        f"connect     sandbox {m['conn_box'] * 1e6:7.1f} us   bare {m['conn_bare'] * 1e6:7.1f} us"
        f"   speed ratio {m['conn_bare'] / m['conn_box']:.2f}x (target >= 0.8x)"
    )
    print(
        f"throughput  sandbox {mb / m['bulk_box']:7.0f} MB/s bare {mb / m['bulk_bare']:7.0f} MB/s"
        f"   ratio {m['bulk_bare'] / m['bulk_box']:.2f}x (target >= 0.95x)"
    )
    print(
        f"relayed     sandbox {mb / m['bulk_relay']:7.0f} MB/s (max_bytes set)"
        f"   ratio {m['bulk_bare'] / m['bulk_relay']:.2f}x (no target)"
    )


if __name__ == "__main__":
    main()

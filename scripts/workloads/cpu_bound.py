"""A CPU-bound workload of a few seconds, in the spirit of pyperformance.

Three parts: a task-scheduler simulation (richards-like), an n-body
integration, and a JSON encode/decode round trip.  Runs unchanged on PyPy and
CPython, inside or outside the sandbox; prints one line of checksums so that
runs can be compared, and the seconds each part took.

Usage: cpu_bound.py [SCALE]   (SCALE multiplies the work, default 1)
"""

import json
import sys
import time


# --- scheduler simulation -------------------------------------------------
class Packet:
    __slots__ = ("data", "kind", "link", "target")

    def __init__(self, link, target, kind):
        self.link = link
        self.target = target
        self.kind = kind
        self.data = [0] * 4


class Task:
    __slots__ = ("count", "held", "ident", "inbox", "prio", "waiting")

    def __init__(self, ident, prio):
        self.ident = ident
        self.prio = prio
        self.inbox = []
        self.held = False
        self.waiting = False
        self.count = 0


def scheduler(rounds):
    tasks = [Task(i, (i * 7) % 5) for i in range(8)]
    packets = [Packet(None, i % 8, i % 3) for i in range(40)]
    for p in packets:
        tasks[p.target].inbox.append(p)
    checksum = 0
    for r in range(rounds):
        runnable = sorted((t for t in tasks if t.inbox and not t.held), key=lambda t: -t.prio)
        for t in runnable:
            p = t.inbox.pop(0)
            t.count += 1
            p.data[t.count % 4] += t.ident + r % 7
            checksum = (checksum * 31 + p.data[0] + p.kind) & 0xFFFFFFFF
            p.target = (p.target + 1 + p.kind) % 8
            tasks[p.target].inbox.append(p)
            t.held = r % 11 == t.ident
        for t in tasks:
            if t.held and r % 3 == 0:
                t.held = False
    return checksum


# --- n-body -----------------------------------------------------------------
def nbody(steps):
    bodies = [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 39.47],
        [4.84, -1.16, -0.10, 0.606, 2.81, -0.02, 0.037],
        [8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.011],
        [12.89, -15.11, -0.22, 1.08, 0.868, -0.01, 0.0017],
        [15.37, -25.91, 0.179, 0.979, 0.594, -0.034, 0.002],
    ]
    dt = 0.01
    for _ in range(steps):
        n = len(bodies)
        for i in range(n):
            bi = bodies[i]
            for j in range(i + 1, n):
                bj = bodies[j]
                dx = bi[0] - bj[0]
                dy = bi[1] - bj[1]
                dz = bi[2] - bj[2]
                d2 = dx * dx + dy * dy + dz * dz
                mag = dt / (d2 * d2**0.5)
                bim = bi[6] * mag
                bjm = bj[6] * mag
                bi[3] -= dx * bjm
                bi[4] -= dy * bjm
                bi[5] -= dz * bjm
                bj[3] += dx * bim
                bj[4] += dy * bim
                bj[5] += dz * bim
        for b in bodies:
            b[0] += dt * b[3]
            b[1] += dt * b[4]
            b[2] += dt * b[5]
    return round(sum(b[0] + b[1] + b[2] for b in bodies), 6)


# --- JSON round trip ------------------------------------------------------
def json_round_trip(times):
    doc = {
        "users": [
            {
                "id": i,
                "name": f"user{i}",
                "tags": ["a", "b", str(i)],
                "score": i * 1.5,
                "active": i % 2 == 0,
                "meta": {"x": i, "y": [i, i + 1]},
            }
            for i in range(200)
        ]
    }
    total = 0
    for _ in range(times):
        text = json.dumps(doc)
        back = json.loads(text)
        total += len(text) + len(back["users"])
    return total


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    out = []
    times = []
    for fn, arg in ((scheduler, 200_000), (nbody, 400_000), (json_round_trip, 300)):
        t = time.perf_counter()
        out.append(fn(int(arg * scale)))
        times.append(time.perf_counter() - t)
    print("checksums", *out)
    print("seconds", *(f"{t:.3f}" for t in times), f"{sum(times):.3f}")


if __name__ == "__main__":
    main()

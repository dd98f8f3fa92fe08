#!/usr/bin/env python3
"""Filesystem benchmarks: sandboxed PyPy against bare PyPy, side by side.

    .venv/bin/python scripts/bench_fs.py [--rounds N] [--files N]

1. importing a large set of stdlib modules (time measured inside the script);
2. creating, reading and deleting 10,000 small files on a read-write mount,
   against bare pypy3 doing the same in the same host directory (and, for
   context, in a RAM-backed directory);
3. reading one 200 MB file from a mount, in 1 MiB chunks.

Contenders alternate, medians are reported, ratios are bare time / sandboxed
time (1.0 = as fast as bare PyPy).  The sandboxed guest runs with
``--no-restrict``: this measures the filesystem layer, and the module set of
test 1 goes beyond the restricted mode's default allow-list.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

PYPY = "/usr/bin/pypy3"
CLI = os.path.join(os.path.dirname(sys.executable), "sandbox-run")

IMPORTS = textwrap.dedent("""
    import time
    t = time.perf_counter()
    import json, re, collections, decimal, datetime, fractions, statistics, random
    import email.message, email.parser, http.client, urllib.parse, urllib.request
    import xml.etree.ElementTree, html.parser, csv, sqlite3, zipfile, tarfile, gzip
    import asyncio, concurrent.futures, argparse, logging, typing, dataclasses, enum
    import unittest, difflib, textwrap, string, pprint, pathlib, shutil, tempfile
    import itertools, functools, operator, heapq, bisect, array, struct, base64
    import hashlib, hmac, secrets, uuid, ipaddress, socket, ssl, calendar, locale
    print(time.perf_counter() - t)
""")

SMALL_FILES = textwrap.dedent("""
    import os, sys, time
    d, n = sys.argv[1], int(sys.argv[2])
    t = time.perf_counter()
    for i in range(n):
        with open(os.path.join(d, "f%05d" % i), "w") as f:
            f.write("hello %d\\n" % i)
    total = 0
    for i in range(n):
        with open(os.path.join(d, "f%05d" % i)) as f:
            total += len(f.read())
    for i in range(n):
        os.unlink(os.path.join(d, "f%05d" % i))
    print(time.perf_counter() - t)
""")

BIG_READ = textwrap.dedent("""
    import sys, time
    t = time.perf_counter()
    n = 0
    with open(sys.argv[1], "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            n += len(b)
    assert n == int(sys.argv[2])
    print(time.perf_counter() - t)
""")


def seconds(cmd: list[str]) -> float:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{p.stderr[-2000:]}")
    return float(p.stdout.strip().splitlines()[-1])


def sandboxed(script: str, *args: str, mounts: tuple[str, ...] = (), policy: str = "") -> list[str]:
    cmd = [CLI, "--no-restrict", "--timeout", "10m", "--memory", "1GiB"]
    for m in mounts:
        cmd += ["--mount", m]
    if policy:
        cmd += ["--policy", policy]
    return [*cmd, script, *args]


def median_pair(rounds: int, a: list[str], b: list[str]) -> tuple[float, float]:
    sa, sb = [], []
    for _ in range(rounds):
        sa.append(seconds(a))
        sb.append(seconds(b))
    return statistics.median(sa), statistics.median(sb)


def report(what: str, sandbox: float, bare: float, target: str) -> None:
    print(
        f"{what:44s} sandboxed {sandbox:8.3f} s   bare {bare:8.3f} s   "
        f"ratio {bare / sandbox:5.2f}x  (target {target})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--big", type=int, default=200, help="size of the big file, MB")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-fs-")
    try:
        scripts = {}
        for name, text in (
            ("imports.py", IMPORTS),
            ("small.py", SMALL_FILES),
            ("big.py", BIG_READ),
        ):
            scripts[name] = os.path.join(work, name)
            with open(scripts[name], "w") as f:
                f.write(text)
        print(f"# sandbox-run filesystem benchmarks, {args.rounds} rounds, medians")

        s, b = median_pair(
            args.rounds, sandboxed(scripts["imports.py"]), [PYPY, scripts["imports.py"]]
        )
        report("import 60 stdlib modules", s, b, "-")

        host_dir = os.path.join(work, "rw")
        os.mkdir(host_dir)
        policy = os.path.join(work, "policy.toml")
        with open(policy, "w") as f:
            f.write(
                f'[[mount]]\nhost = "{host_dir}"\nguest = "/work"\nmode = "rw"\n'
                f'max_files = {args.files + 100}\nmax_bytes = "1GiB"\n'
            )
        n = str(args.files)
        s, b = median_pair(
            args.rounds,
            sandboxed(scripts["small.py"], "/work", n, policy=policy),
            [PYPY, scripts["small.py"], host_dir, n],
        )
        report(f"{args.files} small files, rw mount vs same host dir", s, b, ">= 0.5x")
        shm = tempfile.mkdtemp(prefix="bench-fs-", dir="/dev/shm")
        try:
            b_shm = statistics.median(
                seconds([PYPY, scripts["small.py"], shm, n]) for _ in range(args.rounds)
            )
        finally:
            shutil.rmtree(shm)
        report(f"{args.files} small files, vs bare on a RAM disk", s, b_shm, "(context)")

        big_dir = os.path.join(work, "big")
        os.mkdir(big_dir)
        size = args.big * 1_000_000
        with open(os.path.join(big_dir, "big.bin"), "wb") as f:
            for _ in range(args.big):
                f.write(os.urandom(1_000_000))
        s, b = median_pair(
            args.rounds,
            sandboxed(scripts["big.py"], "/big/big.bin", str(size), mounts=(f"{big_dir}:/big",)),
            [PYPY, scripts["big.py"], os.path.join(big_dir, "big.bin"), str(size)],
        )
        report(f"read one {args.big} MB file", s, b, ">= 0.9x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

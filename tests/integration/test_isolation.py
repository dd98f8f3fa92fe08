"""One controller, several sandboxes, some of them misbehaving: the others
are served as usual and finish correctly within their own time limits."""

from __future__ import annotations

import hashlib
import textwrap

import trio

import sandbox_run
from sandbox_run import Outcome, Policy

MiB = 1 << 20

WELL_BEHAVED = textwrap.dedent(
    """
    import hashlib, os
    h = hashlib.sha256()
    for i in range(150):
        name = '/tmp/f%d' % i
        with open(name, 'w') as f:
            f.write('line %d\\n' % i * 20)
        os.stat(name)
        with open(name) as f:
            h.update(f.read().encode())
        os.unlink(name)
    print(h.hexdigest())
    """
)
EXPECTED = hashlib.sha256(b"".join(b"line %d\n" % i * 20 for i in range(150))).hexdigest()

MISBEHAVING = {
    # a storm of mediated calls until the wall clock
    "storm": (
        "import os\nwhile True:\n    os.stat('/sandbox/main.py')",
        Policy(timeout=8.0),
        Outcome.TIMEOUT,
    ),
    # output as fast as it can be written
    "flood": (
        "import os\nwhile True:\n    os.write(1, b'x' * 65536)",
        Policy(output=64 * MiB, timeout=30.0),
        Outcome.OUTPUT_LIMIT,
    ),
    "memory": (
        "l = []\nwhile True:\n    l.append(bytearray(1 << 20))",
        Policy(memory=256 * MiB, timeout=30.0),
        Outcome.MEMORY_LIMIT,
    ),
    "cpu": ("while True: pass", Policy(cpu_time=3.0, timeout=30.0), Outcome.CPU_LIMIT),
    "blocked": ("import signal\nsignal.pause()", Policy(timeout=8.0), Outcome.TIMEOUT),
}


def test_sandboxes_are_served_while_others_misbehave() -> None:
    bad: dict[str, sandbox_run.Result] = {}
    good: list[sandbox_run.Result] = []

    async def misbehave(name: str) -> None:
        code, policy, _ = MISBEHAVING[name]
        # Unrestricted: they may use anything the interpreter has.
        bad[name] = await sandbox_run.run_async(code, policy=policy.replace(restricted=False))

    async def behave() -> None:
        # Each has its own deadline, well inside the misbehavers' time: a
        # starved controller would make it a timeout.
        good.append(await sandbox_run.run_async(WELL_BEHAVED, policy=Policy(timeout=6.0)))

    async def main() -> None:
        async with trio.open_nursery() as n:
            for name in MISBEHAVING:
                n.start_soon(misbehave, name)
            await trio.sleep(1.0)  # the misbehavers are in full swing
            for _ in range(3):
                n.start_soon(behave)

    trio.run(main)
    for r in good:
        assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr)
        assert r.stdout == (EXPECTED + "\n").encode()
        assert r.syscalls["openat"] >= 300
    assert len(good) == 3
    for name, (_, _, outcome) in MISBEHAVING.items():
        assert bad[name].outcome is outcome, (name, bad[name].reason)

"""Persistent sandboxes against the real sandboxed PyPy: calls in and out,
plain data only, deadlines per call, capabilities and their limits, the
warm pool (with nothing leaking between tenants), the blocking facade and
asyncio hosts."""

from __future__ import annotations

import asyncio
import math
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

import sandbox_run
from sandbox_run import (
    BlockingSandbox,
    CallDeadlineExceeded,
    Capability,
    CapabilityError,
    GuestError,
    Outcome,
    Policy,
    Pool,
    Sandbox,
    SandboxClosed,
    SandboxError,
)

OS_LAYER = Policy(restricted=False)


def session(fn: Callable[..., Awaitable[None]], *args: Any) -> None:
    trio.run(fn, *args)


def code(text: str) -> str:
    return textwrap.dedent(text)


# --- calls in -------------------------------------------------------------------


def test_state_persists_between_calls() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            await sb.exec(
                "counter = []\ndef bump(n):\n    counter.append(n)\n    return sum(counter)"
            )
            assert await sb.call("bump", 2) == 2
            assert await sb.call("bump", 3) == 5
            assert await sb.eval("len(counter)") == 2
            assert await sb.call("bump", kwargs={"n": 5}) == 10
        assert sb.result is not None
        assert sb.result.outcome is Outcome.COMPLETED

    session(main)


PLAIN = [
    None,
    True,
    -(1 << 200),
    2.5,
    math.inf,
    "é\u2603",
    b"\x00\xff",
    [1, [2, (3, 4)]],
    (),
    {"k": {"nested": [None, b"x"]}},
]


def test_plain_data_crosses_exactly_both_ways() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            await sb.exec("def echo(*args, **kw): return [args, kw]")
            got = await sb.call("echo", *PLAIN, kwargs={"x": PLAIN})
            assert got == [tuple(PLAIN), {"x": PLAIN}]
            assert type(got[0][7][1][1]) is tuple  # tuples stay tuples

    session(main)


def test_anything_else_is_refused_before_it_crosses() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            await sb.exec("def echo(x): return x\ndef bad(): return object()")
            for value in ({1, 2}, object(), {1: "int key"}, bytearray(b"x")):
                with pytest.raises(TypeError, match="only plain data crosses"):
                    await sb.call("echo", value)
            with pytest.raises(GuestError) as e:
                await sb.call("bad")
            assert e.value.type == "TypeError"
            assert "the result is not plain data: object is not plain data" in e.value.message
            assert await sb.call("echo", 1) == 1  # the session goes on

    session(main)


def test_guest_exceptions_come_back_as_text() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            await sb.exec("def fail(x):\n    return {}[x]")
            with pytest.raises(GuestError) as e:
                await sb.call("fail", "missing")
            assert (e.value.type, e.value.message) == ("KeyError", "'missing'")
            assert e.value.traceback.startswith("Traceback (most recent call last):")
            assert 'File "<exec>", line 2, in fail' in e.value.traceback
            assert "bootstrap" not in e.value.traceback and "session.py" not in e.value.traceback
            with pytest.raises(GuestError, match="NameError: the sandbox has no function"):
                await sb.call("nothing_here")
            with pytest.raises(GuestError) as e:
                await sb.exec("import gc")
            assert e.value.type == "SandboxImportError"  # the restricted mode holds

    session(main)


def test_output_comes_with_the_call() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            await sb.exec("import sys\nprint('out')\nprint('err', file=sys.stderr)")
            assert sb.take_output() == (b"out\n", b"err\n")
            assert sb.take_output() == (b"", b"")

    session(main)


# --- deadlines ----------------------------------------------------------------------


def test_a_wall_deadline_interrupts_the_call_and_the_session_goes_on() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            await sb.exec("import time\nstate = {'n': 0}")
            with pytest.raises(CallDeadlineExceeded) as e:
                await sb.exec("state['n'] += 1\ntime.sleep(30)", timeout=0.2)
            assert (e.value.deadline, e.value.limit, e.value.type) == (
                "wall",
                0.2,
                "DeadlineExceeded",
            )
            assert await sb.eval("state['n']") == 1

    session(main)


def test_a_cpu_deadline_interrupts_a_busy_call() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            with pytest.raises(CallDeadlineExceeded) as e:
                await sb.exec("while True:\n    pass", cpu_time=0.1)
            assert e.value.deadline == "cpu"
            assert await sb.eval("6 * 7") == 42

    session(main)


def test_except_exception_does_not_swallow_the_interruption() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            src = "try:\n    while True: pass\nexcept Exception:\n    pass"
            with pytest.raises(CallDeadlineExceeded):
                await sb.exec(src, timeout=0.2)
            assert await sb.eval("1") == 1

    session(main)


def test_a_guest_that_will_not_stop_is_killed() -> None:
    async def main() -> None:
        # A bare except catches the interruption every time: after the grace
        # period the guest is killed and the session ends.
        async with Sandbox(interrupt_grace=0.3) as sb:
            src = "while True:\n    try:\n        while True: pass\n    except:\n        pass"
            with pytest.raises(SandboxClosed):
                await sb.exec(src, timeout=0.2)
            with pytest.raises(SandboxClosed):
                await sb.eval("1")
        assert sb.result is not None
        assert sb.result.outcome is Outcome.TIMEOUT
        assert "did not stop when interrupted" in sb.result.reason

    session(main)


def test_one_long_c_level_call_is_killed_after_the_grace() -> None:
    async def main() -> None:
        async with Sandbox(interrupt_grace=0.3) as sb:
            await sb.exec("import re")
            with pytest.raises(SandboxClosed):
                await sb.exec("re.match(r'(a+)+$', 'a' * 64 + 'b')", cpu_time=0.2)
        assert sb.result is not None and sb.result.outcome is Outcome.CPU_LIMIT

    session(main)


def test_the_policy_can_end_the_session_at_a_deadline() -> None:
    async def main() -> None:
        policy = Policy(call_timeout=0.2, end_on_call_deadline=True)
        async with Sandbox(policy) as sb:
            with pytest.raises(CallDeadlineExceeded):
                await sb.exec("import time\ntime.sleep(5)")
            with pytest.raises(SandboxClosed):
                await sb.eval("1")
        assert sb.result is not None
        assert (
            sb.result.reason == "a call passed its wall-clock deadline; the policy ends the session"
        )

    session(main)


def test_the_sessions_own_limits_hold() -> None:
    async def main() -> None:
        async with Sandbox(Policy(timeout=1.0)) as sb:
            with pytest.raises(SandboxClosed) as e:
                await sb.exec("import time\ntime.sleep(30)")
            assert "wall-clock timeout" in str(e.value)
        assert sb.result is not None and sb.result.outcome is Outcome.TIMEOUT

    session(main)


# --- calls out: capabilities ------------------------------------------------------


def test_host_functions_sync_and_async() -> None:
    seen: list[Any] = []

    async def fetch(key: str) -> dict[str, Any]:
        await trio.sleep(0.01)
        return {"key": key, "value": [1, 2]}

    async def main() -> None:
        async with Sandbox(capabilities={"log": seen.append, "fetch": fetch}) as sb:
            await sb.exec("def turn(n):\n    log(n)\n    return fetch('k%d' % n)")
            assert await sb.call("turn", 7) == {"key": "k7", "value": [1, 2]}
        assert seen == [7]
        assert sb.capability_stats() == {
            "log": {"calls": 1, "refused": 0},
            "fetch": {"calls": 1, "refused": 0},
        }

    session(main)


def test_host_function_limits() -> None:
    async def slow() -> int:
        await trio.sleep(5)
        return 1

    caps = {
        "once": Capability(lambda: "ok", max_calls=1),
        "rated": Capability(lambda: "ok", rate=2),
        "slow": Capability(slow, timeout=0.1),
    }

    async def main() -> None:
        async with Sandbox(capabilities=caps) as sb:
            await sb.exec(
                "def attempt(f):\n    try:\n        return f()\n"
                "    except Exception as e:\n        return type(e).__name__ + ': ' + str(e)"
            )
            assert await sb.eval("attempt(once)") == "ok"
            assert await sb.eval("attempt(once)") == (
                "HostCallError: host function 'once': its 1 calls are used up"
            )
            got = await sb.eval("[attempt(rated) for _ in range(4)]")
            assert got[:2] == ["ok", "ok"]
            assert "more than 2 calls per second" in got[2]
            assert await sb.eval("attempt(slow)") == (
                "HostCallError: host function 'slow': it took longer than 0.1s"
            )
        assert sb.capability_stats()["rated"]["refused"] == 2

    session(main)


def test_revoked_functions_fail_and_errors_say_only_what_the_host_allows() -> None:
    def secret_failure() -> None:
        raise RuntimeError("database password is hunter2")

    def polite_failure() -> None:
        raise CapabilityError("no such player")

    async def main() -> None:
        caps = {"a": lambda: 1, "oops": secret_failure, "nope": polite_failure}
        async with Sandbox(capabilities=caps) as sb:
            await sb.exec(
                "def attempt(f):\n    try:\n        return f()\n"
                "    except Exception as e:\n        return str(e)"
            )
            assert await sb.eval("attempt(a)") == 1
            sb.revoke("a")
            assert await sb.eval("attempt(a)") == "host function 'a': it was revoked"
            leaked = await sb.eval("attempt(oops)")
            assert leaked == "host function 'oops': it failed on the host"
            assert await sb.eval("attempt(nope)") == "host function 'nope': no such player"

    session(main)


def test_host_functions_are_opaque_to_restricted_code() -> None:
    async def main() -> None:
        async with Sandbox(capabilities={"f": lambda: 1}) as sb:
            for attr in ("__closure__", "__globals__", "__code__", "__wrapped__"):
                with pytest.raises(GuestError) as e:
                    await sb.eval(f"f.{attr}")
                assert e.value.type == "SandboxAttributeError"
            with pytest.raises(GuestError, match="only plain data"):
                await sb.eval("f(object())")

    session(main)


def test_granted_later_and_per_sandbox() -> None:
    async def main() -> None:
        async with Sandbox() as sb:
            with pytest.raises(GuestError, match="NameError"):
                await sb.eval("late()")
            await sb.grant("late", lambda: "here")
            assert await sb.eval("late()") == "here"

    session(main)


def test_a_host_function_may_not_call_back_into_its_sandbox() -> None:
    holder: list[Sandbox] = []

    async def reenter() -> int:
        return int(await holder[0].eval("1"))

    async def main() -> None:
        async with Sandbox(capabilities={"reenter": reenter}) as sb:
            holder.append(sb)
            with pytest.raises(GuestError, match="host function 'reenter': it failed on the host"):
                await sb.eval("reenter()")

    session(main)


def test_forged_channel_messages_are_checked_like_stubs() -> None:
    # Unrestricted code can write to the channel by number: a forged call
    # of a host function that is not granted is refused by the host.
    async def main() -> None:
        async with Sandbox(OS_LAYER) as sb:
            fd = await sb.eval(
                "__import__('resource').getrlimit(__import__('resource').RLIMIT_NOFILE)[0]"
            )
            await sb.exec(
                f"import os\nFD = {fd}\n"
                "def forge(raw):\n    os.write(FD, len(raw).to_bytes(4, 'big') + raw)"
            )
            with pytest.raises(SandboxClosed):
                await sb.exec("forge(b'garbage that is not a frame')")
        assert sb.result is not None
        assert sb.result.outcome is Outcome.POLICY_VIOLATION
        assert sb.result.reason == "the guest broke the session protocol on its channel"

    session(main)


# --- the pool ----------------------------------------------------------------------


def test_pool_gives_fresh_guests_and_nothing_leaks_between_tenants() -> None:
    async def main() -> None:
        async with Pool(size=2) as pool:
            async with pool.sandbox() as first:
                await first.exec(
                    "import os\nSECRET = 'tenant one'\n"
                    "open('/tmp/left-behind', 'w').write('x')\nos.environ['MARK'] = '1'"
                )
            async with pool.sandbox(capabilities={"who": lambda: "two"}) as second:
                assert await second.eval("'SECRET' in globals()") is False
                assert (
                    await second.eval("__import__('os').path.exists('/tmp/left-behind')") is False
                )
                assert await second.eval("__import__('os').environ.get('MARK')") is None
                assert await second.eval("who()") == "two"
            assert first.result is not None and second.result is not None
            assert first.result.outcome is Outcome.COMPLETED

    session(main)


def test_pool_clocks_start_at_the_checkout() -> None:
    async def main() -> None:
        async with Pool(Policy(timeout=1.0), size=1) as pool:
            await trio.sleep(1.5)  # longer than the timeout, waiting in the pool
            async with pool.sandbox() as sb:
                assert await sb.eval("1 + 1") == 2

    session(main)


def test_pool_reports_guests_that_cannot_start(tmp_path: Any) -> None:
    prelude = tmp_path / "broken.py"
    prelude.write_text("raise RuntimeError('prelude fails')\n__all__ = []\n")

    async def main() -> None:
        async with Pool(size=1, prelude=str(prelude)) as pool:
            with pytest.raises(SandboxError, match="the pool cannot start guests"):
                async with pool.sandbox():
                    pass

    session(main)


# --- many at once, and other hosts ------------------------------------------------


def test_many_sandboxes_in_one_loop_one_misbehaving() -> None:
    results: dict[int, Any] = {}

    async def good(i: int) -> None:
        async with Sandbox() as sb:
            await sb.exec("def square(x): return x * x")
            results[i] = [await sb.call("square", i) for _ in range(20)]

    async def bad() -> None:
        async with Sandbox(Policy(timeout=30)) as sb:
            for _ in range(3):
                with pytest.raises(CallDeadlineExceeded):
                    await sb.exec("while True: pass", timeout=0.5)

    async def main() -> None:
        async with trio.open_nursery() as n:
            n.start_soon(bad)
            for i in range(12):
                n.start_soon(good, i)

    session(main)
    assert results == {i: [i * i] * 20 for i in range(12)}


def test_blocking_facade() -> None:
    seen: list[int] = []
    with BlockingSandbox(capabilities={"note": seen.append}) as sb:
        sb.exec("def double(x):\n    note(x)\n    return 2 * x")
        assert sb.call("double", 21) == 42
        with pytest.raises(GuestError, match="ZeroDivisionError"):
            sb.eval("1 / 0")
        with pytest.raises(CallDeadlineExceeded):
            sb.exec("while True: pass", timeout=0.2)
        assert sb.eval("double(2)") == 4
    assert seen == [21, 2]
    assert sb.result is not None and sb.result.outcome is Outcome.COMPLETED


def test_blocking_facade_reports_a_bad_start(tmp_path: Any) -> None:
    with pytest.raises(sandbox_run.PolicyError, match="no such file"):
        BlockingSandbox(prelude=str(tmp_path / "missing.py"))


def test_asyncio_host_through_a_thread() -> None:
    async def host() -> list[int]:
        sb = await asyncio.to_thread(BlockingSandbox)
        try:
            await asyncio.to_thread(sb.exec, "def inc(x): return x + 1")
            return [await asyncio.to_thread(sb.call, "inc", i) for i in range(3)]
        finally:
            await asyncio.to_thread(sb.close)

    assert asyncio.run(host()) == [1, 2, 3]


def test_asyncio_host_running_trio_as_a_guest_loop() -> None:
    async def trio_side() -> int:
        async with Sandbox() as sb:
            return int(await sb.eval("40 + 2"))

    async def host() -> int:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        trio.lowlevel.start_guest_run(
            trio_side,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=done.set_result,
        )
        outcome = await done
        return int(outcome.unwrap())

    assert asyncio.run(host()) == 42

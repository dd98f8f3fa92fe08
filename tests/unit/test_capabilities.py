"""Host functions' admission and failure rules, without a guest."""

from __future__ import annotations

import pytest
import trio

from sandbox_run import Capability, CapabilityError, PolicyError
from sandbox_run.embed import capabilities as caps
from sandbox_run.embed.capabilities import Grants, Refusal


def test_names_must_be_public_identifiers() -> None:
    for bad in ("", "1x", "a-b", "_private", "__import__"):
        with pytest.raises(PolicyError, match="public Python identifier"):
            Grants({bad: print})


def test_capability_settings_are_checked() -> None:
    with pytest.raises(PolicyError, match="callable"):
        Capability(42)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="max_calls"):
        Capability(print, max_calls=-1)
    with pytest.raises(PolicyError, match="rate"):
        Capability(print, rate=0)


def test_unknown_revoked_and_used_up() -> None:
    g = Grants({"once": Capability(lambda: 1, max_calls=1), "f": lambda: 2})
    with pytest.raises(Refusal, match="it is not granted"):
        g.call_inline("missing", (), {})
    assert g.call_inline("once", (), {}) == 1
    with pytest.raises(Refusal, match="its 1 calls are used up"):
        g.call_inline("once", (), {})
    g.revoke("f")
    with pytest.raises(Refusal, match="it was revoked"):
        g.call_inline("f", (), {})
    assert g.stats() == {"once": {"calls": 1, "refused": 1}, "f": {"calls": 0, "refused": 1}}
    assert g.names == ["once"]
    with pytest.raises(KeyError):
        g.revoke("missing")


def test_rate_is_a_token_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(caps.time, "monotonic", lambda: now[0])
    g = Grants({"r": Capability(lambda: 1, rate=2)})
    assert [g.call_inline("r", (), {}) for _ in range(2)] == [1, 1]  # a burst of 2
    with pytest.raises(Refusal, match="more than 2 calls per second"):
        g.call_inline("r", (), {})
    now[0] += 0.5  # one more token
    assert g.call_inline("r", (), {}) == 1
    with pytest.raises(Refusal):
        g.call_inline("r", (), {})


def test_failures_tell_the_guest_only_what_the_host_allows() -> None:
    def secret() -> None:
        raise RuntimeError("the password is hunter2")

    def polite() -> None:
        raise CapabilityError("no such player")

    g = Grants({"secret": secret, "polite": polite})
    with pytest.raises(Refusal) as e:
        g.call_inline("secret", (), {})
    assert str(e.value) == "it failed on the host"
    with pytest.raises(Refusal, match=r"^no such player$"):
        g.call_inline("polite", (), {})


def test_which_functions_run_inline() -> None:
    async def later() -> int:
        return 1

    g = Grants({"plain": lambda: 1, "coro": later, "thread": Capability(lambda: 1, thread=True)})
    assert g.runs_inline("plain") and not g.runs_inline("coro") and not g.runs_inline("thread")
    assert g.runs_inline("unknown")  # refused at once


def test_a_plain_function_returning_an_awaitable_is_refused() -> None:
    async def later() -> int:
        return 1

    g = Grants({"sneaky": lambda: later()})
    with pytest.raises(Refusal, match="declare it async"):
        g.call_inline("sneaky", (), {})


def test_async_calls_and_their_deadline() -> None:
    async def slow() -> int:
        await trio.sleep(5)
        return 1

    async def quick(x: int) -> int:
        await trio.sleep(0)
        return x * 2

    g = Grants({"slow": Capability(slow, timeout=0.05), "quick": quick})

    async def main() -> None:
        assert await g.call("quick", (21,), {}) == 42
        with pytest.raises(Refusal, match=r"it took longer than 0\.05s"):
            await g.call("slow", (), {})

    trio.run(main)

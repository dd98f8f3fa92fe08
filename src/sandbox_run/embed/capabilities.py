"""Host functions a session grants its guest, and the limits on calling them.

A guest calls a capability by name; the host side checks, every time, that
the name is granted and not revoked, that the call count and rate allow one
more call, and that the arguments are plain data (the wire already made
sure), then runs the function under its own deadline.  Only plain data goes
back.  What a failure tells the guest is decided here: the message of a
``CapabilityError`` the function raised, or a fixed sentence (the text of
any other exception stays on the host, in the log).
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from ..errors import CapabilityError, PolicyError

log = logging.getLogger("sandbox_run")


@dataclass(frozen=True, slots=True)
class Capability:
    """A host function and its limits.

    ``max_calls``: calls allowed over the session.  ``rate``: calls per
    second, sustained (bursts of up to ``max(1, rate)``).  ``timeout``: the
    host side's deadline for one call, seconds.  ``thread``: run a plain
    function in a worker thread (for blocking work) instead of on the event
    loop (the default, for quick functions).
    """

    fn: Callable[..., Any]
    max_calls: int | None = None
    rate: float | None = None
    timeout: float | None = None
    thread: bool = False

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise PolicyError(f"a capability must be callable, not {self.fn!r}")
        if self.max_calls is not None and (
            not isinstance(self.max_calls, int) or self.max_calls < 0
        ):
            raise PolicyError(f"max_calls: expected a whole number >= 0, got {self.max_calls!r}")
        for key in ("rate", "timeout"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, (int, float)) or not 0 < v < math.inf):
                raise PolicyError(f"{key}: expected a positive number, got {v!r}")


class Refusal(Exception):
    """A guest's call that is not made, or failed; the message goes to the
    guest, after the function's name."""


@dataclass(slots=True)
class _Grant:
    capability: Capability
    revoked: bool = False
    calls: int = 0
    refused: int = 0
    tokens: float = 0.0
    refilled: float = 0.0


class Grants:
    """The capabilities of one session, by name."""

    def __init__(self, capabilities: Mapping[str, Capability | Callable[..., Any]]) -> None:
        self._grants: dict[str, _Grant] = {}
        for name, cap in capabilities.items():
            self.grant(name, cap)

    @property
    def names(self) -> list[str]:
        return [n for n, g in self._grants.items() if not g.revoked]

    def grant(self, name: str, cap: Capability | Callable[..., Any]) -> None:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise PolicyError(f"capability name {name!r}: must be a public Python identifier")
        capability = cap if isinstance(cap, Capability) else Capability(cap)
        burst = max(1.0, capability.rate or 1.0)
        self._grants[name] = _Grant(capability, tokens=burst, refilled=time.monotonic())

    def revoke(self, name: str) -> None:
        """From now on, calls of ``name`` fail (the guest's stub stays, powerless)."""
        grant = self._grants.get(name)
        if grant is None:
            raise KeyError(name)
        grant.revoked = True

    def stats(self) -> dict[str, dict[str, int]]:
        return {n: {"calls": g.calls, "refused": g.refused} for n, g in self._grants.items()}

    def _admit(self, name: str) -> _Grant:
        grant = self._grants.get(name)
        if grant is None:
            raise Refusal("it is not granted")
        cap = grant.capability
        if grant.revoked:
            grant.refused += 1
            raise Refusal("it was revoked")
        if cap.max_calls is not None and grant.calls >= cap.max_calls:
            grant.refused += 1
            raise Refusal(f"its {cap.max_calls} calls are used up")
        if cap.rate is not None:
            now = time.monotonic()
            burst = max(1.0, cap.rate)
            grant.tokens = min(burst, grant.tokens + (now - grant.refilled) * cap.rate)
            grant.refilled = now
            if grant.tokens < 1.0:
                grant.refused += 1
                raise Refusal(f"more than {cap.rate:g} calls per second")
            grant.tokens -= 1.0
        grant.calls += 1
        return grant

    def runs_inline(self, name: str) -> bool:
        """Whether ``name`` is a plain function run on the event loop: its
        call can be answered at once, without a task of its own."""
        grant = self._grants.get(name) if type(name) is str else None
        if grant is None:
            return True  # refused at once
        cap = grant.capability
        return not cap.thread and not inspect.iscoroutinefunction(cap.fn)

    def call_inline(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a ``runs_inline`` function now; Refusal says why it failed."""
        if type(name) is not str:
            raise Refusal("a host function's name is a string")
        cap = self._admit(name).capability
        try:
            value = cap.fn(*args, **kwargs)
        except CapabilityError as e:
            raise Refusal(str(e)) from None
        except Exception:
            log.exception("host function %r failed", name)
            raise Refusal("it failed on the host") from None
        if inspect.isawaitable(value):
            close = getattr(value, "close", None)
            if close is not None:
                close()
            raise Refusal("it returned an awaitable: declare it async")
        return value

    async def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the guest's call of ``name``; Refusal says why it failed."""
        if type(name) is not str:
            raise Refusal("a host function's name is a string")
        cap = self._admit(name).capability
        timeout = cap.timeout if cap.timeout is not None else math.inf
        try:
            with trio.fail_after(timeout):
                if inspect.iscoroutinefunction(cap.fn):
                    return await cap.fn(*args, **kwargs)
                if cap.thread:
                    return await trio.to_thread.run_sync(
                        lambda: cap.fn(*args, **kwargs), abandon_on_cancel=True
                    )
                value = cap.fn(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
                return value
        except trio.TooSlowError:
            raise Refusal(f"it took longer than {timeout:g}s") from None
        except CapabilityError as e:
            raise Refusal(str(e)) from None
        except Exception:
            log.exception("host function %r failed", name)
            raise Refusal("it failed on the host") from None

"""A warm pool: guests started ahead of time, so that a fresh sandbox is
ready at once.

Every guest serves one user and is then thrown away: nothing one tenant did
(its globals, its files, its threads) can reach the next.  A guest waiting
in the pool is booted (interpreter, bootstrap, restricted environment,
prelude) but idle, and its wall-clock and CPU limits are not counted until
it is handed out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any

import trio

from ..errors import SandboxError
from ..policy.schema import Policy
from .capabilities import Capability
from .sandbox import OutputSink, Sandbox


class Pool:
    """Ready guests for one policy::

        async with sandbox_run.Pool(policy, size=8) as pool:
            async with pool.sandbox(capabilities={"move": move}) as sb:
                await sb.call("on_turn", state)

    ``size`` guests are kept ready; ``starters`` guests boot at once (by
    default one per CPU).  Open and close it in the same task, and close the
    sandboxes it handed out before the pool itself.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        size: int = 4,
        prelude: str | None = None,
        starters: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a pool holds at least one guest")
        self.policy = policy or Policy()
        self.size = size
        self._prelude = prelude
        self._starters = max(1, min(size, starters or os.cpu_count() or 1))
        self._send, self._receive = trio.open_memory_channel[Sandbox](size - 1 if size > 1 else 0)
        self._nursery: trio.Nursery | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._failure: BaseException | None = None
        self._ready_count = 0
        self._fillers = 0  # tasks starting guests

    async def __aenter__(self) -> Pool:
        self._stack = contextlib.AsyncExitStack()
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        for _ in range(self._starters):
            self._nursery.start_soon(self._fill)
        return self

    async def __aexit__(
        self,
        etype: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is None or self._nursery is None:
            return
        try:
            await self._shutdown()
        finally:
            await self._stack.__aexit__(etype, value, tb)

    async def _shutdown(self) -> None:
        await self.stop()
        self._receive.close()

    async def stop(self) -> None:
        """Start no more guests, and close those waiting (the sandboxes
        already handed out go on).  For a host that has taken all it needs:
        the refill would only cost CPU."""
        self._send.close()
        while True:
            try:
                sb = self._receive.receive_nowait()
            except trio.WouldBlock:
                if self._fillers == 0:
                    return
                await trio.sleep(0.01)  # a guest still booting: wait for it
                continue
            except trio.EndOfChannel:
                return
            self._ready_count -= 1
            await sb.aclose()

    @property
    def ready(self) -> int:
        """Guests waiting in the pool."""
        return self._ready_count

    async def _fill(self) -> None:
        """Start guests one after the other, as the pool empties."""
        nursery = self._nursery
        if nursery is None:
            return
        self._fillers += 1
        try:
            await self._fill_loop(nursery)
        finally:
            self._fillers -= 1

    async def _fill_loop(self, nursery: trio.Nursery) -> None:
        while True:
            sb = Sandbox(self.policy, prelude=self._prelude)
            sb._pooled = True
            try:
                await sb._start_in(nursery)
            except SandboxError as e:
                # A guest that cannot start (a bad prelude, say): the users
                # waiting for one get the reason.
                self._failure = e
                self._send.close()
                return
            self._ready_count += 1
            try:
                await self._send.send(sb)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._ready_count -= 1
                await sb.aclose()
                return

    async def take(
        self,
        *,
        capabilities: Mapping[str, Capability | Callable[..., Any]] | None = None,
        stdout: OutputSink | None = None,
        stderr: OutputSink | None = None,
    ) -> Sandbox:
        """A fresh sandbox from the pool; the caller must ``aclose()`` it."""
        while True:
            try:
                sb = await self._receive.receive()
            except trio.EndOfChannel:
                if self._failure is not None:
                    raise SandboxError(f"the pool cannot start guests: {self._failure}") from None
                raise SandboxError("the pool is closed") from None
            self._ready_count -= 1
            if sb.closed:  # died while it waited: take the next
                continue
            await sb._checkout(capabilities or {}, stdout, stderr)
            return sb

    @contextlib.asynccontextmanager
    async def sandbox(
        self,
        *,
        capabilities: Mapping[str, Capability | Callable[..., Any]] | None = None,
        stdout: OutputSink | None = None,
        stderr: OutputSink | None = None,
    ) -> AsyncIterator[Sandbox]:
        """A fresh sandbox from the pool, closed (and thrown away) on exit."""
        sb = await self.take(capabilities=capabilities, stdout=stdout, stderr=stderr)
        try:
            yield sb
        finally:
            with trio.CancelScope(shield=True):
                await sb.aclose()

"""Persistent sandboxes: a guest that stays alive between calls.

``Sandbox`` starts a guest whose bootstrap, after building the untrusted
environment, serves requests over its channel (``guest/session.py`` is the
other half).  The host sends ``exec``, ``eval`` and ``call`` requests, one
at a time; the guest may call granted host functions while it runs one.

Each call has its own wall-clock and CPU deadlines.  When one passes, the
controller signals the guest, whose bootstrap raises ``DeadlineExceeded`` in
the call; the caller gets ``CallDeadlineExceeded`` and the session goes on
(unless ``Policy.end_on_call_deadline``).  A guest that does not stop within
``interrupt_grace`` (it is stuck in one long C-level operation, or swallows
the exception) is killed: the session ends, and the whole session's limits
(wall clock, CPU, memory, output ...) hold all along.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import trio

from .. import api
from ..controller import channel
from ..controller.session import Run, run_guest
from ..errors import (
    CallDeadlineExceeded,
    GuestError,
    PolicyError,
    SandboxClosed,
    SandboxError,
)
from ..guest import wire
from ..policy.schema import Policy
from ..result import Result
from .capabilities import Capability, Grants, Refusal

log = logging.getLogger("sandbox_run")
OutputSink = Callable[[bytes], None]
#: How long an interrupted call has to stop before its guest is killed.
INTERRUPT_GRACE = 0.5
#: How often the interrupt is repeated during the grace period.
INTERRUPT_REPEAT = 0.02
#: Longest a call waits for its answer outside the event loop (see
#: Run.serve_inline): a trivial call takes tens of microseconds.
INLINE_BUDGET = 0.001
#: How long a closing guest has to exit before it is killed.
CLOSE_GRACE = 2.0


@dataclass(slots=True)
class _Pending:
    """One call waiting for the guest's answer."""

    done: trio.Event = field(default_factory=trio.Event)
    answered: bool = False  # the guest answered (else the session ended first)
    value: Any = None
    error: tuple[str, str, str] | None = None
    deadline: tuple[str, float] | None = None  # ("wall"|"cpu", limit) once interrupted


class Sandbox:
    """A persistent sandboxed guest (trio)::

        async with sandbox_run.Sandbox(policy, capabilities={"log": log_fn}) as sb:
            await sb.exec("def on_turn(state): return state['n'] + 1")
            await sb.call("on_turn", {"n": 1})      # 2

    Open and close it in the same task (it owns a nursery).  See
    docs/embedding.md.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        capabilities: Mapping[str, Capability | Callable[..., Any]] | None = None,
        prelude: str | None = None,
        stdout: OutputSink | None = None,
        stderr: OutputSink | None = None,
        interrupt_grace: float = INTERRUPT_GRACE,
    ) -> None:
        self.policy = policy or Policy()
        self._grants = Grants(capabilities or {})
        self._prelude = prelude
        self._out = bytearray()
        self._err = bytearray()
        self._sinks = (stdout, stderr)
        self._grace = interrupt_grace
        self._pooled = False
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._call_lock = trio.Lock()
        self._ready = trio.Event()
        self._closed = trio.Event()
        self._run: Run | None = None
        self._error: BaseException | None = None
        self._host_calls = 0  # guest -> host calls in progress
        self._stack: contextlib.AsyncExitStack | None = None
        #: how the session ended, once it has
        self.result: Result | None = None

    # --- life -----------------------------------------------------------------------
    async def __aenter__(self) -> Sandbox:
        self._stack = contextlib.AsyncExitStack()
        nursery = await self._stack.enter_async_context(trio.open_nursery())
        try:
            await self._start_in(nursery)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        etype: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:
            if self._stack is not None:
                await self._stack.__aexit__(etype, value, tb)

    async def _start_in(self, nursery: trio.Nursery) -> None:
        """Start the guest in ``nursery`` and wait until it serves calls."""
        nursery.start_soon(self._main)
        await _first(self._ready.wait, self._closed.wait)
        if self._error is not None:
            raise self._error
        if not self._ready.is_set():
            raise SandboxClosed(self.result)

    async def _main(self) -> None:
        try:
            program = api.python_program(
                "main.py",
                b"",
                (),
                self.policy,
                prelude=self._prelude,
                session=True,
                host_functions=self._grants.names,
            )
            ex = await run_guest(
                program,
                self.policy,
                stdout=lambda data: self._output(0, data),
                stderr=lambda data: self._output(1, data),
                on_message=self._on_message,
                session=True,
                on_start=self._started,
            )
            self.result = api.result_of(ex, self.policy, None, None)
        except (PolicyError, SandboxError) as e:
            self._error = e
        finally:
            self._closed.set()
            for pending in self._pending.values():
                pending.done.set()  # unanswered: the session ended

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def aclose(self) -> None:
        """End the session (the guest exits) and wait for its Result."""
        if self._closed.is_set():
            return
        with contextlib.suppress(SandboxError, OSError, trio.BrokenResourceError):
            await self._send(wire.frame(("close",)))
        with trio.move_on_after(CLOSE_GRACE):
            await self._closed.wait()
        if not self._closed.is_set() and self._run is not None:
            self._run.stop("closed")
            await self._closed.wait()

    # --- the channel --------------------------------------------------------------
    def _started(self, run: Run) -> None:
        self._run = run

    def _on_message(self, run: Run, kind: str, fields: tuple[Any, ...]) -> None:
        """One message from the guest (its word: checked, and any breach of
        the protocol ends the session)."""
        self._dispatch(run, kind, fields)  # a ProtocolError ends the session (run_guest)

    def _dispatch(self, run: Run, kind: str, fields: tuple[Any, ...]) -> None:
        if kind == "ready" and not fields:
            if self._pooled:
                run.hold_clock()  # counted from the checkout
            self._ready.set()
        elif kind == "done" and len(fields) == 2:
            pending = self._pending.get(fields[0])
            if pending is not None and not pending.answered:
                pending.value = fields[1]
                pending.answered = True
                pending.done.set()
        elif kind == "error" and len(fields) == 4:
            pending = self._pending.get(fields[0])
            if pending is not None and not pending.answered:
                pending.answered = True
                pending.error = channel.exception_report(fields[1:])
                pending.done.set()
        elif kind == "host" and len(fields) == 4:
            call_id, name, args, kwargs = fields
            if type(args) is not tuple or type(kwargs) is not dict:
                raise channel.ProtocolError("a host call's arguments are a tuple and a dict")
            if run.guest is None:
                raise channel.ProtocolError("a host call before the guest started")
            if self._grants.runs_inline(name):
                # Answered at once: the guest's next read finds the answer.
                self._reply(call_id, name, lambda: self._grants.call_inline(name, args, kwargs))
            else:
                run.guest.spawned += 1
                run.guest.nursery.start_soon(self._host_call, call_id, name, args, kwargs)
        elif kind == "exception":
            run.record_exception(fields)
        else:
            raise channel.ProtocolError(f"unexpected message {kind!r}")

    async def _host_call(
        self, call_id: Any, name: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._host_calls += 1
        try:
            try:
                value = await self._grants.call(name, args, kwargs)
            except Refusal as e:
                self._reply(call_id, name, None, refusal=str(e))
                return
            self._reply(call_id, name, lambda: value)
        finally:
            self._host_calls -= 1

    def _reply(
        self,
        call_id: Any,
        name: Any,
        produce: Callable[[], Any] | None,
        refusal: str | None = None,
    ) -> None:
        """Answer the guest's host call ``call_id`` with what ``produce`` returns."""
        if refusal is None and produce is not None:
            self._host_calls += 1  # a function run here may not call into its sandbox
            try:
                value = produce()
                data = wire.frame(("reply", call_id, value))
            except Refusal as e:
                refusal = str(e)
            except wire.WireError as e:
                log.warning("host function %r returned %s", name, e)
                refusal = f"its answer is not plain data ({e})"
            finally:
                self._host_calls -= 1
        if refusal is not None:
            data = wire.frame(("fail", call_id, refusal))
        run = self._run
        if run is not None and run.channel is not None and not self._closed.is_set():
            run.channel.send(data)

    async def _send(self, data: bytes) -> None:
        """Queue one framed message for the guest."""
        run = self._run
        if run is None or run.channel is None or self._closed.is_set():
            raise SandboxClosed(self.result)
        run.channel.send(data)

    # --- pools -------------------------------------------------------------------------
    async def _checkout(
        self,
        capabilities: Mapping[str, Capability | Callable[..., Any]],
        stdout: OutputSink | None,
        stderr: OutputSink | None,
    ) -> None:
        """Hand a pooled guest to its user: its grants, its sinks, its clocks."""
        if self._closed.is_set() or self._run is None:
            raise SandboxClosed(self.result)
        self._sinks = (stdout, stderr)
        for name, cap in capabilities.items():
            self._grants.grant(name, cap)
        if capabilities:
            await self._send(wire.frame(("grant", list(capabilities))))
        self._run.start_clock(self.policy.timeout, self.policy.cpu_time)

    # --- capabilities ----------------------------------------------------------------
    async def grant(self, name: str, capability: Capability | Callable[..., Any]) -> None:
        """Give the guest one more host function, as a global of its code."""
        self._grants.grant(name, capability)
        await self._send(wire.frame(("grant", [name])))

    def revoke(self, name: str) -> None:
        """Revoke a host function: from now on every call of it fails."""
        self._grants.revoke(name)

    def capability_stats(self) -> dict[str, dict[str, int]]:
        """Calls made and refused, by host function."""
        return self._grants.stats()

    # --- output ------------------------------------------------------------------------
    def _output(self, index: int, data: bytes) -> None:
        sink = self._sinks[index]
        if sink is not None:
            sink(data)
        else:
            (self._out, self._err)[index].extend(data)

    def take_output(self) -> tuple[bytes, bytes]:
        """The stdout and stderr written since the last take (when no sinks
        were given).  A call's output is all here when the call returns."""
        out, err = bytes(self._out), bytes(self._err)
        self._out.clear()
        self._err.clear()
        return out, err

    # --- calls ---------------------------------------------------------------------------
    async def exec(
        self, source: str, *, timeout: float | None = None, cpu_time: float | None = None
    ) -> None:
        """Run ``source`` (statements) in the guest's namespace."""
        await self._request("exec", (_text(source),), timeout, cpu_time)

    async def eval(
        self, expression: str, *, timeout: float | None = None, cpu_time: float | None = None
    ) -> Any:
        """The value of ``expression`` in the guest's namespace (plain data)."""
        return await self._request("eval", (_text(expression),), timeout, cpu_time)

    async def call(
        self,
        name: str,
        *args: Any,
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        cpu_time: float | None = None,
    ) -> Any:
        """Call the guest's function ``name`` with plain-data arguments."""
        return await self._request(
            "call", (_text(name), tuple(args), dict(kwargs or {})), timeout, cpu_time
        )

    async def _request(
        self,
        kind: str,
        payload: tuple[Any, ...],
        timeout: float | None,
        cpu_time: float | None,
    ) -> Any:
        if self._host_calls:
            raise SandboxError("a host function may not call into its own sandbox")
        if self._closed.is_set() or self._run is None:
            raise SandboxClosed(self.result)
        timeout = timeout if timeout is not None else self.policy.call_timeout
        cpu_time = cpu_time if cpu_time is not None else self.policy.call_cpu_time
        try:
            self._call_lock.acquire_nowait()  # no trip through the scheduler
        except trio.WouldBlock:
            await self._call_lock.acquire()  # one call at a time: wait for ours
        try:
            call_id = next(self._ids)
            try:
                data = wire.frame((kind, call_id, *payload))
            except wire.WireError as e:
                raise TypeError(f"only plain data crosses into the sandbox: {e}") from None
            pending = _Pending()
            self._pending[call_id] = pending
            try:
                await self._send(data)
                budget = min(INLINE_BUDGET, timeout or math.inf, cpu_time or math.inf)
                if self._run.serve_inline(pending.done.is_set, budget):
                    pass  # answered without a trip through the event loop
                elif timeout is None and cpu_time is None:
                    await pending.done.wait()
                else:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._watch, pending, timeout, cpu_time)
                        await pending.done.wait()
                        nursery.cancel_scope.cancel()
            finally:
                del self._pending[call_id]
            if not self._closed.is_set() and self._run is not None:
                self._run.output.drain()  # what it printed comes with the answer
        finally:
            self._call_lock.release()
        await trio.lowlevel.checkpoint()  # let the rest of the program run, as any call does
        return self._answer(pending)

    def _answer(self, pending: _Pending) -> Any:
        if not pending.answered:
            raise SandboxClosed(self.result)
        if pending.deadline is not None:
            what, limit = pending.deadline
            if self.policy.end_on_call_deadline and self._run is not None:
                self._run.stop(f"call_{what}")
            kind, message, tb = pending.error or ("DeadlineExceeded", "", "")
            raise CallDeadlineExceeded(what, limit, kind, message, tb)
        if pending.error is not None:
            raise GuestError(*pending.error)
        return pending.value

    async def _watch(
        self, pending: _Pending, timeout: float | None, cpu_time: float | None
    ) -> None:
        """Interrupt the call at its deadline; kill the guest if it goes on."""
        run = self._run
        if run is None or (timeout is None and cpu_time is None):
            return
        wall_end = trio.current_time() + (timeout if timeout is not None else math.inf)
        cpu_end = run.cpu_time() + (cpu_time if cpu_time is not None else math.inf)
        threads = max(1, self.policy.threads)
        while True:
            now = trio.current_time()
            if now >= wall_end and timeout is not None:
                pending.deadline = ("wall", timeout)
                break
            cpu_left = cpu_end - run.cpu_time()
            if cpu_left <= 0 and cpu_time is not None:
                pending.deadline = ("cpu", cpu_time)
                break
            await trio.sleep(max(0.0005, min(wall_end - now, cpu_left / threads, 1.0)))
        grace_end = trio.current_time() + self._grace
        while trio.current_time() < grace_end:
            run.interrupt()
            await trio.sleep(INTERRUPT_REPEAT)
        run.stop(f"call_{pending.deadline[0]}")


async def _first(*fns: Callable[[], Any]) -> None:
    """Wait until the first of ``fns`` returns."""
    async with trio.open_nursery() as nursery:

        async def one(fn: Callable[[], Any]) -> None:
            await fn()
            nursery.cancel_scope.cancel()

        for fn in fns:
            nursery.start_soon(one, fn)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value

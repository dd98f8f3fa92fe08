"""A blocking facade over ``Sandbox``, for hosts that do not run trio.

The sandbox lives in a trio event loop on a thread of its own; each method
hands its call to that loop and waits.  Methods may be called from any one
thread at a time (calls are serialised anyway: a sandbox runs one call at a
time).  asyncio hosts can call them through ``asyncio.to_thread``, or run
trio itself inside their loop (docs/embedding.md).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import trio

from ..policy.schema import Policy
from ..result import Result
from .capabilities import Capability
from .sandbox import OutputSink, Sandbox


class BlockingSandbox:
    """``Sandbox`` with blocking methods::

        with sandbox_run.BlockingSandbox(policy) as sb:
            sb.exec("def double(x): return 2 * x")
            sb.call("double", 21)        # 42

    Host functions granted to it run on the sandbox's own thread.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        capabilities: Mapping[str, Capability | Callable[..., Any]] | None = None,
        prelude: str | None = None,
        stdout: OutputSink | None = None,
        stderr: OutputSink | None = None,
    ) -> None:
        self._sandbox = Sandbox(
            policy, capabilities=capabilities, prelude=prelude, stdout=stdout, stderr=stderr
        )
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sandbox-run", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # reported to the creating thread
            if not self._started.is_set():
                self._error = e
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with self._sandbox:
            self._token = trio.lowlevel.current_trio_token()
            self._started.set()
            await self._stop.wait()

    def _in_loop(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._token is None:
            raise RuntimeError("the sandbox is closed")
        return trio.from_thread.run(functools.partial(fn, *args, **kwargs), trio_token=self._token)

    # --- the Sandbox's methods, blocking ------------------------------------------
    def exec(self, source: str, **deadlines: Any) -> None:
        self._in_loop(self._sandbox.exec, source, **deadlines)

    def eval(self, expression: str, **deadlines: Any) -> Any:
        return self._in_loop(self._sandbox.eval, expression, **deadlines)

    def call(self, name: str, *args: Any, **options: Any) -> Any:
        return self._in_loop(self._sandbox.call, name, *args, **options)

    def grant(self, name: str, capability: Capability | Callable[..., Any]) -> None:
        self._in_loop(self._sandbox.grant, name, capability)

    def revoke(self, name: str) -> None:
        self._sandbox.revoke(name)

    def take_output(self) -> tuple[bytes, bytes]:
        result: tuple[bytes, bytes] = trio.from_thread.run_sync(
            self._sandbox.take_output, trio_token=self._token
        )
        return result

    @property
    def result(self) -> Result | None:
        return self._sandbox.result

    def close(self) -> Result | None:
        """End the session and return its Result."""
        if self._token is not None and self._stop is not None:
            token, self._token = self._token, None
            trio.from_thread.run_sync(self._stop.set, trio_token=token)
        self._thread.join()
        return self._sandbox.result

    def __enter__(self) -> BlockingSandbox:
        return self

    def __exit__(
        self,
        etype: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

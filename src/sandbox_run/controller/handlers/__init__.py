"""Handlers for the syscall table's ``handle`` entries, one per system call.

A handler takes the ``Call`` and returns the call's value, an ``Inject`` (a
new descriptor for the guest) or ``CONTINUE`` (register-only calls, see
``dispatch.CONTINUE_OK``).  It fails the call by raising ``SyscallError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .. import syscalls
from ..dispatch import AnyHandler, AsyncHandler, Call, Handler, Reply, set_argc

_REGISTRY: dict[str, AnyHandler] = {}


def _register(names: tuple[str, ...], argc: int, handler: AnyHandler) -> None:
    for n in names:
        if n in _REGISTRY:
            raise ValueError(f"two handlers for {n}")
        if n not in syscalls.NR:
            raise ValueError(f"no system call named {n}")
        _REGISTRY[n] = handler
        set_argc({n: argc})


def handles(*names: str, argc: int) -> Callable[[Handler], Handler]:
    """Register a handler for the named system calls (``argc`` is for traces)."""

    def register(fn: Handler) -> Handler:
        _register(names, argc, fn)
        return fn

    return register


def handles_async(
    *names: str, argc: int
) -> Callable[[Callable[[Call], Awaitable[Reply]]], Callable[[Call], Awaitable[Reply]]]:
    """Register an asynchronous handler: one that waits (for a network peer,
    say) while the controller serves other calls.  It must call
    ``call.check_id()`` after reading guest memory and before acting."""

    def register(fn: Callable[[Call], Awaitable[Reply]]) -> Callable[[Call], Awaitable[Reply]]:
        _register(names, argc, AsyncHandler(fn))
        return fn

    return register


def handler_table() -> list[AnyHandler | None]:
    """Handlers indexed by syscall number.  Every ``handle`` entry must have one,
    and no handler may exist for a call the table does not hand over."""
    from . import channel, closing, files, identity, net, process, signals, system  # noqa: F401

    table: list[AnyHandler | None] = [None] * (syscalls.MAX_NR + 1)
    for entries in zip(*syscalls.variants(), strict=True):
        e = entries[0]
        fn = _REGISTRY.get(e.name)
        if any(v.handled for v in entries):
            if fn is None:
                raise LookupError(f"syscall {e.name} is marked 'handle' but has no handler")
            table[e.nr] = fn
        elif fn is not None:
            raise LookupError(f"syscall {e.name} has a handler but the table says {e.kind.value}")
    return table

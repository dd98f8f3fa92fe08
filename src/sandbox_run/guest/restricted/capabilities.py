"""How granted things appear to untrusted code.

Two kinds of grant (docs/restricted-mode.md, "Capabilities"):

1. Names in the prelude's ``__all__``.  The prelude is trusted code that ran
   unrestricted; what it exports crosses the boundary through ``grant``:

   - plain data (None, bool, int, float, complex, str, bytes) as it is;
     tuples, lists, dicts, sets and frozensets as fresh copies whose items are
     granted in turn, so no container of the prelude is shared;
   - classes as they are: untrusted code may call and subclass them (their
     instances' underscore attributes stay private);
   - functions, methods and other callables wrapped in a new function that
     only calls them: the wrapper has no ``__wrapped__``, and its closure
     cell, globals and defaults are refused attributes;
   - any other object wrapped in a proxy of a class made for it: public
     attributes only, read-only, methods wrapped as above.  The proxy holds
     its target only in closure cells.

   What a granted callable returns, and the items a proxy yields, are granted
   the same way, so the prelude's objects never reach untrusted code raw.

2. Host functions, run by the controller over a channel (the channel's
   transport comes with the embedding work).  For each granted name the
   bootstrap creates a stub with ``host_function``; the stub checks that the
   arguments are plain data (JSON types), copies them, and hands them to the
   ``Channel`` it closes over.  Untrusted code holds only the stub; the
   channel is reachable from the stub's closure alone, which is refused.
   The controller authorises every call again by name.
"""

from __future__ import annotations

from . import guards
from .errors import HostCallError, SandboxAttributeError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the guest
if TYPE_CHECKING:  # ~20 modules, each a dozen mediated system calls
    from typing import Any, Callable, Dict, Optional, Tuple

_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_DEFAULT_STR: Any = object.__dict__["__str__"]
_SPECIALS = (
    "__call__",
    "__iter__",
    "__next__",
    "__len__",
    "__getitem__",
    "__contains__",
    "__enter__",
    "__exit__",
    "__bool__",
    "__str__",
)


def grant(value: Any, label: str) -> Any:
    """``value`` as untrusted code may hold it (see the module docstring)."""
    t = type(value)
    if t in _PLAIN:
        return value
    if t is tuple:
        return tuple(grant(v, label) for v in value)
    if t is list:
        return [grant(v, label) for v in value]
    if t is dict:
        return {grant(k, label): grant(v, label) for k, v in value.items()}
    if t is set:
        return {grant(v, label) for v in value}
    if t is frozenset:
        return frozenset(grant(v, label) for v in value)
    if isinstance(value, type):
        guards.allow_subclassing(value)
        return value
    if callable(value) and not _has_state_worth_proxying(value):
        return wrap_callable(value, label)
    return proxy(value, label)


def _has_state_worth_proxying(value: Any) -> bool:
    # Functions, builtins and bound methods are wrapped as callables; objects
    # that happen to be callable keep their other attributes behind a proxy.
    kind = type(value).__name__
    return kind not in (
        "function",
        "builtin_function_or_method",
        "method",
        "partial",
        "method-wrapper",
        "builtin_method",
    )


def wrap_callable(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    def capability(*args: Any, **kwargs: Any) -> Any:
        return grant(fn(*args, **kwargs), label)

    capability.__name__ = capability.__qualname__ = label.rpartition(".")[2] or label
    doc = getattr(fn, "__doc__", None)
    capability.__doc__ = doc if isinstance(doc, str) else None
    return capability


def proxy(target: Any, label: str) -> Any:
    """A read-only view of ``target``'s public attributes."""
    methods: Dict[str, Any] = {}

    def get(name: Any) -> Any:
        if type(name) is not str or name.startswith("_"):
            raise SandboxAttributeError(
                "sandbox policy blocks attribute %r of granted object %r" % (name, label)
            )
        guards.check_read(target, name)  # also for trusted callers: no frames by name
        cached = methods.get(name)
        if cached is not None:
            return cached
        value = getattr(target, name)
        if callable(value) and not isinstance(value, type):
            wrapped = wrap_callable(value, label + "." + name)
            methods[name] = wrapped
            return wrapped
        return grant(value, label + "." + name)

    def refuse(*args: Any) -> Any:
        raise SandboxAttributeError("sandbox policy blocks changing granted object %r" % label)

    body: Dict[str, Any] = {
        "__slots__": (),
        "__getattr__": lambda self, name: get(name),
        "__setattr__": lambda self, name, value: refuse(),
        "__delattr__": lambda self, name: refuse(),
        "__repr__": lambda self: "<granted %s>" % label,
        "__dir__": lambda self: sorted(n for n in dir(target) if not n.startswith("_")),
        "__doc__": getattr(type(target), "__doc__", None),
    }
    kind = type(target)
    for special in _SPECIALS:
        if special == "__str__" and getattr(kind, "__str__", None) is _DEFAULT_STR:
            continue  # the default str is the trusted repr: the proxy's own instead
        if hasattr(kind, special):
            body[special] = _forward(target, special, label)
    cls = type(getattr(kind, "__name__", "Granted"), (), body)
    return cls()


def _forward(target: Any, special: str, label: str) -> Any:
    if special == "__iter__":

        def iterate(self: Any) -> Any:
            it = iter(target)
            return self if it is target else grant(it, label)

        return iterate
    if special == "__exit__":

        def exit_(self: Any, *exc: Any) -> Any:
            return bool(target.__exit__(*exc))

        return exit_
    if special in ("__len__", "__bool__", "__contains__", "__str__"):

        def plain(self: Any, *args: Any) -> Any:
            return getattr(target, special)(*args)

        return plain

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        return grant(getattr(target, special)(*args, **kwargs), label)

    return forward


# --- host functions -------------------------------------------------------------------

if TYPE_CHECKING:
    Transport = Callable[[str, Tuple[Any, ...], Dict[str, Any]], Any]


class Channel:
    """The guest's end of the channel to the controller.

    Only trusted guest code (the bootstrap, the stubs) holds it.  ``transport``
    sends one call and returns the host's answer; until the embedding work
    provides one, calls fail with HostCallError.
    """

    __slots__ = ("_transport",)

    def __init__(self, transport: Optional[Transport] = None) -> None:
        self._transport = transport

    def call(self, name: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if self._transport is None:
            raise HostCallError("host function %r: this sandbox has no channel to the host" % name)
        return self._transport(name, args, kwargs)


def plain_data(value: Any, where: str, depth: int = 0) -> Any:
    """A copy of ``value`` if it is JSON-like plain data, else TypeError."""
    if depth > 100:
        raise TypeError("%s: nested too deeply" % where)
    t = type(value)
    if t in (type(None), bool, int, float, str):
        return value
    if t in (list, tuple):
        return [plain_data(v, where, depth + 1) for v in value]
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError("%s: dictionary keys must be str" % where)
            out[k] = plain_data(v, where, depth + 1)
        return out
    raise TypeError(
        "%s: only plain data (None, bool, int, float, str, list, dict) "
        "crosses to the host, not %s" % (where, t.__name__)
    )


def host_function(name: str, channel: Channel) -> Callable[..., Any]:
    """The stub untrusted code calls for the host function ``name``."""

    def call_host(*args: Any, **kwargs: Any) -> Any:
        payload = plain_data(list(args), name)
        named = plain_data(kwargs, name)
        return plain_data(channel.call(name, tuple(payload), named), name)

    call_host.__name__ = call_host.__qualname__ = name
    call_host.__doc__ = "Host function %r (runs in the controller)." % name
    return call_host

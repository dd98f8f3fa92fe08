"""Guest bootstrap: the first Python code the sandboxed interpreter runs.

Runs inside PyPy (Python 3.9) with ``-S``; never imports controller code.
It imports as little as it can: each module costs the guest a dozen mediated
system calls (stat, open, fstat) before the user's script even starts.
Usage (set up by the controller; entry.py imports this module, so that it
loads from its .pyc)::

    SANDBOX_RUN_GUEST='{...}' pypy3 -S -B /usr/lib/sandbox-run/entry.py SCRIPT [ARGS...]

The controller's configuration arrives as one JSON object in the environment
variable ``SANDBOX_RUN_GUEST`` (schema in docs/restricted-mode.md).  The
bootstrap reads it and removes it from the environment before anything else
runs.  Then:

- unrestricted (``"restricted": false``): the script runs as ``__main__`` with
  the real builtins, its directory first on ``sys.path``, as ``python
  script.py`` would run it;
- restricted (the default, also when the variable is missing): the prelude,
  if any, runs unrestricted; the restricted environment is built (package
  ``restricted`` next to this file); the names in the prelude's ``__all__``
  and the host-function stubs become the script's globals; the script is
  checked, rewritten and run as ``__main__`` with the restricted builtins.

Either way the script gets ``exit``/``quit`` (what ``site`` would have
given), and tracebacks start at the script, as with plain ``python
script.py``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the guest
if TYPE_CHECKING:  # ~20 modules, each a dozen mediated system calls
    from types import TracebackType
    from typing import Any, Dict, List, Optional, Tuple

CONFIG_ENV = "SANDBOX_RUN_GUEST"
CONFIG_VERSION = 1
#: Descriptor of the channel to the controller (set up by the launcher; its
#: number comes in the configuration).
_channel = [-1]
HERE = __file__.rpartition("/")[0] or "/"
_stderr = sys.stderr  # tracebacks go here even if the script replaces sys.stderr


class _Quitter:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return "Use %s() or Ctrl-D (i.e. EOF) to exit" % self.name

    def __call__(self, code: object = None) -> None:
        raise SystemExit(code)


def _install_exit() -> None:
    import builtins

    setattr(builtins, "exit", _Quitter("exit"))  # noqa: B010 -- not typed as assignable
    setattr(builtins, "quit", _Quitter("quit"))  # noqa: B010


def _fail(message: str) -> "Any":
    _stderr.write("sandbox-run bootstrap: %s\n" % message)
    raise SystemExit(2)


def take_config() -> Dict[str, Any]:
    """Read the controller's configuration and remove it from the environment."""
    import os  # PyPy imports os at start-up: no extra system calls

    raw = os.environ.pop(CONFIG_ENV, None)
    if raw is None:
        return {}
    try:
        import _pypyjson  # type: ignore[import-not-found]

        config = _pypyjson.loads(raw)
    except ImportError:  # not PyPy (never the sandbox's guest)
        import json

        config = json.loads(raw)
    except ValueError as e:
        return _fail("bad configuration: %s" % e)  # type: ignore[no-any-return]
    if not isinstance(config, dict):
        return _fail("bad configuration: not an object")  # type: ignore[no-any-return]
    if config.get("version", CONFIG_VERSION) != CONFIG_VERSION:
        return _fail("configuration version %r is not %d" % (config.get("version"), CONFIG_VERSION))  # type: ignore[no-any-return]
    return config


def _str_list(config: Dict[str, Any], key: str) -> List[str]:
    value = config.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail("bad configuration: %r must be a list of strings" % key)
    return list(value)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _trim(tb: Any, skip: Any) -> Any:
    """A traceback without the bootstrap's and the restricted machinery's
    frames at its start (the bootstrap) and its end (a guard that raised)."""
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(skip):
        tb = tb.tb_next
    last_own = None
    t = tb
    while t is not None:
        if not t.tb_frame.f_code.co_filename.startswith(skip):
            last_own = t
        t = t.tb_next
    if last_own is not None:
        last_own.tb_next = None
    return tb


def _type_name(etype: type) -> str:
    name = etype.__qualname__
    module = getattr(etype, "__module__", "builtins")
    if module not in ("builtins", "__main__"):
        name = module + "." + name
    return name


def _message(value: BaseException) -> str:
    try:
        return str(value)
    except BaseException:
        return "<unprintable %s object>" % type(value).__name__


def _format(etype: type, value: BaseException, tb: "Optional[TracebackType]") -> str:
    """The traceback text.  Without the traceback module (no descriptor or
    memory left to import it) a plainer one, built without imports."""
    try:
        import traceback

        return "".join(traceback.format_exception(etype, value, tb))
    except BaseException:
        pass
    lines = ["Traceback (most recent call last):\n"]
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(
            '  File "%s", line %d, in %s\n' % (code.co_filename, tb.tb_lineno, code.co_name)
        )
        tb = tb.tb_next
    message = _message(value)
    lines.append("%s: %s\n" % (_type_name(etype), message) if message else _type_name(etype) + "\n")
    return "".join(lines)


SKIP_FILES = (__file__, HERE + "/entry.py", HERE + "/restricted/", HERE + "/session.py")


def describe() -> "Tuple[str, str, str]":
    """(type, message, traceback) of the exception being handled, the
    traceback without the bootstrap's and the restricted machinery's frames."""
    etype, value, tb = sys.exc_info()
    if etype is None or value is None:
        return ("SystemError", "no exception", "")
    skip = SKIP_FILES
    tb = _trim(tb, skip)
    seen = set()
    chained: Any = value
    while chained is not None and id(chained) not in seen:
        seen.add(id(chained))
        if chained is not value:
            chained.__traceback__ = _trim(chained.__traceback__, skip)
        chained = chained.__cause__ or chained.__context__
    return _type_name(etype), _message(value), _format(etype, value, tb)


def _failure() -> "Tuple[str, str, str]":
    """Print the exception being handled (trimmed) and return describe()."""
    failure = describe()
    try:
        _stderr.write(failure[2])
        _stderr.flush()
    except BaseException:
        pass
    return failure


def _wire_str(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    n = len(data)
    size = bytearray()
    while n >= 0x80:
        size.append((n & 0x7F) | 0x80)
        n >>= 7
    size.append(n)
    return b"s" + bytes(size) + data


def report(kind: str, *fields: str) -> None:
    """Send the controller one message of strings, best effort, encoded as
    wire.py does (wire is not imported: this must work with no descriptor
    or memory left to import anything)."""
    import posix  # builtin: needs no descriptor

    items = (kind,) + fields
    body = b"t" + bytes((len(items),)) + b"".join(_wire_str(f) for f in items)
    try:  # noqa: SIM105 - contextlib is not imported, to keep start-up lean
        posix.write(_channel[0], len(body).to_bytes(4, "big") + body)
    except OSError:
        pass  # no channel (or it is gone): stderr still has the traceback


def _apply_limits(config: Dict[str, Any]) -> None:
    fd = config.get("channel_fd", -1)
    if type(fd) is not int:
        _fail("bad configuration: 'channel_fd' must be an int")
    _channel[0] = fd
    limit = config.get("recursion_limit")
    if limit is not None:
        if type(limit) is not int or limit < 1:
            _fail("bad configuration: 'recursion_limit' must be a positive int")
        sys.setrecursionlimit(limit)


def run_unrestricted(script: str, config: Dict[str, Any]) -> None:
    prelude_path = config.get("prelude")
    prelude = run_prelude(prelude_path) if isinstance(prelude_path, str) else None
    sys.path[0:1] = [script.rpartition("/")[0] or "/"]
    _install_exit()
    main = type(sys)("__main__")  # no 'import types': every import costs mediated calls
    main.__file__ = script
    main.__dict__["__builtins__"] = __builtins__
    if prelude is not None:  # trusted code: the names as they are
        for name in prelude.__dict__.get("__all__", []):
            main.__dict__[name] = prelude.__dict__[name]
    sys.modules["__main__"] = main
    session = _session(config, main.__dict__, _plain_compile) if config.get("session") else None
    if session is not None:
        for name in _str_list(config, "host_functions"):
            main.__dict__[name] = session.plain_stub(name)
    code = compile(_read(script), script, "exec", dont_inherit=True)
    exec(code, main.__dict__)  # noqa: S102 -- running the script is the bootstrap's job
    if session is not None:
        session.make_stub = session.plain_stub
        session.serve()


def _plain_compile(source: str, filename: str, mode: str) -> Any:
    return compile(source, filename, mode, dont_inherit=True)


def _session(config: Dict[str, Any], namespace: Dict[str, Any], compile_source: Any) -> Any:
    """The session server (guest/session.py), for a guest the host calls into."""
    saved = sys.path[:]
    # The trusted helpers, and what they import, from read-only places only.
    sys.path[:] = [HERE] + [p for p in saved if p.startswith("/usr/lib/")]
    try:
        import session  # type: ignore[import-not-found]
        from restricted.errors import HostCallError  # type: ignore[import-not-found]
    finally:
        sys.path[:] = saved
    # Trusted helpers, kept out of sys.modules: the script's own "session" or
    # "wire" module must not find these.
    for name in ("session", "wire"):
        sys.modules.pop(name, None)
    return session.Session(
        _channel[0], namespace, compile_source, describe, HostCallError, make_stub=None
    )


def run_prelude(path: str) -> Any:
    """Run the host's prelude, unrestricted, as a trusted module."""
    name = path.rpartition("/")[2].rpartition(".")[0] or "prelude"
    module = type(sys)(name)
    module.__file__ = path
    module.__dict__["__builtins__"] = __builtins__
    sys.modules[name] = module
    exec(compile(_read(path), path, "exec", dont_inherit=True), module.__dict__)  # noqa: S102
    exported = module.__dict__.get("__all__", [])
    if not isinstance(exported, (list, tuple)) or not all(isinstance(n, str) for n in exported):
        _fail("prelude %s: __all__ must be a list of names" % path)
    return module


def run_restricted(script: str, config: Dict[str, Any]) -> None:
    # The guest sees this directory's package as the top-level "restricted".
    from restricted import environment, names  # type: ignore[import-not-found]

    # Trusted imports search only the read-only standard library and this
    # directory: never a place the guest can write.
    sys.path[:] = [p for p in sys.path if p == HERE or p.startswith("/usr/lib/")]
    prelude_path = config.get("prelude")
    prelude = run_prelude(prelude_path) if isinstance(prelude_path, str) else None
    quitters = {"exit": _Quitter("exit"), "quit": _Quitter("quit")}
    allowed = _str_list(config, "modules")
    if "modules" not in config:
        allowed = sorted(names.DEFAULT_MODULES)
    if config.get("threads"):
        allowed += sorted(names.THREAD_MODULES)
    user_path = [script.rpartition("/")[0] or "/"]
    env = environment.Environment(
        allowed, user_path, stdin=bool(config.get("stdin")), extra_builtins=quitters
    )
    main = env.new_module("__main__", script)
    sys.modules["__main__"] = main
    host_functions = _str_list(config, "host_functions")
    serving = bool(config.get("session"))
    if prelude is not None or host_functions or serving:
        from restricted import capabilities  # type: ignore[import-not-found, unused-ignore]
    if prelude is not None:
        for name in prelude.__dict__.get("__all__", []):
            if name not in prelude.__dict__:
                _fail("prelude: __all__ names %r, which it does not define" % name)
            main.__dict__[name] = capabilities.grant(prelude.__dict__[name], name)
    session = _session(config, main.__dict__, env.compile_source) if serving else None
    if session is not None or host_functions:
        # The stubs' channel reaches the session only through their
        # closures, which the restricted mode refuses to untrusted code.
        channel = capabilities.Channel(session.host_call if session is not None else None)

        def make_stub(name: str, channel: Any = channel) -> Any:
            return capabilities.host_function(name, channel)

        if session is not None:
            session.make_stub = make_stub
        for name in host_functions:
            main.__dict__[name] = make_stub(name)
        del channel, make_stub
    del prelude
    code = env.compile_source(_read(script), script, "exec")
    exec(code, main.__dict__)  # noqa: S102 -- checked and rewritten by the restricted checker
    if session is not None:
        session.serve()


def main() -> None:
    if len(sys.argv) < 2:
        sys.stderr.write("bootstrap: no script given\n")
        raise SystemExit(2)
    # Imported by entry.py: the script's own module "bootstrap" must not
    # find this one.
    sys.modules.pop("bootstrap", None)
    config = take_config()
    _apply_limits(config)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    restricted = config.get("restricted", True) is not False
    try:
        if restricted:
            run_restricted(script, config)
        else:
            run_unrestricted(script, config)
    except SystemExit:
        raise
    except BaseException:
        report("exception", *_failure())
        raise SystemExit(1) from None

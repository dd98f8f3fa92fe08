"""Guest bootstrap: the first Python code the sandboxed interpreter runs.

Runs inside PyPy (Python 3.9) with ``-S``; never imports controller code.
It imports as little as it can: each module costs the guest a dozen mediated
system calls (stat, open, fstat) before the user's script even starts.
Usage (set up by the controller)::

    pypy3 -S -B /usr/lib/sandbox-run/bootstrap.py SCRIPT [ARGS...]

It gives the script what ``site`` would have (``exit``/``quit``), puts the
script's directory first on ``sys.path``, and runs the script as
``__main__``.  Tracebacks start at the script, as with plain ``python
script.py``.
"""

import sys

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from types import TracebackType


def _install_exit() -> None:
    import builtins

    class _Quitter:
        def __init__(self, name: str) -> None:
            self.name = name

        def __repr__(self) -> str:
            return "Use %s() or Ctrl-D (i.e. EOF) to exit" % self.name

        def __call__(self, code: object = None) -> None:
            raise SystemExit(code)

    setattr(builtins, "exit", _Quitter("exit"))  # noqa: B010 -- not typed as assignable
    setattr(builtins, "quit", _Quitter("quit"))  # noqa: B010


def _run(path: str) -> None:
    with open(path, "rb") as f:
        source = f.read()
    main = type(sys)("__main__")  # no 'import types': every import costs mediated calls
    main.__file__ = path
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, main.__dict__)  # noqa: S102 -- running the script is the bootstrap's job


#: Descriptor of the channel to the controller (set up by the launcher).
CHANNEL_FD = 3


def _settings() -> None:
    """Apply the settings the controller passes in the environment, then
    remove them: they are not the script's business."""
    import posix  # builtin: costs no file lookups

    env = posix.environ
    limit = env.pop(b"SANDBOX_RUN_RECURSION_LIMIT", None)
    if limit is not None:
        sys.setrecursionlimit(int(limit))
    try:
        import os  # already imported by the interpreter's start-up

        os.environ.pop("SANDBOX_RUN_RECURSION_LIMIT", None)
    except ImportError:
        pass


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


def _format(etype: type, value: BaseException, tb: "TracebackType | None") -> str:
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


def _json_string(text: str) -> str:
    """``text`` as a JSON string (json itself may be impossible to import)."""
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch < " " or "\ud800" <= ch <= "\udfff":
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _report(etype: type, value: BaseException, text: str) -> None:
    """Tell the controller how the script failed (text only), best effort."""
    import posix  # builtin: needs no descriptor

    body = '{"op": "exception", "type": %s, "message": %s, "traceback": %s}' % (
        _json_string(_type_name(etype)[:200]),
        _json_string(_message(value)[:4000]),
        _json_string(text[-64000:]),
    )
    data = body.encode("utf-8")
    try:  # noqa: SIM105 - contextlib is not imported, to keep start-up lean
        posix.write(CHANNEL_FD, len(data).to_bytes(4, "big") + data)
    except OSError:
        pass  # no channel (or it is gone): stderr still has the traceback


def main() -> None:
    if len(sys.argv) < 2:
        sys.stderr.write("bootstrap: no script given\n")
        raise SystemExit(2)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0:1] = [script.rpartition("/")[0] or "/"]
    _settings()
    _install_exit()
    try:
        _run(script)
    except SystemExit:
        raise
    except BaseException:
        etype, value, tb = sys.exc_info()
        # Drop the bootstrap's own frames.
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        if etype is None or value is None:
            raise SystemExit(1) from None
        text = _format(etype, value, tb)
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except BaseException:
            pass
        _report(etype, value, text)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

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


def main() -> None:
    if len(sys.argv) < 2:
        sys.stderr.write("bootstrap: no script given\n")
        raise SystemExit(2)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0:1] = [script.rpartition("/")[0] or "/"]
    _install_exit()
    try:
        _run(script)
    except SystemExit:
        raise
    except BaseException:
        import traceback

        etype, value, tb = sys.exc_info()
        # Drop the bootstrap's own frames.
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        traceback.print_exception(etype, value, tb)
        sys.stderr.flush()
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

"""Guest bootstrap: the first Python code the sandboxed interpreter runs.

Runs inside PyPy (Python 3.9) with ``-S``; never imports controller code.
Usage (set up by the controller)::

    pypy3 -S -B /usr/lib/sandbox-run/bootstrap.py SCRIPT [ARGS...]

It gives the script what ``site`` would have (``exit``/``quit``), puts the
script's directory first on ``sys.path``, and runs the script as
``__main__``.  Tracebacks start at the script, as with plain ``python
script.py``.
"""

import sys


def _install_exit():
    import builtins

    class _Quitter:
        def __init__(self, name):
            self.name = name

        def __repr__(self):
            return "Use %s() or Ctrl-D (i.e. EOF) to exit" % self.name

        def __call__(self, code=None):
            raise SystemExit(code)

    builtins.exit = _Quitter("exit")
    builtins.quit = _Quitter("quit")


def _run(path):
    import types

    with open(path, "rb") as f:
        source = f.read()
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def main():
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
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""The ``sandbox-run`` command: a thin shell over the API.

Exit status: the guest's own status when it ran to completion; otherwise one
of the statuses in ``result.py`` (124 timeout, 120 policy violation, 119
sandbox failure, 128+N killed by signal N) or 125 for a usage or
configuration error.  The reason is printed on stderr in one line.

Imports are lazy: parsing the command line must not pay for trio.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

PROG = "sandbox-run"
EXIT_USAGE = 125  # keep in step with result.EXIT_USAGE (not imported: start-up cost)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _die(message)


def _die(message: str, status: int = EXIT_USAGE) -> NoReturn:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(status)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        usage=f"{PROG} [options] (SCRIPT | -c CODE | --exec PROGRAM) [ARGS...]",
        description="Run untrusted Python (or any program) in a sandbox whose system calls "
        "are virtualised by a trusted controller.",
        epilog="Exit status: the guest's own, or 124 timeout, 120 policy violation, "
        "119 sandbox failure, 125 usage error, 128+N killed by signal N.",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("-c", dest="code", metavar="CODE", help="run CODE (a Python program)")
    what.add_argument(
        "--exec",
        dest="exec_path",
        metavar="PROGRAM",
        help="run any executable as the guest (for testing the OS layer)",
    )
    p.add_argument("--policy", metavar="FILE", help="TOML policy file (flags override it)")
    p.add_argument("--timeout", metavar="DURATION", help="wall-clock limit, e.g. 30s (default 30s)")
    p.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 512MiB (default 512MiB)")
    p.add_argument(
        "--mount",
        metavar="HOST:GUEST[:ro|rw]",
        action="append",
        default=[],
        help="make a host directory visible to the guest (repeatable; ro by default)",
    )
    p.add_argument(
        "--stdin",
        action="store_true",
        help="pass standard input through to the guest (default: empty input)",
    )
    p.add_argument(
        "--no-restrict",
        action="store_true",
        help="turn the in-guest restricted mode off: for trusted code that needs only the OS layer",
    )
    p.add_argument(
        "--prelude",
        metavar="FILE",
        help="a trusted Python file run unrestricted before the script; the names in its "
        "__all__ become the script's globals",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="print every mediated system call and its answer to stderr",
    )
    p.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    p.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="script, then arguments for the guest",
    )
    return p


def _policy(ns: argparse.Namespace) -> object:
    from .policy.schema import Mount, Policy
    from .policy.units import parse_duration, parse_size

    policy = Policy.from_toml(ns.policy) if ns.policy else Policy()
    changes: dict[str, object] = {}
    if ns.timeout is not None:
        changes["timeout"] = parse_duration(ns.timeout, "--timeout")
    if ns.memory is not None:
        changes["memory"] = parse_size(ns.memory, "--memory")
    if ns.no_restrict:
        changes["restricted"] = False
    if ns.mount:
        mounts = [Mount.parse(spec) for spec in ns.mount]
        mounts = [Mount(os.path.abspath(m.host), m.guest, m.mode) for m in mounts]
        changes["mounts"] = (*policy.mounts, *mounts)
    return policy.replace(**changes) if changes else policy


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return  # the reader went away; keep running the guest
        view = view[n:]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    ns = _parser().parse_args(argv)
    if ns.version:
        from . import __version__

        print(f"{PROG} {__version__}")
        sys.exit(0)
    args: list[str] = list(ns.args)
    if args and args[0] == "--":
        args = args[1:]
    if ns.code is None and ns.exec_path is None:
        if not args:
            _die("nothing to run: give a SCRIPT, -c CODE or --exec PROGRAM")
        script, args = args[0], args[1:]
    from .errors import SandboxError

    try:
        policy = _policy(ns)
        status = _run(
            ns, script if ns.code is None and ns.exec_path is None else None, args, policy
        )
    except SandboxError as e:
        _die(str(e))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(status)


def _run(ns: argparse.Namespace, script: str | None, args: list[str], policy: object) -> int:
    import functools

    import trio

    from . import api
    from .errors import PolicyError
    from .policy.schema import Policy
    from .result import Outcome

    if not isinstance(policy, Policy):
        raise TypeError(policy)
    if ns.exec_path is not None and ns.prelude is not None:
        raise PolicyError("--prelude runs Python: it cannot be used with --exec")
    if ns.code is not None:
        program = api.python_program(
            "main.py", os.fsencode(ns.code), args, policy, stdin=ns.stdin, prelude=ns.prelude
        )
    elif ns.exec_path is not None:
        program = api.exec_program(ns.exec_path, args, policy)
    elif script is not None:
        program = api.script_program(script, args, policy, stdin=ns.stdin, prelude=ns.prelude)
    else:
        raise TypeError("no script")
    trace = (lambda line: _write(2, line.encode(errors="replace") + b"\n")) if ns.trace else None
    job = functools.partial(
        api.run_program,
        program,
        policy,
        stdin=api.STDIN_PASSTHROUGH if ns.stdin else None,
        capture_output=False,
        stdout=functools.partial(_write, 1),
        stderr=functools.partial(_write, 2),
        trace=trace,
    )
    result = trio.run(job)
    if result.outcome is not Outcome.COMPLETED:
        sys.stderr.write(f"{PROG}: {result.outcome.value}: {result.reason}\n")
    return result.exit_status


if __name__ == "__main__":
    main()

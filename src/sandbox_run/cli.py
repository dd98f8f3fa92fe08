"""The ``sandbox-run`` command: a thin shell over the API.

Exit status: the guest's own status when it ran to completion; otherwise one
of the statuses in ``result.py`` (124 timeout, 123 CPU limit, 122 memory
limit, 121 output limit, 120 policy violation, 119 sandbox failure, 128+N
killed by signal N) or 125 for a usage or configuration error.  The reason
is printed on stderr in one line.

Imports are lazy: parsing the command line must not pay for trio.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from .net.audit import AuditEvent

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
        epilog="Exit status: the guest's own, or 124 timeout, 123 CPU limit, 122 memory limit, "
        "121 output limit, 120 policy violation, 119 sandbox failure, 125 usage error, "
        "128+N killed by signal N.",
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
        "--cpu-time", metavar="DURATION", help="CPU-time limit, all threads, e.g. 10s (default 30s)"
    )
    p.add_argument(
        "--output",
        metavar="SIZE",
        help="stdout and stderr together, e.g. 1MiB (default 16MiB); then truncated and ended",
    )
    p.add_argument(
        "--open-files", metavar="N", type=_count, help="descriptors open at once (default 256)"
    )
    p.add_argument("--threads", metavar="N", type=_count, help="threads alive at once (default 16)")
    p.add_argument(
        "--recursion-limit",
        metavar="N",
        type=_count,
        help="Python's recursion limit (default 1000)",
    )
    p.add_argument(
        "--disk",
        metavar="SIZE",
        help="bytes the guest may store in /sandbox and /tmp (default 256MiB)",
    )
    p.add_argument(
        "--max-file-size",
        metavar="SIZE",
        help="largest file the guest may write in /sandbox and /tmp (default 256MiB)",
    )
    p.add_argument(
        "--kill-on-refusal",
        action="store_true",
        help="end the guest at its first refused system call (a policy violation)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the outcome, the usage and the guest's output as one JSON object on stdout",
    )
    p.add_argument(
        "--mount",
        metavar="HOST:GUEST[:ro|rw|overlay]",
        action="append",
        default=[],
        help="make a host directory or file visible to the guest (repeatable): ro (default) "
        "read-only; rw: changes are applied to the host when the sandbox ends; overlay: "
        "changes stay in the sandbox",
    )
    p.add_argument(
        "--tmpfs",
        metavar="GUEST[:SIZE]",
        action="append",
        default=[],
        help="a private in-memory directory (repeatable; default size 256MiB)",
    )
    p.add_argument(
        "--allow-net",
        metavar="HOST:PORT",
        action="append",
        default=[],
        help="allow connections to HOST:PORT (repeatable): example.com:443, *.example.com:443, "
        "10.0.0.0/8:5432, [::1]:8080, udp:10.0.0.53:53",
    )
    p.add_argument(
        "--listen",
        metavar="PORT",
        action="append",
        default=[],
        help="allow listening on a loopback TCP port (repeatable; 0: a port the kernel picks)",
    )
    p.add_argument(
        "--add-host",
        metavar="NAME=ADDRESS",
        action="append",
        default=[],
        help="resolve NAME to ADDRESS in the sandbox, as /etc/hosts would (repeatable)",
    )
    p.add_argument(
        "--audit",
        metavar="FILE",
        help="write every network attempt, allowed or denied, to FILE as JSON lines",
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
    p.add_argument(
        "--changes",
        action="store_true",
        help="after the run, list what the guest changed in rw and overlay mounts (stderr)",
    )
    p.add_argument(
        "--diff",
        action="store_true",
        help="after the run, print a unified diff of changed text files in rw and overlay "
        "mounts (stderr)",
    )
    p.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    p.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="script, then arguments for the guest",
    )
    return p


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return value


def _policy(ns: argparse.Namespace) -> object:
    from .policy.schema import Mount, Policy
    from .policy.units import parse_duration, parse_size

    policy = Policy.from_toml(ns.policy) if ns.policy else Policy()
    changes: dict[str, object] = {}
    if ns.timeout is not None:
        changes["timeout"] = parse_duration(ns.timeout, "--timeout")
    if ns.memory is not None:
        changes["memory"] = parse_size(ns.memory, "--memory")
    if ns.cpu_time is not None:
        changes["cpu_time"] = parse_duration(ns.cpu_time, "--cpu-time")
    if ns.output is not None:
        changes["output"] = parse_size(ns.output, "--output")
    for key in ("open_files", "threads", "recursion_limit"):
        if getattr(ns, key) is not None:
            changes[key] = getattr(ns, key)
    if ns.kill_on_refusal:
        changes["kill_on_refusal"] = True
    if ns.disk is not None or ns.max_file_size is not None:
        quota = policy.private
        if ns.disk is not None:
            quota = dataclasses.replace(quota, max_bytes=parse_size(ns.disk, "--disk"))
        if ns.max_file_size is not None:
            size = parse_size(ns.max_file_size, "--max-file-size")
            quota = dataclasses.replace(quota, max_file_size=size)
        changes["private"] = quota
    if ns.no_restrict:
        changes["restricted"] = False
    if ns.mount or ns.tmpfs:
        mounts = [Mount.parse(spec) for spec in ns.mount]
        mounts = [Mount(os.path.abspath(m.host), m.guest, m.mode) for m in mounts]
        mounts += [Mount.parse_tmpfs(spec) for spec in ns.tmpfs]
        changes["mounts"] = (*policy.mounts, *mounts)
    if ns.diff:
        current = changes.get("mounts", policy.mounts)
        if not isinstance(current, tuple):
            raise TypeError(current)
        changes["mounts"] = tuple(
            dataclasses.replace(m, diff=True) if m.mode in ("rw", "overlay") else m for m in current
        )
    if ns.allow_net or ns.listen or ns.add_host:
        from .errors import PolicyError

        net = policy.network
        hosts = dict(net.hosts)
        for spec in ns.add_host:
            name, eq, addr = spec.partition("=")
            if not eq or not name or not addr:
                raise PolicyError(f"--add-host {spec!r}: expected NAME=ADDRESS")
            hosts[name] = addr
        changes["network"] = dataclasses.replace(
            net,
            allow=(*net.allow, *ns.allow_net),
            listen=(*net.listen, *ns.listen),
            hosts=hosts,
        )
    return policy.replace(**changes) if changes else policy


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return  # the reader went away; keep running the guest
        view = view[n:]


class _LogFormat(logging.Formatter):
    """The library's log lines as the CLI's own: ``sandbox-run: warning: ...``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:  # a controller bug: the traceback helps report it
            line += "\n" + self.formatException(record.exc_info)
        return line


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormat())
    logger = logging.getLogger("sandbox_run")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> NoReturn:
    ns = _parser().parse_args(argv)
    _setup_logging()
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
    audit = _audit_sink(ns.audit) if ns.audit else None
    job = functools.partial(
        api.run_program,
        program,
        policy,
        stdin=api.STDIN_PASSTHROUGH if ns.stdin else None,
        capture_output=ns.json,
        stdout=None if ns.json else functools.partial(_write, 1),
        stderr=None if ns.json else functools.partial(_write, 2),
        trace=trace,
        audit=audit,
    )
    result = trio.run(job)
    if ns.json:
        import json

        _write(1, json.dumps(result.to_dict()).encode() + b"\n")
        return result.exit_status
    for area in result.filesystem:
        for note in area.notes:
            sys.stderr.write(f"{PROG}: warning: {note}\n")
        if ns.changes:
            for ch in area.changes:
                src = f" (from {ch.source})" if ch.source else ""
                sys.stderr.write(f"{PROG}: {ch.kind} {ch.path}{src}\n")
        if ns.diff and area.diff:
            _write(2, area.diff.encode(errors="replace"))
    if result.outcome is not Outcome.COMPLETED:
        sys.stderr.write(f"{PROG}: {result.outcome.value}: {result.reason}\n")
    return result.exit_status


def _audit_sink(path: str) -> Callable[[AuditEvent], None]:
    """Write each audit event to ``path`` as one JSON line, as it happens."""
    from .errors import PolicyError

    try:
        f = open(path, "w", encoding="utf-8")  # noqa: SIM115  (open for the whole run)
    except OSError as e:
        raise PolicyError(f"--audit {path}: {e.strerror}") from None

    def write(event: AuditEvent) -> None:
        f.write(event.to_json() + "\n")
        f.flush()

    return write


if __name__ == "__main__":
    main()

"""The public entry points: run code, a script file, or any executable."""

from __future__ import annotations

import functools
import json
import os
import signal
from collections.abc import Callable, Sequence

import trio

from .controller.session import Exit, GuestProgram, run_guest
from .errors import PolicyError
from .net.audit import AuditSink
from .policy.schema import Policy
from .policy.units import format_duration, format_size
from .quotas import limits
from .result import Denial, GuestException, Outcome, Result, errno_name, signal_name
from .vfs import layout
from .vfs.system import image_for, pypy_image

#: The guest interpreter: Debian's stock PyPy 3.
PYPY = "/usr/bin/pypy3"
#: Longest script accepted (it is copied into the sandbox).
MAX_SCRIPT = 64 << 20
#: The environment variable carrying the guest bootstrap's configuration
#: (schema: docs/restricted-mode.md); the bootstrap removes it at once.
GUEST_CONFIG_ENV = "SANDBOX_RUN_GUEST"
GUEST_CONFIG_VERSION = 1

OutputSink = Callable[[bytes], None]


class _Passthrough:
    """Marker: forward the controller's own standard input to the guest (CLI --stdin)."""

    __slots__ = ()


STDIN_PASSTHROUGH = _Passthrough()
Stdin = bytes | _Passthrough | None


def _guest_env(policy: Policy) -> tuple[tuple[str, str], ...]:
    # The session adds the limits (PYPY_GC_MAX and the bootstrap's settings).
    return (
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/sandbox"),
        ("TMPDIR", "/tmp"),
        ("LC_ALL", "C.UTF-8"),
    )


PathArg = str | os.PathLike[str]


def _prelude_file(prelude: PathArg | None) -> tuple[str, str] | None:
    """(virtual path, host path) of the prelude, checked."""
    if prelude is None:
        return None
    host = os.path.abspath(os.fspath(prelude))
    name = os.path.basename(host)
    stem, ext = os.path.splitext(name)
    if ext != ".py" or not stem.isidentifier():
        raise PolicyError(f"prelude {host}: the file name must be a Python module name ending .py")
    if not os.path.isfile(host):
        raise PolicyError(f"prelude {host}: no such file")
    if not os.access(host, os.R_OK):
        raise PolicyError(f"prelude {host}: not readable")
    return (f"{layout.PRELUDE_VDIR}/{name}", host)


def guest_config(
    policy: Policy, *, stdin: bool, prelude_vpath: str | None, host_functions: Sequence[str] = ()
) -> dict[str, object]:
    """The bootstrap's configuration (docs/restricted-mode.md, "Configuration")."""
    return {
        "version": GUEST_CONFIG_VERSION,
        "restricted": policy.restricted,
        "modules": list(policy.allowed_modules()),
        "threads": policy.allow_threads,
        "recursion_limit": policy.recursion_limit,
        "channel_fd": policy.open_files,  # limits.plan puts the channel there
        "stdin": stdin,
        "prelude": prelude_vpath,
        "host_functions": list(host_functions),
    }


def python_program(
    name: str,
    source: bytes,
    argv: Sequence[str],
    policy: Policy,
    *,
    stdin: bool = False,
    prelude: PathArg | None = None,
    session: bool = False,
    host_functions: Sequence[str] = (),
) -> GuestProgram:
    """A Python script run by the sandboxed PyPy through the bootstrap.

    ``stdin``: the run has standard input (the restricted mode grants
    ``input``).  ``prelude``: a host file run unrestricted before the script.
    ``session``: after the script, the guest serves calls from the host
    (``embed/``), with stubs for ``host_functions``.
    """
    if "/" in name or name in ("", ".", ".."):
        raise PolicyError(f"bad script name {name!r}")
    if len(source) > MAX_SCRIPT:
        raise PolicyError(f"script is larger than {MAX_SCRIPT >> 20} MiB")
    image = pypy_image(PYPY)
    script = f"/sandbox/{name}"
    gargv = (PYPY, "-S", "-B", layout.ENTRY_VPATH, script, *argv)
    prelude_file = _prelude_file(prelude)
    config = guest_config(
        policy,
        stdin=stdin,
        prelude_vpath=prelude_file[0] if prelude_file else None,
        host_functions=host_functions,
    )
    if session:
        config["session"] = True
    env = (*_guest_env(policy), (GUEST_CONFIG_ENV, json.dumps(config, separators=(",", ":"))))
    return GuestProgram(
        image,
        os.path.realpath(PYPY),
        gargv,
        env,
        (layout.Script(name, source),),
        bootstrap=True,
        files=(prelude_file,) if prelude_file else (),
    )


def script_program(
    path: str | os.PathLike[str],
    argv: Sequence[str],
    policy: Policy,
    *,
    stdin: bool = False,
    prelude: PathArg | None = None,
) -> GuestProgram:
    """A Python script file, copied into the sandbox as /sandbox/<its name>."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            source = f.read(MAX_SCRIPT + 1)
    except FileNotFoundError:
        raise PolicyError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise PolicyError(f"{p}: is a directory") from None
    except OSError as e:
        raise PolicyError(f"{p}: {e.strerror}") from None
    return python_program(os.path.basename(p), source, argv, policy, stdin=stdin, prelude=prelude)


def exec_program(path: str, argv: Sequence[str], policy: Policy) -> GuestProgram:
    """Any ELF executable, visible to itself at /sandbox/<name>."""
    if not os.path.isfile(path):
        raise PolicyError(f"{path}: no such file")
    if not os.access(path, os.X_OK):
        raise PolicyError(f"{path}: not executable")
    name = os.path.basename(path)
    image = image_for(os.path.abspath(path))
    with open(path, "rb") as f:
        content = f.read(MAX_SCRIPT + 1)
    if len(content) > MAX_SCRIPT:
        raise PolicyError(f"{path}: larger than {MAX_SCRIPT >> 20} MiB")
    # The host path is what runs; the guest sees its own copy at /sandbox.
    return GuestProgram(
        image,
        f"/sandbox/{name}",
        (f"/sandbox/{name}", *argv),
        _guest_env(policy),
        (layout.Script(name, content),),
        bootstrap=False,
    )


def _classify(ex: Exit, policy: Policy) -> tuple[Outcome, str]:
    """The outcome of a run and its one-line reason."""
    sig = ex.signal
    exc = ex.exception
    if ex.launch_error is not None:
        return Outcome.ERROR, ex.launch_error
    if ex.stopped == "violation" and ex.violation is not None:
        v = ex.violation
        return Outcome.POLICY_VIOLATION, (
            f"refused {v.syscall} ({v.reason}); the policy ends the guest at its first refused call"
        )
    if (
        ex.stopped == "cpu"
        or sig == signal.SIGXCPU
        or (sig == signal.SIGKILL and ex.stopped is None and ex.cpu_time >= policy.cpu_time)
    ):
        return Outcome.CPU_LIMIT, (
            f"CPU time limit: killed after {format_duration(policy.cpu_time)} of CPU time"
        )
    if ex.stopped == "output":
        return Outcome.OUTPUT_LIMIT, (
            f"output limit: {format_size(policy.output)} of stdout and stderr written; "
            "the rest was discarded and the guest killed"
        )
    if ex.stopped in ("call_wall", "call_cpu"):
        what = "wall-clock" if ex.stopped == "call_wall" else "CPU"
        outcome = Outcome.TIMEOUT if ex.stopped == "call_wall" else Outcome.CPU_LIMIT
        if policy.end_on_call_deadline:
            return outcome, f"a call passed its {what} deadline; the policy ends the session"
        return outcome, (
            f"a call passed its {what} deadline and did not stop when interrupted: killed"
        )
    if ex.stopped == "protocol":
        return Outcome.POLICY_VIOLATION, "the guest broke the session protocol on its channel"
    if ex.stopped == "timeout":
        return (
            Outcome.TIMEOUT,
            f"wall-clock timeout: killed after {format_duration(policy.timeout)}",
        )
    if ex.oom_killed:
        return Outcome.MEMORY_LIMIT, (
            f"memory limit: killed by the kernel at {format_size(policy.memory)}"
        )
    if sig == signal.SIGSYS:
        return Outcome.POLICY_VIOLATION, (
            "killed by the seccomp filter: a foreign system-call ABI (i386 or x32)"
        )
    if sig in _MEMORY_CRASH_SIGNALS and limits.crashed_at_heap_limit(ex.peak_memory, ex.gc_max):
        return Outcome.MEMORY_LIMIT, (
            f"memory limit: the interpreter crashed with {signal_name(sig)} at its heap limit "
            f"of {format_size(ex.gc_max)} (--memory {format_size(policy.memory)})"
        )
    if sig is not None:
        return Outcome.CRASHED, f"killed by {signal_name(sig)}"
    if ex.status == 1 and exc is not None:
        kind, message, _tb = exc
        if kind == "MemoryError":
            return Outcome.MEMORY_LIMIT, (
                f"memory limit: MemoryError at the heap limit of {format_size(ex.gc_max)} "
                f"(--memory {format_size(policy.memory)})"
            )
        return Outcome.EXCEPTION, f"{kind}: {message}" if message else kind
    return Outcome.COMPLETED, f"exited with status {ex.status}"


_MEMORY_CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGKILL)


def result_of(ex: Exit, policy: Policy, out: bytearray | None, err: bytearray | None) -> Result:
    outcome, reason = _classify(ex, policy)
    v = ex.violation
    return Result(
        outcome=outcome,
        reason=reason,
        exit_code=ex.status,
        signal=ex.signal,
        stdout=bytes(out) if out is not None else None,
        stderr=bytes(err) if err is not None else None,
        wall_time=ex.wall_time,
        cpu_time=ex.cpu_time,
        peak_memory=ex.peak_memory,
        read_bytes=ex.read_bytes,
        written_bytes=ex.written_bytes,
        output_bytes=ex.output_bytes,
        net_bytes_sent=ex.net.bytes_sent if ex.net is not None else 0,
        net_bytes_received=ex.net.bytes_received if ex.net is not None else 0,
        syscalls=dict(ex.stats.counts),
        denials=tuple(Denial(d.syscall, errno_name(d.errno), d.reason) for d in ex.stats.denials),
        filesystem=ex.filesystem,
        exception=GuestException(*ex.exception) if ex.exception is not None else None,
        violation=Denial(v.syscall, errno_name(v.errno), v.reason) if v is not None else None,
        audit=tuple(ex.net.audit.events) if ex.net is not None else (),
        audit_dropped=ex.net.audit.dropped if ex.net is not None else 0,
    )


async def run_program(
    program: GuestProgram,
    policy: Policy,
    *,
    stdin: Stdin,
    capture_output: bool,
    stdout: OutputSink | None,
    stderr: OutputSink | None,
    trace: Callable[[str], None] | None,
    audit: AuditSink | None = None,
) -> Result:
    out = bytearray() if capture_output and stdout is None else None
    err = bytearray() if capture_output and stderr is None else None

    def sink(buf: bytearray | None, fn: OutputSink | None) -> OutputSink:
        if fn is not None:
            return fn
        if buf is not None:
            return buf.extend
        return lambda data: None

    feed: bytes | int | None = 0 if isinstance(stdin, _Passthrough) else stdin
    ex = await run_guest(
        program,
        policy,
        stdout=sink(out, stdout),
        stderr=sink(err, stderr),
        stdin=feed,
        trace=trace,
        audit=audit,
    )
    return result_of(ex, policy, out, err)


async def run_async(
    code: str,
    *,
    policy: Policy | None = None,
    argv: Sequence[str] = (),
    stdin: Stdin = None,
    prelude: PathArg | None = None,
    capture_output: bool = True,
    stdout: OutputSink | None = None,
    stderr: OutputSink | None = None,
    trace: Callable[[str], None] | None = None,
) -> Result:
    """Run Python source ``code`` in a sandbox (trio).  See ``run``."""
    policy = policy or Policy()
    program = python_program(
        "main.py", code.encode(), argv, policy, stdin=stdin is not None, prelude=prelude
    )
    return await run_program(
        program,
        policy,
        stdin=stdin,
        capture_output=capture_output,
        stdout=stdout,
        stderr=stderr,
        trace=trace,
    )


async def run_path_async(
    path: str | os.PathLike[str],
    *,
    policy: Policy | None = None,
    argv: Sequence[str] = (),
    stdin: Stdin = None,
    prelude: PathArg | None = None,
    capture_output: bool = True,
    stdout: OutputSink | None = None,
    stderr: OutputSink | None = None,
    trace: Callable[[str], None] | None = None,
) -> Result:
    """Run the Python script at ``path`` in a sandbox (trio).  See ``run_path``."""
    policy = policy or Policy()
    program = script_program(path, argv, policy, stdin=stdin is not None, prelude=prelude)
    return await run_program(
        program,
        policy,
        stdin=stdin,
        capture_output=capture_output,
        stdout=stdout,
        stderr=stderr,
        trace=trace,
    )


async def run_exec_async(
    program: str | os.PathLike[str],
    argv: Sequence[str] = (),
    *,
    policy: Policy | None = None,
    stdin: Stdin = None,
    capture_output: bool = True,
    stdout: OutputSink | None = None,
    stderr: OutputSink | None = None,
    trace: Callable[[str], None] | None = None,
) -> Result:
    """Run any executable as the guest, under the same virtualisation (trio)."""
    policy = policy or Policy()
    prog = exec_program(os.fspath(program), argv, policy)
    return await run_program(
        prog,
        policy,
        stdin=stdin,
        capture_output=capture_output,
        stdout=stdout,
        stderr=stderr,
        trace=trace,
    )


def run(
    code: str,
    *,
    policy: Policy | None = None,
    argv: Sequence[str] = (),
    stdin: bytes | None = None,
    capture_output: bool = True,
    trace: Callable[[str], None] | None = None,
    prelude: PathArg | None = None,
) -> Result:
    """Run Python source ``code`` in a sandbox and wait for it.

    The guest sees the code as /sandbox/main.py, with ``argv`` after it and
    /sandbox as its working directory.  ``stdin`` (bytes) is its standard
    input, else it reads end-of-file.  With ``capture_output`` (the default)
    the Result carries stdout and stderr.  The code runs in the restricted
    mode unless the policy turns it off; ``prelude`` is a host file run
    unrestricted first, whose ``__all__`` names become the code's globals.
    """
    return trio.run(
        functools.partial(
            run_async,
            code,
            policy=policy,
            argv=argv,
            stdin=stdin,
            prelude=prelude,
            capture_output=capture_output,
            trace=trace,
        )
    )


def run_path(
    path: str | os.PathLike[str],
    *,
    policy: Policy | None = None,
    argv: Sequence[str] = (),
    stdin: bytes | None = None,
    capture_output: bool = True,
    trace: Callable[[str], None] | None = None,
    prelude: PathArg | None = None,
) -> Result:
    """Run the Python script at ``path`` in a sandbox and wait for it.

    The script is copied in as /sandbox/<its name>.  ``prelude``: as in ``run``.
    """
    return trio.run(
        functools.partial(
            run_path_async,
            path,
            policy=policy,
            argv=argv,
            stdin=stdin,
            prelude=prelude,
            capture_output=capture_output,
            trace=trace,
        )
    )


def run_exec(
    program: str | os.PathLike[str],
    argv: Sequence[str] = (),
    *,
    policy: Policy | None = None,
    stdin: bytes | None = None,
    capture_output: bool = True,
    trace: Callable[[str], None] | None = None,
) -> Result:
    """Run any executable as the guest (for testing the OS layer with native code)."""
    return trio.run(
        functools.partial(
            run_exec_async,
            program,
            argv,
            policy=policy,
            stdin=stdin,
            capture_output=capture_output,
            trace=trace,
        )
    )

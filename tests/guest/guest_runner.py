"""Runners for the restricted-mode tests (the fixtures are in conftest.py).

Every script runs in the real PyPy 3.9 (Debian's /usr/bin/pypy3) through the
real bootstrap, in one of two ways (the ``runner`` fixture runs each test
both ways):

- ``pypy``: ``pypy3 -S -B entry.py script.py`` with the configuration in
  ``SANDBOX_RUN_GUEST``, exactly as the sandbox starts it, minus the OS layer;
- ``sandbox``: ``sandbox_run.run``, the whole thing.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import sandbox_run
from sandbox_run.api import GUEST_CONFIG_ENV, guest_config

HERE = pathlib.Path(__file__).parent
ENTRY = HERE.parents[1] / "src" / "sandbox_run" / "guest" / "entry.py"
PYPY = "/usr/bin/pypy3"
PRELUDE = HERE / "blog_prelude.py"
#: A secret only the prelude holds: no test output may ever contain it.
SECRET = "s3cr3t-db-password"


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


Runner = Callable[..., Outcome]


def run_pypy(
    code: str,
    *,
    tmp: pathlib.Path,
    policy: sandbox_run.Policy | None = None,
    prelude: pathlib.Path | None = None,
    stdin: bytes | None = None,
    files: dict[str, str] | None = None,
    host_functions: tuple[str, ...] = (),
) -> Outcome:
    policy = policy or sandbox_run.Policy()
    script = tmp / "main.py"
    script.write_text(textwrap.dedent(code))
    for name, text in (files or {}).items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(textwrap.dedent(text))
    config = guest_config(
        policy,
        stdin=stdin is not None,
        prelude_vpath=str(prelude) if prelude else None,
        host_functions=host_functions,
    )
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", GUEST_CONFIG_ENV: json.dumps(config)}
    p = subprocess.run(
        [PYPY, "-S", "-B", str(ENTRY), str(script)],
        input=stdin or b"",
        capture_output=True,
        cwd=tmp,
        env=env,
        timeout=50,
    )
    return Outcome(p.returncode, p.stdout.decode(), p.stderr.decode())


def run_sandbox(
    code: str,
    *,
    tmp: pathlib.Path,
    policy: sandbox_run.Policy | None = None,
    prelude: pathlib.Path | None = None,
    stdin: bytes | None = None,
    files: dict[str, str] | None = None,
) -> Outcome:
    mounts: tuple[sandbox_run.Mount, ...] = ()
    if files:
        lib = tmp / "lib"
        for name, text in files.items():
            (lib / name).parent.mkdir(parents=True, exist_ok=True)
            (lib / name).write_text(textwrap.dedent(text))
        mounts = (sandbox_run.Mount(str(lib), "/lib-user"),)
        code = "import sys; sys.path.insert(0, '/lib-user')\n" + textwrap.dedent(code)
    policy = (policy or sandbox_run.Policy()).replace(mounts=mounts)
    r = sandbox_run.run(textwrap.dedent(code), policy=policy, prelude=prelude, stdin=stdin)
    if r.outcome not in (sandbox_run.Outcome.COMPLETED, sandbox_run.Outcome.EXCEPTION):
        raise AssertionError(f"sandbox run did not complete: {r.reason}\n{r.stderr!r}")
    assert r.stdout is not None and r.stderr is not None
    return Outcome(r.exit_code or 0, r.stdout.decode(), r.stderr.decode())

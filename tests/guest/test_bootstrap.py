"""The bootstrap: configuration handling, both modes, start-up hygiene."""

from __future__ import annotations

import json
import pathlib
import subprocess

from guest_runner import ENTRY, PRELUDE, PYPY, Runner

import sandbox_run


def bootstrap(tmp: pathlib.Path, code: str, config: str | None) -> subprocess.CompletedProcess[str]:
    script = tmp / "main.py"
    script.write_text(code)
    env = {"PATH": "/usr/bin:/bin"}
    if config is not None:
        env["SANDBOX_RUN_GUEST"] = config
    return subprocess.run(
        [PYPY, "-S", "-B", str(ENTRY), str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
    )


def test_configuration_is_gone_before_untrusted_code_runs(runner: Runner) -> None:
    out = runner("import os\nprint([k for k in os.environ if 'SANDBOX' in k])\n")
    assert out.lines == ["[]"]


def test_configuration_is_gone_in_unrestricted_mode_too(runner: Runner) -> None:
    code = (
        "import os, posix\n"
        "print([k for k in os.environ if 'SANDBOX' in k],\n"
        "      posix.environ.get(b'SANDBOX_RUN_GUEST'))\n"
    )
    out = runner(code, policy=sandbox_run.Policy(restricted=False))
    assert out.lines == ["[] None"]


def test_missing_configuration_means_restricted(tmp_path: pathlib.Path) -> None:
    p = bootstrap(tmp_path, "import gc\n", None)
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1].startswith(
        "SandboxImportError: sandbox policy blocks import of module 'gc'"
    )


def test_bad_configuration_is_refused(tmp_path: pathlib.Path) -> None:
    for config, message in (
        ("{not json", "sandbox-run bootstrap: bad configuration: "),
        ("[1]", "sandbox-run bootstrap: bad configuration: not an object"),
        (json.dumps({"version": 2}), "sandbox-run bootstrap: configuration version 2 is not 1"),
        (
            json.dumps({"modules": "json"}),
            "sandbox-run bootstrap: bad configuration: 'modules' must be a list of strings",
        ),
    ):
        p = bootstrap(tmp_path, "print('ran')\n", config)
        assert p.returncode == 2, config
        assert p.stdout == ""
        assert p.stderr.startswith(message), p.stderr


def test_unrestricted_mode_has_the_real_interpreter(runner: Runner) -> None:
    code = (
        "import gc, sys\n"
        "print(type(sys._getframe()).__name__, (lambda: 0).__globals__ is globals())\n"
    )
    out = runner(code, policy=sandbox_run.Policy(restricted=False))
    assert out.lines == ["frame True"]


def test_unrestricted_mode_still_runs_the_prelude(runner: Runner) -> None:
    out = runner(
        "print(get_posts(1), api._db.secret == 's3cr3t' + '-db-password')\n",
        policy=sandbox_run.Policy(restricted=False),
        prelude=PRELUDE,
    )
    assert out.lines == ["[{'id': 1, 'title': 'hello'}] True"]


def test_compile_time_refusal_names_file_and_line(runner: Runner) -> None:
    out = runner("x = 1\n\ny = x.__dict__.__class__.__subclasses__()\n")
    assert out.status == 1 and out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(
        "SandboxAttributeError: sandbox policy blocks attribute '__subclasses__' ("
    )
    assert lines[0].endswith("main.py, line 3)")


def test_syntax_errors_look_as_usual(runner: Runner) -> None:
    out = runner("x = (1,\n")
    assert out.status == 1
    assert out.stderr.splitlines()[-1].startswith("SyntaxError: ")


def test_exit_and_exit_status(runner: Runner) -> None:
    assert runner("exit(3)\n").status == 3
    assert runner("import sys\nsys.exit(4)\n").status == 4
    assert runner("raise SystemExit(5)\n").status == 5


def test_scripts_own_bootstrap_module_is_not_shadowed(tmp_path: pathlib.Path) -> None:
    # entry.py imports the trusted bootstrap as a module named "bootstrap";
    # a script's module of that name must still be the one it imports.
    (tmp_path / "bootstrap.py").write_text("MINE = 'the script dir'\n")
    config = json.dumps({"restricted": False})
    p = bootstrap(tmp_path, "import bootstrap\nprint(bootstrap.MINE)\n1/0\n", config)
    assert p.stdout == "the script dir\n"
    assert p.returncode == 1
    # The traceback starts at the script: neither entry.py nor the bootstrap.
    assert p.stderr.splitlines()[:2] == [
        "Traceback (most recent call last):",
        f'  File "{tmp_path / "main.py"}", line 3, in <module>',
    ]

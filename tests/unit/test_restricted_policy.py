"""The [restricted] policy section and the configuration the bootstrap gets."""

from __future__ import annotations

import json
import pathlib

import pytest

from sandbox_run import Policy, PolicyError
from sandbox_run.api import GUEST_CONFIG_ENV, python_program
from sandbox_run.guest.restricted import names


def test_restricted_mode_is_on_by_default_without_threads() -> None:
    p = Policy()
    assert p.restricted is True and p.allow_threads is False
    assert p.allowed_modules() == tuple(sorted(names.DEFAULT_MODULES))
    assert "threading" not in p.allowed_modules()


def test_modules_are_added_and_removed() -> None:
    p = Policy(add_modules=("asyncio",), remove_modules=("json", "socket"))
    allowed = p.allowed_modules()
    assert "asyncio" in allowed and "json" not in allowed and "socket" not in allowed
    assert "threading" in Policy(allow_threads=True).allowed_modules()


def test_toml_section(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[restricted]\nenabled = false\nadd_modules = ["asyncio"]\n'
        'remove_modules = ["json"]\nthreads = true\n'
    )
    p = Policy.from_toml(f)
    assert (p.restricted, p.add_modules, p.remove_modules, p.allow_threads) == (
        False,
        ("asyncio",),
        ("json",),
        True,
    )
    assert Policy.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[restricted]\nenable = true\n", r"unknown key 'enable'"),
        ("[restricted]\nenabled = 1\n", r"'enabled' must be true or false"),
        ("[restricted]\nthreads = 'yes'\n", r"'threads' must be true or false"),
        ("[restricted]\nadd_modules = 'json'\n", r"'add_modules' must be a list"),
        ("[restricted]\nadd_modules = ['os/path']\n", r"'os/path' is not a module name"),
        ("[restricted]\nadd_modules = ['gc']\n", r"'gc' can never be allowed \(get_referrers"),
        ("restricted = 1\n", r"\[restricted\] must be a table"),
    ],
)
def test_bad_sections_name_the_problem(tmp_path: pathlib.Path, text: str, message: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(PolicyError, match=message):
        Policy.from_toml(f)


def test_forbidden_modules_cannot_be_added_from_python() -> None:
    for name in ("__pypy__", "ctypes", "_continuation", "posix", "marshal"):
        with pytest.raises(PolicyError, match=f"add_modules: '{name}' can never be allowed"):
            Policy(add_modules=(name,))


def test_the_configuration_reaches_the_bootstrap_as_json(tmp_path: pathlib.Path) -> None:
    prelude = tmp_path / "grants.py"
    prelude.write_text("__all__ = []\n")
    program = python_program(
        "main.py",
        b"pass",
        (),
        Policy(allow_threads=True, recursion_limit=321),
        stdin=True,
        prelude=prelude,
    )
    env = dict(program.env)
    config = json.loads(env[GUEST_CONFIG_ENV])
    assert config == {
        "version": 1,
        "restricted": True,
        "modules": list(Policy(allow_threads=True).allowed_modules()),
        "threads": True,
        "recursion_limit": 321,
        "channel_fd": 256,
        "stdin": True,
        "prelude": "/usr/lib/sandbox-run-prelude/grants.py",
        "host_functions": [],
    }
    assert program.files == (("/usr/lib/sandbox-run-prelude/grants.py", str(prelude)),)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.py", "no such file"),
        ("bad-name.py", "must be a Python module name"),
        ("notes.txt", "must be a Python module name"),
    ],
)
def test_bad_preludes_are_refused(tmp_path: pathlib.Path, name: str, message: str) -> None:
    path = tmp_path / name
    if name != "missing.py":
        path.write_text("__all__ = []\n")
    with pytest.raises(PolicyError, match=message):
        python_program("main.py", b"pass", (), Policy(), prelude=path)


DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "restricted-mode.md"


def test_documented_default_modules_are_the_real_ones() -> None:
    text = DOC.read_text()
    block = text.split("### The default module list", 1)[1].split("```")[1]
    assert sorted(block.split()) == sorted(names.DEFAULT_MODULES)


def test_every_excluded_builtin_is_documented_with_its_reason() -> None:
    text = DOC.read_text()
    for name in names.EXCLUDED_BUILTINS:
        assert f"`{name}`" in text, name
    for name in names.FORBIDDEN_MODULES:
        assert f"`{name}`" in text, name

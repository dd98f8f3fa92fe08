"""Fixtures of the restricted-mode tests: see guest_runner."""

from __future__ import annotations

import pathlib

import pytest
from guest_runner import SECRET, Outcome, Runner, run_pypy, run_sandbox


@pytest.fixture(params=["pypy", "sandbox"])
def runner(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Runner:
    fn = run_pypy if request.param == "pypy" else run_sandbox

    def run(code: str, **kw: object) -> Outcome:
        out = fn(code, tmp=tmp_path, **kw)  # type: ignore[arg-type]
        assert SECRET not in out.stdout and SECRET not in out.stderr, out
        return out

    return run


@pytest.fixture
def pypy(tmp_path: pathlib.Path) -> Runner:
    def run(code: str, **kw: object) -> Outcome:
        return run_pypy(code, tmp=tmp_path, **kw)  # type: ignore[arg-type]

    return run

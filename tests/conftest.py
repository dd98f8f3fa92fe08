"""Shared fixtures.  Tests under integration/ and escapes/ start real guests:
Debian's pypy3 (or a compiled native program) under the real seccomp filter.
Tests under guest/ run the restricted mode in Debian's pypy3, both directly
and in the real sandbox."""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Callable

import pytest

TESTS = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = pathlib.Path(str(item.fspath)).relative_to(TESTS).parts
        if parts[0] in ("integration", "escapes", "guest"):
            item.add_marker(pytest.mark.guest)


@pytest.fixture(scope="session")
def compile_c(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """Compile C source with gcc; returns the executable's path."""
    out_dir = tmp_path_factory.mktemp("native")
    built: dict[tuple[str, tuple[str, ...]], str] = {}

    def build(source: str, *flags: str) -> str:
        key = (source, flags)
        if key not in built:
            n = len(built)
            src = out_dir / f"prog{n}.c"
            exe = out_dir / f"prog{n}"
            src.write_text(source)
            subprocess.run(["gcc", "-O1", "-w", "-o", str(exe), str(src), *flags], check=True)
            built[key] = str(exe)
        return built[key]

    return build


@pytest.fixture
def host_canary(tmp_path: pathlib.Path) -> pathlib.Path:
    """A host file that no guest may read, with a recognisable secret."""
    p = tmp_path / "host-secret.txt"
    p.write_text("HOST-SECRET-5f1c\n")
    os.chmod(p, 0o644)
    return p

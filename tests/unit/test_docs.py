"""Generated documentation matches its source."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_syscall_reference_is_current() -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_syscall_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr

"""The examples in examples/ run, and do what they say."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )


def test_game_loop_survives_its_hostile_bots() -> None:
    p = example("examples/game_loop.py", "--bots", "20", "--ticks", "4")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "20 bots, 4 ticks"
    greedy = next(line for line in lines if line.strip().startswith("greedy"))
    assert int(greedy.split()[-2]) > 0  # the well-behaved bots played
    assert "  bot 9 (spinner): over its cpu budget (x4)" in lines
    assert "  bot 19 (sleeper): over its wall budget (x4)" in lines
    assert lines[-1].startswith("tick time: median ")


def test_agent_interpreter_gives_structured_results(tmp_path: pathlib.Path) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import agent_interpreter
    finally:
        sys.path.pop(0)
    agent_interpreter.make_workspace(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    p = example("examples/agent_interpreter.py", str(tmp_path))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    steps = {s["cell"]: s for s in out["steps"]}
    assert steps[2]["stdout"].endswith("5 rows\n")
    assert steps[5]["error"] == "NameError: name 'totals' is not defined"
    assert steps[6]["error"] == "interrupted: over its cpu budget"
    assert steps[7]["error"].startswith("FileNotFoundError")
    assert steps[8]["error"].startswith("SandboxAttributeError")
    assert steps[9] == {"cell": 9, "ok": True, "stdout": "['east', 'north', 'south']\n"}
    assert out["reports"] == [
        {"title": "mean sales by region", "data": {"east": 55.5, "north": 110.0, "south": 50.0}}
    ]
    assert out["workspace_changes"] == [{"path": "/workspace/summary.json", "kind": "added"}]
    assert out["outcome"] == "completed"
    # An overlay: the host's workspace is untouched.
    assert sorted(p.name for p in tmp_path.iterdir()) == before

"""A code interpreter for an AI agent: generated code runs in one persistent
sandbox against a file workspace, with the agent's tools granted as
capabilities, and every step comes back as a structured result.

The workspace is a host directory mounted as an overlay at /workspace: the
code may read and change it freely, and the host decides afterwards what to
keep (here: it prints the list of changes).  Tools are host functions; what
they may do is decided on the host, and each is limited in calls.  The
"generated" cells below stand in for what a model would write, including a
few that go wrong.

    .venv/bin/python examples/agent_interpreter.py [WORKSPACE]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

import sandbox_run
from sandbox_run import CallDeadlineExceeded, Capability, CapabilityError, GuestError

DOCS = {
    "csv": "Use the csv module: csv.DictReader(open(path)) yields one dict per row.",
    "statistics": "statistics.mean(values) and statistics.median(values) take numbers.",
}

CELLS = [
    # 1. look around
    "import os\nprint(sorted(os.listdir('/workspace')))",
    # 2. ask a tool, then read the data
    "print(search_docs('csv'))\n"
    "import csv\n"
    "rows = list(csv.DictReader(open('/workspace/sales.csv')))\n"
    "print(len(rows), 'rows')",
    # 3. compute, and report a structured answer
    "import statistics\n"
    "by_region = {}\n"
    "for r in rows:\n"
    "    by_region.setdefault(r['region'], []).append(float(r['amount']))\n"
    "summary = {k: round(statistics.mean(v), 2) for k, v in sorted(by_region.items())}\n"
    "report('mean sales by region', summary)",
    # 4. write a file into the workspace
    "with open('/workspace/summary.json', 'w') as f:\n"
    "    import json\n"
    "    json.dump(summary, f)\n"
    "print('written')",
    # 5. a mistake: the model uses a name it never defined
    "print(totals)",
    # 6. runs too long: interrupted, and the session goes on
    "while True:\n    pass",
    # 7. tries to leave the sandbox
    "print(open('/etc/shadow').read())",
    # 8. tries to reach into a tool
    "print(search_docs.__closure__)",
    # 9. state survived all of that
    "print(sorted(summary))",
]


def make_workspace(root: Path) -> None:
    rows = ["region,amount", "north,120", "south,80", "north,100", "east,55.5", "south,20"]
    (root / "sales.csv").write_text("\n".join(rows) + "\n")
    (root / "notes.txt").write_text("quarterly data\n")


async def interpret(workspace: Path, cells: list[str]) -> dict[str, Any]:
    reports: list[dict[str, Any]] = []

    def search_docs(topic: str) -> str:
        if topic not in DOCS:
            raise CapabilityError(f"no documentation about {topic!r}")
        return DOCS[topic]

    def report(title: str, data: Any) -> str:
        reports.append({"title": title, "data": data})
        return "recorded"

    policy = sandbox_run.Policy(
        timeout=120,
        memory=384 << 20,
        call_timeout=2.0,
        call_cpu_time=1.0,
        mounts=(sandbox_run.Mount(str(workspace), "/workspace", "overlay"),),
    )
    tools = {
        "search_docs": Capability(search_docs, max_calls=20),
        "report": Capability(report, max_calls=20),
    }
    steps: list[dict[str, Any]] = []
    async with sandbox_run.Sandbox(policy, capabilities=tools) as sb:
        for n, cell in enumerate(cells, 1):
            step: dict[str, Any] = {"cell": n, "ok": True}
            try:
                await sb.exec(cell)
            except CallDeadlineExceeded as e:
                step.update(ok=False, error=f"interrupted: over its {e.deadline} budget")
            except GuestError as e:
                step.update(ok=False, error=f"{e.type}: {e.message}")
            out, err = sb.take_output()
            step["stdout"] = out.decode(errors="replace")
            if err:
                step["stderr"] = err.decode(errors="replace")
            steps.append(step)
    assert sb.result is not None
    changes = [
        {"path": c.path, "kind": c.kind}
        for area in sb.result.filesystem
        for c in area.changes
        if area.path == "/workspace"
    ]
    return {
        "steps": steps,
        "reports": reports,
        "workspace_changes": changes,
        "tool_calls": sb.capability_stats(),
        "outcome": sb.result.outcome.value,
    }


def main() -> None:
    if len(sys.argv) > 1:
        workspace = Path(sys.argv[1])
    else:
        workspace = Path(tempfile.mkdtemp(prefix="agent-workspace-"))
        make_workspace(workspace)
    print(json.dumps(trio.run(interpret, workspace, CELLS), indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write docs/syscalls.md from the syscall table (the table is the truth).

.venv/bin/python scripts/gen_syscall_docs.py          # rewrite the file
.venv/bin/python scripts/gen_syscall_docs.py --check  # fail if stale
"""

from __future__ import annotations

import errno
import os
import sys

from sandbox_run.controller.syscalls import MAX_NR, NETWORK_HANDLED, TABLE, Entry, Kind

DOC = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "syscalls.md"
)

_HEADER = """\
# System calls of the guest

Generated from `src/sandbox_run/controller/syscalls.py` by
`scripts/gen_syscall_docs.py`; do not edit by hand.

Every x86-64 system call number from 0 to {max_nr} has an entry.  Numbers the
kernel does not assign, and anything above {max_nr}, are refused with ENOSYS.
Calls made through a foreign ABI (i386 `int 0x80`, the x32 bit) kill the guest.

| kind | meaning |
|---|---|
| allow | runs in the kernel; touches only the guest's own memory, descriptors or time |
| handle | stopped and answered by the controller, which performs it on the guest's behalf |
| refuse | stopped, logged, and answered with the errno shown |
| quiet | answered with the errno shown inside the kernel, without a log line |

Where a call's arguments are tested by the filter, the cases are listed: the
first that matches decides, else the entry's own kind applies.

Summary: {summary}.

| nr | name | kind | errno | note |
|---:|---|---|---|---|
"""


def _errno(e: int) -> str:
    return errno.errorcode.get(e, str(e)) if e else ""


def _case_text(entry: Entry) -> str:
    parts = []
    for case in entry.cases:
        tests = " and ".join(
            f"arg{t.arg}"
            + (f" & {t.mask:#x}" if t.mask not in (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF) else "")
            + " in {"
            + ", ".join(hex(v) for v in t.values)
            + "}"
            for t in case.tests
        )
        what = case.kind.value + (f" {_errno(case.errno)}" if case.kind is Kind.QUIET else "")
        parts.append(f"{tests} → {what}")
    return "; ".join(parts)


def render() -> str:
    counts: dict[str, int] = {}
    for e in TABLE:
        if not e.name.startswith("nr_"):
            counts[e.kind.value] = counts.get(e.kind.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    out = [_HEADER.format(max_nr=MAX_NR, summary=summary)]
    for e in TABLE:
        if e.name.startswith("nr_"):
            continue
        note = e.reason
        if e.cases:
            note = f"{_case_text(e)}; otherwise: {note}"
        if e.name in NETWORK_HANDLED:
            note = f"{note}; {NETWORK_HANDLED[e.name]} (handle)"
        out.append(f"| {e.nr} | `{e.name}` | {e.kind.value} | {_errno(e.errno)} | {note} |\n")
    return "".join(out)


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        with open(DOC) as f:
            if f.read() != text:
                raise SystemExit("docs/syscalls.md is stale: run scripts/gen_syscall_docs.py")
        return
    with open(DOC, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()

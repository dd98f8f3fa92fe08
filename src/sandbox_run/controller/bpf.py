"""Compile the syscall table into a classic-BPF seccomp filter, and run one.

Pure code: ``compile_filter`` turns ``syscalls.TABLE`` into the bytes the
launcher loads; ``evaluate`` is a small interpreter for those bytes, so unit
tests can check the filter's answer for every syscall number and argument
case without starting a process.

Layout of the generated program::

    load arch;  arch != x86-64        -> KILL
    load nr;    nr & X32_SYSCALL_BIT   -> KILL
    binary search over ranges of numbers with the same rule
    leaf: the rule's argument cases, then its default action

Conditional jumps are always emitted as ``jcc k, 0, 1`` followed by an
unconditional ``ja`` (32-bit offset), so no branch is ever out of range,
whatever the size of the table.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from .syscalls import (
    AUDIT_ARCH_X86_64,
    MAX_NR,
    TABLE,
    X32_SYSCALL_BIT,
    ArgTest,
    Case,
    Entry,
    Kind,
)

# classic BPF opcodes (linux/bpf_common.h)
BPF_LD_W_ABS = 0x20
BPF_ALU_AND_K = 0x54
BPF_JMP_JA = 0x05
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGE_K = 0x35
BPF_JMP_JSET_K = 0x45
BPF_RET_K = 0x06

# seccomp return values (linux/seccomp.h)
RET_KILL_PROCESS = 0x8000_0000
RET_ERRNO = 0x0005_0000
RET_USER_NOTIF = 0x7FC0_0000
RET_ALLOW = 0x7FFF_0000
RET_ACTION_FULL = 0xFFFF_0000
RET_DATA = 0x0000_FFFF

# offsets in struct seccomp_data
OFF_NR = 0
OFF_ARCH = 4
OFF_ARGS = 16

MAX_INSNS = 4096  # BPF_MAXINSNS


@dataclass(frozen=True, slots=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int

    def pack(self) -> bytes:
        return struct.pack("<HBBI", self.code, self.jt, self.jf, self.k & 0xFFFF_FFFF)


@dataclass(slots=True)
class _Asm:
    """Instructions with symbolic forward targets for ``ja``."""

    insns: list[tuple[int, int, int, int | str]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    _n: int = 0

    def new_label(self) -> str:
        self._n += 1
        return f"L{self._n}"

    def mark(self, label: str) -> None:
        self.labels[label] = len(self.insns)

    def emit(self, code: int, k: int | str = 0, jt: int = 0, jf: int = 0) -> None:
        self.insns.append((code, jt, jf, k))

    def ja(self, label: str) -> None:
        self.emit(BPF_JMP_JA, label)

    def ret(self, value: int) -> None:
        self.emit(BPF_RET_K, value)

    def assemble(self) -> list[Insn]:
        out = []
        for pc, (code, jt, jf, k) in enumerate(self.insns):
            if isinstance(k, str):
                off = self.labels[k] - pc - 1
                if off < 0:
                    raise ValueError("backward jump in seccomp filter")
                k = off
            out.append(Insn(code, jt, jf, k))
        return out


def action_value(kind: Kind, errno: int) -> int:
    """The seccomp return value for a table kind."""
    if kind is Kind.ALLOW:
        return RET_ALLOW
    if kind in (Kind.HANDLE, Kind.REFUSE):
        # Refusals are notified too, so the controller logs them.
        return RET_USER_NOTIF
    if kind is Kind.QUIET:
        if not 0 < errno <= 4095:
            raise ValueError(f"bad errno {errno} for a quiet refusal")
        return RET_ERRNO | errno
    return RET_KILL_PROCESS


def _rule_key(e: Entry) -> tuple[object, ...]:
    """Entries with equal keys compile to the same leaf and share a range."""
    return (action_value(e.kind, e.errno), e.cases)


def _emit_test(asm: _Asm, t: ArgTest, fail: str) -> None:
    """Fall through when ``t`` holds; jump to ``fail`` otherwise."""
    base = OFF_ARGS + 8 * t.arg
    words: list[tuple[int, int, list[int]]] = [
        (base, t.mask & 0xFFFF_FFFF, [v & 0xFFFF_FFFF for v in t.values])
    ]
    if t.width == 64:
        if len(t.values) != 1:
            raise ValueError("64-bit argument tests take exactly one value")
        words.append((base + 4, t.mask >> 32 & 0xFFFF_FFFF, [t.values[0] >> 32 & 0xFFFF_FFFF]))
    for offset, mask, values in words:
        asm.emit(BPF_LD_W_ABS, offset)
        if mask != 0xFFFF_FFFF:
            asm.emit(BPF_ALU_AND_K, mask)
        ok = asm.new_label()
        for v in values:
            # jeq v -> ok ; else try the next value
            asm.emit(BPF_JMP_JEQ_K, v, jt=0, jf=1)
            asm.ja(ok)
        asm.ja(fail)
        asm.mark(ok)


def _emit_case(asm: _Asm, case: Case) -> None:
    nxt = asm.new_label()
    for t in case.tests:
        _emit_test(asm, t, nxt)
    asm.ret(action_value(case.kind, case.errno))
    asm.mark(nxt)


def _emit_leaf(asm: _Asm, e: Entry) -> None:
    for case in e.cases:
        _emit_case(asm, case)
    asm.ret(action_value(e.kind, e.errno))


@dataclass(frozen=True, slots=True)
class _Range:
    lo: int
    hi: int  # inclusive
    entry: Entry


def _ranges(table: Sequence[Entry]) -> list[_Range]:
    out: list[_Range] = []
    for e in table:
        if out and _rule_key(out[-1].entry) == _rule_key(e) and out[-1].hi == e.nr - 1:
            out[-1] = _Range(out[-1].lo, e.nr, out[-1].entry)
        else:
            out.append(_Range(e.nr, e.nr, e))
    return out


def _emit_tree(asm: _Asm, ranges: list[_Range]) -> None:
    if len(ranges) == 1:
        _emit_leaf(asm, ranges[0].entry)
        return
    mid = len(ranges) // 2
    right = asm.new_label()
    # nr >= ranges[mid].lo -> right half (the accumulator still holds nr)
    asm.emit(BPF_JMP_JGE_K, ranges[mid].lo, jt=0, jf=1)
    asm.ja(right)
    _emit_tree(asm, ranges[:mid])
    asm.mark(right)
    _emit_tree(asm, ranges[mid:])


def compile_filter(table: Sequence[Entry] = TABLE) -> list[Insn]:
    """The seccomp program for ``table`` (indexed by number, from 0)."""
    for nr, e in enumerate(table):
        if e.nr != nr:
            raise ValueError(f"table entry {e.name} is at index {nr}, not {e.nr}")
    asm = _Asm()
    kill = asm.new_label()
    asm.emit(BPF_LD_W_ABS, OFF_ARCH)
    asm.emit(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, jt=1, jf=0)
    asm.ja(kill)
    asm.emit(BPF_LD_W_ABS, OFF_NR)
    asm.emit(BPF_JMP_JSET_K, X32_SYSCALL_BIT, jt=0, jf=1)
    asm.ja(kill)
    # Numbers above the table (before the x32 bit) are refused like gaps.
    high = _Range(
        len(table), X32_SYSCALL_BIT - 1, Entry(len(table), "unknown", Kind.REFUSE, "unknown", 38)
    )
    _emit_tree(asm, [*_ranges(table), high])
    asm.mark(kill)
    asm.ret(RET_KILL_PROCESS)
    prog = asm.assemble()
    if len(prog) > MAX_INSNS:
        raise ValueError(f"seccomp filter too long: {len(prog)} instructions")
    return prog


def pack(prog: Sequence[Insn]) -> bytes:
    return b"".join(i.pack() for i in prog)


def seccomp_data(
    nr: int, args: Sequence[int] = (), arch: int = AUDIT_ARCH_X86_64, ip: int = 0
) -> bytes:
    """A ``struct seccomp_data`` as the kernel hands it to the filter."""
    full = [*args, 0, 0, 0, 0, 0, 0][:6]
    return struct.pack("<iIQ6Q", nr, arch, ip, *(a & 0xFFFF_FFFF_FFFF_FFFF for a in full))


def evaluate(prog: Sequence[Insn], data: bytes) -> int:
    """Run ``prog`` on ``data`` the way the kernel does, for the opcodes we emit."""
    acc = 0
    pc = 0
    while True:
        if not 0 <= pc < len(prog):
            raise ValueError(f"filter ran off its end at {pc}")
        i = prog[pc]
        pc += 1
        if i.code == BPF_LD_W_ABS:
            if i.k % 4 or i.k + 4 > len(data):
                raise ValueError(f"bad load offset {i.k}")
            acc = struct.unpack_from("<I", data, i.k)[0]
        elif i.code == BPF_ALU_AND_K:
            acc &= i.k
        elif i.code == BPF_JMP_JA:
            pc += i.k
        elif i.code in (BPF_JMP_JEQ_K, BPF_JMP_JGE_K, BPF_JMP_JSET_K):
            if i.code == BPF_JMP_JEQ_K:
                taken = acc == i.k
            elif i.code == BPF_JMP_JGE_K:
                taken = acc >= i.k
            else:
                taken = bool(acc & i.k)
            pc += i.jt if taken else i.jf
        elif i.code == BPF_RET_K:
            return i.k
        else:
            raise ValueError(f"unexpected opcode {i.code:#x}")


def describe_action(value: int) -> str:
    action = value & RET_ACTION_FULL
    if action == RET_ALLOW:
        return "allow"
    if action == RET_USER_NOTIF:
        return "notify"
    if action == RET_ERRNO:
        return f"errno {value & RET_DATA}"
    if action == RET_KILL_PROCESS:
        return "kill"
    return f"action {value:#x}"


__all__ = [
    "MAX_NR",
    "Insn",
    "compile_filter",
    "describe_action",
    "evaluate",
    "pack",
    "seccomp_data",
]

"""The compiled seccomp filter, run on synthetic inputs by a BPF interpreter."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_run.controller import bpf, syscalls
from sandbox_run.controller.syscalls import MAX_NR, TABLE, Kind

PROG = bpf.compile_filter()


def action(nr: int, args: tuple[int, ...] = (), arch: int = syscalls.AUDIT_ARCH_X86_64) -> int:
    return bpf.evaluate(PROG, bpf.seccomp_data(nr, args, arch))


def test_filter_fits_the_kernel_limit_and_only_jumps_forward() -> None:
    assert len(PROG) <= bpf.MAX_INSNS
    for pc, insn in enumerate(PROG):
        if insn.code == bpf.BPF_JMP_JA:
            assert pc + 1 + insn.k < len(PROG)
        elif insn.code in (bpf.BPF_JMP_JEQ_K, bpf.BPF_JMP_JGE_K, bpf.BPF_JMP_JSET_K):
            assert pc + 1 + max(insn.jt, insn.jf) < len(PROG)
    assert PROG[-1].code == bpf.BPF_RET_K
    assert len(bpf.pack(PROG)) == 8 * len(PROG)


@pytest.mark.parametrize("entry", TABLE, ids=lambda e: e.name)
def test_filter_matches_the_table_for_every_number(entry: syscalls.Entry) -> None:
    # With all-zero arguments, cases that test for zero (a pid of 0) match.
    got = action(entry.nr)
    for case in entry.cases:
        if all(0 in t.values and (0 & t.mask) == 0 for t in case.tests):
            assert got == bpf.action_value(case.kind, case.errno)
            return
    assert got == bpf.action_value(entry.kind, entry.errno)


def test_unknown_high_numbers_are_notified_for_refusal() -> None:
    for nr in (MAX_NR + 1, 1000, 0x3FFF_FFFF):
        assert action(nr) == bpf.RET_USER_NOTIF


def test_foreign_architectures_are_killed() -> None:
    AUDIT_ARCH_I386 = 0x4000_0003
    for nr in (0, 1, 11, 59):
        assert action(nr, arch=AUDIT_ARCH_I386) == bpf.RET_KILL_PROCESS
    assert action(0, arch=0) == bpf.RET_KILL_PROCESS


def test_x32_system_calls_are_killed() -> None:
    for nr in (0, 1, 59, 512, 520):
        assert action(syscalls.X32_SYSCALL_BIT | nr) == bpf.RET_KILL_PROCESS


def test_negative_numbers_are_killed() -> None:
    assert action(-1) == bpf.RET_KILL_PROCESS  # 0xffffffff has the x32 bit


def test_ioctl_allows_only_flag_and_size_requests() -> None:
    nr = syscalls.NR["ioctl"]
    assert action(nr, (1, syscalls.FIONREAD)) == bpf.RET_ALLOW
    assert action(nr, (1, syscalls.FIOCLEX)) == bpf.RET_ALLOW
    assert action(nr, (1, syscalls.TCGETS)) == bpf.RET_ERRNO | errno.ENOTTY
    TIOCSTI = 0x5412
    assert action(nr, (0, TIOCSTI)) == bpf.RET_USER_NOTIF  # refused by the controller
    # The kernel reads the request as an int: high bits must not sneak past.
    assert action(nr, (1, (1 << 32) | TIOCSTI)) == bpf.RET_USER_NOTIF
    assert action(nr, (1, (1 << 32) | syscalls.FIONREAD)) == bpf.RET_ALLOW


def test_clone_allows_threads_only() -> None:
    nr = syscalls.NR["clone"]
    thread = 0x3D0F00
    assert action(nr, (thread,)) == bpf.RET_ALLOW
    SIGCHLD = 17
    CLONE_VM, CLONE_VFORK, CLONE_NEWUSER = 0x100, 0x4000, 0x1000_0000
    for flags in (
        SIGCHLD,
        CLONE_VM | CLONE_VFORK | SIGCHLD,
        thread | CLONE_NEWUSER,
        thread | SIGCHLD,
        thread & ~0x10000,
        thread | (1 << 32),
        0,
    ):
        assert action(nr, (flags,)) == bpf.RET_USER_NOTIF, hex(flags)


def test_sendto_with_an_address_is_not_allowed() -> None:
    nr = syscalls.NR["sendto"]
    assert action(nr, (3, 0x1000, 10, 0, 0, 0)) == bpf.RET_ALLOW
    assert action(nr, (3, 0x1000, 10, 0, 0x2000, 16)) == bpf.RET_USER_NOTIF
    assert action(nr, (3, 0x1000, 10, 0, 1 << 40, 16)) == bpf.RET_USER_NOTIF


def test_socketpair_only_for_unix_streams() -> None:
    nr = syscalls.NR["socketpair"]
    SOCK_CLOEXEC = 0o2000000
    assert action(nr, (1, 1 | SOCK_CLOEXEC, 0, 0x1000)) == bpf.RET_ALLOW
    assert action(nr, (1, 2, 0, 0x1000)) == bpf.RET_USER_NOTIF  # datagram
    assert action(nr, (2, 1, 0, 0x1000)) == bpf.RET_USER_NOTIF  # AF_INET


@pytest.mark.parametrize("name", ["prlimit64", "sched_setaffinity", "get_robust_list", "getpgid"])
def test_pid_taking_calls_may_name_only_the_guest(name: str) -> None:
    nr = syscalls.NR[name]
    assert action(nr, (0,)) == bpf.RET_ALLOW
    assert action(nr, (1,)) == bpf.RET_USER_NOTIF
    assert action(nr, (12345,)) == bpf.RET_USER_NOTIF


def test_prctl_refuses_seccomp_and_capability_changes() -> None:
    nr = syscalls.NR["prctl"]
    PR_SET_SECCOMP, PR_SET_DUMPABLE, PR_SET_PTRACER = 22, 4, 0x59616D61
    for op in (PR_SET_SECCOMP, PR_SET_DUMPABLE, PR_SET_PTRACER):
        assert action(nr, (op,)) == bpf.RET_USER_NOTIF
    assert action(nr, (syscalls.PR_SET_NAME,)) == bpf.RET_ALLOW


VALID = {bpf.RET_ALLOW, bpf.RET_USER_NOTIF, bpf.RET_KILL_PROCESS}


@given(
    st.integers(-(2**31), 2**31 - 1),
    st.lists(st.integers(0, 2**64 - 1), max_size=6),
    st.sampled_from([syscalls.AUDIT_ARCH_X86_64, 0x4000_0003]),
)
def test_filter_always_ends_in_a_known_action(nr: int, args: list[int], arch: int) -> None:
    got = bpf.evaluate(PROG, bpf.seccomp_data(nr, args, arch))
    assert got in VALID or got & bpf.RET_ACTION_FULL == bpf.RET_ERRNO


@given(st.integers(0, MAX_NR), st.lists(st.integers(0, 2**64 - 1), max_size=6))
def test_only_allow_listed_calls_are_ever_allowed(nr: int, args: list[int]) -> None:
    entry = TABLE[nr]
    got = bpf.evaluate(PROG, bpf.seccomp_data(nr, args))
    if got == bpf.RET_ALLOW:
        assert entry.kind is Kind.ALLOW or any(c.kind is Kind.ALLOW for c in entry.cases)


NET_PROG = bpf.compile_filter(syscalls.NETWORK_TABLE)


def test_the_network_filter_differs_only_in_the_closing_calls() -> None:
    changed = {
        e.name
        for e, n in zip(TABLE, syscalls.NETWORK_TABLE, strict=True)
        if (e.kind, e.errno, e.cases) != (n.kind, n.errno, n.cases)
    }
    assert changed == set(syscalls.NETWORK_HANDLED)
    for nr in range(MAX_NR + 1):
        data = bpf.seccomp_data(nr, (3, 4, 0))
        if syscalls.TABLE[nr].name in syscalls.NETWORK_HANDLED:
            assert bpf.evaluate(PROG, data) == bpf.RET_ALLOW
            assert bpf.evaluate(NET_PROG, data) == bpf.RET_USER_NOTIF
        else:
            assert bpf.evaluate(PROG, data) == bpf.evaluate(NET_PROG, data)


def test_the_channel_filter_hands_over_only_the_channel_descriptor() -> None:
    prog = bpf.compile_filter(syscalls.table_for(False, 300))
    for name in ("read", "write"):
        nr = syscalls.NR[name]
        assert bpf.evaluate(prog, bpf.seccomp_data(nr, (300, 0, 10))) == bpf.RET_USER_NOTIF
        # The kernel reads the descriptor as an int: high bits change nothing.
        high = 300 | (1 << 40)
        assert bpf.evaluate(prog, bpf.seccomp_data(nr, (high, 0, 10))) == bpf.RET_USER_NOTIF
        for fd in (0, 1, 3, 299, 301):
            assert bpf.evaluate(prog, bpf.seccomp_data(nr, (fd, 0, 10))) == bpf.RET_ALLOW

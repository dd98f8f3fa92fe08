"""The syscall table: complete, consistent, and strict where it matters."""

from __future__ import annotations

import errno

from sandbox_run.controller import syscalls
from sandbox_run.controller.dispatch import CONTINUE_OK
from sandbox_run.controller.handlers import handler_table
from sandbox_run.controller.syscalls import MAX_NR, TABLE, Kind, entry_for


def test_every_number_up_to_the_last_known_call_has_an_entry() -> None:
    assert len(TABLE) == MAX_NR + 1
    for nr, e in enumerate(TABLE):
        assert e.nr == nr
        assert e.reason, f"{e.name} has no reason"


def test_known_range_ends_with_the_newest_x86_64_call() -> None:
    assert syscalls.NR["listns"] == MAX_NR
    assert syscalls.NR["read"] == 0 and MAX_NR >= 470
    assert syscalls.NR["read"] == 0
    assert syscalls.NR["io_uring_setup"] == 425
    assert syscalls.NR["openat2"] == 437


def test_names_are_unique() -> None:
    names = [e.name for e in TABLE]
    assert len(set(names)) == len(names)


def test_numbers_beyond_the_table_are_refused_with_enosys() -> None:
    for nr in (MAX_NR + 1, 512, 600, 10_000, 2**31 - 1):
        e = entry_for(nr)
        assert e.kind is Kind.REFUSE
        assert e.errno == errno.ENOSYS


def test_unassigned_numbers_are_refused_with_enosys() -> None:
    for nr in range(337, 424):
        assert TABLE[nr].kind is Kind.REFUSE and TABLE[nr].errno == errno.ENOSYS


def test_refusals_carry_an_errno() -> None:
    for e in TABLE:
        if e.kind in (Kind.REFUSE, Kind.QUIET):
            assert 0 < e.errno < 4096, e.name
        for case in e.cases:
            assert case.kind in (Kind.ALLOW, Kind.QUIET), e.name
            if case.kind is Kind.QUIET:
                assert case.errno > 0


def test_every_handled_call_has_exactly_one_handler() -> None:
    handlers = handler_table()  # raises if a handle entry lacks a handler, or vice versa
    for entries in zip(*syscalls.variants(), strict=True):
        handled = any(v.handled for v in entries)
        assert (handlers[entries[0].nr] is not None) == handled, entries[0].name


def test_calls_that_may_continue_take_no_address_deciding_pointer() -> None:
    # CONTINUE is reserved for calls whose target is a register: a pid, or the
    # descriptors that closing calls name (seen only to count network bytes).
    signals = {"kill", "tgkill", "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"}
    closing = {"close", "dup2", "dup3", "close_range", "exit", "exit_group"}
    # read and write of the channel continue only when it is not the channel:
    # the buffer pointer is the guest's own memory, the descriptor decides.
    channel = {"read", "write"}
    assert CONTINUE_OK == signals | closing | channel
    assert set(syscalls.CHANNEL_HANDLED) == channel
    assert set(syscalls.NETWORK_HANDLED) == closing
    for name in signals:
        assert TABLE[syscalls.NR[name]].kind is Kind.HANDLE
    for name in closing:
        assert TABLE[syscalls.NR[name]].kind is Kind.ALLOW
        assert syscalls.NETWORK_TABLE[syscalls.NR[name]].kind is Kind.HANDLE


PATH_CALLS = """open openat openat2 creat stat lstat newfstatat statx access faccessat faccessat2
readlink readlinkat chdir mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2
truncate chmod fchmodat fchmodat2 utime utimes futimesat utimensat statfs link linkat symlink
symlinkat mknod mknodat chown lchown fchownat execve execveat getxattr setxattr listxattr
removexattr lgetxattr lsetxattr llistxattr lremovexattr inotify_add_watch name_to_handle_at
open_by_handle_at mount umount2 chroot pivot_root swapon swapoff acct uselib
quotactl""".split()


def test_no_call_that_takes_a_path_runs_in_the_kernel() -> None:
    for name in PATH_CALLS:
        e = TABLE[syscalls.NR[name]]
        assert e.kind is not Kind.ALLOW and not e.cases, name


ESCAPE_HATCHES = """fork vfork clone3 execve execveat ptrace process_vm_readv process_vm_writev
kcmp pidfd_open pidfd_getfd pidfd_send_signal seccomp io_uring_setup io_uring_enter
io_uring_register bpf perf_event_open userfaultfd unshare setns mount open_by_handle_at
name_to_handle_at kexec_load init_module finit_module memfd_create socket connect bind listen
keyctl add_key request_key shmget msgget semget mq_open modify_ldt personality
setuid setgid setgroups capset iopl ioperm reboot""".split()


def test_escape_hatches_never_run_in_the_kernel() -> None:
    for name in ESCAPE_HATCHES:
        e = TABLE[syscalls.NR[name]]
        assert e.kind in (Kind.REFUSE, Kind.HANDLE), name
        assert not any(c.kind is Kind.ALLOW for c in e.cases), name


def test_allowed_calls_touch_only_the_guest() -> None:
    allowed = {e.name for e in TABLE if e.kind is Kind.ALLOW}
    # A sample of what must stay in the kernel for speed ...
    assert {
        "read",
        "write",
        "close",
        "mmap",
        "futex",
        "lseek",
        "clock_gettime",
        "exit_group",
        "rt_sigaction",
        "getrandom",
    } <= allowed
    # ... and of what must not.
    assert not allowed & {
        "kill",
        "tgkill",
        "getuid",
        "uname",
        "sysinfo",
        "getcwd",
        "fstat",
        "getdents64",
        "sendmsg",
        "getppid",
    }


def test_the_channel_variant_hands_over_only_the_channel_descriptor() -> None:
    table = syscalls.table_for(False, 300)
    for name in ("read", "write"):
        e = table[syscalls.NR[name]]
        assert e.kind is Kind.ALLOW and e.handled
        (case,) = e.cases
        assert case.kind is Kind.HANDLE
        assert [(t.arg, t.values) for t in case.tests] == [(0, (300,))]
    assert syscalls.table_for(False, 300) is table  # compiled once
    assert not syscalls.TABLE[syscalls.NR["read"]].handled

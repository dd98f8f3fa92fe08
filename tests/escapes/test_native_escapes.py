"""Hostile native guests: programs that make raw system calls, as a fully
compromised interpreter would.  Each attack must fail in the stated way.

The programs print one line per attempt, ``name=<result>``, where the result
is ``ok`` or the errno name; the tests compare those lines exactly.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
from collections.abc import Callable

import pytest
from hostile import lines, native

from sandbox_run import Outcome


def test_native_hello_world(compile_c: Callable[..., str]) -> None:
    r = native(compile_c, r'printf("hello from C %s\n", argc > 1 ? argv[1] : "");', argv=("x",))
    assert r.ok and r.stdout == b"hello from C x\n"


def test_reading_host_files_fails(compile_c: Callable[..., str], host_canary: pathlib.Path) -> None:
    canary = str(host_canary)
    r = native(
        compile_c,
        rf"""
        char buf[64];
        TRY("open_passwd", open("/etc/passwd", O_RDONLY));
        TRY("open_canary", open("{canary}", O_RDONLY));
        TRY("syscall_open", syscall(SYS_open, "{canary}", O_RDONLY));
        TRY("openat_canary", openat(AT_FDCWD, "{canary}", O_RDONLY));
        TRY("dotdot", open("../../../../../../../../{canary}", O_RDONLY));
        TRY("proc_root", open("/proc/self/root{canary}", O_RDONLY));
        TRY("proc_cwd", open("/proc/self/cwd/../../etc/passwd", O_RDONLY));
        TRY("proc_mem", open("/proc/self/mem", O_RDWR));
        TRY("proc_pid_mem", open("/proc/1/mem", O_RDWR));
        int d = open("/sandbox", O_RDONLY | O_DIRECTORY);
        TRY("dirfd_escape", openat(d, "../../../../{canary}", O_RDONLY));
        TRY("symlink_make", symlink("{canary}", "/tmp/l"));
        TRY("symlink_follow", open("/tmp/l", O_RDONLY));
        TRY("symlink_rel_make", symlink("../../../../../../{canary}", "/tmp/r"));
        TRY("symlink_rel_follow", open("/tmp/r", O_RDONLY));
        TRY("link_make", link("{canary}", "/tmp/h"));
        struct {{ unsigned long long flags, mode, resolve; }} how = {{O_RDONLY, 0, 0}};
        TRY("openat2", syscall(SYS_openat2, AT_FDCWD, "{canary}", &how, sizeof how));
        how.resolve = 0x10;  /* RESOLVE_IN_ROOT */
        TRY("openat2_resolve", syscall(SYS_openat2, AT_FDCWD, "/etc/passwd", &how, sizeof how));
        TRY("handle", syscall(SYS_open_by_handle_at, d, buf, O_RDONLY));
        int leaked = 0;
        for (int fd = 3; fd < 1024; fd++) if (fd != d && fcntl(fd, F_GETFD) >= 0) leaked++;
        printf("leaked_fds=%d\n", leaked);
        TRY("chroot", chroot("/tmp"));
        TRY("mount", mount("none", "/tmp", "tmpfs", 0, 0));
    """,
    )
    assert "HOST-SECRET" not in r.stdout.decode()
    assert lines(r) == {
        "open_passwd": "ENOENT",
        "open_canary": "ENOENT",
        "syscall_open": "ENOENT",
        "openat_canary": "ENOENT",
        "dotdot": "ENOENT",
        "proc_root": "ENOENT",
        "proc_cwd": "ENOENT",
        "proc_mem": "ENOENT",
        "proc_pid_mem": "ENOENT",
        "dirfd_escape": "ENOENT",
        "symlink_make": "ok",
        "symlink_follow": "ENOENT",
        "symlink_rel_make": "ok",
        "symlink_rel_follow": "ENOENT",
        "link_make": "ENOENT",
        "openat2": "ENOENT",
        "openat2_resolve": "EINVAL",
        "handle": "EPERM",
        "leaked_fds": "0",
        "chroot": "EPERM",
        "mount": "EPERM",
    }


def test_sockets_fail(compile_c: Callable[..., str]) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        r = native(
            compile_c,
            rf"""
            TRY("inet", socket(AF_INET, SOCK_STREAM, 0));
            TRY("inet6", socket(AF_INET6, SOCK_DGRAM, 0));
            TRY("unix", socket(AF_UNIX, SOCK_STREAM, 0));
            TRY("raw", socket(AF_INET, SOCK_RAW, 1));
            TRY("packet", socket(17, SOCK_RAW, 0));
            int sv[2];
            TRY("pair_dgram", socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
            TRY("pair_stream", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
            struct sockaddr_in a = {{ .sin_family = AF_INET, .sin_port = htons({port}) }};
            a.sin_addr.s_addr = htonl(0x7f000001);
            TRY("connect_pair", connect(sv[0], (struct sockaddr *)&a, sizeof a));
            TRY("sendto_addr", sendto(sv[0], "x", 1, 0, (struct sockaddr *)&a, sizeof a));
            TRY("send_pair", send(sv[0], "x", 1, 0));
        """,
        )
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()
    assert lines(r) == {
        "inet": "EACCES",
        "inet6": "EACCES",
        "unix": "EACCES",
        # Raw and packet sockets need CAP_NET_RAW: EPERM, as the kernel says.
        "raw": "EPERM",
        "packet": "EPERM",
        "pair_dgram": "EACCES",
        "pair_stream": "ok",
        "connect_pair": "EACCES",
        # A connected unix stream takes no address: the kernel's answer.
        "sendto_addr": "EISCONN",
        "send_pair": "ok",
    }


def test_processes_cannot_be_created(compile_c: Callable[..., str], tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    r = native(
        compile_c,
        rf"""
        TRY("fork", fork());
        TRY("vfork_raw", syscall(SYS_vfork));
        TRY("fork_raw", syscall(SYS_fork));
        TRY("clone_proc", syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
        TRY("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
        unsigned long long args[11] = {{0}};
        TRY("clone3", syscall(SYS_clone3, args, sizeof args));
        char *av[] = {{"/bin/sh", "-c", "touch {marker}", 0}};
        TRY("execve", execve("/bin/sh", av, 0));
        TRY("execve_self", execve("/proc/self/exe", av, 0));
        TRY("execveat", syscall(SYS_execveat, AT_FDCWD, "/bin/sh", av, 0, 0));
        TRY("unshare", unshare(CLONE_NEWUSER));
        TRY("setns", setns(0, 0));
    """,
    )
    assert lines(r) == {
        "fork": "EPERM",
        "vfork_raw": "EPERM",
        "fork_raw": "EPERM",
        "clone_proc": "EPERM",
        "clone_newuser": "EPERM",
        "clone3": "ENOSYS",
        "execve": "EACCES",
        "execve_self": "EACCES",
        "execveat": "EACCES",
        "unshare": "EPERM",
        "setns": "EPERM",
    }
    assert not marker.exists()


def test_tracing_and_signalling_the_controller_fail(compile_c: Callable[..., str]) -> None:
    me = os.getpid()
    r = native(
        compile_c,
        rf"""
        pid_t host = {me};
        TRY("ptrace_attach", ptrace(PTRACE_ATTACH, host, 0, 0));
        TRY("ptrace_seize_ppid", ptrace(PTRACE_SEIZE, getppid(), 0, 0));
        TRY("ptrace_traceme", ptrace(PTRACE_TRACEME, 0, 0, 0));
        TRY("kill_host", kill(host, SIGKILL));
        TRY("kill_all", kill(-1, SIGKILL));
        TRY("kill_init", kill(1, 0));
        TRY("tgkill_host", syscall(SYS_tgkill, host, host, SIGKILL));
        TRY("tkill_host", syscall(SYS_tkill, host, SIGKILL));
        siginfo_t si; memset(&si, 0, sizeof si); si.si_code = -1;
        TRY("sigqueue_host", syscall(SYS_rt_sigqueueinfo, host, SIGKILL, &si));
        char b[8]; struct iovec l = {{b, 8}}, rv = {{(void *)0x400000, 8}};
        TRY("vm_read", process_vm_readv(host, &l, 1, &rv, 1, 0));
        TRY("vm_write", process_vm_writev(host, &l, 1, &rv, 1, 0));
        TRY("pidfd_open", syscall(SYS_pidfd_open, host, 0));
        TRY("kcmp", syscall(SYS_kcmp, host, getpid(), 0, 0, 0));
        TRY("prlimit_host", syscall(SYS_prlimit64, host, RLIMIT_NOFILE, 0, b));
        TRY("setpriority_host", setpriority(PRIO_PROCESS, host, 19));
        TRY("kill_self_0", kill(getpid(), 0));
        TRY("prlimit_self", syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, b));
    """,
    )
    assert lines(r) == {
        "ptrace_attach": "EPERM",
        "ptrace_seize_ppid": "EPERM",
        "ptrace_traceme": "EPERM",
        "kill_host": "EPERM",
        "kill_all": "EPERM",
        "kill_init": "EPERM",
        "tgkill_host": "EPERM",
        "tkill_host": "ESRCH",
        "sigqueue_host": "EPERM",
        "vm_read": "EPERM",
        "vm_write": "EPERM",
        "pidfd_open": "EPERM",
        "kcmp": "EPERM",
        "prlimit_host": "EPERM",
        "setpriority_host": "EPERM",
        "kill_self_0": "ok",
        "prlimit_self": "ok",
    }
    assert r.ok


def test_own_seccomp_listener_is_refused(compile_c: Callable[..., str]) -> None:
    # A guest holding a listener for its own filter could answer its own
    # notifications with CONTINUE: seccomp(2) and PR_SET_SECCOMP are refused.
    r = native(
        compile_c,
        r"""
        struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF) };
        struct sock_fprog p = { 1, f };
        TRY("seccomp_listener", syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                        SECCOMP_FILTER_FLAG_NEW_LISTENER, &p));
        TRY("prctl_seccomp", prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p, 0, 0));
        TRY("prctl_dumpable", prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
        TRY("prctl_name", prctl(PR_SET_NAME, "x", 0, 0, 0));
    """,
    )
    assert lines(r) == {
        "seccomp_listener": "EPERM",
        "prctl_seccomp": "EINVAL",
        "prctl_dumpable": "EINVAL",
        "prctl_name": "ok",
    }


def test_io_uring_is_unavailable(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        r"""
        struct io_uring_params p; memset(&p, 0, sizeof p);
        TRY("io_uring_setup", syscall(SYS_io_uring_setup, 8, &p));
        TRY("io_uring_enter", syscall(SYS_io_uring_enter, 0, 1, 0, 0, 0, 0));
    """,
    )
    assert lines(r) == {"io_uring_setup": "ENOSYS", "io_uring_enter": "ENOSYS"}


def test_i386_int80_is_killed(compile_c: Callable[..., str]) -> None:
    # int 0x80 reaches the i386 table: getpid there is 20.  The filter kills.
    r = native(
        compile_c,
        r"""
        printf("before\n"); fflush(stdout);
        long ret;
        __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(20) : "memory");
        printf("after %ld\n", ret);
    """,
    )
    assert r.stdout == b"before\n"
    assert r.outcome is Outcome.POLICY_VIOLATION
    assert r.signal == signal.SIGSYS and r.exit_status == 120


def test_x32_syscalls_are_killed(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        r"""
        printf("before\n"); fflush(stdout);
        syscall(0x40000000 | 39);  /* x32 getpid */
        printf("after\n");
    """,
    )
    assert r.stdout == b"before\n"
    assert r.outcome is Outcome.POLICY_VIOLATION


def test_terminal_injection_is_refused(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        r"""
        char c = 'x';
        TRY("tiocsti0", ioctl(0, TIOCSTI, &c));
        TRY("tiocsti2", ioctl(2, TIOCSTI, &c));
        TRY("tiocsti_hi", syscall(SYS_ioctl, 2, (1UL << 32) | TIOCSTI, &c));
        struct termios t;
        TRY("tcgets", ioctl(1, TCGETS, &t));
        int n, pp[2];
        pipe(pp);
        write(pp[1], "abc", 3);
        TRY("fionread", ioctl(pp[0], FIONREAD, &n));
        printf("fionread_n=%d\n", n);
    """,
    )
    assert lines(r) == {
        "tiocsti0": "ENOTTY",
        "tiocsti2": "ENOTTY",
        "tiocsti_hi": "ENOTTY",
        "tcgets": "ENOTTY",
        "fionread": "ok",
        "fionread_n": "3",
    }


def test_identity_and_privileges_are_fixed(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        r"""
        TRY("setuid0", setuid(0));
        TRY("setresuid", setresuid(0, 0, 0));
        TRY("setgroups", setgroups(0, 0));
        printf("uid=%d\n", getuid());
        TRY("memfd", syscall(SYS_memfd_create, "x", 0));
        TRY("bpf", syscall(SYS_bpf, 0, 0, 0));
        TRY("userfaultfd", syscall(SYS_userfaultfd, 0));
        TRY("perf", syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));
        TRY("modify_ldt", syscall(SYS_modify_ldt, 0, 0, 0));
        TRY("unknown_500", syscall(500));
        TRY("unknown_1000", syscall(1000));
    """,
    )
    assert lines(r) == {
        "setuid0": "EPERM",
        "setresuid": "EPERM",
        "setgroups": "EPERM",
        "uid": "1000",
        "memfd": "EPERM",
        "bpf": "EPERM",
        "userfaultfd": "EPERM",
        "perf": "EPERM",
        "modify_ldt": "EPERM",
        "unknown_500": "ENOSYS",
        "unknown_1000": "ENOSYS",
    }
    names = {d.syscall for d in r.denials}
    assert {"setuid", "memfd_create", "bpf", "nr_500"} <= names
    assert all(d.reason for d in r.denials)


def test_writing_own_memory_file_fails(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        r"""
        TRY("open_mem", open("/proc/self/mem", O_RDWR));
        TRY("open_pid_mem", open("/proc/1/mem", O_WRONLY));
        char p[64]; snprintf(p, sizeof p, "/proc/%d/mem", getpid());
        TRY("open_own_pid_mem", open(p, O_WRONLY));
        TRY("open_maps", open("/proc/self/maps", O_RDONLY));
    """,
    )
    assert lines(r) == {
        "open_mem": "ENOENT",
        "open_pid_mem": "ENOENT",
        "open_own_pid_mem": "ENOENT",
        "open_maps": "ENOENT",
    }


def test_malformed_arguments_get_errors_and_the_controller_survives(
    compile_c: Callable[..., str],
) -> None:
    r = native(
        compile_c,
        r"""
        char buf[8192];
        TRY("open_null", syscall(SYS_openat, AT_FDCWD, NULL, O_RDONLY));
        TRY("open_low", syscall(SYS_openat, AT_FDCWD, (char *)1, O_RDONLY));
        TRY("open_kernel", syscall(SYS_openat, AT_FDCWD, (char *)0xffffffff81000000UL, O_RDONLY));
        TRY("open_noncanonical", syscall(SYS_openat, AT_FDCWD, (char *)0x0000900000000000UL, 0));
        /* A string running into an unmapped page. */
        char *pg = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(pg + 4096, 4096);
        memset(pg, 'a', 4096);
        TRY("open_unterminated_page", syscall(SYS_openat, AT_FDCWD, pg + 4090, O_RDONLY));
        TRY("open_too_long", syscall(SYS_openat, AT_FDCWD, pg, O_RDONLY));
        memset(buf, 'b', 5000); buf[5000] = 0;
        TRY("open_5000", open(buf, O_RDONLY));
        memset(buf, 'c', 300); buf[300] = 0;
        TRY("open_long_name", open(buf, O_RDONLY));
        TRY("stat_null_buf", syscall(SYS_newfstatat, AT_FDCWD, "/sandbox", NULL, 0));
        char *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        TRY("stat_ro_buf", syscall(SYS_newfstatat, AT_FDCWD, "/sandbox", ro, 0));
        TRY("stat_bad_flags", syscall(SYS_newfstatat, AT_FDCWD, "/sandbox", buf, 0x7777));
        TRY("stat_bad_dirfd", syscall(SYS_newfstatat, 999, "x", buf, 0));
        TRY("getcwd_small", syscall(SYS_getcwd, buf, 1));
        TRY("getcwd_null", syscall(SYS_getcwd, NULL, 4096));
        TRY("getcwd_huge", syscall(SYS_getcwd, buf, (size_t)-1));
        TRY("readlink_zero", readlink("/proc/self/exe", buf, 0));
        TRY("readlink_bad_buf", readlink("/proc/self/exe", (char *)8, 100));
        int d = open("/sandbox", O_RDONLY | O_DIRECTORY);
        TRY("getdents_bad_buf", syscall(SYS_getdents64, d, (void *)8, 1 << 30));
        TRY("getdents_tiny", syscall(SYS_getdents64, d, buf, 1));
        TRY("getdents_badfd", syscall(SYS_getdents64, 9999, buf, 100));
        TRY("getdents_file", syscall(SYS_getdents64, 0, buf, 100));
        TRY("uname_null", syscall(SYS_uname, NULL));
        TRY("fstat_badfd", syscall(SYS_fstat, -5, buf));
        TRY("openat2_bigsize", syscall(SYS_openat2, AT_FDCWD, "/x", buf, 1 << 20));
        TRY("kill_badsig", kill(getpid(), 1000));
        TRY("still_serving", open(argv[0], O_RDONLY));
        int n = readlink("/proc/self/exe", buf, sizeof buf); buf[n < 0 ? 0 : n] = 0;
        printf("exe_is_argv0=%d\n", strcmp(buf, argv[0]) == 0 && strncmp(buf, "/sandbox/", 9) == 0);
        syscall(SYS_getcwd, buf, sizeof buf);
        printf("cwd=%s\n", buf);
    """,
    )
    assert lines(r) == {
        "open_null": "EFAULT",
        "open_low": "EFAULT",
        "open_kernel": "EFAULT",
        "open_noncanonical": "EFAULT",
        "open_unterminated_page": "EFAULT",
        "open_too_long": "ENAMETOOLONG",
        "open_5000": "ENAMETOOLONG",
        "open_long_name": "ENAMETOOLONG",
        "stat_null_buf": "EFAULT",
        "stat_ro_buf": "EFAULT",
        "stat_bad_flags": "EINVAL",
        "stat_bad_dirfd": "EBADF",
        "getcwd_small": "ERANGE",
        "getcwd_null": "EFAULT",
        "getcwd_huge": "ok",
        "readlink_zero": "EINVAL",
        "readlink_bad_buf": "EFAULT",
        "getdents_bad_buf": "EFAULT",
        "getdents_tiny": "EINVAL",
        "getdents_badfd": "EBADF",
        "getdents_file": "ENOTDIR",
        "uname_null": "EFAULT",
        "fstat_badfd": "EBADF",
        "openat2_bigsize": "EINVAL",
        "kill_badsig": "EINVAL",
        "still_serving": "ok",
        "exe_is_argv0": "1",
        "cwd": "/sandbox",
    }
    assert r.ok

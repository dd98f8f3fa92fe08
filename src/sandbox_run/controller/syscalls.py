"""The syscall table: every x86-64 system call number and what happens to it.

This is the only place that decides the guest's system-call policy.  The
seccomp filter (``bpf.py``), the controller's dispatch (``dispatch.py``) and
the generated reference (``docs/syscalls.md``) are all derived from it.

Each entry has a *kind*:

``allow``
    Runs in the kernel, never reaching the controller.  Only calls that touch
    no outside resource: memory, futexes, clocks, signals to itself, and
    read/write/close on descriptors the guest already holds.
``handle``
    The kernel stops the guest and notifies the controller, whose handler of
    the same name performs the operation itself (or refuses it).
``refuse``
    Notified too, so that the refusal is logged and traced; the controller
    answers with the entry's errno.
``quiet``
    Answered with the entry's errno inside the kernel, without a log line.
    Only for benign, frequent probes (a terminal check on a pipe, say).
``kill``
    The filter kills the guest (foreign system-call ABIs only).

An entry may carry *cases*: argument tests evaluated by the filter in order,
each leading to ``allow`` or ``quiet``.  When none match, the entry's own
kind applies.  Numbers the table does not name (gaps, and anything above the
last known call) are refused with ENOSYS.
"""

from __future__ import annotations

import enum
import errno as E
from dataclasses import dataclass, field


class Kind(enum.Enum):
    ALLOW = "allow"
    HANDLE = "handle"
    REFUSE = "refuse"
    QUIET = "quiet"
    KILL = "kill"


@dataclass(frozen=True, slots=True)
class ArgTest:
    """``(args[arg] & mask) in values``, on the low 32 bits or on all 64.

    Use ``width=32`` where the kernel reads the argument as an ``int`` (file
    descriptors, pids, ioctl and fcntl commands): the kernel ignores the high
    half, so the filter must too.  Use ``width=64`` for ``unsigned long`` and
    pointer arguments.
    """

    arg: int
    values: tuple[int, ...]
    mask: int = 0xFFFF_FFFF_FFFF_FFFF
    width: int = 32


@dataclass(frozen=True, slots=True)
class Case:
    """All ``tests`` hold -> ``kind`` (``ALLOW`` or ``QUIET`` with ``errno``)."""

    tests: tuple[ArgTest, ...]
    kind: Kind
    errno: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    nr: int
    name: str
    kind: Kind
    reason: str
    errno: int = 0
    cases: tuple[Case, ...] = ()
    #: whether the controller's handler answers it (always, or in a case)
    handled: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        handled = self.kind is Kind.HANDLE or any(c.kind is Kind.HANDLE for c in self.cases)
        object.__setattr__(self, "handled", handled)

    @property
    def handler(self) -> str | None:
        return self.name if self.handled else None


# x86-64 system call names, by number (arch/x86/entry/syscalls/syscall_64.tbl).
# None marks numbers the kernel does not assign.
_NAMES: dict[int, str] = dict(
    enumerate(
        """
read write open close stat fstat lstat poll lseek mmap mprotect munmap brk
rt_sigaction rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv writev
access pipe select sched_yield mremap msync mincore madvise shmget shmat shmctl
dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile socket
connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname
getpeername socketpair setsockopt getsockopt clone fork vfork execve exit wait4
kill uname semget semop semctl shmdt msgget msgsnd msgrcv msgctl fcntl flock
fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir rename mkdir
rmdir creat link unlink symlink readlink chmod fchmod chown fchown lchown umask
gettimeofday getrlimit getrusage sysinfo times ptrace getuid syslog getgid
setuid setgid geteuid getegid setpgid getppid getpgrp setsid setreuid setregid
getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid
setfsgid getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo
rt_sigsuspend sigaltstack utime mknod uselib personality ustat statfs fstatfs
sysfs getpriority setpriority sched_setparam sched_getparam sched_setscheduler
sched_getscheduler sched_get_priority_max sched_get_priority_min
sched_rr_get_interval mlock munlock mlockall munlockall vhangup modify_ldt
pivot_root _sysctl prctl arch_prctl adjtimex setrlimit chroot sync acct
settimeofday mount umount2 swapon swapoff reboot sethostname setdomainname iopl
ioperm create_module init_module delete_module get_kernel_syms query_module
quotactl nfsservctl getpmsg putpmsg afs_syscall tuxcall security gettid
readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr
llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex
sched_setaffinity sched_getaffinity set_thread_area io_setup io_destroy
io_getevents io_submit io_cancel get_thread_area lookup_dcookie epoll_create
epoll_ctl_old epoll_wait_old remap_file_pages getdents64 set_tid_address
restart_syscall semtimedop fadvise64 timer_create timer_settime timer_gettime
timer_getoverrun timer_delete clock_settime clock_gettime clock_getres
clock_nanosleep exit_group epoll_wait epoll_ctl tgkill utimes vserver mbind
set_mempolicy get_mempolicy mq_open mq_unlink mq_timedsend mq_timedreceive
mq_notify mq_getsetattr kexec_load waitid add_key request_key keyctl ioprio_set
ioprio_get inotify_init inotify_add_watch inotify_rm_watch migrate_pages openat
mkdirat mknodat fchownat futimesat newfstatat unlinkat renameat linkat
symlinkat readlinkat fchmodat faccessat pselect6 ppoll unshare set_robust_list
get_robust_list splice tee sync_file_range vmsplice move_pages utimensat
epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime
timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2
inotify_init1 preadv pwritev rt_tgsigqueueinfo perf_event_open recvmmsg
fanotify_init fanotify_mark prlimit64 name_to_handle_at open_by_handle_at
clock_adjtime syncfs sendmmsg setns getcpu process_vm_readv process_vm_writev
kcmp finit_module sched_setattr sched_getattr renameat2 seccomp getrandom
memfd_create kexec_file_load bpf execveat userfaultfd membarrier mlock2
copy_file_range preadv2 pwritev2 pkey_mprotect pkey_alloc pkey_free statx
io_pgetevents rseq uretprobe uprobe
""".split()
    )
)
_NAMES.update(
    enumerate(
        """
pidfd_send_signal io_uring_setup io_uring_enter io_uring_register open_tree
move_mount fsopen fsconfig fsmount fspick pidfd_open clone3 close_range openat2
pidfd_getfd faccessat2 process_madvise epoll_pwait2 mount_setattr quotactl_fd
landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret
process_mrelease futex_waitv set_mempolicy_home_node cachestat fchmodat2
map_shadow_stack futex_wake futex_wait futex_requeue statmount listmount
lsm_get_self_attr lsm_set_self_attr lsm_list_modules mseal setxattrat
getxattrat listxattrat removexattrat open_tree_attr file_getattr file_setattr
listns
""".split(),
        start=424,
    )
)

#: Highest syscall number the table names; anything above is refused (ENOSYS).
MAX_NR = max(_NAMES)
#: x32 ABI marker bit in the syscall number.
X32_SYSCALL_BIT = 0x4000_0000
AUDIT_ARCH_X86_64 = 0xC000_003E

# --- argument constants the cases test -------------------------------------
AF_UNIX = 1
SOL_SOCKET = 1
IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6 = 0, 6, 17, 41
# Socket-level options any program may read: its own socket's state.
# SO_TYPE ERROR DONTROUTE BROADCAST SNDBUF RCVBUF KEEPALIVE OOBINLINE PRIORITY
# LINGER RCVLOWAT SNDLOWAT RCVTIMEO SNDTIMEO TIMESTAMP ACCEPTCONN TIMESTAMPNS
# PROTOCOL DOMAIN COOKIE RCVTIMEO_NEW SNDTIMEO_NEW, and REUSEADDR.
GETSOCKOPT_SOCKET = (
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    12,
    13,
    18,
    19,
    20,
    21,
    29,
    30,
    35,
    38,
    39,
    57,
    66,
    67,
)
SOCK_STREAM = 1
SOCK_TYPE_MASK = 0xF
FIONREAD = 0x541B
FIONBIO = 0x5421
FIONCLEX = 0x5450
FIOCLEX = 0x5451
TCGETS = 0x5401
TIOCGWINSZ = 0x5413
TIOCGPGRP = 0x540F
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW = range(8)
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_DUPFD_CLOEXEC = 1030
F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1031, 1032, 1033, 1034
PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_NAME, PR_GET_NAME = 2, 3, 15, 16
PR_GET_SECCOMP, PR_CAPBSET_READ, PR_GET_TIMERSLACK = 21, 23, 30
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 38, 39
PR_SET_VMA = 0x53564D41
PER_QUERY = 0xFFFF_FFFF
# The flags glibc's pthread_create passes to clone(2).  A thread shares
# memory, files and signal handlers; nothing outside that set is allowed.
CLONE_THREAD_REQUIRED = 0x0001_0F00  # VM | FS | FILES | SIGHAND | THREAD
CLONE_THREAD_ALLOWED = 0x003D_0F00  # + SYSVSEM | SETTLS | PARENT_SETTID | CHILD_CLEARTID


def _self_only(arg: int = 0) -> Case:
    """The call names a process by pid in ``arg``; 0 means the caller."""
    return Case((ArgTest(arg, (0,)),), Kind.ALLOW)


_ALLOW_NOTE = "runs in the kernel: touches only the guest's own memory, descriptors or time"

# --- the table -------------------------------------------------------------
# Grouped by purpose.  Every name in _NAMES appears exactly once (checked by
# tests/unit/test_syscall_table.py).

_ALLOW = {
    # memory
    "brk mmap munmap mremap mprotect madvise mincore msync "
    "pkey_mprotect pkey_alloc pkey_free membarrier mseal": "memory management of the guest itself",
    # descriptors the guest already holds
    "read write pread64 pwrite64 readv writev preadv pwritev preadv2 pwritev2 "
    "lseek close dup dup2 dup3 fsync fdatasync ftruncate fallocate fadvise64 "
    "readahead sync_file_range sendfile splice tee vmsplice copy_file_range "
    "flock recvfrom recvmsg recvmmsg shutdown getsockname getpeername "
    "close_range": ("operates on a descriptor the guest already holds"),
    # waiting and event descriptors (no outside resource)
    "poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl epoll_wait "
    "epoll_pwait epoll_pwait2 pipe pipe2 eventfd eventfd2 timerfd_create "
    "timerfd_settime timerfd_gettime signalfd signalfd4": (
        "creates or waits on guest-private descriptors"
    ),
    # futexes, threads
    "futex futex_waitv futex_wake futex_wait futex_requeue set_robust_list "
    "set_tid_address rseq arch_prctl sched_yield gettid getpid getpgrp "
    "restart_syscall": "thread bookkeeping of the guest itself",
    # time
    "gettimeofday time clock_gettime clock_getres clock_nanosleep nanosleep "
    "times getrusage getitimer setitimer alarm timer_create timer_settime "
    "timer_gettime timer_getoverrun timer_delete getcpu": "clocks and timers",
    # signals to itself
    "rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait "
    "rt_sigsuspend sigaltstack pause": "signal state of the guest itself",
    # leaving
    "exit exit_group": "ends the guest",
    # the guest's own resource limits, read only or lowered (raising past the
    # hard limit needs a capability the guest does not have)
    "getrlimit setrlimit getrandom": "own limits and kernel randomness",
    # waiting for children: there are none
    "wait4 waitid": "the guest has no children, so this only reports ECHILD",
}

_HANDLE = {
    # files: performed by the controller on the virtual filesystem
    "open openat openat2 creat": "opened by the controller in the virtual filesystem; "
    "the descriptor is injected into the guest",
    "stat lstat fstat newfstatat statx": "answered from the virtual filesystem with virtual "
    "owners, devices and inode numbers",
    "access faccessat faccessat2": "checked against the virtual filesystem",
    "readlink readlinkat": "answered from the virtual filesystem",
    "getcwd chdir fchdir": "the working directory is virtual",
    "getdents64": "directory entries are listed by the controller",
    "mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 "
    "truncate": "performed by the controller on writable mounts",
    "chmod fchmod fchmodat fchmodat2": "permission bits change on writable mounts only",
    "symlink symlinkat link linkat": "created by the controller on writable mounts; links stay "
    "within one mount, and symlinks are only ever followed inside the sandbox",
    "utime utimes futimesat utimensat": "timestamps change on writable mounts only",
    "statfs fstatfs": "answered with virtual filesystem figures",
    "umask": "the file-creation mask is virtual",
    # identity and host information
    "getuid geteuid getgid getegid getresuid getresgid getgroups getppid": (
        "the guest sees a virtual identity"
    ),
    "uname sysinfo": "answered with virtual machine figures",
    # signals and processes
    "kill tgkill tkill rt_sigqueueinfo rt_tgsigqueueinfo": (
        "allowed only when the target is the guest itself"
    ),
    "execve execveat": "only the launcher's exec of the guest itself is let through",
    # the network (docs/network.md)
    "socket": "inet sockets start in an empty network namespace; other families are refused",
    "connect": "checked against the allow-list and its pinned names; the controller "
    "connects a socket of its own and installs it over the guest's",
    "bind listen": "only loopback ports the policy lists for listening",
    "accept accept4": "performed by the controller, which counts and audits each connection",
    "sendmsg sendmmsg": "decoded by the controller: every address checked, descriptors "
    "(SCM_RIGHTS) and other control messages refused",
    "setsockopt": "only listed options, performed by the controller (which replays them "
    "on the socket it connects)",
}

_REFUSE: dict[str, tuple[int, str]] = {}


def _refuse(names: str, err: int, reason: str) -> None:
    for n in names.split():
        _REFUSE[n] = (err, reason)


_refuse(
    "fork vfork clone3",
    E.EPERM,
    "creating processes is not allowed",
)
_REFUSE["clone3"] = (
    E.ENOSYS,
    "clone3 passes its flags in memory the filter cannot inspect; callers fall back to clone(2)",
)
_refuse(
    "ptrace process_vm_readv process_vm_writev kcmp process_madvise process_mrelease "
    "pidfd_open pidfd_getfd pidfd_send_signal",
    E.EPERM,
    "inspecting or signalling other processes is not allowed",
)
_refuse("mknod mknodat", E.EPERM, "special files (devices, FIFOs, sockets) cannot be created")
_refuse("chown fchown lchown fchownat", E.EPERM, "file ownership is virtual and cannot change")
_refuse(
    "setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr llistxattr "
    "flistxattr removexattr lremovexattr fremovexattr setxattrat getxattrat listxattrat "
    "removexattrat file_getattr file_setattr",
    E.EOPNOTSUPP,
    "extended attributes are not supported",
)
_refuse(
    "inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_init fanotify_mark",
    E.ENOSYS,
    "filesystem watches are not supported",
)
_refuse("name_to_handle_at open_by_handle_at", E.EPERM, "file handles bypass path confinement")
_refuse(
    "setuid setgid setreuid setregid setresuid setresgid setfsuid setfsgid setgroups "
    "capset setpgid setsid",
    E.EPERM,
    "the guest's identity is fixed",
)
_refuse("capget", E.EPERM, "the guest has no capabilities to report")
_refuse(
    "mount umount2 pivot_root chroot mount_setattr open_tree open_tree_attr move_mount "
    "fsopen fsconfig fsmount fspick statmount listmount listns unshare setns",
    E.EPERM,
    "mounts and namespaces belong to the host",
)
_refuse(
    "swapon swapoff reboot sethostname setdomainname settimeofday clock_settime adjtimex "
    "clock_adjtime acct syslog vhangup quotactl quotactl_fd sync syncfs iopl ioperm "
    "init_module finit_module delete_module kexec_load kexec_file_load bpf "
    "perf_event_open lookup_dcookie uselib personality",
    E.EPERM,
    "administers the host",
)
_refuse("userfaultfd", E.EPERM, "userfaultfd widens kernel race windows")
_refuse(
    "io_uring_setup io_uring_enter io_uring_register",
    E.ENOSYS,
    "io_uring performs system calls the filter never sees",
)
_refuse(
    "io_setup io_destroy io_getevents io_submit io_cancel io_pgetevents",
    E.ENOSYS,
    "asynchronous I/O is not supported",
)
_refuse(
    "shmget shmat shmctl shmdt semget semop semctl semtimedop msgget msgsnd msgrcv msgctl "
    "mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr",
    E.EPERM,
    "System V and POSIX IPC objects are shared with the host",
)
_refuse("add_key request_key keyctl", E.EPERM, "kernel keyrings are shared with the host")
_refuse(
    "seccomp",
    E.EPERM,
    "a guest-installed filter with its own listener could answer its own notifications",
)
_refuse(
    "modify_ldt set_thread_area get_thread_area",
    E.EPERM,
    "segment tables are not needed by 64-bit code",
)
_refuse(
    "mlock munlock mlockall munlockall mlock2 mbind set_mempolicy get_mempolicy migrate_pages "
    "move_pages set_mempolicy_home_node remap_file_pages memfd_secret map_shadow_stack "
    "memfd_create",
    E.EPERM,
    "memory placement and locking are not granted",
)
_refuse("ioprio_set ioprio_get", E.EPERM, "I/O priorities can name other processes")
_refuse(
    "landlock_create_ruleset landlock_add_rule landlock_restrict_self lsm_get_self_attr "
    "lsm_set_self_attr lsm_list_modules",
    E.ENOSYS,
    "security modules are not exposed",
)
_refuse("getdents", E.ENOSYS, "the legacy call is not provided; use getdents64")
_refuse("cachestat", E.ENOSYS, "page-cache state is not exposed")
_refuse("ustat sysfs _sysctl", E.ENOSYS, "obsolete interface")
_refuse("uretprobe uprobe", E.ENOSYS, "kernel-internal trampolines")
_refuse(
    "create_module get_kernel_syms query_module nfsservctl getpmsg putpmsg afs_syscall "
    "tuxcall security vserver epoll_ctl_old epoll_wait_old",
    E.ENOSYS,
    "not implemented by Linux",
)

# Entries whose filter tests arguments.  The entry's kind applies when no case
# matches.
_WITH_CASES: dict[str, Entry] = {}


def _cased(name: str, kind: Kind, err: int, reason: str, *cases: Case) -> None:
    _WITH_CASES[name] = Entry(-1, name, kind, reason, err, cases)


_cased(
    "ioctl",
    Kind.REFUSE,
    E.ENOTTY,
    "only descriptor-flag and byte-count requests are allowed",
    Case((ArgTest(1, (FIONREAD, FIONBIO, FIOCLEX, FIONCLEX), mask=0xFFFF_FFFF),), Kind.ALLOW),
    # Terminal probes: the guest's streams are pipes, so the true answer is ENOTTY.
    Case((ArgTest(1, (TCGETS, TIOCGWINSZ, TIOCGPGRP), mask=0xFFFF_FFFF),), Kind.QUIET, E.ENOTTY),
)
_cased(
    "fcntl",
    Kind.REFUSE,
    E.EINVAL,
    "only descriptor flags, locks, seals and pipe sizes; no signal-delivery or lease commands",
    Case(
        (
            ArgTest(
                1,
                (
                    F_DUPFD,
                    F_GETFD,
                    F_SETFD,
                    F_GETFL,
                    F_SETFL,
                    F_GETLK,
                    F_SETLK,
                    F_SETLKW,
                    F_OFD_GETLK,
                    F_OFD_SETLK,
                    F_OFD_SETLKW,
                    F_DUPFD_CLOEXEC,
                    F_GETPIPE_SZ,
                    F_ADD_SEALS,
                    F_GET_SEALS,
                ),
                mask=0xFFFF_FFFF,
            ),
        ),
        Kind.ALLOW,
    ),
)
_cased(
    "clone",
    Kind.REFUSE,
    E.EPERM,
    "only threads may be created, not processes",
    Case(
        (
            ArgTest(0, (0,), mask=~CLONE_THREAD_ALLOWED & 0xFFFF_FFFF_FFFF_FFFF, width=64),
            ArgTest(0, (CLONE_THREAD_REQUIRED,), mask=CLONE_THREAD_REQUIRED, width=64),
        ),
        Kind.ALLOW,
    ),
)
_cased(
    "prctl",
    Kind.REFUSE,
    E.EINVAL,
    "only thread names and read-only queries are allowed",
    Case(
        (
            ArgTest(
                0,
                (
                    PR_GET_PDEATHSIG,
                    PR_GET_DUMPABLE,
                    PR_SET_NAME,
                    PR_GET_NAME,
                    PR_GET_SECCOMP,
                    PR_CAPBSET_READ,
                    PR_GET_TIMERSLACK,
                    PR_SET_NO_NEW_PRIVS,
                    PR_GET_NO_NEW_PRIVS,
                    PR_SET_VMA,
                ),
                mask=0xFFFF_FFFF,
            ),
        ),
        Kind.ALLOW,
    ),
)
_cased(
    "socketpair",
    Kind.REFUSE,
    E.EACCES,
    "only connected unix stream pairs (used by asyncio)",
    Case(
        (ArgTest(0, (AF_UNIX,), mask=0xFFFF_FFFF), ArgTest(1, (SOCK_STREAM,), mask=SOCK_TYPE_MASK)),
        Kind.ALLOW,
    ),
)
_cased(
    "sendto",
    Kind.HANDLE,
    0,
    "with an address: checked against the allow-list like a connect",
    Case((ArgTest(4, (0,), width=64),), Kind.ALLOW),
)
_cased(
    "getsockopt",
    Kind.REFUSE,
    E.ENOPROTOOPT,
    "socket-level options that name other processes (SO_PEERCRED, SO_PEERPIDFD ...) are refused",
    Case((ArgTest(1, (IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6)),), Kind.ALLOW),
    Case((ArgTest(1, (SOL_SOCKET,)), ArgTest(2, GETSOCKOPT_SOCKET)), Kind.ALLOW),
)
for _name in (
    "prlimit64",
    "get_robust_list",
    "getpgid",
    "getsid",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_getattr",
    "sched_setattr",
    "sched_rr_get_interval",
):
    _cased(_name, Kind.REFUSE, E.EPERM, "may name the guest itself (pid 0) only", _self_only())
_cased("getpriority", Kind.REFUSE, E.EPERM, "may name the guest itself only", _self_only(1))
_cased("setpriority", Kind.REFUSE, E.EPERM, "may name the guest itself only", _self_only(1))
_cased("sched_get_priority_max", Kind.ALLOW, 0, "a constant of the scheduler")
_cased("sched_get_priority_min", Kind.ALLOW, 0, "a constant of the scheduler")


def _build() -> tuple[Entry, ...]:
    entries: dict[str, Entry] = {}

    def add(name: str, entry: Entry) -> None:
        if name in entries:
            raise ValueError(f"syscall {name} listed twice in the table")
        if name not in _NR_BY_NAME:
            raise ValueError(f"unknown syscall name {name!r} in the table")
        entries[name] = entry

    for names, reason in _ALLOW.items():
        for n in names.split():
            add(n, Entry(_NR_BY_NAME[n], n, Kind.ALLOW, reason))
    for names, reason in _HANDLE.items():
        for n in names.split():
            add(n, Entry(_NR_BY_NAME[n], n, Kind.HANDLE, reason))
    for n, (err, reason) in _REFUSE.items():
        add(n, Entry(_NR_BY_NAME[n], n, Kind.REFUSE, reason, err))
    for n, e in _WITH_CASES.items():
        add(n, Entry(_NR_BY_NAME[n], n, e.kind, e.reason, e.errno, e.cases))

    table: list[Entry] = []
    for nr in range(MAX_NR + 1):
        name = _NAMES.get(nr)
        if name is None:
            table.append(
                Entry(nr, f"nr_{nr}", Kind.REFUSE, "no system call has this number", E.ENOSYS)
            )
        elif name not in entries:
            raise ValueError(f"syscall {name} ({nr}) has no entry in the table")
        else:
            table.append(entries[name])
    return tuple(table)


_NR_BY_NAME = {name: nr for nr, name in _NAMES.items()}

#: The table, indexed by syscall number: ``TABLE[nr].nr == nr``.
TABLE: tuple[Entry, ...] = _build()

#: Calls that run in the kernel, except when the policy grants network
#: access: then the controller sees them first (and lets them continue), to
#: read the traffic counters of the sockets they are about to close.
NETWORK_HANDLED: dict[str, str] = {
    name: "with network access: the controller first reads the byte counts of sockets "
    "it closes, then lets it run"
    for name in ("close", "dup2", "dup3", "close_range", "exit", "exit_group")
}


#: Calls that run in the kernel, except on the channel descriptor of a guest
#: started through the bootstrap: there the controller carries them, so that
#: a message and its answer pass by the seccomp hand-over (which keeps both
#: on one CPU) rather than by a socket (a cross-CPU wake-up each way, about
#: 70 µs on these VMs).  The channel's number is the guest's RLIMIT_NOFILE,
#: the first number it can never give a descriptor of its own; other
#: descriptors are not affected.
CHANNEL_HANDLED: dict[str, str] = {
    "read": "on the bootstrap's channel descriptor: the controller hands over its next message",
    "write": "on the bootstrap's channel descriptor: the controller takes the message",
}


def _variant(network: bool, channel_fd: int | None) -> tuple[Entry, ...]:
    out = list(TABLE)
    names = [*(NETWORK_HANDLED if network else ()), *(CHANNEL_HANDLED if channel_fd else ())]
    for name in names:
        e = out[_NR_BY_NAME[name]]
        if e.kind is not Kind.ALLOW or e.cases:
            raise ValueError(f"{name}: only plain 'allow' entries can be handled in a variant")
        if name in CHANNEL_HANDLED and channel_fd is not None:
            on_channel = Case((ArgTest(0, (channel_fd,)),), Kind.HANDLE)
            out[e.nr] = Entry(e.nr, name, Kind.ALLOW, e.reason, 0, (on_channel,))
        else:
            out[e.nr] = Entry(e.nr, name, Kind.HANDLE, NETWORK_HANDLED[name])
    return tuple(out)


#: The table for a guest the policy grants network access (not bootstrapped).
NETWORK_TABLE: tuple[Entry, ...] = _variant(True, None)
_VARIANTS: dict[tuple[bool, int | None], tuple[Entry, ...]] = {
    (False, None): TABLE,
    (True, None): NETWORK_TABLE,
}


def table_for(network: bool, channel_fd: int | None = None) -> tuple[Entry, ...]:
    """The table for a guest: with network access, and with the bootstrap's
    channel at descriptor ``channel_fd``."""
    key = (network, channel_fd)
    table = _VARIANTS.get(key)
    if table is None:
        table = _VARIANTS[key] = _variant(network, channel_fd)
    return table


def variants() -> list[tuple[Entry, ...]]:
    """One table of each kind a guest may get (the first is ``TABLE``)."""
    return [table_for(n, c) for n in (False, True) for c in (None, 256)]


#: Syscall numbers by name.
NR: dict[str, int] = dict(_NR_BY_NAME)
#: Reason given for numbers above MAX_NR.
UNKNOWN_REASON = "no system call has this number"


def entry_for(nr: int) -> Entry:
    """The entry for ``nr``; numbers outside the table are refused with ENOSYS."""
    if 0 <= nr <= MAX_NR:
        return TABLE[nr]
    return Entry(nr, f"nr_{nr}", Kind.REFUSE, UNKNOWN_REASON, E.ENOSYS)


def name_of(nr: int) -> str:
    return entry_for(nr).name

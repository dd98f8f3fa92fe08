"""Hostile native guests: build a C program from a body of statements, run it
in the sandbox, and read back its ``name=result`` lines."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import sandbox_run

PRELUDE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const char *ename(int e) {
    static char buf[32];
    switch (e) {
    case 0: return "ok";
#define N(x) case x: return #x;
    N(EPERM) N(ENOENT) N(EACCES) N(EFAULT) N(EINVAL) N(ENOSYS) N(EBADF) N(ENOTTY)
    N(ENAMETOOLONG) N(ERANGE) N(ENOTDIR) N(ELOOP) N(EROFS) N(ESRCH) N(EXDEV) N(E2BIG)
    N(EAGAIN) N(ENOMEM) N(EMFILE) N(EPIPE) N(EMSGSIZE) N(ENOTSOCK) N(EDESTADDRREQ)
    N(EPROTONOSUPPORT) N(ENOPROTOOPT) N(EOPNOTSUPP) N(EAFNOSUPPORT) N(EADDRNOTAVAIL)
    N(ENETUNREACH) N(ECONNREFUSED) N(EISCONN) N(ENOTCONN) N(EINPROGRESS) N(EALREADY)
    N(ENOBUFS) N(ECONNABORTED) N(ECONNRESET)
#undef N
    }
    snprintf(buf, sizeof buf, "errno%d", e);
    return buf;
}
/* Report a raw syscall result: >= 0 is ok, -1 reports errno. */
#define TRY(name, expr) do { errno = 0; long _r = (long)(expr); \
    printf("%s=%s\n", name, _r < 0 ? ename(errno) : "ok"); fflush(stdout); } while (0)
"""


def native(
    compile_c: Callable[..., str],
    body: str,
    *,
    argv: tuple[str, ...] = (),
    prelude_extra: str = "",
    link_flags: tuple[str, ...] = (),
    **kw: object,
) -> sandbox_run.Result:
    """Compile ``body`` (statements of ``main``) and run it as the guest."""
    main = "int main(int argc, char **argv) {\n" + textwrap.dedent(body) + "\nreturn 0;\n}\n"
    exe = compile_c(PRELUDE + prelude_extra + main, *link_flags)
    return sandbox_run.run_exec(exe, argv, **kw)  # type: ignore[arg-type]


def lines(r: sandbox_run.Result) -> dict[str, str]:
    out = {}
    for line in r.stdout.decode().splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out

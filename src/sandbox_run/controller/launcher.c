/*
 * sandbox-run launcher: the small, single-threaded stage between the
 * controller and the guest program.
 *
 * The controller starts this program with a clean environment, the guest's
 * standard streams already in place, and three extra descriptors:
 *
 *   argv[1]  CONFIG_FD  read end of a pipe holding the launch configuration
 *   argv[2]  SYNC_FD    write end of a pipe back to the controller
 *   argv[3]  EXEC_FD    O_PATH descriptor of the program to execute
 *   argv[4]  CHANNEL    "SRC:DST": descriptor SRC, the guest's end of the channel
 *                       to the controller, becomes descriptor DST in the guest
 *                       (above the descriptors it may ever open), or "-1"
 *   argv[5..]           the guest's argv (argv[5] is the guest's argv[0])
 *
 * It applies everything that must hold before the guest's first instruction
 * (rlimits, dropped privileges, no_new_privs, the seccomp filter), reports the
 * number of the seccomp listener descriptor on SYNC_FD so the controller can
 * take it with pidfd_getfd(2), then execs the guest.  The exec itself is the
 * first notified system call; the controller lets it through.
 *
 * Rules this file keeps:
 *   - After the filter is loaded it makes no notified call other than the
 *     final execveat (write(2) to an inherited pipe runs in the kernel).
 *   - It never reads untrusted input: the configuration comes from the
 *     controller.
 *   - On any failure it writes one error record to SYNC_FD and exits 127.
 *
 * Configuration layout (native endianness, packed, see kernel.py):
 *   u32 magic 'SBXL'   u32 version (1)   u32 flags
 *   u32 uid            u32 gid           u32 n_rlimits
 *   n_rlimits * { u32 resource, u32 pad, u64 soft, u64 hard }
 *   u32 n_insns        u32 pad
 *   n_insns * struct sock_filter (8 bytes each)
 *
 * Sync records written to SYNC_FD (u32 pairs):
 *   { 0, listener_fd }            ready; the next call is the exec
 *   { step, errno }               failure at `step` (see enum below)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CONFIG_MAGIC 0x4c584253u /* "SBXL" little-endian */
#define CONFIG_VERSION 1u
#define MAX_CONFIG (1u << 20)
#define MAX_RLIMITS 32u
#define MAX_INSNS 4096u

#define FLAG_DROP_PRIVILEGES 1u

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum step {
    STEP_READY = 0,
    STEP_USAGE = 1,
    STEP_CONFIG = 2,
    STEP_RLIMIT = 3,
    STEP_PRIVILEGES = 4,
    STEP_NO_NEW_PRIVS = 5,
    STEP_DEATHSIG = 6,
    STEP_CLOEXEC = 7,
    STEP_SECCOMP = 8,
    STEP_EXEC = 9,
    STEP_CHANNEL = 10,
};


static int sync_fd = -1;

static void report(uint32_t step, uint32_t value) {
    uint32_t rec[2] = {step, value};
    if (sync_fd >= 0) {
        ssize_t ignored = write(sync_fd, rec, sizeof rec);
        (void)ignored;
    }
}

static void fail(uint32_t step) {
    report(step, (uint32_t)errno);
    _exit(127);
}

static int parse_fd(const char *s) {
    char *end = NULL;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 1000000) {
        return -1;
    }
    return (int)v;
}

static size_t read_all(int fd, unsigned char *buf, size_t cap) {
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail(STEP_CONFIG);
        }
        if (n == 0) {
            return got;
        }
        got += (size_t)n;
        if (got == cap) {
            errno = EFBIG;
            fail(STEP_CONFIG);
        }
    }
}

static uint32_t get_u32(const unsigned char *buf, size_t len, size_t *off) {
    uint32_t v;
    if (*off + 4 > len) {
        errno = EINVAL;
        fail(STEP_CONFIG);
    }
    memcpy(&v, buf + *off, 4);
    *off += 4;
    return v;
}

static uint64_t get_u64(const unsigned char *buf, size_t len, size_t *off) {
    uint64_t v;
    if (*off + 8 > len) {
        errno = EINVAL;
        fail(STEP_CONFIG);
    }
    memcpy(&v, buf + *off, 8);
    *off += 8;
    return v;
}

int main(int argc, char **argv) {
    static unsigned char config[MAX_CONFIG];
    size_t len, off = 0;
    uint32_t flags, uid, gid, n_rlimits, n_insns, i;
    int config_fd, exec_fd, channel_fd = -1, guest_channel_fd = -1, listener;
    pid_t parent = getppid();
    struct sock_fprog prog;

    if (argc < 6) {
        _exit(127);
    }
    sync_fd = parse_fd(argv[2]);
    config_fd = parse_fd(argv[1]);
    exec_fd = parse_fd(argv[3]);
    if (strcmp(argv[4], "-1") != 0) {
        char *colon = strchr(argv[4], ':');
        if (colon == NULL) {
            errno = EINVAL;
            fail(STEP_USAGE);
        }
        *colon = '\0';
        channel_fd = parse_fd(argv[4]);
        guest_channel_fd = parse_fd(colon + 1);
        if (channel_fd < 3 || guest_channel_fd <= 5 || guest_channel_fd == channel_fd) {
            errno = EINVAL;
            fail(STEP_USAGE);
        }
    }
    if (sync_fd < 3 || config_fd < 3 || exec_fd < 3) {
        errno = EINVAL;
        fail(STEP_USAGE);
    }
    /* Before the rlimits: the channel's number is above RLIMIT_NOFILE, where
     * the guest can never make a descriptor of its own. */
    if (channel_fd >= 0 && dup2(channel_fd, guest_channel_fd) != guest_channel_fd) {
        fail(STEP_CHANNEL);
    }

    len = read_all(config_fd, config, sizeof config);
    close(config_fd);
    if (get_u32(config, len, &off) != CONFIG_MAGIC ||
        get_u32(config, len, &off) != CONFIG_VERSION) {
        errno = EINVAL;
        fail(STEP_CONFIG);
    }
    flags = get_u32(config, len, &off);
    uid = get_u32(config, len, &off);
    gid = get_u32(config, len, &off);
    n_rlimits = get_u32(config, len, &off);
    if (n_rlimits > MAX_RLIMITS) {
        errno = EINVAL;
        fail(STEP_CONFIG);
    }
    for (i = 0; i < n_rlimits; i++) {
        struct rlimit rl;
        uint32_t resource = get_u32(config, len, &off);
        (void)get_u32(config, len, &off);
        rl.rlim_cur = get_u64(config, len, &off);
        rl.rlim_max = get_u64(config, len, &off);
        if (setrlimit((int)resource, &rl) != 0) {
            fail(STEP_RLIMIT);
        }
    }
    n_insns = get_u32(config, len, &off);
    (void)get_u32(config, len, &off);
    if (n_insns == 0 || n_insns > MAX_INSNS || off + (size_t)n_insns * 8 != len) {
        errno = EINVAL;
        fail(STEP_CONFIG);
    }
    prog.len = (unsigned short)n_insns;
    prog.filter = (struct sock_filter *)(config + off);

    if (flags & FLAG_DROP_PRIVILEGES) {
        /* Defence in depth when the controller runs as root: the guest gets
         * an unprivileged identity and no capabilities. */
        if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
            setresuid(uid, uid, uid) != 0) {
            fail(STEP_PRIVILEGES);
        }
    }
    /* Die with the controller.  Set after the credential change, which
     * clears it; the getppid check closes the race with an early exit. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fail(STEP_DEATHSIG);
    }
    if (getppid() != parent) {
        _exit(127);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fail(STEP_NO_NEW_PRIVS);
    }
    /* Nothing but the standard streams (and the channel) survives the exec. */
    if (guest_channel_fd < 0) {
        if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
            fail(STEP_CLOEXEC);
        }
    } else if (syscall(SYS_close_range, 3u, (unsigned)guest_channel_fd - 1, CLOSE_RANGE_CLOEXEC) != 0 ||
               syscall(SYS_close_range, (unsigned)guest_channel_fd + 1, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
        fail(STEP_CLOEXEC);
    }

    listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                            SECCOMP_FILTER_FLAG_NEW_LISTENER |
                                SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                            &prog);
    if (listener < 0) {
        fail(STEP_SECCOMP);
    }
    /* From here on: only write(2) (kernel-allowed) and the exec. */
    report(STEP_READY, (uint32_t)listener);

    syscall(SYS_execveat, exec_fd, "", &argv[5], environ, AT_EMPTY_PATH);
    fail(STEP_EXEC);
    return 127;
}

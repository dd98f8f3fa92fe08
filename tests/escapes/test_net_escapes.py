"""Hostile native guests against the network allow-list.

Each program makes raw socket calls, as a fully compromised interpreter
would, and prints one ``name=<result>`` line per attempt (``ok``, a number,
or the errno name).  The tests compare those lines exactly, and check on
real local servers that nothing unlisted was ever reached.
"""

from __future__ import annotations

import errno
import socket
import textwrap
from collections.abc import Callable

import hostile
from hostile import lines

import sandbox_run
from net_servers import DnsServer, TcpServer, UdpServer
from sandbox_run import NetworkPolicy, Policy
from sandbox_run.controller import kernel

#: Socket-address helpers for the programs below (on top of hostile.PRELUDE).
NET_HELPERS = r"""
#define SHOW(name, value) do { printf("%s=%ld\n", name, (long)(value)); fflush(stdout); } while (0)

static struct sockaddr_in in4(const char *ip, int port) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}
static struct sockaddr_in6 in6(const char *ip, int port) {
    struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}
#define SA(x) ((struct sockaddr *)&(x))
"""


def native(
    compile_c: Callable[..., str], body: str, net: NetworkPolicy, *, prologue: str = ""
) -> sandbox_run.Result:
    return hostile.native(
        compile_c,
        body,
        prelude_extra=NET_HELPERS + textwrap.dedent(prologue),
        link_flags=("-pthread",),
        policy=Policy(network=net),
    )


def test_socket_families_and_types(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        r"""
        TRY("tcp", socket(AF_INET, SOCK_STREAM, 0));
        TRY("udp6", socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP));
        TRY("raw", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
        TRY("raw6", socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
        TRY("raw_tcp", socket(AF_INET, SOCK_RAW, IPPROTO_TCP));
        TRY("packet", socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
        TRY("packet_dgram", socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP)));
        TRY("unix", socket(AF_UNIX, SOCK_STREAM, 0));
        TRY("unix_dgram", socket(AF_UNIX, SOCK_DGRAM, 0));
        TRY("netlink", socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
        TRY("vsock", socket(40, SOCK_STREAM, 0));
        TRY("alg", socket(38, SOCK_SEQPACKET, 0));
        TRY("ping", socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
        TRY("sctp", socket(AF_INET, SOCK_STREAM, 132));
        TRY("mptcp", socket(AF_INET, SOCK_STREAM, 262));
        TRY("seqpacket", socket(AF_INET, SOCK_SEQPACKET, 0));
        TRY("stream_udp", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
        TRY("bad_flags", socket(AF_INET, SOCK_STREAM | 0x100000, 0));
        int sv[2];
        TRY("pair_dgram", socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
        TRY("pair_inet", socketpair(AF_INET, SOCK_STREAM, 0, sv));
        """,
        NetworkPolicy(allow=("127.0.0.5:1",)),
    )
    assert lines(r) == {
        "tcp": "ok",
        "udp6": "ok",
        "raw": "EPERM",
        "raw6": "EPERM",
        "raw_tcp": "EPERM",
        "packet": "EPERM",
        "packet_dgram": "EPERM",
        "unix": "EACCES",
        "unix_dgram": "EACCES",
        "netlink": "EAFNOSUPPORT",
        "vsock": "EAFNOSUPPORT",
        "alg": "EAFNOSUPPORT",
        "ping": "EACCES",
        "sctp": "EPROTONOSUPPORT",
        "mptcp": "EPROTONOSUPPORT",
        "seqpacket": "EPROTONOSUPPORT",
        "stream_udp": "EPROTONOSUPPORT",
        "bad_flags": "EINVAL",
        "pair_dgram": "EACCES",
        "pair_inet": "EACCES",
    }
    refused = [e.reason for e in r.audit if e.action == "socket"]
    assert len(refused) == 15 and all(not e.allowed for e in r.audit)


def test_udp_to_unlisted_destinations(compile_c: Callable[..., str]) -> None:
    with (
        UdpServer("127.0.0.5") as ok,
        UdpServer("127.0.0.5") as other,
        UdpServer("127.0.0.6") as far,
    ):
        r = native(
            compile_c,
            rf"""
            struct sockaddr_in good = in4("127.0.0.5", {ok.port});
            struct sockaddr_in bad = in4("127.0.0.5", {other.port});
            struct sockaddr_in bad2 = in4("127.0.0.6", {far.port});
            struct sockaddr_in bcast = in4("255.255.255.255", {ok.port});
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            int one = 1;
            setsockopt(s, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
            TRY("first_unlisted", sendto(s, "a", 1, 0, SA(bad), sizeof bad));
            TRY("broadcast", sendto(s, "a", 1, 0, SA(bcast), sizeof bcast));
            TRY("allowed", sendto(s, "b", 1, 0, SA(good), sizeof good));
            /* Now connected to the allowed peer: a different address is checked too. */
            TRY("connected_unlisted", sendto(s, "c", 1, 0, SA(bad2), sizeof bad2));
            TRY("connect_unlisted", connect(s, SA(bad), sizeof bad));
            TRY("write_connected", write(s, "d", 1));
            struct iovec iov = {{ "e", 1 }};
            struct msghdr m = {{ .msg_name = &bad2, .msg_namelen = sizeof bad2,
                                 .msg_iov = &iov, .msg_iovlen = 1 }};
            TRY("sendmsg_unlisted", sendmsg(s, &m, 0));
            struct iovec iovs[2] = {{ {{ "f", 1 }}, {{ "g", 1 }} }};
            struct mmsghdr mm[2] = {{
                {{ .msg_hdr = {{ .msg_name = &good, .msg_namelen = sizeof good,
                               .msg_iov = &iovs[0], .msg_iovlen = 1 }} }},
                {{ .msg_hdr = {{ .msg_name = &bad, .msg_namelen = sizeof bad,
                               .msg_iov = &iovs[1], .msg_iovlen = 1 }} }},
            }};
            SHOW("sendmmsg_sent", sendmmsg(s, mm, 2, 0));
            SHOW("sendmmsg_len0", mm[0].msg_len);
            int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
            char mapped[64]; snprintf(mapped, sizeof mapped, "::ffff:127.0.0.5");
            struct sockaddr_in6 m_bad = in6(mapped, {other.port});
            struct sockaddr_in6 m_good = in6(mapped, {ok.port});
            TRY("mapped_unlisted", sendto(s6, "h", 1, 0, SA(m_bad), sizeof m_bad));
            TRY("mapped_allowed", sendto(s6, "i", 1, 0, SA(m_good), sizeof m_good));
            """,
            NetworkPolicy(allow=(f"udp:127.0.0.5:{ok.port}",)),
        )
    assert lines(r) == {
        "first_unlisted": "EACCES",
        "broadcast": "EACCES",
        "allowed": "ok",
        "connected_unlisted": "EACCES",
        "connect_unlisted": "EACCES",
        "write_connected": "ok",
        "sendmsg_unlisted": "EACCES",
        "sendmmsg_sent": "1",
        "sendmmsg_len0": "1",
        "mapped_unlisted": "EACCES",
        "mapped_allowed": "ok",
    }
    assert sorted(ok.datagrams) == [b"b", b"d", b"f", b"i"]
    assert other.datagrams == [] and far.datagrams == []
    denied = [(e.action, e.port) for e in r.audit if not e.allowed]
    assert denied == [
        ("send", other.port),
        ("send", ok.port),
        ("send", far.port),
        ("connect", other.port),
        ("send", far.port),
        ("send", other.port),
        ("send", other.port),
    ]


def test_racing_the_address_after_the_check(compile_c: Callable[..., str]) -> None:
    # A second thread flips the sockaddr between an allowed and an unlisted
    # destination while the first connects in a loop.  The controller reads
    # the address once and connects to what it checked: the unlisted server
    # must never see a connection, whatever the interleaving (a torn read can
    # only mix the two, and every mix is unlisted).
    with (
        TcpServer("127.0.0.5", handler=lambda c: None) as good,
        TcpServer("127.0.0.6", handler=lambda c: None) as bad,
    ):
        r = native(
            compile_c,
            rf"""
            shared = in4("127.0.0.5", {good.port});  /* a valid address from the start */
            pthread_t t;
            pthread_create(&t, 0, flipper, 0);
            int ok = 0, refused = 0, other = 0;
            /* Until both outcomes were seen many times: the race really ran. */
            for (int i = 0; i < 20000 && (ok < 50 || refused < 50); i++) {{
                int s = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(s, (struct sockaddr *)&shared, sizeof shared) == 0) ok++;
                else if (errno == EACCES) refused++;
                else {{ other++; if (other == 1) printf("first_other=%s\n", ename(errno)); }}
                close(s);
            }}
            stop = 1;
            pthread_join(t, 0);
            SHOW("ok_some", ok >= 50);
            SHOW("refused_some", refused >= 50);
            SHOW("other", other);
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{good.port}",), max_connections=1000),
            prologue=rf"""
            static volatile struct sockaddr_in shared;  /* volatile: every store happens */
            static volatile int stop;
            static void *flipper(void *arg) {{
                struct sockaddr_in a = in4("127.0.0.5", {good.port});
                struct sockaddr_in b = in4("127.0.0.6", {bad.port});
                while (!stop) {{
                    shared = a;
                    for (volatile int i = 0; i < 50; i++) ;
                    shared = b;
                    for (volatile int i = 0; i < 50; i++) ;
                }}
                return 0;
            }}
            """,
        )
    assert lines(r) == {"ok_some": "1", "refused_some": "1", "other": "0"}
    assert bad.accepted == 0
    assert good.accepted == sum(e.allowed for e in r.audit if e.action == "connect")


def test_connect_after_a_dns_change(compile_c: Callable[..., str]) -> None:
    with TcpServer("127.0.0.5") as first, TcpServer("127.0.0.6") as victim, DnsServer() as dns:
        dns.answers = {"moving.test": ["127.0.0.5"]}
        dns.rebind = {"moving.test": ["127.0.0.6"]}
        net = NetworkPolicy(
            # Both loopback addresses are listed (for port 1 only), so the
            # name may be pinned to either; the name allows every port.
            allow=("moving.test:1-65535", "127.0.0.5:1", "127.0.0.6:1"),
            resolver=dns.address,
        )
        body = rf"""
            for (int round = 0; round < 2; round++) {{
                struct addrinfo hints = {{ .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }};
                struct addrinfo *res;
                int e = getaddrinfo("moving.test", 0, &hints, &res);
                char ip[32] = "none";
                if (e == 0) inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr,
                                      ip, sizeof ip);
                printf("lookup%d=%s\n", round, ip);
                usleep(100000);
            }}
            struct sockaddr_in v = in4("127.0.0.6", {victim.port});
            int s = socket(AF_INET, SOCK_STREAM, 0);
            TRY("connect_new_address", connect(s, SA(v), sizeof v));
            struct sockaddr_in f = in4("127.0.0.5", {first.port});
            s = socket(AF_INET, SOCK_STREAM, 0);
            TRY("connect_pinned", connect(s, SA(f), sizeof f));
        """
        r = native(compile_c, body, net)
        asked_in_first_run = dns.questions.count("moving.test")
        again = native(compile_c, body, net)  # a new sandbox sees the new answer
    assert lines(r) == {
        "lookup0": "127.0.0.5",
        "lookup1": "127.0.0.5",
        "connect_new_address": "EACCES",
        "connect_pinned": "ok",
    }
    assert asked_in_first_run == 2  # A and AAAA, once: the pin answered the rest
    assert lines(again)["lookup0"] == "127.0.0.6"
    assert victim.accepted == 1 and first.accepted == 1  # the second run's pinned connect
    refusal = next(e for e in r.audit if e.action == "connect" and not e.allowed)
    assert refusal.reason == f"127.0.0.6:{victim.port} is listed only as 127.0.0.6:1"


def test_descriptor_passing_is_refused(compile_c: Callable[..., str]) -> None:
    with TcpServer("127.0.0.5", handler=lambda c: c.recv(10)) as srv:
        r = native(
            compile_c,
            rf"""
            int sv[2];
            socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
            int victim = open(argv[0], O_RDONLY);
            char cbuf[CMSG_SPACE(sizeof(int))];
            memset(cbuf, 0, sizeof cbuf);
            struct iovec iov = {{ "x", 1 }};
            struct msghdr m = {{ .msg_iov = &iov, .msg_iovlen = 1,
                                 .msg_control = cbuf, .msg_controllen = sizeof cbuf }};
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &victim, sizeof victim);
            TRY("rights_pair", sendmsg(sv[0], &m, 0));
            c->cmsg_type = SCM_CREDENTIALS;
            TRY("creds_pair", sendmsg(sv[0], &m, 0));
            char rbuf[8];
            TRY("nothing_arrived", recv(sv[1], rbuf, sizeof rbuf, MSG_DONTWAIT));
            struct msghdr plain = {{ .msg_iov = &iov, .msg_iovlen = 1 }};
            TRY("plain_pair", sendmsg(sv[0], &plain, 0));
            struct sockaddr_in a = in4("127.0.0.5", {srv.port});
            int s = socket(AF_INET, SOCK_STREAM, 0);
            TRY("connect", connect(s, SA(a), sizeof a));
            c->cmsg_type = SCM_RIGHTS;
            TRY("rights_tcp", sendmsg(s, &m, 0));
            TRY("plain_tcp", sendmsg(s, &plain, MSG_NOSIGNAL));
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",)),
        )
    assert lines(r) == {
        "rights_pair": "EPERM",
        "creds_pair": "EINVAL",
        "nothing_arrived": "EAGAIN",
        "plain_pair": "ok",
        "connect": "ok",
        "rights_tcp": "EPERM",
        "plain_tcp": "ok",
    }
    rights = [e for e in r.audit if e.action == "rights"]
    assert [(e.allowed, e.reason) for e in rights] == [
        (False, "sending descriptors over a socket is not allowed")
    ] * 2


def test_options_ioctls_and_unconnected_sockets(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        r"""
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1, seven = 7, three = 3;
        unsigned char srr[] = { 0x89, 7, 4, 10, 0, 0, 1, 0 };  /* loose source route */
        TRY("ip_options", setsockopt(s, IPPROTO_IP, IP_OPTIONS, srr, sizeof srr));
        TRY("bindtodevice", setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3));
        TRY("reuseport", setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one));
        TRY("mark", setsockopt(s, SOL_SOCKET, SO_MARK, &one, sizeof one));
        TRY("transparent", setsockopt(s, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof one));
        TRY("freebind", setsockopt(s, IPPROTO_IP, IP_FREEBIND, &one, sizeof one));
        TRY("ulp_tls", setsockopt(s, IPPROTO_TCP, TCP_ULP, "tls", 4));
        TRY("fastopen_connect", setsockopt(s, IPPROTO_TCP, 30, &one, sizeof one));
        struct sock_filter f[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
        struct sock_fprog p = { 1, f };
        TRY("attach_filter", setsockopt(s, SOL_SOCKET, SO_ATTACH_FILTER, &p, sizeof p));
        struct linger l = { 1, 100 };
        TRY("linger_wait", setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l));
        l.l_linger = 0;
        TRY("linger_abort", setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l));
        TRY("priority_7", setsockopt(s, SOL_SOCKET, SO_PRIORITY, &seven, sizeof seven));
        TRY("priority_3", setsockopt(s, SOL_SOCKET, SO_PRIORITY, &three, sizeof three));
        TRY("nodelay", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
        char big[128] = {0};
        TRY("optlen_big", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, big, sizeof big));
        TRY("optval_bad", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (void *)8, 4));
        char buf[64]; socklen_t n = sizeof buf;
        TRY("peercred", getsockopt(s, SOL_SOCKET, SO_PEERCRED, buf, &n));
        n = sizeof buf;
        TRY("peerpidfd", getsockopt(s, SOL_SOCKET, 77, buf, &n));
        n = sizeof buf;
        TRY("so_type", getsockopt(s, SOL_SOCKET, SO_TYPE, buf, &n));
        n = sizeof buf;
        TRY("tcp_info", getsockopt(s, IPPROTO_TCP, TCP_INFO, buf, &n));
        struct ifconf ifc = { .ifc_len = sizeof buf, .ifc_buf = buf };
        TRY("siocgifconf", ioctl(s, SIOCGIFCONF, &ifc));
        struct ifreq ifr; memset(&ifr, 0, sizeof ifr); strcpy(ifr.ifr_name, "lo");
        TRY("siocgifaddr", ioctl(s, SIOCGIFADDR, &ifr));
        TRY("fionbio", ioctl(s, FIONBIO, &one));
        TRY("listen_unbound", listen(s, 1));
        struct sockaddr_in any = in4("0.0.0.0", 0);
        TRY("bind_any", bind(s, SA(any), sizeof any));
        TRY("accept", accept(s, 0, 0));
        struct sockaddr_in dst = in4("127.0.0.5", 1);
        TRY("fastopen_send", sendto(s, "x", 1, MSG_FASTOPEN, SA(dst), sizeof dst));
        TRY("send_unconnected", send(s, "x", 1, MSG_NOSIGNAL));
        TRY("sendto_unconnected", sendto(s, "x", 1, MSG_NOSIGNAL, SA(dst), sizeof dst));
        struct sockaddr_in me; socklen_t ml = sizeof me;
        TRY("getsockname", getsockname(s, SA(me), &ml));
        SHOW("unbound_port", ntohs(me.sin_port));
        """,
        NetworkPolicy(allow=("127.0.0.5:1",)),
    )
    assert lines(r) == {
        "ip_options": "ENOPROTOOPT",
        "bindtodevice": "ENOPROTOOPT",
        "reuseport": "ENOPROTOOPT",
        "mark": "ENOPROTOOPT",
        "transparent": "ENOPROTOOPT",
        "freebind": "ENOPROTOOPT",
        "ulp_tls": "ENOPROTOOPT",
        "fastopen_connect": "ENOPROTOOPT",
        "attach_filter": "ENOPROTOOPT",
        "linger_wait": "EINVAL",
        "linger_abort": "ok",
        "priority_7": "EPERM",
        "priority_3": "ok",
        "nodelay": "ok",
        "optlen_big": "EINVAL",
        "optval_bad": "EFAULT",
        "peercred": "ENOPROTOOPT",
        "peerpidfd": "ENOPROTOOPT",
        "so_type": "ok",
        "tcp_info": "ok",
        "siocgifconf": "ENOTTY",
        "siocgifaddr": "ENOTTY",
        "fionbio": "ok",
        "listen_unbound": "EACCES",
        "bind_any": "EACCES",
        "accept": "EINVAL",
        "fastopen_send": "EOPNOTSUPP",
        "send_unconnected": "EPIPE",
        "sendto_unconnected": "EPIPE",
        "getsockname": "ok",
        "unbound_port": "0",
    }


def test_special_addresses_need_an_exact_literal(compile_c: Callable[..., str]) -> None:
    with TcpServer("127.0.0.5") as srv:
        p = srv.port
        r = native(
            compile_c,
            rf"""
            struct sockaddr_in a;
            struct sockaddr_in6 b;
            int s;
            #define C4(name, ip) s = socket(AF_INET, SOCK_STREAM, 0); a = in4(ip, {p}); \
                TRY(name, connect(s, SA(a), sizeof a))
            #define C6(name, ip) s = socket(AF_INET6, SOCK_STREAM, 0); b = in6(ip, {p}); \
                TRY(name, connect(s, SA(b), sizeof b))
            C4("loopback", "127.0.0.5");
            C4("unspecified", "0.0.0.0");
            C4("metadata", "169.254.169.254");
            C4("private", "10.0.0.1");
            C6("mapped_loopback", "::ffff:127.0.0.5");
            C6("v6_loopback", "::1");
            C6("v6_unspecified", "::");
            C6("nat64_loopback", "64:ff9b::7f00:5");
            C6("ula", "fd00::1");
            C6("aws_metadata6", "fd00:ec2::254");
            """,
            # "Everything" by network: no special address is listed by these.
            NetworkPolicy(allow=(f"0.0.0.0/0:{p}", f"[::/0]:{p}")),
        )
    assert lines(r) == {
        name: "EACCES"
        for name in (
            "loopback",
            "unspecified",
            "metadata",
            "private",
            "mapped_loopback",
            "v6_loopback",
            "v6_unspecified",
            "nat64_loopback",
            "ula",
            "aws_metadata6",
        )
    }
    assert srv.accepted == 0
    kinds = [e.reason.split(" address ")[0] for e in r.audit]
    assert kinds == [
        "loopback",
        "unspecified",
        "metadata",
        "private",
        "loopback",
        "loopback",
        "unspecified",
        "nat64",
        "private",
        "metadata",
    ]


def test_malformed_socket_arguments(compile_c: Callable[..., str]) -> None:
    with TcpServer("127.0.0.5") as srv:
        r = native(
            compile_c,
            rf"""
            int s = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = in4("127.0.0.5", {srv.port});
            char *pg = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            munmap(pg + 4096, 4096);
            memcpy(pg + 4096 - 8, &a, 8);
            TRY("null_addr", connect(s, 0, 16));
            TRY("len0", connect(s, SA(a), 0));
            TRY("len1", connect(s, SA(a), 1));
            TRY("len_short", connect(s, SA(a), 15));
            TRY("len_huge", connect(s, SA(a), 200));
            TRY("len_negative", syscall(SYS_connect, s, &a, -1));
            TRY("unmapped_tail", connect(s, (struct sockaddr *)(pg + 4096 - 8), 16));
            struct sockaddr un = {{ .sa_family = AF_UNIX }};
            TRY("unix_on_inet", connect(s, &un, sizeof un));
            struct sockaddr unspec = {{ .sa_family = AF_UNSPEC }};
            TRY("unspec", connect(s, &unspec, sizeof unspec));
            struct sockaddr_in6 six = in6("::1", {srv.port});
            TRY("v6_on_v4", connect(s, SA(six), sizeof six));
            TRY("bad_fd", connect(999, SA(a), sizeof a));
            int pp[2]; pipe(pp);
            TRY("not_socket", connect(pp[0], SA(a), sizeof a));
            TRY("sendmsg_null", sendmsg(s, 0, 0));
            struct iovec iov = {{ "x", 1 }};
            struct msghdr m = {{ .msg_iov = &iov, .msg_iovlen = 5000 }};
            TRY("iovlen_huge", sendmsg(s, &m, 0));
            m.msg_iov = (struct iovec *)8; m.msg_iovlen = 1;
            TRY("iov_bad", sendmsg(s, &m, 0));
            char cb[24] = {{0}};
            struct cmsghdr *c = (struct cmsghdr *)cb; c->cmsg_len = 1000;
            struct msghdr mc = {{ .msg_iov = &iov, .msg_iovlen = 1,
                                  .msg_control = cb, .msg_controllen = sizeof cb }};
            TRY("cmsg_len_bad", sendmsg(s, &mc, 0));
            TRY("sendmmsg_bad", syscall(SYS_sendmmsg, s, (void *)8, 100000, 0));
            TRY("still_serving", connect(s, SA(a), sizeof a));
            TRY("again", connect(s, SA(a), sizeof a));
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",)),
        )
    assert lines(r) == {
        "null_addr": "EFAULT",
        "len0": "EINVAL",
        "len1": "EINVAL",
        "len_short": "EINVAL",
        "len_huge": "EINVAL",
        "len_negative": "EINVAL",
        "unmapped_tail": "EFAULT",
        "unix_on_inet": "EAFNOSUPPORT",
        "unspec": "EAFNOSUPPORT",
        "v6_on_v4": "EAFNOSUPPORT",
        "bad_fd": "EBADF",
        "not_socket": "ENOTSOCK",
        "sendmsg_null": "EFAULT",
        "iovlen_huge": "EMSGSIZE",
        "iov_bad": "EFAULT",
        "cmsg_len_bad": "EINVAL",
        "sendmmsg_bad": "EFAULT",
        "still_serving": "ok",
        "again": "EISCONN",
    }
    assert r.ok


def test_the_virtual_resolver_survives_garbage(compile_c: Callable[..., str]) -> None:
    r = native(
        compile_c,
        r"""
        struct sockaddr_in ns = in4("127.0.0.53", 53);
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        TRY("udp_resolver", connect(u, SA(ns), sizeof ns));
        int s = socket(AF_INET, SOCK_STREAM, 0);
        TRY("tcp_resolver", connect(s, SA(ns), sizeof ns));
        /* A framed message that is not DNS: the controller hangs up. */
        unsigned char junk[] = { 0, 4, 0xde, 0xad, 0xbe, 0xef };
        write(s, junk, sizeof junk);
        char buf[512];
        SHOW("junk_reply", read(s, buf, sizeof buf));
        s = socket(AF_INET, SOCK_STREAM, 0);
        connect(s, SA(ns), sizeof ns);
        unsigned char huge[] = { 0xff, 0xff, 1, 2, 3 };
        write(s, huge, sizeof huge);
        TRY("huge_reply", read(s, buf, sizeof buf));
        /* A real question for a name the policy does not list: NXDOMAIN. */
        s = socket(AF_INET, SOCK_STREAM, 0);
        connect(s, SA(ns), sizeof ns);
        unsigned char q[] = { 0, 29, 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                              6, 's','e','c','r','e','t', 4, 't','e','s','t', 0, 0, 1, 0, 1 };
        write(s, q, sizeof q);
        int n = read(s, buf, sizeof buf);
        SHOW("reply_len", n > 4);
        SHOW("rcode", buf[5] & 0xf);
        struct addrinfo *res;
        SHOW("gai_allowed", getaddrinfo("api.test", 0, 0, &res));
        """,
        NetworkPolicy(allow=("api.test:80",), hosts={"api.test": "127.0.0.5"}),
    )
    assert lines(r) == {
        "udp_resolver": "EACCES",
        "tcp_resolver": "ok",
        "junk_reply": "0",
        # Hung up with the rest unread: a unix stream reports that as a reset.
        "huge_reply": "ECONNRESET",
        "reply_len": "1",
        "rcode": "3",
        "gai_allowed": "0",
    }


def test_placeholders_live_in_an_empty_network_namespace() -> None:
    # What socket() gives the guest reaches nothing, even with a real
    # connect: there is no interface in its namespace, loopback included.
    ns = kernel.isolated_netns()
    assert ns is not None  # the tests run with CAP_SYS_ADMIN
    with TcpServer("127.0.0.5") as srv:
        s = kernel.socket_in_netns(ns, socket.AF_INET, socket.SOCK_STREAM, 0)
        with s:
            assert s.connect_ex(("127.0.0.5", srv.port)) == errno.ENETUNREACH
        host = socket.socket()
        with host:
            assert host.connect_ex(("127.0.0.5", srv.port)) == 0  # the thread came back
    assert srv.accepted == 1

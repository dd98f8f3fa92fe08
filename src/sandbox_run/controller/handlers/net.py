"""Socket calls.  See docs/network.md for the design and its reasons.

Every call that names an address (connect, bind, sendto with an address,
sendmsg, sendmmsg) or could make the kernel pick one (listen, accept) is
decided and performed here, on values decoded once from guest memory:

- ``socket`` gives the guest a *placeholder*: a real socket of the asked-for
  kind, created in an empty network namespace, from which nothing at all is
  reachable.
- ``connect`` checks the destination against the allow-list and its pins,
  creates a fresh socket in the host's namespace, connects it, and installs
  it over the guest's descriptor (``Install``).  The guest never holds an
  unconnected socket that could reach anything.
- The controller never blocks on a guest socket: it sends with
  ``MSG_DONTWAIT``, accepts only right after a poll says a connection is
  waiting, connects only sockets of its own, and refuses lingering closes.
  A call that must wait (a blocking connect in progress, a blocking accept)
  waits in a trio task while the controller serves everything else.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import signal
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ...errors import Refused, SyscallError
from ...net import sockaddr as sa
from ...net.addresses import classify, normalize
from ...net.etc import RESOLVER_ADDRESS, RESOLVER_PORT
from ...net.rules import Proto
from ...net.state import MAX_RESOLVER_CONVERSATIONS, Kind, NetState, SockInfo
from .. import kernel
from ..dispatch import Call, Inject, Install, Later, Reply
from . import handles

log = logging.getLogger("sandbox_run")
_U32 = 0xFFFF_FFFF
AF_UNIX, AF_INET, AF_INET6, AF_PACKET = 1, 2, 10, 17
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
SOCK_TYPE_MASK = 0xF
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 0, 1, 6, 17
IPPROTO_IPV6, IPPROTO_ICMPV6 = 41, 58
SOL_SOCKET = 1
MSG_OOB, MSG_DONTWAIT, MSG_EOR, MSG_NOSIGNAL, MSG_MORE = 0x1, 0x40, 0x80, 0x4000, 0x8000
MSG_FASTOPEN, MSG_ZEROCOPY = 0x2000_0000, 0x400_0000
_SEND_FLAGS = MSG_OOB | MSG_DONTWAIT | MSG_EOR | MSG_NOSIGNAL | MSG_MORE
SO_DOMAIN, SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER, SO_PRIORITY = 39, 20, 21, 13, 12
TCP_INFO = 11
_TCP_ESTABLISHED, _TCP_SYN_SENT, _TCP_CLOSE = 1, 2, 7
#: Bytes the controller copies per send call: a stream send may be partial;
#: a datagram larger than this is EMSGSIZE, as the kernel says.
MAX_STREAM_SEND = 1 << 20
MAX_DATAGRAM = 65535
MAX_CONTROL = 4096
MAX_OPTLEN = 64


def _int(v: int) -> int:
    v &= _U32
    return v - (1 << 32) if v >= 1 << 31 else v


def _net(call: Call) -> NetState:
    net: NetState = call.guest.net
    return net


class _Held:
    """A controller-side duplicate of a guest socket and what is known of it.

    The duplicate shares the guest's open file description (its O_NONBLOCK
    flag included), so nothing here may block on it.
    """

    __slots__ = ("cookie", "domain", "info", "sock")

    def __init__(self, call: Call, index: int) -> None:
        fd = call.dup(call.fd_arg(index))
        try:
            # Created "non-blocking" so that Python never changes the shared
            # description's flags (a default timeout would set O_NONBLOCK).
            self.sock: socket.socket | None = socket.socket(
                AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, fd
            )
        except OSError as e:
            os.close(fd)
            raise SyscallError(e.errno or errno.ENOTSOCK, "not a socket") from None
        try:
            self.cookie = int.from_bytes(
                self.sock.getsockopt(SOL_SOCKET, 57, 8), "little"
            )  # SO_COOKIE
            self.info = _net(call).sockets.get(self.cookie)
            self.domain = (
                self.info.family if self.info else self.sock.getsockopt(SOL_SOCKET, SO_DOMAIN)
            )
        except OSError as e:
            self.sock.close()
            raise SyscallError(e.errno or errno.EIO, "socket query failed") from None

    @property
    def s(self) -> socket.socket:
        if self.sock is None:
            raise SyscallError(errno.EIO, "internal: socket handed over")
        return self.sock

    @property
    def blocking(self) -> bool:
        return not fcntl.fcntl(self.s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK

    def timeout(self, option: int) -> float | None:
        """SO_SNDTIMEO or SO_RCVTIMEO in seconds; None for none."""
        sec, usec = struct.unpack("<qq", self.s.getsockopt(SOL_SOCKET, option, 16))
        t = sec + usec / 1e6
        return t if t > 0 else None

    def take(self) -> socket.socket:
        """Hand the duplicate to a continuation, which will close it."""
        s = self.s
        self.sock = None
        return s

    def __enter__(self) -> _Held:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock is not None:
            self.sock.close()


def _read_addr(call: Call, ptr: int, length: int) -> sa.SockAddr:
    n = _int(length)
    if n < 0 or n > sa.SOCKADDR_MAX:
        raise SyscallError(errno.EINVAL, "bad address length")
    return sa.decode_sockaddr(call.read(ptr, n))


def _inet(addr: sa.SockAddr, info: SockInfo) -> sa.InetAddr:
    """The address as one the socket's family can use (EAFNOSUPPORT otherwise)."""
    if not isinstance(addr, sa.InetAddr):
        if addr.family == sa.AF_UNSPEC:
            raise SyscallError(errno.EAFNOSUPPORT, "AF_UNSPEC (dissolving a connection)")
        raise SyscallError(errno.EAFNOSUPPORT, f"address family {addr.family}")
    if addr.family != info.family:
        raise SyscallError(errno.EAFNOSUPPORT, "address family differs from the socket's")
    return addr


def _fresh(info: SockInfo) -> socket.socket:
    """A new host socket like the placeholder, with the options the guest set."""
    type_ = SOCK_STREAM if info.proto is Proto.TCP else SOCK_DGRAM
    proto = IPPROTO_TCP if info.proto is Proto.TCP else IPPROTO_UDP
    s = socket.socket(info.family, type_ | SOCK_NONBLOCK | SOCK_CLOEXEC, proto)
    try:
        for (level, opt), value in info.options.items():
            s.setsockopt(level, opt, value)
    except OSError as e:
        s.close()
        raise SyscallError(e.errno or errno.EINVAL, "replaying a socket option failed") from None
    return s


def _install(
    net: NetState,
    sock: socket.socket,
    info: SockInfo,
    guest_fd: int,
    *,
    blocking: bool,
    value: int = 0,
    error: int = 0,
    replaces: int | None = None,
) -> Install:
    """Register ``sock`` and put it in the guest at ``guest_fd`` in place of
    the socket with cookie ``replaces``."""
    try:
        info.inode = os.fstat(sock.fileno()).st_ino
        net.register(sock, info)
        if replaces is not None:
            net.forget(replaces)
        if blocking:
            os.set_blocking(sock.fileno(), True)
    except BaseException:
        sock.close()
        raise
    return Install(sock.detach(), guest_fd, info.cloexec, value, error)


def _sigpipe(call: Call, flags: int) -> None:
    """The kernel signals a writer to a broken stream; so does the controller."""
    if not flags & MSG_NOSIGNAL:
        with contextlib.suppress(OSError):  # the thread is gone
            kernel.tgkill(call.guest.pid, call.note.pid, signal.SIGPIPE)


# --- socket -------------------------------------------------------------------
@handles("socket", argc=3)
def socket_(call: Call) -> Reply:
    domain = _int(call.args[0])
    type_full = _int(call.args[1])
    proto = _int(call.args[2])
    kind = type_full & SOCK_TYPE_MASK
    flags = type_full & ~SOCK_TYPE_MASK
    net = _net(call)
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SyscallError(errno.EINVAL, "unknown socket flags")
    what = f"socket(domain {domain}, type {kind}, protocol {proto})"
    if domain == AF_UNIX:
        net.record("socket", False, "unix-domain sockets reach host services by path")
        raise Refused(errno.EACCES, "unix-domain sockets are not allowed")
    if domain not in (AF_INET, AF_INET6, AF_PACKET):
        net.record("socket", False, f"address family {domain} is not served")
        raise Refused(errno.EAFNOSUPPORT, f"address family {domain} is not served")
    if domain == AF_PACKET or kind == SOCK_RAW:
        net.record("socket", False, f"raw and packet sockets are not allowed: {what}")
        raise Refused(errno.EPERM, "raw and packet sockets need CAP_NET_RAW")
    if kind == SOCK_STREAM and proto in (0, IPPROTO_TCP):
        p = Proto.TCP
    elif kind == SOCK_DGRAM and proto in (0, IPPROTO_UDP):
        p = Proto.UDP
    elif kind == SOCK_DGRAM and proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        net.record("socket", False, f"ICMP (ping) sockets are not allowed: {what}")
        raise Refused(errno.EACCES, "ICMP sockets are not allowed")
    else:
        net.record("socket", False, f"only TCP and UDP are served: {what}")
        raise Refused(errno.EPROTONOSUPPORT, "only TCP and UDP sockets are served")
    if not net.enabled:
        net.record("socket", False, "network access is not granted by the policy", p)
        raise Refused(errno.EACCES, "network access is not granted by the policy")
    s = _PLACEHOLDERS.take(domain, kind, p)
    cloexec = bool(flags & SOCK_CLOEXEC)
    try:
        info = SockInfo(Kind.PLACEHOLDER, domain, p, os.fstat(s.fileno()).st_ino, cloexec)
        net.register(s, info)
        if not flags & SOCK_NONBLOCK:
            os.set_blocking(s.fileno(), True)
    except BaseException:
        s.close()
        raise
    return Inject(s.detach(), cloexec)


class _Placeholders:
    """Unused sockets in the empty namespace, made a batch at a time: entering
    the namespace costs two setns(2) calls, paid once per batch."""

    BATCH = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[tuple[int, int, int], list[socket.socket]] = {}
        self._warned = False

    def take(self, family: int, kind: int, proto: Proto) -> socket.socket:
        num = IPPROTO_TCP if proto is Proto.TCP else IPPROTO_UDP
        type_ = kind | SOCK_NONBLOCK | SOCK_CLOEXEC
        key = (family, type_, num)
        with self._lock:
            free = self._free.setdefault(key, [])
            if not free:
                free += self._make(family, type_, num)
            return free.pop()

    def _make(self, family: int, type_: int, num: int) -> list[socket.socket]:
        ns = kernel.isolated_netns()
        try:
            if ns is None:
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "no empty network namespace (needs CAP_SYS_ADMIN): unconnected "
                        "guest sockets live in the host's, guarded by mediation alone"
                    )
                return [socket.socket(family, type_, num)]
            return kernel.sockets_in_netns(ns, family, type_, num, self.BATCH)
        except OSError as e:
            raise SyscallError(e.errno or errno.ENOBUFS, "socket creation failed") from None


_PLACEHOLDERS = _Placeholders()


# --- connect ------------------------------------------------------------------
@handles("connect", argc=3)
def connect(call: Call) -> Reply:
    addr = _read_addr(call, call.args[1], call.args[2])
    guest_fd = call.fd_arg(0)
    with _Held(call, 0) as held:
        return _connect(call, held, guest_fd, addr)


def _connect(call: Call, held: _Held, guest_fd: int, raw: sa.SockAddr) -> Reply:
    net = _net(call)
    info = held.info
    if info is None:
        if held.domain == AF_UNIX:
            net.record("connect", False, "unix-domain sockets reach host services by path")
            raise Refused(errno.EACCES, "unix-domain connect is not allowed")
        raise Refused(errno.EACCES, "a socket the controller did not make")
    if info.kind in (Kind.RESOLVER, Kind.RELAY, Kind.ACCEPTED, Kind.LISTENING):
        raise SyscallError(errno.EISCONN, "already connected")
    if info.kind is Kind.BOUND:
        raise Refused(errno.EACCES, "connecting a bound socket is not supported")
    addr = _inet(raw, info)
    if info.kind is Kind.STREAM:
        state = held.s.getsockopt(IPPROTO_TCP, TCP_INFO, 8)[0]
        if state == _TCP_SYN_SENT:
            return _connect_in_progress(call, held)
        if state != _TCP_CLOSE:
            raise SyscallError(errno.EISCONN, "already connected")
        # A failed connection: a new attempt is a new connect.
    if info.proto is Proto.UDP:
        _no_udp_with_cap(net, addr)
        return _connect_udp(call, held, guest_fd, addr)
    if normalize(addr.ip) == RESOLVER_ADDRESS and addr.port == RESOLVER_PORT:
        return _connect_resolver(call, held, guest_fd, addr)
    verdict = net.allow.check(Proto.TCP, addr.ip, addr.port)
    net.record("connect", verdict.allowed, verdict.reason, Proto.TCP, addr, verdict.name)
    if not verdict.allowed:
        raise Refused(errno.EACCES, verdict.reason)
    if net.at_connection_limit():
        why = f"{net.policy.max_connections} connections are open (max_connections)"
        net.record("limit", False, why, Proto.TCP, addr, verdict.name)
        raise Refused(errno.EAGAIN, why)
    new = SockInfo(
        Kind.STREAM,
        info.family,
        Proto.TCP,
        0,
        info.cloexec,
        addr,
        verdict.name,
        counted=True,
        options=info.options,  # replayed again should this connection fail and be retried
    )
    if net.relayed:
        return _connect_relayed(call, held, guest_fd, addr, info, new)
    fresh = _fresh(info)
    err = fresh.connect_ex(addr.for_socket())
    if err == errno.EINPROGRESS and _ready(fresh, select.POLLOUT):
        err = fresh.getsockopt(SOL_SOCKET, socket.SO_ERROR)
    blocking = held.blocking
    if err == 0:
        return _install(net, fresh, new, guest_fd, blocking=blocking, replaces=held.cookie)
    if err != errno.EINPROGRESS:
        fresh.close()
        raise SyscallError(err, "connect failed")
    if not blocking:
        return _install(
            net, fresh, new, guest_fd, blocking=False, error=errno.EINPROGRESS, replaces=held.cookie
        )
    timeout = held.timeout(SO_SNDTIMEO)

    async def finish() -> Reply:
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                await trio.lowlevel.wait_writable(fresh.fileno())
                err = fresh.getsockopt(SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fresh.close()
                    raise SyscallError(err, "connect failed")
                return _install(net, fresh, new, guest_fd, blocking=True, replaces=held.cookie)
            # SO_SNDTIMEO ran out: the kernel says EINPROGRESS and keeps trying.
            return _install(
                net,
                fresh,
                new,
                guest_fd,
                blocking=True,
                error=errno.EINPROGRESS,
                replaces=held.cookie,
            )
        except BaseException:
            if fresh.fileno() >= 0:
                fresh.close()
            raise

    return Later(finish, fresh.close)


#: How long a relayed connect waits for the real connection at most.
RELAY_CONNECT_TIMEOUT = 30.0


def _connect_relayed(
    call: Call, held: _Held, guest_fd: int, addr: sa.InetAddr, info: SockInfo, new: SockInfo
) -> Reply:
    """With a byte cap: connect in the controller, then give the guest one end
    of a socket pair that a relay copies to the connection, counting bytes.

    The real connection is made before the call returns, even on a
    non-blocking socket (which then sees the connect succeed at once).
    """
    net = _net(call)
    if net.byte_spent():
        net.byte_cap_reached()
        raise Refused(errno.EACCES, "the byte cap (max_bytes) is used up")
    blocking = held.blocking
    timeout = held.timeout(SO_SNDTIMEO) or RELAY_CONNECT_TIMEOUT
    remote = _fresh(info)
    err = remote.connect_ex(addr.for_socket())
    if err not in (0, errno.EINPROGRESS):
        remote.close()
        raise SyscallError(err, "connect failed")

    async def finish() -> Reply:
        from ...net.relay import Relay

        try:
            with trio.move_on_after(timeout):
                await trio.lowlevel.wait_writable(remote.fileno())
            err = remote.getsockopt(SOL_SOCKET, socket.SO_ERROR)
            if not _ready(remote, select.POLLOUT):
                err = errno.ETIMEDOUT
            if err:
                raise SyscallError(err, "connect failed")
            remote.setsockopt(IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a relay adds no delay
            guest_end, ours = socket.socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)
        except BaseException:
            remote.close()
            raise
        relay = Relay(net, ours, remote)
        new.kind, new.relay = Kind.RELAY, relay
        try:
            call.guest.nursery.start_soon(relay.run)
        except BaseException:
            for s in (guest_end, ours, remote):
                s.close()
            raise
        return _install(net, guest_end, new, guest_fd, blocking=blocking, replaces=held.cookie)

    return Later(finish, remote.close)


def relay_setsockopt(info: SockInfo, level: int, opt: int, value: bytes) -> int:
    """A TCP or IP option on a relayed socket applies to the real connection."""
    from ...net.relay import Relay

    relay = info.relay
    if not isinstance(relay, Relay):
        raise SyscallError(errno.EIO, "internal: relay without a connection")
    try:
        relay.remote.setsockopt(level, opt, value)
    except OSError as e:
        raise SyscallError(e.errno or errno.EINVAL, "setsockopt failed") from None
    return 0


def _ready(s: socket.socket, events: int) -> bool:
    p = select.poll()
    p.register(s.fileno(), events)
    return bool(p.poll(0))


def _connect_in_progress(call: Call, held: _Held) -> Reply:
    """connect again on a socket whose connection is under way."""
    if not held.blocking:
        raise SyscallError(errno.EALREADY, "connection in progress")
    timeout = held.timeout(SO_SNDTIMEO)
    sock = held.take()

    async def finish() -> Reply:
        with sock:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                await trio.lowlevel.wait_writable(sock.fileno())
                err = sock.getsockopt(SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise SyscallError(err, "connect failed")
                return 0
            raise SyscallError(errno.EINPROGRESS, "connection still in progress")

    return Later(finish, sock.close)


def _connect_udp(call: Call, held: _Held, guest_fd: int, addr: sa.InetAddr) -> Reply:
    net = _net(call)
    info = held.info
    if info is None:
        raise SyscallError(errno.EIO, "internal: no socket info")
    verdict = net.allow.check(Proto.UDP, addr.ip, addr.port)
    net.record("connect", verdict.allowed, verdict.reason, Proto.UDP, addr, verdict.name)
    if not verdict.allowed:
        raise Refused(errno.EACCES, verdict.reason)
    if info.kind is Kind.DGRAM:
        _udp_connect(held.s, addr)
        info.peer, info.name = addr, verdict.name
        return 0
    fresh = _fresh(info)
    try:
        _udp_connect(fresh, addr)
    except BaseException:
        fresh.close()
        raise
    new = SockInfo(
        Kind.DGRAM,
        info.family,
        Proto.UDP,
        0,
        info.cloexec,
        addr,
        verdict.name,
        options=info.options,
    )
    return _install(net, fresh, new, guest_fd, blocking=held.blocking, replaces=held.cookie)


def _no_udp_with_cap(net: NetState, addr: sa.InetAddr) -> None:
    if net.relayed:
        why = "UDP is not available when bytes are capped (max_bytes)"
        net.record("connect", False, why, Proto.UDP, addr)
        raise Refused(errno.EACCES, why)


def _udp_connect(s: socket.socket, addr: sa.InetAddr) -> None:
    err = s.connect_ex(addr.for_socket())  # a UDP connect only sets the peer: it never waits
    if err:
        raise SyscallError(err, "connect failed")


def _connect_resolver(call: Call, held: _Held, guest_fd: int, addr: sa.InetAddr) -> Reply:
    """The guest's resolver calls the virtual name server: hand it a socket
    pair whose other end the controller serves."""
    from ...net.resolver import Resolver

    net = _net(call)
    info = held.info
    resolver = net.resolver
    if info is None or not isinstance(resolver, Resolver):
        raise SyscallError(errno.ECONNREFUSED, "no resolver")
    if net.conversations >= MAX_RESOLVER_CONVERSATIONS:
        raise Refused(errno.ECONNREFUSED, "too many open conversations with the resolver")
    guest_end, ours = socket.socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)
    try:
        call.guest.nursery.start_soon(resolver.serve, ours)
    except BaseException:
        guest_end.close()
        ours.close()
        raise
    net.conversations += 1
    new = SockInfo(Kind.RESOLVER, AF_UNIX, Proto.TCP, 0, info.cloexec, addr)
    return _install(net, guest_end, new, guest_fd, blocking=held.blocking, replaces=held.cookie)


# --- bind, listen, accept -------------------------------------------------------
@handles("bind", argc=3)
def bind(call: Call) -> Reply:
    raw = _read_addr(call, call.args[1], call.args[2])
    guest_fd = call.fd_arg(0)
    net = _net(call)
    with _Held(call, 0) as held:
        info = held.info
        if info is None:
            if held.domain == AF_UNIX:
                net.record("bind", False, "unix-domain sockets name host paths")
            raise Refused(errno.EACCES, "binding this socket is not allowed")
        if info.kind is not Kind.PLACEHOLDER:
            raise SyscallError(errno.EINVAL, "the socket is already bound or connected")
        addr = _inet(raw, info)
        why = _bind_refusal(net, info, addr)
        net.record("bind", why is None, why or "a loopback listening port", info.proto, addr)
        if why is not None:
            loopback_only = why == _ONLY_LOOPBACK
            raise Refused(errno.EADDRNOTAVAIL if loopback_only else errno.EACCES, why)
        fresh = _fresh(info)
        try:
            fresh.bind(addr.for_socket())
        except OSError as e:
            fresh.close()
            raise SyscallError(e.errno or errno.EINVAL, "bind failed") from None
        new = SockInfo(Kind.BOUND, info.family, Proto.TCP, 0, info.cloexec)
        return _install(net, fresh, new, guest_fd, blocking=held.blocking, replaces=held.cookie)


_ONLY_LOOPBACK = "only loopback addresses may be bound"


def _bind_refusal(net: NetState, info: SockInfo, addr: sa.InetAddr) -> str | None:
    if not net.allow.listening:
        return "listening is not granted by the policy"
    if info.proto is not Proto.TCP:
        return "only TCP sockets may be bound"
    special = classify(addr.ip)
    if special is None or special.kind != "loopback":
        return _ONLY_LOOPBACK
    if not net.allow.may_listen(addr.port):
        return f"port {addr.port} is not a listening port of the policy"
    return None


@handles("listen", argc=2)
def listen(call: Call) -> Reply:
    backlog = _int(call.args[1])
    net = _net(call)
    with _Held(call, 0) as held:
        info = held.info
        if info is None:
            raise Refused(errno.EACCES, "listening on this socket is not allowed")
        if info.kind is Kind.PLACEHOLDER:
            why = "listen without bind would use every interface; bind a loopback port first"
            net.record("listen", False, why, info.proto)
            raise Refused(errno.EACCES, why)
        if info.kind not in (Kind.BOUND, Kind.LISTENING):
            raise SyscallError(errno.EINVAL, "not a bound socket")
        try:
            held.s.listen(max(backlog, 0))
        except OSError as e:
            raise SyscallError(e.errno or errno.EINVAL, "listen failed") from None
        if info.kind is Kind.BOUND:
            local = sa.from_python(info.family, held.s.getsockname())
            net.record("listen", True, "listening on a loopback port", Proto.TCP, local)
        info.kind = Kind.LISTENING
        return 0


@handles("accept", argc=3)
def accept(call: Call) -> Reply:
    return _accept(call, 0)


@handles("accept4", argc=4)
def accept4(call: Call) -> Reply:
    flags = _int(call.args[3])
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SyscallError(errno.EINVAL, "unknown accept4 flags")
    return _accept(call, flags)


def _accept(call: Call, flags: int) -> Reply:
    addr_ptr, len_ptr = call.args[1], call.args[2]
    room = None
    if addr_ptr:
        room = _int(struct.unpack("<I", call.read(len_ptr, 4))[0])
        if room < 0:
            raise SyscallError(errno.EINVAL, "negative address length")
    with _Held(call, 0) as held:
        info = held.info
        if info is None or info.kind is not Kind.LISTENING:
            raise SyscallError(errno.EINVAL, "not a listening socket")
        got = _try_accept(held.s)
        if got is not None:
            return _accepted(call, info, got, flags, addr_ptr, len_ptr, room)
        if not held.blocking:
            raise SyscallError(errno.EAGAIN, "no connection waiting")
        timeout = held.timeout(SO_RCVTIMEO)
        sock = held.take()

    async def wait() -> Reply:
        with sock, trio.move_on_after(timeout if timeout is not None else float("inf")):
            while True:
                await trio.lowlevel.wait_readable(sock.fileno())
                got = _try_accept(sock)
                if got is not None:
                    return _accepted(call, info, got, flags, addr_ptr, len_ptr, room)
        raise SyscallError(errno.EAGAIN, "SO_RCVTIMEO ran out")

    return Later(wait, sock.close)


def _relay_accepted(
    call: Call, net: NetState, conn: socket.socket, info: SockInfo
) -> socket.socket:
    """With a byte cap, an accepted connection is relayed like a made one:
    the guest gets one end of a socket pair."""
    from ...net.relay import Relay

    if net.byte_spent():
        net.byte_cap_reached()
        raise Refused(errno.ECONNABORTED, "the byte cap (max_bytes) is used up")
    guest_end, ours = socket.socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)
    os.set_blocking(conn.fileno(), False)
    relay = Relay(net, ours, conn)
    try:
        call.guest.nursery.start_soon(relay.run)
    except BaseException:
        guest_end.close()
        ours.close()
        raise
    info.kind, info.relay = Kind.RELAY, relay
    info.inode = os.fstat(guest_end.fileno()).st_ino
    return guest_end


def _try_accept(lsock: socket.socket) -> tuple[socket.socket, object] | None:
    # Poll first, then accept with no await between: the shared description
    # may be blocking, and an accept on an empty queue would stop the controller.
    if not _ready(lsock, select.POLLIN):
        return None
    try:
        fd, peer = lsock._accept()  # type: ignore[attr-defined]
    except BlockingIOError:
        return None
    except OSError as e:
        raise SyscallError(e.errno or errno.EIO, "accept failed") from None
    conn = socket.socket(lsock.family, SOCK_STREAM | SOCK_NONBLOCK, 0, fd)
    return conn, peer


def _accepted(
    call: Call,
    listening: SockInfo,
    got: tuple[socket.socket, object],
    flags: int,
    addr_ptr: int,
    len_ptr: int,
    room: int | None,
) -> Reply:
    net = _net(call)
    conn, peer_py = got
    try:
        peer = sa.from_python(listening.family, peer_py)
        if net.at_connection_limit():
            why = f"{net.policy.max_connections} connections are open (max_connections)"
            net.record("accept", False, why, Proto.TCP, peer)
            raise Refused(errno.ECONNABORTED, why)
        net.record("accept", True, "a connection to a loopback listening port", Proto.TCP, peer)
        if room is not None:
            raw = sa.encode_sockaddr(peer)
            call.write(addr_ptr, raw[:room])
            call.write(len_ptr, struct.pack("<I", len(raw)))
        cloexec = bool(flags & SOCK_CLOEXEC)
        info = SockInfo(
            Kind.ACCEPTED,
            listening.family,
            Proto.TCP,
            os.fstat(conn.fileno()).st_ino,
            cloexec,
            peer,
            counted=True,
        )
        if net.relayed:
            conn = _relay_accepted(call, net, conn, info)
        net.register(conn, info)
        os.set_blocking(conn.fileno(), not flags & SOCK_NONBLOCK)
    except BaseException:
        conn.close()
        raise
    return Inject(conn.detach(), cloexec)


# --- sending ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Msg:
    addr: sa.SockAddr | None
    data: bytes


def _send_flags(flags: int) -> int:
    if flags & (MSG_FASTOPEN | MSG_ZEROCOPY):
        raise Refused(errno.EOPNOTSUPP, "TCP Fast Open and zero-copy sends are not supported")
    return flags & _SEND_FLAGS


def _read_data(call: Call, ptr: int, length: int, stream: bool) -> bytes:
    if length > MAX_DATAGRAM and not stream:
        raise SyscallError(errno.EMSGSIZE, "datagram too large")
    return call.read(ptr, min(length, MAX_STREAM_SEND)) if length else b""


@handles("sendto", argc=6)
def sendto(call: Call) -> Reply:
    # Only calls with an address get here: the filter lets the rest through.
    flags = _send_flags(_int(call.args[3]))
    addr = _read_addr(call, call.args[4], call.args[5])
    guest_fd = call.fd_arg(0)
    with _Held(call, 0) as held:
        stream = held.info is None or held.info.proto is Proto.TCP
        data = _read_data(call, call.args[1], call.args[2], stream)
        return _send(call, held, guest_fd, [_Msg(addr, data)], flags, many=False)


@handles("sendmsg", argc=3)
def sendmsg(call: Call) -> Reply:
    flags = _send_flags(_int(call.args[2]))
    guest_fd = call.fd_arg(0)
    with _Held(call, 0) as held:
        msg = _read_msghdr(call, held, call.args[1])
        return _send(call, held, guest_fd, [msg], flags, many=False)


@handles("sendmmsg", argc=4)
def sendmmsg(call: Call) -> Reply:
    vlen = min(call.args[2] & _U32, sa.UIO_MAXIOV)
    flags = _send_flags(_int(call.args[3]))
    guest_fd = call.fd_arg(0)
    base = call.args[1]
    with _Held(call, 0) as held:
        msgs = [_read_msghdr(call, held, base + i * sa.MMSGHDR_SIZE) for i in range(vlen)]
        return _send(call, held, guest_fd, msgs, flags, many=True, base=base)


def _read_msghdr(call: Call, held: _Held, ptr: int) -> _Msg:
    net = _net(call)
    hdr = sa.decode_msghdr(call.read(ptr, sa.MSGHDR.size))
    addr = _read_addr(call, hdr.name, hdr.namelen) if hdr.name and hdr.namelen else None
    if hdr.controllen:
        if hdr.controllen > MAX_CONTROL:
            raise SyscallError(errno.ENOBUFS, "control data too large")
        for c in sa.decode_cmsgs(call.read(hdr.control, hdr.controllen)):
            if c.level == sa.SOL_SOCKET and c.type == sa.SCM_RIGHTS:
                why = "sending descriptors over a socket is not allowed"
                net.record("rights", False, why)
                raise Refused(errno.EPERM, why)
            raise Refused(errno.EINVAL, f"control message {c.level}/{c.type} is not supported")
    stream = held.info is None or held.info.proto is Proto.TCP
    iovs = sa.decode_iovecs(call.read(hdr.iov, hdr.iovlen * sa.IOVEC.size)) if hdr.iovlen else []
    total = sum(n for _b, n in iovs)
    if total > MAX_DATAGRAM and not stream:
        raise SyscallError(errno.EMSGSIZE, "datagram too large")
    parts = []
    left = MAX_STREAM_SEND
    for base, n in iovs:
        if left <= 0:
            break
        take = min(n, left)
        if take:
            parts.append(call.read(base, take))
        left -= take
    return _Msg(addr, b"".join(parts))


def _send(
    call: Call,
    held: _Held,
    guest_fd: int,
    msgs: list[_Msg],
    flags: int,
    *,
    many: bool,
    base: int = 0,
) -> Reply:
    """Send decoded messages; the reply is bytes sent, or messages for sendmmsg."""
    net = _net(call)
    info = held.info
    target = held.s
    fresh: SockInfo | None = None  # a UDP placeholder replaced by a connected socket
    sent: list[int] = []
    if not msgs:
        return 0
    try:
        for m in msgs:
            try:
                target, made = _target(call, held, target, fresh, m.addr, flags)
            except SyscallError:
                if sent:
                    break  # sendmmsg reports what went out before the failure
                raise
            if made is not None:
                fresh = made
            if not _send_one(call, target, m.data, flags, sent):
                if sent or flags & MSG_DONTWAIT or not held.blocking:
                    break
                if fresh is None:
                    return _send_later(call, held, msgs, flags, many, base)
                break  # a fresh UDP socket's buffer is empty: this is not reached
    except BaseException:
        if fresh is not None and target is not held.sock:
            target.close()
        raise
    if not sent:
        if fresh is not None:
            target.close()
        raise SyscallError(errno.EAGAIN, "would block")
    result = _finish_send(call, sent, many, base)
    if fresh is not None and info is not None:
        return _install(
            net, target, fresh, guest_fd, blocking=held.blocking, value=result, replaces=held.cookie
        )
    return result


def _send_one(call: Call, sock: socket.socket, data: bytes, flags: int, sent: list[int]) -> bool:
    """Send one message without waiting, adding its count to ``sent``.  False
    when it would block, or failed after earlier messages went out (their
    count is the answer); a failure of the first message is raised."""
    try:
        sent.append(sock.send(data, flags | MSG_DONTWAIT | MSG_NOSIGNAL))
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno == errno.EPIPE:
            _sigpipe(call, flags)
        if sent:
            return False
        raise SyscallError(e.errno or errno.EIO, "send failed") from None
    return True


def _finish_send(call: Call, sent: list[int], many: bool, base: int) -> int:
    if not many:
        return sent[0]
    for i, n in enumerate(sent):
        call.write(base + sa.msg_len_offset(i), struct.pack("<I", n))
    return len(sent)


def _target(
    call: Call,
    held: _Held,
    current: socket.socket,
    fresh: SockInfo | None,
    raw: sa.SockAddr | None,
    flags: int,
) -> tuple[socket.socket, SockInfo | None]:
    """The socket a message goes out on; None, or the info of a new one."""
    net = _net(call)
    info = fresh or held.info
    if info is None or info.kind in (Kind.RESOLVER, Kind.RELAY):
        # The guest's own unix socket pair, or a stream to the controller.
        if raw is not None:
            raise SyscallError(errno.EISCONN, "a connected stream takes no address")
        return current, None
    if info.proto is Proto.TCP:
        if info.kind in (Kind.STREAM, Kind.ACCEPTED):
            return current, None  # the kernel ignores the address of a TCP send
        _sigpipe(call, flags)
        raise SyscallError(errno.EPIPE, "not connected")
    if raw is None:
        if info.kind is Kind.PLACEHOLDER:
            raise SyscallError(errno.EDESTADDRREQ, "no destination")
        return current, None
    addr = _inet(raw, info)
    if info.kind is Kind.DGRAM and info.peer == addr:
        return current, None
    _no_udp_with_cap(net, addr)
    verdict = net.allow.check(Proto.UDP, addr.ip, addr.port)
    net.record("send", verdict.allowed, verdict.reason, Proto.UDP, addr, verdict.name)
    if not verdict.allowed:
        raise Refused(errno.EACCES, verdict.reason)
    if info.kind is Kind.DGRAM:
        _udp_connect(current, addr)
        info.peer, info.name = addr, verdict.name
        return current, None
    made = _fresh(info)
    try:
        _udp_connect(made, addr)
    except BaseException:
        made.close()
        raise
    return made, SockInfo(Kind.DGRAM, info.family, Proto.UDP, 0, info.cloexec, addr, verdict.name)


def _send_later(
    call: Call, held: _Held, msgs: list[_Msg], flags: int, many: bool, base: int
) -> Reply:
    """A blocking send on a full stream: wait until it can take data."""
    timeout = held.timeout(SO_SNDTIMEO)
    sock = held.take()

    async def finish() -> Reply:
        with sock:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                while True:
                    await trio.lowlevel.wait_writable(sock.fileno())
                    sent: list[int] = []
                    for m in msgs:
                        if not _send_one(call, sock, m.data, flags, sent):
                            break
                    if sent:
                        return _finish_send(call, sent, many, base)
            raise SyscallError(errno.EAGAIN, "SO_SNDTIMEO ran out")

    return Later(finish, sock.close)


# --- options ------------------------------------------------------------------
def _max6(value: bytes) -> str | None:
    if len(value) >= 4 and struct.unpack_from("<i", value)[0] > 6:
        return "priorities above 6 need CAP_NET_ADMIN"
    return None


def _no_linger(value: bytes) -> str | None:
    # A lingering close waits for unsent data: a close by the controller
    # (of its duplicate, after the guest closed its own) must never wait.
    if len(value) >= 8 and all(struct.unpack_from("<ii", value)):
        return "a lingering close is not supported (l_linger must be 0)"
    return None


_Check = Callable[[bytes], "str | None"] | None
#: (level, option) -> a check of the value; everything else is ENOPROTOOPT.
SETSOCKOPT: dict[tuple[int, int], _Check] = {
    **{(SOL_SOCKET, o): None for o in (2, 6, 7, 8, 9, 10, 18, 19, 20, 21, 29, 35, 66, 67)},
    (SOL_SOCKET, SO_LINGER): _no_linger,
    (SOL_SOCKET, SO_PRIORITY): _max6,
    **{(IPPROTO_TCP, o): None for o in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 18, 25)},
    **{(IPPROTO_IP, o): None for o in (1, 2, 10, 11, 12, 13)},
    **{(IPPROTO_IPV6, o): None for o in (16, 23, 25, 26, 67)},
}


@handles("setsockopt", argc=5)
def setsockopt(call: Call) -> Reply:
    level, opt = _int(call.args[1]), _int(call.args[2])
    optlen = _int(call.args[4])
    if (level, opt) not in SETSOCKOPT:
        raise Refused(errno.ENOPROTOOPT, f"socket option {level}/{opt} is not allowed")
    if optlen < 0 or optlen > MAX_OPTLEN:
        raise SyscallError(errno.EINVAL, "bad option length")
    value = call.read(call.args[3], optlen)
    check = SETSOCKOPT[(level, opt)]
    why = check(value) if check is not None else None
    if why is not None:
        raise Refused(errno.EPERM if opt == SO_PRIORITY else errno.EINVAL, why)
    with _Held(call, 0) as held:
        info = held.info
        if info is not None and info.kind is Kind.RELAY and level != SOL_SOCKET:
            return relay_setsockopt(info, level, opt, value)
        try:
            held.s.setsockopt(level, opt, value)
        except OSError as e:
            raise SyscallError(e.errno or errno.EINVAL, "setsockopt failed") from None
        if info is not None:
            info.options[(level, opt)] = value  # for a socket the controller makes anew
    return 0

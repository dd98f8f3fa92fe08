"""What the controller knows about one guest's network: its allow-list and
pins, the sockets it gave the guest, the audit log and the limits.

Sockets are known by their *cookie* (``SO_COOKIE``): a 64-bit number the
kernel gives each socket once and never reuses, so a closed socket's entry
can never be mistaken for a new one.
"""

from __future__ import annotations

import enum
import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from ..errors import Refused
from .allowlist import AllowList
from .audit import AuditLog, AuditSink
from .config import NetworkPolicy
from .rules import Proto
from .sockaddr import InetAddr

SO_COOKIE = 57
#: Conversations with the virtual resolver one guest may hold open at once.
MAX_RESOLVER_CONVERSATIONS = 16
#: Sockets remembered per guest before forgotten ones are swept.
MAX_TRACKED = 4096


class Kind(enum.Enum):
    PLACEHOLDER = "placeholder"  # unconnected, in the empty namespace: reaches nothing
    STREAM = "stream"  # a TCP connection the controller made (or is making)
    DGRAM = "dgram"  # a UDP socket connected to one allowed peer
    BOUND = "bound"  # a TCP socket bound to an allowed loopback port
    LISTENING = "listening"
    ACCEPTED = "accepted"  # a TCP connection accepted from a listening socket
    RESOLVER = "resolver"  # the guest's end of a conversation with the virtual resolver
    RELAY = "relay"  # the guest's end of a byte-counted relay


@dataclass(slots=True)
class SockInfo:
    kind: Kind
    family: int
    proto: Proto
    inode: int
    cloexec: bool = True
    peer: InetAddr | None = None
    name: str | None = None  # the pinned name a connection was allowed for
    counted: bool = False  # counts towards max_connections
    # Options the guest set before the controller made the real socket:
    # replayed on it, in order.
    options: dict[tuple[int, int], bytes] = field(default_factory=dict)
    relay: object | None = None  # the relay behind a RELAY socket


def cookie_of(sock: socket.socket) -> int:
    return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8), "little")


class NetState:
    """One guest's network."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        audit_sink: AuditSink | None = None,
        socket_inodes: Callable[[], set[int]] | None = None,
    ) -> None:
        self.policy = policy
        self.allow = AllowList(policy)
        self.audit = AuditLog(audit_sink)
        self.sockets: dict[int, SockInfo] = {}
        self.counted = 0  # registered sockets that count towards max_connections
        self.bytes_used = 0  # with max_bytes: bytes relayed so far, both ways
        #: TCP connections' latest (sent, received) counts, by socket cookie
        self.traffic: dict[int, tuple[int, int]] = {}
        self._forgotten_traffic = (0, 0)  # counts of sockets no longer tracked
        self.relayed_sent = 0  # relayed bytes delivered to remote peers
        self.relayed_received = 0  # relayed bytes delivered to the guest
        self.socket_inodes: Callable[[], set[int]] = socket_inodes or set
        self.resolver: object | None = None  # set by the session (net.resolver.Resolver)
        self.relays = 0  # relays running
        self.conversations = 0  # open conversations with the virtual resolver
        self._cap_recorded = False
        self._relays_idle = trio.Event()
        self._relays_idle.set()

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    @property
    def relayed(self) -> bool:
        """Connections go through the controller, to count their bytes."""
        return self.policy.max_bytes is not None

    # --- the registry ------------------------------------------------------
    def register(self, sock: socket.socket, info: SockInfo) -> SockInfo:
        if len(self.sockets) >= MAX_TRACKED:
            self.sweep()
            if len(self.sockets) >= MAX_TRACKED:
                raise Refused(errno.EMFILE, "too many sockets")
        self.sockets[cookie_of(sock)] = info
        self.counted += info.counted
        return info

    def forget(self, cookie: int) -> None:
        """A socket the controller replaced in the guest's descriptor table."""
        info = self.sockets.pop(cookie, None)
        if info is not None:
            self.counted -= info.counted
        sent, received = self.traffic.pop(cookie, (0, 0))
        old_sent, old_received = self._forgotten_traffic
        self._forgotten_traffic = (old_sent + sent, old_received + received)

    # --- traffic -------------------------------------------------------------
    def count_tcp(self, cookie: int, sent: int, received: int) -> None:
        """The latest counts of one TCP connection (they only ever grow)."""
        old_sent, old_received = self.traffic.get(cookie, (0, 0))
        self.traffic[cookie] = (max(old_sent, sent), max(old_received, received))

    @property
    def bytes_sent(self) -> int:
        """Payload bytes the guest sent over TCP, counted so far."""
        return (
            self._forgotten_traffic[0]
            + sum(sent for sent, _ in self.traffic.values())
            + self.relayed_sent
        )

    @property
    def bytes_received(self) -> int:
        """Payload bytes the guest received over TCP, counted so far."""
        return (
            self._forgotten_traffic[1]
            + sum(received for _, received in self.traffic.values())
            + self.relayed_received
        )

    def sweep(self) -> None:
        """Forget sockets the guest no longer holds."""
        live = self.socket_inodes()
        for cookie in [c for c, i in self.sockets.items() if i.inode not in live]:
            self.forget(cookie)

    def at_connection_limit(self) -> bool:
        """Whether max_connections connections are open (checked before a new one).

        Connections the guest closed are noticed only here, by looking at its
        descriptor table, and only when the count says the limit is reached.
        """
        limit = self.policy.max_connections
        if self.counted < limit:
            return False
        self.sweep()
        return self.counted >= limit

    # --- relays ---------------------------------------------------------------
    def relay_started(self) -> None:
        if self.relays == 0:
            self._relays_idle = trio.Event()
        self.relays += 1

    def relay_ended(self) -> None:
        self.relays -= 1
        if self.relays == 0:
            self._relays_idle.set()

    def byte_spent(self) -> bool:
        """Whether the byte cap (if any) is used up."""
        cap = self.policy.max_bytes
        return cap is not None and self.bytes_used >= cap

    def byte_cap_reached(self) -> None:
        if not self._cap_recorded:
            self._cap_recorded = True
            self.record("limit", False, f"{self.policy.max_bytes} bytes transferred (max_bytes)")

    async def relays_done(self) -> None:
        """Wait until no relay is running (the guest's last data delivered)."""
        await self._relays_idle.wait()

    # --- auditing ----------------------------------------------------------
    def record(
        self,
        action: str,
        allowed: bool,
        reason: str,
        proto: Proto | None = None,
        addr: InetAddr | None = None,
        name: str | None = None,
    ) -> None:
        self.audit.record(
            action,
            allowed,
            reason,
            proto=proto.value if proto else None,
            address=str(addr.ip) if addr else None,
            port=addr.port if addr else None,
            name=name,
        )

"""The sandbox's virtual resolver, run by the controller.

The guest's C library asks ``etc.RESOLVER_ADDRESS`` over TCP (its
/etc/resolv.conf says so).  That connect is answered with one end of a
socket pair whose other end is served here: names the allow-list covers are
resolved by the controller (the host's resolver, or a DNS server the policy
names), pinned, and answered; every other name is "no such name" and never
leaves the controller, so the guest cannot use DNS questions as a channel.
"""

from __future__ import annotations

import logging
import secrets
import socket

import trio

from . import dns
from .addresses import IPAddress, normalize, parse_address
from .allowlist import MAX_PINNED_NAMES
from .rules import RuleError, normalize_name
from .state import NetState

log = logging.getLogger("sandbox_run")

#: How long the controller waits for an upstream answer.
RESOLVE_TIMEOUT = 5.0
#: Largest question accepted from the guest, and answers per question.
MAX_QUERY = 1024
MAX_ANSWERS = 16
_RCODE_NAMES = {dns.SERVFAIL: "SERVFAIL", dns.NXDOMAIN: "NXDOMAIN", dns.REFUSED: "REFUSED"}


class Resolver:
    """Name resolution and pinning for one sandbox."""

    def __init__(self, state: NetState) -> None:
        self.state = state
        self.allow = state.allow
        self.upstream = state.policy.resolver_address
        self._inflight: dict[str, trio.Event] = {}
        self._failures: dict[str, int] = {}

    # --- resolving ---------------------------------------------------------
    async def lookup(self, name: str, *, quiet: bool = False) -> tuple[int, tuple[IPAddress, ...]]:
        """The rcode and pinned addresses for ``name`` (normalised)."""
        pins = self.allow.pins
        if not self.allow.permits_name(name):
            if not quiet:
                self.state.record("resolve", False, f"{name} is not in the allow-list", name=name)
            return dns.NXDOMAIN, ()
        pinned = pins.by_name.get(name)
        if pinned is not None:
            return dns.NOERROR, pinned
        pending = self._inflight.get(name)
        if pending is not None:
            await pending.wait()
            pinned = pins.by_name.get(name)
            if pinned is not None:
                return dns.NOERROR, pinned
            return self._failures.get(name, dns.SERVFAIL), ()
        if len(pins.by_name) >= MAX_PINNED_NAMES:
            self.state.record(
                "resolve", False, f"more than {MAX_PINNED_NAMES} names resolved", name=name
            )
            return dns.SERVFAIL, ()
        done = self._inflight[name] = trio.Event()
        try:
            rcode, found = await self._upstream(name)
        finally:
            del self._inflight[name]
            done.set()
        if rcode != dns.NOERROR:
            self._failures[name] = rcode
            self.state.record(
                "resolve", False, f"the resolver answered {_RCODE_NAMES.get(rcode)}", name=name
            )
            return rcode, ()
        kept: list[IPAddress] = []
        dropped: list[str] = []
        for a in dict.fromkeys(normalize(a) for a in found):
            why = self.allow.pinnable(a)
            if why is None:
                kept.append(a)
            else:
                dropped.append(why)
        pins.add(name, tuple(kept))
        reason = f"pinned to {', '.join(map(str, kept)) or 'no address'}"
        if dropped:
            reason += "; left out: " + "; ".join(dropped)
        self.state.record("resolve", True, reason, name=name)
        return dns.NOERROR, tuple(kept)

    async def _upstream(self, name: str) -> tuple[int, tuple[IPAddress, ...]]:
        with trio.move_on_after(RESOLVE_TIMEOUT):
            if self.upstream is None:
                return await _system_lookup(name)
            return await _server_lookup(name, *self.upstream)
        return dns.SERVFAIL, ()

    # --- answering the guest -------------------------------------------------
    async def answer(self, msg: bytes, denied: set[str]) -> bytes | None:
        """The reply to one question from the guest, or None to hang up."""
        try:
            q = dns.parse_query(msg)
        except dns.DnsError as e:
            return dns.error_reply(e.id, dns.FORMERR) if e.id is not None else None
        if dns.opcode(q.flags) != 0:
            return dns.answer(q, dns.NOTIMP)
        if q.qclass != dns.CLASS_IN:
            return dns.answer(q, dns.REFUSED)
        try:
            name = normalize_name(q.name.decode("ascii"))
        except (UnicodeDecodeError, RuleError):
            shown = q.name.decode("ascii", "replace")
            if shown not in denied:
                self.state.record("resolve", False, "not a valid host name", name=shown)
            denied.add(shown)
            return dns.answer(q, dns.NXDOMAIN)
        rcode, addrs = await self.lookup(name, quiet=name in denied)
        if rcode != dns.NOERROR:
            denied.add(name)
            return dns.answer(q, rcode)
        want = 4 if q.qtype == dns.TYPE_A else 6 if q.qtype == dns.TYPE_AAAA else 0
        return dns.answer(
            q, dns.NOERROR, tuple(a for a in addrs if a.version == want)[:MAX_ANSWERS]
        )

    async def serve(self, sock: socket.socket) -> None:
        """DNS over TCP (two-byte length, then the message) on the controller's
        end of one guest conversation, until the guest hangs up.

        The caller counted the conversation in ``state.conversations``.
        """
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        denied: set[str] = set()
        try:
            async with stream:
                while True:
                    head = await _read_exact(stream, 2)
                    if head is None:
                        return
                    size = int.from_bytes(head, "big")
                    if not 0 < size <= MAX_QUERY:
                        return
                    msg = await _read_exact(stream, size)
                    if msg is None:
                        return
                    reply = await self.answer(msg, denied)
                    if reply is None:
                        return
                    await stream.send_all(len(reply).to_bytes(2, "big") + reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self.state.conversations -= 1


async def _read_exact(stream: trio.SocketStream, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


async def _system_lookup(name: str) -> tuple[int, tuple[IPAddress, ...]]:
    try:
        infos = await trio.to_thread.run_sync(
            socket.getaddrinfo, name, None, 0, socket.SOCK_STREAM, abandon_on_cancel=True
        )
    except socket.gaierror as e:
        if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            return dns.NXDOMAIN, ()
        return dns.SERVFAIL, ()
    except OSError:
        return dns.SERVFAIL, ()
    out: list[IPAddress] = []
    for _fam, _type, _proto, _canon, sockaddr in infos:
        try:
            out.append(parse_address(str(sockaddr[0]).split("%", 1)[0]))
        except ValueError:
            continue
    return dns.NOERROR, tuple(dict.fromkeys(out))


async def _server_lookup(
    name: str, server: IPAddress, port: int
) -> tuple[int, tuple[IPAddress, ...]]:
    """Ask one DNS server (the policy's ``resolver``) for A and AAAA records."""
    family = socket.AF_INET6 if server.version == 6 else socket.AF_INET
    ids: dict[int, int] = {}
    while len(ids) < 2:
        ids[secrets.randbelow(1 << 16)] = (dns.TYPE_A, dns.TYPE_AAAA)[len(ids)]
    answers: dict[int, dns.Response] = {}
    try:
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            await sock.connect((str(server), port))
            for msg_id, qtype in ids.items():
                await sock.send(dns.build_query(msg_id, name, qtype))
            with trio.move_on_after(RESOLVE_TIMEOUT / 2):  # then take what came
                while len(answers) < len(ids):
                    data = await sock.recv(4096)
                    try:
                        r = dns.parse_response(data)
                    except dns.DnsError:
                        continue
                    if r.id in ids:
                        answers[r.id] = r
    except OSError:
        return dns.SERVFAIL, ()
    rcodes = {r.rcode for r in answers.values()}
    if dns.NOERROR in rcodes:
        addrs = [a for r in answers.values() for a in r.addresses]
        return dns.NOERROR, tuple(dict.fromkeys(addrs))
    if rcodes == {dns.NXDOMAIN}:
        return dns.NXDOMAIN, ()
    return dns.SERVFAIL, ()

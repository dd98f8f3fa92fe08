"""The virtual resolver's answers, with no guest: questions in, answers out."""

from __future__ import annotations

import ipaddress
import struct

import trio

from sandbox_run.net import dns
from sandbox_run.net.config import NetworkPolicy
from sandbox_run.net.resolver import Resolver
from sandbox_run.net.state import NetState


def ask(resolver: Resolver, msg: bytes, denied: set[str] | None = None) -> bytes | None:
    return trio.run(resolver.answer, msg, set() if denied is None else denied)


def resolver(**kw: object) -> Resolver:
    return Resolver(NetState(NetworkPolicy(**kw)))  # type: ignore[arg-type]


def test_policy_names_are_answered_from_their_pins() -> None:
    r = resolver(allow=("api.test:443",), hosts={"api.test": ["127.0.0.5", "::1"]})
    a = dns.parse_response(ask(r, dns.build_query(7, "API.test", dns.TYPE_A)) or b"")
    aaaa = dns.parse_response(ask(r, dns.build_query(8, "Api.Test", dns.TYPE_AAAA)) or b"")
    mx = dns.parse_response(ask(r, dns.build_query(9, "api.test", 15)) or b"")
    assert (a.id, a.rcode, a.addresses) == (7, dns.NOERROR, (ipaddress.ip_address("127.0.0.5"),))
    assert aaaa.addresses == (ipaddress.ip_address("::1"),)
    assert (mx.rcode, mx.addresses) == (dns.NOERROR, ())
    assert r.state.audit.events == []  # pinned by the policy: nothing was resolved


def test_other_names_are_not_found_and_never_asked_upstream() -> None:
    # The upstream is a closed port: asking it would fail with SERVFAIL.
    r = resolver(allow=("api.test:443",), resolver="127.0.0.1:9")
    denied: set[str] = set()
    for qtype in (dns.TYPE_A, dns.TYPE_AAAA):
        reply = ask(r, dns.build_query(1, "secret-data.evil.test", qtype), denied)
        assert dns.parse_response(reply or b"").rcode == dns.NXDOMAIN
    (ev,) = r.state.audit.events  # once per conversation, not per question
    assert (ev.action, ev.allowed, ev.name) == ("resolve", False, "secret-data.evil.test")
    assert ev.reason == "secret-data.evil.test is not in the allow-list"


def test_an_unreachable_upstream_is_a_temporary_failure() -> None:
    r = resolver(allow=("*.svc.test:443",), resolver="127.0.0.1:9")
    reply = ask(r, dns.build_query(3, "a.svc.test", dns.TYPE_A))
    assert dns.parse_response(reply or b"").rcode == dns.SERVFAIL
    assert "a.svc.test" not in r.state.allow.pins.by_name  # failures are not pinned
    (ev,) = r.state.audit.events
    assert ev.reason == "the resolver answered SERVFAIL"


def test_malformed_and_unsupported_questions() -> None:
    r = resolver(allow=("api.test:443",))
    assert ask(r, b"\x00") is None  # no header: hang up
    formerr = ask(r, struct.pack(">HHHHHH", 5, 0, 2, 0, 0, 0))
    assert formerr == dns.error_reply(5, dns.FORMERR)
    notify = dns.build_query(6, "api.test", dns.TYPE_A)
    notify = notify[:2] + struct.pack(">H", 4 << 11) + notify[4:]  # opcode NOTIFY
    assert dns.parse_response(ask(r, notify) or b"").rcode == dns.NOTIMP
    weird = struct.pack(">HHHHHH", 9, 0, 1, 0, 0, 0) + b"\x03\xff\xfe\xfd\x00\x00\x01\x00\x01"
    assert dns.parse_response(ask(r, weird) or b"").rcode == dns.NXDOMAIN
    chaos = dns.build_query(10, "api.test", dns.TYPE_A)[:-2] + b"\x00\x03"
    assert dns.parse_response(ask(r, chaos) or b"").rcode == dns.REFUSED

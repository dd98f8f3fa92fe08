"""sockaddr, msghdr, control-message and DNS codecs: parse it or raise the
protocol error, nothing else."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_run.errors import SyscallError
from sandbox_run.net import dns
from sandbox_run.net.sockaddr import (
    AF_INET,
    AF_INET6,
    MSGHDR,
    InetAddr,
    OtherAddr,
    decode_cmsgs,
    decode_iovecs,
    decode_msghdr,
    decode_sockaddr,
    encode_sockaddr,
)


def sin(ip: str, port: int) -> bytes:
    head = struct.pack("<H", socket.AF_INET) + struct.pack(">H", port)
    return head + socket.inet_aton(ip) + bytes(8)


def test_ipv4_sockaddr() -> None:
    a = decode_sockaddr(sin("127.0.0.5", 8080))
    assert a == InetAddr(AF_INET, ipaddress.ip_address("127.0.0.5"), 8080)
    assert encode_sockaddr(a) == sin("127.0.0.5", 8080)
    assert a.text() == "127.0.0.5:8080"


def test_ipv6_sockaddr_with_and_without_scope() -> None:
    raw = struct.pack("<H", socket.AF_INET6) + struct.pack(">HI", 443, 7)
    raw += ipaddress.ip_address("fe80::1").packed + struct.pack("<I", 3)
    a = decode_sockaddr(raw)
    assert isinstance(a, InetAddr)
    assert (a.family, str(a.ip), a.port, a.flowinfo, a.scope_id) == (AF_INET6, "fe80::1", 443, 7, 3)
    assert encode_sockaddr(a) == raw
    assert a.text() == "[fe80::1]:443"
    short = decode_sockaddr(raw[:24])  # the kernel accepts RFC 2133's length
    assert isinstance(short, InetAddr) and short.scope_id == 0


@pytest.mark.parametrize(
    ("raw", "err"),
    [
        (b"", errno.EINVAL),
        (b"\x02", errno.EINVAL),
        (sin("1.2.3.4", 1)[:15], errno.EINVAL),
        (struct.pack("<H", socket.AF_INET6) + bytes(21), errno.EINVAL),
        (sin("1.2.3.4", 1) + bytes(113), errno.EINVAL),
    ],
)
def test_malformed_sockaddrs_get_the_kernels_errno(raw: bytes, err: int) -> None:
    with pytest.raises(SyscallError) as e:
        decode_sockaddr(raw)
    assert e.value.errno == err


def test_other_families_are_reported_not_decoded() -> None:
    assert decode_sockaddr(b"\x01\x00/tmp/sock\x00") == OtherAddr(1)
    assert decode_sockaddr(b"\x00\x00") == OtherAddr(0)


@given(st.binary(max_size=140))
def test_any_bytes_decode_or_raise_einval(raw: bytes) -> None:
    try:
        a = decode_sockaddr(raw)
    except SyscallError as e:
        assert e.errno == errno.EINVAL
        return
    if isinstance(a, InetAddr):
        again = decode_sockaddr(encode_sockaddr(a))
        assert again == a


def test_msghdr_limits() -> None:
    ok = MSGHDR.pack(0x1000, 16, 0x2000, 2, 0, 0, 0)
    m = decode_msghdr(ok)
    assert (m.name, m.namelen, m.iov, m.iovlen) == (0x1000, 16, 0x2000, 2)
    with pytest.raises(SyscallError) as e:
        decode_msghdr(MSGHDR.pack(0, 0, 0, 1025, 0, 0, 0))
    assert e.value.errno == errno.EMSGSIZE
    with pytest.raises(SyscallError) as e:
        decode_msghdr(MSGHDR.pack(0, 0, 0, 0, 8, 1 << 31, 0))
    assert e.value.errno == errno.ENOBUFS


def test_iovecs() -> None:
    assert decode_iovecs(struct.pack("<QQQQ", 1, 2, 3, 4)) == [(1, 2), (3, 4)]
    with pytest.raises(SyscallError) as e:
        decode_iovecs(struct.pack("<QQQQ", 1, 1 << 62, 3, 1 << 62))
    assert e.value.errno == errno.EINVAL


def cmsg(level: int, type_: int, data: bytes) -> bytes:
    n = 16 + len(data)
    return struct.pack("<QiI", n, level, type_) + data + bytes(-n % 8)


def test_control_messages_are_walked_like_the_kernel() -> None:
    raw = cmsg(1, 1, struct.pack("<ii", 3, 4)) + cmsg(0, 8, bytes(12))
    got = decode_cmsgs(raw)
    assert [(c.level, c.type, c.data) for c in got] == [
        (1, 1, struct.pack("<ii", 3, 4)),
        (0, 8, bytes(12)),
    ]
    assert decode_cmsgs(b"short") == []
    with pytest.raises(SyscallError) as e:
        decode_cmsgs(struct.pack("<QiI", 8, 1, 1))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(SyscallError):
        decode_cmsgs(struct.pack("<QiI", 100, 1, 1) + bytes(8))


@given(st.binary(max_size=300))
def test_control_messages_parse_or_raise_einval(raw: bytes) -> None:
    try:
        for c in decode_cmsgs(raw):
            assert len(c.data) <= len(raw) - 16
    except SyscallError as e:
        assert e.errno == errno.EINVAL


# --- DNS ---------------------------------------------------------------------
def query(name: str, qtype: int = dns.TYPE_A, msg_id: int = 0x1234) -> bytes:
    return dns.build_query(msg_id, name, qtype)


def test_a_query_and_its_answer() -> None:
    q = dns.parse_query(query("API.example.com", dns.TYPE_A))
    assert (q.id, q.name, q.qtype, q.qclass) == (0x1234, b"API.example.com", dns.TYPE_A, 1)
    addrs = (ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:2800::1"))
    reply = dns.answer(q, dns.NOERROR, addrs)
    r = dns.parse_response(reply)
    assert (r.id, r.rcode, r.truncated) == (0x1234, dns.NOERROR, False)
    assert r.addresses == addrs
    assert dns.parse_response(dns.answer(q, dns.NXDOMAIN)).rcode == dns.NXDOMAIN


def test_compressed_names_and_loops() -> None:
    head = struct.pack(">HHHHHH", 1, dns.QR, 1, 1, 0, 0)
    question = dns.encode_name("a.example.com") + struct.pack(">HH", 1, 1)
    # An answer whose name points back at the question's name.
    rr = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([1, 2, 3, 4])
    r = dns.parse_response(head + question + rr)
    assert r.addresses == (ipaddress.ip_address("1.2.3.4"),)
    loop = head + b"\xc0\x0c" + struct.pack(">HH", 1, 1)
    with pytest.raises(dns.DnsError, match="loop"):
        dns.parse_response(loop)
    forward = head + b"\xc0\x20" + bytes(40)
    with pytest.raises(dns.DnsError, match="loop"):
        dns.parse_response(forward)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (b"\x00\x01", "shorter than a header"),
        (struct.pack(">HHHHHH", 7, dns.QR, 1, 0, 0, 0), "not a query"),
        (struct.pack(">HHHHHH", 7, 0, 2, 0, 0, 0), "exactly one question"),
        (struct.pack(">HHHHHH", 7, 0, 1, 0, 0, 0) + b"\x05ab", "label runs past"),
        (struct.pack(">HHHHHH", 7, 0, 1, 0, 0, 0) + b"\x00\x00", "truncated question"),
        (struct.pack(">HHHHHH", 7, 0, 1, 0, 0, 0) + b"\x80", "unknown label type"),
    ],
)
def test_bad_queries(msg: bytes, reason: str) -> None:
    with pytest.raises(dns.DnsError, match=reason):
        dns.parse_query(msg)


@given(st.binary(max_size=600))
def test_any_bytes_parse_as_query_or_raise_dns_error(msg: bytes) -> None:
    try:
        q = dns.parse_query(msg)
    except dns.DnsError:
        return
    assert len(q.name) <= dns.MAX_NAME
    dns.parse_response(dns.answer(q, dns.NOERROR, (ipaddress.ip_address("1.2.3.4"),)))


@given(st.binary(max_size=600))
def test_any_bytes_parse_as_response_or_raise_dns_error(msg: bytes) -> None:
    with contextlib.suppress(dns.DnsError):
        dns.parse_response(msg)


@given(st.lists(st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True), min_size=1, max_size=5))
def test_names_round_trip(labels: list[str]) -> None:
    name = ".".join(labels)
    assert dns.parse_query(query(name)).name == name.encode()

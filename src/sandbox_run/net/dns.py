"""DNS messages (RFC 1035), only as much as the sandbox's resolver needs.

The guest's resolver asks the controller (questions for A and AAAA records);
the controller answers from its pins, and may itself ask an upstream server.
Both directions are parsed here, as pure functions: a message is either
decoded or ``DnsError`` is raised, never anything else.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .addresses import IPAddress

HEADER = struct.Struct(">HHHHHH")
QR = 0x8000
OPCODE_MASK = 0x7800
RD = 0x0100
RA = 0x0080
TC = 0x0200
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
TYPE_A, TYPE_CNAME, TYPE_AAAA, TYPE_OPT = 1, 5, 28, 41
CLASS_IN = 1
MAX_NAME = 255
MAX_MESSAGE = 65535
_MAX_POINTERS = 32


class DnsError(ValueError):
    """A malformed message.  ``id`` is its ID when the header could be read."""

    def __init__(self, reason: str, msg_id: int | None = None) -> None:
        super().__init__(reason)
        self.id = msg_id


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int
    name: bytes  # as asked, without the final dot; may hold any bytes
    qtype: int
    qclass: int
    question: bytes  # the raw question section, echoed in the answer


def _read_name(msg: bytes, off: int) -> tuple[bytes, int]:
    """The name at ``off`` (following compression pointers) and the offset after it."""
    labels: list[bytes] = []
    total = 0
    end: int | None = None
    jumps = 0
    while True:
        if off >= len(msg):
            raise DnsError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg):
                raise DnsError("truncated compression pointer")
            target = ((n & 0x3F) << 8) | msg[off + 1]
            if end is None:
                end = off + 2
            jumps += 1
            if jumps > _MAX_POINTERS or target >= off:
                raise DnsError("compression pointer loop")
            off = target
            continue
        if n & 0xC0:
            raise DnsError("unknown label type")
        off += 1
        if n == 0:
            break
        if off + n > len(msg):
            raise DnsError("label runs past the message")
        labels.append(msg[off : off + n])
        total += n + 1
        if total > MAX_NAME:
            raise DnsError("name too long")
        off += n
    return b".".join(labels), (end if end is not None else off)


def parse_query(msg: bytes) -> Query:
    """A question from the guest.  Exactly one question is accepted."""
    if len(msg) < HEADER.size:
        raise DnsError("message shorter than a header")
    msg_id, flags, qd, _an, _ns, _ar = HEADER.unpack_from(msg)
    if flags & QR:
        raise DnsError("not a query", msg_id)
    if qd != 1:
        raise DnsError("expected exactly one question", msg_id)
    try:
        name, off = _read_name(msg, HEADER.size)
    except DnsError as e:
        raise DnsError(str(e), msg_id) from None
    if off + 4 > len(msg):
        raise DnsError("truncated question", msg_id)
    qtype, qclass = struct.unpack_from(">HH", msg, off)
    return Query(msg_id, flags, name, qtype, qclass, msg[HEADER.size : off + 4])


def opcode(flags: int) -> int:
    return (flags & OPCODE_MASK) >> 11


def answer(query: Query, rcode: int, addrs: tuple[IPAddress, ...] = (), ttl: int = 60) -> bytes:
    """The response to ``query`` with A or AAAA records for ``addrs``."""
    records = []
    for a in addrs:
        rtype = TYPE_A if a.version == 4 else TYPE_AAAA
        # 0xC00C: a pointer to the name in the question, right after the header.
        rr = struct.pack(">HHHIH", 0xC00C, rtype, CLASS_IN, ttl, len(a.packed))
        records.append(rr + a.packed)
    flags = QR | (query.flags & (OPCODE_MASK | RD)) | RA | (rcode & 0xF)
    head = HEADER.pack(query.id, flags, 1, len(records), 0, 0)
    return head + query.question + b"".join(records)


def error_reply(msg_id: int, rcode: int) -> bytes:
    """A response with no question, for a message too broken to echo."""
    return HEADER.pack(msg_id, QR | RA | (rcode & 0xF), 0, 0, 0, 0)


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.encode("ascii").split(b"."):
        if not 0 < len(label) < 64:
            raise DnsError(f"bad label in {name!r}")
        out += bytes([len(label)]) + label
    if len(out) + 1 > MAX_NAME:
        raise DnsError("name too long")
    return out + b"\0"


def build_query(msg_id: int, name: str, qtype: int) -> bytes:
    """A recursive query for ``name`` (the controller's own, to an upstream server)."""
    return HEADER.pack(msg_id, RD, 1, 0, 0, 0) + encode_name(name) + struct.pack(">HH", qtype, 1)


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    rcode: int
    truncated: bool
    addresses: tuple[IPAddress, ...]


def parse_response(msg: bytes) -> Response:
    """An upstream server's answer: its rcode and every A/AAAA record in it.

    Records of any owner name are taken: a CNAME chain names other owners,
    and the server is the controller's own choice of authority.
    """
    if len(msg) < HEADER.size:
        raise DnsError("message shorter than a header")
    msg_id, flags, qd, an, _ns, _ar = HEADER.unpack_from(msg)
    if not flags & QR:
        raise DnsError("not a response", msg_id)
    off = HEADER.size
    for _ in range(qd):
        _name, off = _read_name(msg, off)
        off += 4
    addrs: list[IPAddress] = []
    for _ in range(an):
        _name, off = _read_name(msg, off)
        if off + 10 > len(msg):
            raise DnsError("truncated record", msg_id)
        rtype, rclass, _ttl, rdlen = struct.unpack_from(">HHIH", msg, off)
        off += 10
        if off + rdlen > len(msg):
            raise DnsError("record data runs past the message", msg_id)
        rdata = msg[off : off + rdlen]
        off += rdlen
        if rclass != CLASS_IN:
            continue
        if rtype == TYPE_A and rdlen == 4:
            addrs.append(ipaddress.IPv4Address(rdata))
        elif rtype == TYPE_AAAA and rdlen == 16:
            addrs.append(ipaddress.IPv6Address(rdata))
    return Response(msg_id, flags & 0xF, bool(flags & TC), tuple(dict.fromkeys(addrs)))

"""Socket structures as the x86-64 kernel lays them out: sockaddr, msghdr,
iovec, cmsghdr, mmsghdr.  Pure functions from bytes to values and back.

Every decoder either returns a value or raises ``SyscallError`` with the
errno the kernel gives for the same malformed input; nothing else.  The
controller decodes guest memory once and acts only on the decoded values:
the kernel never sees the guest's bytes.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass

from ..errors import SyscallError
from .addresses import IPAddress

AF_UNSPEC = 0
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
#: sizeof(struct sockaddr_storage): longer addresses are EINVAL.
SOCKADDR_MAX = 128
SOCKADDR_IN_LEN = 16
SOCKADDR_IN6_LEN = 28
SIN6_LEN_RFC2133 = 24  # the kernel accepts an IPv6 address without the scope id

_IN = struct.Struct("<H2s4s8x")
_IN6 = struct.Struct("<H2s4s16sI")
_U16BE = struct.Struct(">H")
_U32BE = struct.Struct(">I")

MSGHDR = struct.Struct("<QI4xQQQQi4x")  # name, namelen, iov, iovlen, control, controllen, flags
MMSGHDR_SIZE = MSGHDR.size + 8  # + unsigned int msg_len, padded
IOVEC = struct.Struct("<QQ")
CMSGHDR = struct.Struct("<QiI")  # len, level, type
UIO_MAXIOV = 1024
SOL_SOCKET = 1
SCM_RIGHTS = 1
SCM_CREDENTIALS = 2


@dataclass(frozen=True, slots=True)
class InetAddr:
    """An IPv4 or IPv6 socket address."""

    family: int  # AF_INET or AF_INET6: the sockaddr's own family
    ip: IPAddress  # as written (an IPv4-mapped IPv6 address stays IPv6)
    port: int
    flowinfo: int = 0
    scope_id: int = 0

    def text(self) -> str:
        return f"[{self.ip}]:{self.port}" if self.family == AF_INET6 else f"{self.ip}:{self.port}"

    def for_socket(self) -> tuple[str, int] | tuple[str, int, int, int]:
        """The address in the form Python's socket module takes."""
        if self.family == AF_INET6:
            return (str(self.ip), self.port, self.flowinfo, self.scope_id)
        return (str(self.ip), self.port)


@dataclass(frozen=True, slots=True)
class OtherAddr:
    """A sockaddr of a family the network layer does not serve."""

    family: int


SockAddr = InetAddr | OtherAddr


def decode_sockaddr(data: bytes) -> SockAddr:
    """A sockaddr the guest passed (``data`` is exactly its ``addrlen`` bytes)."""
    n = len(data)
    if n < 2 or n > SOCKADDR_MAX:
        raise SyscallError(errno.EINVAL, "bad address length")
    family = int.from_bytes(data[:2], "little")
    if family == AF_INET:
        if n < SOCKADDR_IN_LEN:
            raise SyscallError(errno.EINVAL, "short IPv4 address")
        _fam, port, addr = _IN.unpack_from(data)
        return InetAddr(AF_INET, ipaddress.IPv4Address(addr), _U16BE.unpack(port)[0])
    if family == AF_INET6:
        if n < SIN6_LEN_RFC2133:
            raise SyscallError(errno.EINVAL, "short IPv6 address")
        padded = data[:SOCKADDR_IN6_LEN].ljust(SOCKADDR_IN6_LEN, b"\0")
        _fam, port, flow, addr, scope = _IN6.unpack(padded)
        return InetAddr(
            AF_INET6,
            ipaddress.IPv6Address(addr),
            _U16BE.unpack(port)[0],
            _U32BE.unpack(flow)[0],
            scope if n >= SOCKADDR_IN6_LEN else 0,
        )
    return OtherAddr(family)


def encode_sockaddr(addr: InetAddr) -> bytes:
    port = _U16BE.pack(addr.port)
    if addr.family == AF_INET6:
        return _IN6.pack(AF_INET6, port, _U32BE.pack(addr.flowinfo), addr.ip.packed, addr.scope_id)
    return _IN.pack(AF_INET, port, addr.ip.packed)


def from_python(family: int, addr: object) -> InetAddr:
    """An address as Python's socket module returns it (getpeername, accept)."""
    if family == socket.AF_INET6 and isinstance(addr, tuple) and len(addr) == 4:
        host, port, flow, scope = addr
        return InetAddr(AF_INET6, ipaddress.IPv6Address(host.split("%")[0]), port, flow, scope)
    if family == socket.AF_INET and isinstance(addr, tuple) and len(addr) == 2:
        return InetAddr(AF_INET, ipaddress.IPv4Address(addr[0]), addr[1])
    raise ValueError(f"not an internet address: {addr!r}")


@dataclass(frozen=True, slots=True)
class MsgHdr:
    name: int  # guest pointers and lengths, undecoded
    namelen: int
    iov: int
    iovlen: int
    control: int
    controllen: int


def decode_msghdr(data: bytes) -> MsgHdr:
    if len(data) != MSGHDR.size:
        raise SyscallError(errno.EFAULT, "short msghdr")
    name, namelen, iov, iovlen, control, controllen, _flags = MSGHDR.unpack(data)
    if iovlen > UIO_MAXIOV:
        raise SyscallError(errno.EMSGSIZE, "too many iovecs")
    if controllen > 0x7FFF_FFFF:
        raise SyscallError(errno.ENOBUFS, "control buffer too large")
    return MsgHdr(name, namelen, iov, iovlen, control, controllen)


def decode_iovecs(data: bytes) -> list[tuple[int, int]]:
    """(base, length) pairs; the kernel refuses a total above SSIZE_MAX."""
    if len(data) % IOVEC.size:
        raise SyscallError(errno.EFAULT, "short iovec array")
    out = [IOVEC.unpack_from(data, i) for i in range(0, len(data), IOVEC.size)]
    total = 0
    for _base, length in out:
        total += length
        if length > 0x7FFF_FFFF_FFFF_FFFF or total > 0x7FFF_FFFF_FFFF_FFFF:
            raise SyscallError(errno.EINVAL, "iovec lengths overflow")
    return out


@dataclass(frozen=True, slots=True)
class Cmsg:
    level: int
    type: int
    data: bytes


def _align(n: int) -> int:
    return (n + 7) & ~7


def decode_cmsgs(data: bytes) -> list[Cmsg]:
    """The control messages of a sendmsg, walked as the kernel walks them."""
    out = []
    off = 0
    n = len(data)
    while n - off >= CMSGHDR.size:
        length, level, type_ = CMSGHDR.unpack_from(data, off)
        if length < CMSGHDR.size or length > n - off:
            raise SyscallError(errno.EINVAL, "bad control message length")
        out.append(Cmsg(level, type_, data[off + CMSGHDR.size : off + length]))
        off += _align(length)
    return out


def msg_len_offset(index: int) -> int:
    """Offset of ``msg_len`` of entry ``index`` in an mmsghdr array."""
    return index * MMSGHDR_SIZE + MSGHDR.size

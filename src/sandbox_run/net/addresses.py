"""Address classes: which destinations are special and need an IP literal.

A destination in any block below is denied unless the policy lists it by an
IP literal (a single address, or a network inside the same block: see
``allowlist``).  Everything else is *public*.  The table is ours rather than
``ipaddress.is_global``, whose answers have changed between Python versions.

IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are IPv4 on the wire, so they
are normalised to IPv4 before any check.  Other encodings that carry an IPv4
address inside IPv6 (NAT64, 6to4, Teredo) are special as a whole: a gateway
would deliver them to the embedded address, which the policy cannot see.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Special:
    """A special-purpose block and the class name used in audit reasons."""

    kind: str
    network: IPNetwork


_TABLE_TEXT = """
0.0.0.0/8            this-network
0.0.0.0/32           unspecified
10.0.0.0/8           private
100.64.0.0/10        shared
100.100.100.200/32   metadata
127.0.0.0/8          loopback
169.254.0.0/16       link-local
169.254.169.254/32   metadata
169.254.170.2/32     metadata
172.16.0.0/12        private
192.0.0.0/24         reserved
192.0.2.0/24         documentation
192.88.99.0/24       reserved
192.168.0.0/16       private
198.18.0.0/15        reserved
198.51.100.0/24      documentation
203.0.113.0/24       documentation
224.0.0.0/4          multicast
240.0.0.0/4          reserved
255.255.255.255/32   broadcast
::/128               unspecified
::1/128              loopback
::/96                reserved
64:ff9b::/96         nat64
64:ff9b:1::/48       nat64
100::/64             reserved
2001::/32            teredo
2001:2::/48          reserved
2001:db8::/32        documentation
2002::/16            6to4
3fff::/20            documentation
fc00::/7             private
fd00:ec2::254/128    metadata
fe80::/10            link-local
fec0::/10            private
ff00::/8             multicast
"""


def _table() -> tuple[Special, ...]:
    out = []
    for line in _TABLE_TEXT.strip().splitlines():
        net, kind = line.split()
        out.append(Special(kind, ipaddress.ip_network(net)))
    # Most specific first: a metadata /32 wins over its link-local /16.
    out.sort(key=lambda s: -s.network.prefixlen)
    return tuple(out)


SPECIAL: tuple[Special, ...] = _table()


def normalize(ip: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 becomes the IPv4 address it stands for."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def normalize_network(net: IPNetwork) -> IPNetwork:
    """A network inside ::ffff:0:0/96 becomes the IPv4 network it stands for."""
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((int(mapped), net.prefixlen - 96))
    return net


def _ranges(version: int) -> tuple[tuple[int, int, Special], ...]:
    # (first, last, block) as integers, most specific first.
    return tuple(
        (int(s.network.network_address), int(s.network.broadcast_address), s)
        for s in SPECIAL
        if s.network.version == version
    )


_RANGES = {4: _ranges(4), 6: _ranges(6)}


def classify(ip: IPAddress) -> Special | None:
    """The most specific special block holding ``ip``, or None if it is public."""
    ip = normalize(ip)
    n = int(ip)
    for first, last, s in _RANGES[ip.version]:
        if first <= n <= last:
            return s
    return None


def parse_address(text: str) -> IPAddress:
    """An IP address written as text (IPv6 without brackets).  ValueError if not one."""
    return normalize(ipaddress.ip_address(text))

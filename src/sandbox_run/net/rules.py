"""Allow-list entries: parsing and matching, no I/O.

Destination rules, as written on the command line and in policy files::

    example.com:443          one name, TCP port 443
    *.example.com:443        any name below example.com (not example.com itself)
    *:443                    any name, and any public address
    93.184.216.34:80         an IPv4 literal
    10.0.0.0/8:5432          an IPv4 network
    [2001:db8::1]:443        an IPv6 literal, in brackets
    [fd00::/8]:80            an IPv6 network
    127.0.0.1:8000-8010      a port range
    udp:10.0.0.53:53         UDP; without a prefix (or with tcp:) a rule is TCP

Listening ports (TCP, loopback only): ``8080``, ``9000-9010``, or ``0`` for
a port the kernel chooses.

Every parser raises ``RuleError`` with a one-line message naming the problem.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from .addresses import IPAddress, IPNetwork, normalize, normalize_network

MAX_NAME = 253
_DIGITS = re.compile(r"[0-9]{1,5}\Z")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\Z")


class RuleError(ValueError):
    """A rule, port, name or address that cannot be parsed."""


class Proto(enum.Enum):
    TCP = "tcp"
    UDP = "udp"


class HostKind(enum.Enum):
    NAME = "name"  # exactly this name
    SUFFIX = "suffix"  # any name below it
    ANY = "any"  # any name, any public address
    NET = "net"  # an IP literal or network


@dataclass(frozen=True, slots=True)
class PortRange:
    low: int
    high: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One allowed destination pattern."""

    proto: Proto
    kind: HostKind
    host: str  # the name, the suffix without "*.", "*", or the network as text
    ports: PortRange
    network: IPNetwork | None = None  # for NET rules

    def __str__(self) -> str:
        if self.kind is HostKind.NET and self.network is not None:
            net = self.network
            text = str(net.network_address) if net.num_addresses == 1 else str(net)
            host = f"[{text}]" if net.version == 6 else text
        elif self.kind is HostKind.SUFFIX:
            host = f"*.{self.host}"
        else:
            host = self.host
        prefix = "udp:" if self.proto is Proto.UDP else ""
        return f"{prefix}{host}:{self.ports}"

    def matches_name(self, name: str) -> bool:
        """Whether this rule covers the (normalised) name."""
        if self.kind is HostKind.NAME:
            return name == self.host
        if self.kind is HostKind.SUFFIX:
            return name.endswith("." + self.host)
        return self.kind is HostKind.ANY


def normalize_name(text: str) -> str:
    """A host name in canonical form (lower case, no final dot), or RuleError."""
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > MAX_NAME:
        raise RuleError(f"{text!r} is not a valid host name")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise RuleError(f"{text!r} is not a valid host name (letters, digits, '-', '_')")
    if _is_numeric_name(name):
        raise RuleError(f"{text!r} looks like an IP address but is not one")
    return name


def _is_numeric_name(name: str) -> bool:
    # "1.2.3" or "300.1.1.1": inet_aton-style forms a resolver may read as
    # addresses; refuse them as names to avoid two meanings.
    return all(label.isdigit() for label in name.split("."))


def parse_port_range(text: str, *, allow_zero: bool = False) -> PortRange:
    low_s, dash, high_s = text.partition("-")
    if not _DIGITS.match(low_s) or (dash and not _DIGITS.match(high_s)):
        raise RuleError(f"bad port {text!r}: expected a number or a range LOW-HIGH")
    low = int(low_s)
    high = int(high_s) if dash else low
    least = 0 if allow_zero else 1
    if not (least <= low <= 65535 and least <= high <= 65535) or low > high:
        raise RuleError(f"bad port {text!r}: ports are {least} to 65535, low before high")
    if allow_zero and low == 0 and high != 0:
        raise RuleError(f"bad port {text!r}: 0 (a port the kernel picks) stands alone")
    return PortRange(low, high)


def _parse_network(text: str, spec: str) -> IPNetwork:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise RuleError(f"{spec!r}: {e}") from None
    return normalize_network(net)


def parse_rule(spec: str) -> Rule:
    """Parse one destination rule (see the module docstring)."""
    if not isinstance(spec, str):
        raise RuleError(f"expected a string like HOST:PORT, got {spec!r}")
    text = spec.strip()
    proto = Proto.TCP
    low = text.lower()
    for p in Proto:
        if low.startswith(p.value + ":"):
            proto = p
            text = text[len(p.value) + 1 :]
            break
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or not rest.startswith(":"):
            raise RuleError(f"{spec!r}: write IPv6 addresses as [ADDRESS]:PORT")
        port_text = rest[1:]
        if "." in host and ":" not in host:
            raise RuleError(f"{spec!r}: brackets are for IPv6 addresses only")
        net = _parse_network(host, spec)
        return Rule(proto, HostKind.NET, str(net), parse_port_range(port_text), net)
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise RuleError(f"{spec!r}: expected HOST:PORT (e.g. example.com:443)")
    if ":" in host:
        prefix = host.split(":", 1)[0]
        if prefix.isalpha():
            raise RuleError(f"{spec!r}: unknown protocol {prefix!r} (tcp or udp)")
        raise RuleError(f"{spec!r}: write IPv6 addresses in brackets, [ADDRESS]:PORT")
    ports = parse_port_range(port_text)
    if host == "*":
        return Rule(proto, HostKind.ANY, "*", ports)
    if _looks_like_ip(host):
        net = _parse_network(host, spec)
        return Rule(proto, HostKind.NET, str(net), ports, net)
    if host.startswith("*."):
        try:
            return Rule(proto, HostKind.SUFFIX, normalize_name(host[2:]), ports)
        except RuleError as e:
            raise RuleError(f"{spec!r}: {e}") from None
    if "*" in host:
        raise RuleError(f"{spec!r}: a wildcard may only be a whole first label, as *.example.com")
    try:
        return Rule(proto, HostKind.NAME, normalize_name(host), ports)
    except RuleError as e:
        raise RuleError(f"{spec!r}: {e}") from None


def _looks_like_ip(host: str) -> bool:
    addr = host.split("/", 1)[0]
    return bool(addr) and all(c in "0123456789." for c in addr)


def parse_listen(spec: str | int) -> PortRange:
    """A listening port or range; ``0`` allows a port the kernel picks."""
    if isinstance(spec, bool) or not isinstance(spec, (str, int)):
        raise RuleError(f'expected a port like "8080", got {spec!r}')
    return parse_port_range(str(spec).strip(), allow_zero=True)


def parse_host_address(name: str, text: object) -> IPAddress:
    """One address of a policy hosts entry."""
    if not isinstance(text, str):
        raise RuleError(f"hosts entry {name!r}: expected an IP address, got {text!r}")
    try:
        return normalize(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise RuleError(f"hosts entry {name!r}: {text!r} is not an IP address") from None

"""Allow-list rules, listening ports, host names and address classes: pure parsing."""

from __future__ import annotations

import ipaddress

import pytest

from sandbox_run.net.addresses import classify, normalize, normalize_network
from sandbox_run.net.rules import (
    HostKind,
    PortRange,
    Proto,
    RuleError,
    normalize_name,
    parse_listen,
    parse_rule,
)


@pytest.mark.parametrize(
    ("spec", "proto", "kind", "host", "ports"),
    [
        ("example.com:443", Proto.TCP, HostKind.NAME, "example.com", (443, 443)),
        ("Example.COM.:443", Proto.TCP, HostKind.NAME, "example.com", (443, 443)),
        ("tcp:example.com:80", Proto.TCP, HostKind.NAME, "example.com", (80, 80)),
        ("*.example.com:443", Proto.TCP, HostKind.SUFFIX, "example.com", (443, 443)),
        ("*:443", Proto.TCP, HostKind.ANY, "*", (443, 443)),
        ("udp:10.0.0.53:53", Proto.UDP, HostKind.NET, "10.0.0.53/32", (53, 53)),
        ("127.0.0.1:8000-8010", Proto.TCP, HostKind.NET, "127.0.0.1/32", (8000, 8010)),
        ("10.0.0.0/8:5432", Proto.TCP, HostKind.NET, "10.0.0.0/8", (5432, 5432)),
        ("[::1]:8080", Proto.TCP, HostKind.NET, "::1/128", (8080, 8080)),
        ("[fd00::/8]:80", Proto.TCP, HostKind.NET, "fd00::/8", (80, 80)),
        ("udp:[2001:db8::1]:53", Proto.UDP, HostKind.NET, "2001:db8::1/128", (53, 53)),
        ("[::ffff:127.0.0.1]:80", Proto.TCP, HostKind.NET, "127.0.0.1/32", (80, 80)),
        ("_svc.example.com:1", Proto.TCP, HostKind.NAME, "_svc.example.com", (1, 1)),
    ],
)
def test_rules_parse(
    spec: str, proto: Proto, kind: HostKind, host: str, ports: tuple[int, int]
) -> None:
    r = parse_rule(spec)
    assert (r.proto, r.kind, r.host, (r.ports.low, r.ports.high)) == (proto, kind, host, ports)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("example.com", "expected HOST:PORT"),
        (":443", "expected HOST:PORT"),
        ("example.com:", "bad port"),
        ("example.com:0", "ports are 1 to 65535"),
        ("example.com:65536", "ports are 1 to 65535"),
        ("example.com:+80", "bad port"),
        ("example.com:80-70", "low before high"),
        ("example.com:http", "bad port"),
        ("::1:80", "write IPv6 addresses in brackets"),
        ("[::1:80", "write IPv6 addresses as"),
        ("[127.0.0.1]:80", "brackets are for IPv6"),
        ("a*.example.com:80", "a wildcard may only be a whole first label"),
        ("*.*.example.com:80", "not a valid host name"),
        ("exa mple.com:80", "not a valid host name"),
        ("-x.example.com:80", "not a valid host name"),
        ("x" * 64 + ".com:80", "not a valid host name"),
        ("1.2.3:80", "does not appear to be an IPv4 or IPv6 network"),
        ("300.1.1.1:80", "does not appear to be an IPv4 or IPv6 network"),
        ("10.0.0.1/8:80", "has host bits set"),
        ("ftp:example.com:21", "unknown protocol 'ftp'"),
        ("bücher.example:80", "not a valid host name"),
    ],
)
def test_bad_rules_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rule(spec)


def test_rules_print_as_written_in_canonical_form() -> None:
    for spec in (
        "example.com:443",
        "*.example.com:443",
        "*:443",
        "udp:10.0.0.53:53",
        "10.0.0.0/8:1-1024",
        "[::1]:8080",
        "[fd00::/8]:80",
    ):
        assert str(parse_rule(spec)) == spec


def test_wildcards_match_names_below_only() -> None:
    r = parse_rule("*.example.com:443")
    assert r.matches_name("a.example.com")
    assert r.matches_name("a.b.example.com")
    assert not r.matches_name("example.com")
    assert not r.matches_name("badexample.com")
    assert not r.matches_name("example.com.evil")
    exact = parse_rule("example.com:443")
    assert exact.matches_name("example.com") and not exact.matches_name("a.example.com")


@pytest.mark.parametrize(
    ("text", "ports"),
    [("8080", (8080, 8080)), ("0", (0, 0)), ("9000-9010", (9000, 9010)), (443, (443, 443))],
)
def test_listen_ports(text: str | int, ports: tuple[int, int]) -> None:
    assert parse_listen(text) == PortRange(*ports)


@pytest.mark.parametrize("bad", ["0-10", "-1", "x", "70000", True, None, "8080/tcp"])
def test_bad_listen_ports(bad: object) -> None:
    with pytest.raises(RuleError):
        parse_listen(bad)  # type: ignore[arg-type]


def test_names_are_normalised_and_checked() -> None:
    assert normalize_name("API.Example.Com.") == "api.example.com"
    for bad in ("", ".", "a..b", "1.2.3.4", "a" * 254, "exa_mple-.com", "ex\x00.com"):
        with pytest.raises(RuleError):
            normalize_name(bad)


@pytest.mark.parametrize(
    ("addr", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("100.100.100.200", "metadata"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this-network"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::7f00:1", "reserved"),
        ("fd00::1", "private"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "metadata"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("64:ff9b::a9fe:a9fe", "nat64"),
        ("2002:a9fe:a9fe::1", "6to4"),
        ("2001:0:a9fe:a9fe::1", "teredo"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_special_addresses_are_classified(addr: str, kind: str) -> None:
    special = classify(ipaddress.ip_address(addr))
    assert special is not None and special.kind == kind


@pytest.mark.parametrize(
    "addr",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "172.32.0.1",
        "100.128.0.1",
    ],
)
def test_public_addresses_are_not_special(addr: str) -> None:
    assert classify(ipaddress.ip_address(addr)) is None


def test_mapped_addresses_are_ipv4() -> None:
    assert normalize(ipaddress.ip_address("::ffff:10.0.0.1")) == ipaddress.ip_address("10.0.0.1")
    net = normalize_network(ipaddress.ip_network("::ffff:10.0.0.0/104"))
    assert net == ipaddress.ip_network("10.0.0.0/8")

"""Connect-time decisions, pins and the network policy schema: no processes."""

from __future__ import annotations

import ipaddress
import pathlib

import pytest

from sandbox_run import Policy, PolicyError
from sandbox_run.net.allowlist import AllowList
from sandbox_run.net.config import NetworkPolicy
from sandbox_run.net.etc import hosts_file
from sandbox_run.net.rules import Proto

TCP, UDP = Proto.TCP, Proto.UDP


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def allow(*specs: str, **kw: object) -> AllowList:
    return AllowList(NetworkPolicy(allow=specs, **kw))  # type: ignore[arg-type]


def test_nothing_is_allowed_by_default() -> None:
    a = AllowList(NetworkPolicy())
    v = a.check(TCP, ip("93.184.216.34"), 443)
    assert not v.allowed and v.reason == "tcp 93.184.216.34:443 is not in the allow-list"
    assert not NetworkPolicy().enabled


def test_ip_literals_allow_exactly_their_address_port_and_protocol() -> None:
    a = allow("127.0.0.5:8080", "udp:[::1]:53")
    assert a.check(TCP, ip("127.0.0.5"), 8080).allowed
    assert a.check(TCP, ip("::ffff:127.0.0.5"), 8080).allowed
    assert not a.check(TCP, ip("127.0.0.5"), 8081).allowed
    assert not a.check(UDP, ip("127.0.0.5"), 8080).allowed
    assert not a.check(TCP, ip("127.0.0.6"), 8080).allowed
    assert a.check(UDP, ip("::1"), 53).allowed
    assert not a.check(TCP, ip("::1"), 53).allowed


def test_special_addresses_need_a_literal_inside_their_block() -> None:
    a = allow("0.0.0.0/0:80", "[::/0]:80", "10.0.0.0/8:5432", "169.254.0.0/16:80")
    assert a.check(TCP, ip("93.184.216.34"), 80).allowed
    v = a.check(TCP, ip("127.0.0.1"), 80)
    assert not v.allowed and v.reason == "loopback address 127.0.0.1:80 is not listed by IP literal"
    assert not a.check(TCP, ip("::1"), 80).allowed
    assert not a.check(TCP, ip("fd00::1"), 80).allowed
    assert a.check(TCP, ip("10.9.8.7"), 5432).allowed
    assert a.check(TCP, ip("169.254.1.1"), 80).allowed
    # The metadata address is a block of its own: the link-local /16 does not list it.
    v = a.check(TCP, ip("169.254.169.254"), 80)
    assert not v.allowed and v.reason.startswith("metadata address")
    assert allow("169.254.169.254:80").check(TCP, ip("169.254.169.254"), 80).allowed


def test_names_allow_only_pinned_addresses() -> None:
    a = allow("example.com:443", "*.example.org:443")
    assert a.permits_name("example.com") and a.permits_name("api.example.org")
    assert not a.permits_name("example.org") and not a.permits_name("evil.com")
    assert not a.check(TCP, ip("93.184.216.34"), 443).allowed  # not resolved yet
    a.pins.add("example.com", (ip("93.184.216.34"),))
    v = a.check(TCP, ip("93.184.216.34"), 443)
    assert v.allowed and v.name == "example.com"
    assert v.reason == "example.com (pinned to 93.184.216.34) is listed as example.com:443"
    v = a.check(TCP, ip("93.184.216.34"), 80)
    assert not v.allowed and "(example.com) is not listed for tcp port 80" in v.reason
    with pytest.raises(ValueError, match="already pinned"):
        a.pins.add("example.com", (ip("1.2.3.4"),))


def test_resolved_special_addresses_are_not_pinnable_unless_listed() -> None:
    a = allow("*.example.com:443", "10.1.2.3:443")
    assert a.pinnable(ip("93.184.216.34")) is None
    assert a.pinnable(ip("10.1.2.3")) is None
    assert a.pinnable(ip("127.0.0.1")) == "loopback address 127.0.0.1 is not listed by IP literal"
    assert a.pinnable(ip("::ffff:169.254.169.254")) is not None


def test_policy_hosts_are_literals_for_names_a_rule_covers() -> None:
    a = allow("api.test:8080", hosts={"api.test": "127.0.0.5", "other.test": ["127.0.0.6"]})
    assert a.check(TCP, ip("127.0.0.5"), 8080).allowed
    assert not a.check(TCP, ip("127.0.0.6"), 8080).allowed
    assert a.static_hosts() == (("api.test", (ip("127.0.0.5"),)),)
    assert b"127.0.0.5\tapi.test\n" in hosts_file(a.static_hosts())
    assert b"other.test" not in hosts_file(a.static_hosts())


def test_star_allows_any_public_address_on_its_port() -> None:
    a = allow("*:443")
    assert a.check(TCP, ip("8.8.8.8"), 443).allowed
    assert not a.check(TCP, ip("8.8.8.8"), 80).allowed
    assert not a.check(TCP, ip("127.0.0.1"), 443).allowed
    assert not a.check(TCP, ip("169.254.169.254"), 443).allowed
    assert a.permits_name("anything.example")


def test_listening_ports() -> None:
    a = AllowList(NetworkPolicy(listen=("0", "9000-9001")))
    assert a.listening and a.may_listen(0) and a.may_listen(9001)
    assert not a.may_listen(8080)
    assert NetworkPolicy(listen=("0",)).enabled


def test_policy_network_section_from_toml(tmp_path: pathlib.Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    f = tmp_path / "p.toml"
    f.write_text(
        "[network]\n"
        'allow = ["example.com:443", "udp:10.0.0.53:53"]\n'
        'listen = ["0"]\n'
        "max_connections = 4\n"
        'max_bytes = "10MiB"\n'
        'resolver = "127.0.0.1:5353"\n'
        'ca_file = "ca.pem"\n'
        "[network.hosts]\n"
        '"api.test" = "127.0.0.5"\n'
        '"v6.test" = ["::1", "127.0.0.7"]\n'
    )
    n = Policy.from_toml(f).network
    assert n.allow == ("example.com:443", "udp:10.0.0.53:53")
    assert n.listen == ("0",) and n.max_connections == 4 and n.max_bytes == 10 << 20
    assert n.resolver_address == (ip("127.0.0.1"), 5353)
    assert n.ca_file == str(tmp_path / "ca.pem")
    assert dict(n.host_map)["v6.test"] == (ip("::1"), ip("127.0.0.7"))
    again = Policy.from_dict(Policy.from_toml(f).to_dict())
    assert again.network == n


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"allow": "example.com:443"}, "'allow' must be a list"),
        ({"allow": ["example.com"]}, "network: 'example.com': expected HOST:PORT"),
        ({"allow": [443]}, "expected strings like HOST:PORT"),
        ({"listen": ["http"]}, "bad port 'http'"),
        ({"hosts": {"a.test": "not-an-ip"}}, "'not-an-ip' is not an IP address"),
        ({"hosts": {"bad name": "1.2.3.4"}}, "not a valid host name"),
        ({"max_connections": 0}, "max_connections: expected 1 to 4096"),
        ({"max_bytes": 100}, "give a unit"),
        ({"resolver": "dns.google:53"}, 'expected "system" or an IP address'),
        ({"ca_file": "missing.pem"}, "is not a file"),
        ({"allow_net": []}, "unknown key 'allow_net'"),
    ],
)
def test_bad_network_sections_name_the_problem(table: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict({"network": table})

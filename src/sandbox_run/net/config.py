"""The ``[network]`` part of a policy: what the guest may reach.

Nothing is reachable by default.  Every value is checked when the policy is
built, so a typo fails before any guest starts, with the offending entry named.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import PolicyError
from .addresses import IPAddress
from .rules import PortRange, Rule, RuleError, parse_host_address, parse_listen, parse_rule
from .rules import normalize_name as _normalize_name

DEFAULT_MAX_CONNECTIONS = 32
MAX_MAX_CONNECTIONS = 4096
#: ``resolver`` value: the controller's own getaddrinfo (the host's resolver).
SYSTEM_RESOLVER = "system"


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Outbound destinations, listening ports, names and limits.

    ``allow``: destination rules (``example.com:443``, ``*.example.com:443``,
    ``udp:10.0.0.53:53``, ``[::1]:8080``, ``127.0.0.1:8000-8010``).
    ``listen``: TCP ports the guest may listen on, loopback only (``"0"``: a
    port the kernel picks).  ``hosts``: names the policy maps to addresses
    itself, like /etc/hosts (``{"api.test": "127.0.0.5"}``); these addresses
    count as IP literals written by the policy.  ``max_connections``:
    connections open at once.  ``max_bytes``: optional cap on bytes sent and
    received over all connections (connections are then relayed through the
    controller).  ``resolver``: ``"system"`` or ``"HOST:PORT"`` of a DNS
    server the controller asks.  ``ca_file``: extra trusted CA certificates
    (PEM), added to the system bundle the guest sees.
    """

    allow: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    hosts: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_bytes: int | None = None
    resolver: str = SYSTEM_RESOLVER
    ca_file: str | None = None
    # Parsed forms, filled in by __post_init__.
    rules: tuple[Rule, ...] = field(default=(), init=False, repr=False, compare=False)
    listen_ports: tuple[PortRange, ...] = field(default=(), init=False, repr=False, compare=False)
    host_map: tuple[tuple[str, tuple[IPAddress, ...]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )
    resolver_address: tuple[IPAddress, int] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        allow = _strings(self.allow, "network.allow")
        listen = tuple(str(p) if isinstance(p, int) else p for p in _seq(self.listen, "listen"))
        setattr_(self, "allow", allow)
        setattr_(self, "listen", listen)
        try:
            setattr_(self, "rules", tuple(parse_rule(s) for s in allow))
            setattr_(self, "listen_ports", tuple(parse_listen(p) for p in listen))
            setattr_(self, "host_map", _parse_hosts(self.hosts))
            setattr_(self, "resolver_address", _parse_resolver(self.resolver))
        except RuleError as e:
            raise PolicyError(f"network: {e}") from None
        if not isinstance(self.hosts, Mapping):
            raise PolicyError("network.hosts: expected a table of NAME = ADDRESS")
        setattr_(self, "hosts", dict(self.hosts))
        mc = self.max_connections
        if isinstance(mc, bool) or not isinstance(mc, int) or not 1 <= mc <= MAX_MAX_CONNECTIONS:
            raise PolicyError(
                f"network.max_connections: expected 1 to {MAX_MAX_CONNECTIONS}, got {mc!r}"
            )
        mb = self.max_bytes
        if mb is not None and (isinstance(mb, bool) or not isinstance(mb, int) or mb < 1):
            raise PolicyError(f"network.max_bytes: expected a positive number of bytes, got {mb!r}")
        ca = self.ca_file
        if ca is not None and (not isinstance(ca, str) or not os.path.isfile(ca)):
            raise PolicyError(f"network.ca_file: {self.ca_file} is not a file")

    @property
    def enabled(self) -> bool:
        """Whether the guest gets any network at all."""
        return bool(self.rules or self.listen_ports)

    def __hash__(self) -> int:
        return hash((self.allow, self.listen, tuple(sorted(self.host_map)), self.max_connections))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str, where: str) -> NetworkPolicy:
        """From a parsed ``[network]`` table; ``ca_file`` is relative to ``base_dir``."""
        from ..policy.units import parse_size

        known = {"allow", "listen", "hosts", "max_connections", "max_bytes", "resolver", "ca_file"}
        for key in data:
            if key not in known:
                raise PolicyError(
                    f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})"
                )
        kw: dict[str, Any] = {}
        for key in ("allow", "listen"):
            if key in data:
                if not isinstance(data[key], list):
                    raise PolicyError(f"{where}: '{key}' must be a list of strings")
                kw[key] = tuple(data[key])
        if "hosts" in data:
            hosts = data["hosts"]
            if not isinstance(hosts, Mapping):
                raise PolicyError(f"{where}: 'hosts' must be a table of NAME = ADDRESS")
            kw["hosts"] = {k: tuple(v) if isinstance(v, list) else v for k, v in hosts.items()}
        if "max_connections" in data:
            kw["max_connections"] = data["max_connections"]
        if "max_bytes" in data:
            kw["max_bytes"] = parse_size(data["max_bytes"], "network.max_bytes")
        if "resolver" in data:
            kw["resolver"] = data["resolver"]
        if "ca_file" in data:
            if not isinstance(data["ca_file"], str):
                raise PolicyError(f"{where}: 'ca_file' must be a path")
            kw["ca_file"] = os.path.join(base_dir, os.path.expanduser(data["ca_file"]))
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        from ..policy.units import format_size

        out: dict[str, Any] = {
            "allow": list(self.allow),
            "listen": list(self.listen),
            "hosts": {k: list(v) if isinstance(v, tuple) else v for k, v in self.hosts.items()},
            "max_connections": self.max_connections,
            "resolver": self.resolver,
        }
        if self.max_bytes is not None:
            out["max_bytes"] = format_size(self.max_bytes)
        if self.ca_file is not None:
            out["ca_file"] = self.ca_file
        return out


def _seq(value: object, what: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise PolicyError(f"network.{what}: expected a list, got {value!r}")
    return tuple(value)


def _strings(value: object, what: str) -> tuple[str, ...]:
    items = _seq(value, what.split(".")[-1])
    for s in items:
        if not isinstance(s, str):
            raise PolicyError(f"{what}: expected strings like HOST:PORT, got {s!r}")
    return items


def _parse_hosts(hosts: object) -> tuple[tuple[str, tuple[IPAddress, ...]], ...]:
    if not isinstance(hosts, Mapping):
        raise RuleError("hosts: expected a table of NAME = ADDRESS")
    out: dict[str, tuple[IPAddress, ...]] = {}
    for raw, value in hosts.items():
        if not isinstance(raw, str):
            raise RuleError(f"hosts: {raw!r} is not a host name")
        name = _normalize_name(raw)
        values = value if isinstance(value, (tuple, list)) else (value,)
        if not values:
            raise RuleError(f"hosts entry {raw!r}: no address given")
        addrs = tuple(dict.fromkeys(parse_host_address(raw, v) for v in values))
        if name in out:
            raise RuleError(f"hosts entry {raw!r}: listed twice")
        out[name] = addrs
    return tuple(sorted(out.items()))


def _parse_resolver(text: object) -> tuple[IPAddress, int] | None:
    if text == SYSTEM_RESOLVER:
        return None
    if not isinstance(text, str):
        raise RuleError(f'resolver: expected "system" or HOST:PORT, got {text!r}')
    rule = parse_rule(f"udp:{text}")
    net = rule.network
    if net is None or net.num_addresses != 1 or rule.ports.low != rule.ports.high:
        raise RuleError(f'resolver {text!r}: expected "system" or an IP address and one port')
    return net.network_address, rule.ports.low

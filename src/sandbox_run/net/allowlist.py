"""Decisions: may the guest reach this address and port?  No I/O.

A destination ``(proto, address, port)`` is allowed when

1. an IP-literal rule covers it.  If the address is special (loopback,
   private, link-local, metadata ...; see ``addresses``), the rule's network
   must also lie inside that special block: ``127.0.0.1:80`` or
   ``10.0.0.0/8:80`` list special addresses explicitly, ``0.0.0.0/0:80``
   does not reach them; or
2. the address is *pinned* to a name that a name rule covers for this port:
   the controller resolved the name itself and the answer included this
   address.  Special addresses are pinned from resolution only when an
   IP-literal rule lists them (for any port: the policy named the address);
   the policy's own ``hosts`` entries are pinned as written (the policy wrote
   the literal); or
3. a ``*:PORT`` rule covers the port and the address is public.

Pins are fixed for the life of the sandbox: the first answer for a name is
the only one, so a DNS answer that changes later (rebinding) cannot redirect
a connection.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .addresses import IPAddress, Special, classify, normalize
from .config import NetworkPolicy
from .rules import HostKind, PortRange, Proto, Rule

#: Names the controller will resolve and pin for one sandbox.
MAX_PINNED_NAMES = 256
_UNKNOWN = Special("unknown", ipaddress.ip_network("0.0.0.0/32"))  # "not classified yet"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str
    name: str | None = None  # the pinned name that allowed it, if any


@dataclass(slots=True)
class Pins:
    """Names and the addresses the controller resolved for them."""

    by_name: dict[str, tuple[IPAddress, ...]] = field(default_factory=dict)
    by_address: dict[IPAddress, set[str]] = field(default_factory=dict)
    literal: set[str] = field(default_factory=set)  # names pinned from policy hosts

    def add(self, name: str, addrs: tuple[IPAddress, ...], *, literal: bool = False) -> None:
        if name in self.by_name:
            raise ValueError(f"{name} is already pinned")
        self.by_name[name] = addrs
        for a in addrs:
            self.by_address.setdefault(normalize(a), set()).add(name)
        if literal:
            self.literal.add(name)

    def names_for(self, ip: IPAddress) -> set[str]:
        return self.by_address.get(normalize(ip), set())


class AllowList:
    """The compiled network policy of one sandbox, with its pins."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self.rules = policy.rules
        self.listen_ports = policy.listen_ports
        self.pins = Pins()
        # Per protocol, for the connect-time check: IP-literal rules, the
        # others, and the reason each gives (computed once, not per call).
        self._literal = {p: [r for r in self.rules if r.proto is p and r.network] for p in Proto}
        self._named = {p: [r for r in self.rules if r.proto is p and not r.network] for p in Proto}
        self._listed_as = {r: f"listed as {r}" for r in self.rules}
        for name, addrs in policy.host_map:
            if self.permits_name(name):
                self.pins.add(name, addrs, literal=True)

    # --- names -------------------------------------------------------------
    def permits_name(self, name: str) -> bool:
        """Whether any rule (either protocol, any port) covers ``name``."""
        return any(r.kind is not HostKind.NET and r.matches_name(name) for r in self.rules)

    def static_hosts(self) -> tuple[tuple[str, tuple[IPAddress, ...]], ...]:
        """The policy's own hosts entries that some rule covers (for /etc/hosts)."""
        return tuple((n, a) for n, a in self.policy.host_map if n in self.pins.literal)

    def pinnable(self, ip: IPAddress) -> str | None:
        """None if a resolved address may be pinned, else why not.

        Public addresses may; special ones only when an IP-literal rule lists
        them (for some port), as a connection to them needs that anyway.
        """
        special = classify(ip)
        if special is None:
            return None
        if any(self._literal_covers(r, ip) for r in self.rules):
            return None
        return f"{special.kind} address {normalize(ip)} is not listed by IP literal"

    # --- destinations ------------------------------------------------------
    @staticmethod
    def _literal_covers(rule: Rule, ip: IPAddress, special: Special | None = _UNKNOWN) -> bool:
        net = rule.network
        if rule.kind is not HostKind.NET or net is None or net.version != ip.version:
            return False
        if ip not in net:
            return False
        if special is _UNKNOWN:
            special = classify(ip)
        if special is None:
            return True
        block = special.network
        return block.version == net.version and net.subnet_of(block)  # type: ignore[arg-type]

    def check(self, proto: Proto, ip: IPAddress, port: int) -> Verdict:
        """May the guest reach ``ip:port`` over ``proto``?"""
        ip = normalize(ip)
        special = classify(ip)
        for r in self._literal[proto]:
            if port in r.ports and self._literal_covers(r, ip, special):
                return Verdict(True, self._listed_as[r])
        names = self.pins.by_address.get(ip)
        listed: list[Rule] | None = None
        if names:
            if special is not None:
                listed = [r for r in self.rules if self._literal_covers(r, ip, special)]
            for name in sorted(names):
                if special is not None and name not in self.pins.literal and not listed:
                    continue  # never pinned that way; defence in depth
                for r in self._named[proto]:
                    if port in r.ports and r.matches_name(name):
                        return Verdict(
                            True, f"{name} (pinned to {ip}) is {self._listed_as[r]}", name
                        )
        if special is None:
            for r in self._named[proto]:
                if port in r.ports and r.kind is HostKind.ANY:
                    return Verdict(True, f"public address, {self._listed_as[r]}")
        return self._denial(proto, ip, port, special, sorted(names or ()), listed)

    def _denial(
        self,
        proto: Proto,
        ip: IPAddress,
        port: int,
        special: Special | None,
        names: list[str],
        listed: list[Rule] | None,
    ) -> Verdict:
        shown = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
        if listed is None:
            listed = [r for r in self.rules if self._literal_covers(r, ip, special)]
        if listed:
            why = f"{shown} is listed only as {', '.join(map(str, listed))}"
        elif names:
            why = f"{shown} ({', '.join(names)}) is not listed for {proto.value} port {port}"
        elif special is not None:
            why = f"{special.kind} address {shown} is not listed by IP literal"
        else:
            why = f"{proto.value} {shown} is not in the allow-list"
        return Verdict(False, why, names[0] if names else None)

    def may_listen(self, port: int) -> bool:
        return any(port in r for r in self.listen_ports)

    @property
    def listening(self) -> bool:
        return bool(self.listen_ports)


def listen_ports_text(ports: tuple[PortRange, ...]) -> str:
    return ", ".join(str(p) for p in ports) or "none"

"""Files the guest's C library reads for names, generated for one sandbox.

``/etc/nsswitch.conf`` sends host lookups to ``/etc/hosts``, then to DNS.
``/etc/hosts`` lists localhost and the policy's own ``hosts`` entries that a
rule covers.  ``/etc/resolv.conf`` names the sandbox's virtual resolver,
``RESOLVER_ADDRESS``, over TCP (``use-vc``): a connect there is answered by
the controller itself, which resolves allowed names, pins the answers, and
says "no such name" for the rest.
"""

from __future__ import annotations

import ipaddress

from .addresses import IPAddress

RESOLVER_ADDRESS = ipaddress.IPv4Address("127.0.0.53")
RESOLVER_PORT = 53

NSSWITCH_CONF = b"""\
# sandbox-run: names come from /etc/hosts, then from the controller's resolver
hosts: files dns
networks: files
"""

RESOLV_CONF = f"""\
# sandbox-run: the controller answers here; only allowed names resolve
nameserver {RESOLVER_ADDRESS}
options use-vc attempts:1 timeout:10
""".encode()

HOST_CONF = b"multi on\n"


def hosts_file(entries: tuple[tuple[str, tuple[IPAddress, ...]], ...]) -> bytes:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    for name, addrs in entries:
        lines += [f"{a}\t{name}" for a in addrs]
    return ("\n".join(lines) + "\n").encode()

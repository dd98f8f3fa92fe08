"""Facts about the machine, answered with virtual figures."""

from __future__ import annotations

import struct
import time

from ..dispatch import Call
from . import handles

_UTS_FIELD = 65
UNAME = (b"Linux", b"sandbox", b"6.1.0-sandbox", b"#1 SMP sandbox-run", b"x86_64", b"(none)")
# struct sysinfo on x86-64 (112 bytes)
_SYSINFO = struct.Struct("<q3Q6QHH4xQQI4x")


@handles("uname", argc=1)
def uname(call: Call) -> int:
    data = b"".join(f.ljust(_UTS_FIELD, b"\0") for f in UNAME)
    call.write(call.args[0], data)
    return 0


@handles("sysinfo", argc=1)
def sysinfo(call: Call) -> int:
    g = call.guest
    total = g.memory_bytes
    uptime = int(time.monotonic() - g.started)
    call.write(
        call.args[0], _SYSINFO.pack(uptime, 0, 0, 0, total, total, 0, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    return 0

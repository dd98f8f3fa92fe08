"""The kernel's traffic counters of a TCP connection (``TCP_INFO``): pure
decoding (the controller reads them when the guest closes a socket).

``struct tcp_info`` has grown over the years; the fields used here are at
fixed offsets since Linux 4.19.  ``bytes_sent`` counts payload handed to the
network (retransmissions included, which ``bytes_retrans`` takes back out);
``bytes_received`` counts sequence space received, which includes one for
the peer's FIN.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

#: tcp_info up to and including tcpi_bytes_retrans.
MIN_SIZE = 216
_STATE = 0
_BYTES_RECEIVED = 128
_BYTES_SENT = 200
_BYTES_RETRANS = 208

# TCP states (include/net/tcp_states.h)
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV = 1, 2, 3
TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_TIME_WAIT, TCP_CLOSE = 4, 5, 6, 7
TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_LISTEN, TCP_CLOSING = 8, 9, 10, 11
#: States in which the peer's FIN has certainly been received.
_FIN_RECEIVED = frozenset({TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING, TCP_TIME_WAIT})


class Counters(NamedTuple):
    state: int
    bytes_received: int
    bytes_sent: int
    bytes_retrans: int


def parse(info: bytes) -> Counters | None:
    """The counters in a ``TCP_INFO`` answer, or None if it is too short."""
    if len(info) < MIN_SIZE:
        return None
    (received,) = struct.unpack_from("<Q", info, _BYTES_RECEIVED)
    sent, retrans = struct.unpack_from("<QQ", info, _BYTES_SENT)
    return Counters(info[_STATE], received, sent, retrans)


def traffic(c: Counters, unsent: int, peer_finished: bool) -> tuple[int, int]:
    """(bytes the guest sent, bytes it received) on one connection.

    Sent: payload transmitted at least once, plus what is still queued.
    Received: sequence space received, less the peer's FIN when it came
    (``peer_finished``: the socket reads end-of-file; a reset looks the same
    to poll, and in the CLOSE state the two cannot be told apart, so a
    connection reset by its peer may be counted one byte short).
    """
    sent = max(0, c.bytes_sent - c.bytes_retrans) + max(0, unsent)
    fin = 1 if c.bytes_received and (c.state in _FIN_RECEIVED or peer_finished) else 0
    return sent, c.bytes_received - fin

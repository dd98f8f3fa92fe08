"""Decoding the kernel's TCP counters into the guest's traffic."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from sandbox_run.net import tcpinfo


def info(state: int, received: int, sent: int, retrans: int, size: int = 232) -> bytes:
    buf = bytearray(size)
    buf[0] = state
    struct.pack_into("<Q", buf, 128, received)
    struct.pack_into("<QQ", buf, 200, sent, retrans)
    return bytes(buf)


def test_parse_reads_the_fields_at_their_offsets() -> None:
    c = tcpinfo.parse(info(tcpinfo.TCP_ESTABLISHED, 777, 12345, 45))
    assert c == tcpinfo.Counters(tcpinfo.TCP_ESTABLISHED, 777, 12345, 45)


def test_parse_refuses_old_kernels_short_answers() -> None:
    assert tcpinfo.parse(info(1, 1, 1, 1)[: tcpinfo.MIN_SIZE - 1]) is None


def test_open_connection() -> None:
    c = tcpinfo.Counters(tcpinfo.TCP_ESTABLISHED, 700, 1000, 100)
    # Retransmissions are sent again, not sent more; queued bytes were written.
    assert tcpinfo.traffic(c, unsent=50, peer_finished=False) == (950, 700)


def test_the_peers_fin_is_not_payload() -> None:
    for state in (tcpinfo.TCP_CLOSE_WAIT, tcpinfo.TCP_LAST_ACK, tcpinfo.TCP_TIME_WAIT):
        c = tcpinfo.Counters(state, 701, 10, 0)
        assert tcpinfo.traffic(c, 0, peer_finished=False) == (10, 700)
    # In CLOSE the state alone cannot tell: end-of-file on the socket does.
    c = tcpinfo.Counters(tcpinfo.TCP_CLOSE, 701, 10, 0)
    assert tcpinfo.traffic(c, 0, peer_finished=True) == (10, 700)
    assert tcpinfo.traffic(c, 0, peer_finished=False) == (10, 701)


def test_nothing_received_is_never_negative() -> None:
    c = tcpinfo.Counters(tcpinfo.TCP_CLOSE, 0, 0, 0)
    assert tcpinfo.traffic(c, 0, peer_finished=True) == (0, 0)


@given(
    st.integers(1, 11),
    st.integers(0, 1 << 62),
    st.integers(0, 1 << 62),
    st.integers(0, 1 << 62),
    st.integers(-1, 1 << 30),
    st.booleans(),
)
def test_traffic_is_never_negative(
    state: int, received: int, sent: int, retrans: int, unsent: int, fin: bool
) -> None:
    c = tcpinfo.parse(info(state, received, sent, retrans))
    assert c is not None
    out_sent, out_received = tcpinfo.traffic(c, unsent, fin)
    assert out_sent >= 0 and out_received >= 0

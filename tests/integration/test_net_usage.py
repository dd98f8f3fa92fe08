"""Network bytes in the Result: what the guest sent and received over TCP,
counted from the kernel's own counters however the connection ends."""

from __future__ import annotations

import socket
import textwrap

import pytest

import sandbox_run
from net_servers import TcpServer
from sandbox_run import NetworkPolicy, Outcome, Policy

UP = 5000
DOWN = 70_000


def exchange(conn: socket.socket) -> None:
    """Read UP bytes, then send DOWN bytes and wait for the guest to finish."""
    got = 0
    while got < UP:
        data = conn.recv(65536)
        if not data:
            return
        got += len(data)
    conn.sendall(b"d" * DOWN)
    conn.recv(1)  # until the guest closes (or dies)


CLIENT = """
import socket
s = socket.create_connection(("127.0.0.5", {port}), timeout=5)
s.sendall(b"u" * {up})
n = 0
while n < {down}:
    data = s.recv(65536)
    if not data:
        break
    n += len(data)
print(n, flush=True)
{then}
"""


def run_client(then: str, **policy: object) -> sandbox_run.Result:
    with TcpServer("127.0.0.5", handler=exchange) as srv:
        net = NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",), **policy)  # type: ignore[arg-type]
        code = CLIENT.format(port=srv.port, up=UP, down=DOWN, then=textwrap.dedent(then))
        # Unrestricted: the closing calls are reached in every way os offers.
        policy = Policy(network=net, timeout=3.0, restricted=False)
        return sandbox_run.run(code, policy=policy)


@pytest.mark.parametrize(
    "then",
    [
        "s.close()",
        "",  # left open: counted when the guest exits
        "t = s.dup(); s.close(); t.close()",
        "import os; os.dup2(os.open('/dev/null', os.O_RDONLY), s.fileno())",
        "import os; os.closerange(3, 1000)",
        "import os; os._exit(0)",
    ],
    ids=["close", "exit", "dup-then-close", "dup2-over", "closerange", "os-exit"],
)
def test_tcp_bytes_are_counted_however_the_socket_ends(then: str) -> None:
    r = run_client(then)
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr)
    assert r.stdout == b"%d\n" % DOWN
    assert (r.net_bytes_sent, r.net_bytes_received) == (UP, DOWN)
    assert r.usage()["net_bytes_sent"] == UP


def test_tcp_bytes_are_counted_when_the_sandbox_kills_the_guest() -> None:
    r = run_client("import time; time.sleep(60)")
    assert r.outcome is Outcome.TIMEOUT
    assert (r.net_bytes_sent, r.net_bytes_received) == (UP, DOWN)


def test_relayed_bytes_are_counted() -> None:
    r = run_client("s.close()", max_bytes=1 << 20)
    assert r.outcome is Outcome.COMPLETED, (r.reason, r.stderr)
    assert (r.net_bytes_sent, r.net_bytes_received) == (UP, DOWN)


def test_no_network_no_bytes_and_no_mediated_close() -> None:
    r = sandbox_run.run("import os\nos.close(os.open('/sandbox/main.py', os.O_RDONLY))")
    assert r.ok
    assert (r.net_bytes_sent, r.net_bytes_received) == (0, 0)
    assert "close" not in r.syscalls  # closing stays in the kernel without network

"""Real local servers for the network tests: TCP, UDP, DNS, HTTP(S).

Each binds an ephemeral port on a 127.0.0.x address, runs in a thread,
records what reached it, and stops when its ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import pathlib
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from types import TracebackType


class TcpServer:
    """Accepts connections; ``handler(conn)`` serves each (default: echo once)."""

    def __init__(
        self, host: str = "127.0.0.5", handler: Callable[[socket.socket], None] | None = None
    ):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self.peers: list[object] = []
        self.received = bytearray()
        self.handler = handler or self.echo
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def echo(self, conn: socket.socket) -> None:
        data = conn.recv(65536)
        self.received += data
        conn.sendall(b"echo:" + data)

    def _loop(self) -> None:
        while not self._stop:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            if self._stop:
                conn.close()
                return
            self.accepted += 1
            self.peers.append(peer)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(20)
        with conn, contextlib.suppress(OSError):
            self.handler(conn)

    def __enter__(self) -> TcpServer:
        self._thread.start()
        return self

    def settle(self, limit: float = 5.0) -> None:
        """Wait until every connection the kernel completed has been accepted,
        so that ``accepted`` counts them all."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if not select.select([self.sock], [], [], 0)[0]:
                time.sleep(0.02)  # one more look: the loop may be between accepts
                if not select.select([self.sock], [], [], 0)[0]:
                    return
            time.sleep(0.01)

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.settle()
        self._stop = True
        with contextlib.suppress(OSError):  # wake the accept loop
            socket.create_connection((self.host, self.port), timeout=1).close()
        self._thread.join(5)
        self.sock.close()
        for t in self._threads:
            t.join(5)


class UdpServer:
    """Echoes datagrams ("echo:" + data) and keeps them."""

    def __init__(self, host: str = "127.0.0.5") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)
            self.sock.sendto(b"echo:" + data, peer)

    def __enter__(self) -> UdpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(5)
        # Whatever reached the socket counts, read or not yet.
        self.sock.setblocking(False)
        while True:
            try:
                self.datagrams.append(self.sock.recv(65536))
            except OSError:
                break
        self.sock.close()


class DnsServer:
    """A DNS server over UDP whose answers the test changes: ``answers[name]``
    is a list of addresses (A and AAAA); other names get NXDOMAIN.
    ``rebind[name]`` replaces the answer for every question after the first
    two (A and AAAA), as a rebinding attacker's server would."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.address = f"{host}:{self.sock.getsockname()[1]}"
        self.answers: dict[str, list[str]] = {}
        self.rebind: dict[str, list[str]] = {}
        self.questions: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(self._answer(msg), peer)

    def _answer(self, msg: bytes) -> bytes:
        msg_id, _flags, _qd = struct.unpack_from(">HHH", msg)
        off, labels = 12, []
        while msg[off]:
            labels.append(msg[off + 1 : off + 1 + msg[off]].decode())
            off += 1 + msg[off]
        qtype = struct.unpack_from(">H", msg, off + 1)[0]
        question = msg[12 : off + 5]
        name = ".".join(labels).lower()
        self.questions.append(name)
        addrs = self.answers.get(name)
        if name in self.rebind and self.questions.count(name) > 2:
            addrs = self.rebind[name]
        if addrs is None:
            return struct.pack(">HHHHHH", msg_id, 0x8183, 1, 0, 0, 0) + question
        records = b""
        count = 0
        for a in addrs:
            ip = ipaddress.ip_address(a)
            if (qtype == 1 and ip.version == 4) or (qtype == 28 and ip.version == 6):
                records += struct.pack(">HHHIH", 0xC00C, qtype, 1, 0, len(ip.packed)) + ip.packed
                count += 1
        return struct.pack(">HHHHHH", msg_id, 0x8180, 1, count, 0, 0) + question + records

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class HttpServer:
    """http.server on 127.0.0.x; with ``tls`` (cert, key) it speaks HTTPS."""

    def __init__(self, host: str = "127.0.0.5", tls: tuple[str, str] | None = None) -> None:
        self.server = http.server.ThreadingHTTPServer((host, 0), _Handler)
        self.server.daemon_threads = True
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def make_ca(where: pathlib.Path, names: tuple[str, ...], ips: tuple[str, ...]) -> dict[str, str]:
    """A test CA and a server certificate it signed, made with the openssl CLI."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=where)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=sandbox-run test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={names[0]}",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    (where / "ext.cnf").write_text(f"subjectAltName={san}\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    )
    return {
        k: str(where / v)
        for k, v in {"ca": "ca.pem", "cert": "server.pem", "key": "server.key"}.items()
    }

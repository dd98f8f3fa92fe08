"""Real clients in the real sandboxed PyPy against real local servers:
socket, http.client, urllib.request, ssl, asyncio; allowed and denied
destinations, names, listening, limits and the audit log."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import pathlib
import socket
import textwrap
import threading
from collections.abc import Callable

import trio

import sandbox_run
from net_servers import DnsServer, HttpServer, TcpServer, UdpServer, make_ca
from sandbox_run import NetworkPolicy, Policy


def run(
    code: str, net: NetworkPolicy, *, restricted: bool = True, **kw: object
) -> sandbox_run.Result:
    policy = Policy(network=net, restricted=restricted)
    return sandbox_run.run(textwrap.dedent(code), policy=policy, **kw)  # type: ignore[arg-type]


def events(r: sandbox_run.Result, action: str) -> list[sandbox_run.AuditEvent]:
    return [e for e in r.audit if e.action == action]


def test_socket_to_an_allowed_address_and_port() -> None:
    with TcpServer("127.0.0.5") as srv:
        r = run(
            f"""
            import socket
            s = socket.create_connection(("127.0.0.5", {srv.port}), timeout=5)
            s.sendall(b"ping")
            print(s.recv(100))
            print(s.getpeername())
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",)),
        )
    assert r.ok, r.stderr
    assert r.stdout == f"b'echo:ping'\n('127.0.0.5', {srv.port})\n".encode()
    assert srv.accepted == 1 and srv.received == b"ping"
    (ev,) = events(r, "connect")
    assert (ev.allowed, ev.proto, ev.address, ev.port) == (True, "tcp", "127.0.0.5", srv.port)
    assert ev.reason == f"listed as 127.0.0.5:{srv.port}"


def test_blocking_and_non_blocking_connects() -> None:
    with TcpServer("127.0.0.5") as srv:
        r = run(
            f"""
            import socket, errno, select
            s = socket.socket()                       # blocking, no timeout
            s.connect(("127.0.0.5", {srv.port}))
            print("blocking", s.getblocking())
            s.close()
            s = socket.socket()
            s.setblocking(False)
            e = s.connect_ex(("127.0.0.5", {srv.port}))
            print("nonblocking", e in (0, errno.EINPROGRESS), s.getblocking())
            select.select([], [s], [], 5)
            print("so_error", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
            s.close()
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",)),
        )
    assert r.ok, r.stderr
    assert r.stdout == b"blocking True\nnonblocking True False\nso_error 0\n"


def test_unlisted_port_and_unlisted_host_are_refused_and_never_reached() -> None:
    with (
        TcpServer("127.0.0.5") as ok,
        TcpServer("127.0.0.5") as other,
        TcpServer("127.0.0.6") as host6,
    ):
        r = run(
            f"""
            import socket
            for host, port in [("127.0.0.5", {other.port}), ("127.0.0.6", {host6.port}),
                               ("127.0.0.5", {ok.port})]:
                try:
                    socket.create_connection((host, port), timeout=5).close()
                    print("connected", port)
                except PermissionError as e:
                    print("refused", e.errno)
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{ok.port}",)),
        )
    assert r.stdout == f"refused 13\nrefused 13\nconnected {ok.port}\n".encode()
    assert (ok.accepted, other.accepted, host6.accepted) == (1, 0, 0)
    denied = [e for e in events(r, "connect") if not e.allowed]
    assert [e.reason for e in denied] == [
        f"127.0.0.5:{other.port} is listed only as 127.0.0.5:{ok.port}",
        f"loopback address 127.0.0.6:{host6.port} is not listed by IP literal",
    ]
    assert {d.syscall for d in r.denials} == {"connect"}


def test_names_from_the_policy_hosts_resolve_and_others_do_not() -> None:
    with TcpServer("127.0.0.5") as srv:
        r = run(
            f"""
            import socket
            print(socket.getaddrinfo("api.test", {srv.port}, type=socket.SOCK_STREAM)[0][4])
            print(socket.gethostbyname("API.Test"))
            s = socket.create_connection(("api.test", {srv.port}), timeout=5)
            s.sendall(b"by name"); print(s.recv(100))
            for name in ("unlisted.test", "example.com", "x.api.test"):
                try:
                    socket.getaddrinfo(name, 80)
                    print("resolved", name)
                except socket.gaierror as e:
                    print(name, e.errno, e.strerror)
            """,
            NetworkPolicy(
                allow=(f"api.test:{srv.port}",),
                hosts={"api.test": "127.0.0.5", "unlisted.test": "127.0.0.5"},
            ),
        )
    assert r.ok, r.stderr
    assert r.stdout.decode().splitlines() == [
        f"('127.0.0.5', {srv.port})",
        "127.0.0.5",
        "b'echo:by name'",
        "unlisted.test -2 Name or service not known",
        "example.com -2 Name or service not known",
        "x.api.test -2 Name or service not known",
    ]
    (conn,) = events(r, "connect")
    assert conn.allowed and conn.name == "api.test"
    assert conn.reason == f"api.test (pinned to 127.0.0.5) is listed as api.test:{srv.port}"
    refused = {e.name for e in events(r, "resolve") if not e.allowed}
    assert refused == {"unlisted.test", "example.com", "x.api.test"}


def test_wildcards_and_the_controllers_resolver(tmp_path: pathlib.Path) -> None:
    # Names below *.svc.test come from a real DNS server the controller asks;
    # the guest only ever talks to the controller.
    with TcpServer("127.0.0.5") as srv, DnsServer() as dns:
        dns.answers = {"a.svc.test": ["127.0.0.5"], "b.svc.test": ["127.0.0.5"]}
        r = run(
            f"""
            import socket
            for name in ("a.svc.test", "b.svc.test", "svc.test", "c.svc.test"):
                try:
                    s = socket.create_connection((name, {srv.port}), timeout=5)
                    s.sendall(name.encode()); print(s.recv(100)); s.close()
                except OSError as e:
                    print(name, type(e).__name__, e.errno)
            """,
            NetworkPolicy(
                allow=(f"*.svc.test:{srv.port}", f"127.0.0.5:{srv.port + 1}"),
                resolver=dns.address,
            ),
        )
    assert r.stdout.decode().splitlines() == [
        "b'echo:a.svc.test'",
        "b'echo:b.svc.test'",
        "svc.test gaierror -2",  # the pattern covers names below it only
        "c.svc.test gaierror -2",  # the DNS server has no such name
    ]
    # Only allowed names were ever asked upstream.
    assert set(dns.questions) == {"a.svc.test", "b.svc.test", "c.svc.test"}
    resolved = [e for e in events(r, "resolve") if e.allowed]
    assert [(e.name, e.reason) for e in resolved] == [
        ("a.svc.test", "pinned to 127.0.0.5"),
        ("b.svc.test", "pinned to 127.0.0.5"),
    ]


def test_resolved_special_addresses_are_left_out() -> None:
    with DnsServer() as dns:
        dns.answers = {"meta.evil.test": ["169.254.169.254", "93.184.216.34"]}
        r = run(
            """
            import socket
            print(sorted({a[4][0] for a in socket.getaddrinfo("meta.evil.test", 80)}))
            """,
            NetworkPolicy(allow=("*.evil.test:80",), resolver=dns.address),
        )
    assert r.stdout == b"['93.184.216.34']\n"
    (ev,) = [e for e in events(r, "resolve") if e.allowed]
    assert ev.reason == (
        "pinned to 93.184.216.34; left out: "
        "metadata address 169.254.169.254 is not listed by IP literal"
    )


def test_http_client_and_urllib() -> None:
    with HttpServer("127.0.0.5") as srv:
        r = run(
            f"""
            import http.client, urllib.request
            c = http.client.HTTPConnection("web.test", {srv.port}, timeout=5)
            c.request("GET", "/one")
            resp = c.getresponse()
            print(resp.status, resp.read())
            with urllib.request.urlopen("http://web.test:{srv.port}/two", timeout=5) as f:
                print(f.status, f.read())
            """,
            NetworkPolicy(allow=(f"web.test:{srv.port}",), hosts={"web.test": "127.0.0.5"}),
        )
    assert r.ok, r.stderr
    assert r.stdout == b"200 b'hello from /one'\n200 b'hello from /two'\n"


def test_https_with_the_policys_test_ca(tmp_path: pathlib.Path) -> None:
    pki = make_ca(tmp_path, ("secure.test",), ("127.0.0.5",))
    net = NetworkPolicy(allow=("secure.test:1-65535",), hosts={"secure.test": "127.0.0.5"})
    code = """
        import socket, ssl, urllib.request
        try:
            with urllib.request.urlopen("https://secure.test:{port}/tls", timeout=5) as f:
                print(f.status, f.read())
            ctx = ssl.create_default_context()
            raw = socket.create_connection(("secure.test", {port}), timeout=5)
            with ctx.wrap_socket(raw, server_hostname="secure.test") as s:
                print(s.version().startswith("TLSv1."), s.getpeercert()["subject"])
        except urllib.error.URLError as e:
            print("failed", type(e.reason).__name__, e.reason.verify_message)
    """
    with HttpServer("127.0.0.5", tls=(pki["cert"], pki["key"])) as srv:
        trusted = run(code.format(port=srv.port), dataclasses.replace(net, ca_file=pki["ca"]))
        untrusted = run(code.format(port=srv.port), net)
    assert trusted.ok, trusted.stderr
    assert trusted.stdout == (b"200 b'hello from /tls'\nTrue ((('commonName', 'secure.test'),),)\n")
    # Without the test CA, the system bundle does not trust the server.
    assert (
        untrusted.stdout
        == b"failed SSLCertVerificationError unable to get local issuer certificate\n"
    )


def test_system_ca_bundle_is_mounted_read_only() -> None:
    r = run(
        """
        import ssl, os
        ctx = ssl.create_default_context()
        print(len(ctx.get_ca_certs()) > 50)
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        print(os.path.exists("/etc/ssl/private"), os.path.exists(bundle))
        try:
            open(bundle, "a")
        except OSError as e:
            print(type(e).__name__, e.errno)
        """,
        NetworkPolicy(allow=("example.com:443",)),
    )
    assert r.stdout == b"True\nFalse True\nOSError 30\n"


def test_asyncio_client() -> None:
    with TcpServer("127.0.0.5") as srv:
        r = run(
            f"""
            import asyncio
            async def main():
                reader, writer = await asyncio.open_connection("127.0.0.5", {srv.port})
                writer.write(b"async")
                await writer.drain()
                print(await reader.read(100))
                writer.close()
                await writer.wait_closed()
            asyncio.run(main())
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",)),
            restricted=False,  # asyncio and threading
        )
    assert r.ok, r.stderr
    assert r.stdout == b"b'echo:async'\n"


def test_udp_to_an_allowed_destination_only() -> None:
    with UdpServer("127.0.0.5") as ok, UdpServer("127.0.0.5") as other:
        r = run(
            f"""
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(5)
            s.sendto(b"one", ("127.0.0.5", {ok.port}))
            print(s.recvfrom(100))
            try:
                s.sendto(b"two", ("127.0.0.5", {other.port}))
            except PermissionError as e:
                print("refused", e.errno)
            s.send(b"three")                       # still connected to the allowed peer
            print(s.recv(100))
            """,
            NetworkPolicy(allow=(f"udp:127.0.0.5:{ok.port}",)),
        )
    assert r.ok, r.stderr
    assert r.stdout.decode().splitlines() == [
        f"(b'echo:one', ('127.0.0.5', {ok.port}))",
        "refused 13",
        "b'echo:three'",
    ]
    assert ok.datagrams == [b"one", b"three"] and other.datagrams == []
    sends = events(r, "send")
    assert [(e.allowed, e.port) for e in sends] == [(True, ok.port), (False, other.port)]


def test_tcp_rules_do_not_allow_udp() -> None:
    with UdpServer("127.0.0.5") as srv:
        r = run(
            f"""
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.sendto(b"x", ("127.0.0.5", {srv.port}))
            except PermissionError as e:
                print("refused", e.errno)
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",)),
        )
    assert r.stdout == b"refused 13\n"
    assert srv.datagrams == []


def serve_host_client(
    code: str, policy: Policy, client: Callable[[socket.socket], None]
) -> tuple[sandbox_run.Result, list[str]]:
    """Run ``code``, a guest that listens and prints ``port N``; a host thread
    then connects to N and runs ``client`` on the connection.  Returns the
    Result and the guest's output lines."""
    ready = threading.Event()
    port_box: list[int] = []
    lines: list[str] = []

    def connect() -> None:
        ready.wait(20)
        if port_box:
            with socket.create_connection(("127.0.0.1", port_box[0]), timeout=5) as c:
                client(c)

    def out(data: bytes) -> None:
        for line in data.decode().splitlines():
            lines.append(line)
            if line.startswith("port "):
                port_box.append(int(line.split()[1]))
                ready.set()

    t = threading.Thread(target=connect)
    t.start()
    try:
        job = functools.partial(
            sandbox_run.run_async, textwrap.dedent(code), policy=policy, stdout=out
        )
        r = trio.run(job)
    finally:
        ready.set()
        t.join(20)
    return r, lines


def test_listening_on_loopback() -> None:
    got: list[bytes] = []

    def client(c: socket.socket) -> None:
        c.sendall(b"from the host")
        got.append(c.recv(100))

    r, lines = serve_host_client(
        """
        import socket, sys
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        print("port", s.getsockname()[1], flush=True)
        c, peer = s.accept()
        print("peer", peer[0], flush=True)
        c.sendall(b"hello " + c.recv(100))
        c.close()
        for addr in [("0.0.0.0", 0), ("127.0.0.1", 9)]:
            try:
                socket.socket().bind(addr)
            except OSError as e:
                print("bind", addr, e.errno, flush=True)
        try:
            socket.socket().listen(1)
        except OSError as e:
            print("listen unbound", e.errno, flush=True)
        """,
        Policy(network=NetworkPolicy(listen=("0",))),
        client,
    )
    assert r.ok, r.stderr
    assert got == [b"hello from the host"]
    assert lines[1:] == [
        "peer 127.0.0.1",
        "bind ('0.0.0.0', 0) 99",
        "bind ('127.0.0.1', 9) 13",
        "listen unbound 13",
    ]
    assert [e.action for e in r.audit if e.allowed] == ["bind", "listen", "accept"]
    denied = [(e.action, e.reason) for e in r.audit if not e.allowed]
    assert denied == [
        ("bind", "only loopback addresses may be bound"),
        ("bind", "port 9 is not a listening port of the policy"),
        (
            "listen",
            "listen without bind would use every interface; bind a loopback port first",
        ),
    ]


def test_listening_needs_the_policy() -> None:
    r = run(
        """
        import socket
        try:
            socket.socket().bind(("127.0.0.1", 0))
        except PermissionError as e:
            print("refused", e.errno)
        """,
        NetworkPolicy(allow=("example.com:443",)),
    )
    assert r.stdout == b"refused 13\n"


def test_connection_limit_counts_open_connections() -> None:
    with TcpServer("127.0.0.5", handler=lambda c: c.recv(1)) as srv:
        r = run(
            f"""
            import socket
            addr = ("127.0.0.5", {srv.port})
            a = socket.create_connection(addr, timeout=5)
            b = socket.create_connection(addr, timeout=5)
            try:
                socket.create_connection(addr, timeout=5)
            except OSError as e:
                print("third", e.errno)
            a.close()
            c = socket.create_connection(addr, timeout=5)
            print("after close ok")
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",), max_connections=2),
        )
    assert r.ok, r.stderr
    assert r.stdout == b"third 11\nafter close ok\n"
    (limit,) = events(r, "limit")
    assert limit.reason == "2 connections are open (max_connections)"


def test_byte_cap_is_exact() -> None:
    payload = bytes(range(256)) * 40  # 10240 bytes

    def flood(conn: socket.socket) -> None:
        conn.recv(100)
        conn.sendall(payload)

    with TcpServer("127.0.0.5", handler=flood) as srv:
        r = run(
            f"""
            import socket
            s = socket.create_connection(("127.0.0.5", {srv.port}), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"0123456789")
            got = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            print(len(got), got[:4])
            try:
                socket.create_connection(("127.0.0.5", {srv.port}), timeout=5)
            except PermissionError as e:
                print("spent", e.errno)
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{srv.port}",), max_bytes=4000),
        )
    assert r.ok, r.stderr
    # 10 bytes went up, so 3990 of the 10240 came down; then the relay closed.
    assert r.stdout == b"3990 b'\\x00\\x01\\x02\\x03'\nspent 13\n"
    assert [e.reason for e in events(r, "limit")] == ["4000 bytes transferred (max_bytes)"]


def test_default_policy_has_no_network() -> None:
    r = sandbox_run.run(
        textwrap.dedent("""
        import socket
        try:
            socket.socket()
        except PermissionError as e:
            print("refused", e.errno)
        """)
    )
    assert r.stdout == b"refused 13\n"
    (ev,) = r.audit
    assert (ev.action, ev.allowed, ev.reason) == (
        "socket",
        False,
        "network access is not granted by the policy",
    )


def test_ipv6_loopback_literal() -> None:
    with TcpServer("::1") as srv:
        r = run(
            f"""
            import socket
            s = socket.create_connection(("::1", {srv.port}), timeout=5)
            s.sendall(b"six"); print(s.recv(100))
            """,
            NetworkPolicy(allow=(f"[::1]:{srv.port}",)),
        )
    assert r.ok, r.stderr
    assert r.stdout == b"b'echo:six'\n"


def test_a_connect_that_waits_does_not_stop_the_sandbox() -> None:
    # A listener whose queue is full drops new SYNs: connects to it hang.
    stuck = socket.socket()
    stuck.bind(("127.0.0.5", 0))
    stuck.listen(0)
    port = stuck.getsockname()[1]
    filler = socket.create_connection(("127.0.0.5", port), timeout=5)
    try:
        r = run(
            f"""
            import errno, os, socket, struct, threading
            done = []
            def busy():
                for _ in range(50):
                    os.getuid()  # mediated: answered while the connect waits
                done.append(True)
            s = socket.socket()  # blocking, with a send timeout: connect gives up
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 500000))
            t = threading.Thread(target=busy)
            t.start()
            e = s.connect_ex(("127.0.0.5", {port}))
            finished_first = bool(done)
            t.join()
            print(errno.errorcode[e], finished_first)
            n = socket.socket()
            n.setblocking(False)
            print(errno.errorcode[n.connect_ex(("127.0.0.5", {port}))])
            print(errno.errorcode[n.connect_ex(("127.0.0.5", {port}))])
            """,
            NetworkPolicy(allow=(f"127.0.0.5:{port}",)),
            restricted=False,  # asyncio and threading
        )
    finally:
        filler.close()
        stuck.close()
    assert r.ok, r.stderr
    assert r.stdout == b"EINPROGRESS True\nEINPROGRESS\nEALREADY\n"


def test_byte_cap_counts_accepted_connections_too() -> None:
    def client(c: socket.socket) -> None:
        c.sendall(bytes(100))
        with contextlib.suppress(OSError):  # the relay resets: 70 bytes unread
            c.recv(10)

    r, lines = serve_host_client(
        """
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        print("port", s.getsockname()[1], flush=True)
        c, _ = s.accept()
        got = b""
        while True:
            chunk = c.recv(1000)
            if not chunk:
                break
            got += chunk
        print("got", len(got), flush=True)
        """,
        Policy(network=NetworkPolicy(listen=("0",), max_bytes=30)),
        client,
    )
    assert r.ok, r.stderr
    assert lines[1:] == ["got 30"]
    assert [e.reason for e in r.audit if e.action == "limit"] == [
        "30 bytes transferred (max_bytes)"
    ]

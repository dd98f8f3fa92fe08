"""The network flags of the sandbox-run command."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from net_servers import TcpServer

CLI = os.path.join(os.path.dirname(sys.executable), "sandbox-run")


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([CLI, *args], capture_output=True, timeout=60)


def test_allow_net_add_host_and_the_audit_file(tmp_path: pathlib.Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with TcpServer("127.0.0.5") as srv:
        code = (
            "import socket\n"
            f"s = socket.create_connection(('svc.test', {srv.port}), timeout=5)\n"
            "s.sendall(b'cli'); print(s.recv(100))\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.5', {srv.port + 1}), timeout=5)\n"
            "except OSError as e:\n"
            "    print(e.errno)\n"
        )
        p = cli(
            "--allow-net", f"svc.test:{srv.port}",
            "--add-host", "svc.test=127.0.0.5",
            "--audit", str(audit),
            "-c", code,
        )  # fmt: skip
    assert (p.returncode, p.stdout, p.stderr) == (0, b"b'echo:cli'\n13\n", b"")
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    connects = [r for r in records if r["action"] == "connect"]
    assert connects == [
        {
            "time": connects[0]["time"],
            "action": "connect",
            "allowed": True,
            "reason": f"svc.test (pinned to 127.0.0.5) is listed as svc.test:{srv.port}",
            "proto": "tcp",
            "address": "127.0.0.5",
            "port": srv.port,
            "name": "svc.test",
        },
        {
            "time": connects[1]["time"],
            "action": "connect",
            "allowed": False,
            "reason": f"127.0.0.5:{srv.port + 1} (svc.test) is not listed for tcp port "
            f"{srv.port + 1}",
            "proto": "tcp",
            "address": "127.0.0.5",
            "port": srv.port + 1,
            "name": "svc.test",
        },
    ]
    assert 0 <= connects[0]["time"] <= connects[1]["time"]


def test_network_flags_are_checked_before_anything_runs(tmp_path: pathlib.Path) -> None:
    for args, message in [
        (["--allow-net", "example.com"], "network: 'example.com': expected HOST:PORT"),
        (["--listen", "http"], "bad port 'http'"),
        (["--add-host", "nohost"], "--add-host 'nohost': expected NAME=ADDRESS"),
        (["--add-host", "a.test=1.2.3"], "'1.2.3' is not an IP address"),
        (["--audit", str(tmp_path / "missing" / "a.jsonl")], "--audit"),
    ]:
        p = cli(*args, "-c", "pass")
        assert p.returncode == 125, args
        assert p.stderr.startswith(b"sandbox-run: error: "), p.stderr
        assert message.encode() in p.stderr, p.stderr


def test_policy_file_network_section(tmp_path: pathlib.Path) -> None:
    with TcpServer("127.0.0.5") as srv:
        pol = tmp_path / "p.toml"
        pol.write_text(f'[network]\nallow = ["127.0.0.5:{srv.port}"]\n')
        code = (
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.5', {srv.port}), timeout=5)\n"
            "s.sendall(b'file'); print(s.recv(100))\n"
        )
        p = cli("--policy", str(pol), "-c", code)
    assert (p.returncode, p.stdout) == (0, b"b'echo:file'\n")

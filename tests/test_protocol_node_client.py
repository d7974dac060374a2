"""The protocol document is enough to write a client in another language: a Node.js client
written from gateway/PROTOCOL.md alone (clients/node/, standard library only, its own
msgpack codec) trades, funds, keeps an L2 book and checks 121 promises of the document
against a real `tonne serve`, over TCP and WebSocket. If the server and the document drift
apart, this fails.

Needs `node` on the PATH (it is on the machines this project runs on); skipped elsewhere."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "clients" / "node" / "run_e2e.sh"
TIMEOUT_S = 120


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node on the PATH")
def test_a_client_written_from_the_protocol_document_passes_every_check(tmp_path):
    tonne = Path(sys.executable).parent / "tonne"
    tcp_port, ws_port = _free_ports(2)
    done = subprocess.run(
        ["sh", str(SCRIPT), str(tcp_port), str(ws_port)],
        env={"PATH": f"{tonne.parent}:/usr/bin:/bin", "TONNE": str(tonne), "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "ALL CHECKS PASSED" in out
    assert "server exit status: 0" in out

"""The protocol document is enough to write a client in another language: a Node.js client
written from gateway/wire/PROTOCOL.md alone (clients/node/, standard library only, its own
msgpack codec) trades, funds, keeps an L2 book, buys a screened basket and a buy-and-retire
order and checks about 160 promises of the document against a real `tonne serve`, over TCP
and WebSocket. If the server and the document drift
apart, this fails.

Needs `node` on the PATH (it is on the machines this project runs on); skipped elsewhere."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "clients" / "node" / "run_e2e.sh"
TIMEOUT_S = 120


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node on the PATH")
def test_a_client_written_from_the_protocol_document_passes_every_check(tmp_path):
    tonne = Path(sys.executable).parent / "tonne"
    node = shutil.which("node")
    assert node is not None
    env = {
        "PATH": f"{tonne.parent}:{Path(node).parent}:/usr/bin:/bin",
        "TONNE": str(tonne),
        "NODE": node,
        "TMPDIR": str(tmp_path),
    }
    # the server picks its ports (0); its own process group, so that nothing outlives a timeout
    with subprocess.Popen(
        ["sh", str(SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as run:
        try:
            out, _ = run.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            out, _ = run.communicate()
            pytest.fail(f"no end within {TIMEOUT_S} s:\n{out[-4000:]}")
    assert run.returncode == 0, out[-4000:]
    assert "ALL CHECKS PASSED" in out
    assert "server exit status: 0" in out

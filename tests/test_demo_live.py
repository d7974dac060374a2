"""The live demo is what a new user watches: it must run the real market for as long as asked,
draw it in place on a terminal or as plain lines in a pipe, and on Ctrl-C stop the exchange
cleanly and show a passing `tonne log verify`."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.cli import demo
from gateway.cli.demo_view import Watch
from gateway.wire import protocol as p

ROOT = Path(__file__).resolve().parent.parent
VERIFY_OK = re.compile(r"^\s+OK \d+ records", re.M)
RUN_TIMEOUT_S = 40.0


def test_a_few_seconds_of_plain_demo_trade_and_verify(capsys, tmp_path):
    assert demo.main(["--seconds", "3", "--plain", "--data", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "TCP port" in out and "WebSocket port" in out
    assert f"--key {tmp_path / 'd' / 'client.key'}" in out
    assert f"tonne log tail -f --data {tmp_path / 'd'}" in out
    assert re.search(r"after \d+ s: \d+ orders, \d+ fills", out), out
    assert "journal committed, snapshot taken" in out
    assert VERIFY_OK.search(out), out[-2000:]


def test_the_key_file_written_is_one_the_client_commands_read(tmp_path):
    from gateway.cli.custody import read_key
    from gateway.cli.demo_live import write_key_file

    path = write_key_file(tmp_path, (7, "k1", "s3cret"))
    key = read_key(path)
    assert (key.account, key.key_id, key.secret) == (7, "k1", "s3cret")


class _FakeClient:
    def __init__(self, msgs):
        self.history = list(msgs)
        self.received = len(self.history)


def _fill(trade_id, side, qty=5):
    return p.Fill(
        trade_id=trade_id,
        order_id=trade_id * 10 + (side is demo.Side.BUY),
        client_order_id="c",
        series="VCS-1340-2020",
        side=side,
        price=525,
        qty=qty,
        leaves_qty=0,
        liquidity="maker",
    )


def test_a_trade_shows_once_both_sides_arrive_and_a_one_sided_one_after_a_while():
    buyer = _FakeClient([_fill(1, demo.Side.BUY), _fill(2, demo.Side.BUY)])
    seller = _FakeClient([_fill(1, demo.Side.SELL)])
    watch = Watch({"B": buyer, "S": seller}, {"VCS-1340-2020": "USD"})  # type: ignore[dict-item]
    (row,) = watch.poll(now_s=0.0)
    assert (row.trade_id, row.buyer, row.seller) == (1, "B", "S")  # type: ignore[union-attr]
    assert watch.poll(now_s=1.0) == []
    (late,) = watch.poll(now_s=10.0)  # trade 2's seller is not one of ours
    assert late.seller == "(another client)"  # type: ignore[union-attr]
    assert (watch.counters.trades, watch.counters.traded_t, watch.counters.fills) == (2, 10, 3)


def _spawn_on_pty(args: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="160", LINES="50")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "demo", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    return proc, master


def _read_until(master: int, deadline: float, wanted: bytes | None = None) -> bytes:
    """What the terminal shows until `wanted` appears, or until the end (EOF)."""
    got = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            continue
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            return got
        if not chunk:
            return got
        got += chunk
        if wanted is not None and wanted in got:
            return got
    raise AssertionError(f"timed out; the terminal showed: {got[-3000:]!r}")


def test_under_a_terminal_the_live_view_runs_and_ends_with_a_passing_verify(tmp_path):
    proc, master = _spawn_on_pty(["--seconds", "3", "--data", str(tmp_path / "d")])
    try:
        shown = _read_until(master, time.monotonic() + RUN_TIMEOUT_S).decode(errors="replace")
        assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, shown[-3000:]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert "\x1b[" in shown  # drawn in place with terminal control sequences
    assert "Top of book" in shown and "Trades, as they settle" in shown
    assert VERIFY_OK.search(shown.replace("\r", "")), shown[-3000:]


def test_ctrl_c_stops_the_exchange_and_verifies(tmp_path):
    proc, master = _spawn_on_pty(["--data", str(tmp_path / "d")])
    try:
        started = _read_until(master, time.monotonic() + RUN_TIMEOUT_S, b"Top of book")
        proc.send_signal(signal.SIGINT)
        rest = _read_until(master, time.monotonic() + RUN_TIMEOUT_S)
        shown = (started + rest).decode(errors="replace").replace("\r", "")
        assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, shown[-3000:]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert "journal committed, snapshot taken" in shown
    assert VERIFY_OK.search(shown), shown[-3000:]
    assert "Traceback" not in shown

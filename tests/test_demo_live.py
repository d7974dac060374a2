"""The live demo is what a new user watches: it must run the real market for as long as asked,
draw it in place on a terminal or as plain lines in a pipe, and on Ctrl-C stop the exchange
cleanly and show a passing `tonne log verify`."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import uvloop
from rich.console import Console

from gateway.cli import demo
from gateway.cli.demo_live import run_live
from gateway.cli.demo_view import RetireRow, TradeRow, Watch, live_view, plan
from gateway.wire import protocol as p

ROOT = Path(__file__).resolve().parent.parent
VERIFY_OK = re.compile(r"^\s+OK \d+ records", re.M)
RUN_TIMEOUT_S = 40.0
RUN_BOUND_S = 120.0  # a run that waits for something to show ends by then if it never does
# a row of the live view's tape (the books show "qty @ price" too, but no "#id" nor " t @")
TAPE_ROW = re.compile(r"#\d+ +[A-Z][-A-Z0-9]+ +\d+ t @ +(USD|HKD) \d+\.\d\d  \S.* -> \S")
SGR = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # styles and cursor moves, not text
# rich's Live, before each redraw: back to the first line of the last frame, erasing it
REDRAW = re.compile(r"\r\x1b\[2K((?:\x1b\[1A\x1b\[2K)*)")


def test_a_few_seconds_of_plain_demo_trade_and_verify(capsys, tmp_path):
    assert demo.main(["--seconds", "3", "--plain", "--data", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "TCP port" in out and "WebSocket port" in out
    assert f"--key {tmp_path / 'd' / 'client.key'}" in out
    assert f"tonne log tail -f --data {tmp_path / 'd'}" in out
    assert re.search(r"after \d+ s: \d+ orders, \d+ fills", out), out
    assert "journal committed, snapshot taken" in out
    assert VERIFY_OK.search(out), out[-2000:]


PLAIN_TRADE = re.compile(
    r"^trade #\d+ +[A-Z][-A-Z0-9]+ +\d+ t @ +(USD|HKD) \d+\.\d\d  \S.* -> \S.*  \S", re.M
)
PLAIN_RETIRED = re.compile(
    r"^retired \d+ t, certificate RC-\d{8} for '[^']+' \(.+\), serials \S.*, "
    r"settlement-log records #\d+",
    re.M,
)


def test_a_plain_run_prints_trades_and_retirements_with_certificates_then_verifies(tmp_path):
    """Runs until both a trade and a retirement are printed (a retirement tried every half
    second, not every five), then stops as Ctrl-C does; its `seconds` only bound a broken run."""
    lines: list[str] = []
    stopping: list[bool] = []

    def out(line: str) -> None:
        lines.append(line)
        if line.startswith(("trade #", "retired ")) and not stopping:
            text = "\n".join(lines)
            if PLAIN_TRADE.search(text) and PLAIN_RETIRED.search(text):
                stopping.append(True)
                signal.raise_signal(signal.SIGINT)  # handled by the demo: stop and verify

    run = run_live(tmp_path / "d", 2026, RUN_BOUND_S, True, True, out, retire_every_s=0.5)
    status = uvloop.run(run)
    text = "\n".join(lines)
    assert stopping, text[-3000:]  # both seen before the deadline
    assert status == 0 and VERIFY_OK.search(text), text[-3000:]
    assert "journal committed, snapshot taken" in text


def test_plain_output_ends_with_one_counters_line_even_when_one_was_just_due():
    from gateway.cli.demo_live import View

    printed: list[str] = []
    view = View(True, printed.append, [])
    watch = Watch({}, {})
    view.next_counters = 0.0  # due now: the last update prints the counters
    view.update(watch, {})
    view.stop(watch)
    assert len(printed) == 1 and printed[0].startswith("after 0 s: 0 orders"), printed


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


VERRA = "19385-941467127-941467128-VCS-VCU-1507-VER-ET-14-1340-01012020-31122020-1"
CAR = "CAR-1-MX-1568-42-1130-QR-2025-9676-6649 to 6656"
HINT = [
    "exchange on 127.0.0.1: TCP 34957, WebSocket 40767 · Ctrl-C stops and verifies",
    "your own client: tonne order --connect 127.0.0.1:34957 --key "
    "/tmp/tonne-demo-abcdefgh/client.key ...",
    "the settlement log: tonne log tail -f --data /tmp/tonne-demo-abcdefgh",
    "console: http://127.0.0.1:45723/ (user token, password hNzgTdIxPsWkOXYEl8EGX0fBWzjS1WZO)",
]


def _busy_watch() -> Watch:
    """A watch whose tape and retirements are full, with long registry serials."""
    series = ["VCS-1340-2020", "GS-12065-2024", "CAR-1568-2025", "VCS-2925-2024"]
    series += ["TONNE-NBR", "TONNE-CORSIA", "TONNE-TECH"]
    watch = Watch({}, {s: "HKD" if s == "VCS-2925-2024" else "USD" for s in series})
    for i in range(50):
        serials = CAR if i % 2 else f"{VERRA}, {CAR} (+3 more)"
        watch.tape.append(
            TradeRow(
                100 + i, series[i % 7], 1850, 40, "USD", "Kowloon Steel", "Nordic Climate Desk",
                serials,
            )
        )  # fmt: skip
        watch.retired.append(
            RetireRow(
                f"RC-{i:08d}", "Harbour Airlines", "Harbour Airlines, international flights 2026",
                12, f"{VERRA}, {VERRA}", "#132, #134, #136",
            )
        )  # fmt: skip
    return watch


def _screen(watch: Watch, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, color_system=None)
    books = dict.fromkeys(watch.currency_of)
    lines = console.render_lines(live_view(watch, books, 12.0, HINT), pad=False)  # type: ignore[arg-type]
    return ["".join(seg.text for seg in line).rstrip() for line in lines]


def _folded(lines: list[str]) -> str:
    return " ".join(line.strip() for line in lines)


def test_on_an_80_by_24_terminal_the_view_fits_with_trades_retirements_and_how_to_join():
    lines = _screen(_busy_watch(), 80, 24)
    assert len(lines) <= 24 and max(map(len, lines)) <= 80, "\n".join(lines)
    assert all(line in _folded(lines) for line in HINT), "\n".join(lines)
    assert any(x.startswith("Top of book") for x in lines), "\n".join(lines)
    assert [x for x in lines if TAPE_ROW.search(x)][0].startswith("#149 "), "\n".join(lines)
    assert any(x.startswith("RC-00000049  12 t  for 'Harbour Airlines,") for x in lines)
    assert " " * 6 + CAR in lines and VERRA in _folded(lines)  # serials under the trade, whole


def test_a_wide_terminal_shows_serials_beside_their_trade_and_more_of_the_tape():
    lines = _screen(_busy_watch(), 160, 50)
    assert len(lines) <= 50 and max(map(len, lines)) <= 160
    rows = [x for x in lines if TAPE_ROW.search(x)]
    assert len(rows) > 4 and rows[0].startswith("#149 ") and rows[0].endswith(CAR), rows
    assert all(line in lines for line in HINT)


def test_a_short_terminal_gives_up_the_books_before_the_latest_trade_and_retirement():
    lines = _screen(_busy_watch(), 80, 16)
    assert len(lines) <= 16, "\n".join(lines)
    assert not any("Top of book" in x for x in lines)
    assert [x for x in lines if TAPE_ROW.search(x)][0].startswith("#149 "), "\n".join(lines)
    assert any(x.startswith("RC-00000049 ") for x in lines), "\n".join(lines)


def test_the_plan_takes_the_latest_trade_then_the_latest_retirement_then_older_ones():
    assert plan(15, books=9, trades=[2, 2, 2], retired=[4, 4]) == (True, 1, 1)
    assert plan(19, books=9, trades=[2, 2, 2], retired=[4, 4]) == (True, 3, 1)
    assert plan(24, books=9, trades=[2, 2, 2], retired=[4, 4]) == (True, 3, 2)
    assert plan(10, books=9, trades=[2, 3], retired=[4]) == (False, 2, 1)
    assert plan(5, books=9, trades=[2, 3], retired=[4]) == (False, 2, 0)  # 3 lines left
    assert plan(12, books=9, trades=[], retired=[]) == (True, 0, 0)


def test_an_empty_market_says_so_rather_than_drawing_empty_tables():
    watch = Watch({}, {"VCS-1340-2020": "USD"})
    lines = _screen(watch, 80, 24)
    assert "Trades, as they settle: none yet" in lines
    assert "Retirements and their certificates: none yet" in lines


def _spawn_on_pty(
    args: list[str], columns: int = 160, lines: int = 50
) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(lines))
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


def _read_until(
    master: int, deadline: float, wanted: bytes | re.Pattern[str] | None = None
) -> bytes:
    """What the terminal shows until `wanted` appears (bytes, or a pattern of the text
    without its control sequences), or until the end (EOF)."""
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
        if isinstance(wanted, bytes) and wanted in got:
            return got
        if isinstance(wanted, re.Pattern) and wanted.search(_text(got)):
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


def _text(shown: bytes) -> str:
    return SGR.sub("", shown.decode(errors="replace").replace("\r", ""))


def _frames(shown: bytes) -> list[tuple[int, str]]:
    """The live view's frames as drawn: (lines the redraw before it went back over, text)."""
    parts = REDRAW.split(shown.decode(errors="replace"))
    ups = [0, *(len(up) // len("\x1b[1A\x1b[2K") + 1 for up in parts[1::2])]
    return list(zip(ups, (_text(part.encode()) for part in parts[::2]), strict=True))


def test_on_an_80_by_24_terminal_the_live_view_shows_trades_and_how_to_join(tmp_path):
    proc, master = _spawn_on_pty(["--data", str(tmp_path / "d")], columns=80, lines=24)
    try:
        started = _read_until(master, time.monotonic() + RUN_BOUND_S, TAPE_ROW)
        proc.send_signal(signal.SIGINT)
        rest = _read_until(master, time.monotonic() + RUN_TIMEOUT_S)
        assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, _text(rest)[-3000:]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    frames = _frames(started + rest)
    # each redraw went back over the whole last frame: none was taller than the terminal
    assert len(frames) > 1 and all(up <= 24 for up, _ in frames), [up for up, _ in frames]
    # the first whole frame (one redrawn after it) with a trade on its tape
    last = next(text for _, text in frames[1:-1] if TAPE_ROW.search(text))
    lines = last.rstrip("\n").split("\n")
    assert len(lines) <= 24 and max(map(len, lines)) <= 80, last
    assert TAPE_ROW.search(last), last
    assert "Top of book" in last and "..." not in lines[-1], last  # drawn whole, not cropped
    folded = _folded(lines)
    assert "tonne order --connect 127.0.0.1:" in folded and "/client.key ..." in folded, last
    assert f"tonne log tail -f --data {tmp_path / 'd'}" in folded, last
    assert VERIFY_OK.search(_text(rest)), _text(rest)[-3000:]

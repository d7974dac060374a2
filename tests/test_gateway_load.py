"""`tonne load`: a spawned `tonne serve`, simulated participants over both transports and in
both modes, a report whose figures agree with each other, and an end check that passes on
the real server and fails on one that drops a fill."""

from __future__ import annotations

import json

import msgspec
import pytest

from engine.commands import Side
from gateway.cli.load import main, parse_mix
from gateway.cli.load_check import Books, check_market, expected_serials
from gateway.wire import protocol as p

SHORT = ["--seconds", "2", "--orders", "1500", "--mix", "makers=2,takers=2,baskets=1,noisy=1"]


def run(capsys: pytest.CaptureFixture[str], tmp_path, *args: str, **kw) -> tuple[int, str, dict]:
    out_json = tmp_path / "report.json"
    code = main([*SHORT, *args, "--json", str(out_json)], **kw)
    out = capsys.readouterr().out
    return code, out, json.loads(out_json.read_text())


def assert_consistent(r: dict) -> None:
    lat = r["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"], lat
    assert lat["count"] == r["requests"] > 0
    assert 0 < r["orders"] <= 1500 and r["orders"] <= r["requests"]
    # every fill report is one side of a trade, and each side fills at most what was ordered
    assert 0 < r["filled_t"] <= 2 * r["ordered_t"]
    assert r["fills"] == 2 * r["end_check"]["trades"]  # spawned: both sides are participants
    assert r["errors"] == 0 and r["disconnects"] == r["reconnects"] == 0, r["error_samples"]
    assert r["end_check"]["unchecked"] == []
    assert r["noisy"]["sent"] > 0 and r["noisy"]["as_documented"] == r["noisy"]["sent"]
    for reason in ("INVALID_PRICE", "UNKNOWN_SERIES", "INVALID_QUANTITY", "PRICE_OUT_OF_BAND"):
        assert r["rejects"][reason] > 0, r["rejects"]
    assert r["baskets"] > 0 and r["retired_t"] > 0
    assert r["end_check"]["ok"] and r["server_exit"] == 0, r["end_check"]["problems"]


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_closed_loop_spawned_run_passes_its_end_check(transport, capsys, tmp_path):
    code, out, r = run(capsys, tmp_path, "--transport", transport, "--in-flight", "2")
    assert code == 0, out
    assert r["mode"] == "closed" and r["transport"] == transport and r["where"] == "spawn"
    assert_consistent(r)
    assert "end check: OK" in out and "p99.9" in out


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_an_open_loop_run_achieves_no_more_than_the_rate_asked(transport, capsys, tmp_path):
    code, out, r = run(capsys, tmp_path, "--transport", transport, "--rate", "400")
    assert code == 0, out
    assert r["mode"] == "open" and r["rate_asked"] == 400
    assert 0 < r["rate_achieved"] <= 400 * 1.05, r
    assert_consistent(r)


def test_find_max_reports_the_highest_rate_that_held(capsys, tmp_path):
    code, out, r = run(
        capsys, tmp_path, "--find-max", "--rate", "200", "--step", "4", "--p99-ms", "1000",
        "--seconds", "1",
    )  # fmt: skip
    assert code == 0, out
    steps = r["find_max"]["steps"]
    assert steps and [s["rate_asked"] for s in steps[:2]] == [200, 800][: len(steps)]
    held = [s["rate_asked"] for s in steps if s["held"]]
    assert r["find_max"]["max_rate"] == (max(held) if held else 0)
    assert "highest rate with p99 <= 1000.0 ms" in out and "end check: OK" in out


def test_a_server_that_drops_one_acknowledged_fill_fails_the_end_check(capsys, tmp_path):
    code, out, r = run(
        capsys, tmp_path, "--in-flight", "2", serve_command=("tests.test_gateway_load_double",)
    )
    assert code == 1, out
    problems = r["end_check"]["problems"]
    assert not r["end_check"]["ok"] and problems
    assert any("was reported" in x and "only the" in x for x in problems), problems
    assert any("on the server" in x and "by its reports" in x for x in problems), problems
    assert "end check: FAILED" in out


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_participants_reconnect_after_a_dropped_connection_and_still_check(
    transport, capsys, tmp_path
):
    code, out, r = run(
        capsys, tmp_path, "--transport", transport, "--in-flight", "2",
        serve_command=("tests.test_gateway_load_double", "--drop-connections"),
    )  # fmt: skip
    assert code == 0, out
    # every participant's connection was dropped once, and every one came back
    assert r["disconnects"] == r["reconnects"] == 6, r
    assert r["errors"] == 0, r["error_samples"]
    check = r["end_check"]
    assert check["ok"] and check["trades"] > 0, check["problems"]
    assert check["unchecked"] and "conservation" in check["unchecked"][0]
    assert "reconnects 6" in out and "not checked:" in out


def test_a_participant_lost_for_good_fails_the_run_with_a_report(capsys, tmp_path):
    code, out, r = run(
        capsys, tmp_path, "--mix", "makers=1,takers=1",
        serve_command=("tests.test_gateway_load_double", "--drop-connections-always"),
    )  # fmt: skip
    assert code == 1, out
    assert r["reconnects"] == 2 * 10 and r["disconnects"] == 2 * 11, r  # RECONNECTS_MAX each
    problems = r["end_check"]["problems"]
    assert sum("lost for good" in x for x in problems) == 2, problems
    assert not r["end_check"]["ok"] and "end check: FAILED" in out


@pytest.mark.parametrize(
    "args, says",
    [
        (["--in-flight", "0"], "--in-flight"),
        (["--rate", "0"], "--rate"),
        (["--rate", "10", "--in-flight", "2"], "not allowed with"),
        (["--mix", "makers=x"], "--mix"),
        (["--mix", "dealers=1"], "--mix"),
        (["--mix", "makers=0"], "no participant"),
        (["--mix", "makers=1", "--participants", "2"], "not both"),
        (["--connect", "127.0.0.1:1"], "--connect needs --keys"),
        (["--keys", "k.json"], "go with --connect"),
        (["--find-max", "--step", "1"], "--step"),
    ],
)
def test_bad_options_are_refused(args, says, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and says in capsys.readouterr().err


def test_parse_mix_counts_every_kind():
    assert parse_mix("makers=2, noisy=1") == {"makers": 2, "takers": 0, "baskets": 0, "noisy": 1}


def _fill(trade: int, order: int, side: Side, qty: int, first: int, **kw) -> p.Fill:
    serials = [p.SerialRange("VCS1", 2020, first, first + qty - 1)]
    return p.Fill(
        trade_id=trade, order_id=order, client_order_id="c", series="S", side=side, price=10,
        qty=qty, leaves_qty=kw.get("leaves", 0), liquidity="maker", fee=1, serials=serials,
    )  # fmt: skip


def _ack(order: int, qty: int, side: Side) -> p.OrderAck:
    return p.OrderAck(
        order_id=order, client_order_id="c", series="S", side=side, price=10, qty=qty, ts=0
    )


def test_the_books_follow_fills_with_fees_and_serials_and_find_the_one_sided_trade():
    buyer, seller = Books(1, {"S": "USD"}), Books(2, {"S": "USD"})
    buyer.feed([_ack(10, 5, Side.BUY), _fill(7, 10, Side.BUY, 3, 100, leaves=2)])
    seller.feed([_ack(11, 3, Side.SELL), _fill(7, 11, Side.SELL, 3, 100)])
    assert buyer.open == {10: 2} and seller.open == {}
    assert buyer.cash == {"USD": -31} and seller.cash == {"USD": 29}
    assert check_market([buyer, seller], closed=True) == []
    buyer.feed([_fill(8, 10, Side.BUY, 2, 200)])  # no seller heard of trade 8
    assert any("trade 8: only the buy side" in x for x in check_market([buyer, seller], True))
    buyer.feed([_fill(8, 10, Side.BUY, 2, 200)])
    assert any("not open" in x for x in buyer.problems)


def test_expected_serials_merge_and_refuse_a_serial_held_twice():
    k = ("VCS1", 2020, "")
    got, bad = expected_serials([(k, 1, 10)], [(k, 11, 20)], [(k, 1, 5)])
    assert got == {k: [[6, 20]]} and bad == []
    _, bad = expected_serials([(k, 1, 10)], [(k, 5, 6)], [])
    assert bad and "held 2 times" in bad[0]


@pytest.mark.parametrize(
    "fill, says",
    [
        (dict(qty=8, leaves=0), "8 t filled, order 10 had 5 t open"),  # over-filled
        (dict(qty=3, leaves=1), "leaves 1 t, order 10 had 5 t open and filled 3 t"),
        (dict(qty=2, leaves=3, price=11), "buy order 10 limited to 10 filled at 11"),
        (dict(qty=2, leaves=3, side=Side.SELL), "a sell fill of a buy order"),
    ],
)
def test_a_fill_its_order_does_not_allow_is_a_finding(fill, says):
    """A server that over-fills an order, fills it through its limit or leaves the wrong
    quantity, and settles as it reported, must not pass: the order's ack bounds its fills."""
    books = Books(1, {"S": "USD"})
    f = _fill(7, 10, fill.get("side", Side.BUY), fill["qty"], 100, leaves=fill["leaves"])
    if "price" in fill:
        f = msgspec.structs.replace(f, price=fill["price"])
    books.feed([_ack(10, 5, Side.BUY), f])
    assert any(says in x for x in books.problems), books.problems


def test_a_fill_at_a_better_price_within_the_open_quantity_is_no_finding():
    books = Books(1, {"S": "USD"})
    f = msgspec.structs.replace(_fill(7, 10, Side.BUY, 2, 100, leaves=3), price=9)
    books.feed([_ack(10, 5, Side.BUY), f])
    assert books.problems == [] and books.open == {10: 3}

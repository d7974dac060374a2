"""Settlement over the wire: cash in and out, balances, holdings with serials, fills that
carry their serials and fees, retirement certificates. Needs the settlement core."""

from __future__ import annotations

import pytest
from test_gateway_harness import CASH, CREDITS, SERIES, run, running_server

from engine.commands import Side
from engine.events import Reason
from gateway import protocol as p
from gateway.client import RequestRejected

ALL = frozenset({"trade", "retire", "fund"})


def _usd(balances: p.Balances) -> tuple[int, int]:
    (usd,) = [c for c in balances.cash if c.currency == "USD"]
    return usd.total, usd.held


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_deposit_and_withdraw_move_the_sessions_own_cash(transport):
    async def body():
        async with running_server(permissions=ALL) as env:
            c = await env.connect(transport, 1)
            done = await c.request(p.Deposit(currency="USD", amount=500, req_id=c.next_req_id()))
            assert isinstance(done, p.Done) and done.request == "deposit"
            assert _usd(await c.balances()) == (CASH + 500, 0)
            await c.request(p.Withdraw(currency="USD", amount=700, req_id=c.next_req_id()))
            assert _usd(await c.balances()) == (CASH - 200, 0)
            too_much = await c.request(
                p.Withdraw(currency="USD", amount=CASH * 2, req_id=c.next_req_id())
            )
            assert isinstance(too_much, p.Reject) and too_much.reason is Reason.INSUFFICIENT_CASH

    run(body)


def test_a_resting_buy_holds_cash_and_a_resting_sell_holds_credits():
    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            await c.place(SERIES, Side.BUY, qty=10, price=300)
            await c.place(SERIES, Side.SELL, qty=7, price=900)
            assert _usd(await c.balances()) == (CASH, 3000)
            (vcs,) = [h for h in (await c.holdings()).holdings if h.project == "VCS1340"]
            assert (vcs.available, vcs.held) == (CREDITS - 7, 7)
            # holds are counts, not serials: every owned serial is listed
            assert sum(r.last - r.first + 1 for r in vcs.serials) == CREDITS

    run(body)


def test_fills_carry_the_delivered_serials_and_cash_is_conserved():
    async def body():
        async with running_server() as env:
            seller = await env.tcp(1)
            buyer = await env.tcp(2)
            await seller.place(SERIES, Side.SELL, qty=5, price=1000)
            mark = buyer.received
            await buyer.place(SERIES, Side.BUY, qty=5, price=1000)
            fill = await buyer.wait_for(lambda m: isinstance(m, p.Fill), since=mark)
            assert [(r.project, r.vintage, r.last - r.first + 1) for r in fill.serials] == [
                ("VCS1340", 2020, 5)
            ]
            assert fill.serials[0].first == 1 * 10**6  # the seller's oldest serials
            paid = _usd(await buyer.balances())[0]
            got = _usd(await seller.balances())[0]
            assert paid == CASH - 5000 - fill.fee
            assert got + paid <= 2 * CASH and (2 * CASH - got - paid) >= 0
            (vcs,) = [h for h in (await buyer.holdings()).holdings if h.project == "VCS1340"]
            assert vcs.available == CREDITS + 5

    run(body)


def test_retire_answers_with_a_certificate_and_the_credits_are_gone():
    async def body():
        async with running_server() as env:
            c = await env.ws(3)
            req_id = c.next_req_id()
            cert = await c.request(
                p.Retire(
                    series=SERIES,
                    qty=12,
                    beneficiary="Harbour Airlines",
                    purpose="corsia",
                    period_start="2025-01-01",
                    period_end="2025-12-31",
                    req_id=req_id,
                )
            )
            assert isinstance(cert, p.Certificate), cert
            assert (cert.qty, cert.project, cert.vintage, cert.purpose) == (
                12,
                "VCS1340",
                2020,
                "corsia",
            )
            assert cert.record_hash and cert.record_seq > 0
            (vcs,) = [h for h in (await c.holdings()).holdings if h.project == "VCS1340"]
            assert vcs.available == CREDITS - 12

    run(body)


def test_retire_needs_holdings_and_a_known_purpose():
    async def body():
        async with running_server() as env:
            c = await env.tcp(1)
            bad = await c.request(
                p.Retire(
                    series=SERIES, qty=1, beneficiary="x", purpose="vanity", req_id=c.next_req_id()
                )
            )
            assert bad.reason is Reason.MALFORMED_MESSAGE
            with pytest.raises(RequestRejected):
                await c.place(SERIES, Side.SELL, qty=CREDITS + 1, price=100)

    run(body)


def _deposit_credits(c, start: int, end: int, quantity: int, **fields) -> p.DepositCredits:
    return p.DepositCredits(
        project="GS11236",
        vintage=2021,
        start=start,
        end=end,
        quantity=quantity,
        req_id=c.next_req_id(),
        **fields,
    )


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_fund_key_deposits_a_registry_block_into_its_own_account(transport):
    async def body():
        async with running_server(permissions=ALL) as env:
            c = await env.connect(transport, 2)
            start = 9 * 10**6  # above every block the harness deposited
            msg = _deposit_credits(c, start, start + 50, 50, convention="half_open", ref="r-1")
            done = await c.request(msg)
            assert isinstance(done, p.Done), done
            assert (done.request, done.count, done.req_id) == ("deposit_credits", 1, msg.req_id)
            (gs,) = [h for h in (await c.holdings()).holdings if h.project == "GS11236"]
            assert gs.available == CREDITS + 50
            assert p.SerialRange("GS11236", 2021, start, start + 49) in gs.serials
            cmd = env.journal.commands[-1]
            assert (type(cmd).__name__, cmd.account, cmd.ref) == ("DepositCredits", 2, "r-1")

    run(body)


def test_deposit_credits_needs_the_fund_permission():
    async def body():
        async with running_server() as env:  # keys with trade and retire only
            c = await env.tcp(1)
            answer = await c.request(_deposit_credits(c, 9 * 10**6, 9 * 10**6 + 9, 10))
            assert isinstance(answer, p.Reject) and answer.reason is Reason.NOT_PERMITTED
            assert not env.journal.commands

    run(body)


@pytest.mark.parametrize(
    ("start", "end", "quantity", "convention", "reason"),
    [
        (9 * 10**6, 9 * 10**6 + 9, 11, "inclusive", Reason.INVALID_SERIAL_BLOCK),
        (10**6 + 5, 10**6 + 14, 10, "inclusive", Reason.SERIALS_OVERLAP),  # account 1's
        (9 * 10**6, 9 * 10**6 + 9, 10, "backwards", Reason.MALFORMED_MESSAGE),
    ],
)
def test_a_bad_block_is_rejected_with_its_settlement_reason(
    start, end, quantity, convention, reason
):
    async def body():
        async with running_server(permissions=ALL) as env:
            c = await env.tcp(2)
            msg = _deposit_credits(c, start, end, quantity, convention=convention)
            answer = await c.request(msg)
            assert isinstance(answer, p.Reject), answer
            assert (answer.reason, answer.req_id) == (reason, msg.req_id)
            assert not env.journal.commands
            (gs,) = [h for h in (await c.holdings()).holdings if h.project == "GS11236"]
            assert gs.available == CREDITS

    run(body)

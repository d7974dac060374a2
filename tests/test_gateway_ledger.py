"""Settlement over the wire: cash in and out, balances, holdings with serials, fills that
carry their serials and fees, retirement certificates. Needs the settlement core."""

from __future__ import annotations

import pytest
from test_gateway_harness import CASH, CREDITS, SERIES, run, running_server

from engine.commands import Side
from engine.events import Reason
from gateway.client.client import RequestRejected
from gateway.wire import protocol as p

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


PERIOD = {"period_start": "2025-01-01", "period_end": "2025-12-31"}


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_retire_that_omits_the_period_gets_a_certificate_stating_none(transport):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport, 1)
            msg = p.Retire(series=SERIES, qty=3, beneficiary="Harbour Airlines", req_id=7)
            cert = await c.request(msg)
            assert isinstance(cert, p.Certificate), cert
            assert (cert.qty, cert.period_start, cert.period_end) == (3, "", "")
            cmd = env.journal.commands[-1]
            assert (type(cmd).__name__, cmd.period_start, cmd.period_end) == ("Retire", "", "")

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("given", ["period_start", "period_end"])
def test_a_retire_with_one_end_of_the_period_is_rejected_and_changes_nothing(transport, given):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport, 1)
            before = await c.holdings()
            journaled = len(env.journal.commands)
            msg = p.Retire(series=SERIES, qty=3, beneficiary="x", req_id=8, **{given: "2025-06-30"})
            bad = await c.request(msg)
            assert isinstance(bad, p.Reject) and bad.reason is Reason.INVALID_RETIREMENT
            assert "both" in bad.text
            assert (await c.holdings()).holdings == before.holdings
            assert len(env.journal.commands) == journaled

    run(body)


def _vcs(holdings: p.Holdings) -> p.Holding:
    (vcs,) = [h for h in holdings.holdings if h.project == "VCS1340"]
    return vcs


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_retire_exact_serial_ranges_certifies_exactly_those(transport):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport, 1)
            base = 1 * 10**6  # account 1's VCS block starts here
            wanted = [
                p.SerialRange("VCS1340", 2020, base + 500, base + 509),
                p.SerialRange("VCS1340", 2020, base + 700, base + 704),
            ]
            msg = p.Retire(
                serials=wanted, beneficiary="Harbour Airlines", req_id=c.next_req_id(), **PERIOD
            )
            cert = await c.request(msg)
            assert isinstance(cert, p.Certificate), cert
            assert (cert.qty, cert.project, cert.vintage, cert.req_id) == (
                15,
                "VCS1340",
                2020,
                msg.req_id,
            )
            assert cert.serials == wanted
            vcs = _vcs(await c.holdings())
            assert vcs.available == CREDITS - 15
            owned = {(r.first, r.last) for r in vcs.serials}
            for r in wanted:
                assert not any(a <= r.last and r.first <= b for a, b in owned)
            cmd = env.journal.commands[-1]
            assert (type(cmd).__name__, cmd.account, cmd.series, cmd.qty) == ("Retire", 1, "", 0)
            assert [(r.first, r.last) for r in cmd.ranges] == [(r.first, r.last) for r in wanted]

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("another_accounts", Reason.SERIALS_NOT_HELD),
        ("unknown", Reason.SERIALS_NOT_HELD),
        ("retired_already", Reason.SERIALS_RETIRED),
        ("with_qty", Reason.INVALID_RETIREMENT),
        ("neither", Reason.INVALID_QUANTITY),
    ],
)
def test_retire_of_ranges_not_held_is_rejected_and_changes_nothing(transport, case, reason):
    async def body():
        async with running_server() as env:
            c = await env.connect(transport, 1)
            mine = p.SerialRange("VCS1340", 2020, 10**6, 10**6 + 9)
            if case == "retired_already":
                first = p.Retire(serials=[mine], beneficiary="x", req_id=c.next_req_id(), **PERIOD)
                assert isinstance(await c.request(first), p.Certificate)
            before = await c.holdings()
            journaled = len(env.journal.commands)
            fields: dict = {
                "another_accounts": {
                    "serials": [p.SerialRange("VCS1340", 2020, 2 * 10**6, 2 * 10**6 + 4)]
                },
                "unknown": {"serials": [p.SerialRange("VCS1340", 2020, 8 * 10**6, 8 * 10**6)]},
                "retired_already": {"serials": [mine]},
                "with_qty": {"serials": [mine], "series": SERIES, "qty": 10},
                "neither": {"series": SERIES},
            }[case]
            msg = p.Retire(beneficiary="x", req_id=c.next_req_id(), **PERIOD, **fields)
            answer = await c.request(msg)
            assert isinstance(answer, p.Reject), answer
            assert (answer.reason, answer.req_id) == (reason, msg.req_id)
            assert len(env.journal.commands) == journaled
            assert (await c.holdings()).holdings == before.holdings

    run(body)


def _withdraw_credits(c, start: int, end: int, quantity: int, **fields) -> p.WithdrawCredits:
    return p.WithdrawCredits(
        project="VCS1340",
        vintage=2020,
        start=start,
        end=end,
        quantity=quantity,
        req_id=c.next_req_id(),
        **fields,
    )


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_fund_key_withdraws_exact_serials_back_to_the_registry(transport):
    async def body():
        async with running_server(permissions=ALL) as env:
            c = await env.connect(transport, 2)
            start = 2 * 10**6 + 100  # inside account 2's VCS block
            msg = _withdraw_credits(c, start, start + 20, 20, convention="half_open", ref="w-1")
            done = await c.request(msg)
            assert isinstance(done, p.Done), done
            assert (done.request, done.count, done.req_id) == ("withdraw_credits", 1, msg.req_id)
            vcs = _vcs(await c.holdings())
            assert vcs.available == CREDITS - 20
            assert [(r.first, r.last) for r in vcs.serials] == [
                (2 * 10**6, start - 1),
                (start + 20, 2 * 10**6 + CREDITS - 1),
            ]
            cmd = env.journal.commands[-1]
            assert (type(cmd).__name__, cmd.account, cmd.ref) == ("WithdrawCredits", 2, "w-1")

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_withdraw_credits_needs_the_fund_permission(transport):
    async def body():
        async with running_server() as env:  # keys with trade and retire only
            c = await env.connect(transport, 1)
            answer = await c.request(_withdraw_credits(c, 10**6, 10**6 + 9, 10))
            assert isinstance(answer, p.Reject) and answer.reason is Reason.NOT_PERMITTED
            assert not env.journal.commands
            assert _vcs(await c.holdings()).available == CREDITS

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize(
    ("start", "quantity", "reason"),
    [
        (10**6, 10, Reason.SERIALS_NOT_HELD),  # account 1's
        (8 * 10**6, 10, Reason.SERIALS_NOT_HELD),  # nobody's
        (2 * 10**6 + 10, 11, Reason.INVALID_SERIAL_BLOCK),  # quantity disagrees
        (2 * 10**6, 10, Reason.CREDITS_HELD),  # held by an open sell of all the rest
    ],
)
def test_withdrawing_serials_not_available_is_rejected(transport, start, quantity, reason):
    async def body():
        async with running_server(permissions=ALL) as env:
            c = await env.connect(transport, 2)
            if reason is Reason.CREDITS_HELD:
                await c.place(SERIES, Side.SELL, qty=CREDITS - 5, price=900)
            before = await c.holdings()
            journaled = len(env.journal.commands)
            msg = _withdraw_credits(c, start, start + 9, quantity)
            answer = await c.request(msg)
            assert isinstance(answer, p.Reject), answer
            assert (answer.reason, answer.req_id) == (reason, msg.req_id)
            assert len(env.journal.commands) == journaled
            assert (await c.holdings()).holdings == before.holdings

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_withdrawing_retired_serials_is_rejected(transport):
    async def body():
        async with running_server(permissions=ALL) as env:
            c = await env.connect(transport, 2)
            gone = p.SerialRange("VCS1340", 2020, 2 * 10**6, 2 * 10**6 + 9)
            retire = p.Retire(serials=[gone], beneficiary="x", req_id=c.next_req_id(), **PERIOD)
            cert = await c.request(retire)
            assert isinstance(cert, p.Certificate), cert
            answer = await c.request(_withdraw_credits(c, gone.first, gone.last, 10))
            assert isinstance(answer, p.Reject) and answer.reason is Reason.SERIALS_RETIRED
            assert _vcs(await c.holdings()).available == CREDITS - 10

    run(body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_deposit_that_would_pass_the_cash_total_is_refused_and_the_server_serves_on(transport):
    """Issue 10: deposits of 2^62 were acknowledged until a balance passed 2^64 - 1 and the
    server could no longer encode its answers. Now each is `LIMIT_EXCEEDED` and changes
    nothing; deposits up to the limit are accepted and every answer still encodes."""
    from settlement.limits import AMOUNT_MAX

    async def body():
        async with running_server(permissions=ALL) as env:
            c = await env.connect(transport, 1)
            for _ in range(5):
                refused = await c.request(
                    p.Deposit(currency="USD", amount=2**62, req_id=c.next_req_id())
                )
                assert isinstance(refused, p.Reject), refused
                assert refused.reason is Reason.LIMIT_EXCEEDED and "cash_total_max" in refused.text
            assert _usd(await c.balances()) == (CASH, 0)
            in_custody = env.server.core.ledger.cash_net["USD"]
            room = AMOUNT_MAX - in_custody
            done = await c.request(p.Deposit(currency="USD", amount=room, req_id=c.next_req_id()))
            assert isinstance(done, p.Done), done
            one_more = await c.request(p.Deposit(currency="USD", amount=1, req_id=c.next_req_id()))
            assert isinstance(one_more, p.Reject) and one_more.reason is Reason.LIMIT_EXCEEDED
            assert _usd(await c.balances()) == (CASH + room, 0)
            other = await env.connect(transport, 2)  # the server still logs sessions on
            assert _usd(await other.balances()) == (CASH, 0)

    run(body)


def test_a_credit_deposit_that_would_pass_the_credits_in_custody_is_refused():
    from settlement.limits import AMOUNT_MAX, SERIAL_MAX

    async def body():
        async with running_server(permissions=ALL) as env:
            c = await env.tcp(2)
            half = 1 << 52  # serials half..SERIAL_MAX are above every block the harness made
            done = await c.request(_deposit_credits(c, half, SERIAL_MAX, SERIAL_MAX - half + 1))
            assert isinstance(done, p.Done), done
            room = AMOUNT_MAX - sum(env.server.core.ledger.credits_net.values())
            vcs = {"project": "VCS1340", "vintage": 2020}
            too_many = p.DepositCredits(
                start=half, end=half + room, quantity=room + 1, req_id=c.next_req_id(), **vcs
            )
            refused = await c.request(too_many)
            assert isinstance(refused, p.Reject) and refused.reason is Reason.LIMIT_EXCEEDED
            assert "credits_total_max" in refused.text
            fits = p.DepositCredits(
                start=half, end=half + room - 1, quantity=room, req_id=c.next_req_id(), **vcs
            )
            assert isinstance(await c.request(fits), p.Done)
            held = {h.project: h.available for h in (await c.holdings()).holdings}
            assert held == {"GS11236": CREDITS + half, "VCS1340": CREDITS + room}

    run(body)

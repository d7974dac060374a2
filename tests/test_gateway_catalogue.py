"""The carbon catalogue over the wire (issue 13): the operator's requests need the `operator`
permission and go through the commit pipeline like any command; screens and a contract's rule
versions are queries. A real server on loopback with the real settlement core and store
(tests/test_gateway_harness.py)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from engine.commands import Side
from engine.events import CancelReason, Reason
from gateway.client.client import RequestRejected
from gateway.wire import protocol as p
from screening.language import SCREEN_TEXT_MAX
from tests.test_gateway_harness import SERIES, run, running_server

OPERATOR = frozenset({"trade", "retire", "fund", "operator"})
CONTRACT = "CCB-AVOIDANCE"
BAD_SCREEN = "mitigation = avoidance and ("  # stops reading at 28, the end
VCS_BLOCK = {"project": "VCS1340", "vintage": 2020}


def operator_requests(req_id: int = 7) -> list[Any]:
    """One of each operator request, as a client would send it."""
    return [
        p.ListContract(series=CONTRACT, rule="label CCB", tick=5, req_id=req_id),
        p.AddRuleVersion(series=CONTRACT, rule="label CCB and vintage >= 2020", req_id=req_id),
        p.ChangeLabel(project="VCS1340", label="CCB", present=False, req_id=req_id),
        p.SuspendProject(project="VCS1340", ref="notice-1", req_id=req_id),
        p.ReinstateProject(project="VCS1340", req_id=req_id),
        p.CancelCredits(
            account=2, start=2_000_000, end=2_000_009, quantity=10, req_id=req_id, **VCS_BLOCK
        ),
    ]


# -- the schema ------------------------------------------------------------------------------


def server_messages() -> list[Any]:
    credit = p.CreditInfo(
        project="VCS1340",
        registry="VERRA",
        standard="VCS",
        vintage=2020,
        mitigation="avoidance",
        basis=None,
        category="",
        methodology="VM0015",
        project_type="",
        country="ET",
        sdgs=[13, 15],
        labels=["CCB"],
        rating=None,
    )
    hit = p.ScreenHitInfo(
        series=SERIES,
        currency="USD",
        halted=False,
        rule_version=0,
        rule="",
        best_bid=None,
        best_ask=515,
        last_price=None,
        offered=20,
        credits=[credit],
    )
    return [
        p.RuleVersionAdded(
            series=CONTRACT, version=2, effective=10**18, rule="any", ts=1, req_id=3
        ),
        p.ContractRules(series=CONTRACT, versions=[p.RuleVersionInfo(1, 5, "any")], req_id=4),
        p.ScreenResult(hits=[hit], req_id=5),
        p.Fill(
            trade_id=1,
            order_id=2,
            client_order_id="c",
            series=CONTRACT,
            side=Side.BUY,
            price=5,
            qty=1,
            leaves_qty=0,
            liquidity="taker",
            rule_version=2,
        ),
    ]


@pytest.mark.parametrize(
    "msg",
    [
        *operator_requests(),
        p.Screen(expr="label CCP", req_id=1),
        p.QueryContract(series=CONTRACT, req_id=2),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_new_client_message_round_trips_both_encodings(msg):
    assert p.decode_client_msgpack(p.encode_frame([msg])[p.HEADER_BYTES :]) == [msg]
    assert p.decode_client_json(p.encode_json([msg])) == [msg]


@pytest.mark.parametrize("msg", server_messages(), ids=lambda m: type(m).__name__)
def test_every_new_server_message_round_trips_both_encodings(msg):
    assert p.decode_server_msgpack(p.encode_frame([msg])[p.HEADER_BYTES :]) == [msg]
    assert p.decode_server_json(p.encode_json([msg])) == [msg]


def test_a_screen_far_longer_than_the_language_allows_does_not_decode():
    at_limit = msgspec.json.encode({"type": "screen", "expr": "x" * p.SCREEN_WIRE_CHARS_MAX})
    assert p.decode_client_json(at_limit)[0].expr == "x" * p.SCREEN_WIRE_CHARS_MAX
    over = msgspec.json.encode({"type": "screen", "expr": "x" * (p.SCREEN_WIRE_CHARS_MAX + 1)})
    with pytest.raises(p.MalformedFrame):
        p.decode_client_json(over)


def test_a_reversal_is_the_one_request_that_names_an_account():
    with pytest.raises(p.MalformedFrame):  # it must name one
        p.decode_client_json(
            b'{"type":"cancel_credits","project":"VCS1340","vintage":2020,"quantity":1}'
        )


# -- permission --------------------------------------------------------------------------------


@pytest.mark.parametrize("msg", operator_requests(), ids=lambda m: type(m).__name__)
def test_each_operator_request_without_the_permission_is_refused_and_changes_nothing(msg):
    async def body():
        async with running_server(permissions=frozenset({"trade", "retire", "fund"})) as env:
            c = await env.tcp(1)
            hash_before = env.server.core.state_hash()
            answer = await c.request(msg)
            assert isinstance(answer, p.Reject) and answer.reason is Reason.NOT_PERMITTED
            assert "operator" in answer.text and answer.req_id == msg.req_id
            assert env.journal.commands == []  # nothing journaled
            assert env.server.core.state_hash() == hash_before

    run(body)


def test_screen_and_query_contract_need_only_a_logon():
    async def body():
        async with running_server(permissions=frozenset({"trade"})) as env:
            c = await env.tcp(1)
            result = await c.screen("standard = VCS")
            assert [h.series for h in result.hits] == [SERIES]
            with pytest.raises(RequestRejected) as err:
                await c.contract_rules(SERIES)
            assert err.value.reason is Reason.NOT_A_CONTRACT

    run(body)


def test_a_screen_that_does_not_parse_is_refused_with_the_position():
    async def body():
        async with running_server() as env:
            for transport in ("tcp", "ws"):
                c = await env.connect(transport, 1)
                with pytest.raises(RequestRejected) as err:
                    await c.screen(BAD_SCREEN)
                assert err.value.reason is Reason.INVALID_SCREEN
                assert err.value.text.startswith("at 28: "), err.value.text
                with pytest.raises(RequestRejected) as err:  # too long: the language says where
                    await c.screen("any or " * (SCREEN_TEXT_MAX // 7) + "any")
                assert err.value.reason is Reason.INVALID_SCREEN
                assert err.value.text.startswith(f"at {SCREEN_TEXT_MAX}: "), err.value.text

    run(body)


# -- end to end on the real core -----------------------------------------------------------------


def test_a_contract_is_listed_versioned_and_shown():
    async def body():
        async with running_server(permissions=OPERATOR) as env:
            op = await env.tcp(1)
            added = await op.list_contract(CONTRACT, "label CCB", tick=5)
            assert (added.series, added.version, added.rule) == (CONTRACT, 1, "label CCB")
            later = added.ts + 10**12
            second = await op.add_rule_version(CONTRACT, "label CCB and vintage >= 2020", later)
            assert (second.version, second.effective) == (2, later)
            rules = await op.contract_rules(CONTRACT)
            assert [(v.version, v.rule) for v in rules.versions] == [
                (1, "label CCB"),
                (2, "label CCB and vintage >= 2020"),
            ]
            listed = {s.id: s for s in (await op.series()).series}
            assert listed[CONTRACT].mitigation is None and listed[CONTRACT].project is None
            with pytest.raises(RequestRejected) as err:
                await op.list_contract(CONTRACT, "any")
            assert err.value.reason is Reason.ALREADY_LISTED
            with pytest.raises(RequestRejected) as err:
                await op.add_rule_version(CONTRACT, BAD_SCREEN, later + 1)
            assert err.value.reason is Reason.INVALID_SCREEN and "at 28" in err.value.text
            with pytest.raises(RequestRejected) as err:
                await op.add_rule_version(CONTRACT, "any", effective=1)
            assert err.value.reason is Reason.RULE_IN_PAST

    run(body)


def test_a_contract_fill_reports_the_serials_delivered_and_its_rule_version():
    async def body():
        async with running_server(permissions=OPERATOR) as env:
            op, seller, buyer = await env.tcp(1), await env.tcp(2), await env.tcp(3)
            await op.list_contract(CONTRACT, "label CCB", tick=5)
            await op.add_rule_version(CONTRACT, "label CCB and vintage >= 2020")
            await seller.place(CONTRACT, Side.SELL, qty=4, price=500)
            since = buyer.received
            await buyer.place(CONTRACT, Side.BUY, qty=4, price=500)
            fill = await buyer.wait_for(lambda m: isinstance(m, p.Fill) and m.serials, since=since)
            assert fill.rule_version == 2 and fill.qty == 4
            assert sum(r.last - r.first + 1 for r in fill.serials) == 4
            assert {(r.project, r.vintage) for r in fill.serials} == {("VCS1340", 2020)}

    run(body)


def test_a_withdrawn_label_cancels_the_resting_sell_it_made_ineligible():
    async def body():
        async with running_server(permissions=OPERATOR) as env:
            op, seller = await env.tcp(1), await env.tcp(2)
            await op.list_contract(CONTRACT, "label CCB", tick=5)
            screened = await seller.screen("label CCB")
            assert CONTRACT in [h.series for h in screened.hits]
            ack = await seller.place(CONTRACT, Side.SELL, qty=10, price=500)
            since = seller.received
            done = await op.change_label("VCS1340", "CCB", present=False)
            assert done.request == "change_label" and done.count == 1
            cancelled = await seller.wait_for(
                lambda m: isinstance(m, p.Cancelled) and m.order_id == ack.order_id, since=since
            )
            assert cancelled.reason is CancelReason.INELIGIBLE and cancelled.req_id == 0
            assert (await seller.open_orders()).orders == []
            hits = {h.series for h in (await seller.screen("label CCB")).hits}
            assert SERIES not in hits

    run(body)


def test_a_suspended_project_halts_its_book_and_cancels_its_orders():
    async def body():
        async with running_server(permissions=OPERATOR) as env:
            op, trader, watcher = await env.tcp(1), await env.tcp(2), await env.ws(3)
            await watcher.subscribe(SERIES)
            ack = await trader.place(SERIES, Side.SELL, qty=5, price=600)
            since_w, since_t = watcher.received, trader.received
            done = await op.suspend_project("VCS1340", ref="registry notice 17")
            assert done.request == "suspend_project" and done.count == 1
            cancelled = await trader.wait_for(lambda m: isinstance(m, p.Cancelled), since=since_t)
            assert cancelled.order_id == ack.order_id
            assert cancelled.reason is CancelReason.SUSPENDED and cancelled.req_id == 0
            status = await watcher.wait_for(lambda m: isinstance(m, p.SeriesStatus), since=since_w)
            assert status.series == SERIES and status.halted
            with pytest.raises(RequestRejected) as err:
                await trader.place(SERIES, Side.SELL, qty=5, price=600)
            assert err.value.reason in (Reason.SERIES_HALTED, Reason.PROJECT_SUSPENDED)
            with pytest.raises(RequestRejected) as err:
                await op.suspend_project("VCS1340")
            assert err.value.reason is Reason.PROJECT_SUSPENDED
            await op.reinstate_project("VCS1340")
            resumed = await watcher.wait_for(
                lambda m: isinstance(m, p.SeriesStatus) and not m.halted, since=since_w
            )
            assert resumed.series == SERIES
            with pytest.raises(RequestRejected) as err:
                await op.reinstate_project("VCS1340")
            assert err.value.reason is Reason.NOT_SUSPENDED

    run(body)


def test_a_reversal_takes_exact_serials_out_of_the_named_account():
    async def body():
        async with running_server(permissions=OPERATOR) as env:
            op, owner = await env.tcp(1), await env.tcp(2)

            def held() -> int:
                return sum(h.available for h in holdings.holdings if h.project == "VCS1340")

            holdings = await owner.holdings()
            before = held()
            done = await op.cancel_credits(2, "VCS1340", 2020, 2_000_000, 2_000_009, 10)
            assert done.request == "cancel_credits"
            holdings = await owner.holdings()
            assert held() == before - 10
            with pytest.raises(RequestRejected) as err:  # gone for good
                await op.cancel_credits(2, "VCS1340", 2020, 2_000_000, 2_000_009, 10)
            assert err.value.reason in (Reason.SERIALS_NOT_HELD, Reason.SERIALS_RETIRED)
            assert env.journal.commands  # journaled like any command

    run(body)

"""The session policy without a network (gateway/server/policy.py): what a message gets,
decided from the session, the message, the time and the server's limits and keys."""

from __future__ import annotations

from typing import Any

import pytest

from engine.commands import NewOrder as CoreNewOrder
from engine.events import Reason
from gateway.server.clock import ManualClock
from gateway.server.policy import QUERY, Reply, handle
from gateway.server.session import Limits, Session
from gateway.wire import protocol as p
from settlement.commands import Retire


class Key:
    def __init__(self, account: int, permissions: frozenset[str]) -> None:
        self.account, self.key_id, self.permissions = account, f"k{account}", permissions


class Keys:
    """Accepts signature 'good' for key 'k7' (account 7, trade only)."""

    def check(self, key_id: str, ts: int, nonce: str, signature: str, now_ns: int) -> Any:
        if signature == "good":
            return Key(7, frozenset({"trade"})), None, ""
        return None, Reason.BAD_SIGNATURE, "bad signature"


class Context:
    def __init__(self, **limits: Any) -> None:
        self.limits = Limits(**limits)
        self.auth = Keys()
        self.projects: dict[str, Any] = {}
        self.has_ledger = True
        self.open = 0

    def open_orders(self, account: int) -> int:
        return self.open


def logon(signature: str = "good") -> p.Logon:
    return p.Logon(key_id="k7", ts=1, nonce="n", signature=signature, req_id=1)


def order(**kw: Any) -> p.NewOrder:
    fields = {"client_order_id": "c1", "series": "S", "side": "buy", "qty": 1, "price": 5}
    return p.NewOrder(**{**fields, **kw})


def logged_on(ctx: Context) -> Session:
    s = Session(1, ctx.limits, ManualClock(0).monotonic_ns)
    reply = handle(s, logon(), 10, ctx)
    assert reply.logged_on and s.account == 7
    return s


def test_a_good_logon_logs_the_session_on_with_the_keys_account():
    ctx = Context()
    s = Session(1, ctx.limits, ManualClock(0).monotonic_ns)
    reply = handle(s, logon(), 10, ctx)
    assert isinstance(reply, Reply) and reply.counters == ("logons",) and reply.logged_on
    (ack,) = reply.send
    assert isinstance(ack, p.LogonAck) and ack.account == 7 and s.logged_on
    again = handle(s, logon(), 11, ctx)
    assert again.send[0].reason is Reason.ALREADY_LOGGED_ON and not again.logged_on


def test_failed_logons_are_counted_and_the_last_allowed_one_says_goodbye():
    ctx = Context(logon_failures_max=3)
    s = Session(1, ctx.limits, ManualClock(0).monotonic_ns)
    for n in (1, 2):
        reply = handle(s, logon("bad"), n, ctx)
        assert reply.send[0].reason is Reason.BAD_SIGNATURE and reply.goodbye is None
    third = handle(s, logon("bad"), 3, ctx)
    assert third.counters == ("logon_rejected", "logon_failures_limited")
    assert third.goodbye is not None and third.goodbye[0] is Reason.TOO_MANY_LOGON_FAILURES
    assert not s.logged_on


def test_nothing_but_logon_and_heartbeat_before_logon():
    ctx = Context()
    s = Session(1, ctx.limits, ManualClock(0).monotonic_ns)
    beat = handle(s, p.Heartbeat(req_id=4), 99, ctx)
    assert beat.send == (p.ServerHeartbeat(ts=99, req_id=4),)
    for msg in (order(), p.QueryBalances(req_id=2)):
        assert handle(s, msg, 1, ctx).send[0].reason is Reason.NOT_LOGGED_ON


def test_a_logged_on_order_becomes_a_core_command_with_the_sessions_account_and_time():
    ctx = Context()
    s = logged_on(ctx)
    cmd = handle(s, order(), 1234, ctx)
    assert isinstance(cmd, CoreNewOrder) and (cmd.account, cmd.ts, cmd.qty) == (7, 1234, 1)
    assert handle(s, p.QueryBalances(req_id=2), 1, ctx) is QUERY


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (p.Retire(beneficiary="x", series="S", qty=1), Reason.NOT_PERMITTED),
        (p.Deposit(currency="USD", amount=1), Reason.NOT_PERMITTED),
    ],
)
def test_a_request_needs_its_permission(msg, reason):
    ctx = Context()
    s = logged_on(ctx)  # trade only
    assert handle(s, msg, 1, ctx).send[0].reason is reason


def test_the_open_order_limit_refuses_a_new_order_only():
    ctx = Context(open_orders_max=2)
    s = logged_on(ctx)
    ctx.open = 2
    reply = handle(s, order(), 1, ctx)
    assert reply.send[0].reason is Reason.TOO_MANY_OPEN_ORDERS
    assert reply.counters == ("open_orders_limited",)
    assert not isinstance(handle(s, p.Cancel(order_id=1, req_id=3), 1, ctx), Reply)


def test_settlement_needs_a_core_with_a_ledger_and_a_request_that_translates():
    ctx = Context()
    s = logged_on(ctx)
    s.permissions = frozenset({"retire"})
    cmd = handle(s, p.Retire(beneficiary="x", series="S", qty=1), 1, ctx)
    assert isinstance(cmd, Retire) and cmd.account == 7
    bad = handle(s, p.Retire(beneficiary="x", series="S", qty=1, purpose="fun"), 1, ctx)
    assert bad.send[0].reason is Reason.MALFORMED_MESSAGE and "purpose" in bad.send[0].text
    ctx.has_ledger = False
    none = handle(s, p.Retire(beneficiary="x", series="S", qty=1), 1, ctx)
    assert none.send[0].reason is Reason.NOT_SUPPORTED

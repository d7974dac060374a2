"""What a session may do, decided without I/O: `handle(session, message, now, context)`.

For every decoded message of a session's read, the server asks this module what to do, and
gets one of two answers:

- a core command to apply (the request translated by gateway/server/translate.py, with the
  session's account and `now` as its timestamp); how its events answer the request is the
  per-request table `ANSWERING` (which `req_id` the events carry, and whether a `done`
  follows when the core accepted it);
- a `Reply`: messages to send the session (a logon answer, a heartbeat, a refusal), the
  counter to count it under, and whether a goodbye follows them (too many failed logons);
  or, for a query or subscription, that the server answers it from the state it holds.

The decisions: a heartbeat is always answered; a logon is checked against the keys (a
session logs on once; each failure counts, and `logon_failures_max` of them end the
connection after the answer); everything else needs a logged-on session, the request's
permission (`trade` for orders and baskets, `fund`, `retire`, and `operator` for the
catalogue's operator requests: contracts, labels, suspensions, reversals), for a new order
fewer than `open_orders_max` open orders of the account (a basket never rests: no such
check), and for settlement (a basket or a buy-and-retire order among it) a core with a
ledger. Changing the session's own protocol state (logged on, its account, key and
permissions, its failure count) is part of the decision; the server's indexes, sockets and
timers are not.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from engine.events import Reason
from gateway.server.routing import reject_for
from gateway.server.session import Limits, Session, State
from gateway.server.translate import COMMANDS, Projects, Refusal
from gateway.wire import protocol as p

PERMISSION: dict[type, str] = {
    p.NewOrder: "trade",
    p.BasketBuy: "trade",
    p.Amend: "trade",
    p.Cancel: "trade",
    p.MassCancel: "trade",
    p.Deposit: "fund",
    p.DepositCredits: "fund",
    p.Withdraw: "fund",
    p.WithdrawCredits: "fund",
    p.Retire: "retire",
    **{kind: "operator" for kind in p.OPERATOR_REQUESTS},
}
SETTLEMENT = frozenset(
    {
        p.Deposit,
        p.DepositCredits,
        p.Withdraw,
        p.WithdrawCredits,
        p.Retire,
        p.BasketBuy,
        *p.OPERATOR_REQUESTS,
    }
)


class Answering(NamedTuple):
    """How a request's command is answered: its events carry the request's `req_id` (or 0:
    an order's reports carry its client order id), and `done` names the request whose
    `done` follows when the core accepted it ("" none); `cancels` says that `done` counts
    the orders the command cancelled (a mass cancel), not 1."""

    echo_req_id: bool
    done: str
    cancels: bool = False


ANSWERING: dict[type, Answering] = {
    p.NewOrder: Answering(False, ""),
    # a basket is answered like an order (by client order id), and its cancel of the rest,
    # `basket_done` and `order_certificate` echo the request's req_id
    p.BasketBuy: Answering(True, ""),
    p.Amend: Answering(True, ""),
    p.Cancel: Answering(True, ""),
    p.MassCancel: Answering(False, "mass_cancel", cancels=True),
    p.Deposit: Answering(True, "deposit"),
    p.DepositCredits: Answering(True, "deposit_credits"),
    p.Withdraw: Answering(True, "withdraw"),
    p.WithdrawCredits: Answering(True, "withdraw_credits"),
    p.Retire: Answering(True, ""),
    # a contract's listing and rule versions are answered by their `rule_version` record; the
    # registry events by `done`, counting the orders they cancelled (suspended, ineligible)
    p.ListContract: Answering(True, ""),
    p.AddRuleVersion: Answering(True, ""),
    p.ChangeLabel: Answering(True, "change_label", cancels=True),
    p.SuspendProject: Answering(True, "suspend_project", cancels=True),
    p.ReinstateProject: Answering(True, "reinstate_project", cancels=True),
    p.CancelCredits: Answering(True, "cancel_credits", cancels=True),
}


class Reply(NamedTuple):
    """Messages for the session (in order), the counters to count them under, a goodbye
    (reason, text) to say once they are out (None), `logged_on`: the session has just logged
    on (the server indexes it by account), and `query`: the server answers the message from
    its state (queries and subscriptions)."""

    send: tuple[Any, ...] = ()
    counters: tuple[str, ...] = ()
    goodbye: tuple[Reason, str] | None = None
    logged_on: bool = False
    query: bool = False


QUERY = Reply(query=True)


class Keys(Protocol):
    def check(
        self, key_id: str, ts: int, nonce: str, signature: str, now_ns: int
    ) -> tuple[Any, Reason | None, str]: ...


class Context(Protocol):
    """What the policy reads of the server: its limits, keys, catalogue and open orders."""

    @property
    def limits(self) -> Limits: ...
    @property
    def auth(self) -> Keys: ...
    @property
    def projects(self) -> Projects: ...
    @property
    def has_ledger(self) -> bool: ...
    def open_orders(self, account: int) -> int: ...


def handle(s: Session, msg: Any, now: int, ctx: Context) -> Any:
    """A core command to apply, or a `Reply` (see the module docstring)."""
    kind = type(msg)
    permission = PERMISSION.get(kind)
    if permission is None:
        if kind is p.Heartbeat:
            return Reply((p.ServerHeartbeat(ts=now, req_id=msg.req_id),))
        if kind is p.Logon:
            return logon(s, msg, now, ctx)
        if not s.logged_on:
            return Reply((reject_for(msg, Reason.NOT_LOGGED_ON, "log on first"),))
        return QUERY
    if not s.logged_on:
        return Reply((reject_for(msg, Reason.NOT_LOGGED_ON, "log on first"),))
    if permission not in s.permissions:
        text = f"this API key lacks {permission!r}"
        return Reply((reject_for(msg, Reason.NOT_PERMITTED, text),))
    if kind is p.NewOrder:
        open_now = ctx.open_orders(s.account)
        if open_now >= ctx.limits.open_orders_max:
            text = f"{open_now} open orders, the limit is {ctx.limits.open_orders_max}"
            reject = reject_for(msg, Reason.TOO_MANY_OPEN_ORDERS, text)
            return Reply((reject,), ("open_orders_limited",))
        if msg.retire_for is not None and not ctx.has_ledger:
            return Reply((reject_for(msg, Reason.NOT_SUPPORTED, "this core has no settlement"),))
    elif kind in SETTLEMENT and not ctx.has_ledger:
        return Reply((reject_for(msg, Reason.NOT_SUPPORTED, "this core has no settlement"),))
    cmd = COMMANDS[kind](msg, s.account, now, ctx.projects)
    if type(cmd) is Refusal:
        return Reply((reject_for(msg, cmd.reason, cmd.text),))
    return cmd


def logon(s: Session, msg: p.Logon, now: int, ctx: Context) -> Reply:
    """Check a logon; on success the session is logged on with the key's account and
    permissions (the caller indexes it by account)."""
    if s.logged_on:
        text = "already logged on"
        reject = p.LogonReject(reason=Reason.ALREADY_LOGGED_ON, text=text, req_id=msg.req_id)
        return Reply((reject,))
    key, reason, text = ctx.auth.check(msg.key_id, msg.ts, msg.nonce, msg.signature, now)
    if key is None:
        assert reason is not None
        answer = p.LogonReject(reason=reason, text=text, req_id=msg.req_id)
        s.logon_failures += 1
        if s.logon_failures < ctx.limits.logon_failures_max:
            return Reply((answer,), ("logon_rejected",))
        why = f"{s.logon_failures} failed logons on this connection"
        limited = ("logon_rejected", "logon_failures_limited")
        return Reply((answer,), limited, (Reason.TOO_MANY_LOGON_FAILURES, why))
    s.transition(State.LOGGED_ON)
    s.account = key.account
    s.key_id = key.key_id
    s.permissions = key.permissions
    s.cancel_on_disconnect = msg.cancel_on_disconnect
    lim = ctx.limits
    ack = p.LogonAck(
        account=s.account,
        session_id=s.session_id,
        heartbeat_s=lim.heartbeat_s,
        idle_timeout_s=lim.idle_timeout_s,
        messages_per_s=lim.messages_per_s,
        frame_bytes_max=lim.frame_bytes_max,
        open_orders_max=lim.open_orders_max,
        cancel_on_disconnect=msg.cancel_on_disconnect,
        req_id=msg.req_id,
    )
    return Reply((ack,), ("logons",), logged_on=True)

"""Core events into the protocol's server messages: what each command's events tell whom.

`route` turns the events of one applied command into `(target, message)` items for the
server to release once the command is durable (gateway/server/server.py): public market data
(`BookDelta`, `StatusChanged`, `Trade`) by series, private reports (acks, fills, cancels,
expiries, amends, certificates, a basket's summary and a buy-and-retire order's certificate;
the cancels a registry event causes reach the order's owner like any other) by account, and
the rejection of the command, or a contract's new rule version, to the session that sent it.
It keeps an `OrderInfo` for each open order, because the engine's events name an order by
id while a report also carries its client order id, side and open quantity.

A basket is an order like any other here: its ack names series "" (it has no one book),
each of its fills the book it traded in, and each fill gets its serials from the settlement
record of the same trade id, whichever book that was. `reject_for` is the `reject`
answering any request.
"""

from __future__ import annotations

from typing import Any

from engine.commands import Side
from engine.events import (
    Accepted,
    Amended,
    BookDelta,
    Cancelled,
    CancelReason,
    Expired,
    Reason,
    Rejected,
    StatusChanged,
    Trade,
)
from gateway.server.marketdata import MarketData
from gateway.server.session import Session
from gateway.wire import protocol as p

BUY = Side.BUY
# Cancels the core makes of its own accord when a registry event or a rule version makes an
# order's credits undeliverable: they answer no request of the order's owner, so they never
# carry the (operator's) req_id that caused them.
UNPROMPTED = frozenset({CancelReason.INELIGIBLE, CancelReason.SUSPENDED})


class OrderInfo:
    """What the gateway remembers of an open order to write reports: owner, client order id,
    side, open quantity, and the session that entered it (0: none alive, e.g. an order
    recovered at start), which cancel-on-disconnect needs. Dropped when the order ends."""

    __slots__ = ("account", "client_order_id", "side", "leaves", "session_id")

    def __init__(
        self, account: int, coid: str, side: Side, leaves: int, session_id: int = 0
    ) -> None:
        self.account = account
        self.client_order_id = coid
        self.side = side
        self.leaves = leaves
        self.session_id = session_id


FILL_TAGS = frozenset({"fill", "contract_fill"})  # settlement.events.Settled, ContractFill


def route(
    events: list[Any],
    s: Session | None,
    items: list[tuple[Any, Any]],
    orders: dict[int, OrderInfo],
    req_id: int,
) -> int:
    """Queue on `items` the messages of one command's events, keeping `orders` current; the
    cancels it caused, -1 if the command itself was rejected."""
    public = MarketData.public
    cancels = 0
    rejected = False
    fills: dict[int, list[p.Fill]] = {}  # trade id -> its reports, for the settlement
    for ev in events:
        kind = type(ev)
        if kind is BookDelta or kind is StatusChanged:
            items.append(public(ev))  # type: ignore[arg-type]
        elif kind is Trade:
            items.append(public(ev))  # type: ignore[arg-type]
            for order_id, liquidity in (
                (ev.maker_order_id, "maker"),
                (ev.taker_order_id, "taker"),
            ):
                info = orders.get(order_id)
                if info is None:
                    continue
                info.leaves -= ev.qty
                fill = p.Fill(
                    trade_id=ev.trade_id,
                    order_id=order_id,
                    client_order_id=info.client_order_id,
                    series=ev.series,
                    side=info.side,
                    price=ev.price,
                    qty=ev.qty,
                    leaves_qty=info.leaves,
                    liquidity=liquidity,
                    ts=ev.ts,
                )
                fills.setdefault(ev.trade_id, []).append(fill)
                items.append((info.account, fill))
                if info.leaves <= 0:
                    del orders[order_id]
        elif kind is Accepted:
            entered_by = s.session_id if s is not None and s.account == ev.account else 0
            orders[ev.order_id] = OrderInfo(
                ev.account, ev.client_order_id, ev.side, ev.qty, entered_by
            )
            items.append(
                (
                    ev.account,
                    p.OrderAck(
                        order_id=ev.order_id,
                        client_order_id=ev.client_order_id,
                        series=ev.series,
                        side=ev.side,
                        price=ev.price,
                        qty=ev.qty,
                        ts=ev.ts,
                    ),
                )
            )
        elif kind is Cancelled:
            cancels += 1
            info = orders.pop(ev.order_id, None)
            items.append(
                (
                    ev.account,
                    p.Cancelled(
                        order_id=ev.order_id,
                        client_order_id=info.client_order_id if info else "",
                        series=ev.series,
                        side=ev.side,
                        qty=ev.qty,
                        reason=ev.reason,
                        ts=ev.ts,
                        req_id=0 if ev.reason in UNPROMPTED else req_id,
                    ),
                )
            )
        elif kind is Expired:
            info = orders.pop(ev.order_id, None)
            items.append(
                (
                    ev.account,
                    p.Expired(
                        order_id=ev.order_id,
                        client_order_id=info.client_order_id if info else "",
                        series=ev.series,
                        side=ev.side,
                        qty=ev.qty,
                        ts=ev.ts,
                    ),
                )
            )
        elif kind is Amended:
            info = orders.get(ev.order_id)
            if info is not None:
                info.leaves = ev.qty
            items.append(
                (
                    ev.account,
                    p.Amended(
                        order_id=ev.order_id,
                        series=ev.series,
                        side=ev.side,
                        old_price=ev.old_price,
                        old_qty=ev.old_qty,
                        price=ev.price,
                        qty=ev.qty,
                        priority_kept=ev.priority_kept,
                        ts=ev.ts,
                        req_id=req_id,
                    ),
                )
            )
        elif kind is Rejected:
            rejected = True  # the command itself, after any expiries
            if s is not None:
                items.append(
                    (
                        s,
                        p.Reject(
                            reason=ev.reason,
                            text=ev.text,
                            client_order_id=ev.client_order_id,
                            order_id=ev.order_id,
                            req_id=req_id,
                            ts=ev.ts,
                        ),
                    )
                )
        else:
            settlement(ev, s, items, fills, req_id)
    return -1 if rejected else cancels


def settlement(
    ev: Any,
    s: Session | None,
    items: list[tuple[Any, Any]],
    fills: dict[int, list[p.Fill]],
    req_id: int,
) -> None:
    """A settlement event: a fill's fees, serials and rule version complete its reports; a
    certificate goes to its account; a contract's new rule version answers its request."""
    tag = ev.__struct_config__.tag
    if tag in FILL_TAGS:  # settlement.events.Settled (or ContractFill): fees and serials
        ranges = [p.serial_range(r) for r in ev.ranges]
        for fill in fills.get(ev.trade_id, ()):
            fill.fee = ev.buyer_fee if fill.side is BUY else ev.seller_fee
            fill.serials = ranges
            fill.rule_version = ev.rule_version
    elif tag == "certificate":  # settlement.events.RetirementCertificate
        cert = p.Certificate(
            cert_id=ev.cert_id,
            account=ev.account,
            project=ev.project,
            vintage=ev.vintage,
            qty=ev.qty,
            serials=[p.serial_range(r) for r in ev.ranges],
            beneficiary=ev.beneficiary,
            purpose=ev.purpose.value,
            claim=ev.claim,
            period_start=ev.period_start,
            period_end=ev.period_end,
            ts=ev.ts,
            record_seq=ev.record_seq,
            record_hash=ev.record_hash,
            req_id=req_id,
        )
        items.append((ev.account, cert))
    elif tag == "basket_done":  # settlement.events.BasketDone: the basket's summary
        items.append((ev.account, basket_done(ev, req_id)))
    elif tag == "order_certificate":  # settlement.events.OrderCertificate
        items.append((ev.account, order_certificate(ev, req_id)))
    elif tag == "contract_rule" and s is not None:  # settlement.events.RuleVersionAdded
        added = p.RuleVersionAdded(
            series=ev.series,
            version=ev.version,
            effective=ev.effective,
            rule=ev.rule,
            ts=ev.ts,
            req_id=req_id,
        )
        items.append((s, added))


def basket_done(ev: Any, req_id: int) -> p.BasketDone:
    """A basket's summary (settlement.events.BasketDone) as its owner's sessions get it."""
    return p.BasketDone(
        order_id=ev.order_id,
        client_order_id=ev.client_order_id,
        filled=ev.filled,
        notional=ev.notional,
        projects=sorted(ev.projects),
        ts=ev.ts,
        req_id=req_id,
    )


def order_certificate(ev: Any, req_id: int) -> p.OrderCertificate:
    """A buy-and-retire order's one certificate (settlement.events.OrderCertificate): each
    fill's serials written as their registry writes them, with its record's seq and hash."""
    fills = [
        p.CertificateFillInfo(
            trade_id=f.trade_id,
            series=f.series,
            qty=f.qty,
            serials=[p.serial_range(r) for r in f.ranges],
            record_seq=f.record_seq,
            record_hash=f.record_hash,
        )
        for f in ev.fills
    ]
    return p.OrderCertificate(
        cert_id=ev.cert_id,
        account=ev.account,
        order_id=ev.order_id,
        client_order_id=ev.client_order_id,
        qty=ev.qty,
        beneficiary=ev.beneficiary,
        purpose=ev.purpose.value,
        claim=ev.claim,
        period_start=ev.period_start,
        period_end=ev.period_end,
        fills=fills,
        ts=ev.ts,
        req_id=req_id,
    )


def reject_for(msg: Any, reason: Reason, text: str) -> p.Reject:
    """The `reject` of request `msg`, echoing its client order id, order id and req_id."""
    return p.Reject(
        reason=reason,
        text=text,
        client_order_id=getattr(msg, "client_order_id", ""),
        order_id=getattr(msg, "order_id", 0),
        req_id=getattr(msg, "req_id", 0),
    )

"""Delivery versus payment: one fill settled as one atomic ledger transaction.

Plan first, then apply:

- *plan* (changes nothing): fees, the buyer's cost, the exact serial ranges to deliver
  (oldest first from the front of the seller's hold, splitting the last block), and checks
  that the holds cover both legs; any shortfall raises `SettlementError`.
- *apply*, six steps: (1) debit the buyer's held cash, (2) credit the seller the proceeds
  less its fee, (3) credit the fee account both fees, (4) take the serials out of the
  seller's hold, (5) add them to the buyer's available credits, (6) append the log record.
  If any step raises, the steps already done are undone in reverse, so the ledger is
  exactly as before. `Ledger.fault = k` makes step k raise (k = 7: after the last step).
"""

from __future__ import annotations

from engine.commands import Side
from engine.events import Trade
from settlement import serials
from settlement.events import Settled
from settlement.fees import BPS
from settlement.ledger import Block, InjectedFault, Ledger, SettlementError
from settlement.serials import SerialRange

BUY = Side.BUY


def settle_fill(ledger: Ledger, trade: Trade, currency: str) -> Settled:
    """Settle `trade` (of a series traded in `currency`); return the movement event."""
    price, qty = trade.price, trade.qty
    if trade.aggressor is BUY:
        buy_id, sell_id = trade.taker_order_id, trade.maker_order_id
        buyer_id, seller_id = trade.taker_account, trade.maker_account
        buyer_bps, seller_bps = ledger.fees.taker_bps, ledger.fees.maker_bps
    else:
        buy_id, sell_id = trade.maker_order_id, trade.taker_order_id
        buyer_id, seller_id = trade.maker_account, trade.taker_account
        buyer_bps, seller_bps = ledger.fees.maker_bps, ledger.fees.taker_bps

    # -- plan ----------------------------------------------------------------------------
    notional = price * qty
    buyer_fee = notional * buyer_bps // BPS
    seller_fee = notional * seller_bps // BPS
    cost = notional + buyer_fee
    cash_hold = ledger.cash_holds.get(buy_id)
    credit_hold = ledger.credit_holds.get(sell_id)
    if cash_hold is None or cash_hold.amount < cost or cash_hold.currency != currency:
        raise SettlementError(f"trade {trade.trade_id}: buy order {buy_id} holds too little cash")
    if credit_hold is None or credit_hold.qty < qty:
        raise SettlementError(f"trade {trade.trade_id}: sell order {sell_id} holds too few credits")
    accounts = ledger.accounts
    buyer = accounts[buyer_id]
    seller = accounts[seller_id]
    fee_acct = accounts[ledger.fee_account]
    if cash_hold.account != buyer_id or credit_hold.account != seller_id:
        raise SettlementError(f"trade {trade.trade_id}: holds belong to other accounts")
    blocks = credit_hold.blocks
    take: list[Block] = []
    split: Block | None = None  # what stays at the front of the hold after a partial block
    left = qty
    i = 0
    while left:
        block = blocks[i]
        p, v, a, b = block
        n = b - a + 1
        if n <= left:
            take.append(block)
            left -= n
            i += 1
        else:
            take.append((p, v, a, a + left - 1))
            split = (p, v, a + left, b)
            left = 0
    body = Settled(
        trade.trade_id,
        trade.series,
        currency,
        price,
        qty,
        buyer_id,
        seller_id,
        buyer_fee,
        seller_fee,
        ledger.fee_account,
        tuple([SerialRange(p, v, a, b) for p, v, a, b in take]),
        trade.ts,
    )

    # -- apply ---------------------------------------------------------------------------
    fault = ledger.fault
    step = 0
    added = 0
    record = None
    try:
        if fault == 1:
            raise InjectedFault(1)
        cash_hold.amount -= cost
        buyer.cash_held[currency] -= cost
        buyer.cash[currency] -= cost
        step = 1
        if fault == 2:
            raise InjectedFault(2)
        seller.cash[currency] += notional - seller_fee
        step = 2
        if fault == 3:
            raise InjectedFault(3)
        fee_acct.cash[currency] += buyer_fee + seller_fee
        step = 3
        if fault == 4:
            raise InjectedFault(4)
        for _ in range(i):
            blocks.popleft()
        if split is not None:
            blocks[0] = split
        credit_hold.qty -= qty
        seller_held = seller.credits_held
        for p, v, a, b in take:
            seller_held[(p, v)] -= b - a + 1
        step = 4
        if fault == 5:
            raise InjectedFault(5)
        buyer_credits = buyer.credits
        buyer_qty = buyer.credit_qty
        for p, v, a, b in take:
            key = (p, v)
            ranges = buyer_credits.get(key)
            if ranges is None:
                ranges = buyer_credits[key] = []
            serials.add(ranges, a, b)
            buyer_qty[key] = buyer_qty.get(key, 0) + b - a + 1
            added += 1
        step = 5
        if fault == 6:
            raise InjectedFault(6)
        record = ledger.log.append(body)
        step = 6
        if fault == 7:
            raise InjectedFault(7)
    except BaseException:
        # Undo what was applied, last step first; each step above is all-or-nothing except
        # step 5, whose progress `added` counts.
        if step >= 6:
            assert record is not None
            ledger.log.unappend(record)
        for p, v, a, b in take[:added]:
            key = (p, v)
            serials.remove(buyer.credits[key], a, b)
            buyer.credit_qty[key] -= b - a + 1
        if step >= 4:
            if split is not None:
                blocks[0] = blocks[0][:2] + (take[-1][2], split[3])
                blocks.extendleft(reversed(take[:-1]))
            else:
                blocks.extendleft(reversed(take))
            credit_hold.qty += qty
            for p, v, a, b in take:
                seller.credits_held[(p, v)] += b - a + 1
        if step >= 3:
            fee_acct.cash[currency] -= buyer_fee + seller_fee
        if step >= 2:
            seller.cash[currency] -= notional - seller_fee
        if step >= 1:
            cash_hold.amount += cost
            buyer.cash_held[currency] += cost
            buyer.cash[currency] += cost
        raise
    return body

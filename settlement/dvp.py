"""Delivery versus payment: one fill settled as one atomic ledger transaction.

Plan first, then apply:

- *plan* (changes nothing): fees, the buyer's cost, the exact serial ranges to deliver
  (the seller's lowest serials of each key its hold reserves, in the hold's order,
  splitting the last range), and checks that the holds cover both legs; any shortfall
  raises `SettlementError`.
- *apply*, six steps: (1) debit the buyer's held cash, (2) credit the seller the proceeds
  less its fee, (3) credit the fee account both fees, (4) take the serials (and the
  reserved quantity) from the seller, (5) add them to the buyer's available credits,
  (6) append the log record.
  If any step raises, the steps already done are undone in reverse, so the ledger is
  exactly as before. `Ledger.fault = k` makes step k raise (k = 7: after the last step).
"""

from __future__ import annotations

from bisect import bisect_left

from engine.commands import Side
from engine.events import Trade
from settlement import serials
from settlement.events import Settled
from settlement.fees import BPS
from settlement.ledger import InjectedFault, Ledger, SettlementError
from settlement.serials import BAND_MASK, BAND_SHIFT, Key, Range, SerialRange

BUY = Side.BUY


def settle_fill(ledger: Ledger, trade: Trade, currency: str) -> Settled:
    """Settle `trade` (of a series traded in `currency`); return the movement event."""
    price, qty = trade.price, trade.qty
    if trade.aggressor is BUY:
        buy_id, sell_id = trade.taker_order_id, trade.maker_order_id
        buyer_id, seller_id = trade.taker_account, trade.maker_account
        buyer_bps, seller_bps = ledger.taker_bps, ledger.maker_bps
    else:
        buy_id, sell_id = trade.maker_order_id, trade.taker_order_id
        buyer_id, seller_id = trade.maker_account, trade.taker_account
        buyer_bps, seller_bps = ledger.maker_bps, ledger.taker_bps

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
    # the seller's lowest serials of each held key, in the hold's delivery order
    parts = credit_hold.parts
    seller_credits = seller.credits
    part = parts[0]
    used: list[tuple[Key, int]]  # (key, qty) taken from the hold's parts, in order
    if part[1] >= qty:  # the common case: one key
        used = wanted = [(part[0], qty)]
    else:
        used = []
        left = qty
        pi = 0
        while left:
            key, n = parts[pi]
            m = n if n <= left else left
            used.append((key, m))
            left -= m
            pi += 1
        # a key may recur in a hold (amend up): take each key's serials once
        want: dict[Key, int] = {}
        for key, m in used:
            want[key] = want.get(key, 0) + m
        wanted = list(want.items())
    # per key: (key, qty, the seller's ranges, how many whole ranges go, the rest of the
    # range split last, the pieces delivered: a sorted, merged range list of their own)
    moves: list[tuple[Key, int, list[Range], int, Range | None, list[Range]]] = []
    delivered: list[SerialRange] = []
    batches = ledger.batches
    for key, m in wanted:
        ranges = seller_credits[key]
        rest: Range | None = None
        a, b = ranges[0]
        c = b - a + 1
        if c > m:  # the lowest range alone is enough: split it
            whole = 0
            pieces = [(a, a + m - 1)]
            rest = (a + m, b)
        elif c == m:
            whole = 1
            pieces = ranges[:1]
        else:
            need = m - c
            whole = 1
            while True:
                a, b = ranges[whole]
                c = b - a + 1
                if c < need:
                    need -= c
                    whole += 1
                    continue
                if c == need:
                    whole += 1
                    pieces = ranges[:whole]
                else:
                    pieces = ranges[:whole]
                    pieces.append((a, a + need - 1))
                    rest = (a + need, b)
                break
        project, vintage = key
        names = batches.get(key)
        if names is None:  # every serial of the key is batch-less (band 0)
            delivered += [SerialRange(project, vintage, x, y) for x, y in pieces]
        else:
            delivered += [
                SerialRange(project, vintage, x & BAND_MASK, y & BAND_MASK, names[x >> BAND_SHIFT])
                for x, y in pieces
            ]
        moves.append((key, m, ranges, whole, rest, pieces))
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
        tuple(delivered),
        trade.ts,
    )

    # -- apply ---------------------------------------------------------------------------
    fault = ledger.fault
    step = 0
    added = 0  # keys delivered to the buyer (step 5's progress)
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
        seller_held = seller.credits_held
        for key, m in used:
            part = parts[0]
            if part[1] == m:
                del parts[0]
            else:
                part[1] -= m
            seller_held[key] -= m
        credit_hold.qty -= qty
        for _, _, ranges, whole, rest, _ in moves:  # the lowest serials: a prefix of each list
            if rest is None:
                del ranges[:whole]
            elif whole:
                ranges[: whole + 1] = (rest,)
            else:
                ranges[0] = rest
        step = 4
        if fault == 5:
            raise InjectedFault(5)
        buyer_credits = buyer.credits
        buyer_qty = buyer.credit_qty
        for key, m, _, _, _, pieces in moves:
            got = buyer_credits.get(key)
            if got:
                # insert each piece, merging with an adjacent neighbour; the pieces ascend,
                # so each search starts where the last one ended
                i = 0
                for a, b in pieces:
                    i = bisect_left(got, (a,), i)  # (a,) sorts just before (a, b)
                    if i and got[i - 1][1] + 1 == a:
                        if i < len(got) and got[i][0] == b + 1:
                            got[i - 1 : i + 1] = ((got[i - 1][0], got[i][1]),)
                        else:
                            got[i - 1] = (got[i - 1][0], b)
                    elif i < len(got) and got[i][0] == b + 1:
                        got[i] = (a, got[i][1])
                    else:
                        got.insert(i, (a, b))
                        i += 1
            else:
                buyer_credits[key] = list(pieces)  # a list of its own: the undo reads `pieces`
            buyer_qty[key] = buyer_qty.get(key, 0) + m
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
        for key, m, _, _, _, pieces in moves[:added]:
            got = buyer.credits[key]
            for a, b in pieces:
                serials.remove(got, a, b)
            buyer.credit_qty[key] -= m
        if step >= 4:
            for _, _, ranges, _, _, pieces in moves:
                for a, b in pieces:
                    serials.add(ranges, a, b)
            credit_hold.qty += qty
            for key, m in reversed(used):
                if parts and parts[0][0] == key:
                    parts[0][1] += m
                else:
                    parts.insert(0, [key, m])
                seller.credits_held[key] += m
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

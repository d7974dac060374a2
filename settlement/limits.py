"""The bounds on every amount and total the core keeps, and the one rule behind them.

Every integer the core holds goes into the canonical state (msgpack, for the state hash), a
snapshot, settlement-log records and wire messages (msgpack over TCP, JSON over WebSocket).
msgpack holds integers in [-2^63, 2^64 - 1]; a JSON client in JavaScript reads numbers into
doubles, exact only up to 2^53 - 1. So every amount and every *total* the core keeps stays at
or below `AMOUNT_MAX = 2^53 - 1`, and a command that would take one past its limit is
rejected (`LIMIT_EXCEEDED`) with nothing changed.

Two limits on what is in custody bound everything else, because everything else is a part
of them:

- `cash_total_max`: the cash of one currency in custody, summed over every account (the
  fee account included), in minor units. Each balance, each hold (a part of a balance), the
  fee account's total, the notional and fees of any fill (paid from a hold) lie within it.
  Only a deposit raises it; a fill moves cash between accounts, a withdrawal lowers it.
- `credits_total_max`: the credits in custody, summed over every project, vintage and
  account, in tonnes (retired credits have left custody). Each holding, each sell hold,
  every order book's total on the sell side lie within it. Only a credit deposit raises it.

A buy order's hold (price x qty + the largest fee) must come out of the buyer's available
cash, so a notional above `cash_total_max` is refused as `INSUFFICIENT_CASH` before it can
exist, and the open quantity at any bid level is at most `cash_total_max` (a price is at
least 1). Prices are at most 2^53 (`engine.book.MAX_PRICE`).

Fixed bounds, not settings: serial numbers (`SERIAL_MAX`, a block outside them is
`INVALID_SERIAL_BLOCK`), account ids (`ACCOUNT_MAX`), the certificate counter
(`CERTIFICATES_MAX`), the registry batches of one project and vintage
(`BATCHES_PER_KEY_MAX`, 4096: real ones have a handful; a deposit of one more is
`LIMIT_EXCEEDED`) and the series' trading parameters (tick, lot, reference price,
band, maximum order size) all lie within `AMOUNT_MAX`. Order and trade ids and the log's
seq count commands and fills, and cannot reach 2^53 (285 years at a million a second).

The two custody limits are named, defaulted arguments of `Core`; they may be set lower,
never above `AMOUNT_MAX`, so the verifier (`settlement.replay`) checks every folder against
`AMOUNT_MAX` whatever its core was configured with.
"""

from __future__ import annotations

AMOUNT_MAX = (1 << 53) - 1  # the largest integer a double (a JSON client) holds exactly
CASH_TOTAL_MAX = AMOUNT_MAX  # minor units of one currency in custody, all accounts together
CREDITS_TOTAL_MAX = AMOUNT_MAX  # tonnes in custody, all keys and accounts together
SERIAL_MAX = AMOUNT_MAX  # the highest serial number a block may contain
ACCOUNT_MAX = AMOUNT_MAX  # the highest account id
CERTIFICATES_MAX = AMOUNT_MAX  # retirement certificates ever issued
BATCHES_PER_KEY_MAX = 4096  # registry issuance batches of one project and vintage


def check_limit(name: str, value: int) -> int:
    """`value` if it is a valid setting of the limit `name` (1..AMOUNT_MAX), else ValueError."""
    if type(value) is not int or not 0 < value <= AMOUNT_MAX:
        raise ValueError(f"{name} {value!r} must lie in 1..{AMOUNT_MAX} (2^53 - 1)")
    return value

"""The matching engine: pure, deterministic, no I/O, no clock, imports nothing of ours.

`Exchange` owns one `OrderBook` per credit `Series`, takes commands (msgspec Structs from
`engine.commands`) and returns events (`engine.events`). Time is a field of each command.
"""

from engine.commands import (
    AdvanceTime,
    Amend,
    Cancel,
    Command,
    Halt,
    MassCancel,
    NewOrder,
    OrderType,
    Resume,
    SelfTrade,
    SetReferencePrice,
    Side,
    TimeInForce,
)
from engine.events import (
    Accepted,
    Amended,
    BookDelta,
    Cancelled,
    CancelReason,
    Event,
    Expired,
    Reason,
    Rejected,
    Trade,
)
from engine.exchange import Exchange
from engine.reference import Basis, Mitigation, Project, Series

__all__ = [
    "Accepted",
    "AdvanceTime",
    "Amend",
    "Amended",
    "Basis",
    "BookDelta",
    "Cancel",
    "CancelReason",
    "Cancelled",
    "Command",
    "Event",
    "Exchange",
    "Expired",
    "Halt",
    "MassCancel",
    "Mitigation",
    "NewOrder",
    "OrderType",
    "Project",
    "Reason",
    "Rejected",
    "Resume",
    "SelfTrade",
    "Series",
    "SetReferencePrice",
    "Side",
    "TimeInForce",
    "Trade",
]

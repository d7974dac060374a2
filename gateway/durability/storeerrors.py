"""The store's errors, in a module of their own so that the store's parts (store.py,
segments.py) share them; `gateway.durability.store` re-exports them, and callers import them
from there.

    StoreError          something is wrong with the data folder
    └── CorruptRecord   a row or segment whose checksum or chain does not match (`what`)
        └── MissingRecord   one the chain or the recorded heads say must be there, and is not
"""

from __future__ import annotations


class StoreError(Exception):
    """The root of the store's errors: something is wrong with the data folder."""


class CorruptRecord(StoreError):
    """A row whose checksum or chain hash does not match its content. `what` names it, e.g.
    `journal record seq 1234`."""

    def __init__(self, what: str, detail: str = "", *, state: str = "corrupt") -> None:
        self.what = what
        super().__init__(f"{what} is {state}" + (f": {detail}" if detail else ""))


class MissingRecord(CorruptRecord):
    """A row that the chain or the recorded heads say must be there, and is not."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(what, detail, state="missing")

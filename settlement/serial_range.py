"""`SerialRange`: exact serials as the events and the wire carry them, and its decoder.

Apart from settlement/serials.py so that the compiled build (README, "The compiled core") can
compile the range-list helpers there: mypyc cannot compile a subclass of `tuple`, and this
module stays pure Python in both builds.
"""

from __future__ import annotations

from typing import Any

from settlement import registry


class SerialRange(tuple[Any, ...]):
    """Exact serials of one project and vintage, inclusive at both ends, and the registry
    batch they were issued in (`batch`, the serial string with its range cut out, see
    settlement/registry.py; "" for a block deposited without one, identified by project and
    vintage alone as before registry-true serials).

    A tuple of four items, or five with a batch: encoded as an array of exactly those, so a
    record without a batch keeps the bytes (and hash) it had before batches existed, and one
    with a batch carries it. Build it with `SerialRange(project, vintage, first, last,
    batch)`; decoders turn arrays back into it with `decode_hook`."""

    __slots__ = ()

    def __new__(
        cls, project: str, vintage: int, first: int, last: int, batch: str = ""
    ) -> SerialRange:
        items = (project, vintage, first, last, batch) if batch else (project, vintage, first, last)
        return tuple.__new__(cls, items)

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    @property
    def project(self) -> str:
        return self[0]  # type: ignore[no-any-return]

    @property
    def vintage(self) -> int:
        return self[1]  # type: ignore[no-any-return]

    @property
    def first(self) -> int:
        return self[2]  # type: ignore[no-any-return]

    @property
    def last(self) -> int:
        return self[3]  # type: ignore[no-any-return]

    @property
    def batch(self) -> str:
        return self[4] if len(self) == 5 else ""

    @property
    def key(self) -> tuple[str, int]:
        return (self[0], self[1])

    @property
    def qty(self) -> int:
        return self[3] - self[2] + 1  # type: ignore[no-any-return]

    def __str__(self) -> str:
        """The registry's own string for a batch's range; `project/vintage:first-last`
        without a batch."""
        if len(self) == 5:
            try:
                return registry.format_batch_range(self[4], self[2], self[3])
            except registry.SerialFormatError:  # not a range its registry could write
                return f"{self[4]} {self[2]}-{self[3]}"
        return f"{self[0]}/{self[1]}:{self[2]}-{self[3]}"

    def __repr__(self) -> str:
        return f"SerialRange{tuple.__repr__(self)}"


def decode_hook(kind: type, obj: Any) -> Any:
    """msgspec `dec_hook` for `SerialRange`: an array [project, vintage, first, last] or
    [project, vintage, first, last, batch], its items' types checked."""
    if kind is SerialRange:
        if (
            type(obj) is list
            and len(obj) in (4, 5)
            and type(obj[0]) is str
            and type(obj[1]) is int
            and type(obj[2]) is int
            and type(obj[3]) is int
            and (len(obj) == 4 or (type(obj[4]) is str and obj[4]))
        ):
            return SerialRange(*obj)
        raise ValueError(f"not a serial range: {obj!r}")
    raise NotImplementedError(f"no decoder for {kind}")

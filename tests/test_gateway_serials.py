"""Registry serial strings over the wire (issue 11): deposits and withdrawals by the
registry's own string, holdings, fills and certificates that name the batch and print the
registry's form, and every way a string can be refused, over both transports."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_gateway_harness import run, running_server

from engine.commands import Side
from engine.events import Reason
from gateway.wire import protocol as p
from tests.settlement_builders import catalogue_core

DATA = Path(__file__).resolve().parent.parent / "data"
ALL = frozenset({"trade", "retire", "fund"})
CAR_A = "CAR-1-US-1335-31-983-KS-2025-9205-1 to 5000"
CAR_B = "CAR-1-US-1335-31-983-KS-2025-9659-1 to 7275"
ISOMETRIC = "prj_1K3VWSDS61S0QKV7"  # a real project of a registry with no serial rule


def every_project_core():  # type: ignore[no-untyped-def]
    """A core listing every catalogue project, with a series per project-vintage."""
    return catalogue_core(
        (DATA / "projects.csv").read_text(), (DATA / "serials.csv").read_text(), ()
    )[0]


def deposit(c, serial: str = "", quantity: int = 0, **fields) -> p.DepositCredits:  # type: ignore[no-untyped-def]
    kw = {"project": "CAR1335", "vintage": 2025, **fields}
    return p.DepositCredits(quantity=quantity, serial=serial, req_id=c.next_req_id(), **kw)


def car(holdings: p.Holdings) -> p.Holding:
    (h,) = [h for h in holdings.holdings if h.project == "CAR1335"]
    return h


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_two_batches_sharing_numbers_are_deposited_by_their_registry_strings(transport):
    async def body():  # type: ignore[no-untyped-def]
        async with running_server(permissions=ALL, core=every_project_core()) as env:
            c = await env.connect(transport, 1)
            for serial, qty in ((CAR_A, 5000), (CAR_B, 7275)):
                done = await c.request(deposit(c, serial, qty))
                assert isinstance(done, p.Done), done
            h = car(await c.holdings())
            assert h.available == 12275
            assert [(r.first, r.last, r.registry_serial) for r in h.serials] == [
                (1, 5000, CAR_A),
                (1, 7275, CAR_B),
            ]
            assert [r.batch for r in h.serials] == [
                "CAR-1-US-1335-31-983-KS-2025-9205-*",
                "CAR-1-US-1335-31-983-KS-2025-9659-*",
            ]
            cmd = env.journal.commands[-1]
            assert (cmd.start, cmd.end, cmd.batch) == (1, 7275, h.serials[1].batch)

    run(body)


def test_fills_and_certificates_name_the_batch_in_the_registrys_form():
    async def body():  # type: ignore[no-untyped-def]
        async with running_server(permissions=ALL, core=every_project_core()) as env:
            seller, buyer = await env.tcp(1), await env.tcp(2)
            await seller.request(deposit(seller, CAR_A, 5000))
            await buyer.request(p.Deposit(currency="USD", amount=10**7, req_id=buyer.next_req_id()))
            await seller.place("CAR-1335-2025", Side.SELL, qty=20, price=1000)
            await buyer.place("CAR-1335-2025", Side.BUY, qty=20, price=1000)
            fill = await buyer.wait_for(lambda m: type(m) is p.Fill)
            assert [r.registry_serial for r in fill.serials] == [
                "CAR-1-US-1335-31-983-KS-2025-9205-1 to 20"
            ]
            (r,) = fill.serials
            answer = await buyer.request(
                p.Retire(
                    beneficiary="Kowloon Steel",
                    serials=[p.SerialRange(r.project, r.vintage, 5, 9, r.batch)],
                    req_id=buyer.next_req_id(),
                )
            )
            assert isinstance(answer, p.Certificate), answer
            assert [s.registry_serial for s in answer.serials] == [
                "CAR-1-US-1335-31-983-KS-2025-9205-5 to 9"
            ]

    run(body)


def test_a_withdrawal_by_registry_string_takes_exactly_those_serials():
    async def body():  # type: ignore[no-untyped-def]
        async with running_server(permissions=ALL, core=every_project_core()) as env:
            c = await env.tcp(1)
            await c.request(deposit(c, CAR_A, 5000))
            await c.request(deposit(c, CAR_B, 7275))
            out = "CAR-1-US-1335-31-983-KS-2025-9659-10 to 19"
            msg = p.WithdrawCredits(
                project="CAR1335", vintage=2025, quantity=10, serial=out, req_id=c.next_req_id()
            )
            assert isinstance(await c.request(msg), p.Done)
            h = car(await c.holdings())
            assert [r.registry_serial for r in h.serials] == [
                CAR_A,
                "CAR-1-US-1335-31-983-KS-2025-9659-1 to 9",
                "CAR-1-US-1335-31-983-KS-2025-9659-20 to 7275",
            ]

    run(body)


@pytest.mark.parametrize(
    ("fields", "reason", "why"),
    [
        (
            {"serial": "CAR-1-US-1335 1 to 5000", "quantity": 5000},
            Reason.INVALID_SERIAL_BLOCK,
            "not a CAR serial",
        ),
        ({"serial": CAR_A, "quantity": 4999}, Reason.INVALID_SERIAL_BLOCK, "quantity 4999"),
        (
            {"serial": CAR_A, "quantity": 5000, "start": 2, "end": 5000},
            Reason.INVALID_SERIAL_BLOCK,
            "stated as 2..5000",
        ),
        (
            {"serial": CAR_A, "quantity": 5000, "convention": "half_open"},
            Reason.INVALID_SERIAL_BLOCK,
            "inclusive",
        ),
        (
            {"serial": CAR_A, "quantity": 5000, "batch": "CAR-1-US-1335-31-983-KS-2025-1-*"},
            Reason.INVALID_SERIAL_BLOCK,
            "is of batch",
        ),
        (
            {"serial": CAR_A, "quantity": 5000, "vintage": 2024},
            Reason.INVALID_SERIAL_BLOCK,
            "not of CAR1335/2024",
        ),
        (
            {"serial": "ACR-FR-1129-2025-2917-30932 to 35143", "quantity": 4212},
            Reason.INVALID_SERIAL_BLOCK,
            "not a CAR",
        ),
        ({"serial": CAR_A, "quantity": 5000, "project": "NOPE"}, Reason.UNKNOWN_PROJECT, "NOPE"),
        (
            {"serial": "ISO-1 to 10", "quantity": 10, "project": ISOMETRIC, "vintage": 2024},
            Reason.UNKNOWN_REGISTRY,
            "ISOMETRIC",
        ),
        (
            {
                "batch": "ISO-*",
                "start": 1,
                "end": 10,
                "quantity": 10,
                "project": ISOMETRIC,
                "vintage": 2024,
            },
            Reason.UNKNOWN_REGISTRY,
            "ISOMETRIC",
        ),
        (
            {"batch": "CAR-1-US-1335-31-983-KS-2025-9205", "start": 1, "end": 5, "quantity": 5},
            Reason.INVALID_SERIAL_BLOCK,
            "not a CAR batch",
        ),
    ],
)
def test_a_serial_string_that_does_not_read_is_refused_and_changes_nothing(fields, reason, why):
    async def body():  # type: ignore[no-untyped-def]
        async with running_server(permissions=ALL, core=every_project_core()) as env:
            c = await env.tcp(1)
            before = env.server.core.state_hash()
            answer = await c.request(deposit(c, **fields))
            assert isinstance(answer, p.Reject), answer
            assert answer.reason is reason and why in answer.text, answer
            assert env.server.core.state_hash() == before
            assert not env.journal.commands

    run(body)


def test_the_same_block_twice_is_an_overlap():
    async def body():  # type: ignore[no-untyped-def]
        async with running_server(permissions=ALL, core=every_project_core()) as env:
            c = await env.tcp(1)
            assert isinstance(await c.request(deposit(c, CAR_A, 5000)), p.Done)
            again = await c.request(deposit(c, "CAR-1-US-1335-31-983-KS-2025-9205-4000 to 4001", 2))
            assert isinstance(again, p.Reject) and again.reason is Reason.SERIALS_OVERLAP

    run(body)

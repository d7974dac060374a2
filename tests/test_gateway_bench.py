"""The gateway benchmark runs and reports in both modes (few orders; timings never asserted),
and its client process is bounded: a failure or a hang comes back as an error, not a wait."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import uvloop

from bench import gateway_bench as gb
from settlement.build import compiled


def run_bench(capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    assert gb.main(["--orders", "500", *extra]) == 0
    return capsys.readouterr().out.splitlines()


def check_table(lines: list[str]) -> None:
    assert lines[0] == "gateway bench: 500 orders, journal null, seed 7"
    assert lines[2].startswith(f"core: compiled: {str(compiled()).lower()} ")
    for prefix in ("(a) 1 client, 1 in flight, p50", "(a) 1 client, 1 in flight, p99"):
        assert any(line.startswith(prefix) and "ratio" in line for line in lines)
    assert any(line.startswith("(b) TCP pipelined") and "orders/s" in line for line in lines)
    assert any(
        line.startswith("(c) WebSocket pipelined") and "messages/s" in line for line in lines
    )


def test_separate_process_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_bench(capsys)
    assert lines[1].startswith("mode: separate process")
    check_table(lines)


def test_same_process(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_bench(capsys, "--same-process")
    assert lines[1].startswith("mode: same process")
    check_table(lines)


def test_separate_process_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_bench(capsys, "--journal", "sqlite")
    assert lines[0] == "gateway bench: 500 orders, journal sqlite, seed 7"
    assert lines[1].startswith("mode: separate process")


def test_the_jetstream_journal_beside_sqlite_in_one_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from bench.nats_servers import nats_cluster

    with nats_cluster(tmp_path, 1) as nats:
        args = ["--journal", "sqlite,jetstream-r1", "--nats-r1", nats.url, "--no-ws"]
        lines = run_bench(capsys, *args)
    assert lines[0] == "gateway bench: 500 orders, journal sqlite,jetstream-r1, seed 7"
    assert f"-- journal jetstream-r1 ({nats.url})" in lines
    side = lines[lines.index("durable TCP, side by side (ratios against sqlite):") + 1 :]
    assert [row.split()[0] for row in side] == ["sqlite", "jetstream-r1"]
    assert not any(line.startswith("(c)") for line in lines)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind((gb.HOST, 0))
        return s.getsockname()[1]


def job_for(port: int) -> dict[str, object]:
    endpoint = {"tcp_port": port, "ws_port": port, "keys": [("k0", "00")]}
    return {"kind": "latency", "orders": gb.workload(3, 7, "x"), "endpoint": endpoint}


def test_client_process_failure_is_reported() -> None:
    with pytest.raises(RuntimeError, match="client process failed"):
        uvloop.run(gb.in_child(job_for(closed_port()), timeout_s=30))


def test_client_process_hang_is_bounded() -> None:
    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # never answers the logon
            writer.close()

        server = await asyncio.start_server(silent, gb.HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(RuntimeError, match="TimeoutError"):
                await gb.in_child(job_for(port), timeout_s=2)
        finally:
            server.close()
            await server.wait_closed()

    uvloop.run(main())


def test_a_result_larger_than_the_pipe_holds_comes_back_whole() -> None:
    """20 000 round trips pickle to more than a pipe buffer: the parent must read the child's
    result whole even though the event loop had made the pipe non-blocking."""

    async def main() -> None:
        async with gb.Bench("null") as b:
            orders = gb.workload(20_000, 7, "big")
            job = {"kind": "latency", "orders": orders, "endpoint": b.endpoint}
            rtt = await gb.in_child(job, timeout_s=120)
        assert len(rtt) == 20_000 and all(t > 0 for t in rtt)

    uvloop.run(main())

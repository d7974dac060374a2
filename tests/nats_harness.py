"""Real NATS servers for the replication tests: one, or a 3-node JetStream cluster, each on
loopback ports with its store in a temporary folder, stopped by the test that started them;
and `NodeProcess`, one `tonne serve --journal nats://...` process, read line by line.

Every wait is bounded (READY_S); nothing here sleeps to wait for something it can await,
except polling a port that has nothing to await.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.nats_servers import (
    READY_S,
    NatsCluster,
    NatsServer,
    free_port,
    nats_cluster,
    port_open,
)

__all__ = ["NatsCluster", "NatsServer", "NodeProcess", "free_port", "nats_cluster", "port_open"]
LINE_S = 30.0  # a node must print its next line within this
ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


LAUNCHED: set[int] = set()  # pids of node processes started and not yet reaped


def kill_leftover_nodes() -> None:
    """SIGKILL every node process a test started and did not stop (it failed half way): a
    standby whose NATS servers are gone would otherwise follow for ever."""
    for pid in sorted(LAUNCHED):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    LAUNCHED.clear()


class NodeProcess:
    """`python -m gateway.cli.main serve --data DIR --journal URL --stream NAME ...`."""

    def __init__(self, data_dir: Path, journal: str, stream: str, args: Sequence[str] = ()):
        self.data_dir = data_dir
        self.args = ["--journal", journal, "--stream", stream, "--tcp-port", "0"]
        self.args += ["--ws-port", "0", *args]
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self.returncode: int | None = None

    async def start(self) -> dict[str, Any]:
        """Start it and return its first line."""
        await self.launch()
        return await self.line()

    async def launch(self) -> None:
        """Start it without waiting for a line."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        err = open(self.data_dir / "serve.stderr", "ab")  # noqa: SIM115 - closed below
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.cli.main",
                "serve",
                "--data",
                str(self.data_dir),
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=child_env(),
            )
        finally:
            err.close()
        LAUNCHED.add(self.proc.pid)

    async def line(self, timeout_s: float = LINE_S) -> dict[str, Any]:
        """The next JSON line it prints (its roles: primary-elect/standby, then primary)."""
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        if not raw:
            await self.proc.wait()
            raise RuntimeError(f"node exited {self.proc.returncode}:\n{self.stderr()[-3000:]}")
        info: dict[str, Any] = json.loads(raw)
        self.lines.append(info)
        return info

    async def primary(self, timeout_s: float = LINE_S) -> dict[str, Any]:
        """Wait until it serves as the primary; its ready line."""
        while True:
            info = await self.line(timeout_s)
            if info.get("role") == "primary":
                return info

    def stderr(self) -> str:
        path = self.data_dir / "serve.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def wait(self, timeout_s: float = READY_S) -> int:
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout_s)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
            transport = getattr(self.proc, "_transport", None)
            if transport is not None:
                transport.close()
        self.returncode = self.proc.returncode
        LAUNCHED.discard(self.proc.pid)
        return self.returncode

    async def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return await self.wait()

    async def stop(self) -> int:
        self.signal(signal.SIGTERM)
        return await self.wait()

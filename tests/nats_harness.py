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
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
READY_S = 20.0  # a server or a node must be ready within this
LINE_S = 30.0  # a node must print its next line within this
ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    """One nats-server with JetStream; `routes` makes it a member of a cluster."""

    def __init__(
        self,
        folder: Path,
        name: str,
        *,
        cluster_port: int = 0,
        routes: Sequence[int] = (),
    ) -> None:
        self.folder = folder
        self.name = name
        self.port = free_port()
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name]
        args += ["-sd", str(self.folder / self.name)]
        if self.cluster_port:
            args += ["--cluster_name", "tonne-test"]
            args += ["--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            others = ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)
            args += ["--routes", others]
        log = open(self.folder / f"{self.name}.log", "ab")  # noqa: SIM115 - closed below
        try:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + READY_S
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.name} did not start")
            time.sleep(POLL_S)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(READY_S)
        self.proc = None


class NatsCluster:
    """`size` servers on loopback (1: a single server, no cluster)."""

    def __init__(self, folder: Path, size: int = 3) -> None:
        cports = [free_port() for _ in range(size)] if size > 1 else [0]
        self.servers = [
            NatsServer(
                folder,
                f"n{i}",
                cluster_port=cports[i],
                routes=[p for j, p in enumerate(cports) if j != i] if size > 1 else (),
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def start(self) -> None:
        for s in self.servers:
            s.start()

    def stop(self) -> None:
        for s in self.servers:
            s.kill()

    async def wait_jetstream(self) -> None:
        """Until the cluster has elected its JetStream meta leader (a stream can be made)."""
        import nats

        deadline = time.monotonic() + READY_S
        while True:
            try:
                nc = await nats.connect(
                    [s.url for s in self.servers], connect_timeout=1, max_reconnect_attempts=0
                )
                try:
                    await nc.jetstream(timeout=1).account_info()
                    return
                finally:
                    await nc.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


@contextlib.contextmanager
def nats_cluster(folder: Path, size: int = 3) -> Any:
    cluster = NatsCluster(folder, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


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
        return await self.line()

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
        return self.returncode

    async def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return await self.wait()

    async def stop(self) -> int:
        self.signal(signal.SIGTERM)
        return await self.wait()

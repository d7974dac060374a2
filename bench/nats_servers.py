"""Real NATS servers on loopback for benchmarks and tests: one, or a JetStream cluster, each
with its store in a folder the caller owns, killed by whoever started them (`nats_cluster`
does both). Every wait is bounded (READY_S).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
READY_S = 20.0  # a server or a node must be ready within this
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

    def pause(self) -> None:
        """SIGSTOP: unreachable (its connections hang), its memory and files intact."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server dies too
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
def nats_cluster(folder: Path, size: int = 3) -> Iterator[NatsCluster]:
    cluster = NatsCluster(folder, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()

"""Ray nodes started with ``ray start`` on loopback, for the tests: the one head that every
test process of a session shares (``conftest.ray_head``) and the two-node clusters of
``test_cluster.py``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ports() -> list[str]:
    """Every fixed default port gets a free one, so that nodes on this machine (and other
    test sessions' Rays) cannot collide."""
    return [
        f"--{name}={free_port()}"
        for name in (
            "ray-client-server-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "metrics-export-port",
            "runtime-env-agent-port",
            "node-manager-port",
            "object-manager-port",
        )
    ]


class NodeDidNotStart(RuntimeError):
    pass


class Node:
    """A ``ray start --block`` process; stopping it (SIGTERM) stops every process it started.

    Every node gets its own loopback address (``ip``, in 127.0.0.0/8): ``ray start`` turns
    127.0.0.1 and ``localhost``, as node or head address, into the machine's network address,
    but takes any other loopback address as it is."""

    def __init__(
        self,
        ip: str,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        num_cpus: int = 1,
        wrap: list[str] | None = None,
    ) -> None:
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(
                [
                    *(wrap or []),
                    str(RAY),
                    "start",
                    f"--node-ip-address={ip}",
                    f"--num-cpus={num_cpus}",
                    *node_ports(),
                    *args,
                    "--block",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while "will now block" not in log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise NodeDidNotStart(f"ray start did not come up: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def stop_node(pid: int, timeout: float = 60) -> None:
    """Stop the ``ray start --block`` process ``pid`` that another process started (as
    ``Node`` does, the leader of its own session) and what it started: SIGTERM, then, if it
    is still there after ``timeout`` seconds, SIGKILL to its process group."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            return
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, whose parent has not reaped it, has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False

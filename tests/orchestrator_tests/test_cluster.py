"""``--address``: a study runs on an existing Ray cluster (a head started with
``ray start`` on loopback, token authentication on) from a separate driver process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.orchestrator_tests.test_spec import GOOD


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(cache_dir, tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "ORCHESTRATOR_CACHE": str(cache_dir)}
    log_path = tmp_path_factory.mktemp("head") / "ray-start.log"
    ray = Path(sys.executable).with_name("ray")
    with open(log_path, "w") as log:
        # Every fixed default port gets a free one, so a Ray already running here (such as
        # the test session's own) cannot collide with this head.
        ports = [f"--{name}={_free_port()}" for name in (
            "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
            "metrics-export-port", "runtime-env-agent-port", "node-manager-port", "object-manager-port")]
        proc = subprocess.Popen([str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                                 *ports, "--num-cpus=2", "--include-dashboard=false", "--block"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "will now block" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        proc.terminate()  # `ray start --block` stops every process it started on SIGTERM
        proc.wait(timeout=60)


def test_study_runs_on_existing_cluster(ray_head, standin, tmp_path):
    address, env = ray_head
    study = tmp_path / "tiny.yaml"
    study.write_text(GOOD)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(study), "--out", str(out),
                           "--address", address], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and set(df["status"]) == {"TERMINATED"}
    assert (out / "report" / "index.html").is_file()
    assert proc.stdout.count("TERMINATED") == 4

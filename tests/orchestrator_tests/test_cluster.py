"""``--address``: a study runs on an existing two-node Ray cluster (``ray start --head`` and
``ray start --address`` on loopback, token authentication on, each node with its own CPU)
from a separate driver process; the dashboard's HTTP API answers only with the token; a
node that cannot see the run directory stops the run before any trial, in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.orchestrator_tests.test_spec import GOOD
from tests.ray_nodes import Node, free_port

# Trials long enough (two LoRA epochs each) that the second node's actor has started before
# the first node could finish them all: Tune reuses a free actor for the next trial, so with
# one-second trials on a loaded machine every trial can land on the first node.
SPREAD = GOOD.replace("base: {epochs: 1}", "base: {epochs: 2}").replace(
    "b: {adaptation: none}", "b: {adaptation: lora, lora_rank: 4}"
)


def _token() -> str:
    """The token the session's Ray processes use (``tests/conftest.py`` or the user's own)."""
    return os.environ.get("RAY_AUTH_TOKEN") or Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()


@pytest.fixture(scope="module")
def cluster(cache_dir, tmp_path_factory):
    """A head with the dashboard on 127.0.0.1 and one worker node, 1 CPU each."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "ORCHESTRATOR_CACHE": str(cache_dir)}
    logs = tmp_path_factory.mktemp("cluster")
    port, dashboard = free_port(), free_port()
    head = Node(
        "127.0.0.2",
        [
            "--head",
            f"--port={port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
        ],
        env,
        logs / "head.log",
    )
    nodes = [head]
    try:
        nodes.append(Node("127.0.0.3", [f"--address=127.0.0.2:{port}"], env, logs / "worker.log"))
        yield {"address": f"127.0.0.2:{port}", "dashboard": f"http://127.0.0.1:{dashboard}", "env": env}
    finally:
        for node in reversed(nodes):
            node.stop()


def _get(url: str, *, token: bool = True) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {_token()}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as err:
        return err.code, {}


def _state(cluster: dict, what: str) -> list[dict]:
    status, body = _get(f"{cluster['dashboard']}/api/v0/{what}?detail=1&limit=1000")
    assert status == 200, status
    return body["data"]["result"]["result"]


def test_study_runs_on_both_nodes_and_dashboard_needs_token(cluster, standin, tmp_path):
    study = tmp_path / "tiny.yaml"
    study.write_text(SPREAD)
    out = tmp_path / "run"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(study),
            "--out",
            str(out),
            "--address",
            cluster["address"],
            "--max-concurrent",
            "2",
        ],
        env=cluster["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # While the study runs: its trial actors are listed under the study's name, to whoever
    # holds the token, and the same API refuses a request without it.
    seen: list[dict] = []
    deadline = time.monotonic() + 300
    while not seen and driver.poll() is None and time.monotonic() < deadline:
        seen = [a for a in _state(cluster, "actors") if a.get("repr_name") == "tiny" and a["state"] == "ALIVE"]
        time.sleep(1)
    assert seen, "no trial actor named after the study appeared in the dashboard"
    assert _get(f"{cluster['dashboard']}/api/v0/actors", token=False)[0] in (401, 403)
    assert _get(f"{cluster['dashboard']}/api/v0/nodes", token=False)[0] in (401, 403)
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "Ray cluster of 2 nodes" in stdout
    assert stdout.count("TERMINATED") == 4

    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and set(df["status"]) == {"TERMINATED"}
    assert df["eval/cross_domain/acc"].between(0, 1).all()
    nodes = [n for n in _state(cluster, "nodes") if n["state"] == "ALIVE"]
    assert {n["node_ip"] for n in nodes} == {"127.0.0.2", "127.0.0.3"}  # the test stays on loopback
    alive = {n["node_id"] for n in nodes}
    assert len(alive) == 2
    assert set(df["node_id"]) == alive  # trials ran on both nodes, and results came back from both
    assert (out / "report" / "index.html").is_file()
    # each trial wrote its name into the log of the actor that ran it, which the dashboard serves
    actor = seen[0]
    status, _ = _get(f"{cluster['dashboard']}/api/v0/logs/file?actor_id={actor['actor_id']}&suffix=out", token=False)
    assert status in (401, 403)
    req = urllib.request.Request(
        f"{cluster['dashboard']}/api/v0/logs/file?actor_id={actor['actor_id']}&suffix=out",
        headers={"Authorization": f"Bearer {_token()}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        log = r.read().decode(errors="replace")
    assert "[orchestrator] trial tiny_" in log


def _can_unshare() -> bool:
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs a private mount namespace (root, unshare -m)")
def test_node_that_cannot_see_the_run_directory_stops_the_run(cluster, standin, tmp_path_factory):
    """A third node in its own mount namespace, where an empty tmpfs hides the directory the
    run is written to: the run stops before any trial, with one line naming the problem."""
    hidden = tmp_path_factory.mktemp("hidden")
    wrap = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs none "{hidden}" && exec "$0" "$@"']
    blind = Node(
        "127.0.0.4",
        [f"--address={cluster['address']}"],
        cluster["env"],
        tmp_path_factory.mktemp("blind") / "node.log",
        wrap=wrap,
    )
    try:
        study = hidden / "tiny.yaml"
        study.write_text(GOOD)
        out = hidden / "run"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "run",
                str(study),
                "--out",
                str(out),
                "--address",
                cluster["address"],
            ],
            env=cluster["env"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        blind.stop()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: node 127.0.0.4 "), proc.stderr
    assert f"cannot see the run directory {out}" in lines[0] and "shared filesystem" in lines[0]
    df = pd.read_csv(out / "results.csv")  # the planned trials are listed, none ran
    assert set(df["status"]) == {"PENDING"}
    assert not list(out.glob("tune/*/result.json"))

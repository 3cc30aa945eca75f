"""Starting or joining Ray, quietly, with the dashboard on loopback and token auth on.

Ray's dashboard and job API run code for whoever reaches them, so the local Ray binds
its dashboard to 127.0.0.1 and keeps Ray's token authentication (on by default since
Ray 2.60; the token lives in ``~/.ray/auth_token`` unless ``RAY_AUTH_TOKEN_PATH`` or
``RAY_AUTH_TOKEN`` says otherwise). Binding elsewhere takes an explicit
``--dashboard-host`` and prints a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_TOKEN_PATH = Path.home() / ".ray" / "auth_token"


def token_source() -> str:
    """Where this process's Ray reads its token, in Ray's order: the variable holding the
    token itself, the file ``RAY_AUTH_TOKEN_PATH`` names, or the default file."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "the RAY_AUTH_TOKEN variable"
    return os.environ.get("RAY_AUTH_TOKEN_PATH") or str(DEFAULT_TOKEN_PATH)


@dataclass(frozen=True)
class RayInfo:
    dashboard_url: str
    cpus: float
    gpus: float


def start_local_ray(**init_kwargs):
    """Start a new local Ray whose node lives on 127.0.0.1.

    ``address="local"`` always starts a Ray of our own, never joining one that ``ray start``
    left running on this machine (that one is used only when named with ``--address``).
    By default Ray registers a local node under the machine's network address; its own
    switch to loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the macOS/Windows default)
    is read once at import, so the constant is set here, which works whatever imported Ray
    first and, unlike the environment variable, does not reach ``ray start`` processes
    launched later (a worker node refuses to start with it).
    """
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    return ray.init(address="local", **init_kwargs)


@contextlib.contextmanager
def ray_session(
    *,
    address: str | None,
    dashboard_host: str = "127.0.0.1",
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> Iterator[RayInfo]:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), reuse a Ray already
    initialised in this process, or start a local one; shut down only what was started here."""
    import ray

    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        common = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
        if address:
            # trials on other nodes find generated data and built backbones where the driver does
            cache = os.environ.get("ORCHESTRATOR_CACHE")
            env = {"env_vars": {"ORCHESTRATOR_CACHE": cache}} if cache else None
            ctx = ray.init(address=address, runtime_env=env, **common)
        else:
            if dashboard_host not in LOOPBACK:
                log(
                    f"warning: the Ray dashboard will listen on {dashboard_host}: anyone who can reach it "
                    f"and holds the token can run code on this machine"
                )
            ctx = start_local_ray(
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=True,
                dashboard_host=dashboard_host,
                **common,
            )
        started = True
        url = ctx.dashboard_url or ""
    else:
        url = ""  # a Ray this process already joined (e.g. the test session's)
    resources = ray.cluster_resources()
    info = RayInfo(url, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))
    if info.dashboard_url:
        log(f"Ray dashboard: http://{info.dashboard_url}  (token authentication on; token in {token_source()})")
    try:
        yield info
    finally:
        if started:
            ray.shutdown()


def check_shared_paths(paths: dict[str, Path]) -> int:
    """Every alive node of the cluster must see each of ``paths`` (what -> directory) as the
    driver does: Tune keeps trial checkpoints and results under the run directory, and the
    trainables read the data cache, by path, on whatever node runs them. Each node reads a
    fresh token file the driver wrote there (a zero-CPU task pinned to the node). Returns the
    number of nodes checked; raises ``UserError`` naming the node and the path otherwise."""
    import uuid

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from orchestrator.errors import UserError

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return len(nodes)
    token = uuid.uuid4().hex
    markers: dict[str, str] = {}
    for what, path in paths.items():
        marker = Path(path).resolve() / f".orchestrator-shared-check-{token}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(token)
        markers[what] = str(marker)

    @ray.remote(num_cpus=0, max_retries=0)
    def sees(files: dict[str, str], expected: str) -> list[str]:
        blind = []
        for what, f in files.items():
            try:
                ok = Path(f).read_text() == expected
            except OSError:
                ok = False
            if not ok:
                blind.append(what)
        return blind

    try:
        refs = {
            n["NodeID"]: sees.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(markers, token)
            for n in nodes
        }
        for node in nodes:
            blind = ray.get(refs[node["NodeID"]], timeout=120)
            if blind:
                what = blind[0]
                raise UserError(
                    f"node {node['NodeManagerAddress']} ({node['NodeID'][:12]}) cannot see the {what} "
                    f"{paths[what]}: a run on several nodes needs it on storage every node reaches at the "
                    f"same path (a shared filesystem); pass --out (and ORCHESTRATOR_CACHE) on one"
                )
    finally:
        for f in markers.values():
            Path(f).unlink(missing_ok=True)
    return len(nodes)

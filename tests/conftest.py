"""Shared fixtures: one cache directory for the whole session, whatever its xdist workers
(so the stand-in backbone is built once), and, for the tests that need it, one local Ray per
worker (``make test`` runs two), started once."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

# Static figure export starts Chromium once per report (seconds each, and most tests build a
# report without looking at its figures): off for the tests, except where a test asks for
# it with ``static_figures()`` (a user's default stays on).
STATIC = "ORCHESTRATOR_STATIC_FIGURES"
os.environ[STATIC] = "0"


@contextlib.contextmanager
def static_figures():
    """Reports made inside export PDF and PNG (for the tests that look at them)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STATIC, "1")
        yield


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache for generated data and built backbones (``ORCHESTRATOR_TEST_CACHE``
    points the tests at a persistent one instead, for quicker local reruns)."""
    if os.environ.get("ORCHESTRATOR_TEST_CACHE"):
        path = Path(os.environ["ORCHESTRATOR_TEST_CACHE"])
    else:
        # one cache for every xdist worker (their temporary directories share a parent): the
        # stand-in is built once (the builders take a file lock), not once per worker
        root = tmp_path_factory.getbasetemp()
        path = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "cache"
        path.mkdir(exist_ok=True)
    os.environ["ORCHESTRATOR_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def faces(cache_dir):
    from trainables.data import synthfaces

    return synthfaces.load(synthfaces.SynthFacesSpec())


@pytest.fixture(scope="session")
def standin(cache_dir) -> Path:
    import torch

    from trainables.models.standin import StandinSpec, ensure_standin

    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        return ensure_standin(StandinSpec())
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ray_local(cache_dir):
    """One local Ray for every test of this worker that runs trials (started lazily, stopped
    at the end)."""
    import ray

    from orchestrator.ray_runtime import start_local_ray

    start_local_ray(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # tests stay on loopback
    yield
    ray.shutdown()


# What makes a test slow here: a Ray (the shared one, or a cluster of its own), the stand-in
# backbone (built once per cache, then trained or evaluated), or a study run end to end.
SLOW_FIXTURES = {"ray_local", "standin", "cluster"}


# The longest files, longest first: ``make test`` hands files to its workers in collection
# order, so these start first and no worker is left alone with a long file at the end.
LONGEST_FIRST = (
    "test_faults.py",
    "test_end_to_end.py",
    "test_metric_studies.py",
    "test_cluster.py",
    "test_resume.py",
    "test_da_lora.py",
)


def pytest_collection_modifyitems(config, items):
    """Mark ``slow`` every test that needs one of ``SLOW_FIXTURES`` (directly or through
    another fixture), so that ``pytest -m "not slow"`` (``make test-fast``) is the quick tier;
    a test can also be marked by hand. Then put ``LONGEST_FIRST`` first (each file's tests
    keep their order)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest as collected


def can_mount_tmpfs() -> bool:
    """Whether this process may mount a small tmpfs (root, with the capability to mount):
    the read-only and full-disk tests make their own file systems that way."""
    import subprocess
    import tempfile

    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", d], capture_output=True).returncode:
            return False
        subprocess.run(["umount", d], check=True)
    return True

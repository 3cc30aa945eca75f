"""Shared fixtures: one cache directory for the whole session, whatever its xdist workers
(so the stand-in backbone is built once), and, for the tests that need it, one Ray head for
the whole session, started once: every xdist worker (``make test`` runs two) joins it, and so
does every driver a test starts in a subprocess (``RAY_ADDRESS``)."""

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

# One trial at a time per run, as a user would on a machine that several runs share: the
# session's Ray head has 2 CPUs for two xdist workers, so two runs go side by side instead of
# one waiting for the other's trials, and a run starts one trial process, not two (each pays
# about 10 s of CPU importing torch, transformers and peft). A test that needs trials side by
# side says so (``--max-concurrent``, or a spec's ``max_concurrent`` where the variable is unset).
os.environ.setdefault("ORCHESTRATOR_MAX_CONCURRENT", "1")

# W&B writes offline in the tests even where its user has a key (``wandb login``): no test
# opens a connection off this machine (the default without a key is tested on its own).
os.environ["WANDB_MODE"] = "offline"

# Token authentication, as Ray 2.60 turns it on for a Ray that ``ray.init`` starts, also for
# the session's head (``ray start``) and for every process that joins it (a joining driver
# sends the token only in this mode). Set before anything imports Ray, which reads it once.
os.environ["RAY_AUTH_MODE"] = "token"


def _session_token() -> Path:
    """The tests' own Ray token: ``ray start`` refuses to start a head when it finds none
    (only ``ray.init`` makes one, in ``~/.ray/auth_token``), and a fresh machine has none. One
    file per user under the temporary directory, made once (256 random bits, as Ray makes
    them), readable by its owner alone; the user's ``~/.ray`` is neither read nor written."""
    import secrets
    import tempfile

    folder = Path(tempfile.gettempdir()) / f"orchestrator-tests-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "ray_auth_token"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # an earlier session's (or the other worker's, made a moment ago)
        return path
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


# Set in the process that runs the session, before its xdist workers start: they, the head and
# every driver a test starts inherit it. A token the user has set for their own Ray stands.
if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(_session_token())


@contextlib.contextmanager
def static_figures():
    """Reports made inside export PDF and PNG (for the tests that look at them)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STATIC, "1")
        yield


def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary directory of the whole session: an xdist worker's lies inside it."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache for generated data and built backbones (``ORCHESTRATOR_TEST_CACHE``
    points the tests at a persistent one instead, for quicker local reruns)."""
    if os.environ.get("ORCHESTRATOR_TEST_CACHE"):
        path = Path(os.environ["ORCHESTRATOR_TEST_CACHE"])
    else:
        # one cache for every xdist worker: the stand-in is built once (the builders take a
        # file lock), not once per worker
        path = _session_root(tmp_path_factory) / "cache"
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


# The session's Ray head lives on a loopback address of its own: ``ray start`` turns 127.0.0.1
# into the machine's network address (tests/ray_nodes.py); the clusters of test_cluster.py
# use 127.0.0.2-4.
HEAD_IP = "127.0.0.5"
HEAD_FILE = "ray-head"  # in the session's temporary directory: "ADDRESS PID" of the head


@pytest.fixture(scope="session")
def ray_head(cache_dir, tmp_path_factory) -> str:
    """The address of the session's one Ray head (2 CPUs, no dashboard): started by the first
    test process that needs it, joined by the others and by subprocess drivers, stopped at
    the end of the session (``pytest_sessionfinish``). One head rather than a Ray per process:
    a local Ray takes seconds of both cores to start and keeps using some while idle."""
    from filelock import FileLock

    from tests.ray_nodes import Node, free_port

    root = _session_root(tmp_path_factory)
    record = root / HEAD_FILE
    with FileLock(str(record) + ".lock"):
        if not record.is_file():
            port = free_port()
            env = dict(os.environ)  # the trials find ORCHESTRATOR_CACHE there
            node = Node(
                HEAD_IP,
                ["--head", f"--port={port}", "--include-dashboard=false"],
                env,
                root / "ray-head.log",
                num_cpus=2,
            )
            record.write_text(f"{HEAD_IP}:{port} {node.pid}\n")
        return record.read_text().split()[0]


def pytest_sessionfinish(session):
    """Stop the session's Ray head, from the process that ran the session (not an xdist
    worker: the head outlives the worker that started it, until every worker is done)."""
    if hasattr(session.config, "workerinput"):
        return
    record = session.config._tmp_path_factory.getbasetemp() / HEAD_FILE  # xdist's own way to the root
    if record.is_file():
        from tests.ray_nodes import stop_node

        stop_node(int(record.read_text().split()[1]))
        record.unlink()
    from trainables.checkpointing import sweep_scratch

    sweep_scratch()  # the temporary folders of trials stopped in the tests (their workers have ended)


@pytest.fixture(scope="session")
def ray_local(ray_head):
    """This test process joined to the session's Ray head, for every test that runs trials in
    it (joined lazily, left at the end)."""
    import ray

    ray.init(address=ray_head, log_to_driver=False, logging_level="ERROR")
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {HEAD_IP}  # tests stay on loopback
    yield ray_head
    ray.shutdown()


# What makes a test slow here: a Ray (the shared one, or a cluster of its own), the stand-in
# backbone (built once per cache, then trained or evaluated), or a study run end to end.
SLOW_FIXTURES = {"ray_head", "ray_local", "standin", "cluster"}


# The longest files, longest first: ``make test`` hands files to its workers in collection
# order, so these start first and no worker is left alone with a long file at the end.
LONGEST_FIRST = (
    "test_faults.py",
    "test_end_to_end.py",
    "test_extend.py",
    "test_sensitivity_study.py",
    "test_metric_studies.py",
    "test_cluster.py",
    "test_resume.py",
    "test_da_lora.py",
    "test_tracking.py",
    "test_semi_supervised_study.py",
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


@pytest.fixture
def no_ray(monkeypatch):
    """Fails the case if Ray would be started (every case must end before)."""
    import orchestrator.ray_runtime as rt

    calls = []

    def refuse(*a, **k):
        calls.append(a)
        raise AssertionError("Ray was started for a bad input")

    monkeypatch.setattr(rt, "ray_session", refuse)
    monkeypatch.setattr(rt, "start_local_ray", refuse)
    return calls


@pytest.fixture
def no_prepare(monkeypatch):
    """Fails the case if a trainable would prepare (load data, a backbone): a refusal that
    belongs before preparation must not start it, so that a removed guard fails at once
    instead of running a study."""
    import sys

    def refuse(*a, **k):
        raise AssertionError("a trainable was prepared for a bad input")

    names = ("orchestrator.launch", "orchestrator.kinds.base", "orchestrator.extend")  # where it is imported
    for name in names:  # every one imported before any is patched: a module first imported
        __import__(name)  # under the patch would keep the refusing function after the test
    for name in names:
        monkeypatch.setattr(sys.modules[name], "prepare_shared", refuse)

"""The experiment trackers and Ray's own views of a run, each read back with its library's own
reader and compared with ``results.csv``, ``configs.json`` and ``curves.csv`` (the run's
record): TensorBoard's event accumulator, W&B's offline run files (``wandb leet inspect``),
``mlflow.search_runs``; Tune's ``ExperimentAnalysis`` and ``Tuner.restore``'s result grid.

Two runs on the shared Ray: a search whose ASHA stops trials at its rungs, written to all
three trackers (``--track``), its console a log; and an ablation whose variants differ in a
list (LoRA targets), written to TensorBoard and MLflow by its spec's ``tracking`` section, its
console a terminal (the live status line, ``orchestrator/live.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.tracking import hparam, mlflow_key
from reports.rundir.files import read_results
from tests.orchestrator_tests.test_schedulers import SEARCH as SCHEDULER_SEARCH

# the schedulers' test search (ASHA stops some of its trials at rung 1 or 2), one sample more
SEARCH = (
    SCHEDULER_SEARCH.replace("name: sched", "name: tracked")
    .replace("num_samples: 3", "num_samples: 4")
    .replace("SCHED", "{grace_period: 1, reduction_factor: 2}")
)

GRID = """
name: tgrid
kind: ablation
trainable: da_lora
metric: eval/cross_domain/acc
mode: max
seeds: [0]
reference: a
base: {epochs: 2, synth_train_identities: 24, synth_train_images: 2, flip_test: false}
variants:
  a: {adaptation: lora, lora_targets: [qkv, proj]}
  b: {adaptation: none}
tracking: {backends: [tensorboard, mlflow]}
"""


def _outward(address) -> bool:
    """An address off this machine (what a tracker's upload or a library's telemetry would use)."""
    host = address[0] if isinstance(address, tuple) else None
    if not isinstance(host, str):
        return False  # a Unix socket
    try:
        return not __import__("ipaddress").ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: resolving it is already leaving the machine


@pytest.fixture(scope="module")
def runs(ray_local, tmp_path_factory):
    """Both runs, with every outward connection of this process (the driver, where the trackers
    write) recorded and refused."""
    root = tmp_path_factory.mktemp("tracked")
    outward: list = []
    connect = socket.socket.connect

    def guarded(self, address):
        if _outward(address):
            outward.append(address)
            raise OSError(f"test: no connection off this machine ({address})")
        return connect(self, address)

    (root / "s.yaml").write_text(SEARCH)
    (root / "g.yaml").write_text(GRID)
    log = io.StringIO()  # the search's console as a CI log has it: not a terminal
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", guarded)
        mp.setenv("TERM", "xterm")
        mp.setenv("COLUMNS", "200")
        track = ["--track", "tensorboard,wandb,mlflow"]
        with contextlib.redirect_stdout(log):
            assert (
                main(["run", str(root / "s.yaml"), "--out", str(root / "search"), "--max-concurrent", "1", *track]) == 0
            )
        with terminal() as (screen, shown):  # the grid's on a terminal
            with contextlib.redirect_stdout(screen):
                assert main(["run", str(root / "g.yaml"), "--out", str(root / "grid"), "--max-concurrent", "1"]) == 0
    assert outward == []
    (root / "search.log").write_bytes(log.getvalue().encode())  # bytes: a text read would turn \r into \n
    (root / "grid.tty").write_bytes("".join(shown).encode())
    return root / "search", root / "grid"


@contextlib.contextmanager
def terminal():
    """A pseudo-terminal as a text stream (``isatty()`` true), and what it showed: read
    while it is written, as a terminal would."""
    import pty
    import threading

    leader, follower = pty.openpty()
    screen = os.fdopen(follower, "w", buffering=1, encoding="utf-8")
    shown: list[str] = []

    def read() -> None:
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the terminal closed
                return
            if not data:
                return
            shown.append(data.decode(errors="replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield screen, shown
    finally:
        screen.close()
        reader.join(timeout=30)
        os.close(leader)


def test_the_live_line_is_drawn_on_a_terminal_and_never_written_to_a_log(runs):
    from orchestrator.live import CLEAR

    shown = (runs[1].parent / "grid.tty").read_bytes().decode()
    assert CLEAR + "\u25b8 0/2 done \u00b7 1 running (a seed=0 epoch " in shown  # in place, the first trial's epoch
    lines = [ln.rsplit(CLEAR, 1)[-1] for ln in shown.replace("\r\n", "\n").split("\n")]
    assert sum(ln.startswith("[") and "TERMINATED" in ln for ln in lines) == 2  # each trial's line, whole
    logged = (runs[0].parent / "search.log").read_bytes().decode()
    assert "\r" not in logged and "\x1b" not in logged and "\u25b8" not in logged
    assert sum(ln.startswith("[") and ("TERMINATED" in ln or "STOPPED" in ln) for ln in logged.splitlines()) == 4


def _configs(run: Path) -> dict[str, dict]:
    return json.loads((run / "configs.json").read_text())


def _curves(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "curves.csv", dtype={"trial_name": str})


def _final(row: pd.Series) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if "/" in k and not k.startswith("config/") and isinstance(v, (int, float)) and math.isfinite(v)
    }


def _best(run: Path, row: pd.Series) -> dict[str, float]:
    """The trial's metrics at its best epoch (``train/best_epoch``), from curves.csv (a NaN, a
    rate no pair could estimate, is no value to log)."""
    c = _curves(run)
    at = c[(c["trial_name"] == row["trial_name"]) & (c["iteration"] == int(row["train/best_epoch"]))]
    return {f"best/{k}": float(v) for k, v in zip(at["key"], at["value"]) if math.isfinite(v)}


def test_the_search_stopped_trials_at_its_rungs(runs):
    df = read_results(runs[0])
    assert sorted(df["status"]) == ["STOPPED", "STOPPED", "STOPPED", "TERMINATED"]
    assert set(read_results(runs[1])["status"]) == {"TERMINATED"}


def test_tensorboard_holds_each_trials_curves_config_and_final_metrics(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for run in runs:
        df, configs, curves = read_results(run), _configs(run), _curves(run)
        assert sorted(p.name for p in (run / "tracking" / "tensorboard").iterdir()) == sorted(df["trial_name"])
        for _, row in df.iterrows():
            acc = EventAccumulator(
                str(run / "tracking" / "tensorboard" / row["trial_name"]), size_guidance={"scalars": 0}
            )
            acc.Reload()
            mine = curves[curves["trial_name"] == row["trial_name"]]
            for key, points in mine.groupby("key"):
                shown = [(e.step, e.value) for e in acc.Scalars(key)]
                assert [s for s, _ in shown] == list(points["iteration"])
                assert [v for _, v in shown] == pytest.approx(list(points["value"]), rel=1e-6, nan_ok=True)
            # the HParams plugin: the real config and the status, then the final and best metrics
            content = acc.PluginTagToContent("hparams")
            start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
            hp = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.session_start_info.hparams.items()}
            expected = {k: hparam(v) for k, v in configs[row["trial_name"]].items()}
            expected = {
                k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                for k, v in expected.items()
            }
            assert hp == {**expected, "status": row["status"]}
            experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
            tags = {m.name.tag for m in experiment.metric_infos}
            final, best = _final(row), _best(run, row)
            assert tags == {f"final/{k}" for k in final} | set(best)
            for key, value in {**{f"final/{k}": v for k, v in final.items()}, **best}.items():
                assert acc.Scalars(key)[-1].value == pytest.approx(value, rel=1e-6)


def _inspect(run_dir: Path, *args: str):
    """W&B's own reader of an offline run's transaction log (``wandb leet inspect``)."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", *args, str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_wandb_offline_runs_hold_each_trials_config_history_and_summary(runs):
    search = runs[0]
    df, configs, curves = read_results(search), _configs(search), _curves(search)
    folders = sorted((search / "tracking" / "wandb").glob("offline-run-*"))
    assert len(folders) == len(df)  # one run per trial, written offline
    seen = set()
    for folder in folders:
        summary = json.loads(_inspect(folder, "--summary"))
        name = summary["name"]
        seen.add(name)
        row = df[df["trial_name"] == name].iloc[0]
        assert summary["project"] == "tracked" and summary["state"] == "finished" and summary["exit_code"] == 0
        # the trial's real config, with its JSON types (W&B keeps no empty mapping, such as benchmarks: {})
        assert summary["config"] == {k: v for k, v in configs[name].items() if v != {}}
        expected = {**_final(row), **_best(search, row), "status": row["status"]}
        assert {k: summary["summary"][k] for k in expected} == pytest.approx(expected)
        records = [json.loads(line) for line in _inspect(folder).splitlines() if line.strip()]
        run = next(r["run"] for r in records if r["type"] == "run")
        assert run["run_group"] == search.name and run["telemetry"]["feature"]["offline"]
        history = [r["history"] for r in records if r["type"] == "history"]
        mine = curves[curves["trial_name"] == name]
        assert [int(h["step"]["num"]) for h in history] == sorted(set(mine["iteration"]))
        for h in history:
            at = mine[mine["iteration"] == int(h["step"]["num"])]
            # (the reader writes a NaN, a rate no pair could estimate, as the string "NaN")
            logged = {k: float(h["item"][k]) for k in at["key"]}
            assert logged == pytest.approx(dict(zip(at["key"], at["value"])), nan_ok=True)
    assert seen == set(df["trial_name"])


def test_mlflow_holds_each_trials_params_metrics_status_and_score_files(runs, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from reports.rundir.evaluation import trial_evaluation

    statuses = {"TERMINATED": "FINISHED", "STOPPED": "KILLED"}
    for run in runs:
        df, configs, curves = read_results(run), _configs(run), _curves(run)
        uri = "sqlite:///" + str(run / "tracking" / "mlflow.db")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # where mlflow.search_runs reads
        found = mlflow.search_runs(experiment_names=[run.name], output_format="pandas")
        assert sorted(found["tags.mlflow.runName"]) == sorted(df["trial_name"])
        client = MlflowClient(tracking_uri=uri)
        for _, row in df.iterrows():
            got = found[found["tags.mlflow.runName"] == row["trial_name"]].iloc[0]
            assert got["status"] == statuses[row["status"]] and got["tags.orchestrator.status"] == row["status"]
            assert {k: got[f"params.{k}"] for k in configs[row["trial_name"]]} == {
                k: str(hparam(v)) for k, v in configs[row["trial_name"]].items()
            }
            final = _final(row)
            assert {k: got[f"metrics.{mlflow_key(k)}"] for k in final} == pytest.approx(final)
            for key, value in _best(run, row).items():
                assert got[f"metrics.{mlflow_key(key)}"] == pytest.approx(value)
            mine = curves[(curves["trial_name"] == row["trial_name"]) & (curves["key"] == "val/cross_domain/acc")]
            history = client.get_metric_history(got["run_id"], "val/cross_domain/acc")
            assert [m.step for m in history] == list(mine["iteration"])
            assert [m.value for m in history] == pytest.approx(list(mine["value"]))
            if run == runs[1]:  # an ablation's trials evaluate: their score files are the run's artifacts
                path = client.download_artifacts(
                    got["run_id"], "evaluation/latest/evaluation.npz", str(run.parent / "dl")
                )
                own = trial_evaluation(run, "tgrid", row["trial_name"])
                assert Path(path).read_bytes() == own.read_bytes()


def test_ray_tunes_own_readers_agree_with_results_csv(runs, tmp_path, monkeypatch):
    """``ExperimentAnalysis``: each trial's status (an ASHA-stopped one TERMINATED, with ``done``
    False: Tune has no status of its own for it), iterations, real config and per-epoch
    history; ``Tuner.restore``'s result grid (``Run.result_grid``) the same, read from another
    working directory."""
    from ray.tune import ExperimentAnalysis

    import orchestrator

    for run in runs:
        df, configs, curves = read_results(run), _configs(run), _curves(run)
        analysis = ExperimentAnalysis(str(run / "tune"))
        by_name = {}
        for trial in analysis.trials:
            name = df.loc[df["trial_id"] == trial.trial_id, "trial_name"].item()
            by_name[name] = trial
            row = df[df["trial_name"] == name].iloc[0]
            assert trial.status == "TERMINATED"
            assert trial.last_result["done"] is (row["status"] == "TERMINATED")
            assert trial.last_result["training_iteration"] == row["iterations"]
            tune_config = {k: v for k, v in trial.config.items() if k != "_trial"}
            real = configs[name]
            assert tune_config == ({k: real[k] for k in tune_config} if run == runs[0] else real)
            assert set(tune_config) == ({"lr"} if run == runs[0] else set(real))
            history = analysis.trial_dataframes[trial.trial_id]
            mine = curves[(curves["trial_name"] == name) & (curves["key"] == "val/cross_domain/acc")]
            assert list(history["val/cross_domain/acc"]) == pytest.approx(list(mine["value"]))
        assert sorted(by_name) == sorted(df["trial_name"])
        monkeypatch.chdir(tmp_path)  # elsewhere, and the run named by a relative path
        grid = orchestrator.load_run(os.path.relpath(run, tmp_path)).result_grid()
        assert len(grid) == len(df)
        for result in grid:
            name = df.loc[df["trial_id"] == result.metrics["trial_id"], "trial_name"].item()
            row = df[df["trial_name"] == name].iloc[0]
            assert result.metrics["done"] is (row["status"] == "TERMINATED")
            assert len(result.metrics_dataframe) == row["iterations"]

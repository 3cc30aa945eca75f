"""Faults while a run goes on (issue 17, item 17): the driver SIGKILLed at six points in turn
and resumed, a trial worker killed mid-epoch, the run directory's disk filling up.

Every case ends in the same place: each planned trial ends exactly once, the trials that
had finished are not rerun, and the report equals that of a run that was never
interrupted (same study, same seeds). The driver is killed for real (``kill_driver.py``
wraps one function of the run in the driver's own process and sends it SIGKILL there).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main
from reports.rundir.files import read_results
from tests.conftest import can_mount_tmpfs

STUDY = """
name: faults
kind: ablation
trainable: da_lora
metric: eval/cross_domain/acc
mode: max
seeds: [0]
reference: a
base: {epochs: 2, adaptation: lora, lora_rank: 2, synth_train_identities: 24, synth_train_images: 2,
       flip_test: false, batch_size: 32}
variants:
  a: {lr: 1.0e-3}
  b: {lr: 3.0e-3}
"""
PLANNED = ["a_seed0", "b_seed0"]
KILL_DRIVER = Path(__file__).with_name("kill_driver.py")
TIMING = ("train/epoch_s", "train/images_per_s")  # measured, not computed: they differ between any two runs


def _values(run: Path) -> pd.DataFrame:
    """What a trial computed: every metric but the timings, by trial name."""
    df = read_results(run).set_index("trial_name")
    return df[[c for c in df.columns if "/" in c and not c.startswith("config/") and c not in TIMING]].sort_index()


def _report(run: Path) -> dict[str, str]:
    """The report's tables (the page carries the run's paths and times, the tables do not;
    the LaTeX labels carry the run directory's name, here put in a placeholder)."""
    return {
        f.name: f.read_text().replace(f"tab:{run.name}-", "tab:RUN-")
        for f in sorted((run / "report").glob("*"))
        if f.suffix in (".csv", ".md", ".tex")
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "faults.yaml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def straight(ray_local, standin, study) -> Path:
    """The same study, never interrupted; run through the Python API (``orchestrator.run_study``)."""
    import orchestrator

    run = orchestrator.run_study(study, out=study.parent / "straight", max_concurrent=1)
    assert run.path == study.parent / "straight" and run.report.is_file()
    assert run.results["group"].tolist() == ["a", "b"] and run.spec.name == "faults"
    assert str(run.results["config/lora_rank"].dtype) == "Int64" and (run.results["config/lora_rank"] == 2).all()
    assert str(run.results["config/flip_test"].dtype) == "boolean"
    assert run.info.overrides == [] and set(run.curves["trial_name"]) == set(PLANNED)
    return run.path


def _assert_same_as_straight(run: Path, straight: Path) -> None:
    df = read_results(run)
    assert list(df["trial_name"]) == PLANNED and set(df["status"]) == {"TERMINATED"}
    assert (df["iterations"] == 2).all()
    pd.testing.assert_frame_equal(_values(run), _values(straight))
    assert _report(run) == _report(straight)
    curves = pd.read_csv(run / "curves.csv")
    # each trial's curve has both epochs (one may come twice: an epoch after the last experiment
    # state Tune saved before the driver died is run again, from the same checkpoint and seeds)
    per_trial = curves[curves["key"] == "eval/cross_domain/acc"].groupby("trial_name")["iteration"].apply(set)
    assert per_trial.to_dict() == {n: {1, 2} for n in PLANNED}


#: The kill points in the order one run reaches them: each driver is killed at its point, and
#: the next one is the ``resume`` of what the previous left (how many trials had ended then).
POINTS = (("prepare", None), ("ray", 0), ("tuner", 0), ("trial", 1), ("rewrite", 1), ("report", 2))


def _killed(point: str, argv: list[str], ray_address: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(KILL_DRIVER), point, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ray_address},  # the session's Ray head
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, (point, proc.stderr[-2000:])
    return proc.stdout


def test_a_driver_killed_at_every_point_in_turn_resumes_to_the_uninterrupted_report(
    study, straight, ray_local, tmp_path, capsys
):
    """One run whose driver is SIGKILLed six times: while preparing; then its resume just
    after Ray started; the next once Tune wrote tuner.pkl but none of its state (the trials'
    configs are not in it); the next mid-trial (one trial ended); the next while results.csv
    is rewritten (the new table and its checksum on disk, the old one not yet replaced); the
    next while the report is made. Each time the run directory is intact and says where the
    run stood; the last ``resume`` ends with the report of a run never interrupted, and the
    trial that had ended was never rerun."""
    out = tmp_path / "run"
    kept: pd.DataFrame | None = None
    curves_kept = 0
    for i, (point, ended) in enumerate(POINTS):
        argv = ["run", str(study), "--out", str(out), "--max-concurrent", "1"] if i == 0 else ["resume", str(out)]
        log = _killed(point, argv, ray_local)
        assert (out / "run.json").is_file() and (out / "spec.yaml").is_file(), point
        if point in ("ray", "tuner"):  # its resume found that no trial had run, and started them
            assert "it stopped before any trial ran; starting its 2 trials" in log, (point, log)
        if ended is None:
            assert not (out / "results.csv").exists()
            continue
        now = read_results(out)  # intact, whatever moment the driver died at
        finished = now[now["status"] == "TERMINATED"].set_index("trial_name")
        assert len(finished) == ended, (point, now[["trial_name", "status"]])
        if point == "tuner":
            assert (out / "tune" / "tuner.pkl").is_file() and not list((out / "tune").glob("experiment_state-*"))
        if point == "rewrite":
            assert (out / "results.csv.tmp").is_file() and "TERMINATED" in (out / "results.csv.tmp").read_text()
            assert (out / "checksums.sha256").read_text().count("results.csv") == 2
        if point == "report":
            assert not (out / "report" / "index.html").exists() and (out / ".report.partial").is_dir()
        if kept is not None:  # what had ended stays as it was: the same attempt, no new curve
            again = finished.loc[kept.index]
            assert list(again["trial_id"]) == list(kept["trial_id"]) and list(again["wall_s"]) == list(kept["wall_s"])
            assert pd.read_csv(out / "curves.csv")["trial_name"].isin(kept.index).sum() == curves_kept, point
        elif ended:
            kept = finished
            curves_kept = int(pd.read_csv(out / "curves.csv")["trial_name"].isin(kept.index).sum())

    assert main(["resume", str(out)]) == 0
    assert "every trial has ended; rebuilding the report" in capsys.readouterr().out
    _assert_same_as_straight(out, straight)
    assert kept is not None
    final = read_results(out).set_index("trial_name").loc[kept.index]
    assert list(final["trial_id"]) == list(kept["trial_id"]) and list(final["wall_s"]) == list(kept["wall_s"])
    assert not (out / ".report.partial").exists()


@pytest.fixture
def kill_worker_mid_trial(monkeypatch):
    """SIGKILL the worker process of a_seed0 (not the driver) once Tune holds the checkpoint
    of its first epoch: the worker is then in its second epoch. Returns the pids killed."""
    from orchestrator.progress import GridProgress

    real, pids, killed = GridProgress.on_trial_result, {}, []

    def on_result(self, iteration, trials, trial, result, **info):
        real(self, iteration, trials, trial, result, **info)
        pids[trial.trial_id] = result["pid"]

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if self.plans[trial.config["_trial"]].name == "a_seed0" and not killed:
            killed.append(pids[trial.trial_id])
            os.kill(pids[trial.trial_id], signal.SIGKILL)

    monkeypatch.setattr(GridProgress, "on_trial_result", on_result)
    monkeypatch.setattr(GridProgress, "on_checkpoint", on_checkpoint, raising=False)
    return killed


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_trial_worker(retries, kill_worker_mid_trial, ray_local, standin, straight, tmp_path, capsys):
    """With ``max_failures`` the trial goes on from its checkpoint and ends as if nothing
    happened; without, it ends ERROR with one line and the other trial runs."""
    (tmp_path / "s.yaml").write_text(STUDY + f"max_failures: {retries}\n")
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(out), "--max-concurrent", "1"]) == 0
    assert len(kill_worker_mid_trial) == 1 and kill_worker_mid_trial[0] != os.getpid()
    df = read_results(out).set_index("trial_name")
    assert list(df.index) == ["a_seed0", "b_seed0"]
    curves = pd.read_csv(out / "curves.csv")
    first = curves[(curves["trial_name"] == "a_seed0") & (curves["key"] == "train/loss")]
    expected = _values(straight)
    if retries:
        assert set(df["status"]) == {"TERMINATED"} and (df["iterations"] == 2).all()
        pd.testing.assert_frame_equal(_values(out), expected)
        # its first epoch was reported once: the retry started from the checkpoint, not from scratch
        assert sorted(first["iteration"]) == [1, 2]
    else:
        assert df.loc["a_seed0", "status"] == "ERROR" and df.loc["b_seed0", "status"] == "TERMINATED"
        error = df.loc["a_seed0", "error"]
        assert error.startswith("the trial's worker process died (exit type SYSTEM_ERROR") and "\n" not in error, error
        pd.testing.assert_frame_equal(_values(out).loc[["b_seed0"]], expected.loc[["b_seed0"]])
        ours = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[") and " ERROR " in ln]
        assert len(ours) == 1 and ours[0].split()[1:4] == ["a", "seed=0", "ERROR"] and error in ours[0], ours


@pytest.fixture
def small_disk(tmp_path):
    """A 500 kB file system (tmpfs): room for the run's first files and a trial or so."""
    path = tmp_path / "small"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=500k", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=True)


@pytest.mark.skipif(not can_mount_tmpfs(), reason="makes its own small file system: needs root and a mountable tmpfs")
def test_a_full_disk_stops_the_run_in_one_line_and_resume_finishes_it(small_disk, study, straight, capsys):
    out = small_disk / "run"
    assert main(["run", str(study), "--out", str(out), "--max-concurrent", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no space left on the disk of"), err
    assert f"python -m orchestrator resume {out}" in err[0]
    before = read_results(out)  # intact: it matches the checksum recorded with it
    assert set(before["status"]) <= {"TERMINATED", "RUNNING", "PENDING"} and (before["status"] != "TERMINATED").any()
    assert not (out / "results.csv.tmp").exists()
    sums = {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in ("spec.yaml", "run.json")}

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # room again
    assert main(["resume", str(out)]) == 0
    _assert_same_as_straight(out, straight)
    assert hashlib.sha256((out / "spec.yaml").read_bytes()).hexdigest() == sums["spec.yaml"]

"""``resume DIR`` after Ctrl-C and after a search's driver was killed (SIGKILL) mid-run:
every planned trial ends up in results.csv exactly once, finished, and the trials that had
finished are not rerun. An ablation's driver killed at each point of a run is in
``test_faults.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main

TINY = """
name: tiny-resume
kind: ablation
trainable: da_lora
metric: eval/cross_domain/acc
mode: max
seeds: [0, 1, 2]
reference: a
base: {epochs: 2, adaptation: none, synth_train_identities: 24, synth_train_images: 2, flip_test: false, batch_size: 32}
variants:
  a: {lr: 1.0e-3}
  b: {lr: 3.0e-3}
"""


def _run_and_kill(
    study: Path, out: Path, address: str, *, ended: int, statuses=("TERMINATED",), timeout: float = 300
) -> pd.DataFrame:
    """Run ``study`` in a subprocess on the Ray at ``address``, one trial at a time, and SIGKILL
    the driver (no chance to clean up or write anything) once ``ended`` trials have one of
    ``statuses``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(study), "--out", str(out), "--max-concurrent", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RAY_ADDRESS": address},
    )
    try:
        deadline = time.time() + timeout
        while True:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no trial ended in time"
            if (out / "results.csv").is_file() and pd.read_csv(out / "results.csv")["status"].isin(
                statuses
            ).sum() >= ended:
                break
            time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait()
    return pd.read_csv(out / "results.csv")


def test_resume_after_ctrl_c(ray_local, standin, tmp_path, capsys):
    """Ctrl-C (SIGINT) stops the run gracefully: no traceback, unfinished trials marked
    INTERRUPTED or left PENDING, the finished ones kept; ``resume`` finishes the rest."""
    # two trials (one variant): Ctrl-C once the first has finished, while the second runs
    (tmp_path / "tiny.yaml").write_text(
        TINY.replace("seeds: [0, 1, 2]", "seeds: [0, 1]").replace("  b: {lr: 3.0e-3}\n", "")
    )
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(tmp_path / "tiny.yaml"),
            "--out",
            str(out),
            "--max-concurrent",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ray_local},
    )
    deadline = time.time() + 300
    while not ((out / "results.csv").is_file() and (pd.read_csv(out / "results.csv")["status"] == "TERMINATED").any()):
        assert proc.poll() is None and time.time() < deadline, "no trial finished before the run ended"
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode in (0, 130) and "Traceback" not in stderr, stderr[-2000:]
    before = pd.read_csv(out / "results.csv")
    assert set(before["status"]) <= {"TERMINATED", "INTERRUPTED", "PENDING"} and "TERMINATED" in set(before["status"])
    assert (before["status"] != "TERMINATED").any()
    assert main(["resume", str(out)]) == 0
    after = pd.read_csv(out / "results.csv")
    assert len(after) == 2 and set(after["status"]) == {"TERMINATED"}
    done = before[before["status"] == "TERMINATED"].set_index("trial_name")
    assert list(after.set_index("trial_name").loc[done.index, "wall_s"]) == list(done["wall_s"])  # not rerun


def test_resume_bad_input(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and err.count("\n") == 1


SEARCH = """
name: tiny-search
kind: search
trainable: da_lora
metric: val/cross_domain/acc
mode: max
seeds: [0]
num_samples: 4
search_seed: 3
base: {epochs: 2, adaptation: none, eval_every: 1, lr: 1.0e-3, weight_decay: 0.0, synth_train_identities: 24,
       synth_train_images: 2, flip_test: false, batch_size: 32}
space:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
  weight_decay: {choice: [0.0, 0.01, 0.1]}
scheduler: {max_t: 2, grace_period: 1, reduction_factor: 2}
"""


def test_search_resume_after_sigkill(ray_local, standin, tmp_path, capsys, monkeypatch):
    """A search killed after two trials ended: ``resume`` keeps them as they were, continues
    the sampler and the trial numbering (no name twice), and draws the remaining samples."""
    (tmp_path / "s.yaml").write_text(SEARCH)
    out = tmp_path / "run"
    before = _run_and_kill(tmp_path / "s.yaml", out, ray_local, ended=2, statuses=("TERMINATED", "STOPPED"))
    ended = before[before["status"].isin(["TERMINATED", "STOPPED"])].set_index("trial_name")
    assert len(ended) >= 2 and len(ended) < 4

    # without Tune's experiment state there is nothing to resume from: one line, exit 2
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("tune"))
    assert main(["resume", str(bare)]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume from" in err and err.count("\n") == 1

    assert main(["resume", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"{len(ended)} of 4 trials ended" in log
    after_ = pd.read_csv(out / "results.csv")
    curves = pd.read_csv(out / "curves.csv")
    curves = curves[
        curves["key"] == "val/cross_domain/acc"
    ]  # (an iteration after the last saved checkpoint comes twice)
    for r in after_.itertuples():  # one curve per trial, its iterations without gaps
        assert set(curves.loc[curves["trial_name"] == r.trial_name, "iteration"]) == set(range(1, r.iterations + 1))
    after = pd.read_csv(out / "results.csv")
    assert sorted(after["trial"]) == [f"trial{i:03d}" for i in range(4)]  # each once, numbering continued
    assert set(after["status"]) <= {"TERMINATED", "STOPPED"}
    # Trials Tune had in its experiment state when the driver died are not rerun. Tune saves
    # that state every 10 s or so: a trial created after the last save is generated again and
    # replaces what its lost attempt left (still once per name).
    state = "".join(f.read_text() for f in (out / "tune").glob("experiment_state-*.json"))
    known = ended[[str(t) in state for t in ended["trial_id"]]]
    assert len(known) >= 1
    kept = after.set_index("trial_name").loc[known.index]
    assert list(kept["wall_s"]) == list(known["wall_s"]) and list(kept["trial_id"]) == list(known["trial_id"])
    configs = json.loads((out / "configs.json").read_text())
    assert sorted(configs) == sorted(after["trial_name"])
    assert configs["trial000_seed0"]["lr"] == 1.0e-3  # the base config first
    sampled = [(round(c["lr"], 12), c["weight_decay"]) for c in configs.values()]
    assert len(set(sampled)) == len(sampled)  # the sampler went on; it did not start over
    assert (out / "report" / "top_k.csv").is_file()
    # the sampler, restored by the resume, still tells stopped trials from finished ones
    import optuna

    from orchestrator.searcher import StoppedAwareOptunaSearch

    searcher = StoppedAwareOptunaSearch()
    searcher.restore_from_dir(str(out / "tune"))
    trials = searcher._ot_study.trials
    S = optuna.trial.TrialState
    for _, r in after.iterrows():
        t = trials[searcher._ot_trials[r["trial_id"]].number]
        assert t.state == {"TERMINATED": S.COMPLETE, "STOPPED": S.PRUNED}[r["status"]], r["trial"]
        assert t.value == pytest.approx(r["val/cross_domain/acc"])
    assert main(["resume", str(out)]) == 0
    assert "every trial has ended; rebuilding the report" in capsys.readouterr().out

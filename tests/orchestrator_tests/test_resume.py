"""``resume DIR`` after the driver was killed (SIGKILL) mid-run: every planned trial ends up
in results.csv exactly once, finished, and the trials that had finished are not rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

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
base: {epochs: 2, adaptation: none}
variants:
  a: {lr: 1.0e-3}
  b: {lr: 3.0e-3}
"""


def _wait_for(path, finished: int, proc, timeout: float = 300) -> pd.DataFrame:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        if path.is_file():
            df = pd.read_csv(path)
            if (df["status"] == "TERMINATED").sum() >= finished:
                return df
        time.sleep(0.5)
    raise AssertionError("no trial finished in time")


@pytest.fixture(scope="module")
def killed_run(standin, tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    (d / "tiny.yaml").write_text(TINY)
    out = d / "run"
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(d / "tiny.yaml"), "--out", str(out),
                             "--max-concurrent", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RAY_ADDRESS": ""})
    try:
        _wait_for(out / "results.csv", 2, proc)
    finally:
        proc.kill()  # SIGKILL: no chance to clean up or write anything
        proc.wait()
    return out, pd.read_csv(out / "results.csv")


def test_resume_after_sigkill_finishes_every_trial_once(ray_local, killed_run, capsys):
    out, before = killed_run
    assert (before["status"] != "TERMINATED").any()  # killed mid-run
    assert main(["status", str(out)]) == 0
    assert "is gone" in capsys.readouterr().out or not (before["status"] == "RUNNING").any()
    assert main(["resume", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"{(before['status'] == 'TERMINATED').sum()} of 6 trials finished" in log
    after = pd.read_csv(out / "results.csv")
    planned = [f"{v}_seed{s}" for v in "ab" for s in (0, 1, 2)]
    assert list(after["trial_name"]) == planned and set(after["status"]) == {"TERMINATED"}
    m = "eval/cross_domain/acc"
    done = before[before["status"] == "TERMINATED"].set_index("trial_name")
    kept = after.set_index("trial_name").loc[done.index]
    assert list(kept[m]) == list(done[m]) and list(kept["wall_s"]) == list(done["wall_s"])  # not rerun
    curves = pd.read_csv(out / "curves.csv")
    curves = curves[curves["key"] == m].drop_duplicates(["trial_name", "iteration"])
    assert curves.groupby("trial_name")["iteration"].apply(sorted).to_dict() == {n: [1, 2] for n in planned}
    assert (out / "report" / "ablation.csv").is_file()
    assert json.loads((out / "run.json").read_text())["resumed"][0]["trials_left"] == 6 - len(done)
    # resuming a finished run only rebuilds its report
    assert main(["resume", str(out)]) == 0
    assert "every trial has finished; rebuilding the report" in capsys.readouterr().out
    assert pd.read_csv(out / "results.csv").equals(after)


def test_resume_bad_input(tmp_path, capsys):
    (tmp_path / "search").mkdir()
    pd.DataFrame({"trial_name": ["t"]}).to_csv(tmp_path / "search" / "results.csv", index=False)
    (tmp_path / "search" / "run.json").write_text(json.dumps({"kind": "search"}))
    for d, message in ((tmp_path / "nowhere", "not a run directory"),
                       (tmp_path / "search", "resuming a search is not supported yet")):
        assert main(["resume", str(d)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1

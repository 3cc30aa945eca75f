"""Schedulers by name (``scheduler.type``): ASHA by promotion (the default) and FIFO."""

from __future__ import annotations

import json

from orchestrator.cli import main
from orchestrator.plan import compile_search
from orchestrator.schedulers import SCHEDULERS, scheduler_of
from orchestrator.studies import load_study
from reports.rundir.files import read_results

SEARCH = """
name: sched
kind: search
trainable: da_lora
metric: val/cross_domain/acc
mode: max
seeds: [0]
num_samples: 3
search_seed: 1
base: {epochs: 3, adaptation: lora, lora_rank: 2, synth_train_identities: 24, synth_train_images: 2,
       flip_test: false, batch_size: 32}
space:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
scheduler: SCHED
"""


def _search(tmp_path, sched: str):
    (tmp_path / "s.yaml").write_text(SEARCH.replace("SCHED", sched))
    return compile_search(load_study(str(tmp_path / "s.yaml"))[0])


def test_schedulers_by_type_and_their_rungs(tmp_path):
    assert sorted(SCHEDULERS) == ["asha", "fifo"]
    asha = _search(tmp_path, "{grace_period: 1, reduction_factor: 2}")
    assert asha.scheduler == "asha" and scheduler_of(asha).rungs(asha) == [1, 2]  # 1, 2 (4 >= max_t 3)
    fifo = _search(tmp_path, "{type: fifo, grace_period: 5}")  # a grace period is no error where nothing stops
    assert fifo.scheduler == "fifo" and scheduler_of(fifo).rungs(fifo) == [] and not scheduler_of(fifo).stops_early


def test_an_unknown_scheduler_is_refused(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SEARCH.replace("SCHED", "{type: hyperband}"))
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "scheduler.type" in err and "'asha' or 'fifo'" in err and err.count("\n") == 1, err


def test_a_fifo_search_runs_every_trial_to_max_t(ray_local, standin, tmp_path, monkeypatch):
    (tmp_path / "s.yaml").write_text(SEARCH.replace("SCHED", "{type: fifo}"))
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(out), "--max-concurrent", "1"]) == 0
    df = read_results(out)
    assert len(df) == 3 and set(df["status"]) == {"TERMINATED"} and (df["iterations"] == 3).all()
    info = json.loads((out / "run.json").read_text())
    assert info["scheduler"]["type"] == "fifo" and info["scheduler"]["rungs"] == []
    assert (out / "report" / "top_k.csv").is_file()

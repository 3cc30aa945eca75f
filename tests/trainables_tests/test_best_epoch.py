"""Each trial keeps the model of its best epoch by a validation metric inside every checkpoint
it reports (``BestEpoch``), never chosen by a test metric, and carried across a resume; the
study hands its trials the metric (``plan.best_epoch_by``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainables.checkpointing import BEST_DIR, BEST_META, BestEpoch, load_state, parse_best_by, save_state


def _epochs(tmp_path: Path, reporter, metrics: list[dict[str, float]], first: int = 1) -> list[Path]:
    """Report ``metrics`` epoch by epoch, each checkpoint's model tensor holding its epoch; keep a
    copy of every checkpoint as the reporter left it (Tune keeps the latest)."""
    kept = []
    for e, m in enumerate(metrics, start=first):
        d = tmp_path / f"ckpt{e}"
        d.mkdir()
        save_state(d, {"model": {"w": torch.full((2,), float(e))}, "optimizer": {}, "epoch": e})
        reporter({**m, "train/epochs": float(e)}, d)
        kept.append(d)
    return kept


def test_the_best_epoch_by_the_validation_metric_travels_in_every_checkpoint(tmp_path):
    seen = []
    val = [0.50, 0.70, 0.60, None, 0.65]  # epoch 4 is not evaluated (eval_every)
    test = [0.90, 0.10, 0.20, None, 0.95]  # a test metric that would pick epoch 5
    metrics = [{} if v is None else {"val/x/acc": v, "eval/x/acc": t} for v, t in zip(val, test)]
    kept = _epochs(tmp_path, BestEpoch(lambda m, d: seen.append(m), parse_best_by("val/x/acc:max")), metrics)
    # the best epoch so far by definition: argmax of the validation values reported up to then
    best_so_far = [1, 2, 2, 2, 2]
    assert [m["train/best_epoch"] for m in seen] == best_so_far
    for d, e in zip(kept, best_so_far):
        assert torch.equal(load_state(d / BEST_DIR)["model"]["w"], torch.full((2,), float(e)))
    meta = json.loads((kept[-1] / BEST_DIR / BEST_META).read_text())
    assert (meta["epoch"], meta["by"], meta["value"]) == (2, "val/x/acc", 0.70)
    assert "optimizer" not in load_state(kept[-1] / BEST_DIR)  # the model only, not the resume state


def test_a_lower_is_better_metric_and_no_metric(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    seen: list[float] = []
    by = parse_best_by("val/x/eer:min")
    _epochs(tmp_path / "a", BestEpoch(lambda m, d: seen.append(m["train/best_epoch"]), by),
            [{"val/x/eer": v} for v in (0.3, 0.2, 0.25)])  # fmt: skip
    assert seen == [1, 2, 2]
    seen.clear()
    kept = _epochs(tmp_path / "b", BestEpoch(lambda m, d: seen.append(m["train/best_epoch"]), None),
                   [{"eval/x/acc": v} for v in (0.9, 0.1, 0.2)])  # fmt: skip
    assert seen == [1, 2, 3]  # no validation metric: the last epoch, and best.json says so
    assert "last epoch" in json.loads((kept[-1] / BEST_DIR / BEST_META).read_text())["why"]


def test_a_resumed_trial_keeps_the_best_epoch_it_had(tmp_path):
    by = parse_best_by("val/x/acc:max")
    first = _epochs(tmp_path, BestEpoch(lambda m, d: None, by), [{"val/x/acc": v} for v in (0.5, 0.9, 0.6)])
    seen = []
    resumed = BestEpoch(lambda m, d: seen.append(m["train/best_epoch"]), by, restore_from=first[-1])
    (tmp_path / "after").mkdir()
    kept = _epochs(tmp_path / "after", resumed, [{"val/x/acc": v} for v in (0.7, 0.95)], first=4)
    assert seen == [2, 5]
    assert torch.equal(load_state(kept[0] / BEST_DIR)["model"]["w"], torch.full((2,), 2.0))


@pytest.mark.parametrize("bad", ["eval/x/acc:max", "val/x/acc", "val/x/acc:up"])
def test_only_a_validation_metric_chooses(bad):
    with pytest.raises(ValueError, match="validation metric"):
        parse_best_by(bad)


def test_the_study_hands_its_trials_its_validation_metric():
    from orchestrator.plan import best_epoch_by
    from orchestrator.studies import load_study
    from trainables import get_trainable

    spec = load_study("ablation-real")[0]
    entry = get_trainable("da_lora")
    base = {**spec.base, "seed": 0}
    # eval/mean/acc has no val/mean/acc here (one validation set): the report's validation metric
    assert best_epoch_by(spec, entry, base) == "val/heldout/acc:max"
    by_val = spec.model_copy(update={"metric": "val/heldout/auc", "mode": "max"})
    assert best_epoch_by(by_val, entry, base) == "val/heldout/auc:max"
    no_val = spec.model_copy(
        update={"metric": "eval/lfw/acc", "report": spec.report.model_copy(update={"metrics": ["eval/lfw/acc"]})}
    )
    assert best_epoch_by(no_val, entry, {**base, "val_fraction": 0.0}) == ""


def test_the_report_says_which_epoch_each_model_is():
    from reports.rundir.info import RunInfo
    from reports.sections import models_line

    info = RunInfo(study="s", kind="ablation", metric="val/x/acc", mode="max")
    assert "best epoch by the validation metric <code>val/x/acc</code>" in models_line(
        info.model_copy(update={"best_epoch_by": "val/x/acc:max"})
    )
    assert "<b>last</b> epoch: the study has no validation metric" in models_line(
        info.model_copy(update={"best_epoch_by": ""})
    )
    assert models_line(info) == ""  # a run of a trainable that keeps no model (or of an earlier version)


def test_the_folders_of_trials_whose_process_ended_are_swept_and_no_others(tmp_path):
    """A trial stopped by ASHA ends with its worker before its ``with`` blocks remove their
    folders; the next trial (or the run's end) removes them, and only them."""
    import os
    import subprocess
    import sys

    from trainables.checkpointing import scratch_dir, sweep_scratch

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(ended.stdout)
    names = {
        "dead": f"orchestrator-checkpoint-{dead}-abc",
        "dead_trial": f"orchestrator-trial-{dead}-x",
        "alive": f"orchestrator-checkpoint-{os.getpid()}-abc",
        "other": f"orchestrator-{dead}",  # not a trial's folder
        "not_ours": f"checkpoint-{dead}-abc",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.pt").write_bytes(b"x")
    assert sweep_scratch(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["alive"], names["other"], names["not_ours"]])
    with scratch_dir("checkpoint") as d:  # this process's own: named so that a sweep can tell whose it is
        assert Path(d).name.startswith(f"orchestrator-checkpoint-{os.getpid()}-")

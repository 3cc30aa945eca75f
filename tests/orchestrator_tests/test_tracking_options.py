"""How trackers are asked for and refused, W&B's mode, and a tracker that fails mid-run (no
Ray: the tracker files themselves are read back in ``test_tracking.py``)."""

from __future__ import annotations

import importlib.util

import pytest

from orchestrator.cli import main
from orchestrator.tracking import Trackers, parse_track, wandb_mode
from tests.orchestrator_tests.test_spec import GOOD_SMALL


def test_track_names_trackers_once_each_and_none_is_none():
    assert parse_track("wandb, tensorboard,wandb") == ["wandb", "tensorboard"]
    assert parse_track("none") == [] and parse_track("") == []
    with pytest.raises(ValueError, match="unknown tracker 'comet'"):
        parse_track("tensorboard,comet")


def _refused(capsys, argv) -> str:
    try:
        status = main(argv)
    except SystemExit as exit:  # the command line's parser refuses by exiting
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_an_unknown_tracker_or_one_twice_in_a_spec_is_refused_in_one_line(tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_text(GOOD_SMALL)
    err = _refused(capsys, ["run", str(study), "--out", str(tmp_path / "r"), "--track", "neptune"])
    assert "--track" in err and "neptune" in err
    study.write_text(GOOD_SMALL + "tracking: {backends: [mlflow, mlflow]}\n")
    err = _refused(capsys, ["run", str(study), "--out", str(tmp_path / "r")])
    assert "tracking.backends" in err and "each tracker once" in err
    assert not (tmp_path / "r").exists()  # refused before the run directory was made


def test_a_tracker_whose_library_is_missing_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    study = tmp_path / "s.yaml"
    study.write_text(GOOD_SMALL)
    err = _refused(capsys, ["run", str(study), "--out", str(tmp_path / "r"), "--track", "tensorboard,wandb"])
    assert "wandb package is not installed" in err and "orchestrator[track]" in err
    assert not (tmp_path / "r").exists()


def test_wandb_writes_offline_unless_a_key_is_configured(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: nobody ran `wandb login`
    assert wandb_mode("auto") == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password k" + "0" * 39 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_mode("auto") == "online"  # `wandb login` wrote its key there
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_mode("auto") == "online" and wandb_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # W&B's own switch stands
    assert wandb_mode("online") == "disabled"


def test_a_tracker_that_fails_is_left_out_in_one_line_and_the_others_go_on(tmp_path, capsys):
    """MLflow's store where no file can be made: the run goes on, TensorBoard still writes."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    trackers = Trackers(
        tmp_path / "run",
        "s",
        {"backends": ["mlflow", "tensorboard"], "mlflow_uri": f"sqlite:///{blocked}/sub/mlflow.db"},
    )
    trackers.start("t_seed0", {"lr": 0.1})
    trackers.flush()  # written on the trackers' own thread
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("tracker mlflow left out for the rest of the run: ")
    assert [b.name for b in trackers.backends] == ["tensorboard"]
    trackers.epoch("t_seed0", {"training_iteration": 1, "val/acc": 0.5, "time_total_s": 1.0})
    trackers.end("t_seed0", {"lr": 0.1}, {"status": "TERMINATED", "val/acc": 0.5}, None)
    trackers.close()
    acc = EventAccumulator(str(tmp_path / "run" / "tracking" / "tensorboard" / "t_seed0"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("val/acc")] == [(1, 0.5)]
    assert acc.Scalars("final/val/acc")[-1].value == 0.5


def test_trackers_survive_the_pickling_tune_does_for_a_resume(tmp_path):
    """Tune pickles its callbacks, the trackers with them, into the experiment state; the copy
    ``resume`` unpickles writes to the same run (its thread and history are its own)."""
    import pickle

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = Trackers(tmp_path / "run", "s", {"backends": ["tensorboard"]})
    first.start("t_seed0", {"lr": 0.1})
    first.epoch("t_seed0", {"training_iteration": 1, "val/acc": 0.25})
    first.flush()
    again = pickle.loads(pickle.dumps(first))
    assert again._thread is None and again._history == {} and [b.name for b in again.backends] == ["tensorboard"]
    again.epoch("t_seed0", {"training_iteration": 2, "val/acc": 0.5})
    again.end("t_seed0", {"lr": 0.1}, {"status": "TERMINATED", "val/acc": 0.5}, None)
    again.close()
    first.close()
    acc = EventAccumulator(str(tmp_path / "run" / "tracking" / "tensorboard" / "t_seed0"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("val/acc")] == [(1, 0.25), (2, 0.5)]

"""The contract every registered trainable keeps, checked over the whole registry (as timm's
tests run over ``list_models()``): a new trainable is covered the moment it registers.

Running its smoke config (``register_module(smoke=...)``) for real, each trainable must report
once per iteration, exactly the keys it declares, namespaced, each report with a
checkpoint; resumed from its first checkpoint, a trial must end exactly as the straight one
did. The whole path through Ray and a killed driver is in
``tests/orchestrator_tests/test_faults.py``."""

from __future__ import annotations

import inspect
import math
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

import trainables
from trainables._registry import trainable_module

NAMES = trainables.list_trainables()
#: Those whose smoke trial reports more than once, so that it has a checkpoint to resume from
#: before its end (the probe reports once: its one report is its end).
RESUMABLE = [n for n in NAMES if (e := trainables.get_trainable(n)).full_iterations(e.smoke) > 1]


def test_the_registry_holds_every_trainable_package():
    """Every sub-package of ``trainables`` with a Ray-free ``loop.py`` is registered under its
    own name, and nothing else is (the list comes from the folders, not from names here)."""
    folders = sorted(p.parent.name for p in Path(trainables.__file__).parent.glob("*/loop.py"))
    assert folders and NAMES == folders
    for name in NAMES:
        assert trainables.get_trainable(name).fn.__module__ == f"trainables.{name}"


@pytest.mark.parametrize("name", NAMES)
def test_the_module_keeps_the_protocol(name):
    entry = trainables.get_trainable(name)
    module = trainable_module(f"{entry.fn.__module__}.loop")
    params = inspect.signature(module.run).parameters
    assert list(params)[:2] == ["cfg", "report"]
    for key in ("restore_from", "out_dir"):
        assert params[key].kind is inspect.Parameter.KEYWORD_ONLY and params[key].default is None, key
    assert list(inspect.signature(module.prepare).parameters) == ["cfg", "out_dir"]


@pytest.mark.parametrize("name", NAMES)
def test_the_entry_pickles_by_reference(name):
    """Ray ships the trainable to every worker: by its module and name, not by value."""
    entry = trainables.get_trainable(name)
    data = pickle.dumps(entry.fn)
    assert len(data) < 200 and f"train_{name}".encode() in data
    assert pickle.loads(data) is entry.fn


def _numeric_field(cls) -> str:
    for field, info in cls.model_fields.items():
        if info.annotation in (int, float):
            return field
    raise AssertionError(f"{cls.__name__} has no numeric field")


@pytest.mark.parametrize("name", NAMES)
def test_the_config_refuses_unknown_keys_and_booleans_for_numbers(name):
    cls = trainables.get_trainable(name).config_cls
    cls()  # the defaults are a valid config
    with pytest.raises(ValidationError, match="no_such_key"):
        cls.model_validate({"no_such_key": 1})
    field = _numeric_field(cls)
    with pytest.raises(ValidationError, match="boolean"):
        cls.model_validate({field: True})
    with pytest.raises(ValidationError):  # frozen
        setattr(cls(), field, 1)


@pytest.mark.parametrize("name", NAMES)
def test_the_declared_keys_are_namespaced_and_final(name):
    entry = trainables.get_trainable(name)
    keys = entry.reported_keys(entry.config_cls())
    assert keys and len(set(keys)) == len(keys)
    assert all(k.split("/", 1)[0] in ("train", "val", "eval") and "/" in k for k in keys), keys
    assert any(k.startswith("eval/") for k in keys)
    assert entry.full_iterations(entry.config_cls()) >= 1


#: Measured, not computed: they differ between any two runs of the same trial.
TIMING = ("train/epoch_s", "train/images_per_s", "train/embed_s", "train/head_s")


def _run_trial(name: str, out: Path, restore: Path | None = None) -> tuple[list[dict], list[Path]]:
    """Run the smoke trial in this process (no Ray), keeping every report and a copy of each checkpoint."""
    entry = trainables.get_trainable(name)
    cfg = entry.config_cls.model_validate(entry.smoke)
    module = trainable_module(f"{entry.fn.__module__}.loop")
    reports, kept = [], []

    def report(metrics, checkpoint_dir):
        assert Path(checkpoint_dir).is_dir() and any(Path(checkpoint_dir).iterdir())
        reports.append(dict(metrics))
        kept.append(shutil.copytree(checkpoint_dir, out / f"checkpoint{len(reports)}"))

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    module.run(cfg, report, restore_from=restore, out_dir=out)
    return reports, kept


@pytest.fixture(scope="module")
def straight(standin, tmp_path_factory) -> dict[str, tuple[list[dict], list[Path]]]:
    """Each trainable's smoke trial, prepared as a run prepares it, then run straight."""
    out = {}
    for name in NAMES:
        entry = trainables.get_trainable(name)
        root = tmp_path_factory.mktemp(name)
        entry.prepare(entry.config_cls.model_validate(entry.smoke), root)
        out[name] = _run_trial(name, root / "straight")
    return out


@pytest.mark.parametrize("name", NAMES)
def test_a_trial_reports_once_per_iteration_exactly_the_declared_keys(name, straight):
    entry = trainables.get_trainable(name)
    reports, checkpoints = straight[name]
    assert len(reports) == entry.full_iterations(entry.smoke) == len(checkpoints)
    assert set(reports[-1]) == set(entry.reported_keys(entry.smoke))
    for r in reports:
        assert all(k.split("/", 1)[0] in ("train", "val", "eval") for k in r), sorted(r)
        assert all(isinstance(v, float) for v in r.values()), {k: type(v) for k, v in r.items()}


def test_every_trainable_that_trains_for_several_epochs_is_checked_resumed():
    assert RESUMABLE == ["da_lora", "infonce", "pair_contrastive", "triplet"]


@pytest.mark.parametrize("name", RESUMABLE)
def test_a_resumed_trial_ends_as_the_straight_one(name, straight, tmp_path):
    reports, checkpoints = straight[name]
    assert len(reports) >= 2  # as full_iterations said (checked above)
    resumed, _ = _run_trial(name, tmp_path / "resumed", restore=checkpoints[0])
    assert len(resumed) == len(reports) - 1  # the restored epoch is not reported again
    want = {k: v for k, v in reports[-1].items() if k not in TIMING}
    got = {k: v for k, v in resumed[-1].items() if k not in TIMING}
    assert got.keys() == want.keys()
    assert [k for k in want if not (got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k])))] == []


def test_a_new_trainable_is_its_package_alone(tmp_path, monkeypatch):
    """Discovery: a sub-package with a ``loop.py`` registers itself when its parent is
    imported; shared code without one is not imported at all."""
    from trainables import _registry

    root = tmp_path / "labtrainables"
    (root / "mine").mkdir(parents=True)
    (root / "shared").mkdir()
    (root / "__init__.py").write_text("")
    (root / "shared" / "__init__.py").write_text("raise ImportError('shared code is not a trainable')\n")
    (root / "mine" / "loop.py").write_text(
        "def prepare(cfg, out_dir):\n    return {}\n\n"
        "def run(cfg, report, *, restore_from=None, out_dir=None):\n    report({'eval/x': 1.0}, out_dir)\n"
    )
    (root / "mine" / "__init__.py").write_text(
        "from pydantic import BaseModel, ConfigDict\n"
        "from trainables._registry import register_module\n\n"
        "class MineConfig(BaseModel):\n    model_config = ConfigDict(extra='forbid', frozen=True)\n    epochs: int = 1\n\n"
        "train_mine = register_module('mine', config_cls=MineConfig, module='labtrainables.mine.loop', "
        "description='a test trainable', metric_keys=lambda cfg: ['eval/x'])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))  # the real registry stays as it is
    assert _registry.discover("labtrainables", [str(root)]) == ["mine"]
    entry = trainables.get_trainable("mine")
    assert entry.reported_keys({}) == ["eval/x"] and entry.fn.__name__ == "train_mine"
    assert "mine" not in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_reported_metric_has_a_declared_direction(name):
    """Which way each key is better is declared by the trainable (``trainables.metrics``), for
    its smoke config and its defaults: by definition losses, EER and seconds are better
    lower, accuracy, AUC, TAR at a FAR and ranks higher."""
    from trainables.metrics import undeclared

    entry = trainables.get_trainable(name)
    configs = [entry.smoke]
    try:
        entry.config_cls.model_validate({})
        configs.append({})
    except ValidationError:
        pass
    for config in configs:
        keys = entry.reported_keys(config)
        assert keys and undeclared(entry.directions, keys) == []
        for key in keys:
            last = key.rsplit("/", 1)[-1]
            if last.endswith("loss") or last == "eer" or last.endswith("_s") and last != "images_per_s":
                assert entry.direction(key) == "min", key
            if last in ("acc", "auc", "rank1", "rank5", "map", "images_per_s") or last.startswith("tar@far="):
                assert entry.direction(key) == "max", key


@pytest.mark.parametrize("name", NAMES)
def test_every_reported_metric_has_a_declared_name(name):
    """What a table calls each key is declared by the trainable too: none falls back to the key
    itself, and two keys of one config never get the same name (two columns would read alike)."""
    from trainables.metrics import undeclared

    entry = trainables.get_trainable(name)
    keys = entry.reported_keys(entry.smoke)
    assert keys and undeclared(entry.names, keys) == []
    names = [entry.display_name(k) for k in keys]
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)

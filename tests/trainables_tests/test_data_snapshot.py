"""A study's data snapshot: what its preparation listed and cached, read by its trials
without listing the folder or stat-ing a file again, the same data for every trial, and
a damaged or cleared snapshot never trusted."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, ConfigDict

from trainables import DATA_SNAPSHOT, DATA_SNAPSHOT_KEY, _registry
from trainables.data import image_cache, snapshot, sources

SIZE = 24


def _folder(root: Path, identities: int = 3, images: int = 3) -> Path:
    rng = np.random.default_rng(1)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True, exist_ok=True)
        for k in range(images):
            Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(root / f"id{i}" / f"{k}.jpg")
    return root


def _prepare(root: Path) -> tuple[sources.TrainSet, image_cache.CachedImages, str]:
    """What a trainable's preparation does with an image folder, recorded as the registry records it."""
    with snapshot.recording() as pins:
        listed = sources.read_train_data(str(root), check=False)
        cache = image_cache.image_files(list(listed.paths or ()), SIZE, verify=True)
    name = snapshot.save(pins)
    assert name is not None
    return listed, cache, name


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "train")
    return (root, *_prepare(root))


def _no_listing_or_stat(monkeypatch) -> None:
    def refuse(*_a, **_k):
        raise AssertionError("a pinned trial listed the folder or stat-ed its files")

    monkeypatch.setattr(sources, "read_image_folder", refuse)
    monkeypatch.setattr(image_cache, "_described", refuse)


def _same_listing(a: sources.TrainSet, b: sources.TrainSet) -> None:
    np.testing.assert_array_equal(a.identity, b.identity)
    np.testing.assert_array_equal(a.domain, b.domain)
    assert (a.paths, a.identity_names, a.domains, a.fingerprint) == (
        b.paths,
        b.identity_names,
        b.domains,
        b.fingerprint,
    )


def test_a_pinned_trial_reads_what_preparation_found_without_listing_or_a_stat(prepared, monkeypatch):
    root, listed, cache, name = prepared
    assert len(listed) == 9
    _no_listing_or_stat(monkeypatch)
    # a trial whose own process was started with another cache folder (a Ray started before)
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(root.parent / "elsewhere"))
    with snapshot.pinned(name):
        again = sources.read_train_data(str(root), check=False)
        rows = image_cache.image_files(list(again.paths or ()), SIZE)
    _same_listing(again, listed)
    assert rows.directory == cache.directory
    np.testing.assert_array_equal(rows.images, cache.images)
    for i, p in enumerate(again.paths or ()):  # row i is the file listed i-th
        np.testing.assert_array_equal(rows.images[i], sources.read_image(p, SIZE).numpy())


def test_files_changed_after_preparation_are_not_seen_by_its_trials_but_by_the_next_study(prepared):
    root, listed, cache, name = prepared
    first = np.array(cache.images)
    (root / "extra").mkdir()
    Image.new("RGB", (30, 30), (255, 0, 0)).save(root / "extra" / "a.jpg")  # a new identity, one image
    edited = listed.paths[0]  # type: ignore[index]
    Image.new("RGB", (30, 30), (0, 0, 255)).save(edited)
    os.utime(edited, ns=(1, 1))
    with snapshot.pinned(name):
        pinned = sources.read_train_data(str(root), check=False)
        rows = image_cache.image_files(list(pinned.paths or ()), SIZE)
    _same_listing(pinned, listed)
    np.testing.assert_array_equal(rows.images, first)  # the pixels every other trial read
    fresh = sources.read_train_data(str(root), check=False)
    assert len(fresh) == len(listed) + 1 and "extra" in (fresh.identity_names or ())
    rebuilt = image_cache.image_files(list(fresh.paths or ()), SIZE)
    assert rebuilt.directory != cache.directory and rebuilt.built_s is not None
    assert rebuilt.images[fresh.paths.index(edited)][2].min() > 200  # type: ignore[union-attr]  (blue)


@pytest.mark.parametrize("damage", ["snapshot", "listing", "cache"])
def test_a_damaged_or_cleared_snapshot_is_not_trusted(prepared, damage):
    """The trial then lists and checks its data itself and finds the folder as it is now."""
    root, listed, cache, name = prepared
    where = image_cache.cache_root()
    Image.new("RGB", (30, 30), (0, 255, 0)).save(root / "id0" / "9.jpg")  # the folder has changed since
    if damage == "cache":
        image_cache.clear_caches()
        assert not snapshot.files()
    else:
        (target,) = [
            p for p in snapshot.files() if p.name.endswith(f".{damage}.json" if damage == "snapshot" else ".npz")
        ]
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 1
        target.write_bytes(bytes(data))
    said: list[str] = []
    with snapshot.pinned(name, log=said.append):
        now = sources.read_train_data(str(root), check=False)
        rows = image_cache.image_files(list(now.paths or ()), SIZE)
    assert len(now) == len(listed) + 1  # listed again, not the snapshot's listing
    assert rows.directory != cache.directory and rows.images.shape[0] == len(now)
    (line,) = said
    stem = Path(name).name.removesuffix(snapshot.SNAPSHOT_SUFFIX)
    if damage == "listing":  # the snapshot itself was read; its listing was not trusted
        assert line == f"reading the data its study prepared (data snapshot {stem})"
    else:
        assert stem in line and "lists and checks its data itself" in line and str(where) in line


def test_nothing_recorded_no_snapshot_and_no_pins_outside_a_trial(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    with snapshot.recording() as pins:
        pass
    assert snapshot.save(pins) is None
    root = _folder(tmp_path / "train", identities=2, images=2)
    listed = sources.read_train_data(str(root), check=False)  # not recording: nothing written
    image_cache.image_files(list(listed.paths or ()), SIZE)
    assert not snapshot.files() and not snapshot.active()


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    train_data: str = "synthfaces"


def test_the_registry_pins_what_prepare_found_for_the_trial(tmp_path, monkeypatch):
    """``prepare`` returns the snapshot file with its provenance; the trial's entry point
    takes it out of the config (which then validates) and reads through it."""
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "train")
    seen: dict = {}

    def prepare(cfg, out_dir):
        listed = sources.read_train_data(cfg.train_data, check=False)
        image_cache.image_files(list(listed.paths or ()), SIZE, verify=True)
        return {"data_fingerprint": listed.fingerprint}

    def run(cfg, report, *, restore_from=None, out_dir=None):
        _no_listing_or_stat(monkeypatch)
        listed = sources.read_train_data(cfg.train_data, check=False)
        seen["rows"] = image_cache.image_files(list(listed.paths or ()), SIZE).images.shape[0]

    def run_in_tune(fn, cfg, best_by=None):
        seen["config"], seen["pinned"] = cfg, snapshot.active()
        fn(cfg, None)

    import trainables.ray_glue

    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))  # registered for this test only
    monkeypatch.setattr(_registry, "trainable_module", lambda _m: SimpleNamespace(prepare=prepare, run=run))
    monkeypatch.setattr(trainables.ray_glue, "run_in_tune", run_in_tune)
    fn = _registry.register_module("snapshot_test", config_cls=_Config, module="unused", description="test")
    entry = _registry.get_trainable("snapshot_test")
    provenance = entry.prepare(_Config(train_data=str(root)), tmp_path)
    name = provenance[DATA_SNAPSHOT]  # the snapshot file, where the driver's cache folder is
    assert Path(name).is_file() and Path(name).parent == image_cache.cache_root().resolve()
    fn({"train_data": str(root), DATA_SNAPSHOT_KEY: name})
    assert seen == {"config": _Config(train_data=str(root)), "pinned": True, "rows": 9}


def test_each_trial_gets_its_preparations_snapshot_fresh_or_resumed():
    """From this run's preparation; resumed (no preparation), from its row of results.csv."""
    from orchestrator.execute import _by_plan_index, trial_snapshots
    from orchestrator.plan import TrialPlan

    got = []
    configs = [{"x": 1}, {"x": 2}, {"x": 3}]
    fresh = _by_plan_index(got.append, configs, [None, "val/a:max", None], ["s0", "s1", None])
    for i in range(3):
        fresh({"_trial": i})
    assert got == [
        {"x": 1, DATA_SNAPSHOT_KEY: "s0"},
        {"x": 2, "_best_epoch_by": "val/a:max", DATA_SNAPSHOT_KEY: "s1"},
        {"x": 3},
    ]
    plans = [TrialPlan(i, "v", 0, c) for i, c in enumerate(configs)]
    prepared = {0: {DATA_SNAPSHOT: "p0", "data_fingerprint": "f"}, 1: {"data_fingerprint": "f"}}
    assert trial_snapshots(plans, prepared, {}) == ["p0", None, None]
    rows = {0: {DATA_SNAPSHOT: "r0"}, 1: {DATA_SNAPSHOT: math.nan}, 2: {}}  # as pandas reads results.csv
    assert trial_snapshots(plans, {}, rows) == ["r0", None, None]

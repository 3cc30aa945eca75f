"""The metric-learning trainables (triplet, pair_contrastive, infonce) read their images from
the shared decoded-image cache: decoded once by the study's preparation, which is also their
check of unreadable images (no second pass), one cache for a list whatever its split, and a
trial decodes no image file."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.data.sources import DataError
from trainables.infonce import InfoNCEConfig
from trainables.pair_contrastive import PairContrastiveConfig
from trainables.triplet import TripletConfig

from .test_metric_trainables import TINY


@pytest.fixture()
def own_cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty decoded-image cache for this test alone."""
    from trainables.data import image_cache

    root = tmp_path / "images"
    monkeypatch.setattr(image_cache, "cache_root", lambda: root)
    return root


@pytest.mark.parametrize(
    "name, config, caches, extra, other_split",
    [
        # the training listing (its validation identities included) and the test persons
        ("triplet", TripletConfig, 2, {}, {"val_fraction": 0.3}),
        ("infonce", InfoNCEConfig, 2, {"gallery_per_identity": 2}, {"val_fraction": 0.3}),
        # synthfaces' two pairs files: the training pairs and the test pairs
        ("pair_contrastive", PairContrastiveConfig, 2, {}, {"val_fraction": 0.25}),
    ],
)
def test_the_preparation_decodes_and_a_trial_of_any_split_decodes_nothing(
    standin, tmp_path, monkeypatch, own_cache, name, config, caches, extra, other_split
):
    from trainables.data import image_cache, json_lists, sources

    def not_here(*args, **kwargs):
        raise AssertionError("decoded outside the shared cache")

    # the separate check of unreadable images (its own pass over every file) is not used
    monkeypatch.setattr(sources, "find_unreadable", not_here)
    monkeypatch.setattr(json_lists, "find_unreadable", not_here)
    loop = importlib.import_module(f"trainables.{name}.loop")
    out = tmp_path / "run"
    out.mkdir()
    decoded = []
    real = image_cache.checked_decode
    monkeypatch.setattr(image_cache, "checked_decode", lambda item, size: decoded.append(item) or real(item, size))
    loop.prepare(config(**TINY, **extra), out)
    built = [c["directory"] for c in image_cache.list_caches()]
    assert len(built) == caches and all(c["kind"] == "files" for c in image_cache.list_caches())
    assert len(decoded) == len(set(decoded)) == sum(c["rows"] for c in image_cache.list_caches())  # each once

    monkeypatch.setattr(image_cache, "checked_decode", not_here)  # what a cache build decodes with
    monkeypatch.setattr(sources.ImageFiles, "__getitem__", not_here)  # file-by-file reading
    reports, opened = [], []
    real_files = image_cache.image_files
    monkeypatch.setattr(
        image_cache, "image_files", lambda paths, size, **kw: opened.append(1) or real_files(paths, size, **kw)
    )
    torch.set_num_threads(1)
    loop.run(config(lr=3e-4, **TINY, **extra, **other_split), lambda m, c: reports.append(m))
    assert len(opened) == caches  # each cache opened (its files stat'ed) once by the trial
    assert len(reports) == 1 and np.isfinite(reports[0]["train/loss"])
    assert [c["directory"] for c in image_cache.list_caches()] == built  # the same caches, whatever the split


def _img(path: Path, value: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)
    return str(path)


def test_rows_are_each_files_pixels_and_a_file_changed_since_listing_is_refused(tmp_path, own_cache):
    from trainables.data import image_cache
    from trainables.metric.common import image_files, shared_rows

    paths = [_img(tmp_path / f"{j}.png", 40 * j + 10) for j in range(3)]
    rows_of = shared_rows(paths, 16)
    asked = image_files(tuple(reversed(paths)), "fp")
    images = rows_of(asked).images
    # a flat 8 px image resized to 16 px is flat: row k is the k-th file asked for, in that order
    for k, j in enumerate(reversed(range(3))):
        assert torch.equal(images[[k]][0], torch.full((3, 16, 16), 40 * j + 10, dtype=torch.uint8))
    assert len(image_cache.list_caches()) == 1

    Path(paths[1]).write_bytes(b"not an image")  # after the list was read and checked
    rows_of = shared_rows(paths, 16)
    kept = rows_of(image_files((paths[0], paths[2]), "fp")).images  # the others are still read
    assert torch.equal(kept[[1]][0], torch.full((3, 16, 16), 90, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"1\.png: .*it has changed since"):
        rows_of(image_files(tuple(paths), "fp"))

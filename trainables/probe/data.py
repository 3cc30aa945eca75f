"""The images a probe classifies: classes, a stratified train / validation / test split.

The split depends on ``data_seed`` and, with ``resplit`` (the default), on the trial's
seed, never on anything else: every variant of a study at a given seed is scored on the
same test images, so trials can be compared pairwise by seed. The embedding cache is keyed
by the whole image list, not by the split, so every split reads the same entry.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch

from trainables.data.sources import DataError, TrainSet
from trainables.probe.config import ProbeConfig

TRAIN, VAL, TEST = 0, 1, 2


@dataclass(frozen=True)
class ClassSet:
    """Images with class labels and a split (``TRAIN``/``VAL``/``TEST`` per image)."""

    names: tuple[str, ...]
    labels: np.ndarray
    split: np.ndarray
    images: TrainSet
    fingerprint: str
    source: str

    def rows(self, part: int) -> np.ndarray:
        return np.flatnonzero(self.split == part)


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def split_seed(cfg: ProbeConfig) -> tuple[int, ...]:
    """The split's seed: the data seed, and the trial's seed when ``resplit``."""
    return (cfg.data_seed, cfg.seed) if cfg.resplit else (cfg.data_seed,)


def stratified_split(
    labels: np.ndarray,
    *,
    test_fraction: float,
    val_fraction: float,
    seed: int | tuple[int, ...],
    with_test: bool = True,
) -> np.ndarray:
    """Per class, in a random order fixed by ``seed``: ``round(test_fraction * n)`` test images
    (at least one when the class has two or more), then ``round(val_fraction * rest)``
    validation images, the rest training images; a class always keeps one training image."""
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 29])
    split = np.full(len(labels), TRAIN, dtype=np.int64)
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        rows = rows[rng.permutation(len(rows))]
        n = len(rows)
        n_test = min(max(round(test_fraction * n), 1), n - 1) if with_test and n >= 2 else 0
        split[rows[:n_test]] = TEST
        rest = rows[n_test:]
        n_val = min(round(val_fraction * len(rest)), len(rest) - 1) if val_fraction > 0 else 0
        split[rest[:n_val]] = VAL
    return split


def _synthfaces(cfg: ProbeConfig) -> ClassSet:
    from trainables.data import synthfaces

    faces = synthfaces.load(cfg.synthfaces()).group("eval")
    labels = (faces.identity - faces.identity.min()).astype(np.int64)
    names = tuple(f"eval{k:04d}" for k in range(int(labels.max()) + 1))
    images = TrainSet(
        identity=labels,
        domain=faces.domain,
        domains=tuple(cfg.synth_domains),
        fingerprint="",
        images=torch.as_tensor(faces.images),
        identity_names=names,
    )
    fp = _digest("synthfaces-eval", np.ascontiguousarray(faces.images).tobytes(), labels.tobytes())
    split = stratified_split(
        labels, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction, seed=split_seed(cfg)
    )
    return ClassSet(names, labels, split, images, fp, "synthfaces (synthetic)")


def _read(reference: str) -> tuple[list[str], list[str], tuple[tuple[str, str], ...]]:
    """(paths, class names, skipped unreadable images) of an image folder or a person file."""
    from trainables.data.json_lists import read_people  # not via metric.common, which imports peft

    people = read_people(reference)
    return list(people.paths), [people.names[i] for i in people.identity], tuple(people.skipped)


def _files(cfg: ProbeConfig) -> ClassSet:
    paths, classes, skipped = _read(cfg.data)
    if cfg.test_data is not None:
        test_paths, test_classes, test_skipped = _read(cfg.test_data)
        skipped += test_skipped
        missing = sorted(set(test_classes) - set(classes))
        if missing:
            raise DataError(
                f"class {missing[0]!r} has no samples in the training split ({cfg.data}) but has test "
                f"images in {cfg.test_data}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
    else:
        test_paths, test_classes = [], []
    names = tuple(sorted(set(classes)))
    index = {n: i for i, n in enumerate(names)}
    all_paths = paths + test_paths
    labels = np.asarray([index[c] for c in classes + test_classes], dtype=np.int64)
    split = stratified_split(
        labels[: len(paths)],
        test_fraction=cfg.test_fraction,
        val_fraction=cfg.val_fraction,
        seed=split_seed(cfg),
        with_test=cfg.test_data is None,
    )
    split = np.concatenate([split, np.full(len(test_paths), TEST, dtype=np.int64)])
    # paths, classes and each file's size and modification time: an image replaced in place
    # changes the fingerprint, so the embedding cache never serves the old file's embedding
    stats = [os.stat(p) for p in all_paths]
    fp = _digest(
        "files",
        *(f"{p}\t{c}\t{st.st_size}\t{st.st_mtime_ns}" for p, c, st in zip(all_paths, classes + test_classes, stats)),
    )
    images = TrainSet(
        identity=labels,
        domain=np.zeros(len(labels), dtype=np.int64),
        domains=("default",),
        fingerprint=fp,
        paths=tuple(all_paths),
        identity_names=names,
        skipped=skipped,
    )
    source = cfg.data + (f" + {cfg.test_data}" if cfg.test_data else "")
    return ClassSet(names, labels, split, images, fp, source)


def load_classes(cfg: ProbeConfig) -> ClassSet:
    """The classes, images and split of ``cfg``; refuses a split where a class has no
    training image, where nothing is left to test, or where no validation image is left."""
    cs = _synthfaces(cfg) if cfg.data == "synthfaces" else _files(cfg)
    if len(cs.names) < 2:
        raise DataError(f"data {cs.source}: a probe needs at least two classes, found {len(cs.names)}")
    have = np.bincount(cs.labels[cs.split == TRAIN], minlength=len(cs.names))
    empty = [cs.names[k] for k in np.flatnonzero(have == 0)]
    if empty:
        raise DataError(f"class {empty[0]!r} has no samples in the training split of {cs.source}")
    if not (cs.split == TEST).any():
        raise DataError(f"data {cs.source}: no class has two images, so nothing is left to test")
    if cfg.val_fraction > 0 and not (cs.split == VAL).any():
        # else the trial would report no val/ metric while declaring them: a search ranking on
        # val/probe/acc would find it missing from every trial
        raise DataError(
            f"data {cs.source}: val_fraction={cfg.val_fraction} of each class's training images rounds to no "
            "validation image at all; raise it, give more images per class, or set val_fraction: 0"
        )
    return cs

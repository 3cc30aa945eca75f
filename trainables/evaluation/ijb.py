"""IJB-B and IJB-C from their standard metadata files: template verification (1:1) and, where
the 1:N lists are present, two-gallery open-set identification (``protocols``' rules).

The layout is the one insightface distributes (``IJB_release/IJBC``; IJB-B alike, prefix
``ijbb``), which ``ijb_11.py`` and ``ijb_1n.py`` read:

* ``<root>/loose_crop/<image>`` (or ``<root>/images/<image>``): the face crops;
* ``<root>/meta/<prefix>_face_tid_mid.txt``: ``<image> <template id> <media id>``, one image a line;
* ``<root>/meta/<prefix>_template_pair_label.txt``: ``<template> <template> <label>`` (1 same subject);
* optional, for 1:N: ``<root>/meta/<prefix>_1N_gallery_G1.csv`` and ``_G2.csv`` (IJB-B:
  ``_S1``, ``_S2``) and ``<prefix>_1N_probe_mixed.csv``, CSVs with a header whose first two
  columns are ``TEMPLATE_ID`` and ``SUBJECT_ID`` (one row per image of a template; a template's
  images come from ``face_tid_mid``, as insightface's 1:N reads them).

The crops are decoded once per study into the shared decoded-image cache. The evaluation
streams them: each chunk's embeddings are added into its media's sums and dropped, so what it
holds is one row per media, not one per image (IJB-C: 469,375 images of 23,124 templates).
Template pairs are scored in chunks too (IJB-C: 15,658,489 pairs).

A pair list of millions is not kept in ``evaluation.npz`` (``MAX_RECORDED_PAIRS``): the ROC of
an IJB set is not drawn by the report; its numbers are in ``results.csv``.

Written here because no well-kept library reads these files; insightface's scripts do, outside
any study, and merge the two galleries (its issue #1386), which this module does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.evaluation.benchmarks import BenchmarkError

IMAGE_DIRS = ("loose_crop", "images")
GALLERIES = (("G1", "G2"), ("S1", "S2"))
#: The most template pairs whose scores an evaluation keeps in ``evaluation.npz``.
MAX_RECORDED_PAIRS = 2_000_000
#: Images embedded at a time, and template pairs scored at a time.
CHUNK_IMAGES, CHUNK_PAIRS = 4096, 1 << 16


class IjbError(BenchmarkError):
    """An IJB folder whose metadata is missing or malformed."""


@dataclass(frozen=True)
class IjbFiles:
    """What the metadata says: each image's path, template and media (``group``: the index of
    its (template, media) pair, ``group_template``: each group's template); the 1:1 template
    pairs; for 1:N, each gallery's and the probes' (templates, subjects), or None."""

    prefix: str
    images: list[Path]
    template: np.ndarray
    media: np.ndarray
    first: np.ndarray
    second: np.ndarray
    label: np.ndarray
    galleries: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    probes: tuple[np.ndarray, np.ndarray] | None = None


def _meta(root: Path) -> tuple[Path, str]:
    meta = Path(root).expanduser() / "meta"
    found = sorted(meta.glob("*_face_tid_mid.txt")) if meta.is_dir() else []
    if len(found) != 1:
        raise IjbError(
            f"IJB folder {root}: expected one meta/<ijbb|ijbc>_face_tid_mid.txt, found "
            f"{', '.join(p.name for p in found) or 'none'}"
        )
    return meta, found[0].name[: -len("_face_tid_mid.txt")]


def _table(path: Path, columns: int, *, header: bool = False) -> list[np.ndarray]:
    import pandas as pd

    try:
        df = pd.read_csv(path, sep="," if header else r"\s+", header=0 if header else None, dtype=str)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise IjbError(f"{path}: not readable ({str(err).splitlines()[0]})") from None
    if df.shape[1] < columns or df.isna().to_numpy()[:, :columns].any() or df.empty:
        raise IjbError(f"{path}: expected {columns} columns on every line")
    return [df.iloc[:, k].to_numpy() for k in range(columns)]


def _ints(values: np.ndarray, path: Path, what: str) -> np.ndarray:
    try:
        return values.astype(np.int64)
    except ValueError:
        bad = next(v for v in values if not str(v).lstrip("-").isdigit())
        raise IjbError(f"{path}: {what} {bad!r} is not an integer") from None


def open_set_lists(root: str | Path) -> tuple[Path, Path, Path] | None:
    """The two gallery lists and the probe list of the 1:N protocol, where the folder has them."""
    meta, prefix = _meta(Path(root))
    probe = meta / f"{prefix}_1N_probe_mixed.csv"
    for g1, g2 in GALLERIES:
        a, b = meta / f"{prefix}_1N_gallery_{g1}.csv", meta / f"{prefix}_1N_gallery_{g2}.csv"
        if a.is_file() and b.is_file() and probe.is_file():
            return a, b, probe
    return None


def read_ijb(root: str | Path) -> IjbFiles:
    """The metadata of an IJB folder (see the module's note); refused in one line when a file is
    missing or malformed, or a pair or list names a template without images."""
    root = Path(root).expanduser()
    meta, prefix = _meta(root)
    images_dir = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if images_dir is None:
        raise IjbError(f"IJB folder {root}: no image folder ({' or '.join(IMAGE_DIRS)})")
    tid_mid = meta / f"{prefix}_face_tid_mid.txt"
    names, template, media = _table(tid_mid, 3)
    template, media = _ints(template, tid_mid, "template id"), _ints(media, tid_mid, "media id")
    pair_file = meta / f"{prefix}_template_pair_label.txt"
    if not pair_file.is_file():
        raise IjbError(f"IJB folder {root}: no meta/{pair_file.name}")
    first, second, label = (_ints(c, pair_file, "value") for c in _table(pair_file, 3))
    if not np.isin(label, (0, 1)).all():
        raise IjbError(f"{pair_file}: a label is not 0 or 1")
    known = np.unique(template)
    for which in (first, second):
        missing = which[~np.isin(which, known)]
        if len(missing):
            raise IjbError(f"{pair_file}: template {missing[0]} has no image in {tid_mid.name}")
    galleries = probes = None
    lists = open_set_lists(root)
    if lists is not None:
        read = []
        for path in lists:
            t, s = (_ints(c, path, "id") for c in _table(path, 2, header=True))
            t, first_row = np.unique(t, return_index=True)  # a row per image: one per template
            missing = t[~np.isin(t, known)]
            if len(missing):
                raise IjbError(f"{path}: template {missing[0]} has no image in {tid_mid.name}")
            read.append((t, s[first_row]))
        galleries, probes = (read[0], read[1]), read[2]
    paths = [images_dir / str(n) for n in names]
    return IjbFiles(prefix, paths, template, media, first, second, label, galleries, probes)


@dataclass(frozen=True)
class IjbBenchmark:
    """An IJB folder's images (rows of the decoded-image cache, in ``face_tid_mid`` order) and
    its metadata."""

    name: str
    images: torch.Tensor
    files: IjbFiles

    def __len__(self) -> int:
        return len(self.files.label)


def load_ijb(name: str, root: str | Path, *, size: int, verify: bool = False, log=None) -> IjbBenchmark:
    """The benchmark, its crops decoded at ``size`` into the shared cache (a memory map)."""
    from trainables.data import image_cache

    files = read_ijb(root)
    cache = image_cache.image_files([str(p) for p in files.images], size, verify=verify, log=log)
    if cache.failed:  # a benchmark is not thinned out like training data: one bad image refuses it
        row, why = cache.failed[0]
        raise IjbError(f"benchmark {name} ({root}): cannot read image {files.images[row]}: {why}")
    return IjbBenchmark(name, torch.from_numpy(cache.images), files)


def streamed_template_features(embed, bench: IjbBenchmark) -> tuple[np.ndarray, np.ndarray]:
    """(template ids, their L2-normalised features) as ``protocols.template_features`` defines
    them (each media's images averaged, a template's media summed), the images embedded
    ``CHUNK_IMAGES`` at a time by ``embed`` (uint8 images -> embeddings) and added into their
    media's sums: no more than a chunk's embeddings at once."""
    f = bench.files
    pairs = np.stack([f.template, f.media], axis=1)
    groups, group = np.unique(pairs, axis=0, return_inverse=True)
    group = torch.as_tensor(group.ravel(), dtype=torch.long)
    sums: torch.Tensor | None = None
    for start in range(0, len(group), CHUNK_IMAGES):
        e = embed(bench.images[start : start + CHUNK_IMAGES]).to(torch.float64)
        if sums is None:
            sums = torch.zeros(len(groups), e.shape[1], dtype=torch.float64)
        sums.index_add_(0, group[start : start + CHUNK_IMAGES], e)
    assert sums is not None
    counts = torch.bincount(group, minlength=len(groups)).to(torch.float64)
    means = sums / counts[:, None]
    ids, owner = np.unique(groups[:, 0], return_inverse=True)
    feats = torch.zeros(len(ids), means.shape[1], dtype=torch.float64)
    feats.index_add_(0, torch.as_tensor(owner.ravel(), dtype=torch.long), means)
    return ids, torch.nn.functional.normalize(feats, dim=1).numpy()


def chunked_scores(ids: np.ndarray, feats: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``protocols.template_scores`` over ``CHUNK_PAIRS`` pairs at a time (float32 scores)."""
    from trainables.evaluation.protocols import template_scores

    out = np.empty(len(first), dtype=np.float32)
    for start in range(0, len(first), CHUNK_PAIRS):
        end = start + CHUNK_PAIRS
        out[start:end] = template_scores(ids, feats, first[start:end], second[start:end])
    return out


def evaluate_ijb(embed, bench: IjbBenchmark, prefix: str) -> dict[str, float]:
    """``<prefix>/<name>/templates/...`` (TAR at FAR 1e-1 ... 1e-6 from enough impostor pairs,
    AUC) and, with the 1:N lists, ``<prefix>/<name>/open_set/{g1,g2,mean}/...``."""
    from trainables.evaluation.artifacts import record_pairs
    from trainables.evaluation.keys import OPEN_SET, TEMPLATES
    from trainables.evaluation.protocols import open_set_identification, template_verification

    f = bench.files
    ids, feats = streamed_template_features(embed, bench)
    scores = chunked_scores(ids, feats, f.first, f.second)
    name = f"{prefix}/{bench.name}"
    out = {f"{name}/{TEMPLATES}/{k}": v for k, v in template_verification(scores, f.label).items()}
    if len(scores) <= MAX_RECORDED_PAIRS:
        record_pairs(f"{name}/{TEMPLATES}", scores, f.label)
    if f.galleries is not None and f.probes is not None:
        row = lambda t: feats[np.searchsorted(ids, t)]  # noqa: E731  (every listed template has images: read_ijb)
        (t1, s1), (t2, s2) = f.galleries
        tp, sp = f.probes
        try:
            open_set = open_set_identification((row(t1), s1), (row(t2), s2), (row(tp), sp))
        except ValueError as err:
            raise IjbError(f"benchmark {bench.name}: its 1:N lists do not fit the protocol: {err}") from None
        out.update({f"{name}/{OPEN_SET}/{k}": v for k, v in open_set.items()})
    return out


__all__ = [
    "IjbBenchmark",
    "IjbError",
    "IjbFiles",
    "evaluate_ijb",
    "load_ijb",
    "open_set_lists",
    "read_ijb",
    "streamed_template_features",
]

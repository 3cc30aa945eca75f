"""Closed-set identification with distractors in the gallery, TinyFace's protocol, from its folders.

TinyFace's ``Testing_Set`` (the layout its release and the evaluation code researchers use read):

* ``Probe/<label>_<k>.jpg``: the probe images, ``<label>`` the identity (the file name up to its
  first ``_``);
* ``Gallery_Match/<label>_<k>.jpg``: gallery images of the probes' identities;
* ``Gallery_Distractor/...`` (optional, any depth): gallery images of people no probe is
  (153,428 in TinyFace).

Each probe is ranked against every gallery image by cosine similarity, as TinyFace's evaluation
ranks them: its rank is one plus the number of gallery images of anyone else (another identity's,
or a distractor) that score at least as high as its best-scoring image of its own identity (a tie
counts against the probe). ``rank1``, ``rank5``, ``rank10`` are the shares of probes at or
below that rank; the report draws the CMC from the ranks kept in ``evaluation.npz``.

The images are decoded once per study into the shared cache; the gallery is embedded a chunk at a
time and only each probe's running count of images ahead of it is kept, so the distractors never
sit in memory as embeddings.

Written here because no well-kept library reads TinyFace's folders or ranks a probe against a
gallery streamed in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.evaluation.benchmarks import BenchmarkError
from trainables.evaluation.keys import CMC_RANKS, IDENTIFICATION_KEYS

PROBE, MATCH, DISTRACTOR = "Probe", "Gallery_Match", "Gallery_Distractor"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Gallery images embedded and scored at a time.
CHUNK_IMAGES = 4096


class IdentificationError(BenchmarkError):
    """An identification folder that is missing a part or names no identity."""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _labels(paths: list[Path], folder: Path) -> np.ndarray:
    labels = []
    for p in paths:
        head, sep, _ = p.name.partition("_")
        if not sep or not head:
            raise IdentificationError(f"{folder}: {p.name} names no identity (expected <label>_<k>.jpg)")
        labels.append(head)
    return np.asarray(labels)


@dataclass(frozen=True)
class IdentificationFiles:
    """The probe and gallery images with their identities (strings), and the distractors."""

    probes: list[Path]
    probe_ids: np.ndarray
    gallery: list[Path]
    gallery_ids: np.ndarray
    distractors: list[Path]


def read_identification(root: str | Path) -> IdentificationFiles:
    """The images of a TinyFace-style folder; refused in one line when a part is missing, a file
    names no identity, or a probe's identity has no gallery image."""
    root = Path(root).expanduser()
    for part in (PROBE, MATCH):
        if not (root / part).is_dir():
            raise IdentificationError(f"identification folder {root}: no {part}/ (expected {PROBE}/, {MATCH}/)")
    probes, gallery = _images(root / PROBE), _images(root / MATCH)
    if not probes or not gallery:
        raise IdentificationError(f"identification folder {root}: {PROBE}/ and {MATCH}/ must each hold images")
    probe_ids, gallery_ids = _labels(probes, root / PROBE), _labels(gallery, root / MATCH)
    missing = sorted(set(probe_ids.tolist()) - set(gallery_ids.tolist()))
    if missing:
        raise IdentificationError(f"identification folder {root}: probe identity {missing[0]} has no image in {MATCH}/")
    distractors = _images(root / DISTRACTOR) if (root / DISTRACTOR).is_dir() else []
    return IdentificationFiles(probes, probe_ids, gallery, gallery_ids, distractors)


@dataclass(frozen=True)
class IdentificationBenchmark:
    """Its images as rows of the decoded-image cache: probes first, then the gallery's match
    images, then the distractors."""

    name: str
    images: torch.Tensor
    files: IdentificationFiles

    @property
    def counts(self) -> tuple[int, int, int]:
        f = self.files
        return len(f.probes), len(f.gallery), len(f.distractors)


def load_identification(name: str, root: str | Path, *, size: int, verify: bool = False, log=None):
    """The benchmark, its images decoded at ``size`` into the shared cache (a memory map)."""
    from trainables.data import image_cache

    files = read_identification(root)
    paths = [*files.probes, *files.gallery, *files.distractors]
    cache = image_cache.image_files([str(p) for p in paths], size, verify=verify, log=log)
    if cache.failed:  # a benchmark is not thinned out like training data: one bad image refuses it
        row, why = cache.failed[0]
        raise IdentificationError(f"benchmark {name} ({root}): cannot read image {paths[row]}: {why}")
    return IdentificationBenchmark(name, torch.from_numpy(cache.images), files)


def streamed_ranks(embed, bench: IdentificationBenchmark) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per probe: its rank (see the module's note), its best score over its own identity's
    gallery images, and the highest score of any other gallery image; the gallery embedded
    ``CHUNK_IMAGES`` at a time by ``embed`` (uint8 images -> L2-normalised embeddings)."""
    n_probe, n_match, n_distract = bench.counts
    f = bench.files
    probes = torch.cat(
        [embed(bench.images[s : min(s + CHUNK_IMAGES, n_probe)]) for s in range(0, n_probe, CHUNK_IMAGES)]
    )
    probes = probes.to(torch.float64)
    _, gallery_code = np.unique(np.concatenate([f.probe_ids, f.gallery_ids]), return_inverse=True)
    probe_code = torch.as_tensor(gallery_code[:n_probe])
    match_code = torch.as_tensor(gallery_code[n_probe:])
    mate = torch.full((n_probe,), -torch.inf, dtype=torch.float64)
    match_scores = []  # the match gallery's scores are kept (probes x its images: small), the distractors' are not
    for s in range(n_probe, n_probe + n_match, CHUNK_IMAGES):
        e = embed(bench.images[s : min(s + CHUNK_IMAGES, n_probe + n_match)]).to(torch.float64)
        scores = probes @ e.T
        own = probe_code[:, None] == match_code[s - n_probe : s - n_probe + len(e)][None, :]
        mate = torch.maximum(mate, torch.where(own, scores, -torch.inf).max(dim=1).values)
        match_scores.append(torch.where(own, -torch.inf, scores))
    others = torch.cat(match_scores, dim=1)
    ahead = (others >= mate[:, None]).sum(dim=1)
    nonmate = others.max(dim=1).values
    end = n_probe + n_match + n_distract
    for s in range(n_probe + n_match, end, CHUNK_IMAGES):
        e = embed(bench.images[s : min(s + CHUNK_IMAGES, end)]).to(torch.float64)
        scores = probes @ e.T
        ahead += (scores >= mate[:, None]).sum(dim=1)
        nonmate = torch.maximum(nonmate, scores.max(dim=1).values)
    return (ahead + 1).numpy(), mate.numpy(), nonmate.numpy()


def evaluate_identification(embed, bench: IdentificationBenchmark, prefix: str) -> dict[str, float]:
    """``<prefix>/<name>/rank1`` ... (see ``IDENTIFICATION_KEYS``); the ranks kept for the CMC."""
    from trainables.evaluation.artifacts import record_ranks

    rank, mate, nonmate = streamed_ranks(embed, bench)
    name = f"{prefix}/{bench.name}"
    _, identity = np.unique(bench.files.probe_ids, return_inverse=True)
    record_ranks(name, rank, mate, nonmate, identity)
    n_probe, n_match, n_distract = bench.counts
    out = {f"{name}/rank{k}": float(np.mean(rank <= k)) for k in CMC_RANKS}
    out.update({f"{name}/probes": float(n_probe), f"{name}/gallery_images": float(n_match)})
    out[f"{name}/distractors"] = float(n_distract)
    return out


__all__ = [
    "IDENTIFICATION_KEYS",
    "IdentificationBenchmark",
    "IdentificationError",
    "evaluate_identification",
    "load_identification",
    "read_identification",
    "streamed_ranks",
]

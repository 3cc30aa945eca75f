"""synthfaces: the embedded, procedurally generated face data set (synthetic).

Identities fall into three disjoint groups:

* ``pretrain``: seen only by the stand-in backbone, in the source domain;
* ``train``: the adaptation set, every identity in every domain;
* ``eval``: held-out identities, never trained on, every identity in every domain.

Some identities come as twin pairs (near-duplicate parameters); both twins always sit in
the same group, so a twin never leaks an evaluation identity into training. The data
set is deterministic in its settings, cached on disk as ``.npz`` keyed by them, and
guarded by a file lock so that concurrent trials build it once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from reports.rundir.names import SAMPLES_FILE  # noqa: F401  (the run directory's name; trainables use synthfaces.SAMPLES_FILE)
from trainables.data._domains import DOMAINS
from trainables.data._render import N_IDENTITY_PARAMS, N_NUISANCE_PARAMS, render

#: Bump when the generator changes, so that caches of the old output are not reused.
GENERATOR_VERSION = 2
SPLITS = ("pretrain", "train", "eval")
#: Name of the sample image a run directory gets (the report shows it).


@dataclass(frozen=True)
class SynthFacesSpec:
    """Settings of one synthfaces instance (all of them go into the cache key)."""

    resolution: int = 32
    """Image side in pixels; a multiple of 8 (the low-quality domain down-samples by 4)."""
    seed: int = 0
    """Seed of identities, images and domain noise."""
    pretrain_identities: int = 240
    train_identities: int = 120
    eval_identities: int = 60
    twin_fraction: float = 0.2
    """Fraction of each group's identities that belong to a twin pair."""
    twin_spread: float = 0.06
    """Standard deviation of the parameter difference between twins (parameters lie in [0, 1])."""
    pretrain_images: int = 10
    """Images per pre-training identity (source domain only)."""
    train_images: int = 4
    """Images per training identity and domain."""
    eval_images: int = 5
    """Images per held-out identity and domain."""
    domains: tuple[str, ...] = ("visible", "thermal", "low_quality", "harsh_light", "occluded")
    """Domain names; the first is the source domain of pre-training and of galleries."""

    def __post_init__(self) -> None:
        if self.resolution < 16 or self.resolution % 8:
            raise ValueError(f"synthfaces resolution must be a multiple of 8 and >= 16, got {self.resolution}")
        unknown = [d for d in self.domains if d not in DOMAINS]
        if unknown or not self.domains:
            raise ValueError(f"unknown synthfaces domain(s) {unknown}; known: {sorted(DOMAINS)}")
        if min(self.pretrain_identities, self.train_identities, self.eval_identities) < 2:
            raise ValueError("synthfaces needs at least 2 identities in every group")
        if min(self.train_images, self.eval_images, self.pretrain_images) < 2:
            raise ValueError("synthfaces needs at least 2 images per identity")
        object.__setattr__(self, "domains", tuple(self.domains))

    def key(self) -> str:
        payload = json.dumps({"v": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FaceSet:
    """Images with identity, domain, group and twin labels.

    ``images`` is uint8 (N, 3, R, R); ``identity``, ``domain`` and ``split`` are int64 (N,)
    (``split`` indexes ``SPLITS``); ``twin_of`` maps an identity id to its twin's id or -1.
    """

    images: np.ndarray
    identity: np.ndarray
    domain: np.ndarray
    split: np.ndarray
    twin_of: np.ndarray
    domains: tuple[str, ...]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.identity)

    def select(self, mask: np.ndarray) -> "FaceSet":
        return dataclasses.replace(
            self,
            images=self.images[mask],
            identity=self.identity[mask],
            domain=self.domain[mask],
            split=self.split[mask],
        )

    def group(self, name: str) -> "FaceSet":
        return self.select(self.split == SPLITS.index(name))


def _identity_params(
    n: int, n_twin_pairs: int, spread: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    params = rng.uniform(0.0, 1.0, size=(n, N_IDENTITY_PARAMS))
    twin_local = np.full(n, -1)
    for k in range(n_twin_pairs):
        a, b = 2 * k, 2 * k + 1
        params[b] = np.clip(params[a] + rng.normal(0.0, spread, size=N_IDENTITY_PARAMS), 0.0, 1.0)
        twin_local[a], twin_local[b] = b, a
    return params, twin_local


def generate(spec: SynthFacesSpec) -> FaceSet:
    """Generate the data set from its settings (deterministic; ~0.5 s at 32 px).

    Each group draws from its own random stream (seeded by ``(seed, group)``), so the
    pre-training and held-out images do not depend on how many adaptation identities or
    images are asked for: studies that vary the adaptation set are scored on the same pairs
    and start from the same stand-in backbone.
    """
    counts = {"pretrain": spec.pretrain_identities, "train": spec.train_identities, "eval": spec.eval_identities}
    per_id = {"pretrain": spec.pretrain_images, "train": spec.train_images, "eval": spec.eval_images}
    parts, twin_of, offset = [], [], 0
    for split_index, name in enumerate(SPLITS):
        rng = np.random.default_rng([spec.seed, split_index])
        n = counts[name]
        params, twins = _identity_params(n, int(round(n * spec.twin_fraction / 2)), spec.twin_spread, rng)
        twin_of.append(np.where(twins >= 0, twins + offset, -1))
        domains = [0] if name == "pretrain" else range(len(spec.domains))
        rows = np.asarray(
            [(ident, d) for ident in range(n) for d in domains for _ in range(per_id[name])], dtype=np.int64
        )
        nuisance = rng.uniform(0.0, 1.0, size=(len(rows), N_NUISANCE_PARAMS))
        rgb, heat = render(params[rows[:, 0]], nuisance, spec.resolution)
        out = np.empty_like(rgb)
        for d in domains:
            idx = np.flatnonzero(rows[:, 1] == d)
            out[idx] = DOMAINS[spec.domains[d]](rgb[idx], heat[idx], rng)
        images = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
        split = np.full(len(rows), split_index, dtype=np.int64)
        parts.append((images, rows[:, 0] + offset, rows[:, 1], split))
        offset += n
    images, identity, domain, split = (np.concatenate(a) for a in zip(*parts))
    labels = np.stack([identity, domain, split], axis=1)
    twin_arr = np.concatenate(twin_of).astype(np.int64)
    return FaceSet(images, identity, domain, split, twin_arr, spec.domains, _fingerprint(images, labels, twin_arr))


def _fingerprint(images: np.ndarray, labels: np.ndarray, twin_of: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (images, labels, twin_of):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    """Where generated data and built backbones are cached (``ORCHESTRATOR_CACHE`` overrides)."""
    return Path(os.environ.get("ORCHESTRATOR_CACHE", Path.home() / ".cache" / "orchestrator"))


def load(spec: SynthFacesSpec, cache_dir: Path | None = None) -> FaceSet:
    """The data set for ``spec``: from the cache, or generated once under a file lock."""
    cache = Path(cache_dir or default_cache_dir()) / "synthfaces"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"synthfaces-{spec.key()}.npz"
    with FileLock(str(path) + ".lock"):
        if path.exists():
            cached = _read(path, spec)
            if cached is not None:
                return cached
        faces = generate(spec)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            images=faces.images,
            identity=faces.identity,
            domain=faces.domain,
            split=faces.split,
            twin_of=faces.twin_of,
            fingerprint=np.array(faces.fingerprint),
        )
        os.replace(tmp, path)
        return faces


def _read(path: Path, spec: SynthFacesSpec) -> FaceSet | None:
    """A cached data set, or None when the file is damaged (then it is rebuilt)."""
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in ("images", "identity", "domain", "split", "twin_of")}
            stored = str(z["fingerprint"])
    except (OSError, ValueError, KeyError):
        return None
    labels = np.stack([arrays["identity"], arrays["domain"], arrays["split"]], axis=1)
    if _fingerprint(arrays["images"], labels, arrays["twin_of"]) != stored:
        return None
    return FaceSet(domains=spec.domains, fingerprint=stored, **arrays)


def sample_grid(faces: FaceSet, *, identities: int = 6) -> np.ndarray:
    """An (H, W, 3) uint8 grid: one row per identity, one column per domain (held-out faces)."""
    ev = faces.group("eval")
    ids = np.unique(ev.identity)[:identities]
    r = faces.images.shape[-1]
    grid = np.full((len(ids) * (r + 2), len(faces.domains) * (r + 2), 3), 255, dtype=np.uint8)
    for i, ident in enumerate(ids):
        for d in range(len(faces.domains)):
            j = np.flatnonzero((ev.identity == ident) & (ev.domain == d))[0]
            grid[i * (r + 2) : i * (r + 2) + r, d * (r + 2) : d * (r + 2) + r] = ev.images[j].transpose(1, 2, 0)
    return grid


def save_sample_grid(faces: FaceSet, path: Path, *, identities: int = 6, zoom: int = 3) -> Path:
    """Write the sample grid as a PNG (rows: held-out identities; columns: domains)."""
    from PIL import Image

    grid = sample_grid(faces, identities=identities)
    Image.fromarray(grid).resize((grid.shape[1] * zoom, grid.shape[0] * zoom), Image.NEAREST).save(path)
    meta = Path(path).with_suffix(".json")
    meta.write_text(
        json.dumps({"data": "synthfaces (synthetic)", "domains": list(faces.domains), "fingerprint": faces.fingerprint})
    )
    return Path(path)

"""Training data for the trainables: synthfaces, an image folder, or a CSV manifest.

* Image folder, one domain: ``root/<identity>/*.jpg``; several domains:
  ``root/<domain>/<identity>/*.jpg`` (told apart by where the images sit: directly in the
  second level, or one level deeper).
* CSV manifest: a header with ``path`` and ``identity`` and optionally ``domain``; paths
  relative to the manifest's directory unless absolute.

Images on disk are read lazily (``ImageFiles``) and resized to the backbone's input size;
synthfaces lives in memory. Both give uint8 (3, H, W) images.

Unreadable training images (empty files, files no image decoder accepts, truncated files)
are **skipped and counted**: real face collections hold a few, and one should not stop a
study. ``TrainSet.skipped`` lists them with the reason; the trainable's ``prepare`` writes
them to ``skipped_images.csv`` in the run directory and the count goes into every row of
``results.csv``. The check runs once per set of files (keyed by their paths, sizes and
modification times) and is cached. A manifest that names a file that does not exist is
refused instead: that is a mistake in the manifest, not a damaged image.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from trainables.data.decoding import (  # noqa: F401  (re-exported: where the readers find them)
    file_problem,
    image_errors,
    image_reason,
    open_image,
)

if TYPE_CHECKING:
    from trainables.data.image_cache import Rows

from reports.rundir.names import SKIPPED_FILE
from trainables.errors import TrainableInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


#: Where a run lists the training images it skipped (path, reason), written by every trainable's ``prepare``.


def write_skipped(out_dir: Path, *skipped: tuple[tuple[str, str], ...]) -> int:
    """Write ``skipped_images.csv`` (path, reason) into the run directory when any image
    was skipped; returns how many distinct images were."""
    rows = sorted(set().union(*map(set, skipped))) if skipped else []
    if rows:
        with open(Path(out_dir) / SKIPPED_FILE, "w", newline="") as f:
            csv.writer(f).writerows([("path", "reason"), *rows])
    return len(rows)


def combined_fingerprint(*parts: object) -> str:
    """One fingerprint of several (a trainable's training, validation and test sets, or a
    pair list with its split settings): the parts joined by commas, sha256, 16 hex digits.
    What a run records as its ``data_fingerprint``; every trainable combines the same way."""
    return hashlib.sha256(",".join(map(str, parts)).encode()).hexdigest()[:16]


class DataError(TrainableInputError):
    """Training data that cannot be read or does not fit the config."""


@dataclass(frozen=True)
class TrainSet:
    """Training images with identity and domain labels.

    ``images`` (uint8 (N, 3, H, W): synthfaces in memory, or an image folder's rows mapped from
    the shared decoded-image cache) or ``paths`` (files), or both: the cache's rows and the
    files they were decoded from. Whoever reads images prefers ``images``.
    ``identity_names`` maps identity id -> name where the data names its identities (image
    folders, manifests), so that overlap with named benchmark identities can be checked.
    """

    identity: np.ndarray
    domain: np.ndarray
    domains: tuple[str, ...]
    fingerprint: str
    images: torch.Tensor | Rows | None = None
    paths: tuple[str, ...] | None = None
    identity_names: tuple[str, ...] | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) of unreadable images left out

    def __len__(self) -> int:
        return len(self.identity)

    def select(self, idx: np.ndarray) -> "TrainSet":
        idx = np.asarray(idx, dtype=np.int64)
        return replace(
            self,
            identity=self.identity[idx],
            domain=self.domain[idx],
            images=None
            if self.images is None
            else self.images.subset(idx)  # rows of the shared cache: a view, not a copy
            if hasattr(self.images, "subset")
            else self.images[torch.as_tensor(idx)],
            paths=None if self.paths is None else tuple(self.paths[i] for i in idx),
            fingerprint=hashlib.sha256((self.fingerprint + idx.tobytes().hex()).encode()).hexdigest()[:16],
        )

    def names(self) -> set[str]:
        if self.identity_names is None:
            return set()
        return {self.identity_names[i] for i in np.unique(self.identity)}


def limit_per_identity(data: TrainSet, n: int | None, *, seed: int) -> TrainSet:
    """Keep at most ``n`` images per identity, spread over its domains in turn.

    The choice depends on ``seed`` (the data seed), not on a trial's seed, so every seed of a
    study trains on the same few shots. Refused when no identity has ``n`` images: the
    setting would silently mean "all images".
    """
    if n is None:
        return data
    counts = np.bincount(data.identity)
    if counts.max() < n:
        raise DataError(f"samples_per_identity={n}, but no training identity has more than {counts.max()} images")
    rng = np.random.default_rng(seed)
    keep = []
    for ident in np.unique(data.identity):
        rows = np.flatnonzero(data.identity == ident)
        per_domain = [rng.permutation(rows[data.domain[rows] == d]) for d in np.unique(data.domain[rows])]
        # round-robin over domains: shot k of every domain before shot k + 1 of any
        order = [r[k] for k in range(max(len(p) for p in per_domain)) for r in per_domain if k < len(r)]
        keep.extend(order[:n])
    return data.select(np.sort(np.asarray(keep)))


def group_names(domains: tuple[str, ...], num_domains: int) -> tuple[str, ...]:
    """The name of each of ``domain_groups``' groups: the domains it holds, joined by "+"."""
    groups = domain_groups(np.arange(len(domains)), num_domains)
    return tuple("+".join(d for d, g in zip(domains, groups) if g == k) for k in range(num_domains))


def domain_groups(domain: np.ndarray, num_domains: int) -> np.ndarray:
    """Map data domains 0..D-1 onto ``num_domains`` groups (classifier classes, adapters).

    The source domain (0) keeps a group of its own; the other domains share the remaining
    groups in turn. With as many groups as domains this is the identity.
    """
    if num_domains == 1:
        return np.zeros_like(domain)
    return np.where(domain == 0, 0, 1 + (domain - 1) % (num_domains - 1))


def _files(directory: Path) -> list[str]:
    """Image files of a folder, sorted, broken links and link loops included (the check of
    unreadable images then lists them as skipped, instead of their vanishing unseen).
    ``os.scandir``: the directory's own entry types, no ``stat`` per file but for links (at
    CASIA's 494,149 files that is most of listing it)."""
    found = []
    with os.scandir(directory) as entries:
        for e in entries:
            if os.path.splitext(e.name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            try:
                usable = e.is_file()
            except OSError:  # a link loop
                usable = False
            if usable or (e.is_symlink() and not os.path.exists(e.path)):
                found.append(e.path)
    return sorted(found)


def read_image_folder(root: Path, *, check: bool | Check = True) -> TrainSet:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"train_data {root}: no such directory")
    top = sorted(p for p in root.iterdir() if p.is_dir())
    if not top:
        raise DataError(f"train_data {root}: no identity folders")
    nested = not any(_files(d) for d in top)  # domain/identity/*.jpg
    rows: list[tuple[str, str, str]] = []  # (path, identity, domain)
    for d in top:
        if nested:
            for ident in sorted(p for p in d.iterdir() if p.is_dir()):
                rows.extend((str(f), ident.name, d.name) for f in _files(ident))
        else:
            rows.extend((str(f), d.name, "default") for f in _files(d))
    if not rows:
        raise DataError(f"train_data {root}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return _from_rows(rows, str(root), check=check)


def read_manifest(path: Path, *, check: bool | Check = True) -> TrainSet:
    path = Path(path)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = set(reader.fieldnames or ())
            if not {"path", "identity"} <= fields:
                raise DataError(
                    f"manifest {path}: needs the columns path and identity (and optionally domain), "
                    f"found {sorted(fields)}"
                )
            rows = []
            for line, rec in enumerate(reader, start=2):
                if not rec["path"] or not rec["identity"]:
                    raise DataError(f"manifest {path}, line {line}: empty path or identity")
                p = Path(rec["path"])
                rows.append(
                    (str(p if p.is_absolute() else path.parent / p), rec["identity"], rec.get("domain") or "default")
                )
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"manifest {path}: {err}") from None
    if not rows:
        raise DataError(f"manifest {path}: no rows")
    missing = [r[0] for r in rows if not Path(r[0]).is_file()]
    if missing:
        raise DataError(f"manifest {path}: {len(missing)} image files are missing, e.g. {missing[0]}")
    return _from_rows(rows, str(path), check=check)


def _image_problem(path: str) -> str | None:
    """Why an image file cannot be used, or None: ``file_problem``, then a full decode."""
    why = file_problem(path)
    if why is not None:
        return why
    try:
        with open_image(path) as im:
            im.load()
    except image_errors() as err:
        return image_reason(err)
    return None


def find_unreadable(paths: list[str]) -> list[tuple[str, str]]:
    """(path, reason) for each unreadable image, from the cache when these exact files (paths,
    sizes, modification times) were checked before."""
    from trainables.data.synthfaces import default_cache_dir

    stats, dead = [], []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as err:  # a broken link or a link loop
            dead.append((p, f"cannot be opened: {err.strerror} (a broken link or a link loop)"))
            stats.append(f"{p}\0dead")
            continue
        stats.append(f"{p}\0{st.st_size}\0{st.st_mtime_ns}")
    key = hashlib.sha256("\n".join(stats).encode()).hexdigest()[:24]
    cache = default_cache_dir() / "image-checks" / f"{key}.json"
    try:
        return [tuple(x) for x in json.loads(cache.read_text())]
    except (OSError, ValueError):
        pass
    gone = {p for p, _ in dead}
    bad = dead + [(p, why) for p in paths if p not in gone and (why := _image_problem(p))]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(bad))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only cache only costs the check next time
    return bad


#: How a reader finds the unreadable images of its list: (path, reason) of each.
Check = Callable[[list[str]], list[tuple[str, str]]]


class DecodedCheck:
    """The check of unreadable images as the decode of a list into the shared decoded-image
    cache at ``size`` (``trainables.data.image_cache``; ``options``: its ``verify`` and ``log``):
    one pass finds them, with the reasons ``find_unreadable`` gives, and leaves every readable
    image decoded for the trials. The cache is keyed by the sorted set of the list's paths, as
    ``trainables.metric.common.shared_rows`` opens it; ``opened`` keeps each cache it opened
    (by those paths), so that reading the images afterwards need not stat every file again."""

    def __init__(self, size: int, **options) -> None:
        self.size, self.options = size, options
        self.opened: dict[tuple[str, ...], Any] = {}

    def __call__(self, paths: list[str]) -> list[tuple[str, str]]:
        from trainables.data import image_cache

        ordered = tuple(sorted(set(paths)))
        cache = self.opened[ordered] = image_cache.image_files(ordered, self.size, **self.options)
        failed = {ordered[row]: why for row, why in cache.failed}
        return [(p, failed[p]) for p in dict.fromkeys(paths) if p in failed]


def _checker(check: bool | Check) -> Check | None:
    return find_unreadable if check is True else (check or None)  # looked up now: tests replace it


def _from_rows(rows: list[tuple[str, str, str]], source: str, *, check: bool | Check = True) -> TrainSet:
    finder = _checker(check)
    bad = finder([r[0] for r in rows]) if finder else []
    if bad:
        unreadable = {p for p, _ in bad}
        rows = [r for r in rows if r[0] not in unreadable]
        if not rows:
            raise DataError(f"train_data {source}: none of its images can be read (e.g. {bad[0][0]}: {bad[0][1]})")
    paths, idents, doms = zip(*rows)
    names, identity = np.unique(np.asarray(idents), return_inverse=True)
    # the first domain in sorted order is not necessarily the source domain; a domain called
    # "visible" (or the only one) is put first, as synthfaces does
    dom_names = sorted(set(doms), key=lambda d: (d not in ("visible", "default"), d))
    domain = np.asarray([dom_names.index(d) for d in doms], dtype=np.int64)
    h = hashlib.sha256("\n".join(f"{p},{i},{d}" for p, i, d in rows).encode()).hexdigest()[:16]
    return TrainSet(
        identity=identity.astype(np.int64),
        domain=domain,
        domains=tuple(dom_names),
        fingerprint=h,
        paths=tuple(paths),
        identity_names=tuple(str(n) for n in names),
        skipped=tuple(bad),
    )


def read_train_data(reference: str, *, check: bool = True) -> TrainSet:
    """An image folder or a CSV manifest (synthfaces is handled by the trainable). ``check``
    False: unreadable images are not looked for here (the caller decodes every image into the
    shared cache, which finds them, and calls ``without_unreadable``)."""
    from trainables.data import snapshot

    path = Path(reference).expanduser()
    key = snapshot.source_key("train_data", path)
    if not check:  # the listing alone: what a study's snapshot pins (``trainables.data.snapshot``)
        found = snapshot.pinned_listing(key)
        if found is not None:
            return _listing_from(*found)
    listed = read_manifest(path, check=check) if path.suffix.lower() == ".csv" else read_image_folder(path, check=check)
    if not check:
        snapshot.record_listing(key, *_listing_of(listed))
    return listed


def _listing_of(listed: TrainSet) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]]]:
    arrays = {"identity": listed.identity, "domain": listed.domain}
    return arrays, {"paths": listed.paths or (), "names": listed.identity_names or (), "domains": listed.domains,
                    "fingerprint": (listed.fingerprint,)}  # fmt: skip


def _listing_from(arrays: dict[str, np.ndarray], texts: dict[str, list[str]]) -> TrainSet:
    return TrainSet(
        identity=arrays["identity"].astype(np.int64, copy=False),
        domain=arrays["domain"].astype(np.int64, copy=False),
        domains=tuple(texts["domains"]),
        fingerprint=texts["fingerprint"][0],
        paths=tuple(texts["paths"]),
        identity_names=tuple(texts["names"]),
    )


def without_unreadable(train: TrainSet, bad: list[tuple[str, str]], source: str) -> TrainSet:
    """``train`` (as read with ``check=False``) without the images ``bad`` names, which it
    lists as skipped, exactly as reading it with the check would have given it."""
    if not bad:
        return train
    gone = {p for p, _ in bad}
    assert train.paths is not None and train.identity_names is not None
    rows = [
        (p, train.identity_names[i], train.domains[d])
        for p, i, d in zip(train.paths, train.identity, train.domain)
        if p not in gone
    ]
    if not rows:
        raise DataError(f"train_data {source}: none of its images can be read (e.g. {bad[0][0]}: {bad[0][1]})")
    return replace(_from_rows(rows, source, check=False), skipped=tuple(bad))


def image_tensor(im, size: int) -> torch.Tensor:
    """uint8 (3, size, size) from an open PIL image (converted to RGB, resized bilinearly)."""
    from PIL import Image

    im = im.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def read_image(path: str, size: int) -> torch.Tensor:
    """uint8 (3, size, size) from an image file."""
    try:
        with open_image(path) as im:
            return image_tensor(im, size)
    except image_errors() as err:
        raise DataError(f"cannot read image {path}: {type(err).__name__}: {err}") from None


class ImageFiles(torch.utils.data.Dataset):
    """Lazily read images of a TrainSet (``paths``), for a DataLoader with workers."""

    def __init__(self, paths: tuple[str, ...], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return read_image(self.paths[i], self.size)

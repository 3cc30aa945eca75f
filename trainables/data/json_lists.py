"""The JSON data formats of the project notes, read and checked.

* **Person file** (the AdaFace triplet plan's ``train_dataset_infor.json``): an object
  mapping each identity to the list of its image paths::

      {"person_a": ["a/1.jpg", "a/2.jpg"], "person_b": ["b/1.jpg"]}

* **Twin file** (``train_twin_pairs.json``): a list of identity pairs, each identity named in
  the person file it goes with::

      [["person_a", "person_b"], ["person_c", "person_d"]]

* **Feedback pairs** (the MagFace note's user feedback): a list of image pairs with a label,
  1 = same person, 0 = different people::

      [{"image1": "x/1.jpg", "image2": "y/4.jpg", "label": 0}, ...]

Relative image paths are taken from the JSON file's directory. Every problem is reported
as one line naming the file, the entry and what is wrong (a ``DataError``): a person
without images, a twin naming an unknown identity, a label other than 0 or 1, an image
path that does not exist. Images that exist but cannot be decoded are skipped and counted,
as for the other training data (``sources.find_unreadable``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainables.data.sources import Check, DataError, find_unreadable


def _load_json(path: Path, what: str) -> Any:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{what} {path}: no such file")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{what} {path}: {err}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{what} {path}: not JSON ({err})") from None


def _resolve(base: Path, p: str) -> str:
    q = Path(p).expanduser()
    return str(q if q.is_absolute() else base / q)


def _fingerprint(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PersonSet:
    """Images of named people: ``paths[i]`` shows ``names[identity[i]]``.

    ``twins[k]`` lists the identity ids named as twins of identity ``k`` (empty without a
    twin file). ``skipped`` lists (path, reason) of unreadable images left out.
    """

    names: tuple[str, ...]
    paths: tuple[str, ...]
    identity: np.ndarray
    twins: tuple[tuple[int, ...], ...]
    fingerprint: str
    source: str
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_identities(self) -> int:
        return len(self.names)

    def images_of(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.identity == k)

    def twin_pairs(self) -> list[tuple[int, int]]:
        """Each twin pair once, as (lower id, higher id)."""
        return sorted({(min(a, b), max(a, b)) for a, ts in enumerate(self.twins) for b in ts})

    def subset(self, identities: np.ndarray, label: str) -> "PersonSet":
        """The images of the given identity ids, with ids renumbered 0..n-1 in the given
        order; twin links to identities left out are dropped."""
        identities = [int(k) for k in identities]
        new_id = {old: new for new, old in enumerate(identities)}
        rows = np.concatenate([self.images_of(k) for k in identities]) if identities else np.zeros(0, np.int64)
        return PersonSet(
            names=tuple(self.names[k] for k in identities),
            paths=tuple(self.paths[i] for i in rows),
            identity=np.asarray([new_id[int(self.identity[i])] for i in rows], dtype=np.int64),
            twins=tuple(tuple(new_id[t] for t in self.twins[k] if t in new_id) for k in identities),
            fingerprint=_fingerprint([self.fingerprint, label, *map(str, identities)]),
            source=f"{self.source} ({label})",
            skipped=self.skipped,
        )


def read_persons(
    person_file: str | Path, twin_file: str | Path | None = None, *, check: Check | None = None
) -> PersonSet:
    """A person file and, optionally, its twin file (see the module docstring); ``check``
    finds its unreadable images (``sources.DecodedCheck``: the decode into the shared cache)."""
    person_file = Path(person_file).expanduser()
    data = _load_json(person_file, "person file")
    if not isinstance(data, dict) or not data:
        raise DataError(
            f"person file {person_file}: expected a non-empty object mapping identity -> list of image paths"
        )
    base = person_file.parent
    names, rows = [], []
    for name, images in data.items():
        if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
            raise DataError(f"person file {person_file}, identity {name!r}: expected a list of image paths")
        if not images:
            raise DataError(f"person file {person_file}, identity {name!r}: no images")
        k = len(names)
        names.append(str(name))
        rows.extend((_resolve(base, p), k) for p in images)
    missing = [(p, names[k]) for p, k in rows if not Path(p).is_file()]
    if missing:
        raise DataError(
            f"person file {person_file}: {len(missing)} image files do not exist, e.g. {missing[0][0]} "
            f"(identity {missing[0][1]!r})"
        )
    bad = (check or find_unreadable)([p for p, _ in rows])
    if bad:
        unreadable = {p for p, _ in bad}
        rows = [r for r in rows if r[0] not in unreadable]
        left = {k for _, k in rows}
        lost = [names[k] for k in range(len(names)) if k not in left]
        if lost:
            raise DataError(
                f"person file {person_file}, identity {lost[0]!r}: none of its images can be read "
                f"(e.g. {bad[0][0]}: {bad[0][1]})"
            )
    twins: list[set[int]] = [set() for _ in names]
    if twin_file is not None:
        twins = _read_twins(Path(twin_file).expanduser(), {n: k for k, n in enumerate(names)}, person_file)
    lines = [f"{p},{names[k]}" for p, k in rows] + [f"twin {a},{b}" for a, ts in enumerate(twins) for b in sorted(ts)]
    return PersonSet(
        names=tuple(names),
        paths=tuple(p for p, _ in rows),
        identity=np.asarray([k for _, k in rows], dtype=np.int64),
        twins=tuple(tuple(sorted(t)) for t in twins),
        fingerprint=_fingerprint(lines),
        source=str(person_file),
        skipped=tuple(bad),
    )


def _read_twins(twin_file: Path, index: dict[str, int], person_file: Path) -> list[set[int]]:
    data = _load_json(twin_file, "twin file")
    if not isinstance(data, list):
        raise DataError(f"twin file {twin_file}: expected a list of identity pairs")
    twins: list[set[int]] = [set() for _ in index]
    for n, pair in enumerate(data):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise DataError(f"twin file {twin_file}, pair {n}: expected two identity names, got {json.dumps(pair)}")
        for x in pair:
            if x not in index:
                raise DataError(
                    f"twin file {twin_file}, pair {n}: identity {x!r} is not in the person file {person_file}"
                )
        a, b = index[pair[0]], index[pair[1]]
        if a == b:
            raise DataError(f"twin file {twin_file}, pair {n}: {pair[0]!r} is paired with itself")
        twins[a].add(b)
        twins[b].add(a)
    return twins


@dataclass(frozen=True)
class FeedbackPairs:
    """Labelled image pairs: ``paths[left[i]]`` and ``paths[right[i]]``, ``label[i]`` 1 = same person.

    ``identity[j]`` names the person in image ``j`` where it is known (see
    ``read_feedback_pairs``), else None for every image.
    """

    paths: tuple[str, ...]
    left: np.ndarray
    right: np.ndarray
    label: np.ndarray
    fingerprint: str
    source: str
    identity: tuple[str, ...] | None = None
    skipped: tuple[tuple[str, str], ...] = field(default=())

    def __len__(self) -> int:
        return len(self.label)


def read_feedback_pairs(
    pairs_file: str | Path, *, identity_from_folder: bool = False, check: Check | None = None
) -> FeedbackPairs:
    """A feedback-pairs file (see the module docstring).

    ``identity_from_folder``: each image's identity is the name of the folder it sits in
    (``<identity>/<image>``), so that pairs can be split by identity. Otherwise identities
    are unknown. A pair whose image cannot be decoded is dropped and counted.
    """
    pairs_file = Path(pairs_file).expanduser()
    data = _load_json(pairs_file, "pairs file")
    if not isinstance(data, list) or not data:
        raise DataError(
            f'pairs file {pairs_file}: expected a non-empty list of {{"image1": ..., "image2": ..., "label": 0 or 1}}'
        )
    base = pairs_file.parent
    index: dict[str, tuple[int, str]] = {}  # real path -> (position, the path as first written)
    left, right, label = [], [], []
    for n, rec in enumerate(data):
        if not isinstance(rec, dict) or not {"image1", "image2", "label"} <= set(rec):
            raise DataError(f"pairs file {pairs_file}, pair {n}: needs image1, image2 and label")
        y = rec["label"]
        if isinstance(y, bool) or y not in (0, 1):
            raise DataError(
                f"pairs file {pairs_file}, pair {n}: label must be 0 (different) or 1 (same), got {json.dumps(y)}"
            )
        ends = []
        for key in ("image1", "image2"):
            if not isinstance(rec[key], str) or not rec[key]:
                raise DataError(f"pairs file {pairs_file}, pair {n}: {key} must be an image path")
            p = os.path.normpath(_resolve(base, rec[key]))
            if not Path(p).is_file():
                raise DataError(f"pairs file {pairs_file}, pair {n}: image {p} does not exist")
            # one file however it is spelt (d/../d/x.png, a link): the first spelling names it
            ends.append(index.setdefault(os.path.realpath(p), (len(index), p))[0])
        if ends[0] == ends[1]:
            raise DataError(f"pairs file {pairs_file}, pair {n}: image1 and image2 are the same file")
        left.append(ends[0])
        right.append(ends[1])
        label.append(int(y))
    paths = tuple(p for _, p in sorted(index.values()))
    bad = (check or find_unreadable)(list(paths))
    keep = np.ones(len(label), dtype=bool)
    if bad:
        position = {p: i for i, p in enumerate(paths)}
        unreadable = {position[p] for p, _ in bad}
        keep = np.asarray([a not in unreadable and b not in unreadable for a, b in zip(left, right)])
        if not keep.any():
            raise DataError(f"pairs file {pairs_file}: no pair has two readable images (e.g. {bad[0][0]}: {bad[0][1]})")
    identity = tuple(Path(p).parent.name for p in paths) if identity_from_folder else None
    if identity is not None:
        for a, b, y in zip(left, right, label):
            if (identity[a] == identity[b]) != bool(y):
                raise DataError(
                    f"pairs file {pairs_file}: the pair {paths[a]} / {paths[b]} is labelled {y}, but "
                    "its folders say otherwise (identity from the folder name)"
                )
    lines = [f"{paths[a]},{paths[b]},{y}" for a, b, y, k in zip(left, right, label, keep) if k]
    return FeedbackPairs(
        paths=paths,
        left=np.asarray(left)[keep],
        right=np.asarray(right)[keep],
        label=np.asarray(label, dtype=np.int64)[keep],
        fingerprint=_fingerprint(lines),
        source=str(pairs_file),
        identity=identity,
        skipped=tuple(bad),
    )


__all__ = ["FeedbackPairs", "PersonSet", "read_feedback_pairs", "read_persons"]


def read_people(reference: str, *, check: Check | None = None) -> PersonSet:
    """A person file (``.json``) or an image folder (``<identity>/<image>``, or
    ``<domain>/<identity>/<image>``), as a PersonSet without twins."""
    from trainables.data.sources import read_image_folder

    if reference.lower().endswith(".json"):
        return read_persons(reference, check=check)
    ts = read_image_folder(Path(reference).expanduser(), check=check or True)
    return PersonSet(
        names=tuple(ts.identity_names),
        paths=tuple(ts.paths),
        identity=ts.identity,
        twins=tuple(() for _ in ts.identity_names),
        fingerprint=ts.fingerprint,
        source=reference,
        skipped=ts.skipped,
    )

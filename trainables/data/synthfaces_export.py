"""synthfaces written out in the project notes' file formats, so that the metric-learning
trainables run on it out of the box through the same readers as real data.

Layout of an export directory::

    images/<identity>/<domain>_<k>.png        every image of the train and eval groups
    train_dataset_infor.json                  person file: train identities -> image paths
    train_twin_pairs.json                     twin file: the train group's twin pairs
    test_dataset_infor.json, test_twin_pairs.json    the same for the held-out (eval) group
    feedback_pairs.json                       same/different pairs (labels 1/0) among the train group
    feedback_test_pairs.json                  the same among the held-out group (the note's test.json)

Identities are named ``train0007``, ``eval0003`` (the group, then the id within it), so the
folder of an image is its identity. ``python -m orchestrator export-synthfaces DIR`` writes
one for a user to look at; the trainables keep theirs in the cache (``ensure_export``),
built once under a file lock.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from filelock import FileLock

from trainables.data import synthfaces
from trainables.data.synthfaces import FaceSet, SynthFacesSpec

PERSONS = {"train": "train_dataset_infor.json", "eval": "test_dataset_infor.json"}
TWINS = {"train": "train_twin_pairs.json", "eval": "test_twin_pairs.json"}
FEEDBACK = {"train": "feedback_pairs.json", "eval": "feedback_test_pairs.json"}
_DONE = "EXPORT_DONE"
#: Bump when the export's layout or content changes, so that older cached exports are not reused.
EXPORT_VERSION = 2


def _name(group: str, local: int) -> str:
    return f"{group}{local:04d}"


def identity_names(faces: FaceSet) -> dict[str, dict[int, str]]:
    """Per group, identity id -> the name its export gives it (``eval0003``): what a pair list
    or image folder made from an export calls that person."""
    out: dict[str, dict[int, str]] = {}
    for group in synthfaces.SPLITS:
        ids = np.unique(faces.group(group).identity)
        if len(ids):
            out[group] = {int(i): _name(group, int(i - ids.min())) for i in ids}
    return out


def export(faces: FaceSet, out_dir: Path, *, feedback_pairs_per_identity: int = 4, seed: int = 0) -> Path:
    """Write ``faces`` (its train and eval groups) into ``out_dir`` in the notes' formats."""
    from PIL import Image

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for group in ("train", "eval"):
        g = faces.group(group)
        first = int(g.identity.min())
        persons: dict[str, list[str]] = {}
        counters: dict[tuple[int, int], int] = {}
        for i in range(len(g)):
            ident, dom = int(g.identity[i]), int(g.domain[i])
            k = counters.get((ident, dom), 0)
            counters[(ident, dom)] = k + 1
            name = _name(group, ident - first)
            rel = f"images/{name}/{faces.domains[dom]}_{k}.png"
            (out_dir / rel).parent.mkdir(exist_ok=True)
            Image.fromarray(g.images[i].transpose(1, 2, 0)).save(out_dir / rel)
            persons.setdefault(name, []).append(rel)
        twins = sorted(
            {
                tuple(sorted((_name(group, a - first), _name(group, int(faces.twin_of[a]) - first))))
                for a in np.unique(g.identity)
                if faces.twin_of[a] >= 0
            }
        )
        (out_dir / PERSONS[group]).write_text(json.dumps(persons, indent=1))
        (out_dir / TWINS[group]).write_text(json.dumps([list(t) for t in twins], indent=1))
        pairs = feedback_pairs(persons, feedback_pairs_per_identity, seed)
        (out_dir / FEEDBACK[group]).write_text(json.dumps(pairs, indent=1))
    return out_dir


def feedback_pairs(persons: dict[str, list[str]], per_identity: int, seed: int) -> list[dict]:
    """For each identity, ``per_identity`` same-person pairs and as many different-person
    pairs (its image against another identity's of the same group), drawn with a fixed seed.
    The held-out group gets a file of its own, as the note's split script writes a test file:
    drawn among all people, a test set split off by identity would keep only the few
    different-person pairs whose two people both landed in it."""
    rng = np.random.default_rng(seed)
    names = sorted(persons)
    out = []
    for n, name in enumerate(names):
        imgs = persons[name]
        for _ in range(per_identity):
            a, b = rng.choice(len(imgs), size=2, replace=False)
            out.append({"image1": imgs[a], "image2": imgs[b], "label": 1})
            other = names[(n + 1 + int(rng.integers(len(names) - 1))) % len(names)]
            out.append(
                {
                    "image1": imgs[int(rng.integers(len(imgs)))],
                    "image2": persons[other][int(rng.integers(len(persons[other])))],
                    "label": 0,
                }
            )
    return out


def ensure_export(spec: SynthFacesSpec, cache_dir: Path | None = None) -> Path:
    """The export of ``spec`` in the cache: written once (under a file lock, into a temporary
    directory renamed into place), reused while its data fingerprint matches."""
    root = Path(cache_dir or synthfaces.default_cache_dir()) / "synthfaces-export"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{spec.key()}-v{EXPORT_VERSION}"
    with FileLock(str(target) + ".lock"):
        faces = synthfaces.load(spec, cache_dir)
        done = target / _DONE
        if done.is_file() and done.read_text() == faces.fingerprint:
            return target
        tmp = root / f"{target.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        export(faces, tmp)
        (tmp / _DONE).write_text(faces.fingerprint)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target


__all__ = ["FEEDBACK", "PERSONS", "TWINS", "ensure_export", "export", "feedback_pairs"]

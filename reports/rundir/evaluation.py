"""``evaluation.npz``: what a trial's evaluation computed, kept beside its checkpoint so that the
report draws from it and never reruns a model.

Every checkpoint a trial reports holds the latest evaluation (``<checkpoint>/evaluation.npz``)
and, where the trial keeps a best epoch, that epoch's (``<checkpoint>/best/evaluation.npz``).
Tune keeps a trial's latest checkpoint in the run directory
(``<run>/tune/<study>_<trial>/checkpoint_<n>/``), so both outlive the trial, a trial stopped
early by ASHA included. One NumPy ``.npz`` (zip of arrays, ``numpy.load`` reads it without
pickles), compressed; the keys, where ``<set>`` is the metric prefix the numbers were reported
under (``eval/cross_domain``, ``val/heldout``, ``eval/lfw``, ``eval/gallery``):

``meta``
    JSON text: ``{"version": 1, "epoch": <the epoch evaluated>, "domains": [<name of domain 0>, ...],
    "adapters": [<name of adapter 0>, ...], "grouping": <attribute>, "groups": [<value 0>, ...]}``
    (``domains``: where embeddings or routing carry domain indices; ``adapters``: where routing
    is kept, the domain each adapter was trained for; ``grouping`` and ``groups``: where pairs
    carry a group, the attribute and its values).
``pairs/<set>/scores`` (float32), ``pairs/<set>/labels`` (int8: 1 same identity, 0 not)
    every verification pair's cosine similarity, in the set's order;
``pairs/<set>/folds`` (int16)
    the pair's fold of the 10-fold protocol (``-1``: a set not scored by folds);
``pairs/<set>/threshold`` (float64, one value; optional)
    the decision threshold chosen on validation pairs and applied to this set;
``pairs/<set>/fold_thresholds`` (float64, one per fold; a set scored by folds)
    the threshold each fold was scored at, chosen on the other folds;
``pairs/<set>/identity`` (int32, one per pair; where the set knows it)
    the identity of the pair's first image (what a bootstrap over identities resamples by;
    on a pair list, the index of its person among the list's people, sorted by name);
``pairs/<set>/source``, ``pairs/<set>/target`` (int16, one per pair; where the set knows them)
    the domain index of the pair's first (gallery) and second (probe) image: what the
    cross-domain figure splits a set by (``meta``'s ``domains`` names them);
``pairs/<set>/group`` (int16, one per pair; a set graded by an attribute of its people)
    the index, in ``meta``'s ``groups``, of the attribute value both of the pair's people have
    (``-1``: they differ, or one has none): what fairness groups the set's pairs by.
``ranks/<set>/mate_rank`` (int32), ``ranks/<set>/mate_score``, ``ranks/<set>/nonmate_score`` (float32), ``ranks/<set>/identity`` (int32)
    per probe of a closed-set identification: the rank of its true identity among the
    gallery identities (1 = first; an identity scoring as high counts ahead of it), the
    score of its true identity and the highest score of any other identity.
``embeddings/<group>/vectors`` (float16), ``embeddings/<group>/identity`` (int32), ``embeddings/<group>/domain`` (int16)
    with ``save_embeddings: true`` only: the L2-normalised embeddings of the evaluation
    images (``<group>``: ``eval``, ``val``), with identity and domain index.
``routing/<group>/weights`` (float16, one row per image, one column per adapter), ``routing/<group>/domain`` (int16)
    a model that routes each image to domain adapters (DA-LoRA's domain-aware LoRA): the
    mixture weights it gave each evaluation image (the mean of the image's and its mirror
    image's under the flip test), with the image's true domain index.

The trainables write it through ``write_evaluation``; the reports read it through
``read_evaluation`` (damage refused in one line) and find it with ``trial_evaluation``.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVAL_FILE = "evaluation.npz"
BEST_DIR = "best"  # the folder of a checkpoint that holds the best epoch's model and evaluation
EVAL_VERSION = 1
PAIRS, RANKS, EMBEDDINGS, ROUTING = "pairs", "ranks", "embeddings", "routing"
PAIR_ARRAYS = {"scores": "float32", "labels": "int8", "folds": "int16"}
RANK_ARRAYS = {"mate_rank": "int32", "mate_score": "float32", "nonmate_score": "float32", "identity": "int32"}
EMBEDDING_ARRAYS = {"vectors": "float16", "identity": "int32", "domain": "int16"}
ROUTING_ARRAYS = {"weights": "float16", "domain": "int16"}
MATRICES = ("vectors", "weights")  # the arrays with a row per image (the others: one value per row)
NO_FOLD = -1
#: Optional per pair, where the set knows them: the domain index of its first and second image,
#: and the group (an attribute's value, ``meta``'s ``groups``) both its people belong to.
PAIR_DOMAINS = ("source", "target", "group")
NO_GROUP = -1


@dataclass
class Evaluation:
    """One evaluation's arrays by set (numpy arrays; see the module's note for each)."""

    epoch: int
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    domains: list[str] = field(default_factory=list)
    """The names of the domain indices of ``embeddings``, in order."""
    ranks: dict[str, dict[str, Any]] = field(default_factory=dict)
    embeddings: dict[str, dict[str, Any]] = field(default_factory=dict)
    routing: dict[str, dict[str, Any]] = field(default_factory=dict)
    adapters: list[str] = field(default_factory=list)
    """The domain each column of ``routing``'s weights was trained for, in order."""
    grouping: str = ""
    """The attribute the pairs' ``group`` indices are values of (``groups`` names them)."""
    groups: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pairs or self.ranks or self.embeddings or self.routing)


def to_bytes(ev: Evaluation) -> bytes:
    """The ``.npz`` of ``ev``, each array in its declared type."""
    import numpy as np

    meta = {
        "version": EVAL_VERSION,
        "epoch": int(ev.epoch),
        **({"domains": list(ev.domains)} if ev.domains else {}),
        **({"adapters": list(ev.adapters)} if ev.adapters else {}),
        **({"grouping": ev.grouping, "groups": list(ev.groups)} if ev.groups else {}),
    }
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta))}
    for part, kinds, sets in ((PAIRS, PAIR_ARRAYS, ev.pairs), (RANKS, RANK_ARRAYS, ev.ranks)):
        for name, values in sets.items():
            for key, dtype in kinds.items():
                arrays[f"{part}/{name}/{key}"] = np.asarray(values[key]).astype(dtype)
            if values.get("threshold") is not None:
                arrays[f"{part}/{name}/threshold"] = np.asarray(float(values["threshold"]), dtype=np.float64)
            if values.get("identity") is not None:
                arrays[f"{part}/{name}/identity"] = np.asarray(values["identity"]).astype(np.int32)
            for side in PAIR_DOMAINS:
                if values.get(side) is not None:
                    arrays[f"{part}/{name}/{side}"] = np.asarray(values[side]).astype(np.int16)
            if values.get("fold_thresholds") is not None:
                arrays[f"{part}/{name}/fold_thresholds"] = np.asarray(values["fold_thresholds"], dtype=np.float64)
    for part, kinds, sets in ((EMBEDDINGS, EMBEDDING_ARRAYS, ev.embeddings), (ROUTING, ROUTING_ARRAYS, ev.routing)):
        for name, values in sets.items():
            for key, dtype in kinds.items():
                arrays[f"{part}/{name}/{key}"] = np.asarray(values[key]).astype(dtype)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_evaluation(path: Path, ev: Evaluation) -> None:
    """Write ``ev`` to ``path`` (a checkpoint's ``evaluation.npz``), whole or not at all."""
    import os

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(to_bytes(ev))
    os.replace(tmp, path)


class DamagedEvaluation(ValueError):
    """An ``evaluation.npz`` that is not what this tool writes: one line, which file, what is wrong."""


def read_evaluation(path: Path) -> Evaluation:
    """The evaluation in ``path``; refused in one line (``DamagedEvaluation``) when it is not a
    zip of arrays, lacks its meta, or an array has another shape or type than declared."""
    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DamagedEvaluation(f"{path}: not an evaluation file of this tool ({str(err).splitlines()[0]})") from None
    try:
        meta = json.loads(str(data.pop("meta")))
        epoch = int(meta["epoch"])
    except (KeyError, ValueError, TypeError):
        raise DamagedEvaluation(f"{path}: no meta (version, epoch); the file is damaged") from None
    if meta.get("version") != EVAL_VERSION:
        raise DamagedEvaluation(f"{path}: version {meta.get('version')!r}, this tool reads {EVAL_VERSION}")
    domains, adapters, groups = meta.get("domains", []), meta.get("adapters", []), meta.get("groups", [])
    for names in (domains, adapters, groups):
        if not (isinstance(names, list) and all(isinstance(d, str) for d in names)):
            raise DamagedEvaluation(f"{path}: its domain or group names are not a list of names; the file is damaged")
    grouping = meta.get("grouping", "")
    if not isinstance(grouping, str):
        raise DamagedEvaluation(f"{path}: its grouping is not a name; the file is damaged")
    ev = Evaluation(epoch, domains=domains, adapters=adapters, grouping=grouping, groups=groups)
    parts = {
        PAIRS: (PAIR_ARRAYS, ev.pairs),
        RANKS: (RANK_ARRAYS, ev.ranks),
        EMBEDDINGS: (EMBEDDING_ARRAYS, ev.embeddings),
        ROUTING: (ROUTING_ARRAYS, ev.routing),
    }
    for key, array in data.items():
        part, _, rest = key.partition("/")
        name, _, what = rest.rpartition("/")
        if part not in parts or not name:
            raise DamagedEvaluation(f"{path}: an array {key!r} this tool does not write")
        parts[part][1].setdefault(name, {})[what] = array
    for part, (kinds, sets) in parts.items():
        for name, arrays in sets.items():
            n = None
            for what, dtype in kinds.items():
                a = arrays.get(what)
                if a is None or str(a.dtype) != dtype or a.ndim != (2 if what in MATRICES else 1):
                    raise DamagedEvaluation(
                        f"{path}: {part}/{name}/{what} is missing or not {dtype}; the file is damaged"
                    )
                if n is not None and len(a) != n:
                    raise DamagedEvaluation(
                        f"{path}: {part}/{name} has arrays of different lengths; the file is damaged"
                    )
                n = len(a)
            if "threshold" in arrays:
                arrays["threshold"] = float(arrays["threshold"])
            if (
                part == PAIRS
                and "identity" in arrays
                and (arrays["identity"].dtype != np.int32 or len(arrays["identity"]) != n)
            ):
                raise DamagedEvaluation(
                    f"{path}: {part}/{name}/identity is not one int32 per pair; the file is damaged"
                )
            for side in PAIR_DOMAINS if part == PAIRS else ():
                if side in arrays and (arrays[side].dtype != np.int16 or len(arrays[side]) != n):
                    raise DamagedEvaluation(
                        f"{path}: {part}/{name}/{side} is not one int16 per pair; the file is damaged"
                    )
            extra = sorted(set(arrays) - set(kinds) - {"threshold", "fold_thresholds", "identity", *PAIR_DOMAINS})
            if extra:
                raise DamagedEvaluation(f"{path}: an array {part}/{name}/{extra[0]} this tool does not write")
    return ev


def threshold_at_rate(scores, rate: float) -> float:
    """The lowest threshold (``score >= t`` accepts) at which at most ``rate`` of ``scores`` (the
    impostor pairs' scores, or each non-mated probe's highest) are accepted: just above the
    (floor(rate * N) + 1)-th highest score, or -inf when every one may be. The one rule by which
    the trainables' protocols (TPIR at FPIR) and the report (FMR) read an operating point."""
    import numpy as np

    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    k = int(np.floor(rate * len(ordered) + 1e-9))
    if k >= len(ordered):
        return -np.inf
    return float(np.nextafter(ordered[k], np.inf))


def trial_evaluation(run_dir: Path, study: str, trial_name: str, *, best: bool = False) -> Path | None:
    """The evaluation file of a trial's latest checkpoint in any Tune experiment of the run
    (``best``: its best epoch's), or None when the trial kept none (no epoch evaluated, a
    trainable that records none, or a run made before the files were kept)."""
    from reports.rundir.names import trial_checkpoints

    for checkpoint in reversed(trial_checkpoints(run_dir, study, trial_name)):
        path = checkpoint / BEST_DIR / EVAL_FILE if best else checkpoint / EVAL_FILE
        if path.is_file():
            return path
    return None


__all__ = [
    "DamagedEvaluation",
    "EVAL_FILE",
    "Evaluation",
    "read_evaluation",
    "threshold_at_rate",
    "to_bytes",
    "trial_evaluation",
    "write_evaluation",
]

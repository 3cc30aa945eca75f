"""What an evaluation computed, collected while it runs and kept beside the checkpoint
(``evaluation.npz``, the run directory's contract: ``reports.rundir.evaluation``).

The evaluators call ``record_pairs``, ``record_ranks``, ``record_embeddings`` and
``record_routing`` where they
compute their metrics; outside ``recording()`` these do nothing, so an evaluator run on its
own (a test, ``gpu_check``) keeps its signature and its cost. ``fit`` opens a recording around
each evaluation and writes it into the checkpoint it reports; ``BestEpoch`` carries the latest
one, and the best epoch's, into every later checkpoint. A ``ContextVar`` (as the data
snapshot's pins) rather than a parameter threaded through every evaluator's call.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator

import numpy as np

from reports.rundir.evaluation import NO_FOLD, Evaluation

_CURRENT: ContextVar[tuple[Evaluation, bool] | None] = ContextVar("orchestrator_evaluation", default=None)


@contextlib.contextmanager
def recording(epoch: int, *, embeddings: bool = False) -> Iterator[Evaluation]:
    """Collect what the evaluations inside the block compute (``embeddings``: the evaluation
    images' embeddings too, the spec's ``save_embeddings``)."""
    ev = Evaluation(epoch)
    token = _CURRENT.set((ev, embeddings))
    try:
        yield ev
    finally:
        _CURRENT.reset(token)


def replay(ev: Evaluation) -> None:
    """Record again what an earlier recording collected (an evaluation computed once and
    reported as it was: a baseline's)."""
    current = _CURRENT.get()
    if current is None:
        return
    current[0].pairs.update(ev.pairs)
    current[0].ranks.update(ev.ranks)
    if current[1]:
        current[0].embeddings.update(ev.embeddings)
    current[0].routing.update(ev.routing)
    current[0].adapters = current[0].adapters or list(ev.adapters)
    if ev.groups:
        current[0].grouping, current[0].groups = ev.grouping, list(ev.groups)


def fold_ids(n: int, folds: int) -> np.ndarray:
    """Each pair's fold in the k-fold protocol: ``numpy.array_split`` of the pairs in their order
    (``verification.ten_fold_accuracy`` cuts them the same way)."""
    return np.concatenate([np.full(len(part), k) for k, part in enumerate(np.array_split(np.arange(n), folds))])


def record_pairs(
    name: str,
    scores,
    labels,
    *,
    folds: int | None = None,
    threshold: float | None = None,
    identity=None,
    domains: tuple | None = None,
    group=None,
) -> None:
    """A verification set's pair scores (``name``: its metric prefix, ``eval/cross_domain``),
    with the fold of each pair (``folds``: scored by the k-fold protocol) or the threshold
    chosen on validation pairs that it was scored at; ``identity``: each pair's first image's
    identity, where the set knows it; ``domains``: (each pair's first image's domain index, its
    second's), where the set knows them; ``group``: each pair's group index (``record_groups``),
    -1 for none."""
    current = _CURRENT.get()
    if current is None:
        return
    from trainables.evaluation.verification import ten_fold_accuracy

    scores = np.asarray(scores, dtype=np.float64)
    current[0].pairs[name] = {
        "scores": scores,
        "labels": np.asarray(labels),
        "folds": fold_ids(len(scores), folds) if folds else np.full(len(scores), NO_FOLD),
        "threshold": threshold,
        "identity": None if identity is None else np.asarray(identity),
        "source": None if domains is None else np.asarray(domains[0]),
        "target": None if domains is None else np.asarray(domains[1]),
        "group": None if group is None else np.asarray(group),
        # the threshold each fold was scored at (chosen on the other folds): what a histogram draws
        "fold_thresholds": np.asarray(ten_fold_accuracy(scores, np.asarray(labels), folds=folds).thresholds)
        if folds
        else None,
    }


def record_domain_names(domains: tuple[str, ...]) -> None:
    """The names of the domain indices the recorded pairs, embeddings and routing carry (the
    first set that names them: the test identities', evaluated first)."""
    current = _CURRENT.get()
    if current is not None and domains and not current[0].domains:
        current[0].domains = list(domains)


def record_groups(grouping: str, groups: tuple[str, ...]) -> None:
    """The attribute the recorded pairs' ``group`` indices are values of, and its values."""
    current = _CURRENT.get()
    if current is not None:
        current[0].grouping, current[0].groups = grouping, list(groups)


def record_ranks(name: str, mate_rank, mate_score, nonmate_score, identity) -> None:
    """A closed-set identification's per-probe outcome (see ``decisions.probe_ranks``)."""
    current = _CURRENT.get()
    if current is None:
        return
    current[0].ranks[name] = {
        "mate_rank": mate_rank,
        "mate_score": mate_score,
        "nonmate_score": nonmate_score,
        "identity": identity,
    }


def active() -> bool:
    """Whether an evaluation is being recorded (an evaluator may skip work nobody keeps)."""
    return _CURRENT.get() is not None


def wants_embeddings() -> bool:
    current = _CURRENT.get()
    return current is not None and current[1]


def record_embeddings(name: str, vectors, identity, domain, domains: tuple[str, ...] = ()) -> None:
    """The evaluation images' embeddings (only when the recording asked for them); ``domains``:
    the names of the domain indices."""
    if not wants_embeddings():
        return
    current = _CURRENT.get()
    assert current is not None
    vectors = vectors.numpy() if hasattr(vectors, "numpy") else np.asarray(vectors)
    current[0].embeddings[name] = {"vectors": vectors, "identity": np.asarray(identity), "domain": np.asarray(domain)}
    if domains:
        current[0].domains = list(domains)


def record_routing(name: str, weights, domain, adapters: tuple[str, ...] = ()) -> None:
    """The mixture weights a routing model gave each evaluation image (rows: images, columns:
    adapters), with each image's true domain index; ``adapters``: the domain each column's
    adapter was trained for."""
    current = _CURRENT.get()
    if current is None:
        return
    weights = weights.numpy() if hasattr(weights, "numpy") else np.asarray(weights)
    current[0].routing[name] = {"weights": weights, "domain": np.asarray(domain)}
    if adapters:
        current[0].adapters = list(adapters)


__all__ = [
    "active",
    "fold_ids",
    "replay",
    "record_domain_names",
    "record_embeddings",
    "record_groups",
    "record_pairs",
    "record_ranks",
    "record_routing",
    "recording",
    "wants_embeddings",
]

"""What the metric-learning trainables (``triplet``, ``pair_contrastive``, ``infonce``) share:
their common settings, the encoder, identity splits, embedding of image files, and the
epoch loop with checkpoints. Free of Ray.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from reports.rundir.evaluation import EVAL_FILE, write_evaluation
from trainables import training
from trainables.checkpointing import scratch_dir
from trainables.data import image_cache
from trainables.data.json_lists import PersonSet, read_people  # noqa: F401  (read_people: re-exported)
from trainables.data.sources import DataError, TrainSet
from trainables.data.splits import hold_out
from trainables.errors import TrainableInputError
from trainables.evaluation.artifacts import recording, replay
from trainables.hardware import Fetcher, Hardware
from trainables.metric.config import MetricLearningConfig
from trainables.models.adapt import adapt, trainable_parameters
from trainables.models.backbone import Backbone, load_backbone
from trainables.protocol import Reporter


def synthfaces_export(cfg: MetricLearningConfig) -> Path:
    """The directory of synthfaces in the notes' formats for ``cfg`` (built once, cached)."""
    from trainables.data.synthfaces_export import ensure_export

    return ensure_export(cfg.synthfaces())


def build_encoder(cfg: MetricLearningConfig, backbone: Backbone | None = None) -> Backbone:
    """The backbone (loaded unless given) with the config's adaptation; its output is the embedding."""
    return adapt(
        backbone or load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed),
        mode=cfg.adaptation,
        lora_rank=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        lora_targets=cfg.lora_targets,
    )


def trained_backbone(cfg: MetricLearningConfig, state: dict[str, torch.Tensor]) -> Backbone:
    """The trial's encoder with a checkpoint's trainable tensors (what ``export`` writes out)."""
    model = build_encoder(cfg)
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        raise TrainableInputError(f"the checkpoint holds tensors this config does not build, e.g. {unexpected[0]}")
    return model


def split_identities(
    persons: PersonSet, fraction: float, *, seed: int, what: str = "validation"
) -> tuple[np.ndarray, np.ndarray]:
    """(kept ids, held-out ids): about ``fraction`` of the identities held out, twins together.

    Twin pairs (a pair and anyone twinned with either) are units that stay on one side; the
    held-out side gets ``fraction`` of the twin units and of the other identities, each
    rounded, at least one twin unit when there are two or more, so that twin impostor pairs
    exist on both sides. Depends on ``seed`` only (the data seed), not on a trial's seed.
    """
    units, seen = [], set()
    for k in range(persons.num_identities):
        if k in seen:
            continue
        unit, todo = set(), [k]
        while todo:  # the connected group of twins
            x = todo.pop()
            if x not in unit:
                unit.add(x)
                todo.extend(persons.twins[x])
        seen |= unit
        units.append(sorted(unit))
    held_ids = hold_out(units, fraction, seed=seed)
    kept_ids = np.setdiff1d(np.arange(persons.num_identities), held_ids)
    multi = [k for k in held_ids if len(persons.images_of(k)) >= 2]
    if not multi:
        raise DataError(
            f"val_fraction={fraction} of the {persons.num_identities} identities of "
            f"{persons.source} leaves no {what} identity with two images: raise it"
        )
    if len(kept_ids) < 2:
        raise DataError(f"val_fraction={fraction} leaves fewer than two training identities in {persons.source}")
    return kept_ids, held_ids


def image_files(
    paths: tuple[str, ...], fingerprint: str, identity: np.ndarray | None = None, names: tuple[str, ...] | None = None
) -> TrainSet:
    """Image files as the TrainSet that ``Fetcher`` reads (one domain; identity 0 unless given)."""
    identity = np.zeros(len(paths), dtype=np.int64) if identity is None else identity
    return TrainSet(
        identity=identity,
        domain=np.zeros(len(paths), dtype=np.int64),
        domains=("default",),
        fingerprint=fingerprint,
        paths=tuple(paths),
        identity_names=names,
    )


def as_train_set(persons: PersonSet) -> TrainSet:
    """A PersonSet as the TrainSet that ``Fetcher`` reads (one domain)."""
    return image_files(persons.paths, persons.fingerprint, persons.identity, persons.names)


def shared_rows(
    paths: Sequence[str],
    size: int,
    *,
    verify: bool = False,
    log: Callable[[str], None] | None = None,
    opened: Mapping[tuple[str, ...], image_cache.CachedImages] | None = None,
) -> Callable[[TrainSet], TrainSet]:
    """Image files as rows of one shared decoded-image cache (``trainables.data.image_cache``),
    keyed by the set of their paths: given a listing's training and validation images
    together, the cache is the same whatever the split (``val_fraction``, ``data_seed``).
    Decoded once per study, by the driver's ``prepare`` (``verify``, ``log``: as for
    ``da_lora``), and read by every trial through the page cache, a batch at a time.

    ``opened``: caches already open, by their sorted paths (``DecodedCheck.opened``).

    Returns ``rows_of(files)``: the TrainSet ``files`` (any of ``paths``) reading its images
    from the cache. Its files were checked readable when their list was read; one that fails
    to decode now has changed since, and is refused rather than read as a black image."""
    ordered = tuple(sorted(set(paths)))
    cache = (opened or {}).get(ordered) or image_cache.image_files(ordered, size, verify=verify, log=log)
    failed = {ordered[row]: why for row, why in cache.failed}
    where = {p: i for i, p in enumerate(ordered)}

    def rows_of(files: TrainSet) -> TrainSet:
        bad = next((p for p in files.paths or () if p in failed), None)
        if bad is not None:  # the lists leave out what was unreadable when they were read
            raise DataError(f"{bad}: {failed[bad]} (it was readable when its list was read; it has changed since)")
        return replace(files, images=image_cache.Rows(cache.images, [where[p] for p in files.paths or ()]))

    return rows_of


def person_images(
    train: PersonSet, val: PersonSet, test: PersonSet, size: int, **kw
) -> tuple[TrainSet, TrainSet, TrainSet]:
    """Training, validation and test identities' images as rows of the shared caches: one for
    the training list (its held-out validation identities included), one for the test list;
    each keyed by its list's every image, the unreadable ones too (what ``DecodedCheck``
    decoded when the list was read)."""

    def everything(*parts: PersonSet) -> list[str]:
        return [p for ps in parts for p in ps.paths] + [p for p, _ in parts[0].skipped]

    listing = shared_rows(everything(train, val), size, **kw)
    tests = shared_rows(everything(test), size, **kw)
    return listing(as_train_set(train)), listing(as_train_set(val)), tests(as_train_set(test))


@torch.no_grad()
def embed_files(
    model: torch.nn.Module,
    fetch: Fetcher,
    n: int,
    hw: Hardware,
    *,
    flip: bool,
    batch_size: int = 256,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """L2-normalised embeddings (float64 numpy) of images ``rows`` (default 0..n-1) of
    ``fetch``, in eval mode, each image passed through ``transform`` first when given."""
    was = model.training
    model.eval()
    order = np.arange(n) if rows is None else np.asarray(rows)
    out = []
    for _, x in fetch.batches([order[i : i + batch_size] for i in range(0, len(order), batch_size)]):
        if transform is not None:
            x = transform(x)
        with hw.autocast():
            e = model(x).float()
            if flip:
                e = e + model(x.flip(-1)).float()
        out.append(torch.nn.functional.normalize(e, dim=1).cpu())
    model.train(was)
    return torch.cat(out).double().numpy()


#: Metrics whose change from the backbone before fine-tuning every report carries, as
#: ``<key>_gain`` (> 0: fine-tuning helped): key suffix -> +1 when higher is better, -1 when lower.
GAIN_METRICS = {"/eer": -1.0, "/rank1": 1.0}


def against_before(
    evaluate: Callable[[torch.nn.Module], dict[str, float]], model: torch.nn.Module, *, baseline: bool
) -> Callable[[], dict[str, float]]:
    """Evaluate ``model`` now, before any training, and return the evaluation to use from then
    on: its results also say how far fine-tuning moved each test metric of ``GAIN_METRICS``
    from that first evaluation, so every trial reports, honestly, whether fine-tuning helped
    (the EdgeFace note found it hurt). With ``baseline`` the model never changes: the first
    evaluation is the answer, and is not computed twice."""
    with recording(0) as first:  # kept: a baseline reports this evaluation as its own
        before = evaluate(model)

    def gains(out: dict[str, float]) -> dict[str, float]:
        for k, v in before.items():
            sign = next((s for suffix, s in GAIN_METRICS.items() if k.endswith(suffix)), None)
            if sign is not None and k.startswith("eval/") and k in out:
                out[k + "_gain"] = sign * (out[k] - v)
        return out

    if baseline:

        def again() -> dict[str, float]:
            replay(first)
            return gains(dict(before))

        return again
    return lambda: gains(evaluate(model))


def fit(
    cfg: MetricLearningConfig,
    *,
    model: torch.nn.Module,
    steps_per_epoch: int,
    epoch: Callable[[torch.optim.Optimizer, object, torch.Generator], dict[str, float]],
    evaluate: Callable[[], dict[str, float]],
    generator: torch.Generator,
    report: Reporter,
    restore_from: Path | None,
) -> None:
    """``training.fit`` with the metric-learning settings of ``cfg``, over the model's
    trainable weights. ``baseline: true`` trains nothing: the backbone as loaded is
    evaluated and reported once."""
    if cfg.baseline:
        with scratch_dir("baseline") as d, recording(0) as evaluation:
            metrics = {**evaluate(), "train/epochs": 0.0}
            if evaluation:
                write_evaluation(Path(d) / EVAL_FILE, evaluation)
            report(metrics, Path(d))
        return
    training.fit(
        model=model,
        params=list(trainable_parameters(model).values()),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_epochs=cfg.warmup_epochs,
        epochs=cfg.epochs,
        eval_every=cfg.eval_every,
        steps_per_epoch=steps_per_epoch,
        epoch=epoch,
        evaluate=evaluate,
        generator=generator,
        report=report,
        restore_from=restore_from,
    )


__all__ = [
    "MetricLearningConfig",
    "Reporter",
    "as_train_set",
    "shared_rows",
    "person_images",
    "image_files",
    "read_people",
    "build_encoder",
    "embed_files",
    "fit",
    "split_identities",
    "synthfaces_export",
    "against_before",
]

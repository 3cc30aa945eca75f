"""Training and evaluation of ``pair_contrastive``, free of Ray.

One trial: read the feedback pairs, split them into train / validation / test so that no
test (or validation) pair was trained on, nor, where persons are known, any of its people; fine-tune the backbone (whole, or LoRA) with the contrastive loss of Hadsell
et al. (2006) as the MagFace note writes it,

    L = Y D^2 + (1 - Y) max(0, m - D)^2,   D = || z1/|z1| - z2/|z2| ||,

and after each epoch score the test pairs by cosine similarity: accuracy, precision, recall
and F1 at the threshold chosen on validation (or the fixed one), ROC AUC and EER.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trainables.data.json_lists import FeedbackPairs, read_feedback_pairs
from trainables.data.sources import (
    Check,
    DataError,
    DecodedCheck,
    combined_fingerprint,
    write_skipped,
)
from trainables.data.synthfaces_export import FEEDBACK
from trainables.evaluation.artifacts import record_pairs
from trainables.evaluation.decisions import choose_threshold, equal_error_rate, verification_at
from trainables.hardware import Fetcher, hardware
from trainables.metric.common import (
    Reporter,
    against_before,
    build_encoder,
    embed_files,
    fit,
    image_files,
    shared_rows,
    synthfaces_export,
    trained_backbone,  # noqa: F401  (export: re-exported)
)
from trainables.models.backbone import load_backbone
from trainables.pair_contrastive.config import PairContrastiveConfig
from trainables.training import random_flip, seed_everything, train_epoch

SPLITS = ("train", "val", "test")


def contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, same: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over pairs of Y D^2 + (1 - Y) max(0, m - D)^2 on L2-normalised embeddings.

    Written here because pytorch-metric-learning's ``ContrastiveLoss`` is a different
    function: it hinges on the distance itself (``max(0, m - D)``, unsquared, or on D^2 when
    its distance is squared) and averages positive and negative pairs separately over the
    non-zero terms. The note, and the tests, use this one.
    """
    a, b = torch.nn.functional.normalize(z1, dim=1), torch.nn.functional.normalize(z2, dim=1)
    d = torch.sqrt(((a - b) ** 2).sum(dim=1) + 1e-12)  # eps: the gradient of |x| at 0
    y = same.float()
    return (y * d**2 + (1 - y) * torch.relu(margin - d) ** 2).mean()


@dataclass(frozen=True)
class PairSplits:
    """Pairs of each split as (left, right, label) indices into ``paths``."""

    paths: tuple[str, ...]
    pairs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    by: str  # "identity" or "pair"
    dropped: int  # pairs left out: across identity splits, or sharing an image with training
    fingerprint: str
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) of unreadable images, whose pairs are dropped
    lists: tuple[int, ...] = ()  # where each pairs file's images end in ``paths`` (the training file's first)

    def added(self, source_pairs: int) -> int:
        """Different-person pairs added to held-out splits made by identity (``_balanced``)."""
        return sum(len(p[2]) for p in self.pairs.values()) + self.dropped - source_pairs


def _split_of_units(units: list, fractions: tuple[float, float], seed: int) -> dict:
    rng = np.random.default_rng([seed, 31])
    order = [units[i] for i in rng.permutation(len(units))]
    n_test, n_val = (int(round(f * len(units))) for f in fractions)
    return {u: ("test" if i < n_test else "val" if i < n_test + n_val else "train") for i, u in enumerate(order)}


def _sides(fp: FeedbackPairs, val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """Each pair's split ("" = left out).

    By identity (known): identities are dealt to the splits, and a pair of two identities
    that landed in different splits is left out, so no person (hence no image) of a test
    pair was trained on. By pair: each distinct pair (in either image order, repeats
    included) goes to one split, so no test pair was trained on; an image may still appear
    on both sides, which the test metrics report (``eval/pairs/with_training_image``).
    """
    n = len(fp)
    side = np.full(n, "", dtype=object)
    if fp.identity is not None:
        names = sorted(set(fp.identity))
        where = _split_of_units(names, (test_fraction, val_fraction), seed)
        for i, (a, b) in enumerate(zip(fp.left, fp.right)):
            sa, sb = where[fp.identity[a]], where[fp.identity[b]]
            side[i] = sa if sa == sb else ""
        return side, "identity"
    units = [(min(a, b), max(a, b)) for a, b in zip(fp.left.tolist(), fp.right.tolist())]
    where = _split_of_units(sorted(set(units)), (test_fraction, val_fraction), seed)
    side[:] = [where[u] for u in units]
    return side, "pair"


def _balanced(
    fp: FeedbackPairs, left: np.ndarray, right: np.ndarray, label: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out pairs split off by identity, with different-person pairs added, drawn from
    the images of the split's own people, up to as many as same-person pairs.

    A different-person pair survives an identity split only when both its people fall on
    the same side, so a held-out split keeps few of them, and a threshold chosen for
    accuracy on it would accept everything. With identities known, any two of the split's
    images of two different people are a true different-person pair."""
    n_pos, n_neg = int((label == 1).sum()), int((label == 0).sum())
    images = np.unique(np.concatenate([left, right]))
    ids = np.asarray([fp.identity[i] for i in images])
    if n_neg >= n_pos or len(set(ids)) < 2:
        return left, right, label
    rng = np.random.default_rng([seed, 37])
    have = {frozenset((int(a), int(b))) for a, b in zip(left, right)}
    new_l, new_r = [], []
    for _ in range(50 * (n_pos - n_neg)):
        if len(new_l) == n_pos - n_neg:
            break
        i, j = rng.integers(len(images), size=2)
        key = frozenset((int(images[i]), int(images[j])))
        if ids[i] != ids[j] and key not in have:
            have.add(key)
            new_l.append(images[i])
            new_r.append(images[j])
    return (
        np.concatenate([left, np.asarray(new_l, dtype=left.dtype)]),
        np.concatenate([right, np.asarray(new_r, dtype=right.dtype)]),
        np.concatenate([label, np.zeros(len(new_l), dtype=label.dtype)]),
    )


def _held_out(fp: FeedbackPairs, side: np.ndarray, s: str, by: str, seed: int):
    pairs = (fp.left[side == s], fp.right[side == s], fp.label[side == s])
    return _balanced(fp, *pairs, seed) if by == "identity" and s != "train" else pairs


def split_pairs(fp: FeedbackPairs, *, val_fraction: float, test_fraction: float, seed: int) -> PairSplits:
    """Train / validation / test pairs (see ``_sides``); held-out splits made by identity get
    different-person pairs of their own people up to as many as same-person pairs (``_balanced``)."""
    side, by = _sides(fp, val_fraction, test_fraction, seed)
    pairs = {s: _held_out(fp, side, s, by, seed) for s in SPLITS}
    _check(pairs, fp.source, by, val_fraction, test_fraction)
    fingerprint = combined_fingerprint(fp.fingerprint, by, seed)
    return PairSplits(fp.paths, pairs, by, int((side == "").sum()), fingerprint, tuple(fp.skipped), (len(fp.paths),))


def with_test_file(fp: FeedbackPairs, test: FeedbackPairs, *, val_fraction: float, seed: int) -> PairSplits:
    """``fp`` split into train / validation, ``test`` as the test set; refused when the test
    file shares a pair, an image or (both naming them) a person with ``fp``."""

    def unordered(f):
        return {frozenset((f.paths[a], f.paths[b])) for a, b in zip(f.left, f.right)}

    shared_pairs = unordered(fp) & unordered(test)
    if shared_pairs:
        a, b = sorted(next(iter(shared_pairs)))
        raise DataError(
            f"test pairs {test.source}: {len(shared_pairs)} of its pairs are also in {fp.source} "
            f"(e.g. {a} / {b}); testing on training pairs is what gave the MagFace note its 87.0 -> 86.5"
        )
    shared_images = sorted(set(fp.paths) & set(test.paths))
    if shared_images:
        raise DataError(
            f"test pairs {test.source}: {len(shared_images)} of its images are also in {fp.source} "
            f"(e.g. {shared_images[0]}); test on images never trained on"
        )
    if fp.identity is not None and test.identity is not None:
        shared_ids = sorted(set(fp.identity) & set(test.identity))
        if shared_ids:
            raise DataError(
                f"test pairs {test.source}: {len(shared_ids)} of its people are also in {fp.source} "
                f"(e.g. {shared_ids[0]})"
            )
    side, by = _sides(fp, val_fraction, 0.0, seed)
    offset = len(fp.paths)
    pairs = {s: _held_out(fp, side, s, by, seed) for s in ("train", "val")}
    pairs["test"] = (test.left + offset, test.right + offset, test.label)
    _check(pairs, fp.source, by, val_fraction, None)
    return PairSplits(
        fp.paths + test.paths,
        pairs,
        by,
        int((side == "").sum()),
        combined_fingerprint(fp.fingerprint, by, seed, test.fingerprint),
        tuple(fp.skipped) + tuple(test.skipped),
        (offset, offset + len(test.paths)),
    )


def _check(pairs, source, by, val_fraction, test_fraction) -> None:
    what = "identities" if by == "identity" else "pairs"
    for s, frac in (("val", val_fraction), ("test", test_fraction)):
        y = pairs[s][2]
        if not len(y) or y.min() == y.max():
            label = "validation" if s == "val" else "test"
            setting = f"{s}_fraction={frac}" if frac is not None else "the split"
            raise DataError(
                f"pairs {source}: {setting} leaves no {label} {what} with both same and different pairs "
                f"({len(y)} {label} pairs); raise it or give more pairs"
            )
    if not len(pairs["train"][2]):
        raise DataError(f"pairs {source}: the split leaves no training pairs")


def load_splits(cfg: PairContrastiveConfig, check: Check | None = None) -> PairSplits:
    """The pairs split; ``check`` finds unreadable images (``DecodedCheck``: the decode into
    the shared image cache, one per pairs file, that the trials then read)."""
    if cfg.pairs == "synthfaces":  # its own test file over the held-out people, as the note's split writes
        d = synthfaces_export(cfg)
        fp = read_feedback_pairs(d / FEEDBACK["train"], identity_from_folder=True, check=check)
        test = read_feedback_pairs(d / FEEDBACK["eval"], identity_from_folder=True, check=check)
        return with_test_file(fp, test, val_fraction=cfg.val_fraction, seed=cfg.data_seed)
    else:
        fp = read_feedback_pairs(cfg.pairs, identity_from_folder=cfg.identity_from_folder, check=check)
    if cfg.test_pairs is None:
        return split_pairs(fp, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.data_seed)
    test = read_feedback_pairs(cfg.test_pairs, identity_from_folder=cfg.identity_from_folder, check=check)
    return with_test_file(fp, test, val_fraction=cfg.val_fraction, seed=cfg.data_seed)


def list_rows(splits: PairSplits, size: int, **kw) -> list[tuple[int, int, Callable]]:
    """(start, end, rows_of) of each pairs file's images in ``splits.paths``: each file's images
    are one shared decoded-image cache (``shared_rows``), the one its check decoded."""
    out, start = [], 0
    for end in splits.lists or (len(splits.paths),):
        out.append((start, end, shared_rows(splits.paths[start:end], size, **kw)))
        start = end
    return out


class Evaluator:
    def __init__(self, cfg: PairContrastiveConfig, splits: PairSplits, lists, size: int, hw) -> None:
        self.cfg, self.hw, self.splits = cfg, hw, splits
        used = np.unique(np.concatenate([np.concatenate(splits.pairs[s][:2]) for s in ("val", "test")]))
        self.index = {int(j): i for i, j in enumerate(used)}
        # one reader per pairs file (its own cache); ``used`` is sorted, so their rows in turn are its order
        self.fetch = []
        for start, end, rows_of in lists:
            part = used[(used >= start) & (used < end)]
            if len(part):
                files = rows_of(image_files(tuple(splits.paths[j] for j in part), splits.fingerprint))
                self.fetch.append((Fetcher(files, size, hw), len(part)))
        tl, tr, _ = splits.pairs["train"]
        seen = set(tl.tolist()) | set(tr.tolist())
        left, right, _ = splits.pairs["test"]
        #: share of test pairs with an image that is also in a training pair (0 when split by identity)
        self.with_training_image = float(np.mean([a in seen or b in seen for a, b in zip(left, right)]))

    def _scores(self, emb, split):
        left, right, label = self.splits.pairs[split]
        li = np.asarray([self.index[int(j)] for j in left])
        ri = np.asarray([self.index[int(j)] for j in right])
        return np.einsum("ij,ij->i", emb[li], emb[ri]), label

    def __call__(self, model) -> dict[str, float]:
        emb = np.concatenate([embed_files(model, f, n, self.hw, flip=self.cfg.flip_test) for f, n in self.fetch])
        vs, vy = self._scores(emb, "val")
        s, y = self._scores(emb, "test")
        threshold = choose_threshold(vs, vy, self.cfg.threshold_policy, fixed=self.cfg.threshold)
        from sklearn.metrics import roc_auc_score

        out = {"val/pairs/auc": float(roc_auc_score(vy, vs)), "val/pairs/eer": equal_error_rate(vs, vy)[0]}
        out.update({f"eval/pairs/{k}": v for k, v in verification_at(s, y, threshold).items()})
        record_pairs("val/pairs", vs, vy)
        record_pairs("eval/pairs", s, y, threshold=threshold)
        out["eval/pairs/n"] = float(len(y))
        out["eval/pairs/with_training_image"] = self.with_training_image
        return out


def prepare(cfg: PairContrastiveConfig, out_dir: Path) -> dict[str, str]:
    backbone = load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed)
    build_encoder(cfg, backbone)
    # reading the pairs decodes their images into the shared image cache, once for every
    # trial: the check of unreadable images is that decode
    splits = load_splits(cfg, DecodedCheck(backbone.input_spec.size, verify=True, log=print))
    return {"data_fingerprint": splits.fingerprint, "skipped_images": str(write_skipped(out_dir, splits.skipped))}


def run(
    cfg: PairContrastiveConfig, report: Reporter, *, restore_from: Path | None = None, out_dir: Path | None = None
) -> None:
    """Fine-tune for ``cfg.epochs`` epochs (or evaluate once, ``baseline``), reporting each epoch."""
    hw = hardware(cfg)
    generator = seed_everything(cfg.seed)
    model = build_encoder(cfg).to(hw.device)
    size = model.input_spec.size
    check = DecodedCheck(size)
    splits = load_splits(cfg, check)
    lists = list_rows(splits, size, opened=check.opened)
    evaluate = against_before(Evaluator(cfg, splits, lists, size, hw), model, baseline=cfg.baseline)
    left, right, label = splits.pairs["train"]
    _, end, rows_of = lists[0]  # training pairs are the training file's, its images the first in ``paths``
    fetch = Fetcher(rows_of(image_files(splits.paths[:end], splits.fingerprint)), size, hw)
    steps = -(-len(label) // cfg.batch_size)

    def epoch(optimizer, scheduler, gen) -> dict[str, float]:
        model.train()
        order = torch.randperm(len(label), generator=gen).numpy()
        chunks = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]

        def losses():
            for c, (_, x) in zip(chunks, fetch.batches([np.concatenate([left[c], right[c]]) for c in chunks])):
                b = len(c)
                with hw.autocast():
                    z = model(random_flip(x, gen))
                z = z.float()
                yield b, contrastive_loss(z[:b], z[b:], torch.as_tensor(label[c], device=z.device), cfg.margin)

        done = train_epoch(losses(), optimizer, scheduler)
        return {"train/loss": done.mean, "train/pairs": float(len(label))}

    fit(
        cfg,
        model=model,
        steps_per_epoch=steps,
        epoch=epoch,
        evaluate=evaluate,
        generator=generator,
        report=report,
        restore_from=restore_from,
    )

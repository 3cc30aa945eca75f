"""Training and evaluation of ``triplet``, free of Ray.

One trial: read the training and test persons (with their twins), hold out validation
identities, sample the triplets of the mining level, fine-tune the backbone (whole, or LoRA)
with pytorch-metric-learning's ``TripletMarginLoss`` on the given triplets (plus, optionally,
the triplets its ``TripletMarginMiner`` finds in each batch), and evaluate after each
epoch: twin verification (genuine pairs against twin impostors) and ordinary verification
(against non-twin impostors) on the test identities, EER, ROC AUC, TAR at FAR, and accuracy,
precision, recall and F1 at the threshold chosen on the validation identities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pytorch_metric_learning import distances, losses, miners, reducers

from trainables.data.json_lists import PersonSet, read_persons
from trainables.data.sources import (
    Check,
    DataError,
    DecodedCheck,
    TrainSet,
    combined_fingerprint,
    write_skipped,
)
from trainables.data.synthfaces_export import PERSONS, TWINS
from trainables.evaluation.artifacts import record_pairs
from trainables.evaluation.decisions import choose_threshold, equal_error_rate, verification_at
from trainables.evaluation.twin_pairs import pair_scores, person_pairs
from trainables.hardware import Fetcher, hardware
from trainables.metric.common import (
    Reporter,
    against_before,
    build_encoder,
    embed_files,
    fit,
    person_images,
    split_identities,
    synthfaces_export,
    trained_backbone,  # noqa: F401  (export: re-exported)
)
from trainables.models.backbone import load_backbone
from trainables.training import random_flip, seed_everything, train_epoch
from trainables.triplet.config import TripletConfig
from trainables.triplet.mining import possible_triplets, sample_triplets


@dataclass(frozen=True)
class Splits:
    train: PersonSet
    val: PersonSet
    test: PersonSet

    @property
    def fingerprint(self) -> str:
        return combined_fingerprint(self.train.fingerprint, self.val.fingerprint, self.test.fingerprint)


def data_files(cfg: TripletConfig) -> tuple[str, str | None, str, str | None]:
    if cfg.train_persons == "synthfaces":
        d = synthfaces_export(cfg)
        return str(d / PERSONS["train"]), str(d / TWINS["train"]), str(d / PERSONS["eval"]), str(d / TWINS["eval"])
    return cfg.train_persons, cfg.train_twins, str(cfg.test_persons), cfg.test_twins


def load_splits(cfg: TripletConfig, check: Check | None = None) -> Splits:
    """Training, validation and test persons; ``check`` finds unreadable images
    (``DecodedCheck``: the decode into the shared image cache that the trials then read)."""
    tp, tw, sp, sw = data_files(cfg)
    full, test = read_persons(tp, tw, check=check), read_persons(sp, sw, check=check)
    both = sorted(set(full.names) & set(test.names))
    if both:
        raise DataError(
            f"{len(both)} test identities are also training identities (e.g. {both[0]}); evaluation "
            "must use identities the model never saw"
        )
    kept, held = split_identities(full, cfg.val_fraction, seed=cfg.data_seed)
    splits = Splits(full.subset(kept, "train"), full.subset(held, "validation"), test)
    missing = sorted(set(person_pairs(splits.test)) - set(person_pairs(splits.val)))
    if missing:  # e.g. every validation identity in one twin pair: no non-twin impostors
        raise DataError(
            f"{tp}: the validation identities ({splits.val.num_identities} held out by val_fraction="
            f"{cfg.val_fraction}) give no {' or '.join(missing)} impostor pairs to choose that "
            "threshold on (the test persons do); raise val_fraction or add persons"
        )
    return splits


class Evaluator:
    """Validation and test pairs, fixed for the trial; ``__call__(model)`` gives the metrics."""

    def __init__(self, cfg: TripletConfig, splits: Splits, images: tuple[TrainSet, TrainSet], size: int, hw) -> None:
        self.cfg, self.hw = cfg, hw
        self.sets = {}
        for name, persons, files in (("val", splits.val, images[0]), ("eval", splits.test, images[1])):
            pairs = person_pairs(persons, genuine_per_person=cfg.genuine_per_person)
            self.sets[name] = (Fetcher(files, size, hw), len(persons), pairs)

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        out: dict[str, float] = {}
        scores = {}
        for name, (fetch, n, pairs) in self.sets.items():
            emb = embed_files(model, fetch, n, self.hw, flip=self.cfg.flip_test)
            scores[name] = {p: (pair_scores(emb, pl), pl.label) for p, pl in pairs.items()}
        for protocol, (s, y) in scores["eval"].items():
            vs, vy = scores["val"][protocol]
            threshold = choose_threshold(vs, vy, self.cfg.threshold_policy)
            out[f"val/{protocol}/eer"] = equal_error_rate(vs, vy)[0]
            out.update({f"eval/{protocol}/{k}": v for k, v in verification_at(s, y, threshold).items()})
            record_pairs(f"val/{protocol}", vs, vy)
            record_pairs(f"eval/{protocol}", s, y, threshold=threshold)
        return out


def prepare(cfg: TripletConfig, out_dir: Path) -> dict[str, str]:
    """Read and check the data and the backbone once, before any trial starts."""
    backbone = load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed)
    build_encoder(cfg, backbone)  # LoRA targets that match nothing fail here
    # reading the person files decodes their images into the shared image caches, once for
    # every trial: the check of unreadable images is that decode
    splits = load_splits(cfg, DecodedCheck(backbone.input_spec.size, verify=True, log=print))
    sample_triplets(splits.train, cfg.mining_level, cfg.seed)
    if cfg.train_persons == "synthfaces":
        from trainables.data import synthfaces

        synthfaces.save_sample_grid(synthfaces.load(cfg.synthfaces()), Path(out_dir) / synthfaces.SAMPLES_FILE)
    counts = np.bincount(splits.train.identity)
    skipped = write_skipped(out_dir, splits.train.skipped, splits.val.skipped, splits.test.skipped)
    return {
        "data_fingerprint": splits.fingerprint,
        "skipped_images": str(skipped),
        "single_image_identities": str(int((counts == 1).sum())),
    }


def run(cfg: TripletConfig, report: Reporter, *, restore_from: Path | None = None, out_dir: Path | None = None) -> None:
    """Fine-tune for ``cfg.epochs`` epochs (or evaluate once, ``baseline``), reporting each epoch."""
    hw = hardware(cfg)
    generator = seed_everything(cfg.seed)
    model = build_encoder(cfg).to(hw.device)
    size = model.input_spec.size
    check = DecodedCheck(size)
    splits = load_splits(cfg, check)
    train_images, val_images, test_images = person_images(
        splits.train, splits.val, splits.test, size, opened=check.opened
    )
    evaluate = against_before(Evaluator(cfg, splits, (val_images, test_images), size, hw), model, baseline=cfg.baseline)
    triplets = sample_triplets(splits.train, cfg.mining_level, cfg.seed)
    fetch = Fetcher(train_images, size, hw)
    labels = torch.as_tensor(splits.train.identity)
    distance = (
        distances.LpDistance(normalize_embeddings=True, p=2)
        if cfg.distance == "euclidean"
        else distances.CosineSimilarity()
    )
    loss_fn = losses.TripletMarginLoss(margin=cfg.margin, distance=distance, reducer=reducers.AvgNonZeroReducer())
    miner = (
        None
        if cfg.batch_mining == "none"
        else miners.TripletMarginMiner(margin=cfg.margin, type_of_triplets=cfg.batch_mining, distance=distance)
    )
    steps = -(-len(triplets) // cfg.batch_size)

    def epoch(optimizer, scheduler, gen) -> dict[str, float]:
        model.train()
        order = torch.randperm(len(triplets), generator=gen).numpy()
        chunks = [triplets[order[i : i + cfg.batch_size]] for i in range(0, len(order), cfg.batch_size)]
        mined = []

        def losses():
            for t, (_, x) in zip(chunks, fetch.batches([c.T.reshape(-1) for c in chunks])):
                b = len(t)
                y = labels[torch.as_tensor(t.T.reshape(-1))].to(hw.device)
                with hw.autocast():
                    z = model(random_flip(x, gen))
                z = z.float()
                r = torch.arange(b, device=z.device)
                a, p, n = r, r + b, r + 2 * b
                if miner is not None:
                    ma, mp, mn = miner(z, y)
                    mined.append(len(ma))
                    a, p, n = torch.cat([a, ma]), torch.cat([p, mp]), torch.cat([n, mn])
                yield b, loss_fn(z, y, indices_tuple=(a, p, n))

        done = train_epoch(losses(), optimizer, scheduler)
        out = {
            "train/loss": done.mean,
            "train/triplets": float(len(triplets)),
            "train/possible_triplets": float(possible_triplets(splits.train)),
        }
        if miner is not None:
            out["train/mined_triplets_per_batch"] = sum(mined) / len(chunks)
        return out

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

"""Training and evaluation of ``infonce``, free of Ray.

One trial: read the training identities (holding out validation identities) and the test
identities, fine-tune the backbone (whole, or LoRA) on P x K batches (P identities, K images
each) with pytorch-metric-learning's ``SupConLoss`` or ``NTXentLoss`` at the given
temperature, part of the training images degraded as the probes will be; after each epoch,
gallery-probe identification on the held-out identities: each identity's gallery is the
mean embedding of its first ``gallery_per_identity`` clean images, its other images are
probes (degraded when ``probe_downscale`` / ``probe_blur`` say so), ranked against every
gallery by cosine similarity: rank-1, rank-5, mean average precision.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from pytorch_metric_learning import losses

from trainables.data.json_lists import PersonSet
from trainables.data.sources import (
    Check,
    DataError,
    DecodedCheck,
    TrainSet,
    combined_fingerprint,
    write_skipped,
)
from trainables.data.synthfaces_export import PERSONS
from trainables.evaluation.artifacts import active as recording_active
from trainables.evaluation.artifacts import record_ranks
from trainables.evaluation.decisions import identification, identification_ranks
from trainables.hardware import Fetcher, hardware
from trainables.infonce.config import InfoNCEConfig
from trainables.metric.common import (
    Reporter,
    against_before,
    build_encoder,
    embed_files,
    fit,
    person_images,
    read_people,
    split_identities,
    synthfaces_export,
    trained_backbone,  # noqa: F401  (export: re-exported)
)
from trainables.models.backbone import load_backbone
from trainables.training import identity_batches, random_flip, seed_everything, train_epoch


def degrade(x: torch.Tensor, *, downscale: int, blur: float) -> torch.Tensor:
    """Images (B, 3, H, W, 0..255) as a worse camera sees them: down-sampled by ``downscale``
    (area) and back up (bilinear), then blurred (Gaussian, ``blur`` sigma); same size."""
    import torchvision.transforms.functional as tf

    y = x.float()
    if downscale > 1:
        h, w = y.shape[-2:]
        small = torch.nn.functional.interpolate(y, size=(max(h // downscale, 1), max(w // downscale, 1)), mode="area")
        y = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    if blur > 0:
        k = 2 * math.ceil(3 * blur) + 1
        y = tf.gaussian_blur(y, kernel_size=[k, k], sigma=[blur, blur])
    return y


def load_splits(cfg: InfoNCEConfig, check: Check | None = None) -> tuple[PersonSet, PersonSet, PersonSet]:
    """(train, validation, test) identities; ``check`` finds unreadable images
    (``DecodedCheck``: the decode into the shared image cache that the trials then read)."""
    if cfg.train_data == "synthfaces":
        d = synthfaces_export(cfg)
        train_list, test_list = str(d / PERSONS["train"]), str(d / PERSONS["eval"])
    else:
        train_list, test_list = cfg.train_data, str(cfg.test_data)
    full, test = read_people(train_list, check=check), read_people(test_list, check=check)
    both = sorted(set(full.names) & set(test.names))
    if both:
        raise DataError(
            f"{len(both)} test identities are also training identities (e.g. {both[0]}); evaluation "
            "must use identities the model never saw"
        )
    kept, held = split_identities(full, cfg.val_fraction, seed=cfg.data_seed)
    train, val = full.subset(kept, "train"), full.subset(held, "validation")
    for name, ps in (("validation", val), ("test", test)):
        gallery_probe(ps, cfg.gallery_per_identity, name)  # refuses a set with no usable identity
    if np.bincount(train.identity).max() < 2:
        raise DataError(f"{full.source}: no training identity has two images, so no positive pair")
    return train, val, test


def gallery_probe(persons: PersonSet, g: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(gallery rows, probe rows): the first ``g`` images of each identity with more than
    ``g`` images, and the rest; identities with ``g`` or fewer images take no part."""
    gallery, probes = [], []
    for k in range(persons.num_identities):
        rows = persons.images_of(k)
        if len(rows) > g:
            gallery.append(rows[:g])
            probes.append(rows[g:])
    if len(gallery) < 2:
        raise DataError(
            f"{what} identities of {persons.source}: fewer than two have more than "
            f"gallery_per_identity={g} images, so there is nothing to identify"
        )
    return np.concatenate(gallery), np.concatenate(probes)


class Evaluator:
    """Gallery-probe identification on the validation and the test identities."""

    def __init__(
        self, cfg: InfoNCEConfig, val: PersonSet, test: PersonSet, images: tuple[TrainSet, TrainSet], size: int, hw
    ) -> None:
        self.cfg, self.hw = cfg, hw
        self.sets = {}
        for name, ps, files in (("val", val, images[0]), ("eval", test, images[1])):
            g, p = gallery_probe(ps, cfg.gallery_per_identity, name)
            self.sets[name] = (Fetcher(files, size, hw), ps.identity, g, p)

    def __call__(self, model) -> dict[str, float]:
        cfg = self.cfg
        worse = (lambda x: degrade(x, downscale=cfg.probe_downscale, blur=cfg.probe_blur)) if cfg.degrades else None
        out: dict[str, float] = {}
        for name, (fetch, ids, g, p) in self.sets.items():
            gal = embed_files(model, fetch, 0, self.hw, flip=cfg.flip_test, rows=g)
            prb = embed_files(model, fetch, 0, self.hw, flip=cfg.flip_test, rows=p, transform=worse)
            labels = np.unique(ids[g])
            means = np.stack([gal[ids[g] == k].mean(axis=0) for k in labels])
            m = identification(means, labels, prb, ids[p], ranks=(1, 5))
            if recording_active():
                record_ranks(f"{name}/gallery", *identification_ranks(means, labels, prb, ids[p]), ids[p])
            out.update({f"{name}/gallery/{k}": v for k, v in m.items()})
            out[f"{name}/gallery/probes"] = float(len(p))
        return out


def prepare(cfg: InfoNCEConfig, out_dir: Path) -> dict[str, str]:
    backbone = load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed)
    build_encoder(cfg, backbone)
    # reading the lists decodes their images into the shared image caches, once for every
    # trial: the check of unreadable images is that decode
    train, val, test = load_splits(cfg, DecodedCheck(backbone.input_spec.size, verify=True, log=print))
    if cfg.train_data == "synthfaces":
        from trainables.data import synthfaces

        synthfaces.save_sample_grid(synthfaces.load(cfg.synthfaces()), Path(out_dir) / synthfaces.SAMPLES_FILE)
    counts = np.bincount(train.identity)
    fp = combined_fingerprint(train.fingerprint, val.fingerprint, test.fingerprint)
    skipped = write_skipped(out_dir, train.skipped, val.skipped, test.skipped)
    return {
        "data_fingerprint": fp,
        "skipped_images": str(skipped),
        "single_image_identities": str(int((counts == 1).sum())),
    }


def run(cfg: InfoNCEConfig, report: Reporter, *, restore_from: Path | None = None, out_dir: Path | None = None) -> None:
    """Fine-tune for ``cfg.epochs`` epochs (or evaluate once, ``baseline``), reporting each epoch."""
    hw = hardware(cfg)
    generator = seed_everything(cfg.seed)
    model = build_encoder(cfg).to(hw.device)
    size = model.input_spec.size
    check = DecodedCheck(size)
    train, val, test = load_splits(cfg, check)
    train_images, val_images, test_images = person_images(train, val, test, size, opened=check.opened)
    evaluate = against_before(
        Evaluator(cfg, val, test, (val_images, test_images), size, hw), model, baseline=cfg.baseline
    )
    fetch = Fetcher(train_images, size, hw)
    labels = train.identity
    batch = cfg.identities_per_batch * cfg.images_per_identity
    loss_fn = (
        losses.SupConLoss(temperature=cfg.temperature)
        if cfg.loss == "supcon"
        else losses.NTXentLoss(temperature=cfg.temperature)
    )
    steps = len(
        identity_batches(labels, batch_size=batch, per_identity=cfg.images_per_identity, generator=torch.Generator())
    )

    def epoch(optimizer, scheduler, gen) -> dict[str, float]:
        model.train()
        chunks = identity_batches(labels, batch_size=batch, per_identity=cfg.images_per_identity, generator=gen)

        def losses():
            for idx, x in fetch.batches(chunks):
                x = random_flip(x, gen)
                if cfg.degrades and cfg.train_degraded > 0:
                    which = (torch.rand(len(idx), generator=gen) < cfg.train_degraded).to(x.device)
                    x = torch.where(
                        which[:, None, None, None],
                        degrade(x, downscale=cfg.probe_downscale, blur=cfg.probe_blur),
                        x.float(),
                    )
                y = torch.as_tensor(labels[idx], device=hw.device)
                with hw.autocast():
                    z = model(x)
                yield len(idx), loss_fn(z.float(), y)

        done = train_epoch(losses(), optimizer, scheduler)
        return {"train/loss": done.mean, "train/images": float(done.seen)}

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

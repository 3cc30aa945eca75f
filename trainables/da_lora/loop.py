"""Training and evaluation of ``da_lora``, free of Ray: usable from tests, scripts and a GPU box.

One trial: load the training data (synthfaces, an image folder or a manifest, optionally
cut to ``samples_per_identity``), build the adapted backbone and the domain classifier,
imprint the CosFace head, optionally meta-learn the LoRA initialisation (MAML), then train
for ``epochs`` epochs on identity-balanced batches with

    loss = CosFace(z, y) + lambda_contrastive * SupCon(z, y) + lambda_domain * CE(classifier(z), domain)

evaluating after every epoch on held-out identities. A term whose weight is 0 is not
computed at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from pytorch_metric_learning.losses import CosFaceLoss, SupConLoss

from trainables.da_lora.config import HELDOUT, DaLoraConfig
from trainables.da_lora.evaluate import Evaluator, _once
from trainables.da_lora.maml import maml_initialise
from trainables.da_lora.model import DaLoraModel
from trainables.da_lora.unlabeled import (
    UnlabeledBatches,
    check_disjoint,
    entropy,
    hidden_domains,
    read_unlabeled_folder,
    split_hidden,
)
from trainables.data import synthfaces, synthfaces_export
from trainables.data.image_cache import Rows, image_files
from trainables.data.sources import (  # noqa: F401  (SKIPPED_FILE: re-exported)
    SKIPPED_FILE,
    DataError,
    TrainSet,
    domain_groups,
    group_names,
    limit_per_identity,
    read_image,
    read_train_data,
    without_unreadable,
    write_skipped,
)
from trainables.data.splits import hold_out
from trainables.errors import TrainableInputError
from trainables.evaluation.attributes import Attributes, read_attributes
from trainables.evaluation.benchmarks import PairBenchmark, load_benchmark
from trainables.evaluation.disjoint import (  # noqa: F401  (check_identity_overlap: re-exported)
    check_benchmark_overlap,
    check_identity_overlap,
    check_same_files,
    check_synthfaces_test,
)
from trainables.evaluation.ijb import IjbBenchmark, load_ijb
from trainables.evaluation.pairs import identity_units
from trainables.evaluation.synthfaces_eval import DomainVerification
from trainables.evaluation.tinyface import IdentificationBenchmark, load_identification
from trainables.hardware import Fetcher, Hardware, hardware  # noqa: F401  (re-exported)
from trainables.models.adapt import adapt, trainable_parameters
from trainables.models.backbone import Backbone, load_backbone
from trainables.protocol import Reporter
from trainables.training import (
    dense_labels,
    fit,
    identity_batches,
    random_flip,
    random_view,
    seed_everything,
    train_epoch,
)


# ------------------------------------------------------------------ data
@dataclass
class TrialData:
    """What a trial trains and evaluates on: three identity-disjoint groups.

    ``train``: the identities trained on; ``val``: validation sets (``val/...``: identities
    held out of the training data, and ``val_data`` benchmarks), on which every choice of a
    study is made; ``synth`` / ``benchmarks``: the test sets (``eval/...``), only reported.
    """

    train: TrainSet
    synth: synthfaces.FaceSet | None
    benchmarks: list[PairBenchmark]
    num_domains: int
    val: DomainVerification | None = None
    val_benchmarks: list[PairBenchmark] = field(default_factory=list)
    ijb: list[IjbBenchmark] = field(default_factory=list)
    identification: list[IdentificationBenchmark] = field(default_factory=list)
    attributes: Attributes | None = None
    unlabeled: TrainSet | None = None
    """Target images without labels (``unlabeled_data``), for ``lambda_unlabeled``'s loss."""


def _held_out_split(cfg: DaLoraConfig, full: TrainSet, twins: np.ndarray) -> tuple[TrainSet, TrainSet | None]:
    """Split ``val_fraction`` of the training identities off as validation identities (twins
    together); they are evaluated like the test identities, as ``val/<set>/...``."""
    if cfg.val_fraction == 0:
        return full, None
    ids = np.unique(full.identity)
    held = hold_out(identity_units(ids, twins), cfg.val_fraction, seed=cfg.data_seed)
    rows = np.isin(full.identity, held)
    if len(held) < 4 or not rows.any():
        raise DataError(
            f"val_fraction={cfg.val_fraction} holds out {len(held)} of the {len(ids)} training "
            "identities; validation needs at least 4 (raise val_fraction, give val_data, or set "
            "val_fraction: 0 to train on every identity and select nothing)"
        )
    left = len(ids) - len(held)
    if left < max(4, len(held)):  # a floor for training too: 0.99 would train on 3 of 120 people
        raise DataError(
            f"val_fraction={cfg.val_fraction} holds out {len(held)} of the {len(ids)} training identities for "
            f"validation and trains on {left}; training needs at least {max(4, len(held))} (at least 4, and no "
            "fewer than validation gets): lower val_fraction"
        )
    return full.select(np.flatnonzero(~rows)), full.select(np.flatnonzero(rows))


def _cached_training_images(cfg: DaLoraConfig, listed: TrainSet, image_size: int, *, verify: bool, log) -> TrainSet:
    """The training images as rows of the shared decoded-image cache of the whole listing:
    decoding it is also the check of unreadable images (they are skipped, with their reason,
    as ``read_train_data`` skips them), and the training and validation sets, however they are
    split (``val_fraction``, ``data_seed``, ``samples_per_identity``), are views of its rows."""
    cache = image_files(list(listed.paths or ()), image_size, verify=verify, log=log)
    failed = {row for row, _ in cache.failed}
    bad = [(listed.paths[row], why) for row, why in cache.failed]  # type: ignore[index]
    full = without_unreadable(listed, bad, cfg.train_data)
    return replace(full, images=Rows(cache.images, [i for i in range(len(listed)) if i not in failed]))


def _validation(
    cfg: DaLoraConfig, full: TrainSet, val: TrainSet, twins: np.ndarray, image_size: int
) -> DomainVerification:
    if isinstance(val.images, torch.Tensor):  # synthfaces: every domain, cross-domain too, as the test identities
        images, domain, domains = val.images.numpy(), val.domain, full.domains
    else:  # image files (rows of the shared cache, read in batches): one pooled set
        images, domain, domains = val.images, np.zeros(len(val), dtype=np.int64), (HELDOUT,)
    try:
        return DomainVerification(images, val.identity, domain, twins, domains, prefix="val", flip=cfg.flip_test)
    except ValueError as err:
        raise DataError(
            f"val_fraction={cfg.val_fraction}: the validation identities cannot form verification pairs ({err})"
        ) from None


def load_data(cfg: DaLoraConfig, image_size: int, *, verify: bool = False, log=None) -> TrialData:
    """Training set, validation sets and test sets of a trial, checked against the config.

    Images on disk come from the shared decoded-image cache (``trainables.data.image_cache``):
    decoded once per study, by the driver's ``prepare`` (``verify``: the cache's content is
    checked against its digests, ``log``: where it is, how large, how long it took), and read
    by every trial through the page cache."""
    synth = None
    if cfg.train_data == "synthfaces":
        synth = synthfaces.load(cfg.synthfaces())
        tr = synth.group("train")
        named = synthfaces_export.identity_names(synth)["train"]
        full = TrainSet(
            identity=tr.identity,
            domain=tr.domain,
            domains=synth.domains,
            fingerprint=synth.fingerprint,
            images=torch.as_tensor(tr.images),
            # the names its export gives them, so that a pair list over them is caught below
            identity_names=tuple(named.get(i, "") for i in range(int(tr.identity.max()) + 1)),
        )
    else:
        listed = read_train_data(cfg.train_data, check=False)
        if not cfg.benchmarks and not cfg.ijb and not cfg.identification:
            raise DataError(
                f"train_data {cfg.train_data}: name at least one benchmark to evaluate on "
                "(benchmarks: {lfw: /path/to/lfw.bin}, or ijb: {ijbc: /path/to/IJBC})"
            )
        full = _cached_training_images(cfg, listed, image_size, verify=verify, log=log)
    hidden = hidden_domains(cfg.unlabeled_data)  # synthfaces domains whose labels are hidden
    labelled = tuple(d for d in full.domains if d not in hidden)
    k = cfg.num_domains or len(labelled)
    if k > len(labelled):
        raise DataError(
            f"num_domains={k}, but the training data has {len(labelled)} domains with labels ({', '.join(labelled)})"
        )
    check_domain_components(cfg, k, labelled)
    check_same_files(cfg.val_data, cfg.benchmarks)
    shared = dict(size=image_size, verify=verify, log=log)
    benchmarks = [load_benchmark(name, path, **shared) for name, path in sorted(cfg.benchmarks.items())]
    val_benchmarks = [load_benchmark(name, path, **shared) for name, path in sorted(cfg.val_data.items())]
    ijb = [load_ijb(name, root, **shared) for name, root in sorted(cfg.ijb.items())]
    ident = [load_identification(name, root, **shared) for name, root in sorted(cfg.identification.items())]
    attributes = read_attributes(cfg.attributes) if cfg.attributes else None
    # the names of every training identity, the held-out ones included: none may be tested on
    check_identity_overlap(full, benchmarks)
    check_identity_overlap(full, val_benchmarks, role="validation benchmark")
    check_benchmark_overlap(val_benchmarks, benchmarks)
    if synth is not None:
        check_synthfaces_test(val_benchmarks, synth, image_size)
    ids = np.unique(full.identity)
    twins = synth.twin_of if synth is not None else np.full(int(ids.max()) + 1, -1)
    train, held = _held_out_split(cfg, full, twins)
    unlabeled, names = None, ()
    if hidden:  # after the held-out split: the validation identities keep their labelled images
        train, unlabeled = split_hidden(train, hidden)
    elif cfg.unlabeled_data:
        unlabeled, names = read_unlabeled_folder(cfg.unlabeled_data, image_size, verify=verify, log=log)
    if unlabeled is not None and verify:  # once per study, where it prepares (trials read what it checked)
        sets: dict[str, tuple[object, set[str]]] = {}
        if held is not None:
            sets["validation identities"] = (_pixels(held.images), held.names())
        if synth is not None:
            sets["test identities (synthfaces)"] = (synth.group("eval").images, set())
        for b in val_benchmarks:
            sets[f"validation benchmark {b.name}"] = (b.images.numpy(), set(b.identity_names))
        for b in benchmarks:
            sets[f"test benchmark {b.name}"] = (b.images.numpy(), set(b.identity_names))
        check_disjoint(unlabeled, names, sets)
    train = limit_per_identity(train, cfg.samples_per_identity, seed=cfg.data_seed)
    val = None if held is None else _validation(cfg, full, held, twins, image_size)
    return TrialData(train, synth, benchmarks, k, val, val_benchmarks, ijb, ident, attributes, unlabeled)


def _pixels(images):
    """A set's images as an indexable array (synthfaces' tensor, or rows of the shared cache)."""
    return images.numpy() if isinstance(images, torch.Tensor) else images


# ------------------------------------------------------------------ model and losses
def check_domain_components(cfg: DaLoraConfig, groups: int, domains: tuple[str, ...]) -> None:
    """Refuse components that act per domain when the training data gives them one domain
    group: they would run and measure nothing (an ablation row equal to plain LoRA)."""
    parts = cfg.domain_components()
    if parts and groups < 2:
        why = (
            f"num_domains=1 makes one group of its {len(domains)} domains"
            if len(domains) > 1
            else f"train_data has one domain ({domains[0]})"
        )
        raise DataError(
            f"{' and '.join(parts)} {'needs' if len(parts) == 1 else 'need'} two or more domains, but {why}: give the training images' domains "
            "(a manifest's domain column, or folders root/<domain>/<identity>/*.jpg), or leave these components off"
        )


def build_model(cfg: DaLoraConfig, num_domains: int, backbone: Backbone | None = None) -> DaLoraModel:
    """The adapted backbone (loaded unless given) and, when the config uses one, the domain classifier."""
    backbone = adapt(
        backbone or load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed),
        mode=cfg.adaptation,
        lora_rank=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        lora_targets=cfg.lora_targets,
        domain_lora=cfg.domain_lora,
        num_domains=num_domains,
    )
    return DaLoraModel(backbone, num_domains=num_domains, with_classifier=cfg.uses_classifier)


def trained_backbone(cfg: DaLoraConfig, state: dict[str, torch.Tensor]) -> Backbone:
    """The trial's backbone with a checkpoint's trainable tensors (what ``export`` writes out):
    the model built from the config, its domains counted from the tensors themselves."""
    k = next((int(v.shape[0]) for n, v in state.items() if n.endswith("lora_A") and v.dim() == 3), None)
    k = k or next((int(v.shape[0]) for n, v in state.items() if n == "classifier.weight"), None) or 1
    model = build_model(cfg, k)
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        raise TrainableInputError(f"the checkpoint holds tensors this config does not build, e.g. {unexpected[0]}")
    return model.backbone


class Objective(torch.nn.Module):
    """CosFace + lambda_contrastive * SupCon + lambda_domain * domain cross-entropy
    + lambda_unlabeled * the entropy of unlabelled target images' identity posterior."""

    def __init__(self, cfg: DaLoraConfig, model: DaLoraModel, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.cosface = CosFaceLoss(
            num_classes=num_classes, embedding_size=model.embed_dim, margin=cfg.cosface_margin, scale=cfg.cosface_scale
        )
        # SupCon (Khosla et al. 2020) is InfoNCE with every same-label sample as a positive:
        # here, the same identity seen in any domain.
        self.contrastive = SupConLoss(temperature=cfg.contrastive_temperature) if cfg.lambda_contrastive else None
        self.parts: dict[str, float] = {}

    def forward(
        self,
        model: DaLoraModel,
        z: torch.Tensor,
        labels: torch.Tensor,
        groups: torch.Tensor,
        unlabeled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        z = z.float()
        loss = self.cosface(z, labels)
        parts = {"cosface": loss.detach()}
        if unlabeled is not None:  # entropy minimisation on target images (trainables.da_lora.unlabeled)
            u = entropy(self.cosface.W, unlabeled, self.cfg.cosface_scale)
            parts["unlabeled"] = u.detach()
            loss = loss + self.cfg.lambda_unlabeled * u
        if self.contrastive is not None:
            c = self.contrastive(z, labels)
            parts["contrastive"] = c.detach()
            loss = loss + self.cfg.lambda_contrastive * c
        if self.cfg.lambda_domain:
            d = torch.nn.functional.cross_entropy(model.domain_logits(z), groups)
            parts["domain"] = d.detach()
            loss = loss + self.cfg.lambda_domain * d
        self.parts = parts
        return loss


@torch.no_grad()
def imprint(head: CosFaceLoss, model: torch.nn.Module, fetch: Fetcher, labels: torch.Tensor, hw: Hardware) -> None:
    """Start each class weight at its class's mean embedding ("weight imprinting").

    A random margin head drags a pretrained backbone off its features during the first
    steps; imprinted weights make the first gradients already about the new data.
    """
    model.eval()
    sums = torch.zeros(head.W.shape[1], head.W.shape[0])
    order = np.arange(len(labels))
    for idx, x in fetch.batches([order[i : i + 256] for i in range(0, len(order), 256)]):
        with hw.autocast():
            sums.index_add_(0, labels[idx], torch.nn.functional.normalize(model(x).float(), dim=1).cpu())
    head.W.data.copy_(torch.nn.functional.normalize(sums, dim=1).T.to(head.W.device))


@torch.no_grad()
def frozen_views(model: torch.nn.Module, fetch: Fetcher, n: int, hw: Hardware) -> torch.Tensor:
    """(N, 2, D) features of every image and of its mirror image, in eval mode."""
    model.eval()
    order = np.arange(n)
    out = []
    for _, x in fetch.batches([order[i : i + 256] for i in range(0, n, 256)]):
        with hw.autocast():
            out.append(torch.stack([model(x).float(), model(x.flip(-1)).float()], dim=1))
    return torch.cat(out)


# ------------------------------------------------------------------ the trial


def prepare(cfg: DaLoraConfig, out_dir: Path) -> dict[str, str]:
    """Build the data and the backbone every trial shares, check that the config fits them,
    save a grid of sample images into ``out_dir`` (synthfaces), return the data's provenance."""
    backbone = load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed)
    data = load_data(cfg, backbone.input_spec.size, verify=True, log=print)  # the shared image caches: built here
    build_model(cfg, data.num_domains, backbone)  # LoRA targets that match nothing fail here
    if data.synth is not None:
        synthfaces.save_sample_grid(data.synth, Path(out_dir) / synthfaces.SAMPLES_FILE)
    write_skipped(out_dir, data.train.skipped, data.unlabeled.skipped if data.unlabeled is not None else ())
    # identities with one image stay in: a CosFace class of their own, and for SupCon only
    # negatives (an anchor without a positive adds nothing to pytorch-metric-learning's SupConLoss)
    counts = np.bincount(data.train.identity)
    return {
        "data_fingerprint": data.train.fingerprint,
        "skipped_images": str(len(data.train.skipped)),
        "single_image_identities": str(int((counts == 1).sum())),
        **({"unlabeled_images": str(len(data.unlabeled))} if data.unlabeled is not None else {}),
    }


def run(cfg: DaLoraConfig, report: Reporter, *, restore_from: Path | None = None, out_dir: Path | None = None) -> None:
    """Train for ``cfg.epochs`` epochs, evaluating and reporting after each."""
    hw = hardware(cfg)
    generator = seed_everything(cfg.seed)
    backbone = load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed)
    data = load_data(cfg, backbone.input_spec.size)
    train = data.train
    labels = dense_labels(train.identity)
    groups = torch.as_tensor(domain_groups(train.domain, data.num_domains))
    model = build_model(cfg, data.num_domains, backbone).to(hw.device)
    objective = Objective(cfg, model, int(labels.max()) + 1).to(hw.device)
    fetch = Fetcher(train, model.backbone.input_spec.size, hw)
    imprint(objective.cosface, model, fetch, labels, hw)

    def meta_learn() -> None:
        maml_initialise(
            model,
            objective.cosface,
            lambda idx: (random_flip(fetch(idx), generator), labels[idx].to(hw.device)),
            domain=train.domain,
            groups=groups.numpy(),
            inner_steps=cfg.maml_inner_steps,
            inner_lr=cfg.maml_inner_lr,
            meta_steps=cfg.maml_meta_steps,
            outer_lr=cfg.maml_outer_lr,
            batch_size=cfg.maml_batch_size,
            first_order=cfg.maml_first_order,
            generator=generator,
        )

    per_epoch = len(
        identity_batches(
            labels.numpy(),
            batch_size=cfg.batch_size,
            per_identity=cfg.images_per_identity_in_batch,
            generator=torch.Generator(),
        )
    )
    evaluate = Evaluator(cfg, data, hw)
    unlabeled = None
    if data.unlabeled is not None and cfg.lambda_unlabeled:
        unlabeled = (
            Fetcher(data.unlabeled, model.backbone.input_spec.size, hw),
            UnlabeledBatches(len(data.unlabeled), cfg.batch_size),
        )
    views = None
    if not trainable_parameters(model):
        # Frozen backbone: its features never change, so compute them (and those of the
        # flipped images) once and train the head on them; evaluation is computed once too.
        views = frozen_views(model, fetch, len(labels), hw)
        evaluate = _once(evaluate)

    def epoch(optimizer, scheduler, generator) -> dict[str, float]:
        t0 = time.perf_counter()
        losses = batch_losses(cfg, model, objective, fetch, views, labels, groups, generator, hw, unlabeled)
        done = train_epoch(losses, optimizer, scheduler, parts=lambda: objective.parts)
        return {
            "train/loss": done.mean,
            **{f"train/{k}_loss": v for k, v in done.parts.items()},
            "train/images_per_s": done.seen / (time.perf_counter() - t0),
        }

    fit(
        model=model,
        params=list(trainable_parameters(model).values()) + list(objective.parameters()),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_epochs=cfg.warmup_epochs,
        epochs=cfg.epochs,
        eval_every=cfg.eval_every,
        steps_per_epoch=per_epoch,
        epoch=epoch,
        evaluate=lambda: evaluate(model),
        generator=generator,
        report=report,
        restore_from=restore_from,
        modules={"objective": objective},
        before_training=meta_learn,
        save_embeddings=cfg.save_embeddings,
    )


def batch_losses(
    cfg, model, objective, fetch, views, labels, groups, generator, hw, unlabeled=None
) -> Iterator[tuple[int, torch.Tensor]]:
    """The losses of one epoch of identity-balanced batches, for ``training.train_epoch``
    (from the frozen features ``views`` when the backbone does not train; ``unlabeled``: the
    fetcher and batches of the unlabelled target images, when their loss is on)."""
    model.train()
    batches = identity_batches(
        labels.numpy(), batch_size=cfg.batch_size, per_identity=cfg.images_per_identity_in_batch, generator=generator
    )
    if views is not None:
        source = ((idx, random_view(views[torch.as_tensor(idx)], generator)) for idx in batches)
    else:
        source = ((idx, random_flip(x, generator)) for idx, x in fetch.batches(batches))
    for idx, x in source:
        y, g = labels[idx].to(hw.device), groups[idx].to(hw.device)
        with hw.autocast():
            z = x if views is not None else model(x)
            zu = None
            if unlabeled is not None:  # a batch of target images beside each labelled one
                fetch_u, batches_u = unlabeled
                zu = model(random_flip(fetch_u(batches_u.next(generator)), generator))
        yield len(idx), objective(model, z, y, g, zu)  # the losses in float32, outside autocast

"""Training and evaluation of ``probe``, free of Ray.

One trial: the classes and their split (``data.py``); each encoder's embeddings of every
image, from the shared cache (``cache.py``: the run's ``prepare`` has built them, once, in
the driver) or, with ``embedding_cache: false``, encoded again here; the head (linear,
SupCon + linear, or zero-shot prompts), one per encoder under late fusion; then the note's
evaluation on the validation and test images, reported once, and the note's files written
into the trial's directory.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trainables.checkpointing import scratch_dir
from trainables.data.sources import write_skipped
from trainables.hardware import Fetcher, Hardware, hardware
from trainables.models.backbone import resolve
from trainables.probe import cache, encoders
from trainables.probe.config import ProbeConfig
from trainables.probe.data import TEST, TRAIN, VAL, ClassSet, load_classes
from trainables.probe.heads import fit_probe, fusion_weights, zero_shot_logits
from trainables.probe.metrics import evaluate
from trainables.protocol import Reporter
from trainables.training import seed_everything

OUTPUT_FILES = ("config.json", "predictions.npy", "true_labels.npy", "names.json", "results.csv", "summary.json")


def cache_parts(cfg: ProbeConfig, reference: str, cs: ClassSet) -> dict:
    """What one encoder's embeddings of ``cs`` depend on (the cache key)."""
    return {
        "encoder": reference,
        "identity": encoders.identity(reference, resolution=cfg.image_size, data_seed=cfg.data_seed),
        "flip": cfg.flip_test,
        "data": cs.fingerprint,
        "images": len(cs.labels),
    }


def _encode(cfg: ProbeConfig, reference: str, cs: ClassSet, hw: Hardware) -> np.ndarray:
    backbone = encoders.load(reference, resolution=cfg.image_size, data_seed=cfg.data_seed, device=hw.device)
    fetch = Fetcher(cs.images, backbone.input_spec.size, hw)
    return encoders.encode(backbone, fetch, len(cs.labels), hw, flip=cfg.flip_test, batch_size=cfg.encode_batch)


def features(
    cfg: ProbeConfig, reference: str, cs: ClassSet, hw: Hardware, *, log: Callable[[str], None] = print
) -> tuple[np.ndarray, dict]:
    """(N, D) embeddings of every image of ``cs`` by one encoder, and where they came from."""
    t0 = time.perf_counter()
    if not cfg.embedding_cache:
        return _encode(cfg, reference, cs, hw), {
            "encoder": reference,
            "cache": None,
            "built": True,
            "seconds": time.perf_counter() - t0,
        }
    hit = cache.embeddings(
        cache_parts(cfg, reference, cs), len(cs.labels), lambda: _encode(cfg, reference, cs, hw), log=log
    )
    return hit.array, {"encoder": reference, "cache": str(hit.path), "built": hit.built, "seconds": hit.seconds}


def prepare(cfg: ProbeConfig, out_dir: Path) -> dict[str, str]:
    """Check the data and the encoders, and fill the embedding cache once, here in the driver
    (with every CPU), so that trials only read it."""
    cs = load_classes(cfg)
    hw = hardware(cfg)
    for ref in cfg.encoders:
        if cfg.embedding_cache:
            features(cfg, ref, cs, hw)
        else:
            resolve(ref, resolution=cfg.image_size, data_seed=cfg.data_seed)
    if cfg.head == "zero_shot":
        encoders.text_features(cfg.encoders[0], cs.names[:1], cfg.prompts[:1])  # a checkpoint without text fails here
    if cfg.data == "synthfaces":
        from trainables.data import synthfaces

        synthfaces.save_sample_grid(synthfaces.load(cfg.synthfaces()), Path(out_dir) / synthfaces.SAMPLES_FILE)
    return {"data_fingerprint": cs.fingerprint, "skipped_images": str(write_skipped(out_dir, cs.images.skipped))}


def _metrics(prefix: str, m: dict) -> dict[str, float]:
    return {
        f"{prefix}/acc": m["accuracy"],
        f"{prefix}/macro_f1": m["macro_f1"],
        f"{prefix}/pred_cv": m["prediction_cv"],
    }


def run(cfg: ProbeConfig, report: Reporter, *, restore_from: Path | None = None, out_dir: Path | None = None) -> None:
    """Train the head(s), evaluate, write the output files into ``out_dir``, report once.
    (A probe trains in seconds: a restored trial simply runs again.)"""
    t_start = time.perf_counter()
    hw = hardware(cfg)
    gen = seed_everything(cfg.seed)
    cs = load_classes(cfg)
    train, val, test = cs.rows(TRAIN), cs.rows(VAL), cs.rows(TEST)
    y = torch.as_tensor(cs.labels)
    sources, feats = [], []
    for ref in cfg.encoders:
        array, where = features(cfg, ref, cs, hw)
        with warnings.catch_warnings():  # the memory map is read-only, and only ever read: no copy
            warnings.simplefilter("ignore", UserWarning)
            feats.append(torch.from_numpy(array))
        sources.append(where)
    t_head = time.perf_counter()
    n_classes = len(cs.names)
    state: dict[str, torch.Tensor] = {}
    extra: dict[str, float] = {}
    if cfg.head == "zero_shot":
        text = encoders.text_features(cfg.encoders[0], cs.names, cfg.prompts, device=hw.device)
        logits = torch.from_numpy(zero_shot_logits(feats[0].numpy(), text))
        state["text_features"] = torch.from_numpy(text)
    elif len(feats) == 1 or cfg.fusion == "concat":
        x = torch.cat([torch.nn.functional.normalize(f, dim=1) for f in feats], dim=1)
        probe = fit_probe(x[train], y[train], n_classes, cfg, gen)
        logits = probe.logits(x)
        state.update(probe.state())
    else:
        per = []
        for i, f in enumerate(feats):
            probe = fit_probe(f[train], y[train], n_classes, cfg, gen)
            per.append(probe.logits(f))
            state.update({f"encoder{i}.{k}": v for k, v in probe.state().items()})
        if cfg.fusion == "late_fusion":
            w = torch.full((len(per),), 1.0 / len(per))
        else:
            w = fusion_weights([p[val] for p in per], y[val])
        logits = sum(wi * p for wi, p in zip(w, per))
        state["fusion_weights"] = w
        extra.update({f"train/fusion_weight/{i}": float(wi) for i, wi in enumerate(w)})
    pred = logits.argmax(1).numpy()
    head_s = time.perf_counter() - t_head
    result_test = evaluate(pred[test], cs.labels[test], cs.names)
    metrics = {
        **_metrics("eval/probe", result_test),
        **extra,
        "eval/probe/classes": float(n_classes),
        "eval/probe/test_images": float(len(test)),
        "train/acc": float((pred[train] == cs.labels[train]).mean()),
        "train/embed_s": sum(s["seconds"] for s in sources),
        "train/head_s": head_s,
        "train/encoded": float(sum(bool(s["built"]) for s in sources)),
    }
    result_val = evaluate(pred[val], cs.labels[val], cs.names) if len(val) else None
    if result_val:
        metrics.update(_metrics("val/probe", result_val))
    if out_dir is not None:
        write_outputs(
            Path(out_dir),
            cfg,
            cs,
            pred[test],
            result_test,
            result_val,
            sources,
            {"embed_s": metrics["train/embed_s"], "head_s": head_s, "trial_s": time.perf_counter() - t_start},
            extra,
        )
    with scratch_dir("probe") as d:
        torch.save(state, Path(d) / "head.pt")
        report(metrics, Path(d))


def write_outputs(
    out: Path,
    cfg: ProbeConfig,
    cs: ClassSet,
    pred: np.ndarray,
    test: dict,
    val: dict | None,
    sources: list[dict],
    seconds: dict,
    extra: dict,
) -> None:
    """The note's files: config.json, predictions.npy, true_labels.npy (test images, class
    indices into names.json), names.json, results.csv (per class), summary.json."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=1))
    np.save(out / "predictions.npy", pred.astype(np.int64))
    np.save(out / "true_labels.npy", cs.labels[cs.split == TEST].astype(np.int64))
    (out / "names.json").write_text(json.dumps(list(cs.names)))
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["name", "precision", "recall", "f1", "support", "predicted"])
        w.writeheader()
        w.writerows(test["per_class"])
    summary = {k: v for k, v in test.items() if k != "per_class"}
    summary.update(
        {
            "encoders": list(cfg.encoders),
            "head": cfg.head,
            "fusion": cfg.fusion if len(cfg.encoders) > 1 else None,
            "class_balance": cfg.class_balance,
            "seed": cfg.seed,
            "classes": len(cs.names),
            "test_images": int(len(pred)),
            "data": cs.source,
            "data_fingerprint": cs.fingerprint,
            "embeddings": sources,
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
        }
    )
    if val is not None:
        summary["validation"] = {k: val[k] for k in ("accuracy", "macro_f1", "prediction_cv")}
    if extra:
        summary["fusion_weights"] = [extra[k] for k in sorted(extra)]
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

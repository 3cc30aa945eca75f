"""What the ``da_lora`` training step costs beyond the model's own forward and backward.

Times one epoch of ``da_lora`` as its trials run it (``trainables.da_lora.loop.batch_losses``
through ``trainables.training.train_epoch``: identity-balanced sampling, image fetch,
random flip, the loss terms, the finite-loss check, gradient clipping, the LR schedule,
per-term bookkeeping) against a bare PyTorch loop that runs the same forward, the same
loss and the same backward and optimizer step on the same model and the same batches
(already in memory). Both run in one process, interleaved, and the median per-step time
of each is compared:

    ratio = bare step time / wrapper step time      (1.0: the wrapper costs nothing)

    .venv/bin/python benchmarks/step_overhead.py                   # stand-in, full DA-LoRA, CPU
    .venv/bin/python benchmarks/step_overhead.py --model vit_small_patch14_dinov2 --size 224 \\
        --batch-size 64 --device cuda                              # a ViT-S/14 at 224 px on a GPU

With ``--model`` a randomly initialised timm model of that architecture is used (the
speed does not depend on the weights), so the benchmark runs without downloads; it also
prints images per second and, on CUDA, peak memory. The code it times needs no Ray.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainables.da_lora.config import DaLoraConfig  # noqa: E402
from trainables.da_lora.loop import (  # noqa: E402
    Fetcher,
    Objective,
    TrialData,
    batch_losses,
    build_model,
    hardware,
    identity_batches,
)
from trainables.data import synthfaces  # noqa: E402
from trainables.data.sources import TrainSet, domain_groups  # noqa: E402
from trainables.models.backbone import Backbone, InputSpec, load_backbone  # noqa: E402
from trainables.training import dense_labels, random_flip, train_epoch, warmup_cosine  # noqa: E402


def make_backbone(args, cfg: DaLoraConfig) -> Backbone:
    if args.model is None:
        return load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed)
    import timm

    enc = timm.create_model(args.model, pretrained=False, num_classes=0, img_size=args.size)
    return Backbone(enc, InputSpec(args.size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), enc.num_features)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="timm architecture (random weights); default: the stand-in")
    ap.add_argument("--size", type=int, default=224, help="input size with --model")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved blocks of each loop")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plain-lora", action="store_true", help="standard LoRA instead of full DA-LoRA")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    extra = {} if args.plain_lora else dict(domain_lora=True, lambda_domain=0.01, lambda_contrastive=0.1)
    cfg = DaLoraConfig(batch_size=args.batch_size, device=args.device, epochs=1, **extra)
    hw = hardware(cfg)
    faces = synthfaces.load(cfg.synthfaces())
    tr = faces.group("train")
    n = args.steps * args.batch_size
    reps = int(np.ceil(n / len(tr)))
    images = torch.as_tensor(np.concatenate([tr.images] * reps)[:n])
    if args.model is not None:  # real input size: resize once, so both loops read the same batches
        images = (
            torch.nn.functional.interpolate(images.float(), size=args.size, mode="bilinear").round().to(torch.uint8)
        )
    identity = np.concatenate([tr.identity] * reps)[:n]
    domain = np.concatenate([tr.domain] * reps)[:n]
    train = TrainSet(identity=identity, domain=domain, domains=faces.domains, fingerprint="bench", images=images)
    data = TrialData(train, None, [], len(faces.domains))
    labels = dense_labels(identity)
    groups = torch.as_tensor(domain_groups(domain, data.num_domains))
    model = build_model(cfg, data.num_domains, make_backbone(args, cfg)).to(hw.device)
    objective = Objective(cfg, model, int(labels.max()) + 1).to(hw.device)
    params = [p for p in model.parameters() if p.requires_grad] + list(objective.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    scheduler = warmup_cosine(optimizer, warmup_steps=0, total_steps=10**6)
    fetch = Fetcher(train, model.backbone.input_spec.size, hw)
    generator = torch.Generator().manual_seed(0)
    batch_list = identity_batches(
        labels.numpy(),
        batch_size=cfg.batch_size,
        per_identity=cfg.images_per_identity_in_batch,
        generator=torch.Generator().manual_seed(0),
    )
    bare_batches = [
        (
            random_flip(images[torch.as_tensor(b)], generator).to(hw.device),
            labels[b].to(hw.device),
            groups[b].to(hw.device),
        )
        for b in batch_list
    ]
    sync = torch.cuda.synchronize if hw.device.type == "cuda" else (lambda: None)

    def wrapper_block() -> tuple[float, int]:
        sync()
        t0 = time.perf_counter()
        losses = batch_losses(cfg, model, objective, fetch, None, labels, groups, generator, hw)
        seen = train_epoch(losses, optimizer, scheduler, parts=lambda: objective.parts).seen
        sync()
        return time.perf_counter() - t0, seen

    def bare_block() -> tuple[float, int]:
        model.train()
        sync()
        t0 = time.perf_counter()
        seen = 0
        for x, y, g in bare_batches:
            with hw.autocast():
                z = model(x)
            loss = objective(model, z, y, g)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
        sync()
        return time.perf_counter() - t0, seen

    wrapper_block(), bare_block()  # warm-up (allocator, kernels, caches)
    if hw.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    w_times, b_times, per_img = [], [], []
    for _ in range(args.repeats):
        t, seen = wrapper_block()
        w_times.append(t / len(batch_list))
        per_img.append(seen / t)
        t, _ = bare_block()
        b_times.append(t / len(bare_batches))
    w, b = statistics.median(w_times), statistics.median(b_times)
    what = (
        f"{args.model or 'stand-in'} @ {model.backbone.input_spec.size}px, batch {args.batch_size}, "
        f"{'standard LoRA' if args.plain_lora else 'full DA-LoRA'}, {hw.device.type}"
        f"{' bf16' if hw.autocast_dtype else ''}, {args.threads} threads"
    )
    print(f"setup: {what}; {len(batch_list)} steps x {args.repeats} interleaved blocks")
    print(f"wrapper step: {w * 1e3:.1f} ms   bare step: {b * 1e3:.1f} ms   ratio bare/wrapper: {b / w:.3f}")
    print(f"throughput (wrapper): {statistics.median(per_img):.0f} images/s")
    if hw.device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()

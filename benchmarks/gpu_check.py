"""The GPU check: what a ``da_lora`` trial gets out of one GPU, without Ray (the GPU machine
has torch, timm, peft and transformers; carry pydantic and pytorch-metric-learning as wheels).

    python benchmarks/gpu_check.py            # ViT-S/14 and ViT-B/16 at 224 px in bf16 (GPU)
    python benchmarks/gpu_check.py --tiny     # the CPU path: tiny models, a few steps (CI runs it)

For each backbone (random weights at the real models' architecture, saved with
``save_pretrained`` and loaded through the trainables' own loader, as a downloaded checkpoint):

* training step: the trainable's own epoch (``loop.batch_losses`` + ``training.train_epoch``,
  the ``Fetcher`` reading an in-memory training set) for full DA-LoRA (two domains' adapters,
  domain classifier, contrastive loss) and plain LoRA, against a bare PyTorch loop on the same
  model and batches (forward, loss, backward, AdamW step): images per second, their ratio
  (target >= 0.95), model FLOP utilisation against the chip's dense bf16 peak (FLOPs counted
  by ``torch.utils.flop_counter`` on one step; target >= 40% for ViT-B/16), peak memory;
* evaluation: ``embed_all`` with the flip test, images per second;
* data path: ``benchmarks/data_speed.py`` on a small generated folder (the cache against
  ``ImageFolder``);
* packing: 4 processes training plain LoRA on the GPU at once against one (aggregate images
  per second; target >= 2.5x).

One table at the end. Under 8 minutes on an H100; seconds on a CPU with ``--tiny``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

#: Dense bf16 peak, TFLOP/s (NVIDIA's data sheets, without sparsity).
PEAK_BF16 = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


class Setup:
    """A ``da_lora`` model, its objective and an in-memory training set, on ``device``."""

    def __init__(self, backbone_dir: Path, *, full: bool, size: int, batch: int, steps: int, device: str) -> None:
        from trainables.da_lora import loop
        from trainables.da_lora.config import DaLoraConfig
        from trainables.data.sources import TrainSet
        from trainables.hardware import Fetcher, hardware
        from trainables.models.backbone import load_backbone

        extra = dict(domain_lora=True, lambda_domain=0.01, lambda_contrastive=0.1) if full else {}
        precision = "bf16" if device == "cuda" else "fp32"
        self.cfg = DaLoraConfig(
            backbone=str(backbone_dir), image_size=size, batch_size=batch, images_per_identity_in_batch=4,
            device=device, precision=precision, num_workers=0, **extra,
        )  # fmt: skip
        self.hw = hardware(self.cfg)
        n = batch * steps
        g = torch.Generator().manual_seed(0)
        identity = torch.arange(n) // 4
        domain = (identity % 2).numpy()
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        self.train = TrainSet(
            identity=identity.numpy(), domain=domain, domains=("a", "b"), fingerprint="", images=images
        )
        backbone = load_backbone(str(backbone_dir), resolution=size)
        self.model = loop.build_model(self.cfg, 2, backbone).to(self.hw.device)
        self.objective = loop.Objective(self.cfg, self.model, int(identity.max()) + 1).to(self.hw.device)
        self.fetch = Fetcher(self.train, size, self.hw)
        self.labels = torch.as_tensor(identity)
        self.groups = torch.as_tensor(domain)
        self.loop = loop

    def optimizer(self):
        from trainables.models.adapt import trainable_parameters
        from trainables.training import warmup_cosine

        params = list(trainable_parameters(self.model).values()) + list(self.objective.parameters())
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
        return opt, warmup_cosine(opt, warmup_steps=0, total_steps=10_000), params

    def wrapper_epoch(self, opt, sched) -> int:
        """One epoch as the trainable runs it."""
        from trainables.training import train_epoch

        g = torch.Generator().manual_seed(1)
        losses = self.loop.batch_losses(
            self.cfg, self.model, self.objective, self.fetch, None, self.labels, self.groups, g, self.hw
        )
        return train_epoch(losses, opt, sched, parts=lambda: self.objective.parts).seen

    def bare_epoch(self, opt, sched) -> int:
        """The same batches (same generator), model and loss in a bare PyTorch loop."""
        from trainables.training import identity_batches, random_flip

        g = torch.Generator().manual_seed(1)
        self.model.train()
        seen = 0
        for idx in identity_batches(self.labels.numpy(), batch_size=self.cfg.batch_size, per_identity=4, generator=g):
            x = random_flip(self.train.images[torch.as_tensor(idx)].to(self.hw.device, non_blocking=True), g)
            y, grp = self.labels[idx].to(self.hw.device), self.groups[idx].to(self.hw.device)
            with self.hw.autocast():
                z = self.model(x)
            loss = self.objective(self.model, z, y, grp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(idx)
        return seen

    def step_flops(self) -> float:
        """FLOPs of one training step (forward and backward) on one batch."""
        from torch.utils.flop_counter import FlopCounterMode

        idx = torch.arange(self.cfg.batch_size)
        x = self.train.images[idx].to(self.hw.device)
        y, grp = self.labels[idx].to(self.hw.device), self.groups[idx].to(self.hw.device)
        with FlopCounterMode(display=False) as counter:
            with self.hw.autocast():
                z = self.model(x)
            self.objective(self.model, z, y, grp).backward()
        self.model.zero_grad(set_to_none=True)
        return float(counter.get_total_flops())


def timed(fn, device: torch.device, repeats: int) -> tuple[float, int]:
    """(seconds, images) of ``repeats`` epochs after one warm-up epoch."""
    fn()
    synchronize(device)
    t = time.perf_counter()
    n = sum(fn() for _ in range(repeats))
    synchronize(device)
    return time.perf_counter() - t, n


def training_rows(name: str, backbone_dir: Path, args, device: str) -> list[dict]:
    rows = []
    for full in (True, False):
        s = Setup(backbone_dir, full=full, size=args.size, batch=args.batch, steps=args.steps, device=device)
        dev = s.hw.device
        opt, sched, _ = s.optimizer()
        reset_peak(dev)
        wrap_s, n = timed(lambda: s.wrapper_epoch(opt, sched), dev, args.repeats)
        memory = peak_memory_mib(dev)
        bare_s, m = timed(lambda: s.bare_epoch(opt, sched), dev, args.repeats)
        flops = s.step_flops() / args.batch  # per image
        peak = peak_tflops(dev)
        ips = n / wrap_s
        rows.append(
            {
                "model": name,
                "what": "DA-LoRA step" if full else "LoRA step",
                "images_per_s": ips,
                "bare_images_per_s": m / bare_s,
                "wrapper_over_bare": ips / (m / bare_s),
                "mfu": ips * flops / (peak * 1e12) if peak else None,
                "peak_mib": memory,
            }
        )
        if not full:
            from trainables.training import embed_all

            images = s.train.images[: args.batch * max(args.steps // 2, 1)]
            t = time.perf_counter()
            embed_all(
                s.model, images, batch_size=args.batch * 2, flip=True, device=dev, autocast_dtype=s.hw.autocast_dtype
            )
            synchronize(dev)
            rows.append(
                {
                    "model": name,
                    "what": "evaluation (flip test)",
                    "images_per_s": len(images) / (time.perf_counter() - t),
                }
            )
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows


PACKED = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from benchmarks.gpu_check import Setup, synchronize
backbone, size, batch, steps, device, epochs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
s = Setup(backbone, full=False, size=size, batch=batch, steps=steps, device=device)
opt, sched, _ = s.optimizer()
s.wrapper_epoch(opt, sched)  # warm-up
synchronize(s.hw.device)
print("READY", flush=True)
sys.stdin.readline()  # every process starts timing together
t = time.perf_counter()
n = sum(s.wrapper_epoch(opt, sched) for _ in range(epochs))
synchronize(s.hw.device)
print(json.dumps({"images": n, "start": t, "seconds": time.perf_counter() - t, "end": time.time()}))
"""


def packed(backbone_dir: Path, args, device: str, processes: int) -> float:
    """Aggregate images per second of ``processes`` trials training at once on the device."""
    cmd = [sys.executable, "-c", PACKED, str(ROOT), str(backbone_dir), str(args.size), str(args.batch),
           str(args.steps), device, str(args.repeats)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(max((os.cpu_count() or 1) // processes, 1))}
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(processes)
    ]
    for p in procs:
        if p.stdout.readline().strip() != "READY":
            raise SystemExit("a packed process failed before it was ready")
    t = time.perf_counter()
    for p in procs:
        p.stdin.write("\n")
        p.stdin.flush()
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - t
    return sum(r["images"] for r in results) / wall


def data_rows(args) -> list[dict]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "data_speed.py"), "--identities", str(args.data_identities),
         "--images", "20", "--size", str(args.size), "--batch", str(args.batch), "--repeat", "1" if args.tiny else "3"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    r = json.loads(out.stdout.strip().splitlines()[-1])
    plain, cached = sum(r["plain"]["epoch_s"]) / 2, sum(r["cached"]["epoch_s"]) / 2
    return [
        {"model": "-", "what": "data: epoch, cache vs ImageFolder", "speedup": plain / cached},
        {"model": "-", "what": "data: first step, cache vs ImageFolder", "speedup": statistics.median(r["first_step_s"]["plain"]) / statistics.median(r["first_step_s"]["cached"])},
        {"model": "-", "what": "data: cache build / plain epoch", "speedup": r["build"]["build_s"] / plain},
    ]  # fmt: skip


def table(rows: list[dict]) -> str:
    columns = [  # (heading, key, width, format, scale)
        ("img/s", "images_per_s", 9, ".1f", 1), ("bare img/s", "bare_images_per_s", 10, ".1f", 1),
        ("wrap/bare", "wrapper_over_bare", 9, ".3f", 1), ("MFU %", "mfu", 6, ".1f", 100),
        ("peak MiB", "peak_mib", 9, ".0f", 1), ("ratio", "speedup", 6, ".2f", 1),
    ]  # fmt: skip
    head = f"{'model':14s} {'what':40s} " + " ".join(f"{h:>{w}s}" for h, _, w, _, _ in columns)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = [f"{'-' if r.get(k) is None else format(r[k] * scale, fmt):>{w}s}" for _, k, w, fmt, scale in columns]
        lines.append(f"{r['model']:14s} {r['what']:40s} " + " ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="the CPU path: tiny models, a few steps")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="steps per epoch")
    ap.add_argument("--repeats", type=int, default=None, help="timed epochs")
    ap.add_argument("--data-identities", type=int, default=None, help="identities of the data-path folder (x20 images)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    defaults = dict(size=32, batch=16, steps=3, repeats=1, data_identities=10) if args.tiny else dict(
        size=224, batch=64, steps=20, repeats=2, data_identities=250
    )  # fmt: skip
    for k, v in defaults.items():
        setattr(args, k, getattr(args, k) if getattr(args, k) is not None else v)
    models = [("dinov2-tiny", "ViT-tiny/14"), ("clip-tiny", "CLIP-tiny")] if args.tiny else [
        ("dinov2-vits14", "ViT-S/14"), ("clip-vitb16", "ViT-B/16")
    ]  # fmt: skip
    from trainables.data.real_shaped import save_backbone

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        os.environ.setdefault("ORCHESTRATOR_CACHE", str(Path(tmp) / "cache"))
        t0 = time.perf_counter()
        for ref, name in models:
            directory = save_backbone(Path(tmp) / "backbones", ref)
            rows += training_rows(name, directory, args, device)
            print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        one = packed(directory, args, device, 1)
        four = packed(directory, args, device, 2 if args.tiny else 4)
        rows.append({"model": models[-1][1], "what": f"{2 if args.tiny else 4} packed trials vs 1 (LoRA)", "images_per_s": four, "speedup": four / one})  # fmt: skip
        rows += data_rows(args)
    where = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(
        f"\n{where}, {args.size} px, batch {args.batch}, {'bf16' if device == 'cuda' else 'fp32'}, torch {torch.__version__}"
    )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()

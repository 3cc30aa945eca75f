"""A sweep of probe trials on one frozen encoder, end to end through the orchestrator, with
the shared embedding cache against the same sweep re-encoding the images in every trial
(``embedding_cache: false``). Also: the share of the cached sweep's wall time spent outside
trial code (Ray start, scheduling, reporting, results, report).

    .venv/bin/python benchmarks/probe_cache.py                       # ViT-S/16 at 224 px, 24 trials
    .venv/bin/python benchmarks/probe_cache.py --arch standin --arms cached   # overhead only

The encoder is a timm model with random weights saved as a local checkpoint directory (the
same loading path as a downloaded one; the cost of encoding does not depend on the weights).
Each arm gets a fresh cache directory, so the cached arm pays for its one encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def encoder_dir(arch: str, where: Path) -> str:
    if arch == "standin":
        return "standin"
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    d = where / arch
    timm.models.save_for_hf(
        model,
        str(d),
        safe_serialization=True,
        data_config={"mean": (0.5,) * 3, "std": (0.5,) * 3, "input_size": (3, 224, 224)},
    )
    return f"timm:{d}"


def spec(encoder: str, classes: int, images: int, seeds: int) -> str:
    variants = {
        "linear": {},
        "linear-weighted": {"class_balance": "weighted_loss"},
        "linear-balanced": {"class_balance": "balanced_sampler"},
        "linear-lr3e-3": {"lr": 0.003},
        "linear-lr3e-2": {"lr": 0.03},
        "supcon": {"head": "supcon"},
        "supcon-weighted": {"head": "supcon", "class_balance": "weighted_loss"},
        "supcon-t0.2": {"head": "supcon", "supcon_temperature": 0.2},
    }
    return textwrap.dedent(f"""\
        name: probe-bench
        kind: ablation
        trainable: probe
        metric: eval/probe/acc
        mode: max
        seeds: {list(range(seeds))}
        base: {{encoders: ["{encoder}"], synth_classes: {classes}, synth_images: {images},
                synth_domains: [visible, low_quality, harsh_light], epochs: 30, supcon_epochs: 20}}
        variants: {json.dumps(variants)}
        reference: linear
        resources: {{cpus_per_trial: 1}}
        """)


def run_arm(name: str, spec_path: Path, work: Path) -> dict:
    out = work / f"run-{name}"
    env = {**os.environ, "ORCHESTRATOR_CACHE": str(work / f"cache-{name}")}
    # the stand-in's build is not what is measured: share it between arms
    cmd = [sys.executable, "-m", "orchestrator", "run", str(spec_path), "--out", str(out)]
    if name == "reencode":
        cmd += ["--set", "embedding_cache=false"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{name} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    phase = float(re.search(r"trials done in (\d+(?:\.\d+)?) s", r.stdout).group(1))
    df = pd.read_csv(out / "results.csv")
    trial_s = []
    for t in df["trial_name"]:
        s = json.loads((out / "tune" / f"probe-bench_{t}" / "summary.json").read_text())
        trial_s.append(s["seconds"]["trial_s"])
    return {
        "arm": name,
        "wall_s": wall,
        "trials_phase_s": phase,
        "trials": len(df),
        "trial_code_s": sum(trial_s),
        "mean_trial_s": sum(trial_s) / len(trial_s),
        "acc": df["eval/probe/acc"].mean(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="vit_small_patch16_224", help="timm architecture, or 'standin'")
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--images", type=int, default=6, help="per class and domain (3 domains)")
    ap.add_argument("--seeds", type=int, default=3, help="8 variants x this many seeds")
    ap.add_argument("--arms", default="cached,reencode")
    ap.add_argument("--slots", type=int, default=2, help="trials at once (CPUs / cpus_per_trial)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="probe-bench-") as tmp:
        work = Path(tmp)
        enc = encoder_dir(args.arch, work)
        spec_path = work / "spec.yaml"
        spec_path.write_text(spec(enc, args.classes, args.images, args.seeds))
        if args.arch == "standin":  # build the stand-in once, outside the measurement, in each arm's cache
            for arm in args.arms.split(","):
                os.environ["ORCHESTRATOR_CACHE"] = str(work / f"cache-{arm}")
                subprocess.run(
                    [sys.executable, "-c", "from trainables.probe.encoders import resolve; resolve('standin')"],
                    cwd=ROOT,
                    check=True,
                )
        rows = [run_arm(a, spec_path, work) for a in args.arms.split(",")]
    n_images = args.classes * args.images * 3
    print(f"encoder {args.arch}, {n_images} images, {rows[0]['trials']} trials, {args.slots} at once")
    for r in rows:
        outside_phase = 1 - r["trial_code_s"] / (args.slots * r["trials_phase_s"])
        outside_all = 1 - r["trial_code_s"] / (args.slots * r["wall_s"])
        print(
            f"{r['arm']:9s} wall {r['wall_s']:7.1f} s  trials phase {r['trials_phase_s']:6.1f} s  "
            f"trial code {r['trial_code_s']:7.1f} s (mean {r['mean_trial_s']:.2f} s)  "
            f"outside trial code: {outside_phase:.0%} of the trials phase, {outside_all:.0%} of the wall  "
            f"mean acc {r['acc']:.4f}"
        )
    if len(rows) == 2:
        print(f"speed-up end to end: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x")


if __name__ == "__main__":
    main()

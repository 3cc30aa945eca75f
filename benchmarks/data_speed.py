"""The data path of a face-embedding trial: the shared decoded-image cache against a plain
torchvision ``ImageFolder`` + ``DataLoader`` with the same number of workers, on a generated
folder of JPEG face crops (112 px source, as insightface's aligned crops; 224 px input).

    .venv/bin/python benchmarks/data_speed.py                    # 20,000 images (1,000 x 20)
    .venv/bin/python benchmarks/data_speed.py --identities 100   # 2,000 images: a quick look

Measured, each in a fresh process (a trial is a process of its own), in one run:

* plain: a trial's time to its first training batch (``ImageFolder`` scanning the folder, the
  loader's workers starting, the first batch decoded, resized and flipped), then the time of
  each of two epochs; every trial and epoch decodes every image again (the JPEG files are
  in the page cache: a warm-up pass reads them first);
* cache build: what the study's driver does once, before any trial (``prepare``:
  ``load_data(verify=True)`` decodes the folder into the shared cache with every CPU, which
  is also the check of unreadable images): the folder's build as the cache reports it, and
  the whole preparation (listing the folder, the benchmark's ``.bin`` too);
* cached trial: a later trial's time to its first training batch (``load_data`` as a trial
  calls it, through the study's data snapshot that ``prepare`` left: the listing read from
  it, the cache opened by its key and its length checked; then the first batch gathered and
  flipped) and its two epochs, reading the cache through the page cache with the
  ``Fetcher`` a ``da_lora`` trial uses; and the same trial without the snapshot (the folder
  listed and every file stat-ed again, as a trial run by hand does). Both clocks start
  after the imports.

The batches are not consumed by a model, so the figures are the data path's own: how fast
it can hand a training step its next batch (decoded, resized, flipped, uint8). Targets (issue 30): later trials' first step and epochs at least 5x
faster than plain; the build within 1.2x of one plain epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLAIN = r"""
import json, sys, time
import torch
from torchvision import datasets, transforms
t0 = time.perf_counter()  # after the imports, as in the cached arm
root, size, workers, batch, n_epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
tf = transforms.Compose([
    transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BILINEAR),
    transforms.RandomHorizontalFlip(),
    transforms.PILToTensor(),
])
ds = datasets.ImageFolder(root, transform=tf)
loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
epochs, first = [], None
for e in range(max(n_epochs, 1)):  # 0: the first batch only
    t = time.perf_counter()
    n = 0
    for x, y in loader:
        if first is None:
            first = time.perf_counter() - t0
            if n_epochs == 0:
                break
        n += len(x)
    epochs.append(time.perf_counter() - t)
print(json.dumps({"first_step_s": first, "epoch_s": epochs, "images": n}))
"""

CACHED = r"""
import json, sys, time
import torch
from trainables.da_lora.config import DaLoraConfig
from trainables.da_lora import loop
from trainables.data import snapshot
from trainables.hardware import Fetcher, hardware
from trainables.training import batches, random_flip
t0 = time.perf_counter()  # after the imports (a trial imports its model's libraries either way)
train, bin_path, size, batch, build, n_epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
torch.set_num_threads(1)
cfg = DaLoraConfig(train_data=train, benchmarks={"lfw": bin_path}, val_fraction=0.0, num_workers=0, image_size=size)
if build == "build":  # the driver's prepare: decode once, with every CPU, verify, and pin (as the registry's prepare)
    lines = []
    with snapshot.recording() as pins:
        loop.load_data(cfg, size, verify=True, log=lines.append)
    name = snapshot.save(pins)
    folder = next(line for line in lines if " of files " in line)  # "... (N MiB, S s)"
    print(json.dumps({"prepare_s": time.perf_counter() - t0, "build_s": float(folder.rsplit(", ", 1)[1].split()[0]),
                      "snapshot": name}))
    sys.exit()
with snapshot.pinned(None if build == "unpinned" else build):  # what the registry's entry point does
    data = loop.load_data(cfg, size)
fetch = Fetcher(data.train, size, hardware(cfg))
g = torch.Generator().manual_seed(0)
epochs, first = [], None
for e in range(max(n_epochs, 1)):  # 0: the first batch only
    t = time.perf_counter()
    n = 0
    for idx, x in fetch.batches(list(batches(len(data.train), batch, g))):
        x = random_flip(x, g)
        if first is None:
            first = time.perf_counter() - t0
            if n_epochs == 0:
                break
        n += len(x)
    epochs.append(time.perf_counter() - t)
print(json.dumps({"first_step_s": first, "epoch_s": epochs, "images": n}))
"""


def _run(code: str, *args, env: dict[str, str]) -> dict:
    """Run ``code`` in a fresh interpreter; its last line of output is the result (JSON). The
    clock starts inside it, so the interpreter's own start-up is not counted."""
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=1000)
    ap.add_argument("--images", type=int, default=20, help="images per identity")
    ap.add_argument("--size", type=int, default=224, help="input side (the cache's and the plain path's)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="loader workers (the cache is built with every CPU)"
    )
    ap.add_argument(
        "--repeat", type=int, default=5, help="fresh trials per arm whose time to the first batch is compared (median)"
    )
    ap.add_argument("--dir", type=Path, default=None, help="where to generate the data (default: a temporary folder)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="data-speed-") as tmp:
        work = args.dir or Path(tmp)
        data = work / "data"
        # a fresh cache every run (even where --dir keeps the data): the build is measured
        env = {**os.environ, "ORCHESTRATOR_CACHE": str(Path(tmp) / "cache"), "PYTHONPATH": str(ROOT)}
        if not (data / "train.csv").is_file():
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "orchestrator", "generate-data", str(data),
                 "--identities", str(args.identities), "--images", str(args.images), "--domains", "visible",
                 "--size", "112", "--benchmarks", "lfw", "--pairs", "60", "--no-pair-list"],
                check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            print(f"generated {args.identities * args.images} JPEG crops (112 px) in {time.perf_counter() - t:.0f} s")
        train, bin_path = data / "train", data / "lfw.bin"
        # the JPEG files in the page cache for both arms: a warm-up pass of the plain path
        plain_arm = [train, args.size, args.workers, args.batch]
        _run(PLAIN, *plain_arm, 1, env=env)
        plain = _run(PLAIN, *plain_arm, 2, env=env)
        build = _run(CACHED, train, bin_path, args.size, args.batch, "build", 0, env=env)  # every CPU
        # later trials start once the build's 3 GB of writes have reached the disk (the first
        # trials run meanwhile): without this, the first of them competes with that write-back
        os.sync()
        cached_arm = [train, bin_path, args.size, args.batch, build["snapshot"]]
        cached = _run(CACHED, *cached_arm, 2, env=env)
        # the time to the first batch: the median of --repeat fresh trials (processes) of each arm
        # (a machine's first touch of fresh memory can add 0.1 s to one of them)
        firsts = {
            "plain": [plain["first_step_s"]] + [_run(PLAIN, *plain_arm, 0, env=env)["first_step_s"] for _ in range(args.repeat - 1)],
            "cached": [cached["first_step_s"]] + [_run(CACHED, *cached_arm, 0, env=env)["first_step_s"] for _ in range(args.repeat - 1)],
            # a trial without the study's snapshot (one run by hand): lists and stats its data itself
            "unpinned": [_run(CACHED, *cached_arm[:-1], "unpinned", 0, env=env)["first_step_s"] for _ in range(args.repeat)],
        }  # fmt: skip

    plain_epoch = sum(plain["epoch_s"]) / 2
    cached_epoch = sum(cached["epoch_s"]) / 2
    first = {arm: statistics.median(v) for arm, v in firsts.items()}
    rows = [
        (f"time to the first training batch, s ({args.repeat})", first["plain"], first["cached"]),
        ("  without the study's snapshot, s", first["plain"], first["unpinned"]),
        ("epoch, s (mean of 2)", plain_epoch, cached_epoch),
    ]
    print(f"\n{args.identities * args.images} images at {args.size} px, batch {args.batch}, {args.workers} workers; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'':40s} {'ImageFolder':>12s} {'cache':>10s} {'speed-up':>9s}")
    for name, p, c in rows:
        print(f"{name:40s} {p:12.2f} {c:10.2f} {p / c:8.1f}x")
    print(f"{'cache build (once per study), s':40s} {'':12s} {build['build_s']:10.2f}   "
          f"{build['build_s'] / plain_epoch:.2f}x one plain epoch")  # fmt: skip
    print(f"{'  the whole prepare (+ listing, .bin), s':40s} {'':12s} {build['prepare_s']:10.2f}   "
          f"{build['prepare_s'] / plain_epoch:.2f}x")  # fmt: skip
    print(json.dumps({"plain": plain, "build": build, "cached": cached, "first_step_s": firsts}))


if __name__ == "__main__":
    main()

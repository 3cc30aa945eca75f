"""A DA-LoRA trial's own memory against the size of its data: the shared decoded-image cache
against decoding into the trial (what a trial did before the cache: validation identities
and benchmarks stacked in its memory, training images read file by file every epoch).

    .venv/bin/python benchmarks/data_memory.py                          # 5,000 and 50,000 images
    .venv/bin/python benchmarks/data_memory.py --sizes 2000 --trials 1  # a quick look

For each size it generates real-shaped data (``generate-data``: an identity folder with two
domains, 10 images each, and a 6,000-pair ``.bin``), builds the caches once (the driver's
``prepare``), then runs a trial's data path in a fresh process: ``load_data`` as a trial
calls it, one epoch of training batches through the Fetcher, and one pass over every
validation and benchmark image in batches (what evaluation reads). A thread samples the
process's anonymous resident memory (``RssAnon``: the memory that is the trial's own; a
mapped cache file is the page cache's, shared by every trial) every 5 ms; its peak is the
figure. The same with ``--trials 4`` processes at once, and the same path with decoding
into the trial (``--arm decode``) as the baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peak_memory import PEAK_SAMPLER  # noqa: E402  (beside this script)

TRIAL = (
    PEAK_SAMPLER
    + r"""
torch.set_num_threads(1)
arm, train_dir, bin_path, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from trainables.da_lora.config import DaLoraConfig
from trainables.da_lora import loop
from trainables.data.sources import read_image
from trainables.evaluation import benchmarks as bm
from trainables.hardware import Fetcher, hardware
cfg = DaLoraConfig(train_data=train_dir, benchmarks={"lfw": bin_path}, val_fraction=0.2, num_workers=0)
base = anon_kib()
t0 = time.perf_counter()
if arm == "decode":  # the trial decodes its sets into its own memory, and reads training files
    def load_benchmark(name, path, *, size, **kw):
        blobs, issame = bm.read_bin(Path(path))
        images = torch.stack([bm._decode(b, size) for b in blobs])
        n = len(issame)
        return bm.PairBenchmark(name, images, np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2), np.asarray(issame))
    loop.load_benchmark = load_benchmark
    def training_files(cfg, listed, size, **kw):  # checked file by file, read from the files
        from trainables.data.sources import find_unreadable, without_unreadable
        return without_unreadable(listed, find_unreadable(list(listed.paths)), cfg.train_data)
    loop._cached_training_images = training_files
    def validation(cfg, full, val, twins, size):  # the validation images stacked in the trial
        images = np.stack([read_image(p, size).numpy() for p in val.paths])
        return loop.DomainVerification(images, val.identity, np.zeros(len(val), dtype=np.int64), twins,
                                       (loop.HELDOUT,), prefix="val", flip=cfg.flip_test)
    loop._validation = validation
data = loop.load_data(cfg, size)
fetch = Fetcher(data.train, size, hardware(cfg))
order = np.random.default_rng(0).permutation(len(data.train))
seen = 0
for idx, x in fetch.batches([order[i:i + 64] for i in range(0, len(order), 64)]):
    seen += int(x.float().flip(-1).mean() >= 0)
for images in (data.val.images, data.benchmarks[0].images):
    for i in range(0, len(images), 256):
        seen += int(images[i:i + 256].float().mean() >= 0)
stop.set()
print(json.dumps({"peak_anon_mib": peak[0] / 1024, "start_anon_mib": base / 1024,
                  "train": len(data.train), "val": len(data.val.images),
                  "bench": len(data.benchmarks[0].images), "s": time.perf_counter() - t0}))
"""
)


def generate(root: Path, images: int) -> tuple[str, str]:
    if not (root / "train.csv").is_file():
        cmd = [sys.executable, "-m", "orchestrator", "generate-data", str(root), "--identities", str(images // 10),
               "--images", "10", "--pairs", "6000", "--no-pair-list"]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return str(root / "train"), str(root / "lfw.bin")


def trial(arm: str, train: str, bin_path: str, size: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", TRIAL, arm, train, bin_path, str(size)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,50000", help="training images, comma-separated")
    ap.add_argument("--trials", default="1,4", help="trials at once, comma-separated")
    ap.add_argument("--arms", default="cache,decode")
    ap.add_argument("--image-size", type=int, default=112)
    ap.add_argument("--work", type=Path, default=None, help="where to generate (default: a temporary folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="data-memory-"))
    rows = []
    for n in map(int, args.sizes.split(",")):
        train, bin_path = generate(work / f"data-{n}", n)
        env = {**os.environ, "ORCHESTRATOR_CACHE": str(work / "cache"), "PYTHONPATH": str(ROOT)}
        build = subprocess.run(
            [sys.executable, "-c", "import sys; from trainables.da_lora.config import DaLoraConfig; "
             "from trainables.da_lora.loop import load_data; "
             "load_data(DaLoraConfig(train_data=sys.argv[1], benchmarks={'lfw': sys.argv[2]}, val_fraction=0.2), "
             "int(sys.argv[3]), verify=True, log=print)", train, bin_path, str(args.image_size)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        print(build.stdout.strip(), flush=True)
        for arm in args.arms.split(","):
            for k in map(int, args.trials.split(",")):
                started = time.perf_counter()
                procs = [trial(arm, train, bin_path, args.image_size, env) for _ in range(k)]
                outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
                row = {"images": n, "arm": arm, "trials": k, "peak_anon_mib": max(o["peak_anon_mib"] for o in outs),
                       "sum_anon_mib": sum(o["peak_anon_mib"] for o in outs), "wall_s": time.perf_counter() - started,
                       "train": outs[0]["train"], "val": outs[0]["val"], "bench": outs[0]["bench"]}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| training images | arm | trials at once | peak own memory per trial (MiB) | all trials (MiB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['images']} | {r['arm']} | {r['trials']} | {r['peak_anon_mib']:.0f} | {r['sum_anon_mib']:.0f} |")
    by = {(r["images"], r["arm"], r["trials"]): r["peak_anon_mib"] for r in rows}
    sizes = sorted({r["images"] for r in rows})
    if len(sizes) > 1:
        for arm in args.arms.split(","):
            for k in map(int, args.trials.split(",")):
                a, b = by.get((sizes[0], arm, k)), by.get((sizes[-1], arm, k))
                if a and b:
                    print(f"{arm}, {k} at once: {sizes[-1]} images / {sizes[0]} images = {b / a:.2f}")


if __name__ == "__main__":
    main()

"""ASHA + TPE against the same sampled configs trained fully (FIFO), on the shipped `search`.

Both arms run the shipped `search` study through `run_study` (Ray Tune, OptunaSearch with
the same sampler seed, the base config first), at a size that fits the 2-core machine:
`--num-samples` configs of `--epochs` epochs (ASHA's max_t), the quick base otherwise.
TPE's first trials are its random start-up samples, so the two arms see the same configs
until TPE starts to model (10 completed trials by default). FIFO is ASHA with
grace_period = max_t, which stops no trial.

Measured from each arm's curves.csv (reports.search_analysis, the code behind the report's
best-so-far-by-compute figure): total training iterations and wall time, and the
iterations and seconds spent until a trial that ran to completion came within
`--within` (0.005 = 0.5 points of accuracy) of the best final metric FIFO found.

    .venv/bin/python benchmarks/asha_vs_fifo.py --num-samples 12 --epochs 9
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search_spaces  # noqa: E402
from orchestrator.run import RunOptions, run_study  # noqa: E402
from reports import build_report  # noqa: E402
from reports.rundir.files import read_curves  # noqa: E402
from reports.search_analysis import best_so_far_by_compute, cost_to_reach  # noqa: E402


def arm_spec(args, *, fifo: bool) -> dict:
    spec = yaml.safe_load(search_spaces.shipped()["search"].read_text())
    spec["base"].update(spec["quick"]["base"])
    spec["base"]["epochs"] = args.epochs
    spec["num_samples"] = args.num_samples
    spec["search_seed"] = args.search_seed
    spec["scheduler"] = {
        "max_t": args.epochs,
        "grace_period": args.epochs if fifo else args.grace_period,
        "reduction_factor": args.reduction_factor,
    }
    spec["name"] = f"search-{'fifo' if fifo else 'asha'}"
    spec.pop("quick")
    return spec


def _finished(run_dir: Path) -> bool:
    results = run_dir / "results.csv"
    if not results.is_file():
        return False
    df = pd.read_csv(results)
    return len(df) > 0 and df["status"].isin(["TERMINATED", "STOPPED", "ERROR", "DIVERGED"]).all()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-samples", type=int, default=12)
    p.add_argument("--epochs", type=int, default=9, help="epochs of a full trial (ASHA's max_t)")
    p.add_argument("--grace-period", type=int, default=1)
    p.add_argument("--reduction-factor", type=float, default=3.0)
    p.add_argument("--max-concurrent", type=int, default=2)
    p.add_argument("--search-seed", type=int, default=0, help="seed of the Optuna sampler (both arms)")
    p.add_argument("--within", type=float, default=0.005, help="how close to FIFO's best counts as reaching it")
    p.add_argument("--out", type=Path, default=None, help="keep both run directories here")
    args = p.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="asha-vs-fifo-"))
    root.mkdir(parents=True, exist_ok=True)
    arms = {}
    for name, fifo in (("fifo", True), ("asha", False)):
        spec_path = root / f"{name}.yaml"
        spec = yaml.safe_dump(arm_spec(args, fifo=fifo), sort_keys=False)
        started = time.perf_counter()
        run_dir = root / name
        if _finished(run_dir) and spec_path.is_file() and spec_path.read_text() == spec:
            print(f"[{name}] reusing the finished arm in {run_dir}")  # e.g. after the other arm failed
            build_report(run_dir)
        else:
            spec_path.write_text(spec)
            run_study(
                RunOptions(study=str(spec_path), out=run_dir, max_concurrent=args.max_concurrent),
                log=lambda line: print(f"[{name}] {line}", flush=True),
            )
        wall = time.perf_counter() - started
        df = pd.read_csv(run_dir / "results.csv")
        meta = json.loads((run_dir / "run.json").read_text())
        arms[name] = (df, best_so_far_by_compute(df, read_curves(run_dir), meta["metric"], meta["mode"]), wall, meta)
    metric = arms["fifo"][3]["metric"]
    fifo_best = float(arms["fifo"][0].loc[arms["fifo"][0]["status"] == "TERMINATED", metric].max())
    target = fifo_best - args.within
    print(
        f"\nsearch: {args.num_samples} configs x {args.epochs} epochs, max_concurrent {args.max_concurrent}, "
        f"sampler seed {args.search_seed}; "
        f"target: {metric} >= {target:.4f} (FIFO's best {fifo_best:.4f} - {args.within})"
    )
    print(
        "| arm | trials completed / stopped | training iterations | search wall time (s) | best completed | "
        "iterations to target | seconds to target |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = {}
    for name, (df, by, wall, _) in arms.items():
        its, secs = cost_to_reach(by, target, "max")
        done = df[df["status"] == "TERMINATED"]
        rows[name] = (int(df["iterations"].sum()), float(by["elapsed_s"].iloc[-1]), its, secs)
        print(
            f"| {name.upper()} | {len(done)} / {int((df['status'] == 'STOPPED').sum())} | {rows[name][0]} | "
            f"{rows[name][1]:.0f} | {done[metric].max():.4f} | {its if its is not None else 'not reached'} | "
            f"{f'{secs:.0f}' if secs is not None else 'not reached'} |"
        )
    f, a = rows["fifo"], rows["asha"]
    print(f"\ntotal iterations FIFO/ASHA: {f[0] / a[0]:.2f}x; wall FIFO/ASHA: {f[1] / a[1]:.2f}x")
    if a[2] is not None and f[2] is not None:
        print(f"to target, iterations FIFO/ASHA: {f[2] / a[2]:.2f}x; seconds FIFO/ASHA: {f[3] / a[3]:.2f}x")
    else:
        print("ASHA did not reach the target" if a[2] is None else "")
    print(f"run directories: {root}")


if __name__ == "__main__":
    main()

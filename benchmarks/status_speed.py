"""How long `python -m orchestrator status DIR` takes on a large run directory.

Builds a run of `--trials` trials (a quarter running, the rest finished, pending or failed)
with 40 config columns, 12 metrics and a curves.csv of `--iterations` iterations x 12
metrics per trial, then times the command as a user runs it (a fresh process, imports
included), best of 3.

    .venv/bin/python benchmarks/status_speed.py --trials 500
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def build(run_dir: Path, trials: int, iterations: int) -> None:
    rng = np.random.default_rng(0)
    statuses = rng.choice(["TERMINATED", "RUNNING", "PENDING", "ERROR"], size=trials, p=[0.5, 0.25, 0.2, 0.05])
    metrics = [f"eval/m{i}/acc" for i in range(12)]
    rows = []
    for i, s in enumerate(statuses):
        row = {
            "trial_id": f"id{i}",
            "trial_name": f"v{i % 50}_seed{i // 50}",
            "study": "big",
            "variant": f"v{i % 50}",
            "seed": i // 50,
            "status": s,
            "iterations": iterations if s == "TERMINATED" else 0,
            "wall_s": float(rng.uniform(50, 150)) if s in ("TERMINATED", "ERROR") else np.nan,
            "error": "",
        }
        row.update({f"config/k{j}": float(rng.uniform()) for j in range(40)})
        row.update({m: float(rng.uniform()) if s == "TERMINATED" else np.nan for m in metrics})
        rows.append(row)
    pd.DataFrame(rows).to_csv(run_dir / "results.csv", index=False)
    curves = [
        (r["trial_name"], it, it * 10.0, 1e9 + it, m, 0.5)
        for r in rows
        if r["status"] in ("TERMINATED", "RUNNING")
        for it in range(1, iterations + 1)
        for m in metrics
    ]
    pd.DataFrame(curves, columns=["trial_name", "iteration", "time_total_s", "timestamp", "key", "value"]).to_csv(
        run_dir / "curves.csv", index=False
    )
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "study": "big",
                "kind": "ablation",
                "metric": metrics[0],
                "mode": "max",
                "started_at": "t0",
                "driver": {"pid": os.getpid(), "host": socket.gethostname()},
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--iterations", type=int, default=20)
    args = p.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as d:
        build(Path(d), args.trials, args.iterations)
        size = sum(f.stat().st_size for f in Path(d).iterdir()) / 2**20
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "orchestrator", "status", d],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            times.append(time.perf_counter() - t0)
    print(out.splitlines()[1])
    print(
        f"status on {args.trials} trials ({size:.1f} MiB of run files): best of 3 {min(times):.2f} s "
        f"(all: {', '.join(f'{t:.2f}' for t in times)})"
    )


if __name__ == "__main__":
    main()

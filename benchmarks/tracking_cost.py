"""What each tracker costs the driver, per trial and per epoch, against what the driver does for
every report anyway (the line of ``curves.csv``), measured in the same run.

    .venv/bin/python benchmarks/tracking_cost.py --trials 20 --epochs 10 --metrics 250

The trackers are driven exactly as the progress callbacks drive them (``Trackers.start``,
``epoch`` per report, ``end`` with the trial's row), in a temporary run directory, with
W&B offline and MLflow on its SQLite store. 250 metrics per report is what a ``da_lora``
trial on synthfaces reports (every set's accuracy, EER, TAR@FAR, ...). Prints, for the
baseline and each tracker alone and all three together, the time Tune's loop spends per
report and per trial (the trackers write on a thread of their own), its ratio to the
baseline, and how long after the last report the writing thread is done (reports arrive
here back to back: in a run they are seconds apart, and the thread keeps up).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("WANDB_MODE", "offline")


def reports(trials: int, epochs: int, metrics: int):
    for t in range(trials):
        name = f"t{t:03d}_seed0"
        config = {"lr": 1e-3 * (t + 1), "lora_rank": 8, "lora_targets": ["qkv", "proj"], "seed": 0}
        results = [
            {
                "training_iteration": e,
                "time_total_s": float(e),
                **{f"eval/set{k}/acc": 0.5 + 1e-3 * (e + k) for k in range(metrics)},
            }
            for e in range(1, epochs + 1)
        ]
        yield name, config, results


def measure(backends: list[str], trials: int, epochs: int, metrics: int) -> tuple[float, float, float]:
    """(seconds Tune's loop spends per report, and per trial's start and end, curves.csv
    included; seconds the run's end waits for the trackers' thread to finish writing)."""
    from orchestrator.results import CurveLog
    from orchestrator.tracking import Trackers

    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        run.mkdir()
        curves = CurveLog(run)
        trackers = Trackers(run, "bench", {"backends": backends}) if backends else None
        per_report, per_trial = 0.0, 0.0
        if trackers:  # the first connection (MLflow's database, W&B's service) is paid once per run
            trackers.start("warm_seed0", {"lr": 0.0})
            trackers.end("warm_seed0", {"lr": 0.0}, {"status": "TERMINATED"}, None)
            trackers.flush()
        for name, config, results in reports(trials, epochs, metrics):
            t0 = time.perf_counter()
            if trackers:
                trackers.start(name, config)
            per_trial += time.perf_counter() - t0
            for result in results:
                t0 = time.perf_counter()
                curves.add(name, result)
                if trackers:
                    trackers.epoch(name, result)
                per_report += time.perf_counter() - t0
            row = {
                "status": "TERMINATED",
                "train/best_epoch": float(epochs),
                **{k: v for k, v in results[-1].items() if "/" in k},
            }
            t0 = time.perf_counter()
            if trackers:
                trackers.end(name, config, row, None)
            per_trial += time.perf_counter() - t0
        t0 = time.perf_counter()
        if trackers:
            trackers.close()  # the writing thread's backlog: what the run waits for at its end
        drain = time.perf_counter() - t0
    return per_report / (trials * epochs), per_trial / trials, drain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--metrics", type=int, default=250)
    args = parser.parse_args()
    print(f"{args.trials} trials x {args.epochs} reports of {args.metrics} metrics; machine: {os.cpu_count()} CPUs")
    base_report, _, _ = measure([], args.trials, args.epochs, args.metrics)
    print(f"{'curves.csv only (baseline)':<34} {base_report * 1e3:8.2f} ms per report")
    for backends in (["tensorboard"], ["wandb"], ["mlflow"], ["tensorboard", "wandb", "mlflow"]):
        per_report, per_trial, drain = measure(backends, args.trials, args.epochs, args.metrics)
        print(
            f"{'+ ' + ', '.join(backends):<34} {per_report * 1e3:8.2f} ms per report "
            f"({per_report / base_report:5.2f}x the baseline), {per_trial * 1e3:6.2f} ms per trial's start and end; "
            f"written by {drain:5.1f} s after the last report ({args.trials * args.epochs} reports)"
        )


if __name__ == "__main__":
    main()

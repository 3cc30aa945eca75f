"""Orchestration overhead: N trials of ~1 s CPU work each, through the orchestrator
(`run_study`: validation, Ray start, Tune, results.csv, report) versus the same trials in
a plain sequential Optuna loop in one process.

    .venv/bin/python benchmarks/overhead.py --trials 40
    .venv/bin/python benchmarks/overhead.py --trials 40 --track tensorboard,wandb,mlflow

Prints one line per phase and the ratio orchestrator / Optuna (below 1: faster). With
``--track``, the orchestrator runs the trials a second time writing to those trackers, and
prints the ratio of the two runs (the trackers' cost; the first run has them off).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainables import register_trainable  # noqa: E402


class BurnConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    seed: int = 0
    x: float = 0.0
    work: int = 1


def burn(work: int) -> None:
    """Fixed single-threaded CPU work: ``work`` 256x256 matrix products."""
    torch.set_num_threads(1)
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    for _ in range(work):
        a = torch.tanh(a @ a * 0.01)


def objective_value(x: float) -> float:
    return (x - 0.3) ** 2


# A benchmark-only trainable, registered here (not shipped): Ray pickles it by value.
@register_trainable(
    "bench_burn",
    config_cls=BurnConfig,
    prepare=lambda cfg, run_dir: {},
    description="benchmark: fixed CPU work, reports (x - 0.3)^2",
)
def train_burn(config: dict) -> None:
    from ray import tune

    cfg = BurnConfig.model_validate(config)
    burn(cfg.work)
    tune.report({"eval/objective": objective_value(cfg.x)})


def calibrate(seconds: float = 1.0) -> int:
    t0 = time.perf_counter()
    burn(200)
    per = (time.perf_counter() - t0) / 200
    return max(int(seconds / per), 1)


def xs(n: int) -> list[float]:
    return [i / max(n - 1, 1) for i in range(n)]


def plain_optuna(n: int, work: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    for x in xs(n):
        study.enqueue_trial({"x": x})

    def objective(trial):
        burn(work)
        return objective_value(trial.suggest_float("x", 0.0, 1.0))

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    return time.perf_counter() - t0


def orchestrated(
    n: int, work: int, out: Path, verbose: bool = False, track: list[str] | None = None
) -> tuple[float, dict[str, float]]:
    from orchestrator.run import RunOptions, run_study

    variants = "\n".join(f"  x{i:03d}: {{x: {x}}}" for i, x in enumerate(xs(n)))
    spec = out / "bench.yaml"
    spec.write_text(
        textwrap.dedent(f"""\
        name: bench
        kind: ablation
        trainable: bench_burn
        metric: eval/objective
        mode: min
        seeds: [0]
        reference: x000
        base: {{work: {work}}}
        variants:
        """)
        + variants
        + "\n"
    )
    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def log(line: str) -> None:
        now = time.perf_counter() - t0
        if line.startswith("Ray dashboard"):
            marks["ray_ready"] = now
        elif line.startswith("[") and "first_trial_done" not in marks:
            marks["first_trial_done"] = now
        elif line.startswith("trials done in"):
            marks["trials_done"] = now
        if verbose:
            print(f"  {now:6.1f} s  {line}", flush=True)

    run_study(RunOptions(study=str(spec), out=out / "run", track=track), log=log)
    return time.perf_counter() - t0, marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--verbose", action="store_true", help="print the orchestrator's lines with timestamps")
    parser.add_argument("--track", help="also run the trials writing to these trackers (e.g. tensorboard,wandb,mlflow)")
    args = parser.parse_args()
    work = calibrate()
    t_single = time.perf_counter()
    burn(work)
    t_single = time.perf_counter() - t_single
    print(f"machine: {os.cpu_count()} CPUs; one trial's work: {t_single:.2f} s ({work} matmuls)")
    t_optuna = plain_optuna(args.trials, work)
    print(f"plain Optuna loop, {args.trials} trials, sequential: {t_optuna:.1f} s")
    with tempfile.TemporaryDirectory() as d:
        t_orch, marks = orchestrated(args.trials, work, Path(d), args.verbose)
    print(f"orchestrator (Ray start, {args.trials} trials, results.csv, report): {t_orch:.1f} s")
    print(
        f"  of which: Ray start {marks['ray_ready']:.1f} s; first trial ended at {marks['first_trial_done']:.1f} s; "
        f"trials done at {marks['trials_done']:.1f} s; report and shutdown {t_orch - marks['trials_done']:.1f} s"
    )
    steady = marks["trials_done"] - marks["first_trial_done"]
    print(
        f"steady state: {args.trials - 1} trials in {steady:.1f} s = {steady / (args.trials - 1):.2f} s per trial "
        f"(plain loop: {t_optuna / args.trials:.2f} s per trial)"
    )
    print(f"ratio orchestrator / plain Optuna: {t_orch / t_optuna:.2f}")
    if args.track:
        from orchestrator.tracking import parse_track

        os.environ.setdefault("WANDB_MODE", "offline")
        with tempfile.TemporaryDirectory() as d:
            t_track, marks_track = orchestrated(args.trials, work, Path(d), args.verbose, parse_track(args.track))
        steady_track = marks_track["trials_done"] - marks_track["first_trial_done"]
        print(
            f"orchestrator writing to {args.track}: {t_track:.1f} s; steady state "
            f"{steady_track / (args.trials - 1):.2f} s per trial"
        )
        print(
            f"ratio with trackers / without: {t_track / t_orch:.2f} in all, "
            f"{steady_track / steady:.2f} in the steady state"
        )


if __name__ == "__main__":
    main()

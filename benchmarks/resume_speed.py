"""Resuming a killed run against starting its unfinished trials afresh.

A 24-trial study (one DA-LoRA variant on synthfaces, seeds 0-23, `--epochs` epochs, 2
trials at a time) is started in a subprocess and killed with SIGKILL once `--finished`
trials have finished. Then, each as a user runs it (a fresh process: imports, Ray start,
Tune, report):

* `resume DIR`: Tune's experiment state restored, the unfinished trials run (those that were
  running continue from their last checkpoint), the report is built for all 24;
* afresh: a new run of a study of only the unfinished seeds, report included.

Target (issue 5): resume < 1.2 x afresh.

    .venv/bin/python benchmarks/resume_speed.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

STUDY = """name: resume-bench
kind: ablation
trainable: da_lora
metric: eval/cross_domain/acc
mode: max
seeds: {seeds}
reference: a
base: {{epochs: {epochs}}}
variants:
  a: {{}}
"""


def _run(argv: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--finished", type=int, default=20, help="kill the first run once this many trials finished")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="resume-speed-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "all.yaml").write_text(STUDY.format(seeds=list(range(args.trials)), epochs=args.epochs))
    run_dir = root / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(root / "all.yaml"),
            "--out",
            str(run_dir),
            "--max-concurrent",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        while True:
            if proc.poll() is not None:
                sys.exit("the run ended before it was killed; lower --finished")
            results = run_dir / "results.csv"
            if results.is_file() and (pd.read_csv(results)["status"] == "TERMINATED").sum() >= args.finished:
                break
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    before = pd.read_csv(run_dir / "results.csv")
    left = before[before["status"] != "TERMINATED"]
    print(
        f"killed with {len(before) - len(left)} finished, {len(left)} unfinished "
        f"({', '.join(f'{r.trial_name}: {r.status}' for r in left.itertuples())})"
    )
    time.sleep(3)

    resume_s = _run(["resume", str(run_dir)])
    after = pd.read_csv(run_dir / "results.csv")
    assert (after["status"] == "TERMINATED").all() and len(after) == args.trials, after["status"].value_counts()

    (root / "left.yaml").write_text(STUDY.format(seeds=sorted(int(s) for s in left["seed"]), epochs=args.epochs))
    fresh_s = _run(["run", str(root / "left.yaml"), "--out", str(root / "fresh"), "--max-concurrent", "2"])
    print(f"resume (20 finished kept, {len(left)} to run, report of {args.trials}): {resume_s:.1f} s")
    print(f"afresh ({len(left)} trials, report of {len(left)}): {fresh_s:.1f} s")
    print(f"ratio resume / afresh: {resume_s / fresh_s:.2f} (target < 1.2)")


if __name__ == "__main__":
    main()

"""The fairness bootstrap (``reports.fairness.fairness``) against the plain way of writing it.

    .venv/bin/python benchmarks/fairness_speed.py                  # 5 groups x 4,000 pairs, 1,000 resamples
    .venv/bin/python benchmarks/fairness_speed.py --pairs 1000     # a quicker look

One pair set graded into groups (the report's per-domain test pairs of one variant, its seeds
pooled), resampled by identity 1,000 times, the global threshold chosen again in each resample.
Arm "project": ``fairness`` as the report calls it (each resample's rows taken as ranges of the
pairs sorted by identity, each group's rates counted with ``bincount``). Arm "plain": the same
resamples (the same generator, the same draws) written the obvious way: each drawn identity's
rows gathered from a list, each group's rates from a boolean mask. Both must give the same
intervals; the figure is the wall time of each, in one process, one after the other.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def plain(scores, labels, groups, identities, *, target_fmr, resamples, seed=0):
    """The bootstrap's intervals of each group's FMR and FNMR, written the obvious way."""
    from reports.fairness import global_threshold

    names = sorted({g for g in groups.tolist() if g is not None}, key=str)
    rng = np.random.default_rng(seed)
    ids, which = np.unique(identities, return_inverse=True)
    rows_of = [np.flatnonzero(which == k) for k in range(len(ids))]
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        pick = rng.integers(0, len(ids), len(ids))
        rows = np.concatenate([rows_of[k] for k in pick])
        s, y, g = scores[rows], labels[rows], groups[rows]
        if not (y == 0).any():
            continue
        t = global_threshold(s[y == 0], target_fmr)
        for n in names:
            imp, gen = (g == n) & (y == 0), (g == n) & (y == 1)
            draws.setdefault(f"fmr/{n}", []).append(np.mean(s[imp] >= t) if imp.any() else np.nan)
            draws.setdefault(f"fnmr/{n}", []).append(np.mean(s[gen] < t) if gen.any() else np.nan)
    return {k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for k, v in draws.items()}


def main() -> None:
    from reports.fairness import fairness

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=4000, help="pairs per group")
    parser.add_argument("--identities", type=int, default=400)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.groups * args.pairs
    labels = (rng.random(n) < 0.2).astype(int)
    group_index = np.repeat(np.arange(args.groups), args.pairs)
    scores = rng.normal(0.5 * labels + 0.05 * group_index, 0.15)
    groups = np.array([f"g{k}" for k in group_index], dtype=object)
    identities = rng.integers(0, args.identities, n)
    kw = dict(target_fmr=1e-3, resamples=args.resamples)
    t0 = time.perf_counter()
    project = fairness(scores, labels, groups, identities, **kw)
    t_project = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference = plain(scores, labels, groups, identities, **kw)
    t_plain = time.perf_counter() - t0
    worst = max(abs(a - b) for k, v in reference.items() for a, b in zip(v, project.intervals[k]))
    print(f"{n:,} pairs, {args.groups} groups, {args.identities} identities, {args.resamples} resamples")
    print(f"project: {t_project:.2f} s; plain: {t_plain:.2f} s; plain / project: x{t_plain / t_project:.2f}")
    print(f"intervals agree to {worst:.1e}")


if __name__ == "__main__":
    main()

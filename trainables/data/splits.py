"""Validation identities held out of a training set: identity-disjoint, twins together."""

from __future__ import annotations

import numpy as np


def hold_out(units: list[list[int]], fraction: float, *, seed: int) -> np.ndarray:
    """The identity ids held out: about ``fraction`` of the twin units and of the other
    identities, each rounded; at least one twin unit (and never all) when there are two or
    more, so that twin impostor pairs exist on both sides. ``units``: lists of identity ids
    that must stay on one side (a twin pair, or one identity). Depends on ``seed`` only (the
    data seed), never on a trial's seed: every trial of a study validates on the same people.
    """
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, 17])
    twin_units = [u for u in units if len(u) > 1]
    single_units = [u for u in units if len(u) == 1]
    n_twin = round(fraction * len(twin_units))
    if len(twin_units) >= 2:
        n_twin = min(max(n_twin, 1), len(twin_units) - 1)
    n_single = round(fraction * len(single_units))
    held = [twin_units[i] for i in rng.permutation(len(twin_units))[:n_twin]]
    held += [single_units[i] for i in rng.permutation(len(single_units))[:n_single]]
    return np.asarray(sorted(x for u in held for x in u), dtype=np.int64)

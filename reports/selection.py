"""The selection rule as the report states it: which metric chose, which are only reported.

Every choice the tool makes (search ranking, ASHA, top-k, confirm candidates, sensitivity
marks) is made on validation identities (``val/...``); test metrics (``eval/...``) are
reported for what was chosen, never used to choose.
"""

from __future__ import annotations

from reports.rundir.info import RunInfo

VALIDATION, TEST = "val/", "eval/"


def _roles(metrics: list[str]) -> str:
    val = [m for m in metrics if m.startswith(VALIDATION)]
    test = [m for m in metrics if m.startswith(TEST)]
    parts = []
    if test:
        parts.append(f"{', '.join(test)} on the test identities")
    if val:
        parts.append(f"{', '.join(val)} on the validation identities (held out of training)")
    return "; ".join(parts)


def declared(meta: RunInfo, roles: str) -> str:
    """The sentence of a study that chooses nothing (an ablation: its reference is declared)."""
    return (
        f"Chosen on: nothing (the reference is declared in the spec, no point or variant is picked from "
        f"these numbers); reported: {roles}."
    )


def selection_sentence(meta: RunInfo, metrics: list[str]) -> str:
    """What chose and what is reported, for the caption of every table of the run: the
    sentence its kind registered (``reports.kinds``), or ``declared`` for a kind that chooses
    nothing."""
    from reports.kinds import KIND_SELECTION  # the kinds import this module: registered by then

    return KIND_SELECTION.get(meta.kind, declared)(meta, _roles(metrics))


def recommends(meta: RunInfo) -> bool:
    """Marks of a sensitivity run: asked for, and on a validation metric (a run made before
    the rule, ranked on a test metric, gets no marks rather than a biased recommendation)."""
    return meta.recommend and meta.metric.startswith(VALIDATION)

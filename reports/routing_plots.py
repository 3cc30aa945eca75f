"""How a routing model sends each domain's images to its adapters (the notes' "domain-specific
activations"): DA-LoRA's domain-aware LoRA mixes one adapter per training domain with weights
its domain classifier gives each image. The trials keep those weights for every test image
(``evaluation.npz``, ``routing/eval``); the report draws, per variant that routes, the mean
weight of each adapter over the images of each true domain, averaged over seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.rundir.evaluation import Evaluation

ROUTED_SET = "eval"


@dataclass(frozen=True)
class RoutingPanel:
    """One variant's routing: ``weights[d, k]``, the mean over seeds of the mean mixture weight
    of adapter k over the test images of true domain d; ``seeds``: the trials it averages."""

    variant: str
    shown: str
    domains: list[str]
    adapters: list[str]
    weights: np.ndarray
    seeds: int


def routing_matrix(weights: np.ndarray, domain: np.ndarray, domains: int) -> np.ndarray:
    """(domains x adapters): row d, the mean of the weights of the images of domain d (NaN for a
    domain without images)."""
    weights = np.asarray(weights, dtype=np.float64)
    out = np.full((domains, weights.shape[1]), np.nan)
    for d in range(domains):
        own = np.asarray(domain) == d
        if own.any():
            out[d] = weights[own].mean(axis=0)
    return out


def routing_info(evaluations: dict[str, list[Evaluation]], shown: dict[str, str] | None = None) -> list[RoutingPanel]:
    """A panel per variant whose trials kept routing weights (in the order of ``evaluations``);
    the seeds' matrices averaged."""
    shown = shown or {}
    panels = []
    for v, evs in evaluations.items():
        routed = [ev for ev in evs if ROUTED_SET in ev.routing]
        if not routed:
            continue
        domains = routed[0].domains or [
            f"domain {d}" for d in range(int(max(ev.routing[ROUTED_SET]["domain"].max() for ev in routed)) + 1)
        ]
        k = routed[0].routing[ROUTED_SET]["weights"].shape[1]
        adapters = routed[0].adapters if len(routed[0].adapters) == k else [f"adapter {j}" for j in range(k)]
        mats = [
            routing_matrix(ev.routing[ROUTED_SET]["weights"], ev.routing[ROUTED_SET]["domain"], len(domains))
            for ev in routed
            if ev.routing[ROUTED_SET]["weights"].shape[1] == k
        ]
        panels.append(RoutingPanel(v, shown.get(v, v), list(domains), list(adapters), np.mean(mats, axis=0), len(mats)))
    return panels


def routing_figure(panels: list[RoutingPanel], *, title: str):
    """One heatmap per variant: rows the images' true domains, columns the adapters, each cell
    the mean mixture weight (a row sums to 1), written in the cell."""
    from reports.plots import share_heatmaps

    heatmaps = [
        dict(
            z=p.weights,
            x=[f"{a} adapter" for a in p.adapters],
            y=p.domains,
            text=[[("n/a" if np.isnan(w) else f"{w:.2f}") for w in row] for row in p.weights],
            texttemplate="%{text}",
            hovertemplate="%{y} images: %{x} %{z:.3f}<extra></extra>",
        )
        for p in panels
    ]
    titles = [f"{p.shown} ({p.seeds} seed{'s' if p.seeds != 1 else ''})" for p in panels]
    return share_heatmaps(heatmaps, titles, title=title, y_title="true domain", scale="weight")


__all__ = ["RoutingPanel", "routing_figure", "routing_info", "routing_matrix"]

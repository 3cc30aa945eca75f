"""What a ``da_lora`` trial evaluates after an epoch: the test sets (``eval/...``: synthfaces'
held-out identities per domain and across domains with their protocols, every named benchmark,
IJB folder and identification folder) and the validation sets (``val/...``), recording what each
computed for ``evaluation.npz`` (``trainables.evaluation.artifacts``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from trainables.da_lora.model import DaLoraModel
from trainables.data.sources import group_names
from trainables.evaluation.artifacts import active, record_groups, record_pairs, record_routing
from trainables.evaluation.benchmarks import PairBenchmark
from trainables.evaluation.ijb import evaluate_ijb
from trainables.evaluation.keys import VERIFICATION_KEYS
from trainables.evaluation.synthfaces_eval import SynthfacesVerification
from trainables.evaluation.tinyface import evaluate_identification
from trainables.evaluation.verification import verification_metrics
from trainables.hardware import Hardware
from trainables.training import embed_all

if TYPE_CHECKING:
    from trainables.da_lora.config import DaLoraConfig
    from trainables.da_lora.loop import TrialData


class Evaluator:
    """Test sets (``eval/...``: synthfaces' held-out identities per domain and cross-domain,
    every named benchmark, their mean) and validation sets (``val/...``: the identities held
    out of training, every ``val_data`` benchmark, their mean)."""

    def __init__(self, cfg: DaLoraConfig, data: TrialData, hw: Hardware) -> None:
        self.synth = SynthfacesVerification(data.synth, flip=cfg.flip_test) if data.synth is not None else None
        self.val = data.val
        self.benchmarks, self.val_benchmarks, self.flip, self.hw = (
            data.benchmarks,
            data.val_benchmarks,
            cfg.flip_test,
            hw,
        )
        self.domains = data.train.domains
        self.ijb, self.identification, self.attributes = data.ijb, data.identification, data.attributes

    def _benchmarks(self, model, benchmarks: list[PairBenchmark], prefix: str, kw) -> dict[str, float]:
        out, per_bench = {}, []
        for b in benchmarks:
            emb = embed_all(model, b.images, flip=self.flip, **kw)
            scores = (emb[b.left] * emb[b.right]).sum(dim=1).numpy().astype(np.float64)
            m = verification_metrics(scores, b.label)
            groups = {}
            if self.attributes is not None and b.image_identity:  # fairness across the attribute's groups
                _, people = np.unique(b.image_identity, return_inverse=True)
                groups = {
                    "identity": people[b.left],
                    "group": self.attributes.pair_groups(b.image_identity, b.left, b.right),
                }
                record_groups(self.attributes.name, self.attributes.values)
            record_pairs(f"{prefix}/{b.name}", scores, b.label, folds=10, **groups)  # verification_metrics' 10 folds
            per_bench.append(m)
            out.update({f"{prefix}/{b.name}/{k}": v for k, v in m.items()})
        if len(per_bench) > 1:
            out.update({f"{prefix}/mean/{k}": float(np.mean([m[k] for m in per_bench])) for k in VERIFICATION_KEYS})
        return out

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        kw = {"device": self.hw.device, "autocast_dtype": self.hw.autocast_dtype}
        out = self._synth(model, kw) if self.synth is not None else {}
        out.update(self._benchmarks(model, self.benchmarks, "eval", kw))
        embed = lambda x: embed_all(model, x, flip=self.flip, **kw)  # noqa: E731
        for bench in self.ijb:  # streamed: a chunk of its images embedded at a time
            out.update(evaluate_ijb(embed, bench, "eval"))
        for ident in self.identification:  # the gallery and its distractors streamed alike
            out.update(evaluate_identification(embed, ident, "eval"))
        if self.val is not None:
            out.update(self.val(model, **kw))
        out.update(self._benchmarks(model, self.val_benchmarks, "val", kw))
        return out

    def _synth(self, model, kw) -> dict[str, float]:
        """The synthfaces test sets; where the model routes its images to domain adapters and
        the evaluation is recorded, the mixture weights of each test image too (the routing
        heatmap of the report): kept from the forward passes the evaluation makes anyway."""
        synth = self.synth
        assert synth is not None
        if not (active() and isinstance(model, DaLoraModel) and model.routes):
            return synth(model, **kw)
        with model.keeping_routes() as kept:
            out = synth(model, **kw)
        # embed_all's passes, in order: each batch, then (flip test) its mirror image
        weights = torch.cat(kept)
        if self.flip:
            weights = torch.cat([(kept[i] + kept[i + 1]) / 2 for i in range(0, len(kept), 2)])
        if len(weights) != len(synth.domain):
            raise RuntimeError(f"routing: {len(weights)} rows of mixture weights for {len(synth.domain)} test images")
        record_routing(synth.prefix, weights, synth.domain, group_names(self.domains, model.num_domains))
        return out


def _once(fn):
    cache: dict[str, dict[str, float]] = {}

    def wrapper(model):
        if "value" not in cache:
            cache["value"] = fn(model)
        return cache["value"]

    return wrapper

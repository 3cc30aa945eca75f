"""The same model gives the same evaluation whatever the batch size it is embedded in: a
result that moved with the batch size (insightface's IJB-C TAR@FAR=1e-5 went from 52.6 to 57.9,
its issue #1351) would make two runs incomparable. Checked at batch sizes 1, 7 and 64: the
embeddings of held-out synthfaces images, and every metric and pair score of their evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.evaluation.artifacts import recording
from trainables.evaluation.synthfaces_eval import SynthfacesVerification
from trainables.models.backbone import load_backbone
from trainables.training import embed_all


@pytest.fixture(scope="module")
def model(standin):
    torch.set_num_threads(1)
    return load_backbone(str(standin))


def test_embeddings_do_not_depend_on_the_batch_size(model, faces):
    images = torch.as_tensor(faces.group("eval").images[:70])  # a last batch of 6 at 64, of 0 at 7, every size at 1
    ref = embed_all(model, images, batch_size=64, flip=True)
    for batch_size in (1, 7):
        assert torch.allclose(embed_all(model, images, batch_size=batch_size, flip=True), ref, atol=1e-5, rtol=0)


def test_the_evaluation_does_not_depend_on_the_batch_size(model, faces):
    evaluate = SynthfacesVerification(faces, flip=True)
    seen = {}
    for batch_size in (7, 64):
        with recording(1) as ev:
            metrics = evaluate(model, batch_size=batch_size)
        seen[batch_size] = (metrics, ev)
    (metrics, ev), (other, other_ev) = seen[64], seen[7]
    assert len(ev.pairs) >= 2 and len(metrics) > 10
    for name, pairs in ev.pairs.items():
        assert np.allclose(other_ev.pairs[name]["scores"], pairs["scores"], atol=1e-5, rtol=0), name
    for key, value in metrics.items():  # a threshold metric could flip on a tie; none moves here
        assert other[key] == pytest.approx(value, abs=1e-4, nan_ok=True), key

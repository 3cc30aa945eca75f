"""The training data path's two per-batch operations, against their definitions: the flip
augmentation mirrors exactly the images its generator draws (on the numpy fast path and on
torch's), and the Fetcher gathers exactly the rows asked for, in the order asked."""

from __future__ import annotations

import numpy as np
import torch

from trainables.data.sources import TrainSet
from trainables.hardware import Fetcher, Hardware
from trainables.training import random_flip


def test_the_flip_mirrors_the_images_its_generator_draws():
    x = torch.randint(0, 256, (16, 3, 5, 7), dtype=torch.uint8)
    drawn = (torch.rand(16, generator=torch.Generator().manual_seed(4)) < 0.5).numpy()
    assert 0 < drawn.sum() < 16
    expected = np.where(drawn[:, None, None, None], x.numpy()[..., ::-1], x.numpy())  # mirrored: columns reversed
    for images in (x, x.float().requires_grad_()):  # the numpy path, and torch's
        out = random_flip(images, torch.Generator().manual_seed(4))
        np.testing.assert_array_equal(out.detach().numpy(), expected)
    before = x.clone()
    random_flip(x, torch.Generator().manual_seed(4))
    assert torch.equal(x, before)  # a new tensor: the cached rows are never written


def test_the_fetcher_gathers_the_rows_asked_for():
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    train = TrainSet(identity=np.arange(10), domain=np.zeros(10, int), domains=("a",), fingerprint="", images=images)
    fetch = Fetcher(train, 4, Hardware(torch.device("cpu"), None, 0))
    idx = np.array([7, 2, 2, 9])
    assert torch.equal(fetch(idx), torch.stack([images[i] for i in idx]))

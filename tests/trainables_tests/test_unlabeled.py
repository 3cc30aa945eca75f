"""Semi-supervised adaptation in ``da_lora``: which images lose their labels, the loss on
them (entropy minimisation, from its definition), the refusals, and a trial that trains with
it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.da_lora.config import DaLoraConfig, metric_keys
from trainables.da_lora.unlabeled import UnlabeledBatches, check_disjoint, entropy
from trainables.data.sources import DataError

TINY = dict(synth_train_identities=24, synth_train_images=2, flip_test=False, epochs=1)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"lambda_unlabeled": 0.1}, "lambda_unlabeled > 0 needs unlabeled_data"),
        ({"unlabeled_data": "synthfaces:infrared"}, "expected synthfaces:<domain>"),
        ({"unlabeled_data": "synthfaces:visible"}, "visible is the source domain"),
        ({"unlabeled_data": "synthfaces:thermal", "train_data": "/data/faces"}, "need train_data: synthfaces"),
        (
            {"unlabeled_data": "synthfaces:thermal", "lambda_unlabeled": 0.1, "adaptation": "none"},
            "nothing they could change trains",
        ),
    ],
)
def test_unlabeled_settings_that_cannot_work_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        DaLoraConfig.model_validate({**TINY, **bad})


def test_the_unlabeled_loss_is_reported_only_when_it_is_on():
    on = DaLoraConfig.model_validate({**TINY, "unlabeled_data": "synthfaces:thermal", "lambda_unlabeled": 0.1})
    off = DaLoraConfig.model_validate({**TINY, "unlabeled_data": "synthfaces:thermal"})
    assert "train/unlabeled_loss" in metric_keys(on) and "train/unlabeled_loss" not in metric_keys(off)


def test_entropy_is_the_mean_entropy_of_the_heads_identity_posterior():
    rng = np.random.default_rng(0)
    w, z, s = rng.normal(size=(8, 5)), rng.normal(size=(3, 8)), 30.0
    cos = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    logits = s * cos
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = float(np.mean([-sum(pi * math.log(pi) for pi in row if pi > 0) for row in p]))
    got = float(entropy(torch.tensor(w), torch.tensor(z), s))
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)
    # one confident class: entropy near 0; all classes alike: log(classes)
    same = torch.ones(8, 5)
    assert float(entropy(same, torch.tensor(z), s)) == pytest.approx(math.log(5), rel=1e-5)


def test_unlabeled_batches_draw_each_image_once_per_pass():
    batches, g = UnlabeledBatches(10, 4), torch.Generator().manual_seed(0)
    drawn = [batches.next(g) for _ in range(2)]  # 8 of 10, then a new pass (2 left are too few for a batch)
    assert all(len(b) == 4 for b in drawn) and len(set(np.concatenate(drawn))) == 8
    assert len(UnlabeledBatches(3, 64).next(g)) == 3


def test_the_hidden_domains_training_images_are_the_unlabeled_set_and_validation_keeps_its_own(faces):
    """synthfaces:thermal: every thermal image of the identities trained on, and no other,
    becomes unlabeled; the labelled set has four domains, renumbered; the held-out validation
    identities keep their thermal images (validation only)."""
    from trainables.da_lora.loop import load_data
    from trainables.data import synthfaces

    cfg = DaLoraConfig.model_validate({**TINY, "unlabeled_data": "synthfaces:thermal", "lambda_unlabeled": 0.1})
    data = load_data(cfg, cfg.image_size)
    synth = synthfaces.load(cfg.synthfaces())
    train = synth.group("train")
    thermal = synth.domains.index("thermal")
    trained_ids = np.unique(data.train.identity)
    held_ids = np.setdiff1d(np.unique(train.identity), trained_ids)
    assert len(held_ids) >= 4  # there are validation identities
    expected = train.images[(train.domain == thermal) & np.isin(train.identity, trained_ids)]
    got = data.unlabeled.images.numpy()
    assert got.shape == expected.shape and np.array_equal(
        np.sort(got.reshape(len(got), -1), axis=0), np.sort(expected.reshape(len(expected), -1), axis=0)
    )
    assert (data.unlabeled.identity == -1).all()
    assert data.train.domains == tuple(d for d in synth.domains if d != "thermal") and data.num_domains == 4
    assert set(np.unique(data.train.domain)) == {0, 1, 2, 3}
    assert len(data.train) + len(data.unlabeled) == int(np.isin(train.identity, trained_ids).sum())
    assert "val/thermal/acc" in metric_keys(cfg)  # validation still scores the thermal domain


def test_unlabeled_images_of_the_test_or_validation_people_are_refused(faces, tmp_path):
    """An image folder holding the test identities' images (synthfaces' held-out group, as
    files) is refused in one line where the study prepares; so is a folder naming a person of
    a validation pair list."""
    from trainables.da_lora.loop import load_data

    cfg0 = DaLoraConfig.model_validate(TINY)
    test = faces.group("eval") if len(faces.domains) else None
    synth_eval = __import__("trainables.data.synthfaces", fromlist=["load"]).load(cfg0.synthfaces()).group("eval")
    folder = tmp_path / "target"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(synth_eval.images[i].transpose(1, 2, 0)).save(folder / f"img{i}.png")
    cfg = DaLoraConfig.model_validate({**TINY, "unlabeled_data": str(folder), "lambda_unlabeled": 0.1})
    with pytest.raises(DataError) as err:
        load_data(cfg, cfg.image_size, verify=True)
    assert "6 of its images are images of the test identities (synthfaces)" in str(err.value)
    assert "\n" not in str(err.value) and test is not None
    # a folder of other images passes, and the trial's data holds them unlabeled
    other = tmp_path / "other"
    other.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(other / f"x{i}.png")
    ok = DaLoraConfig.model_validate({**TINY, "unlabeled_data": str(other), "lambda_unlabeled": 0.1})
    assert len(load_data(ok, ok.image_size, verify=True).unlabeled) == 5


def test_check_disjoint_refuses_shared_images_and_named_people():
    from trainables.data.sources import TrainSet

    images = np.arange(4 * 3 * 2 * 2, dtype=np.uint8).reshape(4, 3, 2, 2)
    mine = TrainSet(np.full(2, -1), np.zeros(2, dtype=np.int64), ("u",), "f", images=torch.tensor(images[:2]))
    check_disjoint(mine, (), {"validation identities": (images[2:], set())})  # other images: fine
    with pytest.raises(DataError, match="1 of its images are images of the validation benchmark v"):
        check_disjoint(mine, (), {"validation benchmark v": (images[1:], set())})
    with pytest.raises(DataError, match="its folders name 1 people of the test benchmark t .e.g. Ann"):
        check_disjoint(mine, ("Ann", "Bob"), {"test benchmark t": (None, {"Ann", "Cid"})})


def test_a_trial_trains_with_the_unlabeled_loss_and_reports_it(standin, tmp_path):
    """A real (tiny) trial: the unlabeled term is computed, reported per epoch, and moves the
    model: the same seed without it ends elsewhere."""
    from trainables.da_lora.loop import run

    reports: dict[str, list[dict]] = {}
    for name, weight in (("semi", 1.0), ("supervised", 0.0)):
        cfg = DaLoraConfig.model_validate(
            {**TINY, "epochs": 2, "unlabeled_data": "synthfaces:thermal", "lambda_unlabeled": weight, "batch_size": 32}
        )
        got: list[dict] = []
        run(cfg, lambda metrics, checkpoint_dir: got.append(dict(metrics)), out_dir=tmp_path / name)
        reports[name] = got
    semi, sup = reports["semi"], reports["supervised"]
    assert all(r["train/unlabeled_loss"] > 0 for r in semi) and "train/unlabeled_loss" not in sup[-1]
    assert semi[-1]["train/loss"] != pytest.approx(sup[-1]["train/loss"])
    assert semi[-1]["train/unlabeled_loss"] < math.log(24)  # below the entropy of a uniform posterior

"""Domain-aware LoRA, the loss terms and MAML: what each must compute."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import timm
import torch
from pytorch_metric_learning.losses import SupConLoss

from trainables.da_lora.config import DaLoraConfig
from trainables.da_lora.loop import Objective, identity_batches
from trainables.da_lora.maml import maml_initialise
from trainables.da_lora.model import DaLoraModel
from trainables.models.adapt import adapt, lora_parameter_names, trainable_parameters
from trainables.models.backbone import Backbone, InputSpec
from trainables.models.domain_lora import DomainLoraLinear


def tiny_backbone(seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    vit = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=16,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        num_classes=0,
    )
    return Backbone(vit.eval(), InputSpec(16, (0.5,) * 3, (0.5,) * 3), 32)


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def randomise_lora(module: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_B" in name:  # B starts at zero: make the adapters do something
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_one_domain_equals_peft_lora():
    """K = 1 computes exactly what peft's LoRA computes for the same A, B, alpha, r."""
    base = tiny_backbone()
    peft_model = adapt(copy.deepcopy(base), mode="lora", lora_rank=4, lora_alpha=8, lora_targets=("qkv", "fc1"))
    ours = adapt(
        copy.deepcopy(base),
        mode="lora",
        lora_rank=4,
        lora_alpha=8,
        lora_targets=("qkv", "fc1"),
        domain_lora=True,
        num_domains=1,
    )
    randomise_lora(peft_model)
    peft_params = dict(peft_model.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, layer in ours.named_modules():
            if isinstance(layer, DomainLoraLinear):
                stem = name.replace("encoder.", "encoder.base_model.model.", 1)
                layer.lora_A.copy_(peft_params[f"{stem}.lora_A.default.weight"][None])
                layer.lora_B.copy_(peft_params[f"{stem}.lora_B.default.weight"][None])
                copied += 1
    assert copied == 4  # qkv and fc1 in two blocks
    x = images()
    expected = peft_model(x)
    assert not torch.allclose(expected, base(x), atol=1e-3)  # the adapters change the output
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
    assert sorted(trainable_parameters(ours)) == sorted(lora_parameter_names(ours))


def test_mixture_weights_mix_the_adapters_linearly():
    model = adapt(tiny_backbone(), mode="lora", lora_rank=2, lora_targets=("qkv",), domain_lora=True, num_domains=3)
    randomise_lora(model)
    layer = model.encoder.blocks[0].attn.qkv
    x = torch.randn(4, 5, 32)
    with model.mixture.disabled():
        y0 = layer(x)
    eye = torch.eye(3)
    deltas = []
    for k in range(3):
        with model.mixture.using(eye[k].expand(4, 3)):
            deltas.append(layer(x) - y0)
    assert not torch.allclose(deltas[0], deltas[1], atol=1e-4)  # changing the weights changes the output
    w = torch.softmax(torch.randn(4, 3), dim=1)  # a different mixture for each sample
    with model.mixture.using(w):
        y = layer(x)
    expected = y0 + sum(w[:, k, None, None] * deltas[k] for k in range(3))
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    with model.mixture.disabled():
        torch.testing.assert_close(model(images()), tiny_backbone()(images()))  # adapters off = pretrained model


def test_routing_follows_the_domain_classifier():
    backbone = adapt(tiny_backbone(), mode="lora", lora_rank=2, lora_targets=("qkv",), domain_lora=True, num_domains=2)
    randomise_lora(backbone)
    model = DaLoraModel(backbone, num_domains=2, with_classifier=True)
    x = images()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([20.0, -20.0]))  # everything routed to adapter 0
        routed = model(x)
        with backbone.mixture.using(torch.tensor([[1.0, 0.0]]).expand(len(x), 2)):
            only_first = backbone(x)
    torch.testing.assert_close(routed, only_first, rtol=1e-4, atol=1e-4)
    z = model(x)
    z.sum().backward()
    assert model.classifier.bias.grad is not None  # the main loss trains the router through the weights


def _objective(**kw) -> tuple[Objective, DaLoraModel]:
    cfg = DaLoraConfig(**kw)
    backbone = adapt(
        tiny_backbone(), mode="lora", lora_rank=2, lora_targets=("qkv",), domain_lora=cfg.domain_lora, num_domains=3
    )
    model = DaLoraModel(backbone, num_domains=3, with_classifier=cfg.uses_classifier)
    return Objective(cfg, model, num_classes=4), model


def test_loss_terms_add_with_their_weights():
    torch.manual_seed(0)
    z, y, g = torch.randn(8, 32), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    objective, model = _objective(lambda_contrastive=0.3, lambda_domain=0.7, contrastive_temperature=0.2)
    total = objective(model, z, y, g)
    cos = objective.cosface(z, y)
    con = SupConLoss(temperature=0.2)(z, y)
    dom = torch.nn.functional.cross_entropy(model.classifier(z), g)
    torch.testing.assert_close(total, cos + 0.3 * con + 0.7 * dom)
    assert set(objective.parts) == {"cosface", "contrastive", "domain"}


def test_zero_weight_removes_the_computation():
    objective, model = _objective(lambda_contrastive=0.0, lambda_domain=0.0)
    assert objective.contrastive is None and model.classifier is None  # nothing built, nothing computed
    z, y, g = torch.randn(8, 32), torch.arange(4).repeat_interleave(2), torch.zeros(8, dtype=torch.long)
    torch.testing.assert_close(objective(model, z, y, g), objective.cosface(z, y))
    assert set(objective.parts) == {"cosface"}
    # with a classifier present (it routes the adapters), lambda_domain=0 still never calls it on z
    objective, model = _objective(domain_lora=True, lambda_domain=0.0)
    calls = []
    model.classifier.register_forward_hook(lambda *a: calls.append(1))
    objective(model, z, y, g)
    assert not calls


def _maml_setup(first_order: bool = False):
    backbone = adapt(tiny_backbone(), mode="lora", lora_rank=2, lora_targets=("qkv",), domain_lora=True, num_domains=2)
    model = DaLoraModel(backbone, num_domains=2, with_classifier=True)
    objective = Objective(DaLoraConfig(domain_lora=True), model, num_classes=4)
    x, labels = images(32, seed=5), torch.arange(4).repeat(8)
    domain = np.repeat([0, 1], 16)
    kwargs = dict(
        domain=domain, groups=domain, inner_lr=0.05, meta_steps=3, outer_lr=1e-2, batch_size=4, first_order=first_order
    )
    return model, objective, (lambda idx: (x[idx], labels[idx])), kwargs


def test_maml_with_zero_steps_changes_nothing():
    model, objective, fetch, kw = _maml_setup()
    before = copy.deepcopy(model.state_dict())
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert maml_initialise(model, objective.cosface, fetch, inner_steps=0, generator=g, **kw) == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(g.get_state(), state)  # not even the data order moves


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_changes_only_lora_parameters(first_order):
    model, objective, fetch, kw = _maml_setup(first_order)
    before = copy.deepcopy(model.state_dict())
    head = objective.cosface.W.detach().clone()
    losses = maml_initialise(model, objective.cosface, fetch, inner_steps=2, generator=torch.Generator(), **kw)
    assert len(losses) == 3 and all(np.isfinite(losses))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    lora = {k for k in before if "lora_A" in k or "lora_B" in k}
    assert changed and changed <= lora
    assert torch.equal(objective.cosface.W, head) and objective.cosface.W.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_second_order_maml_differs_from_first_order():
    """The second-order term is really there: same tasks, same start, different update."""
    results = []
    for first_order in (False, True):
        model, objective, fetch, kw = _maml_setup(first_order)
        randomise_lora(model)  # B != 0, so the inner steps' curvature matters
        maml_initialise(
            model, objective.cosface, fetch, inner_steps=2, generator=torch.Generator().manual_seed(0), **kw
        )
        results.append(torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_" in n]))
    assert not torch.allclose(results[0], results[1], atol=1e-7)


def test_identity_batches_balanced_and_deterministic():
    labels = np.repeat(np.arange(10), 6)  # 10 identities x 6 images
    a = identity_batches(labels, batch_size=8, per_identity=2, generator=torch.Generator().manual_seed(1))
    b = identity_batches(labels, batch_size=8, per_identity=2, generator=torch.Generator().manual_seed(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    used = np.concatenate(a)
    assert len(set(used.tolist())) == len(used)  # no image twice in an epoch
    for batch in a:
        counts = np.bincount(labels[batch])
        assert set(counts[counts > 0]) == {2}  # distinct identities, each with a positive


def test_group_names_name_each_adapter_by_the_domains_it_holds():
    """The source domain keeps an adapter of its own; the others share the rest in turn."""
    from trainables.data.sources import group_names

    domains = ("visible", "thermal", "sketch", "low_quality")
    assert group_names(domains, 4) == domains
    assert group_names(domains, 3) == ("visible", "thermal+low_quality", "sketch")
    assert group_names(domains, 2) == ("visible", "thermal+sketch+low_quality")
    assert group_names(domains, 1) == ("visible+thermal+sketch+low_quality",)


def test_the_evaluation_keeps_the_routing_of_each_test_image():
    """Recorded evaluation of a routing model: each test image's row of ``routing/eval`` is the
    mean of the mixture weights of the image and of its mirror image (the two passes of the flip
    test), computed here straight from the domain classifier, in the images' order across
    batches; nothing is kept outside a recording or for a model that does not route."""
    from trainables.da_lora.evaluate import Evaluator
    from trainables.evaluation.artifacts import recording
    from trainables.training import embed_all

    backbone = adapt(tiny_backbone(), mode="lora", lora_rank=2, lora_targets=("qkv",), domain_lora=True, num_domains=3)
    model = DaLoraModel(backbone, num_domains=3, with_classifier=True)
    with torch.no_grad():
        model.classifier.weight.copy_(
            torch.randn(model.classifier.weight.shape, generator=torch.Generator().manual_seed(2))
        )
    x, domain = images(23), np.arange(23) % 4
    # the test set as the evaluator calls it: its images embedded by embed_all (batches of 5)
    evaluator = object.__new__(Evaluator)
    evaluator.flip, evaluator.domains = True, ("visible", "thermal", "sketch", "low_quality")
    evaluator.synth = lambda m, **kw: {"n": len(embed_all(m, x, flip=True, batch_size=5))}
    evaluator.synth.prefix, evaluator.synth.domain = "eval", domain  # type: ignore[attr-defined]
    with recording(1) as ev:
        assert evaluator._synth(model, {}) == {"n": 23}
    with torch.no_grad():
        want = (model.mixture_weights(x) + model.mixture_weights(x.flip(-1))) / 2
    got = ev.routing["eval"]
    assert torch.allclose(torch.as_tensor(got["weights"]), want, atol=1e-6)
    assert got["domain"].tolist() == domain.tolist()
    assert ev.adapters == ["visible", "thermal+low_quality", "sketch"]
    assert evaluator._synth(model, {}) == {"n": 23}  # no recording: nothing kept, the same numbers
    assert model._kept is None
    with recording(1) as ev:
        evaluator._synth(DaLoraModel(tiny_backbone(), num_domains=1, with_classifier=False), {})
    assert not ev.routing

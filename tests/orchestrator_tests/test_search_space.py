"""Search spaces: checked once, sampled by a real Optuna study, conditions honoured."""

from __future__ import annotations

import math

import optuna
import pytest

from reports.rundir.space import SearchSpaceError, base_point, define_by_run, parse_space, sampled_config

SPACE = {
    "lr": {"loguniform": [1.0e-4, 3.0e-3]},
    "lora_rank": {"choice": [4, 8, 16]},
    "lambda_contrastive": {"uniform": [0.0, 0.5]},
    "maml_inner_steps": {"int": [0, 6], "step": 2},
    "maml_inner_lr": {"loguniform": [1.0e-3, 0.1], "when": {"maml_inner_steps": {"gt": 0}}},
    "lambda_domain": {"uniform": [0.0, 0.1], "when": {"domain_lora": True}},
}
BASE = {
    "lr": 1e-3,
    "lora_rank": 8,
    "lambda_contrastive": 0.1,
    "maml_inner_steps": 0,
    "maml_inner_lr": 0.01,
    "domain_lora": False,
    "epochs": 3,
}


def _study(n: int, base_first: bool = False) -> optuna.Study:
    params = parse_space(SPACE)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    if base_first:
        study.enqueue_trial(base_point(params, BASE))
    fn = define_by_run(params, BASE)
    study.optimize(lambda t: (fn(t), 0.0)[1], n_trials=n)
    return study


def test_samples_stay_in_their_ranges_and_conditions_hold():
    study = _study(60)
    steps = set()
    for t in study.trials:
        p = t.params
        assert 1e-4 <= p["lr"] <= 3e-3 and p["lora_rank"] in (4, 8, 16) and 0 <= p["lambda_contrastive"] <= 0.5
        assert p["maml_inner_steps"] in (0, 2, 4, 6)
        steps.add(p["maml_inner_steps"])
        # the MAML learning rate is sampled exactly when MAML is on; lambda_domain never (domain_lora off)
        assert ("maml_inner_lr" in p) == (p["maml_inner_steps"] > 0)
        assert "lambda_domain" not in p
        cfg = sampled_config(parse_space(SPACE), BASE, p)
        assert cfg["maml_inner_lr"] == (p["maml_inner_lr"] if p["maml_inner_steps"] else 0.01) and cfg["epochs"] == 3
    assert steps == {0, 2, 4, 6}
    logs = [math.log10(t.params["lr"]) for t in study.trials]
    assert min(logs) < -3.3 and max(logs) > -2.8  # spread over the log range, not bunched at the top


def test_base_is_evaluated_first():
    study = _study(3, base_first=True)
    first = study.trials[0].params
    assert first == {"lr": 1e-3, "lora_rank": 8, "lambda_contrastive": 0.1, "maml_inner_steps": 0}


@pytest.mark.parametrize(
    "space, message",
    [
        ({"lora_rank": {"choice": []}}, "space.lora_rank: choice needs a non-empty list"),
        ({"lr": {"uniform": [0.1, 0.01]}}, "space.lr: uniform bounds are inverted or equal"),
        ({"lr": {"loguniform": [0.0, 0.1]}}, "space.lr: a log range must lie above 0"),
        ({"n": {"int": [0, 8], "log": True}}, "space.n: a log range must lie above 0"),
        ({"n": {"int": [0.5, 8]}}, "space.n: int bounds must be integers"),
        ({"lr": {"uniform": [0.1]}}, "space.lr: uniform needs [low, high]"),
        (
            {"lr": {"normal": [0, 1]}},
            "space.lr: give exactly one of choice, uniform, loguniform, int (unknown: normal)",
        ),
        (
            {"a": {"uniform": [0, 1], "when": {"b": {"gt": 0}}}, "b": {"int": [0, 2]}},
            "its condition names b, which is sampled after it",
        ),
        ({"a": {"uniform": [0, 1], "when": {"b": {"between": 0}}}}, "space.a.when.b: expected one of"),
        ({}, "space: expected a non-empty mapping"),
    ],
)
def test_bad_spaces_are_refused(space, message):
    with pytest.raises(SearchSpaceError) as err:
        parse_space(space)
    assert message in str(err.value)


def test_sampled_config_the_trainable_refuses_fails_in_one_line(tmp_path):
    """A sampled combination the trainable's config refuses fails that trial with a one-line
    reason (its error file's last line, which results.csv keeps), not the validation dump."""
    from orchestrator.plan import compile_search, resolve_trainable
    from orchestrator.progress import sampled_trial_config
    from orchestrator.studies import load_study
    from tests.orchestrator_tests.test_spec import SEARCH

    (tmp_path / "s.yaml").write_text(
        SEARCH.replace(
            "maml_inner_steps: 0}", "maml_inner_steps: 0, adaptation: none, lambda_contrastive: 0.0}"
        ).replace("space:\n", "space:\n  lambda_contrastive: {choice: [0.0, 0.5]}\n")
    )
    spec, _ = load_study(str(tmp_path / "s.yaml"))
    search, entry = compile_search(spec), resolve_trainable(spec)
    assert sampled_trial_config(entry, search, {"lambda_contrastive": 0.0, "lr": 1e-3})["lambda_contrastive"] == 0.0
    with pytest.raises(ValueError) as err:
        sampled_trial_config(entry, search, {"lambda_contrastive": 0.5, "lr": 1e-3})
    message = str(err.value)
    assert message.startswith("sampled config refused by da_lora: ") and "adaptation: none" in message
    assert "\n" not in message

"""Study specs: every shipped study compiles; bad specs and options fail with one line."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from PIL import Image

import search_spaces
from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.plan import compile_plan, parse_overrides
from orchestrator.studies import load_study

GOOD = """
name: tiny
kind: ablation
trainable: da_lora
metric: eval/cross_domain/acc
mode: max
seeds: [0, 1]
reference: a
base: {epochs: 1}
variants:
  a: {adaptation: lora}
  b: {adaptation: none}
"""
#: GOOD on tiny data (24 adaptation identities x 2 images per domain, no flip test), for the
#: tests that run it: what they check does not depend on the data's size.
GOOD_SMALL = GOOD.replace(
    "base: {epochs: 1}", "base: {epochs: 1, synth_train_identities: 24, synth_train_images: 2, flip_test: false}"
)


@pytest.mark.parametrize("name", sorted(search_spaces.shipped()))
@pytest.mark.parametrize("quick", [False, True])
def test_shipped_studies_compile(name, quick):
    spec, _ = load_study(name)
    if spec.kind == "search":
        from orchestrator.plan import compile_search

        search = compile_search(spec, quick=quick)
        assert search.num_samples == (spec.quick.num_samples if quick else spec.num_samples)
        assert search.base_config["eval_every"] == 1  # ASHA needs the metric every iteration
        return
    plans = compile_plan(spec, quick=quick, warn=lambda _: None)
    seeds = (spec.quick.seeds or spec.seeds) if quick else spec.seeds
    groups = spec.groups(quick=quick, base={**spec.base, **(spec.quick.base if quick else {})})
    assert len(plans) == len(groups) * len(seeds)
    assert len({(p.variant, p.seed) for p in plans}) == len(plans)
    assert len({p.config_hash for p in plans}) == len(groups)  # no two groups run the same config
    assert {p.seed for p in plans} == set(seeds)


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_good_spec_and_overrides(tmp_path):
    spec, _ = load_study(_write(tmp_path, GOOD))
    plans = compile_plan(spec, overrides=parse_overrides(["lr=2e-3", "lora_targets=[qkv, attn.proj]"]))
    assert [p.name for p in plans] == ["a_seed0", "a_seed1", "b_seed0", "b_seed1"]
    assert all(p.config["lr"] == 2e-3 and p.config["lora_targets"] == ["qkv", "attn.proj"] for p in plans)
    assert plans[0].config_hash == plans[1].config_hash != plans[2].config_hash


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD + "colour: blue\n", "colour: unknown key"),
        (GOOD.replace("seeds: [0, 1]", "seeds: zero"), "seeds: Input should be a valid list"),
        (GOOD.replace("reference: a", "reference: z"), "reference 'z' is not one of the variants"),
        (GOOD.replace("mode: max", "mode: best"), "mode: Input should be 'max' or 'min'"),
        (GOOD + "report: {interval: bca}\n", "report.interval: Input should be 't' or 'bootstrap' (got 'bca')"),
        (
            GOOD + "report: {test: permutation}\n",
            "report.test: Input should be 'auto', 'paired_t', 'welch', 'wilcoxon'",
        ),
        (
            GOOD.replace("a: {adaptation: lora}", "a: {lora_rank: 0}"),
            "variant 'a': lora_rank: Input should be greater than 0 (got 0)",
        ),
        (GOOD.replace("base: {epochs: 1}", "base: {lr: -0.1}"), "lr: Input should be greater than 0"),
        (GOOD.replace("base: {epochs: 1}", "base: {epochs: one}"), "epochs: Input should be a valid integer"),
        (GOOD.replace("base: {epochs: 1}", "base: {learning_rate: 0.1}"), "learning_rate: unknown key"),
        (GOOD.replace("base: {epochs: 1}", "base: {epochs: -2}"), "epochs: Input should be greater than 0 (got -2)"),
        (GOOD.replace("base: {epochs: 1}", "base: {lora_dropout: 1.5}"), "lora_dropout: Input should be less than 1"),
        (GOOD.replace("trainable: da_lora", "trainable: nope"), "unknown trainable 'nope'"),
        ("name: [unclosed\n", "YAML does not parse at line"),
        ("- just\n- a list\n", "a study spec must be a YAML mapping"),
    ],
)
def test_bad_specs(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        spec, _ = load_study(_write(tmp_path, text))
        compile_plan(spec)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_set_key_and_bad_set_syntax(tmp_path):
    spec, _ = load_study(_write(tmp_path, GOOD))
    with pytest.raises(UserError, match="--set lora_rnak: unknown key for trainable 'da_lora'"):
        compile_plan(spec, overrides=parse_overrides(["lora_rnak=4"]))
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_overrides(["lora_rank"])


def test_unknown_study():
    with pytest.raises(UserError, match="unknown study 'nosuch'; shipped studies: ablation"):
        load_study("nosuch")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "nosuch"], "error: unknown study 'nosuch'"),
        (["run", "ablation", "--set", "lora_rank=0"], "lora_rank: Input should be greater than 0"),
        (["run", "ablation", "--set", "nokey=1"], "--set nokey: unknown key"),
        (["run", "ablation", "--max-concurrent", "0"], "--max-concurrent must be >= 1"),
        (["run", "ablation", "--gpus-per-trial", "1.5"], "--gpus-per-trial must be a fraction"),
        (["run", "ablation", "--gpus-per-trial", "64"], "--gpus-per-trial 64 asks for a GPU, but this machine has"),
        (["run", "ablation", "--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
        (["run", "ablation", "--dashboard-host", "every where"], "--dashboard-host 'every where': expected an IP"),
        (["report", "/nonexistent/run"], "is not a directory"),
        (["run", "search", "--set", "lr=-1"], "base: lr: Input should be greater than 0"),
        (["frobnicate"], "error: argument command: invalid choice"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written there before the input is refused
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "setting, message",
    [
        ("lora_targets=[q_proj]", "variant 'a': lora_targets ['q_proj'] match no linear layer"),
        ("backbone=/nonexistent/backbone", "no such directory /nonexistent/backbone"),
        ("backbone=NOWEIGHTS", "has no weights (model.safetensors or pytorch_model.bin)"),
        ("backbone=EMPTYWEIGHTS", "EMPTYWEIGHTS: cannot load its weights"),  # da_lora: one loader, one line
        ("backbone=RANDOMWEIGHTS", "RANDOMWEIGHTS: cannot load its weights"),
        ("num_domains=9", "num_domains=9, but the training data has 5 domains"),
        ("benchmarks={lfw: /nonexistent/lfw.bin}", "benchmark lfw: no such file /nonexistent/lfw.bin"),
        ("benchmarks={lfw: NOTPAIRS}", "not a pair list"),
        ("benchmarks={lfw: EVILBIN}", "only bytes, lists and booleans are accepted"),
        ("train_data=/nonexistent/faces", "train_data /nonexistent/faces: no such directory"),
        ("train_data=/nonexistent/faces.csv", "manifest /nonexistent/faces.csv: "),
        ("benchmarks={lfw: MISSINGPAIRS}", "gone.png not found"),  # a pair list naming a file that is not there
        ("benchmarks={lfw: EMPTYPAIRS}", "cannot read image"),  # a zero-byte image in a pair list
    ],
)
def test_inputs_refused_while_preparing(setting, message, capsys, tmp_path, standin):
    (tmp_path / "notpairs.txt").write_text("this is\nnot a pair list at all\n")
    (tmp_path / "evil.bin").write_bytes(
        b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    )  # a classic pickle exploit: os.system("touch ...")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text('{"architecture": "vit_tiny_patch16_224"}')
    for name, weights in (("EMPTYWEIGHTS", b""), ("RANDOMWEIGHTS", os.urandom(4096))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_bytes((standin / "config.json").read_bytes())
        (tmp_path / name / "model.safetensors").write_bytes(weights)
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "missing.txt").write_text(f"{tmp_path / 'ok.png'} {tmp_path / 'gone.png'} 1\n")
    (tmp_path / "emptyimg.txt").write_text(f"{tmp_path / 'ok.png'} {tmp_path / 'empty.png'} 1\n")
    for placeholder, path in (
        ("EMPTYWEIGHTS", "EMPTYWEIGHTS"),
        ("RANDOMWEIGHTS", "RANDOMWEIGHTS"),
        ("NOWEIGHTS", "noweights"),
        ("NOTPAIRS", "notpairs.txt"),
        ("EVILBIN", "evil.bin"),
        ("MISSINGPAIRS", "missing.txt"),
        ("EMPTYPAIRS", "emptyimg.txt"),
    ):
        setting = setting.replace(placeholder, str(tmp_path / path))
    out = tmp_path / "run"
    # train/loss: a metric of real training data too (it has no synthfaces test sets)
    study = _write(tmp_path, GOOD.replace("metric: eval/cross_domain/acc", "metric: train/loss"))
    assert main(["run", study, "--out", str(out), "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()  # no half-made run directory is left behind
    assert not (tmp_path / "pwned").exists()


def test_list_prints_shipped_studies(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == sorted(search_spaces.shipped())


SENSITIVITY = """
name: sens
kind: sensitivity
trainable: da_lora
metric: val/cross_domain/acc
mode: max
seeds: [0, 1]
base: {epochs: 1, lora_rank: 8, lambda_contrastive: 0.1, lambda_domain: 0.01}
axes:
  lora_rank: [4, 8, 16]
  weights:
    lambda_contrastive: [0.1, 0.5]
    lambda_domain: [0.01, 0.1]
quick:
  axes: {lora_rank: [4, 8]}
"""


def test_sensitivity_points_share_the_base(tmp_path):
    spec, _ = load_study(_write(tmp_path, SENSITIVITY))
    plans = compile_plan(spec)
    groups = list(dict.fromkeys(p.variant for p in plans))
    # the base once, then the 2 other ranks, then the 3 non-base cells of the 2 x 2 grid
    assert groups == [
        "base",
        "lora_rank=4",
        "lora_rank=16",
        "lambda_contrastive=0.1,lambda_domain=0.1",
        "lambda_contrastive=0.5,lambda_domain=0.01",
        "lambda_contrastive=0.5,lambda_domain=0.1",
    ]
    assert len(plans) == 6 * 2
    by_group = {p.variant: p.config for p in plans if p.seed == 0}
    assert by_group["lora_rank=16"]["lora_rank"] == 16 and by_group["lora_rank=16"]["lambda_contrastive"] == 0.1
    assert by_group["lambda_contrastive=0.5,lambda_domain=0.1"]["lora_rank"] == 8
    assert plans[0].name == "base_seed0" and "=" not in plans[2].name
    points = spec.points(quick=False, base=spec.base)
    assert [p.group for p in points if p.axis == "lora_rank"] == ["lora_rank=4", "base", "lora_rank=16"]
    assert sum(p.is_base for p in points) == 2  # the base sits on both axes
    quick = compile_plan(spec, quick=True)
    assert sorted({p.variant for p in quick}) == ["base", "lora_rank=4"]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("lora_rank: [4, 8, 16]", "lora_rank: [4, 16]"),
            "axis 'lora_rank': the base value {'lora_rank': 8} is not on the axis",
        ),
        (
            ("base: {epochs: 1, lora_rank: 8,", "base: {epochs: 1,"),
            "axis 'lora_rank': the base config must set lora_rank",
        ),
        (("axes: {lora_rank: [4, 8]}", "axes: {depth: [1]}"), "quick.axes names unknown axes ['depth']"),
        (("lora_rank: [4, 8, 16]", "lora_rank: [4, 8, 8]"), "lora_rank repeats a value"),
        (("lora_rank: [4, 8, 16]", "lora_rank: 8"), "expected a list of values or a mapping"),
        (
            ("lora_rank: [4, 8, 16]", "lora_rank: [4, 8, -1]"),
            "point 'lora_rank=-1': lora_rank: Input should be greater than 0",
        ),
        (("kind: sensitivity", "kind: sweep"), "kind: expected one of ablation, search, sensitivity"),
        (
            ("lora_rank: [4, 8, 16]", "lora_rank: [4, 8, 16]\n  depth: [1, 2]"),
            "axis 'depth' names depth, not a key of trainable",
        ),
        (("lambda_domain: [0.01, 0.1]", "lambda_dom: [0.01, 0.1]"), "axis 'weights' names lambda_dom, not a key"),
    ],
)
def test_bad_sensitivity_specs(change, message, tmp_path):
    with pytest.raises(UserError, match=None) as err:
        spec, _ = load_study(_write(tmp_path, SENSITIVITY.replace(*change)))
        compile_plan(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


SEARCH = """
name: s
kind: search
trainable: da_lora
metric: val/cross_domain/acc
mode: max
seeds: [0]
num_samples: 4
base: {epochs: 2, maml_inner_steps: 0}
space:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
  maml_inner_lr: {loguniform: [1.0e-3, 0.1], when: {maml_inner_steps: {gt: 0}}}
"""


@pytest.mark.parametrize(
    "change, message",
    [
        (("{loguniform: [1.0e-4, 1.0e-2]}", "{choice: []}"), "space.lr: choice needs a non-empty list"),
        (("{loguniform: [1.0e-4, 1.0e-2]}", "{uniform: [0.1, 0.01]}"), "space.lr: uniform bounds are inverted"),
        (("{loguniform: [1.0e-4, 1.0e-2]}", "{loguniform: [0, 0.01]}"), "space.lr: a log range must lie above 0"),
        (("  lr: {", "  lrr: {"), "space names lrr, not a key of trainable 'da_lora'"),
        (("base: {epochs: 2,", "scheduler: {grace_period: 5}\nbase: {epochs: 2,"), "grace_period 5 exceeds max_t 2"),
        (("base: {epochs: 2,", "base: {epochs: 2, eval_every: 2,"), "a search needs eval_every: 1"),
        (
            ("num_samples: 4", "num_samples: 4\nconfirm: {seeds: [1, 1]}"),
            "confirm.seeds: Value error, seeds must be distinct",
        ),
        (
            ("num_samples: 4", "num_samples: 4\nconfirm: {seeds: [1]}"),
            "confirm.seeds: List should have at least 2 items",
        ),
        (("num_samples: 4", "num_samples: 4\nconfirm: {top_k: 0}"), "confirm.top_k: Input should be greater than 0"),
    ],
)
def test_bad_search_specs(change, message, tmp_path, capsys):
    study = _write(tmp_path, SEARCH.replace(*change))
    assert main(["run", study, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_good_search_spec_compiles(tmp_path):
    from orchestrator.plan import compile_search

    spec, _ = load_study(_write(tmp_path, SEARCH))
    plan = compile_search(spec)
    assert plan.max_t == 2 and plan.num_samples == 4 and plan.base_config["epochs"] == 2
    from trainables import get_trainable

    full = plan.full_config(get_trainable("da_lora"), {"lr": 2e-3})
    assert full["lr"] == 2e-3 and full["maml_inner_lr"] == 0.01 and full["seed"] == 0


@pytest.mark.parametrize(
    "spec, change, message",
    [
        # a typo in the metric: refused before any trial, with the nearest valid keys
        (
            "GOOD",
            ("metric: eval/cross_domain/acc", "metric: eval/cross_domian/acc"),
            "metric eval/cross_domian/acc is not a metric of trainable 'da_lora'; nearest: eval/cross_domain/acc",
        ),
        (
            "GOOD",
            ("variants:", "report: {metrics: [eval/visible/acc, eval/visble/auc]}\nvariants:"),
            "report.metrics names eval/visble/auc, not a metric of trainable 'da_lora'; nearest: eval/visible/auc",
        ),
        (
            "SEARCH",
            ("metric: val/cross_domain/acc", "metric: val/cross_domain/accuracy"),
            "metric val/cross_domain/accuracy is not a metric of trainable 'da_lora'; nearest: val/cross_domain/auc, val/cross_domain/acc",
        ),
        # a metric only some trials report cannot rank all of them
        (
            "GOOD",
            ("  a: {adaptation: lora}", "  a: {adaptation: lora, lambda_contrastive: 0.1}"),
            "metric train/contrastive_loss is not reported by variant 'b'",
        ),
        # choosing on the test identities: refused, naming the validation metric to use
        (
            "SEARCH",
            ("metric: val/cross_domain/acc", "metric: eval/cross_domain/acc"),
            "metric eval/cross_domain/acc is not a validation metric (val/...); a search ranks, samples and stops "
            "trials by its metric, and a choice made on the test identities biases every number reported for it: "
            "use val/cross_domain/acc",
        ),
        (
            "SENS",
            ("metric: val/cross_domain/acc", "metric: eval/cross_domain/acc"),
            "use val/cross_domain/acc (or report.recommend: false to mark nothing)",
        ),
        # without validation identities there is nothing valid to choose on
        (
            "SEARCH",
            ("base: {epochs: 2,", "base: {epochs: 2, val_fraction: 0,"),
            "metric val/cross_domain/acc is not a metric of trainable 'da_lora'",
        ),
    ],
)
def test_metrics_checked_before_anything_runs(spec, change, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = {"GOOD": GOOD, "SEARCH": SEARCH, "SENS": SENSITIVITY}[spec]
    if "contrastive_loss" in message:
        text = text.replace("metric: eval/cross_domain/acc", "metric: train/contrastive_loss")
    assert change[0] in text
    study = _write(tmp_path, text.replace(*change))
    assert main(["run", study, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_sensitivity_without_recommendation_may_report_test_metrics(tmp_path):
    text = SENSITIVITY.replace("metric: val/cross_domain/acc", "metric: eval/cross_domain/acc")
    text = text.replace("\naxes:", "\nreport: {recommend: false}\naxes:", 1)
    spec, _ = load_study(_write(tmp_path, text))
    assert compile_plan(spec)  # nothing is marked, so nothing is chosen on the test identities


@pytest.mark.parametrize(
    "content, message",
    [
        ("GOOD_DUP_VARIANT", "YAML does not parse at line 12, column 3: key 'a' is written twice (first at line 11)"),
        ("GOOD_DUP_BASE", "key 'epochs' is written twice"),
        (b"name: x\nkind: ablation\ndescription: \xff\xfe caf\xe9\n", "not a UTF-8 text file (byte 36"),
    ],
)
def test_spec_files_that_say_two_things_or_are_not_text(tmp_path, capsys, content, message):
    """A key written twice (PyYAML would keep the last silently) and a file that is not UTF-8
    end in one line, exit 2, nothing written."""
    path = tmp_path / "study.yaml"
    if content == "GOOD_DUP_VARIANT":
        path.write_text(GOOD.replace("  b: {adaptation: none}", "  a: {adaptation: none}"))
    elif content == "GOOD_DUP_BASE":
        path.write_text(GOOD.replace("base: {epochs: 1}", "base: {epochs: 1, epochs: 2}"))
    else:
        path.write_bytes(content)
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_misleading_inputs_get_the_real_problem(tmp_path, capsys):
    """--set seed would change nothing (seeds come from the spec's seeds); a directory given
    as the study is a directory, not a missing file."""
    study = _write(tmp_path, GOOD)
    assert main(["run", study, "--out", str(tmp_path / "run"), "--set", "seed=5"]) == 2
    assert "--set seed: each trial's seed comes from the study's seeds" in capsys.readouterr().err
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert f"study {tmp_path} is a directory" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "where, setting, message",
    [
        ("--set", "lora_rank=true", "lora_rank: Value error, got the boolean true where a number is expected"),
        ("--set", "lr=false", "lr: Value error, got the boolean false where a number is expected"),
        (
            "spec",
            ("seeds: [0, 1]", "seeds: [0, 1]\nmax_failures: true"),
            "max_failures: got the boolean true where a number is expected",
        ),
    ],
)
def test_booleans_are_not_numbers(tmp_path, capsys, where, setting, message):
    """pydantic's lax mode reads `true` as 1 (`lora_rank: true` trained rank 1): refused."""
    text = GOOD if where == "--set" else GOOD.replace(*setting)
    argv = ["run", _write(tmp_path, text), "--out", str(tmp_path / "run")]
    if where == "--set":
        argv += ["--set", setting]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    from trainables.da_lora import DaLoraConfig

    assert DaLoraConfig(flip_test=False, num_domains=None).flip_test is False  # real booleans still are


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("{loguniform: [1.0e-4, 1.0e-2]}", "{choice: [fast, slow]}"),
            "space.lr offers 'fast', not a valid lr for trainable 'da_lora': Input should be a valid number",
        ),
        (
            ("{loguniform: [1.0e-4, 1.0e-2]}", "{loguniform: [1.0e-4, 2.0]}"),
            "space.lr has the bound 2.0, not a valid lr for trainable 'da_lora': Input should be less than or equal to 1",
        ),
        (
            ("  lr: {loguniform: [1.0e-4, 1.0e-2]}", "  lora_rank: {choice: [8, true]}"),
            "space.lora_rank offers True, not a valid lora_rank for trainable 'da_lora'",
        ),
        (("num_samples: 4", "num_samples: 1000000000"), "num_samples: Input should be less than or equal to 10000"),
    ],
)
def test_search_values_no_trial_could_take_are_refused(tmp_path, capsys, change, message):
    """A choice or a bound that no trial could run with is refused before the search starts."""
    assert change[0] in SEARCH
    study = _write(tmp_path, SEARCH.replace(*change))
    assert main(["run", study, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()

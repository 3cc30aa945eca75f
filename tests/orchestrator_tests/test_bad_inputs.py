"""The bad-input corpus for specs, options, data and models: every case goes through the real
command line and must end with one line on stderr naming the problem, exit status 2, no
traceback, before the trainable prepares or Ray starts (both fail the case if reached), and
with every file and folder under the test's directory (the working directory included, where
``runs/`` would appear) exactly as it was. A new input path gets a case here; run directories
given to ``report``, ``status``, ``resume``, ``plan``, ``extend`` and ``confirm --from`` have
theirs in ``test_bad_run_dirs.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from orchestrator.cli import main
from tests.conftest import can_mount_tmpfs
from tests.orchestrator_tests.refusals import (
    ABLATION,
    SEARCH,
    bomb_bin,
    check_refused,
    real_shaped,
    refused_case,
    snapshot,
    standin_copy,
    synthfaces_test_pairs,
)
from tests.orchestrator_tests.test_spec import SENSITIVITY

# (id, {relative path: text or bytes, or a callable making files}, argv, words)
CASES = [
    # the study
    ("unknown study", {}, ["run", "nosuch"], ["nosuch"]),
    ("study is a directory", {"sub/x.txt": "x"}, ["run", "{d}/sub"], ["is a directory"]),
    ("study is not UTF-8", {"s.yaml": b"name: \xff\xfe\n"}, ["run", "{d}/s.yaml"], ["UTF-8"]),
    ("YAML syntax", {"s.yaml": "name: [unclosed\n"}, ["run", "{d}/s.yaml"], ["YAML does not parse"]),
    ("YAML is a list", {"s.yaml": "- a\n- b\n"}, ["run", "{d}/s.yaml"], ["mapping"]),
    (
        "duplicate variant",
        {"s.yaml": ABLATION + "  a: {adaptation: none}\n"},
        ["run", "{d}/s.yaml"],
        ["key 'a' is written twice"],
    ),
    (
        "YAML python tag",
        {"s.yaml": "name: !!python/object/apply:os.system ['touch {d}/pwned']\n"},
        ["run", "{d}/s.yaml"],
        ["python/object"],
    ),
    ("unknown spec key", {"s.yaml": ABLATION + "colour: blue\n"}, ["run", "{d}/s.yaml"], ["colour: unknown key"]),
    (
        "benchmark named like a built-in set",
        {"s.yaml": ABLATION},
        ["run", "{d}/s.yaml", "--set", "benchmarks={cross_domain: {d}/x.png}"],
        ["benchmarks: name 'cross_domain' is a built-in set"],
    ),
    (
        "validation set named mean",
        {"s.yaml": ABLATION},
        ["run", "{d}/s.yaml", "--set", "val_data={mean: {d}/x.png}"],
        ["val_data: name 'mean' is a built-in set"],
    ),
    (
        "benchmark name outside the name pattern",
        {"s.yaml": ABLATION},
        ["run", "{d}/s.yaml", "--set", "benchmarks={'a/b': {d}/x.png}"],
        ["name 'a/b' is not a metric name part"],
    ),
    (
        "unknown trainable",
        {"s.yaml": ABLATION.replace("trainable: da_lora", "trainable: nope")},
        ["run", "{d}/s.yaml"],
        ["nope"],
    ),
    (
        "unknown metric",
        {"s.yaml": ABLATION.replace("eval/cross_domain/acc", "eval/cross_domian/acc")},
        ["run", "{d}/s.yaml"],
        ["eval/cross_domian/acc"],
    ),
    (
        "reference not a variant",
        {"s.yaml": ABLATION.replace("reference: a", "reference: z")},
        ["run", "{d}/s.yaml"],
        ["reference 'z'"],
    ),
    ("negative epochs", {"s.yaml": ABLATION.replace("epochs: 1", "epochs: -1")}, ["run", "{d}/s.yaml"], ["epochs"]),
    (
        "report.names names no variant",
        {"s.yaml": ABLATION + "report: {names: {zz: Zed}}\n"},
        ["run", "{d}/s.yaml"],
        ["report.names names unknown variants ['zz']"],
    ),
    (
        "report.names names no point of a sensitivity study",
        {"s.yaml": SENSITIVITY + "report: {names: {lora_rank=32: big}}\n"},
        ["run", "{d}/s.yaml"],
        ["report.names names 'lora_rank=32', not a point of this study"],
    ),
    (
        "a line break in a display name",
        {"s.yaml": ABLATION + 'report: {names: {a: "two\\nlines"}}\n'},
        ["run", "{d}/s.yaml"],
        ["report.names: the name of 'a'", "one line of printable text"],
    ),
    (
        "unknown report.family",
        {"s.yaml": ABLATION + "report: {family: all}\n"},
        ["run", "{d}/s.yaml"],
        ["report.family"],
    ),
    (
        "report.alpha out of (0, 1)",
        {"s.yaml": ABLATION + "report: {alpha: 1.5}\n"},
        ["run", "{d}/s.yaml"],
        ["report.alpha"],
    ),
    (
        "report.label not a name",
        {"s.yaml": ABLATION + "report: {label: 'my table'}\n"},
        ["run", "{d}/s.yaml"],
        ["report.label"],
    ),
    (
        "report.main_metrics not reported",
        {"s.yaml": ABLATION + "report: {main_metrics: [eval/visible/acc]}\n"},
        ["run", "{d}/s.yaml"],
        ["report.main_metrics names metrics not in report.metrics"],
    ),
    (
        "report.min_effect not positive",
        {"s.yaml": ABLATION + "report: {min_effect: 0}\n"},
        ["run", "{d}/s.yaml"],
        ["report.min_effect"],
    ),
    (
        "report.min_effect infinite",
        {"s.yaml": ABLATION + "report: {min_effect: .inf}\n"},
        ["run", "{d}/s.yaml"],
        ["report.min_effect", "finite"],
    ),
    (
        "quick seeds repeated",
        {"s.yaml": ABLATION + "quick: {seeds: [0, 0]}\n"},
        ["run", "{d}/s.yaml", "--quick"],
        ["quick.seeds", "distinct"],
    ),
    (
        "a broken quick form, refused for the full run too",
        {"s.yaml": ABLATION + "quick: {base: {epochs: -5}}\n"},
        ["run", "{d}/s.yaml"],
        ["quick: variant 'a': epochs: Input should be greater than 0"],
    ),
    (
        "a search's broken quick form, refused for the full run too",
        {"s.yaml": SEARCH + "quick: {base: {lora_rnak: 4}}\n"},
        ["run", "{d}/s.yaml"],
        ["quick: ", "lora_rnak"],
    ),
    (
        "a search's quick seeds repeated",
        {"s.yaml": SEARCH + "quick: {seeds: [3, 3]}\n"},
        ["run", "{d}/s.yaml", "--quick"],
        ["quick.seeds", "distinct"],
    ),
    (
        "a billion quick samples",
        {"s.yaml": SEARCH + "quick: {num_samples: 1000000000}\n"},
        ["run", "{d}/s.yaml", "--quick"],
        ["quick.num_samples", "less than or equal to 10000"],
    ),
    (
        "search ranks on test identities",
        {"s.yaml": SEARCH.replace("metric: val/", "metric: eval/")},
        ["run", "{d}/s.yaml"],
        ["val/cross_domain/acc"],
    ),
    (
        "choice of words for a number",
        {"s.yaml": SEARCH.replace("{loguniform: [1.0e-4, 1.0e-2]}", "{choice: [fast, slow]}")},
        ["run", "{d}/s.yaml"],
        ["space.lr offers 'fast'"],
    ),
    (
        "inverted bounds",
        {"s.yaml": SEARCH.replace("{loguniform: [1.0e-4, 1.0e-2]}", "{uniform: [0.1, 0.01]}")},
        ["run", "{d}/s.yaml"],
        ["bounds are inverted"],
    ),
    (
        "a billion samples",
        {"s.yaml": SEARCH.replace("num_samples: 4", "num_samples: 1000000000")},
        ["run", "{d}/s.yaml"],
        ["less than or equal to 10000"],
    ),
    # --set
    ("boolean for an integer", {"s.yaml": ABLATION}, ["run", "{d}/s.yaml", "--set", "lora_rank=true"], ["lora_rank"]),
    ("--set seed", {"s.yaml": ABLATION}, ["run", "{d}/s.yaml", "--set", "seed=5"], ["seeds"]),
    ("--set unknown key", {"s.yaml": ABLATION}, ["run", "{d}/s.yaml", "--set", "lora_rnak=4"], ["lora_rnak"]),
    ("--set without =", {"s.yaml": ABLATION}, ["run", "{d}/s.yaml", "--set", "lora_rank"], ["KEY=VALUE"]),
    # options
    (
        "--out a non-empty directory",
        {"s.yaml": ABLATION, "mine/notes.txt": "mine"},
        ["run", "{d}/s.yaml", "--out", "{d}/mine"],
        ["not empty"],
    ),
    ("--out a file", {"s.yaml": ABLATION, "f": "mine"}, ["run", "{d}/s.yaml", "--out", "{d}/f"], ["not a directory"]),
    (
        "--out under a file",
        {"s.yaml": ABLATION, "f": "mine"},
        ["run", "{d}/s.yaml", "--out", "{d}/f/run"],
        ["is a file, not a directory"],
    ),
    (
        "--address nothing listens",
        {"s.yaml": ABLATION},
        ["run", "{d}/s.yaml", "--address", "127.0.0.1:1"],
        ["nothing answers at 127.0.0.1:1"],
    ),
    ("--address no port", {"s.yaml": ABLATION}, ["run", "{d}/s.yaml", "--address", "127.0.0.1"], ["HOST:PORT"]),
    ("--cpus-per-trial 0", {"s.yaml": ABLATION}, ["run", "{d}/s.yaml", "--cpus-per-trial", "0"], ["--cpus-per-trial"]),
    ("--max-concurrent 0", {"s.yaml": ABLATION}, ["run", "{d}/s.yaml", "--max-concurrent", "0"], ["--max-concurrent"]),
    ("unknown option", {}, ["run", "ablation", "--quik"], ["--quik"]),
    ("confirm of a non-search", {}, ["run", "confirm", "--from", "{d}"], ["--from"]),
    # export-synthfaces
    ("export under a file", {"f": "mine"}, ["export-synthfaces", "{d}/f/faces"], ["is a file, not a directory"]),
    ("export into a non-empty directory", {"mine/notes.txt": "mine"}, ["export-synthfaces", "{d}/mine"], ["not empty"]),
    ("export image size", {}, ["export-synthfaces", "{d}/faces", "--image-size", "7"], ["multiple of 8"]),
    # generate-data
    ("generate into a non-empty directory", {"mine/notes.txt": "mine"}, ["generate-data", "{d}/mine"], ["not empty"]),
    ("generate an unknown domain", {}, ["generate-data", "{d}/g", "--domains", "visible,infrared"], ["--domains"]),
    (
        "generate an image size",
        {},
        ["generate-data", "{d}/g", "--size", "100"],
        ["--size 100: expected a multiple of 8"],
    ),
    (
        "generate pairs not in folds",
        {},
        ["generate-data", "{d}/g", "--pairs", "33"],
        ["--pairs 33: expected a multiple of 20"],
    ),
    (
        "generate an unknown backbone",
        {},
        ["generate-data", "{d}/g", "--backbones", "dinov3-vitl"],
        ["--backbones dinov3-vitl"],
    ),
    ("generate a benchmark path", {}, ["generate-data", "{d}/g", "--benchmarks", "../lfw"], ["--benchmarks ../lfw"]),
]


# data and models, refused while the trainable prepares (these need the stand-in backbone)
PREPARE_CASES = [
    (
        "domain components on one-domain data",
        {"data": lambda d: real_shaped(d, domains=("visible",))},
        ["run", "{d}/real.yaml"],
        [
            "variant 'lora+domain_classifier': lambda_domain (the domain classifier) needs two or more domains",
            "train_data has one domain",
            "refused too: variants 'lora+domain_lora', 'lora+maml'",
        ],
    ),  # fmt: skip
    (
        "domain components with num_domains 1",
        {"data": lambda d: real_shaped(d, domains=("visible", "thermal"))},
        ["run", "{d}/real.yaml", "--set", "num_domains=1"],
        ["variant 'lora+domain_classifier'", "num_domains=1 makes one group of its 2 domains"],
    ),
    (
        "validation pairs over synthfaces' test identities",
        {"s.yaml": ABLATION, "pairs.txt": lambda d: synthfaces_test_pairs(d, renamed=False)},
        ["run", "{d}/s.yaml", "--set", "val_data={dev: {d}/pairs.txt}"],
        ["validation benchmark dev: 3 of its identities are synthfaces' test identities", "eval0000"],
    ),
    (
        "validation pairs over synthfaces' test images, renamed",
        {"s.yaml": ABLATION, "pairs.txt": lambda d: synthfaces_test_pairs(d, renamed=True)},
        ["run", "{d}/s.yaml", "--set", "val_data={dev: {d}/pairs.txt}"],
        ["validation benchmark dev: 6 of its images are synthfaces' test images"],
    ),
    (
        "damaged weights",
        {"s.yaml": ABLATION, "bb": lambda d: standin_copy(d, os.urandom(4096))},
        ["run", "{d}/s.yaml", "--set", "backbone={d}/bb"],
        ["cannot load its weights"],
    ),
    (
        "empty weights",
        {"s.yaml": ABLATION, "bb": lambda d: standin_copy(d, b"")},
        ["run", "{d}/s.yaml", "--set", "backbone={d}/bb"],
        ["cannot load its weights"],
    ),
    (
        "no training data",
        {"s.yaml": ABLATION.replace("eval/cross_domain/acc", "train/loss")},
        ["run", "{d}/s.yaml", "--set", "train_data={d}/none"],
        ["no such directory"],
    ),
    (
        "decompression bomb in a benchmark",
        {"s.yaml": ABLATION, "b.bin": bomb_bin},
        ["run", "{d}/s.yaml", "--set", "benchmarks={b: {d}/b.bin}"],
        ["benchmark b", "DecompressionBomb"],
    ),
    (
        "pickle exploit as a benchmark",
        {"s.yaml": ABLATION, "evil.bin": b"cos\nsystem\n(S'touch {d}/pwned'\ntR."},
        ["run", "{d}/s.yaml", "--set", "benchmarks={b: {d}/evil.bin}"],
        ["only bytes, lists and booleans"],
    ),
    (
        "pair label 2",
        {"s.yaml": ABLATION, "p.txt": "{d}/x.png {d}/y.png 2\n"},
        ["run", "{d}/s.yaml", "--set", "benchmarks={b: {d}/p.txt}"],
        ["label 0 (different) or 1 (same), got '2'"],
    ),
    (
        "validation set is the test benchmark's file",
        {"s.yaml": ABLATION, "p.txt": "{d}/x.png {d}/y.png 1\n"},
        ["run", "{d}/s.yaml", "--set", "benchmarks={b: {d}/p.txt}", "--set", "val_data={v: {d}/./p.txt}"],
        ["validation benchmark v", "test benchmark b's file"],
    ),
    (
        "validation set is a copy of the test benchmark",
        {"s.yaml": ABLATION, "p.txt": "{d}/x.png {d}/y.png 1\n", "q.txt": "{d}/x.png {d}/y.png 1\n"},
        ["run", "{d}/s.yaml", "--set", "benchmarks={b: {d}/p.txt}", "--set", "val_data={v: {d}/q.txt}"],
        ["validation benchmark v", "test benchmark b's file"],
    ),
    (
        "val_fraction leaves training too few identities",
        {"s.yaml": ABLATION},
        ["run", "{d}/s.yaml", "--set", "val_fraction=0.9"],
        ["val_fraction=0.9 holds out", "training needs at least"],
    ),
    (
        "LoRA targets match nothing",
        {"s.yaml": ABLATION},
        ["run", "{d}/s.yaml", "--set", "lora_targets=[q_proj]"],
        ["match no linear layer"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys, no_ray, no_prepare):
    refused_case(case, tmp_path, monkeypatch, capsys, no_ray)


@pytest.mark.parametrize("case", PREPARE_CASES, ids=[c[0] for c in PREPARE_CASES])
def test_bad_input_while_preparing(case, tmp_path, monkeypatch, capsys, standin, no_ray):
    refused_case(case, tmp_path, monkeypatch, capsys, no_ray)


@pytest.fixture
def read_only_dir(tmp_path):
    """An empty directory no one can write into: a read-only tmpfs for root (who ignores
    permission bits), mode 0555 for anyone else."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], check=True)
        yield path
        subprocess.run(["umount", str(path)], check=True)
    else:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)


@pytest.mark.skipif(
    os.geteuid() == 0 and not can_mount_tmpfs(), reason="root ignores file modes, and no tmpfs can be mounted here"
)
@pytest.mark.parametrize(
    "argv, words",
    [
        (["export-synthfaces", "{ro}"], ["cannot write into it", "Read-only file system"]),
        (["export-synthfaces", "{ro}/faces"], ["cannot create the directory"]),
        (["run", "ablation", "--quick", "--out", "{ro}/run"], ["cannot create the directory"]),
        (["run", "ablation", "--quick", "--out", "{ro}"], ["cannot write into it"]),
    ],
)
def test_a_read_only_directory_is_refused_in_one_line(
    read_only_dir, argv, words, capsys, monkeypatch, tmp_path, no_ray
):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code = main([a.replace("{ro}", str(read_only_dir)) for a in argv])
    words = [w for w in words if os.geteuid() == 0 or w != "Read-only file system"]
    check_refused(code, capsys.readouterr().err, words)
    assert snapshot(tmp_path) == before


def test_the_entry_point_behaves_as_main(tmp_path):
    """``python -m orchestrator`` (a fresh process) ends the same way as ``main``."""
    (tmp_path / "s.yaml").write_bytes(b"name: \xff\n")
    for argv, word in (
        (["run", "nosuch"], "nosuch"),
        (["run", str(tmp_path / "s.yaml")], "UTF-8"),
        (["status", str(tmp_path)], "not a run directory"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        check_refused(proc.returncode, proc.stderr, [word])


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"seed": 5}, "--set seed"),
        ({"lora_rank": True}, "boolean true"),
        ({"lr": [0.1]}, "lr: Input should be a valid number"),
        ("lr=0.1", "run_study(set=...): expected a mapping of config keys to values"),
        ({1: 0.1}, "run_study(set=...): keys must be config key names"),
    ],
)
def test_the_python_api_refuses_like_the_command_line(overrides, words, tmp_path, no_ray, no_prepare, monkeypatch):
    """``orchestrator.run_study(..., set=...)``: the values reach the config as given (a
    boolean stays a boolean, a list a list) and bad input raises the same one-line UserError,
    with nothing written."""
    import orchestrator
    from orchestrator.errors import UserError

    (tmp_path / "s.yaml").write_text(ABLATION)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(words)):
        orchestrator.run_study(tmp_path / "s.yaml", out=tmp_path / "run", set=overrides)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]

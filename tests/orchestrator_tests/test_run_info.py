"""``run.json`` is one typed model (``reports.rundir.info.RunInfo``), written through one writer
and read as attributes: a run made before a field was recorded is read with that field's
declared default, a field edited to another shape is refused in one line naming it, what a
later version added survives a rewrite, and nothing else in the project writes the file."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from reports.rundir.files import DamagedRunFile, read_run_info, write_checked
from reports.rundir.info import RunInfo, write_run_info

ROOT = Path(__file__).resolve().parents[2]
M = "eval/x/acc"
OLD = {"study": "s", "kind": "ablation", "metric": M, "mode": "max", "variants": ["a", "b"], "reference": "a"}


def test_a_run_made_before_a_field_was_recorded_reads_the_documented_default(tmp_path):
    write_checked(tmp_path, "run.json", json.dumps({**OLD, "report_metrics": [M, "eval/x/eer"]}))
    info = read_run_info(tmp_path)
    assert isinstance(info, RunInfo)
    # the statistics' options of a run made before the spec could set them (README, "report:")
    assert (info.test, info.family, info.alpha, info.interval, info.min_effect) == ("auto", "table", 0.05, "t", None)
    assert (info.quick, info.overrides, info.names, info.main_metrics, info.extensions) == (False, [], {}, [], [])
    # a metric's direction by the old rule of names: eer lower is better, accuracy higher
    assert info.metric_directions == {M: "max", "eval/x/eer": "min"}
    assert info.group == "variant" and info.chosen_by == M and info.scheduler is None
    write_checked(tmp_path, "run.json", json.dumps(OLD))
    assert read_run_info(tmp_path).report_metrics == [M]  # before run.json listed them: the study metric alone


@pytest.mark.parametrize(
    "field, value",
    [
        ("alpha", "0.05"),  # text where a number belongs (pydantic's lax float would take it)
        ("alpha", True),
        ("alpha", 1.5),  # not a probability
        ("min_effect", -0.1),
        ("seeds", ["0", "1"]),
        ("quick", "yes"),
        ("max_concurrent", 2.5),
        ("names", {"a": 3}),
        ("metric_directions", {M: "up"}),
        ("scheduler", {"type": "asha", "rungs": ["1"]}),
        ("candidates", [{"variant": "top1", "search_value": 0.9}]),  # no search trial
        ("axes", {"r": [{"label": "r=4", "values": [4], "point": "r=4"}]}),
        ("extensions", [{"trials": ["a_seed2"]}]),  # no Tune folder
        ("driver", {"pid": "123"}),
    ],
)
def test_a_field_edited_to_another_shape_is_refused_in_one_line_naming_it(tmp_path, field, value):
    write_checked(tmp_path, "run.json", json.dumps({**OLD, field: value}))
    with pytest.raises(DamagedRunFile) as err:
        read_run_info(tmp_path)
    message = str(err.value)
    assert "\n" not in message and f"'{field}" in message and "run.json" in message, message


def test_facts_across_fields_and_required_fields(tmp_path):
    for raw, words in [
        ({**OLD, "reference": "c"}, "none of its variants"),
        ({**OLD, "kind": "bake-off"}, "no study kind"),
        ({**OLD, "mode": "up"}, "neither 'max' nor 'min'"),
        ({k: v for k, v in OLD.items() if k != "metric"}, "no 'metric'"),
    ]:
        write_checked(tmp_path, "run.json", json.dumps(raw))
        with pytest.raises(DamagedRunFile, match=words):
            read_run_info(tmp_path)


def test_the_writer_keeps_every_recorded_value_and_what_a_later_version_added(tmp_path):
    raw = {
        **OLD,
        "kind": "confirm",
        "from": "/runs/search-1",  # a Python keyword: held as from_dir, written back as "from"
        "candidates": [{"variant": "top1", "trial": "trial004", "search_value": 0.91, "search_iterations": 3}],
        "variants": ["base", "top1"],
        "reference": "base",
        "base_search_value": float("nan"),
        "scheduler": {"type": "asha", "max_t": 9, "grace_period": 1, "reduction_factor": 3, "rungs": [1, 3]},
        "extensions": [{"tune_dir": "tune-ext1", "trials": ["x"], "spec": "spec.ext1.yaml", "note": "later"}],
        "a_later_field": {"kept": [1, 2]},
    }
    write_checked(tmp_path, "run.json", json.dumps(raw))
    info = read_run_info(tmp_path)
    assert info.from_dir == "/runs/search-1" and info.candidates[0].trial == "trial004"
    write_run_info(tmp_path, info)
    again = json.loads((tmp_path / "run.json").read_text())
    for key in ("from", "candidates", "scheduler", "extensions", "a_later_field", "variants", "reference"):
        assert _kept(raw[key], again[key]), key
    assert again["base_search_value"] != again["base_search_value"]  # NaN written as NaN, not null
    assert read_run_info(tmp_path) == info


def _kept(old, new) -> bool:
    """Every value of ``old`` is in ``new`` as it was (``new`` may add a field's default)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _kept(v, new[k]) for k, v in old.items())
    if isinstance(old, list):
        return isinstance(new, list) and len(old) == len(new) and all(map(_kept, old, new))
    return old == new and isinstance(old, (bool, str)) == isinstance(new, (bool, str))  # 3 and 3.0 are one number


def test_run_json_has_one_writer():
    """No module but the contract's writer names run.json in a write: the orchestrator's
    start, resume and extend hand it a ``RunInfo``."""
    writers = []
    for package in ("orchestrator", "reports", "trainables"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                    "write_checked",
                    "write_text",
                    "write_bytes",
                    "open",
                ):
                    names = {getattr(a, "id", getattr(a, "value", None)) for a in ast.walk(node)}
                    if "RUN_FILE" in names or "run.json" in names:
                        writers.append(str(path.relative_to(ROOT)))
    assert writers == ["reports/rundir/info.py"], writers

"""Study kinds as strategies (``orchestrator.kinds``): every kind is one registered object
with its spec model and a report; a new kind is one module's worth of code."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest

import reports.kinds  # noqa: F401  (registers the report of every kind)
from orchestrator import kinds
from orchestrator.errors import UserError
from orchestrator.kinds.base import KINDS
from orchestrator.kinds.grid import GridKind
from orchestrator.launch import RunOptions
from orchestrator.spec import StudyBase
from reports.kinds import KIND_REPORTS, KIND_TABLES


def test_every_kind_has_its_spec_model_and_a_report():
    """(Which report module each kind has: ``tests/reports_tests/test_report_kinds.py``.)"""
    for name, kind in KINDS.items():
        assert kind.name == name and kind.spec_model.model_fields["kind"].annotation == Literal[name]
        assert name in KIND_REPORTS


def test_the_comparison_tables_of_a_run_are_those_its_kind_registered(monkeypatch):
    """``plan`` and the report find a kind's tables in the registry, not in a branch on names."""
    import pandas as pd

    from reports.kinds import comparison_tables
    from reports.rundir.info import RunInfo

    def info(kind: str) -> RunInfo:
        return RunInfo(study="s", kind=kind, metric="eval/x/acc", mode="max")

    seen = []
    monkeypatch.setitem(KIND_TABLES, "repeat", lambda df, meta: seen.append((len(df), meta.kind)) or ["table"])
    assert comparison_tables(pd.DataFrame({"a": [1, 2]}), info("repeat")) == ["table"]
    assert seen == [(2, "repeat")]
    assert comparison_tables(pd.DataFrame(), info("search")) == []  # one seed per trial: nothing paired


class RepeatSpec(StudyBase):
    """A kind made in a test: the base config alone, with every seed."""

    kind: Literal["repeat"]
    unit: ClassVar[str] = "run"

    def groups(self, *, quick: bool, base: dict) -> list[tuple[str, dict]]:
        return [("only", {})]


class Repeat(GridKind):
    name = "repeat"
    spec_model = RepeatSpec
    group_column = "variant"


@pytest.fixture
def repeat(monkeypatch):
    monkeypatch.setitem(KINDS, "repeat", Repeat())
    return KINDS["repeat"]


def test_a_new_kind_is_parsed_compiled_and_recorded_through_its_object_alone(repeat):
    data = {"name": "rep", "kind": "repeat", "trainable": "da_lora", "metric": "eval/cross_domain/acc", "mode": "max"}
    spec = kinds.parse_spec({**data, "seeds": [0, 1, 2], "base": {"epochs": 1}}, source="rep.yaml")
    assert type(spec) is RepeatSpec
    plans = repeat.compile(spec, RunOptions(study="rep.yaml"), log=lambda _: None)
    assert [p.name for p in plans] == ["only_seed0", "only_seed1", "only_seed2"]
    assert all(p.config["epochs"] == 1 for p in plans)
    assert repeat.facts(spec, plans, RunOptions(study="rep.yaml")) == {"group_column": "variant"}
    assert repeat.announce(spec, plans, RunOptions(study="rep.yaml")).startswith("Study 'rep': 3 trials (1 runs x 3")
    with pytest.raises(UserError, match=r"rep.yaml: colour: unknown key"):
        kinds.parse_spec({**data, "seeds": [0], "colour": "blue"}, source="rep.yaml")


def test_an_unknown_kind_is_refused_naming_the_known_ones():
    with pytest.raises(UserError, match=r"kind: expected one of ablation, search, sensitivity \(got 'sweep'\)"):
        kinds.parse_spec({"kind": "sweep"}, source="s.yaml")
    with pytest.raises(KeyError, match="unknown study kind 'sweep'"):
        kinds.kind_of("sweep")


def test_what_a_kind_chooses_by_is_its_own():
    """The choice rule (never choose on test identities) asks each spec what it chooses by."""
    from orchestrator.studies import load_study

    chooses = {n: bool(load_study(n)[0].chooses()) for n in ("ablation", "sensitivity", "search", "feedback")}
    assert chooses == {
        "ablation": False,
        "sensitivity": True,
        "search": True,
        "feedback": False,
    }  # feedback: recommend: false

"""The report side mirrors ``orchestrator.kinds``: one module per study kind in
``reports.kinds`` (its builder, tables, captions, selection sentence), found by the registries
rather than by names written in the builder; a trainable's section reaches every kind's page."""

from __future__ import annotations

import json
import pkgutil

import pandas as pd

import orchestrator.kinds
import reports.kinds
from orchestrator.kinds.grid import GridKind
from reports import build_report
from reports.kinds import KIND_REPORTS, KIND_SELECTION, KIND_TABLES
from reports.sections import TRAINABLE_SECTIONS
from reports.selection import declared
from tests.reports_tests.test_ablation import _ablation_run
from tests.reports_tests.test_search_analysis import META, ROWS, _curves

SHARED = {"base", "grid"}  # the modules of both packages that are not a kind


def _modules(package) -> set[str]:
    return {i.name for i in pkgutil.iter_modules(package.__path__)} - SHARED


def test_each_kind_report_is_the_module_of_its_name():
    """Every study kind has a report, each report is registered by the module named after its
    kind, and the report side has one module per orchestrator kind plus confirm's (a confirm
    run is an ablation with a page of its own)."""
    kinds = set(orchestrator.kinds.KINDS)
    assert kinds == _modules(orchestrator.kinds)
    assert set(KIND_REPORTS) == _modules(reports.kinds) == kinds | {"confirm"}
    for kind, builder in KIND_REPORTS.items():
        assert builder.__module__ == f"reports.kinds.{kind}"
    for kind, tables in KIND_TABLES.items():
        assert tables.__module__.startswith("reports.kinds."), kind
    for kind, sentence in KIND_SELECTION.items():  # its own, or the shared "chose nothing"
        assert sentence.__module__ == f"reports.kinds.{kind}" or sentence is declared, kind


def test_the_kinds_that_pair_over_seeds_have_tables_and_those_that_choose_say_by_what():
    """A grid kind (its trials are variants or points over seeds) registers comparison tables,
    a search (one seed per trial) none; a kind whose spec can choose (``chooses()``) registers
    its sentence of what chose."""
    from orchestrator.studies import describe_shipped, load_study

    grid = {name for name, kind in orchestrator.kinds.KINDS.items() if isinstance(kind, GridKind)}
    assert set(KIND_TABLES) == grid | {"confirm"}
    for name, _ in describe_shipped():
        spec = load_study(name)[0]
        if spec.chooses():
            assert spec.kind in KIND_SELECTION, name


def test_a_trainable_section_reaches_every_kinds_page(tmp_path, monkeypatch):
    """A section registered for a trainable is on its runs' pages, a search's as well as an
    ablation's (it was added by the grid page alone)."""
    seen = []

    def section(r):
        seen.append(r.meta.kind)
        return ("Trainable notes", f"<p>notes of {r.meta.kind}</p>")

    monkeypatch.setitem(TRAINABLE_SECTIONS, "t", section)
    search = tmp_path / "search"
    search.mkdir()
    pd.DataFrame(ROWS).to_csv(search / "results.csv", index=False)
    _curves(ROWS).to_csv(search / "curves.csv", index=False)
    (search / "run.json").write_text(json.dumps({**META, "kind": "search", "trainable": "t", "top_k": 5}))
    ablation = _ablation_run(tmp_path / "ablation")
    for run in (search, ablation):
        kind = json.loads((run / "run.json").read_text())["kind"]
        page = build_report(run).read_text()
        assert "<h2>Trainable notes</h2>" in page and f"notes of {kind}" in page, kind
        assert page.index("Trainable notes") < page.index("Study spec")
    assert seen == ["search", "ablation"]

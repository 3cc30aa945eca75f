"""How many trials of a run may run at once: ``--max-concurrent``, else the environment's
``ORCHESTRATOR_MAX_CONCURRENT``, else the spec's ``max_concurrent``; a bad value is refused
in one line before anything is written."""

from __future__ import annotations

import pytest

from orchestrator.cli import main
from orchestrator.studies import load_study

from .test_spec import GOOD, _write


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_max_concurrent_default_is_refused_in_one_line(value, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_MAX_CONCURRENT", value)
    assert main(["run", "ablation", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"ORCHESTRATOR_MAX_CONCURRENT={value!r}: expected a whole number >= 1" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_max_concurrent_the_flag_then_the_environment_then_the_spec(tmp_path, monkeypatch):
    from orchestrator.launch import RunOptions, max_concurrent

    spec, _ = load_study(_write(tmp_path, GOOD + "max_concurrent: 3\n"))
    monkeypatch.delenv("ORCHESTRATOR_MAX_CONCURRENT", raising=False)
    assert max_concurrent(RunOptions(study="s"), spec) == 3
    assert max_concurrent(RunOptions(study="s", max_concurrent=2), spec) == 2
    monkeypatch.setenv("ORCHESTRATOR_MAX_CONCURRENT", "1")
    assert max_concurrent(RunOptions(study="s"), spec) == 1
    assert max_concurrent(RunOptions(study="s", max_concurrent=2), spec) == 2

"""A study whose trials fail: each failure is one line in results.csv and on the console, the
study goes on, and a diverged trial is not retried."""

from __future__ import annotations

import pandas as pd

from orchestrator.cli import main


def test_failing_trials_are_recorded_in_one_line_each_and_a_diverged_one_is_not_retried(ray_local, tmp_path, capsys):
    """A trial whose loss overflows ends as DIVERGED with its error's last line; the study
    goes on, the report still builds and leaves it out, and no traceback reaches the console.
    ``max_failures`` retries failed trials, but one that diverged would diverge again: its
    retry stops at once, and the row says so."""
    from tests.orchestrator_tests.test_spec import GOOD_SMALL

    study = tmp_path / "tiny.yaml"
    study.write_text(GOOD_SMALL.replace("seeds: [0, 1]", "seeds: [0]") + "max_failures: 1\n")
    out = tmp_path / "run"
    assert main(["run", str(study), "--out", str(out), "--set", "cosface_scale=1e38"]) == 0
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 2 and set(df["status"]) == {"DIVERGED"}
    reason = "diverged: loss is inf (not retried: it diverged before)"
    assert set(df["error"]) == {reason}
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert captured.out.count("DIVERGED   ") == 2 and captured.out.count(reason) == 2
    table = pd.read_csv(out / "report" / "ablation.csv")
    assert (table["n"] == 0).all()
    assert "did not complete" in (out / "report" / "ablation.md").read_text()
    assert (out / "report" / "index.html").read_text().count("DIVERGED") >= 2  # listed apart, with the reason

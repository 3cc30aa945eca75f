"""Damaged run files are refused in one line by ``status``, ``report`` and ``resume``, and
a refused report leaves the previous report byte for byte as it was (issue 17, item 3).

The run directory is written by the real writer (``ResultsTable``), so the checksums are
the ones a run leaves; the expected digests come from ``hashlib`` and ``sha256sum``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.plan import TrialPlan
from orchestrator.results import ResultsTable
from reports import build_report
from reports.rundir.files import DamagedRunFile, read_checked, read_results, write_checked
from reports.rundir.names import CHECKSUMS_FILE

M = "eval/x/acc"
VALUES = {"ref": [0.70, 0.72, 0.71], "better": [0.75, 0.78, 0.76]}


def _tree(d) -> dict[str, str]:
    """Every file under ``d`` (recursively) -> its sha256."""
    return {
        str(f.relative_to(d)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.rglob("*")) if f.is_file()
    }


@pytest.fixture
def run(tmp_path):
    """A finished two-variant ablation with its report, as the orchestrator writes it."""
    plans = [TrialPlan(i, v, s, {"variant": v}) for i, (v, s) in enumerate((v, s) for v in VALUES for s in range(3))]
    meta = {
        "study": "abl",
        "kind": "ablation",
        "description": "",
        "trainable": "t",
        "metric": M,
        "mode": "max",
        "report_metrics": [M],
        "variants": list(VALUES),
        "reference": "ref",
        "test": "auto",
    }
    write_checked(tmp_path, "run.json", json.dumps(meta))
    table = ResultsTable(tmp_path, "abl", plans, {})
    table.write()
    for p in plans:
        table.finished(
            p.index,
            trial_id=f"t{p.index}",
            status="TERMINATED",
            result={"training_iteration": 2, "time_total_s": 1.0, M: VALUES[p.variant][p.seed]},
        )
    build_report(tmp_path)
    return tmp_path


def _refused(argv, capsys, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_checksums_are_sha256sum_checkable(run):
    sums = (run / CHECKSUMS_FILE).read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in sums) == ["configs.json", "results.csv", "run.json"]
    for line in sums:
        digest, name = line.split("  ")
        assert digest == hashlib.sha256((run / name).read_bytes()).hexdigest()
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "--check", "--quiet", CHECKSUMS_FILE], cwd=run).returncode == 0


def test_a_rewrite_killed_at_any_step_leaves_a_file_that_matches_its_record(tmp_path, monkeypatch):
    """os.replace is where a rewrite can be cut off (the record's own and the file's); stop
    at each in turn: what is on disk is the old or the new file, and is read as such."""
    write_checked(tmp_path, "results.csv", "a\n1\n")
    real = os.replace
    for stop_at in range(3):
        calls = []

        def cut(src, dst, stop_at=stop_at, calls=calls):
            calls.append(dst)
            if len(calls) > stop_at:
                raise KeyboardInterrupt  # the process ends here
            real(src, dst)

        monkeypatch.setattr(os, "replace", cut)
        with pytest.raises(KeyboardInterrupt):
            write_checked(tmp_path, "results.csv", f"a\n{stop_at + 2}\n")
        monkeypatch.setattr(os, "replace", real)
        assert read_checked(tmp_path, "results.csv") in (b"a\n1\n", f"a\n{stop_at + 2}\n".encode())
        write_checked(tmp_path, "results.csv", "a\n1\n")


def test_a_full_disk_leaves_the_previous_file_and_its_record(tmp_path, monkeypatch):
    import builtins

    write_checked(tmp_path, "results.csv", "a\n1\n")
    real_open = builtins.open

    def full(path, mode="r", *a, **k):
        if "w" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(OSError):
        write_checked(tmp_path, "results.csv", "a\n2\n")
    monkeypatch.setattr(builtins, "open", real_open)
    assert read_checked(tmp_path, "results.csv") == b"a\n1\n"


def test_a_table_truncated_mid_line_is_refused_and_the_report_kept(run, capsys):
    before = _tree(run / "report")
    data = (run / "results.csv").read_bytes()
    (run / "results.csv").write_bytes(data[: len(data) - 40])  # the case: cut inside the last row
    for argv in (["report", str(run)], ["status", str(run)], ["resume", str(run)]):
        _refused(argv, capsys, "results.csv", "truncated")
    assert _tree(run / "report") == before
    assert not (run / ".report.partial").exists()


def test_an_edited_table_is_refused(run, capsys):
    df = pd.read_csv(run / "results.csv")
    df.loc[df["variant"] == "ref", M] = 0.9
    df.to_csv(run / "results.csv", index=False)
    _refused(["report", str(run)], capsys, "checksum")


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda df: df.drop(columns=["status"]), ["'status' column"]),
        (lambda df: df.drop(columns=[M]), ["study metric", M]),
        (lambda df: df.assign(status=["TERMINATED"] * 5 + ["DONE"]), ["'DONE'"]),
    ],
)
def test_a_table_without_its_record_is_checked_for_columns_and_statuses(run, capsys, damage, words):
    """Runs made before checksums were kept (no record) are still read, and still checked."""
    (run / CHECKSUMS_FILE).unlink()
    before = _tree(run / "report")
    damage(pd.read_csv(run / "results.csv")).to_csv(run / "results.csv", index=False)
    _refused(["report", str(run)], capsys, *words)
    _refused(["status", str(run)], capsys, *words)
    assert _tree(run / "report") == before


def test_a_row_cut_short_is_found_without_a_record(run):
    (run / CHECKSUMS_FILE).unlink()
    lines = (run / "results.csv").read_text().splitlines(keepends=True)
    (run / "results.csv").write_text("".join(lines[:-1]) + ",".join(lines[-1].split(",")[:3]) + "\n")
    with pytest.raises(DamagedRunFile, match=f"line {len(lines)} has 3 cells"):
        read_results(run)


@pytest.mark.parametrize(
    "text, words",
    [("[1, 2]", ["JSON list", "mapping"]), ('{"study": "abl"', ["not JSON"]), ('{"study": "abl"}', ["no 'kind'"])],
)
def test_a_run_json_that_is_not_this_tools_is_refused(run, capsys, text, words):
    (run / CHECKSUMS_FILE).unlink()
    before = _tree(run / "report")
    (run / "run.json").write_text(text)
    for argv in (["report", str(run)], ["status", str(run)], ["resume", str(run)]):
        _refused(argv, capsys, "run.json", *words)
    assert _tree(run / "report") == before


def test_a_report_that_fails_half_way_leaves_the_previous_one(run, monkeypatch):
    import reports.build as build

    (run / "report" / "my_notes.txt").write_text("mine")
    before = _tree(run / "report")

    def boom(*a, **k):
        raise RuntimeError("the page could not be made")

    monkeypatch.setattr(build, "_write_page", boom)
    with pytest.raises(RuntimeError):
        build_report(run)
    assert _tree(run / "report") == before
    monkeypatch.undo()
    build_report(run)
    assert (run / "report" / "my_notes.txt").read_text() == "mine"  # a user's file in report/ stays


def test_synthetic_data_is_a_fact_of_the_config(tmp_path):
    """Recorded in run.json from the trials' configs: synthfaces is the value "synthfaces"
    of a data field, whatever the trainable calls that field."""
    from trainables._registry import get_trainable

    for name, field in (
        ("da_lora", "train_data"),
        ("pair_contrastive", "pairs"),
        ("probe", "data"),
        ("triplet", "train_persons"),
        ("infonce", "train_data"),
    ):
        cls = get_trainable(name).config_cls
        assert cls().synthetic_data, name
        assert cls.model_fields[field].default == "synthfaces", name
        assert not cls.model_construct(**{field: "/data/faces"}).synthetic_data, name  # (validation needs the files)


def test_load_run_types_configs_from_configs_json(tmp_path):
    """``orchestrator.load_run``: the same checked readers, a ``group`` column for every kind,
    and config columns typed from configs.json (a CSV cell would make 8 and NaN a float)."""
    import orchestrator

    configs = [
        {"rank": 8, "flag": True, "lr": 1e-3, "name": "x", "targets": ["qkv", "proj"], "sets": {}},
        {"rank": None, "flag": None, "lr": 2e-3, "name": None, "targets": ["qkv"], "sets": {"lfw": "/d/lfw.bin"}},
    ]
    plans = [TrialPlan(i, f"p{i}", 0, c) for i, c in enumerate(configs)]
    write_checked(tmp_path, "run.json", json.dumps({"study": "s", "kind": "sensitivity", "metric": M, "mode": "max"}))
    table = ResultsTable(tmp_path, "s", plans, {}, group_column="point")
    table.write()
    assert pd.read_csv(tmp_path / "results.csv")["config/rank"].dtype == float  # what the CSV alone gives
    run = orchestrator.load_run(tmp_path)
    df = run.results
    assert str(df["config/rank"].dtype) == "Int64" and df["config/rank"].tolist()[0] == 8
    assert df["config/rank"].isna().tolist() == [False, True]
    assert str(df["config/flag"].dtype) == "boolean" and str(df["config/lr"].dtype) == "Float64"
    assert df["config/targets"].tolist() == [["qkv", "proj"], ["qkv"]]
    assert df["config/sets"].tolist() == ["{}", '{"lfw": "/d/lfw.bin"}']  # JSON text: Parquet holds it
    df.to_parquet(tmp_path / "r.parquet")
    assert pd.read_parquet(tmp_path / "r.parquet")["config/targets"].map(list).tolist() == [["qkv", "proj"], ["qkv"]]
    assert df["group"].tolist() == df["point"].tolist() == ["p0", "p1"] and run.group_column == "point"
    assert run.spec is None and run.curves.empty and run.info.kind == "sensitivity"
    (tmp_path / "results.csv").write_text("damaged\n")
    with pytest.raises(DamagedRunFile):
        orchestrator.load_run(tmp_path)


def test_metric_directions_as_recorded_and_old_runs_by_name(run):
    """Which way each metric is better: as run.json records it (the trainable's declaration);
    a run made before it was recorded, or a metric it holds none for, by the old rule of names
    (the study's own metric too: its mode is the spec's); a value other than max or min is
    refused as damage, in one line."""
    from reports.rundir.files import read_run_info

    meta = json.loads((run / "run.json").read_text())
    meta["report_metrics"] = [M, "train/cosface_loss", "eval/x/eer"]
    write_checked(run, "run.json", json.dumps(meta))
    assert read_run_info(run).metric_directions == {M: "max", "train/cosface_loss": "max", "eval/x/eer": "min"}
    write_checked(run, "run.json", json.dumps({**meta, "metric_directions": {"train/cosface_loss": "min"}}))
    assert read_run_info(run).metric_directions["train/cosface_loss"] == "min"
    write_checked(run, "run.json", json.dumps({**meta, "metric_directions": {"train/cosface_loss": "down"}}))
    with pytest.raises(DamagedRunFile, match="metric_directions"):
        read_run_info(run)

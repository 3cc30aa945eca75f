"""``extend DIR``: a finished pilot run given more seeds, then the variants an edited spec
adds, ends where a run planned that way from the start ends (same trial values, same report
tables), with no finished trial rerun, its first Tune experiment and its spec.yaml left as
they were; an extension killed midway resumes; what extend refuses, it refuses in one line
with nothing on disk changed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main
from reports.rundir.files import read_results
from reports.rundir.names import LOCK_FILE

from .test_faults import STUDY, _killed, _report, _values

PILOT = STUDY.replace("epochs: 2,", "epochs: 1,")  # variants a and b, seed 0, one epoch
EDITED = PILOT.replace("seeds: [0]", "seeds: [0, 1]") + "  c: {lr: 2.0e-3}\n"
PILOT_TRIALS = ["a_seed0", "b_seed0"]


def _digests(run: Path, under: str = "") -> dict[str, str]:
    """Every file's digest; the lock's record of who last wrote the run aside (a refused
    command takes the lock before its checks, and names itself there)."""
    root = run / under
    return {
        str(f.relative_to(run)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file() and f.name != LOCK_FILE
    }


@pytest.fixture(scope="module")
def runs(ray_local, standin, tmp_path_factory):
    root = tmp_path_factory.mktemp("extend")
    (root / "pilot.yaml").write_text(PILOT)
    (root / "edited.yaml").write_text(EDITED)
    out = {"root": root, "pilot": root / "pilot", "straight": root / "straight", "copy": root / "pilot-copy"}
    assert main(["run", str(root / "pilot.yaml"), "--out", str(out["pilot"])]) == 0
    shutil.copytree(out["pilot"], out["copy"])  # finished, before any extension: for the kill tests
    out["before"] = read_results(out["pilot"]).set_index("trial_name")
    out["tune_before"] = _digests(out["pilot"], "tune")
    assert main(["extend", str(out["pilot"]), "--seeds", "1"]) == 0
    out["after_seeds"] = read_results(out["pilot"]).set_index("trial_name")
    out["meta_after_seeds"] = json.loads((out["pilot"] / "run.json").read_text())
    assert main(["extend", str(out["pilot"]), "--spec", str(root / "edited.yaml")]) == 0
    assert main(["run", str(root / "edited.yaml"), "--out", str(out["straight"])]) == 0
    return out


def test_more_seeds_then_an_edited_spec_end_where_the_run_planned_so_ends(runs):
    pilot, straight = runs["pilot"], runs["straight"]
    # --seeds 1: every variant with seed 1 too, recorded as an extension of its own
    after = runs["after_seeds"]
    assert sorted(after.index) == ["a_seed0", "a_seed1", "b_seed0", "b_seed1"]
    assert set(after["status"]) == {"TERMINATED"}
    ext = runs["meta_after_seeds"]["extensions"]
    assert [(e["seeds"], e["groups"], e["trials"], e["spec"], e["tune_dir"]) for e in ext] == [
        ([1], [], ["a_seed1", "b_seed1"], "spec.yaml", "tune-ext1")
    ]
    assert runs["meta_after_seeds"]["seeds"] == [0, 1]
    # --spec: the variant it adds, with every seed of the run
    df = read_results(pilot).set_index("trial_name")
    assert sorted(df.index) == sorted(read_results(straight)["trial_name"]) and len(df) == 6
    meta = json.loads((pilot / "run.json").read_text())
    assert [(e["groups"], e["trials"], e["spec"], e["tune_dir"]) for e in meta["extensions"][1:]] == [
        (["c"], ["c_seed0", "c_seed1"], "spec.ext2.yaml", "tune-ext2")
    ]
    assert meta["variants"] == ["a", "b", "c"] and meta["seeds"] == [0, 1]
    # nothing that ended was rerun: the same attempts, and the first experiment as it was
    before = runs["before"]
    for name in PILOT_TRIALS:
        assert df.loc[name, "trial_id"] == before.loc[name, "trial_id"]
        assert df.loc[name, "wall_s"] == before.loc[name, "wall_s"]
    for name in ("a_seed1", "b_seed1"):
        assert df.loc[name, "trial_id"] == after.loc[name, "trial_id"]
    assert _digests(pilot, "tune") == runs["tune_before"]
    # the spec as first run is kept as it was; the edited one beside it
    assert (pilot / "spec.yaml").read_text() == PILOT and (pilot / "spec.ext2.yaml").read_text() == EDITED
    # the same numbers and the same tables as the run planned with every trial from the start
    pd.testing.assert_frame_equal(_values(pilot), _values(straight))
    ours = {k: v.replace("tab:pilot-", "tab:RUN-") for k, v in _report(pilot).items()}
    theirs = {k: v.replace("tab:straight-", "tab:RUN-") for k, v in _report(straight).items()}
    assert ours == theirs
    # the page shows the spec the run now stands on
    assert "c: {lr: 2.0e-3}" in (pilot / "report" / "index.html").read_text()


def _unfinished(run: Path) -> None:
    """Make ``run`` an unfinished run the way the tool writes one (a trial still PENDING)."""
    from reports.rundir.files import write_checked

    df = read_results(run)
    df.loc[df.index[-1], "status"] = "PENDING"
    write_checked(run, "results.csv", df.to_csv(index=False, lineterminator="\n"))


#: Edits of the run's spec that extend refuses: (text replaced, by what, the message).
SPEC_EDITS = [
    ("a: {lr: 1.0e-3}", "a: {lr: 1.5e-3}", "--spec: the config of the run's trial 'a_seed0' would change (lr: 0.001 -> 0.0015)"),
    ("  b: {lr: 3.0e-3}\n", "", "--spec: the run's trial 'b_seed0' is not in the extended study"),
    ("name: faults", "name: other", "--spec: its name is 'other', the run's 'faults'"),
    ("mode: max", "mode: min", "--spec: its mode is 'min', the run's 'max'"),
    (
        "metric: eval/cross_domain/acc",
        "metric: eval/cross_domain/auc",
        "--spec: its metric is 'eval/cross_domain/auc', the run's 'eval/cross_domain/acc'",
    ),
    ("reference: a", "reference: b", "--spec: its reference is 'b', the run's 'a'"),
]  # fmt: skip


@pytest.mark.parametrize(
    "args, edit, message",
    [
        (["--seeds", "1"], None, "--seeds: seed 1 is already in the run (its seeds: 0, 1)"),
        ([], None, "extend: nothing to add; give --seeds"),
        (["--seeds", "2,2"], None, "--seeds 2,2: expected distinct non-negative seeds"),
        (["--spec", "{root}/edited.yaml"], None, "--spec: adds no trial to the run"),
        *[(["--spec", "{root}/changed.yaml"], EDITED.replace(old, new), msg) for old, new, msg in SPEC_EDITS],
        (  # refused while the added variant prepares: no spec.ext file, run.json as it was
            ["--spec", "{root}/changed.yaml"],
            EDITED + "  d: {lr: 2.0e-3, backbone: /nonexistent/backbone}\n",
            "variant 'd'",
        ),
        (["--seeds", "2", "--address", "127.0.0.1:1"], None, "--address 127.0.0.1:1: nothing answers"),
        (["--spec", "{root}/nosuch.yaml"], None, "--spec {root}/nosuch.yaml: no such file"),
        (["--seeds", "2"], "unfinished", "trials have not ended (PENDING); `python -m orchestrator resume"),
    ],
)
def test_what_extend_refuses_it_refuses_in_one_line_and_changes_nothing(args, edit, message, runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["pilot"], run)
    if edit == "unfinished":
        _unfinished(run)

    elif edit is not None:
        (runs["root"] / "changed.yaml").write_text(edit)
    before = _digests(run)
    argv = ["extend", str(run), *[a.format(root=runs["root"]) for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(root=runs["root"]) in err and len(err.splitlines()) == 1, err
    assert _digests(run) == before


# (killed while preparing, an extension has not been accepted yet: nothing of it is on disk,
# and the run is as it was; it is a kill point of `extend` no longer, `extend` again adds it)
@pytest.mark.parametrize("point", ["trial"])
def test_an_extension_killed_midway_resumes_to_the_extension_straight_through(point, runs, ray_local, tmp_path):
    """Killed while preparing the added trials (run.json names them, results.csv has no row
    of them yet, Tune has not begun) or mid-trial (one added trial ended): ``resume`` ends
    where the uninterrupted ``extend --seeds 1`` ended."""
    run = tmp_path / "run"
    shutil.copytree(runs["copy"], run)
    _killed(point, ["extend", str(run), "--seeds", "1"], ray_local)
    meta = json.loads((run / "run.json").read_text())
    assert meta["extensions"][-1]["trials"] == ["a_seed1", "b_seed1"]
    rows = read_results(run).set_index("trial_name")
    if point == "prepare":
        assert sorted(rows.index) == PILOT_TRIALS and not (run / "tune-ext1").exists()
    else:
        assert rows.loc["a_seed1", "status"] == "TERMINATED" and rows.loc["b_seed1", "status"] != "TERMINATED"
    assert main(["resume", str(run)]) == 0
    df = read_results(run).set_index("trial_name")
    want = runs["after_seeds"]
    assert sorted(df.index) == sorted(want.index) and set(df["status"]) == {"TERMINATED"}
    metrics = [c for c in _values(run).columns]
    pd.testing.assert_frame_equal(_values(run)[metrics], want[metrics].sort_index(), check_names=False)
    for name in PILOT_TRIALS:  # the pilot's trials as they were
        assert df.loc[name, "trial_id"] == runs["before"].loc[name, "trial_id"]
    if point == "trial":  # the added trial that had ended is not rerun
        assert df.loc["a_seed1", "trial_id"] == rows.loc["a_seed1", "trial_id"]
    assert (run / "report" / "index.html").is_file()


SEARCH = __import__("tests.orchestrator_tests.test_resume", fromlist=["SEARCH"]).SEARCH.replace(
    "num_samples: 4", "num_samples: 3"
)


@pytest.fixture(scope="module")
def search_runs(ray_local, standin, tmp_path_factory):
    root = tmp_path_factory.mktemp("extend-search")
    (root / "s.yaml").write_text(SEARCH)
    out = {"run": root / "run", "copy": root / "copy"}
    assert main(["run", str(root / "s.yaml"), "--out", str(out["run"])]) == 0
    shutil.copytree(out["run"], out["copy"])
    out["before"] = read_results(out["run"]).set_index("trial")
    out["tune_before"] = _digests(out["run"], "tune")
    assert main(["extend", str(out["run"]), "--samples", "2"]) == 0
    return out


def _optuna_trials(experiment: Path) -> list:
    """The Optuna study Tune saved with the search's sampler in ``experiment``."""
    import pickle

    newest = max(experiment.glob("searcher-state-*.pkl"), key=lambda p: p.stat().st_mtime)
    return pickle.loads(newest.read_bytes())["_ot_study"].trials


def test_a_search_extended_samples_on_from_where_it_stopped(search_runs):
    run, before = search_runs["run"], search_runs["before"]
    df = read_results(run).set_index("trial")
    assert list(df.index) == [f"trial{i:03d}" for i in range(5)]  # numbered on after the run's
    assert set(df["status"]) <= {"TERMINATED", "STOPPED"}
    for t in before.index:  # the earlier trials as they ended: not rerun, not resumed
        assert df.loc[t, "trial_id"] == before.loc[t, "trial_id"] and df.loc[t, "status"] == before.loc[t, "status"]
    meta = json.loads((run / "run.json").read_text())
    assert meta["num_samples"] == 5
    ext = meta["extensions"][-1]
    assert (ext["samples"], ext["continues"], ext["first"], ext["tune_dir"]) == (2, "tune", 3, "tune-ext1")
    assert _digests(run, "tune") == search_runs["tune_before"]
    # one sampler all along: the extension's Optuna study holds the earlier trials first (the
    # values they ran with), then the two it sampled, which are the ones that ran
    trials = _optuna_trials(run / "tune-ext1")
    assert len(trials) == 5 and len(_optuna_trials(run / "tune")) == 3
    for t, name in zip(trials, df.index):
        assert t.params["lr"] == pytest.approx(df.loc[name, "config/lr"])
        assert t.params["weight_decay"] == pytest.approx(df.loc[name, "config/weight_decay"])
    states = [t.state.name for t in trials[:3]]
    assert states == ["PRUNED" if s == "STOPPED" else "COMPLETE" for s in before["status"]]
    assert "trial004" in (run / "report" / "index.html").read_text()


def test_extending_a_search_or_a_grid_the_other_way_is_refused_in_one_line(search_runs, runs, tmp_path, capsys):
    cases = [
        (search_runs["run"], ["--seeds", "3"], "a search runs each trial with one seed; extend it with --samples N"),
        (search_runs["run"], ["--samples", "0"], "--samples 0: expected a number of trials from 1 to 10000"),
        (search_runs["run"], ["--samples", "9999"], "the search would have 10004 trials, more than 10000"),
        (runs["pilot"], ["--samples", "2"], "--samples belongs to a search"),
    ]
    for source, args, message in cases:
        run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        shutil.copytree(source, run)
        before = _digests(run)
        assert main(["extend", str(run), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert _digests(run) == before


def test_a_search_extension_killed_before_tune_saved_its_state_resumes(search_runs, ray_local, tmp_path):
    """Killed once Tune wrote the extension's tuner.pkl but none of its own state: ``resume``
    samples the two trials from the continued sampler, numbered after the run's."""
    run = tmp_path / "run"
    shutil.copytree(search_runs["copy"], run)
    _killed("tuner", ["extend", str(run), "--samples", "2"], ray_local)
    assert (run / "tune-ext1" / "tuner.pkl").is_file() and len(read_results(run)) == 3
    assert main(["resume", str(run)]) == 0
    df = read_results(run).set_index("trial")
    assert list(df.index) == [f"trial{i:03d}" for i in range(5)] and set(df["status"]) <= {"TERMINATED", "STOPPED"}
    assert len(_optuna_trials(run / "tune-ext1")) == 5


SENSITIVITY = (
    PILOT.replace("kind: ablation", "kind: sensitivity")
    .replace("metric: eval/cross_domain/acc", "metric: val/cross_domain/acc")
    .split("reference: a")[0]
    + PILOT.split("reference: a")[1].split("variants:")[0]
    + "axes:\n  lora_rank: [2, 4]\n"
)


def test_a_sensitivity_run_gets_a_new_axis_point_and_a_confirm_run_more_seeds(search_runs, tmp_path):
    """The other grid kinds: an axis point an edited spec adds (the base point and the
    earlier point stay as they ran), and a confirm run's seeds (it stays a confirm run: its
    candidates, the search it came from, its figure)."""
    (tmp_path / "s.yaml").write_text(SENSITIVITY)
    (tmp_path / "wider.yaml").write_text(SENSITIVITY.replace("lora_rank: [2, 4]", "lora_rank: [2, 4, 8]"))
    sens = tmp_path / "sensitivity"
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(sens)]) == 0
    before = read_results(sens).set_index("trial_name")
    assert main(["extend", str(sens), "--spec", str(tmp_path / "wider.yaml")]) == 0
    df = read_results(sens).set_index("trial_name")
    assert list(df["point"]) == ["base", "lora_rank=4", "lora_rank=8"] and set(df["status"]) == {"TERMINATED"}
    assert df.loc["lora_rank-8_seed0", "config/lora_rank"] == 8
    assert list(df.loc[before.index, "trial_id"]) == list(before["trial_id"])
    meta = json.loads((sens / "run.json").read_text())
    labels = ["lora_rank=2", "lora_rank=4", "lora_rank=8"]
    assert [p["label"] for p in meta["axes"]["lora_rank"]] == labels
    assert meta["extensions"][0]["groups"] == ["lora_rank=8"]
    table = pd.read_csv(sens / "report" / "sensitivity_lora_rank.csv")
    assert list(table.loc[table["metric"] == "val/cross_domain/acc", "lora_rank"]) == labels

    confirm = tmp_path / "confirm"
    argv = [
        "run",
        "confirm",
        "--from",
        str(search_runs["run"]),
        "--top-k",
        "1",
        "--seeds",
        "1,2",
        "--out",
        str(confirm),
    ]
    assert main(argv) == 0
    first = json.loads((confirm / "run.json").read_text())
    assert main(["extend", str(confirm), "--seeds", "3"]) == 0
    meta = json.loads((confirm / "run.json").read_text())
    assert meta["kind"] == "confirm" and meta["seeds"] == [1, 2, 3]
    assert meta["candidates"] == first["candidates"] and meta["from"] == first["from"]
    df = read_results(confirm)
    assert len(df) == 6 and set(df["status"]) == {"TERMINATED"} and set(df["seed"]) == {1, 2, 3}
    rows = pd.read_csv(confirm / "report" / "confirm.csv")
    assert set(rows.loc[rows["metric"] == meta["metric"], "n"]) == {3}
    assert (confirm / "report" / "fig_confirm_search.html").is_file()

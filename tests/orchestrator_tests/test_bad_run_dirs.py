"""The bad-input corpus for run directories: ``report``, ``status``, ``resume``, ``plan``,
``extend`` and ``confirm --from`` given a directory that is missing, damaged, tampered with,
or stopped before anything finished. Each must end in one line on stderr, exit status 2, no
traceback, before Ray starts or a trainable prepares, with every file as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.orchestrator_tests.refusals import ABLATION, SEARCH, checked_run, refused_case

ABLATION_INFO = {
    "study": "abl",
    "kind": "ablation",
    "trainable": "da_lora",
    "metric": "eval/cross_domain/acc",
    "mode": "max",
    "variants": ["a", "b"],
    "reference": "a",
    "seeds": [0, 1],
}
SEARCH_INFO = {
    "study": "s",
    "kind": "search",
    "trainable": "da_lora",
    "metric": "val/cross_domain/acc",
    "mode": "max",
    "num_samples": 4,
    "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}},
}
CURVES_HEADER = "trial_name,iteration,time_total_s,timestamp,key,value\n"


def written_run(info: dict, rows: str, *, curves: str | None = None):
    """Make files: a run directory ``r`` whose run.json, results.csv (and for a search
    configs.json and spec.yaml) are as the orchestrator writes them, checksums included:
    what the case tests is the content, not damage."""

    def make(d: Path) -> None:
        from reports.rundir.files import write_checked

        r = d / "r"
        r.mkdir()
        write_checked(r, "run.json", json.dumps(info))
        write_checked(r, "results.csv", rows)
        if info["kind"] == "search":
            names = [line.split(",")[0] for line in rows.splitlines()[1:]]
            write_checked(r, "configs.json", json.dumps({n: {"lr": 1e-3} for n in names}))
            (r / "spec.yaml").write_text(SEARCH)
        else:
            (r / "spec.yaml").write_text(ABLATION)
        if curves is not None:
            (r / "curves.csv").write_text(curves)

    return make


def _grid(status: str, value: str) -> str:
    return "trial_name,variant,seed,status,eval/cross_domain/acc\n" + "".join(
        f"{v}_seed{s},{v},{s},{status},{value}\n" for v in "ab" for s in (0, 1)
    )


def _search(*statuses: str) -> str:
    return "trial_name,trial,seed,status,iterations,val/cross_domain/acc\n" + "".join(
        f"trial{i:03d}_seed0,trial{i:03d},0,{st},{2 if st == 'TERMINATED' else 0},{0.6 if st == 'TERMINATED' else ''}\n"
        for i, st in enumerate(statuses)
    )


CASES = [
    # stopped before anything ended
    (
        "report of a search stopped before its first trial",
        {"r": written_run(SEARCH_INFO, _search())},
        ["report", "{d}/r"],
        ["no trial has ended yet (0 of 4 started)", "nothing to report"],
    ),
    (
        "report of a search whose first trials were running",
        {"r": written_run(SEARCH_INFO, _search("RUNNING", "RUNNING"), curves=CURVES_HEADER)},
        ["report", "{d}/r"],
        ["no trial has ended yet (2 of 4 started)"],
    ),
    (
        "confirm from a search stopped before its first trial",
        {"r": written_run(SEARCH_INFO, _search())},
        ["run", "confirm", "--from", "{d}/r"],
        ["the search did not finish (0 of its 4 trials were started"],
    ),
    (
        "confirm from a search stopped half-way",
        {"r": written_run(SEARCH_INFO, _search("TERMINATED", "TERMINATED"))},
        ["run", "confirm", "--from", "{d}/r"],
        ["the search did not finish (2 of its 4 trials were started"],
    ),
    (
        "plan of a run where nothing finished",
        {"r": written_run(ABLATION_INFO, _grid("RUNNING", ""))},
        ["plan", "{d}/r"],
        ["no trial has a value of eval/cross_domain/acc yet (0 of 4 finished)"],
    ),
    (
        "report of a run where nothing finished",
        {"r": written_run(ABLATION_INFO, _grid("PENDING", ""))},
        ["report", "{d}/r"],
        ["no trial has ended yet (0 of 4 started)"],
    ),
    # every option of plan, report, resume and extend
    (
        "plan --effect a word",
        {"r": written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"))},
        ["plan", "{d}/r", "--effect", "abc"],
        ["argument --effect: invalid float value: 'abc'"],
    ),
    (
        "plan --effect negative",
        {"r": written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"))},
        ["plan", "{d}/r", "--effect", "-1"],
        ["--effect -1: expected a positive, finite difference"],
    ),
    (
        "plan --effect nan",
        {"r": written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"))},
        ["plan", "{d}/r", "--effect", "nan"],
        ["--effect nan: expected a positive, finite difference"],
    ),
    ("report of a file", {"f.txt": "mine"}, ["report", "{d}/f.txt"], ["f.txt is not a directory"]),
    ("plan of nothing", {}, ["plan", "{d}/none"], ["none is not a directory"]),
    (
        "resume --address nothing listens",
        {"r": written_run(ABLATION_INFO, _grid("RUNNING", ""))},
        ["resume", "{d}/r", "--address", "127.0.0.1:1"],
        ["--address 127.0.0.1:1: nothing answers"],
    ),
    (
        "resume --address without a port",
        {"r": written_run(ABLATION_INFO, _grid("RUNNING", ""))},
        ["resume", "{d}/r", "--address", "nocolon"],
        ["--address 'nocolon': expected HOST:PORT"],
    ),
    (
        "resume --dashboard-host not an address",
        {"r": written_run(ABLATION_INFO, _grid("RUNNING", ""))},
        ["resume", "{d}/r", "--dashboard-host", "999.1.1.1"],
        ["--dashboard-host '999.1.1.1': expected an IP address"],
    ),
    ("resume of a file", {"f.txt": "mine"}, ["resume", "{d}/f.txt"], ["not a run directory"]),
    (
        "extend --samples 0",
        {"r": written_run(SEARCH_INFO, _search(*["TERMINATED"] * 4))},
        ["extend", "{d}/r", "--samples", "0"],
        ["--samples 0: expected a number of trials from 1 to 10000"],
    ),
    (
        "extend --samples a billion",
        {"r": written_run(SEARCH_INFO, _search(*["TERMINATED"] * 4))},
        ["extend", "{d}/r", "--samples", "1000000000"],
        ["--samples 1000000000: expected a number of trials from 1 to 10000"],
    ),
    (
        "extend --seeds not numbers",
        {"r": written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"))},
        ["extend", "{d}/r", "--seeds", "a,b"],
        ["argument --seeds: expected comma-separated integers"],
    ),
    (
        "extend --seeds negative",
        {"r": written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"))},
        ["extend", "{d}/r", "--seeds", "-3"],
        ["--seeds -3: expected distinct non-negative seeds"],
    ),
    (
        "extend --dashboard-host not an address",
        {"r": written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"))},
        ["extend", "{d}/r", "--seeds", "5", "--dashboard-host", "nohost"],
        ["--dashboard-host 'nohost': expected an IP address"],
    ),
    (
        "extend of an unfinished run",
        {"r": written_run(ABLATION_INFO, _grid("RUNNING", ""))},
        ["extend", "{d}/r", "--seeds", "5"],
        ["4 of 4 trials have not ended (RUNNING)", "resume"],
    ),
    ("extend of a file", {"f.txt": "mine"}, ["extend", "{d}/f.txt", "--seeds", "3"], ["not a run directory"]),
    # curves.csv, which is appended to and not checksummed
    (
        "report with a foreign curves.csv",
        {
            "r": written_run(
                SEARCH_INFO, _search("TERMINATED", "TERMINATED", "STOPPED", "TERMINATED"), curves="a,b\n1,2\n"
            )
        },
        ["report", "{d}/r"],
        ["curves.csv: not a curves file of this tool (no column trial_name"],
    ),
    (
        "report with text in curves.csv's values",
        {
            "r": written_run(
                SEARCH_INFO,
                _search("TERMINATED", "TERMINATED", "STOPPED", "TERMINATED"),
                curves=CURVES_HEADER + "trial000_seed0,1,1.0,1000.0,val/cross_domain/acc,high\n",
            )
        },
        ["report", "{d}/r"],
        ["curves.csv, row 2: value 'high' is not a number"],
    ),
    # results.csv written whole (checksums agree) but not numbers where numbers belong
    (
        "plan of a table whose metric is text",
        {"r": written_run(ABLATION_INFO, _grid("TERMINATED", "good"))},
        ["plan", "{d}/r"],
        ["eval/cross_domain/acc of a_seed0 is 'good', not a number"],
    ),
    (
        "plan --effect inf",
        {"r": written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"))},
        ["plan", "{d}/r", "--effect", "inf"],
        ["--effect inf: expected a positive, finite difference"],
    ),
    ("status of nothing", {}, ["status", "{d}/none"], ["is not a directory"]),
    ("status of a folder that is no run", {"x/a.txt": "a"}, ["status", "{d}/x"], ["not a run directory"]),
    (
        "report on a truncated table",
        {"r": lambda d: checked_run(d, "trial_name,variant,seed,status,eval/x/acc\na_seed0,a,0,TERMI", None)},
        ["report", "{d}/r"],
        ["results.csv", "truncated"],
    ),
    (
        "status of an edited table",
        {
            "r": lambda d: checked_run(
                d, "trial_name,variant,seed,status,eval/x/acc\na_seed0,a,0,TERMINATED,0.9\n", None
            )
        },
        ["status", "{d}/r"],
        ["checksum"],
    ),
    (
        "report of a run.json list",
        {"r": lambda d: checked_run(d, None, "[1, 2]", record=False)},
        ["report", "{d}/r"],
        ["run.json", "not the mapping"],
    ),
    (
        "report of an edited run.json",
        {"r": lambda d: checked_run(d, None, "[1, 2]")},
        ["report", "{d}/r"],
        ["run.json", "checksum"],
    ),
    (
        "status of a run.json without its metric",
        {"r": lambda d: checked_run(d, None, '{"study": "abl", "kind": "ablation", "mode": "max"}', record=False)},
        ["status", "{d}/r"],
        ["run.json", "no 'metric'"],
    ),
    (
        "resume of a damaged run",
        {"r": lambda d: checked_run(d, None, '{"study": ')},
        ["resume", "{d}/r"],
        ["run.json", "truncated"],
    ),
    (
        "resume of an old run's damaged run.json",
        {"r": lambda d: checked_run(d, None, '{"study": ', record=False)},
        ["resume", "{d}/r"],
        ["run.json", "not JSON"],
    ),
    ("resume of nothing", {}, ["resume", "{d}/none"], ["not a run directory"]),
    (
        "confirm from a damaged run",
        {"r": lambda d: checked_run(d, "x\n", None), "r/configs.json": "{}", "r/spec.yaml": SEARCH},
        ["run", "confirm", "--from", "{d}/r"],
        ["results.csv"],
    ),
]


def test_load_run_refuses_a_foreign_curves_file_in_one_line(tmp_path):
    """The Python API reads curves.csv through the same check: a foreign or damaged file is a
    RunDirError naming it (one line), an empty one (cut before its header) no curves."""
    import orchestrator
    from reports.rundir.files import RunDirError

    written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"), curves="a,b\n1,2\n")(tmp_path)
    with pytest.raises(RunDirError, match="curves.csv: not a curves file of this tool"):
        orchestrator.load_run(tmp_path / "r")
    (tmp_path / "r" / "curves.csv").write_text("")
    assert orchestrator.load_run(tmp_path / "r").curves.empty


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_run_dir(case, tmp_path, monkeypatch, capsys, no_ray, no_prepare):
    refused_case(case, tmp_path, monkeypatch, capsys, no_ray)


@pytest.mark.parametrize(
    "argv",
    [
        ["resume", "{d}/r", "--address", "127.0.0.1:1"],
        ["resume", "{d}/r", "--dashboard-host", "999.1.1.1"],
        ["extend", "{d}/r", "--seeds", "5", "--address", "127.0.0.1:1"],
    ],
)
def test_connection_options_are_refused_before_the_run_is_locked(argv, tmp_path, capsys, no_ray, no_prepare):
    """What can be checked without the run (the cluster's address, the dashboard host) is
    refused before the lock is taken: not even the lock file appears."""
    from orchestrator.cli import main

    written_run(ABLATION_INFO, _grid("TERMINATED", "0.5"))(tmp_path)
    assert main([a.replace("{d}", str(tmp_path)) for a in argv]) == 2
    assert "error: --" in capsys.readouterr().err
    assert not (tmp_path / "r" / ".lock").exists()

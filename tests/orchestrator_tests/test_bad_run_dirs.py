"""The bad-input corpus for run directories: ``report``, ``status``, ``resume``, ``plan``,
``extend`` and ``confirm --from`` given a directory that is missing, damaged, tampered with,
or stopped before anything finished. Each must end in one line on stderr, exit status 2, no
traceback, before Ray starts or a trainable prepares, with every file as it was.
"""

from __future__ import annotations

import pytest

from tests.orchestrator_tests.refusals import SEARCH, checked_run, refused_case

CASES = [
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


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_run_dir(case, tmp_path, monkeypatch, capsys, no_ray, no_prepare):
    refused_case(case, tmp_path, monkeypatch, capsys, no_ray)

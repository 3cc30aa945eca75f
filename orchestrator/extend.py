"""``extend DIR``: add trials to a finished run without rerunning any that ended, then rebuild
its report (the paired tests then use every seed the compared variants share).

- ``--seeds 3,4,5``: every group of the run (variant, point) with these seeds too;
- ``--spec FILE``: the run's spec edited: new variants (ablation), new axis points
  (sensitivity), more seeds. What the run already has must stay as it is: a finished trial
  whose config the edited spec changes is refused (that is a new run, not an extension).

The added trials run as a Tune experiment of their own (``tune-ext1/``, ...), so that Tune's
state of the first one stays as it was; ``run.json`` records each extension (when, what it
added, its spec file and its Tune folder) and ``resume`` continues an interrupted one. The
spec as first run (``spec.yaml``) is never rewritten: an edited spec is kept beside it
(``spec.ext1.yaml``), and the run's spec is then that one (``reports.rundir.names.spec_file``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from orchestrator.errors import UserError
from orchestrator.kinds.base import Launch
from orchestrator.launch import (
    RunOptions,
    check_connection,
    check_options,
    prepare_shared,
    ray_trials,
    spec_facts,
    this_driver,
)
from orchestrator.plan import resolve_trainable
from orchestrator.spec import MAX_SAMPLES, StudyBase  # what one extend of a search may add, too
from reports.rundir.files import read_results
from reports.rundir.info import Extension, RunInfo, write_run_info
from reports.rundir.lock import run_lock
from reports.rundir.names import RUN_FILE, TUNE_DIR, UNFINISHED, run_label, spec_file


def extend_run(
    run_dir: Path,
    *,
    seeds: list[int] | None = None,
    spec_path: Path | None = None,
    samples: int | None = None,
    address: str | None = None,
    dashboard_host: str = "127.0.0.1",
    log: Callable[[str], None] = print,
) -> Path:
    """``extend DIR``: the run's trials with ``seeds`` added, and/or the trials ``spec_path``
    (the run's spec, edited) adds; then the report, rebuilt over every trial."""
    from reports.rundir.files import read_run_info

    run_dir = Path(run_dir)
    if not seeds and spec_path is None and samples is None:
        raise UserError(
            "extend: nothing to add; give --seeds (e.g. --seeds 3,4,5) or --spec (the run's spec, edited), "
            "or for a search --samples N"
        )
    if samples is not None and not 0 < samples <= MAX_SAMPLES:
        raise UserError(f"--samples {samples}: expected a number of trials from 1 to {MAX_SAMPLES}")
    if seeds is not None and (len(set(seeds)) != len(seeds) or min(seeds, default=0) < 0):
        raise UserError(f"--seeds {','.join(map(str, seeds))}: expected distinct non-negative seeds")
    if not run_dir.is_dir() or not (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir}: not a run directory (run.json and spec.yaml are needed)")
    read_run_info(run_dir)
    check_connection(address, dashboard_host)  # before the lock: a refused command leaves no file
    with run_lock(run_dir):  # one writer: a second extend, a resume or a report is refused
        return _extend_locked(run_dir, seeds, spec_path, samples, address, dashboard_host, log)


def _extend_locked(run_dir: Path, seeds, spec_path, samples, address, dashboard_host, log) -> Path:
    from orchestrator.kinds import kind_of
    from orchestrator.resume import _resumed_options
    from orchestrator.studies import load_study
    from reports.rundir.files import read_run_info

    meta = read_run_info(run_dir)
    current = run_dir / spec_file(meta)
    if not current.is_file():
        raise UserError(f"{run_dir}: {current.name} is missing; it says what the run is, and nothing can extend it")
    spec, text = load_study(str(current))
    new = None
    if spec_path is not None:
        if not Path(spec_path).is_file():
            raise UserError(f"--spec {spec_path}: no such file")
        new = load_study(str(spec_path))
    opts = _resumed_options(run_dir, meta, address, dashboard_host)
    kind = kind_of(spec.kind)
    if kind.name == "search":
        if seeds or new is not None:
            raise UserError(
                f"{run_dir}: a search runs each trial with one seed; extend it with --samples N (more trials), "
                "or rerun its best configs with more seeds: run confirm --from DIR --seeds ..."
            )
        return kind.extend(run_dir, spec, meta, opts, samples=samples, log=log)
    if samples is not None:
        raise UserError(f"--samples belongs to a search; {run_dir} is a {meta.kind} run (--seeds, --spec)")
    return kind.extend(run_dir, spec, meta, opts, seeds=list(seeds or []), new=new, log=log)


def _unfinished_refused(run_dir: Path, df) -> None:
    unfinished = df[df["status"].isin(UNFINISHED)]
    if len(unfinished):
        raise UserError(
            f"{run_dir}: {len(unfinished)} of {len(df)} trials have not ended "
            f"({'/'.join(sorted(set(unfinished['status'])))}); `python -m orchestrator resume {run_dir}` first"
        )


def _record(meta: RunInfo, run_dir: Path, **facts: Any) -> Extension:
    """This extension's entry of run.json's ``extensions`` (its Tune folder: the next free one)."""
    k = _free(run_dir, TUNE_DIR + "-ext{}", len(meta.extensions) + 1)
    return Extension(at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), command=sys.argv, **facts, tune_dir=f"{TUNE_DIR}-ext{k}")


def _check_same_study(spec: StudyBase, target: StudyBase, where: str) -> None:
    """The edited spec is the same study: the same trainable, and the same metric, direction
    and reference, which the run's tables, marks and headline were made with (after an edit
    to ``mode: min`` the report would call the lowest accuracy best)."""
    for what in ("name", "kind", "trainable", "metric", "mode", "reference"):
        if getattr(spec, what, None) != getattr(target, what, None):
            raise UserError(
                f"{where}: its {what} is {getattr(target, what, None)!r}, the run's {getattr(spec, what, None)!r}; "
                "extend adds trials to the same study and leaves what the run has as it is (start a new run "
                "to change it)"
            )


def _changed_key(old: dict[str, Any], new: dict[str, Any]) -> str:
    key = next(k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
    return f"{key}: {old.get(key)!r} -> {new.get(key)!r}"


def _free(run_dir: Path, pattern: str, start: int) -> int:
    """The first number from ``start`` whose file or folder ``pattern`` names does not exist
    (one an interrupted extend left behind is not reused: nothing on disk is rewritten)."""
    k = start
    while (run_dir / pattern.format(k)).exists():
        k += 1
    return k


def extend_grid(
    kind,
    run_dir: Path,
    spec: StudyBase,
    meta: RunInfo,
    opts: RunOptions,
    *,
    seeds: list[int],
    new: tuple[StudyBase, str] | None,
    log: Callable[[str], None],
) -> Path:
    """``extend`` for a study kind whose trials are a fixed grid (``kinds.grid.GridKind``)."""
    from orchestrator.kinds.base import Experiment, _report
    from orchestrator.results import ResultsTable

    df = read_results(run_dir, meta)
    _unfinished_refused(run_dir, df)
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    current = kind.in_run_order(kind.compile(spec, opts, quiet), meta)
    have = {p.name: p for p in current}
    if set(have) != set(df["trial_name"]):
        raise UserError(f"{run_dir}: results.csv does not list the run's trials; spec files and run.json disagree")
    run_seeds = list(dict.fromkeys(p.seed for p in current))
    again = [s for s in seeds if s in run_seeds]
    if again:
        raise UserError(f"--seeds: seed {again[0]} is already in the run (its seeds: {', '.join(map(str, run_seeds))})")
    target, text = new if new is not None else (spec, "")
    where = "--spec" if new is not None else "extend"
    if new is not None:
        _check_same_study(spec, target, "--spec")
        spec_seeds = (target.quick.seeds or target.seeds) if opts.quick else target.seeds
        seeds = seeds + [s for s in spec_seeds if s not in run_seeds and s not in seeds]
    all_seeds = run_seeds + seeds
    ext_opts = replace(opts, seeds=all_seeds)
    full = kind.compile(target, ext_opts, log)
    by_name = {p.name: p for p in full}
    dropped = [n for n in have if n not in by_name]
    if dropped:
        raise UserError(
            f"{where}: the run's trial {dropped[0]!r} is not in the extended study; extend only adds trials "
            "(a spec without some of them is another study: start a new run)"
        )
    changed = [n for n in have if by_name[n].config != have[n].config]
    if changed:
        n = changed[0]
        raise UserError(
            f"{where}: the config of the run's trial {n!r} would change ({_changed_key(have[n].config, by_name[n].config)}); "
            "extend adds trials and leaves the finished ones as they are (start a new run to change them)"
        )
    added = [p for p in full if p.name not in have]
    if not added:
        raise UserError(f"{where}: adds no trial to the run (its seeds: {', '.join(map(str, run_seeds))})")
    plans = [replace(p, index=i) for i, p in enumerate([*current, *added])]
    added = plans[len(current) :]
    # everything that may refuse comes before anything is written: the options, the cluster,
    # the trainable's preparation of the added trials (a bad backbone, data that fails)
    entry = resolve_trainable(target)
    cpus, gpus = check_options(ext_opts, target)
    provenance = kind.provenance(prepare_shared(entry, added, run_dir, what=target.unit, log=log))
    tune_dir = _record(meta, run_dir).tune_dir
    k = int(tune_dir.rsplit("ext", 1)[1])
    spec_name = spec_file(meta)
    if new is not None:
        spec_name = f"spec.ext{_free(run_dir, 'spec.ext{}.yaml', k)}.yaml"
    groups = [g for g in dict.fromkeys(p.variant for p in added) if g not in {p.variant for p in current}]
    record = _record(
        meta,
        run_dir,
        seeds=sorted(set(p.seed for p in added) - set(run_seeds)),
        groups=groups,
        trials=[p.name for p in added],
        spec=spec_name,
    )
    info = RunInfo.model_validate(
        {
            **meta.model_dump(by_alias=True),
            **spec_facts(target, plans),
            **kind.facts(target, plans, ext_opts),
            "label": target.report.label or meta.label or run_label(run_dir.name),  # the run's, kept
            "extensions": [*meta.extensions, record],
            "driver": this_driver(),
        }
    )
    launch = Launch(run_dir, target, entry, ext_opts, cpus, gpus, log, Experiment(tune_dir, tuple(record.trials or ())))
    with ray_trials(ext_opts, cpus, gpus, run_dir, log):  # the cluster's own checks may still refuse
        if new is not None:  # a new file first: run.json names it only once it is whole
            (run_dir / spec_name).write_text(text)
        write_run_info(run_dir, info)
        log(
            f"Extending {spec.name!r} in {run_dir}: {len(added)} trials added to its {len(current)} "
            f"({_what(record, kind)}); the finished ones stay as they are; Tune experiment {tune_dir}/"
        )
        table = ResultsTable.load(run_dir, spec.name, plans[: len(current)], group_column=kind.group_column)
        for p in added:
            table.add(p, provenance.get(p.index, {}))
        table.write()
        kind.execute(launch, plans, table, provenance, restore=False)
    return _report(launch)


def _what(record: Extension, kind) -> str:
    parts = []
    if record.seeds:
        parts.append(f"seeds {', '.join(map(str, record.seeds))}")
    if record.groups:
        unit = kind.spec_model.unit
        parts.append(f"{unit}s {', '.join(record.groups)}")
    return " and ".join(parts) or "trials"


def extend_search(kind, run_dir: Path, spec: StudyBase, meta: RunInfo, opts: RunOptions, *, samples: int, log) -> Path:
    """``extend DIR --samples N`` of a finished search: N more trials, sampled by the search's
    own sampler as Tune last saved it (Optuna's study with every trial, complete or pruned,
    and its random state), numbered after the run's, each compared at ASHA's rungs with every
    value the earlier trials recorded there. The earlier trials stay as they ended: one that
    ASHA stopped is not resumed, even where more trials would now have promoted it."""
    from orchestrator.kinds.base import _report, experiment_of

    df = read_results(run_dir, meta)
    _unfinished_refused(run_dir, df)
    compiled = kind.compile(spec, opts, lambda _: None)
    earlier = experiment_of(meta).dir
    if not list((run_dir / earlier).glob("searcher-state-*.pkl")):
        raise UserError(
            f"{run_dir}: Tune's sampler state is missing from {earlier}/; the search cannot go on from where it stopped"
        )
    numbers = [int(str(t).removeprefix("trial")) for t in df["trial"]] if len(df) else []
    total = (meta.num_samples or compiled.num_samples) + samples
    if total > MAX_SAMPLES:
        raise UserError(f"--samples {samples}: the search would have {total} trials, more than {MAX_SAMPLES}")
    record = _record(
        meta, run_dir, samples=samples, continues=earlier, first=max(numbers, default=-1) + 1, spec=spec_file(meta)
    )
    info = meta.model_copy(
        update={"num_samples": total, "extensions": [*meta.extensions, record], "driver": this_driver()}
    )
    entry = resolve_trainable(spec)
    cpus, gpus = check_options(opts, spec)
    provenance = kind.provenance(prepare_shared(entry, kind.prepared(compiled), run_dir, what=spec.unit, log=log))
    launch = Launch(run_dir, spec, entry, opts, cpus, gpus, log, experiment_of(info))
    with ray_trials(opts, cpus, gpus, run_dir, log):  # run.json only once nothing can refuse any more
        write_run_info(run_dir, info)
        log(
            f"Extending search {spec.name!r} in {run_dir}: {samples} more trials after its {len(df)} "
            f"(trial{record.first:03d} on), sampled from where it stopped; Tune experiment {record.tune_dir}/"
        )
        kind.execute(launch, compiled, None, provenance, restore=False)
    return _report(launch)


__all__ = ["extend_run"]

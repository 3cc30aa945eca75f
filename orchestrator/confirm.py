"""``run confirm --from DIR``: turn a finished search into a claim.

The search ranked configs by one seed each, and the winner's lead is partly that seed's
luck. Confirm reruns the top-k completed configs and the base config to completion with
fresh seeds (by default none of them the search's) and tests each against the base, paired
by seed with Holm's adjustment across the candidates: an ablation study whose variants are
``base``, ``top1``, ``top2``... It is written out as an ordinary ablation spec, so
``run <confirm dir>/spec.yaml`` reruns it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from orchestrator.errors import UserError
from orchestrator.kinds import parse_spec
from orchestrator.kinds.ablation import AblationSpec
from orchestrator.kinds.search import ConfirmSpec, SearchSpec
from reports.rundir.files import read_checked, read_run
from reports.rundir.lock import refuse_if_written
from reports.rundir.names import CONFIGS_FILE, UNFINISHED

BASE = "base"


def _finished_search(from_dir: Path) -> tuple[dict, pd.DataFrame, dict[str, dict], SearchSpec]:
    """run.json, results.csv, configs.json and the spec of a search that finished; else one line."""
    where = f"--from {from_dir}"
    if not from_dir.is_dir():
        raise UserError(f"{where}: not a directory")
    refuse_if_written(from_dir, where)  # an extend or resume of the search would change its candidates
    files = [from_dir / n for n in ("run.json", "results.csv", "configs.json", "spec.yaml")]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{where}: not a finished search run (no {', '.join(missing)})")
    df, meta = read_run(from_dir)  # refused in one line when damaged or edited
    try:
        configs = json.loads(read_checked(from_dir, CONFIGS_FILE))
        data = yaml.safe_load(files[3].read_text())
    except (ValueError, yaml.YAMLError) as err:
        raise UserError(f"{where}: unreadable run files ({str(err).splitlines()[0]})") from None
    if meta.kind != "search":
        raise UserError(f"{where}: a run of kind {meta.kind}, not a search (confirm reruns a search's best configs)")
    unfinished = df[df["status"].isin(UNFINISHED)]
    if len(unfinished):
        raise UserError(
            f"{where}: the search did not finish ({len(unfinished)} of {len(df)} trials "
            f"{'/'.join(sorted(set(unfinished['status'])))})"
        )
    planned = meta.num_samples
    if df.empty or (planned is not None and len(df) < planned):
        raise UserError(
            f"{where}: the search did not finish ({len(df)} of its {planned or '?'} trials were started; "
            f"python -m orchestrator resume {from_dir} runs the rest)"
        )
    spec = parse_spec(data, source=str(files[3]))
    if not isinstance(spec, SearchSpec):
        raise UserError(f"{where}: spec.yaml is not a search spec")
    return meta, df, configs, spec


def _without_seed(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "seed"}


def confirm_study(opts, log: Callable[[str], None] = print) -> tuple[AblationSpec, str, dict[str, Any]]:
    """The ablation spec of a confirm run (and its YAML and run.json additions)."""
    if opts.from_dir is None:
        raise UserError("run confirm needs --from DIR, a finished search's run directory")
    from_dir = Path(opts.from_dir)
    meta, df, configs, search = _finished_search(from_dir)
    settings: ConfirmSpec = search.quick.confirm if opts.quick and search.quick.confirm else search.confirm
    top_k = opts.top_k if opts.top_k is not None else settings.top_k
    seeds = list(opts.seeds) if opts.seeds is not None else list(settings.seeds)
    if opts.quick and search.quick.confirm is None and opts.seeds is None:
        top_k, seeds = min(top_k, 2), seeds[:2]
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UserError(f"--seeds: need at least 2 distinct non-negative seeds for a test, got {seeds}")

    metric, mode = meta.metric, meta.mode
    base_row = df.iloc[0]  # the search evaluated its base config first (points_to_evaluate)
    if base_row["trial_name"] not in configs:
        raise UserError(f"--from {from_dir}: configs.json lacks the base trial {base_row['trial_name']}")
    base = _without_seed(configs[base_row["trial_name"]])
    done = df[(df["status"] == "TERMINATED") & df[metric].notna()] if metric in df else df.iloc[:0]
    done = done.sort_values(metric, ascending=mode == "min", kind="stable")
    candidates, seen = [], {json.dumps(base, sort_keys=True)}
    for _, row in done.iterrows():
        config = configs.get(row["trial_name"])
        key = json.dumps(_without_seed(config or {}), sort_keys=True)
        if config is None or key in seen:  # the base config (rerun anyway) or a config sampled twice
            continue
        seen.add(key)
        changes = {k: v for k, v in _without_seed(config).items() if base.get(k) != v}
        candidates.append(
            {
                "variant": f"top{len(candidates) + 1}",
                "trial": row["trial"],
                "search_value": float(row[metric]),
                "search_iterations": int(row["iterations"]),
                "changes": changes,
            }
        )
        if len(candidates) == top_k:
            break
    if not candidates:
        raise UserError(
            f"--from {from_dir}: no trial other than the base config ran to completion "
            f"({len(done)} completed of {len(df)}); nothing to confirm"
        )
    # The candidates were chosen on the search's (validation) metric; the confirm run tests
    # them on its test counterpart: fresh seeds remove seed luck, and test identities that
    # took no part in the choice remove the bias of having picked on the pairs reported.
    from orchestrator.plan import TEST, resolve_trainable, test_counterpart

    known = set(resolve_trainable(search).reported_keys(configs[base_row["trial_name"]]))
    test_metric = test_counterpart(metric, known) or metric
    if not test_metric.startswith(TEST):
        log(
            f"note: {metric} has no test counterpart among the metrics of {search.trainable}; "
            "the confirm run tests on the metric the candidates were chosen on"
        )
    # The confirm table tests the candidates on the test metrics, Holm over the candidates; the
    # validation values they were chosen on stand beside them in the candidates table.
    report_metrics = list(
        dict.fromkeys(
            [
                test_metric,
                *(m for m in search.report_metrics() if not (m.startswith("val/") and test_metric.startswith(TEST))),
            ]
        )
    )
    search_seeds = sorted({int(s) for s in df["seed"]})
    reused = sorted(set(seeds) & set(search_seeds))
    if reused:
        log(
            f"note: confirm seeds {reused} were also the search's; the luck that ranked the candidates "
            "then enters the test that confirms them (prefer fresh seeds)"
        )
    raw = {
        "name": f"{search.name}-confirm",
        "kind": "ablation",
        "trainable": search.trainable,
        "description": f"Confirm the top {len(candidates)} config{'s' if len(candidates) > 1 else ''} of search {meta.study!r} ({from_dir}) "
        f"against its base config, {len(seeds)} seeds each",
        "metric": test_metric,
        "mode": mode,
        "seeds": seeds,
        "base": base,
        "variants": {BASE: {}, **{c["variant"]: c["changes"] for c in candidates}},
        "reference": BASE,
        "report": {
            "metrics": report_metrics,
            "test": search.report.test,
            "family": search.report.family,
            "alpha": search.report.alpha,
            "min_effect": search.report.min_effect,
            "interval": search.report.interval,
            **({"label": f"{search.report.label}-confirm"} if search.report.label else {}),
        },
        "resources": search.resources.model_dump(),
        "max_concurrent": search.max_concurrent,
        "max_failures": search.max_failures,
    }
    spec = parse_spec(raw, source=f"confirm --from {from_dir}")
    text = (
        f"# Generated by `run confirm --from {from_dir}`: the search's top {len(candidates)} config(s) and its\n"
        f"# base config, {len(seeds)} seeds each. Rerun it as it stands: python -m orchestrator run <this file>\n"
        + yaml.safe_dump(raw, sort_keys=False)
    )
    base_value = base_row.get(metric) if base_row["status"] == "TERMINATED" else None
    extra = {
        "kind": "confirm",
        "from": str(from_dir.resolve()),
        "search_study": meta.study,
        "base_trial": base_row["trial"],
        "base_search_value": None if base_value is None or pd.isna(base_value) else float(base_value),
        "search_seeds": search_seeds,
        "candidates": candidates,
        "search_metric": metric,
    }
    shown = ", ".join(f"{c['variant']} = {c['trial']} ({metric}={c['search_value']:.4f})" for c in candidates)
    log(f"Confirm: {shown} vs the base config, seeds {seeds}")
    return spec, text, extra

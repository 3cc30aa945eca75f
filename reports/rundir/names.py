"""The names of the run directory: its files, the statuses a trial can have, the columns of
``results.csv`` and ``curves.csv``, and ASHA's rung arithmetic that both the scheduler and
the report's figures use. Defined here once; the orchestrator writes by these names and the
reports read by them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reports.rundir.info import RunInfo

# files and folders of a run directory
SPEC_FILE = "spec.yaml"  # the spec as run
RUN_FILE = "run.json"  # what the report needs to know about the study (``reports.rundir.info.RunInfo``)
RESULTS_FILE = "results.csv"  # one row per planned trial
CONFIGS_FILE = "configs.json"  # each trial's full config with its JSON types
CURVES_FILE = "curves.csv"  # every reported metric at every iteration (long format)
CHECKSUMS_FILE = "checksums.sha256"  # digests of the three files above that are replaced (``reports.rundir.files``)
SAMPLES_FILE = "data_samples.png"  # the sample grid of synthetic data (with a ``.json`` side file)
SKIPPED_FILE = "skipped_images.csv"  # training images left out, with the reason
TUNE_DIR = "tune"  # Ray Tune's experiment state and the trials' checkpoints
REPORT_DIR = "report"
TRACKING_DIR = "tracking"  # the experiment trackers' files (TensorBoard, W&B offline, MLflow's SQLite store)
LOCK_FILE = ".lock"  # held by the one command writing the run (``reports.rundir.lock``)
STAGING_DIR = ".report.partial"  # where a report is made before its files replace report/'s
OPTUNA_FILE = "optuna.db"  # a search as an Optuna study, in report/
EXTENSIONS = "extensions"  # run.json: what each ``extend`` added, in order (its spec file, its Tune folder)

# trial statuses: Ray's words, and ours (STOPPED, DIVERGED, INTERRUPTED)
PENDING, RUNNING, PAUSED = "PENDING", "RUNNING", "PAUSED"  # PAUSED: waiting at an ASHA rung
TERMINATED = "TERMINATED"  # ran to completion: the only status that enters the statistics
STOPPED = "STOPPED"  # stopped early by ASHA
ERROR = "ERROR"
DIVERGED = "DIVERGED"  # its loss became NaN or infinite (not retried)
INTERRUPTED = "INTERRUPTED"  # the run stopped under it (Ctrl-C)
STATUSES = (PENDING, RUNNING, PAUSED, INTERRUPTED, TERMINATED, STOPPED, ERROR, DIVERGED)
UNFINISHED = (PENDING, RUNNING, PAUSED, INTERRUPTED)  # resume runs these
FINISHED = (TERMINATED, STOPPED)
FAILED = (ERROR, DIVERGED)
COMPLETED = TERMINATED

# columns of results.csv: the head, the group column renamed per study kind
HEAD_COLUMNS = ("trial_id", "trial_name", "study", "variant", "seed", "status", "iterations", "wall_s", "error")
GROUP_COLUMNS = {"ablation": "variant", "confirm": "variant", "sensitivity": "point", "search": "trial"}
# provenance carried by every row; the report's provenance table shows the first group
PROVENANCE_COLUMNS = (
    "config_hash",
    "data_fingerprint",
    "skipped_images",
    "single_image_identities",
    "unlabeled_images",
    "data_snapshot",
    "git_commit",
    "torch_version",
    "ray_version",
    "optuna_version",
    "peft_version",
    "timm_version",
    "transformers_version",
    "hostname",
    "node_id",
)
REPORTED_PROVENANCE = (
    "git_commit",
    "data_fingerprint",
    "skipped_images",
    "single_image_identities",
    "torch_version",
    "ray_version",
    "optuna_version",
    "peft_version",
    "timm_version",
    "transformers_version",
)
WHERE_COLUMNS = ("hostname", "node_id")  # where the trial ran: Tune's hostname, the Ray node's id
CURVE_COLUMNS = ("trial_name", "iteration", "time_total_s", "timestamp", "key", "value")


def run_label(name: str) -> str:
    """The LaTeX label prefix a run takes from its directory's name when its spec sets no
    ``report.label``: recorded in run.json when the run starts, so that a copied or renamed
    run keeps its labels (a paper's \\ref's do not break); letters, digits and ``.+-`` only
    (``ablation v2 (50%)`` -> ``ablation-v2-50``), so that it is a valid label in any document."""
    import re

    return re.sub(r"[^A-Za-z0-9.+]+", "-", name).strip("-") or "run"


def group_column(kind: str) -> str:
    """The column of results.csv that names a trial's group, for a study kind."""
    return GROUP_COLUMNS.get(kind, "variant")


def spec_file(info: RunInfo) -> str:
    """The run's spec as it now stands: ``spec.yaml`` (the spec as first run, never rewritten),
    or the spec file of its latest extension (``spec.ext1.yaml``, ...)."""
    ext = info.latest_extension
    return ext.spec if ext is not None and ext.spec else SPEC_FILE


def experiment_dir(info: RunInfo) -> str:
    """The folder of the run's latest Tune experiment: ``tune/``, or its latest extension's
    (``tune-ext1/``, ...: an extension's trials are a Tune experiment of their own)."""
    ext = info.latest_extension
    return ext.tune_dir if ext is not None else TUNE_DIR


def trial_checkpoints(run_dir, study: str, trial_name: str) -> list:
    """Every checkpoint folder a trial left in the run, in any Tune experiment of it, oldest
    first (by Tune's checkpoint number, then by time). Tune names a trial's folder
    ``<study>_<trial name>``, and when a restarted trial finds that folder taken (a driver
    killed and resumed), the same with ``_<4 hex digits>``: the newest checkpoint may be in
    either."""
    import re
    from pathlib import Path

    own = re.compile(rf"{re.escape(study)}_{re.escape(trial_name)}(_[0-9a-f]{{4,8}})?")
    found = [
        c
        for d in Path(run_dir).glob(f"*/{study}_{trial_name}*")
        if d.is_dir() and own.fullmatch(d.name)
        for c in d.glob("checkpoint_*")
        if c.is_dir()
    ]
    return sorted(found, key=lambda c: (c.name, c.stat().st_mtime))


def is_metric_key(key: str) -> bool:
    """Namespaced metrics (``train/...``, ``val/...``, ``eval/...``); Ray's own keys have no slash."""
    return "/" in key and not key.startswith("config/")


def rung_milestones(*, grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The iterations at which ASHA compares trials: grace, grace*rf, ... below max_t, each
    whole iteration once (a factor of 1.5 from 1 gives 1, 1.5, 2.25: rungs 1 and 2, not 1, 1, 2)."""
    t: float = grace_period
    out: list[int] = []
    while t < max_t:
        if not out or int(t) > out[-1]:
            out.append(int(t))
        t = t * reduction_factor
    return out


#: How runs made before ``run.json`` recorded each metric's direction (``metric_directions``,
#: declared by the trainables) are read: a metric whose last part is one of these is better
#: lower. Runs made since read the trainable's own declaration.
LOWER_IS_BETTER = ("loss", "eer", "far", "error", "err", "pred_cv")  # pred_cv: prediction CV (probes)


def metric_label(metric: str) -> str:
    """What a report calls a metric whose trainable declared no name (a run made before names
    were recorded): the key without its namespace, ``eval/cross_domain/acc`` -> ``cross_domain acc``."""
    parts = metric.split("/")
    if parts[0] in ("eval", "train") and len(parts) > 1:
        parts = parts[1:]
    return " ".join(parts)


def direction_by_name(metric: str) -> str:
    """``min`` or ``max`` for ``metric`` by the old rule (``LOWER_IS_BETTER``)."""
    last = metric.rsplit("/", 1)[-1].split("@")[0]
    return "min" if last in LOWER_IS_BETTER else "max"

"""Experiment trackers (TensorBoard, Weights & Biases, MLflow) as views of the run.

``results.csv`` and ``curves.csv`` stay the source of truth: the trackers are written from
the same events, in the driver, by the progress callbacks (``orchestrator.progress``) that
keep those files, with each trial's real config (the plan's, or the search's sampled one),
one run per trial named like the trial, one scalar per reported metric per epoch, and at the
end the trial's row of ``results.csv`` (its final metrics and status) and the metrics of its
best epoch (``best/<metric>``, from ``curves.csv`` at ``train/best_epoch``).

Written with each library's own client rather than Tune's logger callbacks: those log
Tune's config (a grid's is the plan index ``_trial``, not the trial's hyperparameters), Ray's
``WandbLoggerCallback`` refuses to start without an API key unless ``WANDB_MODE`` is set in
the environment and starts an actor per trial, and none of them knows a trial's status as
this tool records it (an ASHA-stopped trial is not a finished one).

Off by default (``tracking.backends`` in the spec, ``--track`` on the command line). Nothing
here opens a network connection unless asked: W&B writes offline when no key is configured
(``wandb sync`` uploads later), MLflow writes to a SQLite store in the run directory, and
the libraries' usage reporting is off (``orchestrator/__init__.py``).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import threading
from pathlib import Path
from typing import Any

from reports.rundir.names import (
    CURVES_FILE,
    DIVERGED,
    ERROR,
    INTERRUPTED,
    TERMINATED,
    TRACKING_DIR,
    is_metric_key,
)

BACKENDS = ("tensorboard", "wandb", "mlflow")
#: The package each tracker writes through (the ``track`` extra installs them).
LIBRARIES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}

#: How each of this tool's final statuses reads in MLflow (FINISHED, FAILED or KILLED) and in
#: W&B's exit code: only a trial that ran to its end finished; an ASHA-stopped one was killed.
_MLFLOW_STATUS = {TERMINATED: "FINISHED", ERROR: "FAILED", DIVERGED: "FAILED", INTERRUPTED: "KILLED"}


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def epoch_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The metrics of one report, as the trackers log them (namespaced keys with a number)."""
    return {k: v for k, v in ((k, _scalar(v)) for k, v in result.items() if is_metric_key(k)) if v is not None}


def final_metrics(row: dict[str, Any]) -> dict[str, float]:
    """A trial's final metrics: its row of ``results.csv`` (NaN cells left out)."""
    out = {}
    for key, value in row.items():
        v = _scalar(value)
        if is_metric_key(key) and v is not None and math.isfinite(v):
            out[key] = v
    return out


def best_epoch_metrics(run_dir: Path, trial_name: str, row: dict[str, Any]) -> dict[str, float]:
    """The metrics the trial reported at its best epoch (``train/best_epoch`` of its row), as
    ``best/<metric>``, read from ``curves.csv``; empty when the trial reported no best epoch."""
    import pandas as pd

    epoch = _scalar(row.get("train/best_epoch"))
    path = Path(run_dir) / CURVES_FILE
    if epoch is None or not math.isfinite(epoch) or not path.is_file():
        return {}
    curves = pd.read_csv(path, dtype={"trial_name": str})
    at = curves[(curves["trial_name"] == trial_name) & (curves["iteration"] == int(epoch))]
    return {f"best/{k}": float(v) for k, v in zip(at["key"], at["value"]) if math.isfinite(float(v))}


def hparam(value: Any) -> str | float | int | bool:
    """A config value as a tracker's hyperparameter holds it (a number, a bool or a string;
    lists as their cell in ``results.csv``, ``a+b``)."""
    from orchestrator.results import _cell

    cell = _cell(value)
    return cell if isinstance(cell, (bool, int, float, str)) else str(cell)


class _TensorBoard:
    """One run folder per trial under ``tracking/tensorboard/``: a scalar per metric per
    epoch, and at the end the HParams plugin's session: the real config and the final and
    best-epoch metrics (torch's ``SummaryWriter`` and its ``hparams`` summary, written into
    the trial's own folder, not a sub-run as ``add_hparams`` would, so that TensorBoard's
    HParams table shows one row per trial)."""

    name = "tensorboard"

    def __init__(self, root: Path, study: str) -> None:
        self.root = root / "tensorboard"
        self.writers: dict[str, Any] = {}

    def _writer(self, name: str):
        if name not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            self.writers[name] = SummaryWriter(log_dir=str(self.root / name))
        return self.writers[name]

    def start(self, name: str, config: dict[str, Any]) -> None:
        self._writer(name)

    def epoch(self, name: str, step: int, metrics: dict[str, float]) -> None:
        writer = self._writer(name)
        for key, value in metrics.items():
            writer.add_scalar(key, value, global_step=step)
        writer.flush()

    def end(
        self, name: str, config: dict[str, Any], status: str, final: dict[str, float], files: dict[str, Path]
    ) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer = self._writer(name)
        shown = {f"final/{k}": v for k, v in final.items() if not k.startswith("best/")}
        shown.update({k: v for k, v in final.items() if k.startswith("best/")})
        params = {k: hparam(v) for k, v in config.items()}
        params["status"] = status
        exp, ssi, sei = hparams(params, shown)
        for summary in (exp, ssi, sei):
            writer.file_writer.add_summary(summary)
        for key, value in shown.items():
            writer.add_scalar(key, value)
        writer.close()
        del self.writers[name]

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def wandb_mode(requested: str) -> str:
    """``offline`` unless a key is configured (``WANDB_API_KEY``, or ``wandb login``'s
    netrc entry) or the mode is asked for (``tracking.wandb_mode``, ``WANDB_MODE``)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    import netrc

    try:
        host = netrc.netrc().authenticators("api.wandb.ai")
    except (OSError, netrc.NetrcParseError):
        host = None
    return "online" if host else "offline"


class _Wandb:
    """A W&B run per trial in ``tracking/wandb/``, grouped by the study (its run
    directory's name): the config as the run's config, a history step per epoch, the final
    and best-epoch metrics and the status as the summary; an errored trial exits with 1."""

    name = "wandb"

    def __init__(self, root: Path, study: str, project: str | None, mode: str, group: str) -> None:
        self.dir = root  # wandb makes its own ``wandb/`` folder here
        self.project, self.mode, self.group = project or study, wandb_mode(mode), group
        self.runs: dict[str, Any] = {}

    def _run(self, name: str, config: dict[str, Any]):
        if name not in self.runs:
            import wandb

            settings = wandb.Settings(
                silent=True,
                console="off",  # the trials' output is Ray's to keep; the driver's is the user's
                x_disable_stats=True,  # no sampling of the driver's CPU and memory
                x_disable_machine_info=True,
                disable_git=True,
                disable_code=True,
                x_save_requirements=False,
            )
            self.dir.mkdir(parents=True, exist_ok=True)
            self.runs[name] = wandb.init(
                project=self.project,
                group=self.group,
                name=name,
                id=re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.group}-{name}")[:120],
                resume="allow",  # a resumed trial continues its run
                dir=str(self.dir),
                mode=self.mode,
                config=dict(config),  # JSON values, as configs.json holds them
                reinit="create_new",  # one run per trial, several open at once
                settings=settings,
            )
        return self.runs[name]

    def start(self, name: str, config: dict[str, Any]) -> None:
        self._run(name, config)

    def epoch(self, name: str, step: int, metrics: dict[str, float]) -> None:
        if name in self.runs:
            self.runs[name].log(metrics, step=step)

    def end(
        self, name: str, config: dict[str, Any], status: str, final: dict[str, float], files: dict[str, Path]
    ) -> None:
        run = self._run(name, config)
        run.summary.update({**final, "status": status})
        run.finish(exit_code=0 if status not in (ERROR, DIVERGED) else 1)
        del self.runs[name]

    def close(self) -> None:
        for run in self.runs.values():
            run.finish(exit_code=1)
        self.runs.clear()


def mlflow_key(key: str) -> str:
    """A metric's key as MLflow can name it (alphanumerics, ``_-. :/`` only):
    ``eval/visible/tar@far=1e-2`` is ``eval/visible/tar_at_far:1e-2``."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", key.replace("@", "_at_").replace("=", ":"))


def mlflow_uri(run_dir: Path, uri: str | None) -> str:
    """The tracking store: the one asked for, else a SQLite file in the run directory (MLflow's
    file store is deprecated)."""
    return uri or "sqlite:///" + str((Path(run_dir) / TRACKING_DIR / "mlflow.db").resolve())


class _Mlflow:
    """An MLflow experiment per study (named like the run directory), a run per trial: the
    config as params, a metric per epoch (its step the epoch), the final and best-epoch
    metrics at the end with the status, and the trial's score files (``evaluation.npz``, its
    latest and its best epoch's) as artifacts."""

    name = "mlflow"

    def __init__(self, root: Path, run_dir: Path, study: str, uri: str | None, experiment: str) -> None:
        self.uri, self.artifacts = mlflow_uri(run_dir, uri), (root / "mlflow-artifacts").resolve()
        self.experiment, self.study, self.run_dir = experiment, study, run_dir
        self.client: Any = None
        self.ids: dict[str, str] = {}

    def _connect(self) -> None:
        if self.client is not None:
            return
        from mlflow import MlflowClient

        # its "Creating initial MLflow database tables" (set after the import, which sets its level)
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

        root = Path(self.uri.removeprefix("sqlite:///")) if self.uri.startswith("sqlite:///") else None
        if root is not None:
            root.parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(self.experiment)
        self.experiment_id = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(self.experiment, artifact_location=self.artifacts.as_uri())
        )

    def _run_id(self, name: str, config: dict[str, Any]) -> str:
        if name in self.ids:
            return self.ids[name]
        from mlflow.entities import Param

        self._connect()
        # a resumed trial continues the run it started (its name is unique in the experiment)
        found = self.client.search_runs([self.experiment_id], filter_string=f"attributes.run_name = '{name}'")
        if found:
            self.ids[name] = found[0].info.run_id
            return self.ids[name]
        run = self.client.create_run(self.experiment_id, run_name=name, tags={"orchestrator.study": self.study})
        params = [Param(k, str(hparam(v))[:6000]) for k, v in config.items()]  # MLflow's longest param value
        for i in range(0, len(params), 100):  # MLflow's most params per batch
            self.client.log_batch(run.info.run_id, params=params[i : i + 100])
        self.ids[name] = run.info.run_id
        return self.ids[name]

    def start(self, name: str, config: dict[str, Any]) -> None:
        self._run_id(name, config)

    def _log(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(mlflow_key(k), v, now, step) for k, v in metrics.items() if math.isfinite(v)]
        for i in range(0, len(batch), 1000):  # MLflow's most metrics per batch
            self.client.log_batch(run_id, metrics=batch[i : i + 1000])

    def epoch(self, name: str, step: int, metrics: dict[str, float]) -> None:
        if name in self.ids:
            self._log(self.ids[name], step, metrics)

    def end(
        self, name: str, config: dict[str, Any], status: str, final: dict[str, float], files: dict[str, Path]
    ) -> None:
        run_id = self._run_id(name, config)
        best = {k: v for k, v in final.items() if k.startswith("best/")}
        if best:
            self._log(run_id, int(final.get("train/best_epoch", 0)), best)
        self.client.set_tag(run_id, "orchestrator.status", status)
        for where, path in files.items():  # evaluation/latest/evaluation.npz, evaluation/best/...
            self.client.log_artifact(run_id, str(path), artifact_path=f"evaluation/{where}")
        self.client.set_terminated(run_id, _MLFLOW_STATUS.get(status, "KILLED"))
        del self.ids[name]

    def close(self) -> None:
        for run_id in self.ids.values():
            self.client.set_terminated(run_id, "KILLED")
        self.ids.clear()


class Trackers:
    """The trackers a run writes to (``tracking`` of its spec, or ``--track``), driven by the
    progress callbacks. The writing happens on a thread of its own, in the order of the calls,
    so that Tune's loop never waits on a tracker (an MLflow batch of 250 metrics takes tens
    of milliseconds: BENCHMARKS.md); ``close`` (at the experiment's end) waits until all is
    written. Pickle-safe as they are: Tune pickles its callbacks into the experiment state,
    and ``resume`` gets them back; the open runs are opened again."""

    def __init__(self, run_dir: Path, study: str, tracking: dict[str, Any]) -> None:
        self.run_dir, self.study, self.tracking = Path(run_dir), study, dict(tracking)
        self._open()

    def _open(self) -> None:
        root = self.run_dir / TRACKING_DIR
        label = self.run_dir.name
        make = {
            "tensorboard": lambda: _TensorBoard(root, self.study),
            "wandb": lambda: _Wandb(
                root, self.study, self.tracking.get("wandb_project"), self.tracking.get("wandb_mode", "auto"), label
            ),
            "mlflow": lambda: _Mlflow(root, self.run_dir, self.study, self.tracking.get("mlflow_uri"), label),
        }
        self.backends = [make[b]() for b in self.tracking.get("backends", [])]
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        # each running trial's reports by step, for its best epoch's metrics at its end (what
        # curves.csv holds too, without reading a file that grows with the run)
        self._history: dict[str, dict[int, dict[str, float]]] = {}

    def __bool__(self) -> bool:
        return bool(self.backends)

    def __getstate__(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "study": self.study, "tracking": self.tracking}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def _each(self, call: str, *args: Any) -> None:
        """``call`` on every backend. A tracker that fails (a full disk, a server that does not
        answer) is left out for the rest of the run, in one line: the trials and
        ``results.csv`` go on, and the tracker is a view of them."""
        for b in list(self.backends):
            try:
                getattr(b, call)(*args)
            except Exception as err:  # noqa: BLE001 -- any library's failure; the run is the truth
                self.backends.remove(b)
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                print(f"tracker {b.name} left out for the rest of the run: {type(err).__name__}: {first}", flush=True)

    def _submit(self, call: str, *args: Any) -> None:
        """``call`` for the writing thread (started with the first call)."""
        if not self.backends:
            return
        if self._thread is None:
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._work, name="orchestrator-trackers", daemon=True)
            self._thread.start()
        assert self._queue is not None
        self._queue.put((call, args))

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                call, args = item
                self._each(call, *args)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until everything asked so far is written."""
        if self._queue is not None:
            self._queue.join()

    def start(self, name: str, config: dict[str, Any]) -> None:
        self._submit("start", name, dict(config))

    def epoch(self, name: str, result: dict[str, Any]) -> None:
        step, metrics = int(result.get("training_iteration", 0)), epoch_metrics(result)
        if metrics and self.backends:
            self._history.setdefault(name, {})[step] = metrics
            self._submit("epoch", name, step, metrics)

    def end(self, name: str, config: dict[str, Any], row: dict[str, Any], trial_dir: str | None) -> None:
        """The trial ended: its row of ``results.csv``; ``trial_dir`` is Tune's folder of it,
        whose latest checkpoint holds its score files (``evaluation.npz``, and ``best/``'s)."""
        if not self.backends:
            return
        from reports.rundir.evaluation import BEST_DIR, EVAL_FILE

        history, best = self._history.pop(name, {}), _scalar(row.get("train/best_epoch"))
        if best is not None and math.isfinite(best) and int(best) in history:
            at_best = {f"best/{k}": v for k, v in history[int(best)].items() if math.isfinite(v)}
        else:  # reported before a resume (this driver did not see it): curves.csv has it
            at_best = best_epoch_metrics(self.run_dir, name, row)
        final = {**final_metrics(row), **at_best}
        checkpoints = sorted(Path(trial_dir).glob("checkpoint_*")) if trial_dir else []
        files: dict[str, Path] = {}
        for checkpoint in reversed(checkpoints):
            for where, path in (("latest", checkpoint / EVAL_FILE), ("best", checkpoint / BEST_DIR / EVAL_FILE)):
                if where not in files and path.is_file():
                    files[where] = path
        self._submit("end", name, dict(config), str(row.get("status", "")), final, files)

    def close(self) -> None:
        """Close every open run and wait until all is written (the thread ends)."""
        self._submit("close")
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()
            self._thread = self._queue = None


def parse_track(text: str) -> list[str]:
    """``--track tensorboard,wandb,mlflow`` as a list; ``none`` (or empty) for none.
    Refused (ValueError) when it names another tracker."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["none"]:
        return []
    unknown = [t for t in names if t not in BACKENDS]
    if unknown:
        raise ValueError(f"--track {text!r}: unknown tracker {unknown[0]!r} (expected some of {', '.join(BACKENDS)})")
    return list(dict.fromkeys(names))

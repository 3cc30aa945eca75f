"""The quick-experiments note's "track comparison": one row per probe variant with the
note's key metrics (accuracy, macro-F1, prediction CV, mean ± std over seeds) and the
classes its probes recognise best and worst, read from the trials' own ``results.csv``
files (per-class F1, averaged over seeds) in ``<run>/tune/<trial>/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reports._format import setting
from reports.ablation import COMPLETED
from reports.kinds.base import ReportInput, Section
from reports.rundir.info import RunInfo
from reports.sections import section_for

METRICS = {
    "eval/probe/acc": ("Accuracy", "max"),
    "eval/probe/macro_f1": ("Macro-F1", "max"),
    "eval/probe/pred_cv": ("Prediction CV", "min"),
}
TRIAL_FILES = "tune"


def _text(v) -> str:
    if isinstance(v, (list, tuple)):  # typed from configs.json
        return setting(v)
    return "" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v).replace("+", " + ")


def trial_dir(run_dir: Path, study: str, trial_name: str) -> Path:
    """Tune's directory of a trial (the orchestrator names it ``<study>_<trial name>``)."""
    return run_dir / TRIAL_FILES / f"{study}_{trial_name}"


def _classes(run_dir: Path, study: str, trials: pd.Series, k: int) -> tuple[str, str, int]:
    """(best k, worst k) class names by F1 averaged over the trials that wrote results.csv."""
    frames = []
    for name in trials:
        path = trial_dir(run_dir, study, str(name)) / "results.csv"
        if path.is_file():
            frames.append(pd.read_csv(path, keep_default_na=False))
    if not frames:
        return "", "", 0
    per = pd.concat(frames)
    per = per[per["support"] > 0].groupby("name")["f1"].mean().sort_values(kind="stable")
    fmt = lambda s: ", ".join(f"{n} ({v:.2f})" for n, v in s.items())  # noqa: E731
    return fmt(per[::-1].head(k)), fmt(per.head(k)), len(frames)


def track_comparison(run_dir: Path, df: pd.DataFrame, meta: RunInfo, *, k: int = 3) -> tuple[pd.DataFrame, set, str]:
    """(table, bold cells, note) of a probe study's variants."""
    rows, means = [], {}
    done = df[df["status"] == COMPLETED]
    group = "point" if "point" in df.columns else "variant"
    for variant in meta.variants:
        if not (df[group] == variant).any():
            continue
        sub = done[done[group] == variant]
        first = df[df[group] == variant].iloc[0]
        row = {
            "Variant": variant,
            "Encoders": _text(first.get("config/encoders")),
            "Head": _text(first.get("config/head")),
        }
        fusion = _text(first.get("config/fusion"))
        row["Fusion"] = fusion if "+" in str(first.get("config/encoders", "")) else "none"
        row["Seeds"] = len(sub)
        for key, (label, _) in METRICS.items():
            vals = sub[key].dropna().to_numpy(dtype=float) if key in sub else np.array([])
            means[(variant, label)] = vals.mean() if len(vals) else np.nan
            sd = vals.std(ddof=1) if len(vals) > 1 else np.nan
            row[label] = "" if not len(vals) else (f"{vals.mean():.4f}" + ("" if np.isnan(sd) else f" ± {sd:.4f}"))
        best, worst, _ = _classes(run_dir, meta.study, sub["trial_name"], k)
        row[f"Best {k} classes (F1)"], row[f"Worst {k} classes (F1)"] = best, worst
        rows.append(row)
    table = pd.DataFrame(rows)
    bold = set()
    for key, (label, mode) in METRICS.items():
        vals = {
            i: means[(r["Variant"], label)] for i, r in enumerate(rows) if not np.isnan(means[(r["Variant"], label)])
        }
        if vals:
            target = (max if mode == "max" else min)(vals.values())
            bold |= {(i, label) for i, v in vals.items() if v == target}
    best_acc = max(
        (
            (means[(r["Variant"], "Accuracy")], r["Variant"])
            for r in rows
            if not np.isnan(means[(r["Variant"], "Accuracy")])
        ),
        default=(np.nan, ""),
    )
    note = (
        (
            f"Test images, mean ± std over seeds; best per column in bold (prediction CV: lower is better, the "
            f"coefficient of variation of predicted-class counts). Highest accuracy: {best_acc[1]}"
            f" ({best_acc[0]:.4f}). Classes: per-class F1 on the test images, averaged over seeds. Whether a "
            "difference is significant: the ablation table's paired tests."
        )
        if rows
        else ""
    )
    return table, bold, note


def write_track_comparison(run_dir: Path, df: pd.DataFrame, meta: RunInfo, out: Path, caption_note: str = "") -> str:
    """``track_comparison.{md,tex,csv}``; returns the HTML section."""
    from reports.html import _e, frame_html
    from reports.latex import frame_latex
    from reports.markdown import frame_markdown

    table, bold, note = track_comparison(run_dir, df, meta)
    table.to_csv(out / "track_comparison.csv", index=False)
    (out / "track_comparison.md").write_text(
        f"# Track comparison: {meta.study}\n\n" + frame_markdown(table, note, bold=bold)
    )
    (out / "track_comparison.tex").write_text(
        frame_latex(
            table,
            caption=f"Track comparison of {meta.study}. {note} {caption_note}".strip(),
            label=f"{meta.label or meta.study}-track-comparison",
            bold=bold,
        )
    )
    links = " · ".join(f"<a href='track_comparison{x}'>track_comparison{x}</a>" for x in (".tex", ".md", ".csv"))
    return frame_html(table) + f"<p><small>{_e(note)}</small></p><p>{links}</p>"


@section_for("probe")
def track_section(r: ReportInput) -> Section | None:
    """The probe's section on every page whose study compares variants (a search has none:
    its trials are ranked in its top-k table instead)."""
    if r.meta.kind == "search" or not r.meta.variants:
        return None
    html = write_track_comparison(r.run_dir, r.df, r.meta, r.out, r.note)
    return ("Track comparison", html + _confusions(r))


def _confusions(r: ReportInput) -> str:
    """The confusion matrices of the variants (``fig_confusion``) and each class's F1 per variant
    (``per_class_f1.csv``), from the predictions and per-class results the trials kept."""
    from reports.confusion import MAX_CLASSES, MAX_PANELS, confusion_figure, confusion_info, per_class_f1
    from reports.html import figures_html
    from reports.plots import Figures, export_static, write_figure

    f1 = per_class_f1(r.run_dir, r.df, r.meta, trial_dir)
    links = ""
    if not f1.empty:
        f1.to_csv(r.out / "per_class_f1.csv", index=False)
        links = (
            "<p><a href='per_class_f1.csv'>per_class_f1.csv</a>: each class's test F1 per variant, mean over seeds.</p>"
        )
    panels = confusion_info(r.run_dir, r.df, r.meta, trial_dir)
    if not panels:
        return links
    figures = Figures()
    title = "Confusion matrices on the test images (seeds pooled)"
    write_figure(
        confusion_figure(panels, dict(r.meta.names), title=title), r.out, "fig_confusion", figures, title=title
    )
    note = (
        f"<p><small>Confusions: each row a true class, each column the class its test images were predicted as, "
        f"the colour the share of the row's test images over every seed of the variant (the count in the cell); "
        f"past {MAX_CLASSES} classes, the most-confused ones (the classes of the largest off-diagonal counts), "
        f"whose rows then sum to less than 1; the study's first {MAX_PANELS} variants.</small></p>"
    )
    return figures_html(export_static(figures), note) + links

"""The ablation table's numbers from a hand-made results table."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.ablation import ablation_table, metric_mode
from reports.stats import holm

M = "eval/x/acc"


def _results() -> pd.DataFrame:
    rows = []
    values = {"ref": [0.70, 0.72, 0.71], "better": [0.75, 0.78, 0.76], "same": [0.70, 0.73, 0.70]}
    for variant, vals in values.items():
        for seed, v in enumerate(vals):
            rows.append(
                {
                    "trial_name": f"{variant}_{seed}",
                    "variant": variant,
                    "seed": seed,
                    "status": "TERMINATED",
                    "error": "",
                    M: v,
                    "eval/x/eer": 1 - v,
                }
            )
    rows.append(
        {
            "trial_name": "better_3",
            "variant": "better",
            "seed": 3,
            "status": "ERROR",
            "error": "RuntimeError: boom",
            M: 0.1,
            "eval/x/eer": 0.9,
        }
    )
    return pd.DataFrame(rows)


def _table(**options):
    return ablation_table(
        _results(),
        study="s",
        variants=["ref", "better", "same"],
        metrics=[M, "eval/x/eer"],
        reference="ref",
        primary=M,
        mode="max",
        **options,
    )


def test_ablation_cells():
    t = _table(family="table")  # one family: Holm over all four comparisons
    better = t.cells[("better", M)]
    assert better.n == 3  # the ERROR trial is not in the statistics
    assert better.mean == pytest.approx((0.75 + 0.78 + 0.76) / 3)
    assert better.diff == pytest.approx(0.0533333, abs=1e-6)
    raw = [
        stats.ttest_rel([0.75, 0.78, 0.76], [0.70, 0.72, 0.71]).pvalue,
        stats.ttest_rel([0.70, 0.73, 0.70], [0.70, 0.72, 0.71]).pvalue,
        stats.ttest_rel([0.25, 0.22, 0.24], [0.30, 0.28, 0.29]).pvalue,
        stats.ttest_rel([0.30, 0.27, 0.30], [0.30, 0.28, 0.29]).pvalue,
    ]
    adjusted = holm(raw)
    assert better.p == pytest.approx(raw[0])
    assert better.p_holm == pytest.approx(adjusted[0])
    assert t.cells[("same", "eval/x/eer")].p_holm == pytest.approx(adjusted[3])
    assert t.comparisons == 4
    # best: highest accuracy, lowest EER
    assert better.best and not t.cells[("ref", M)].best
    assert t.cells[("better", "eval/x/eer")].best
    assert t.cells[("ref", M)].diff is None
    assert [e["trial_name"] for e in t.excluded] == ["better_3"]
    assert any("did not complete" in w for w in t.warnings)


def test_metric_mode():
    assert metric_mode("eval/twins/eer", primary="x", mode="max") == "min"
    assert metric_mode("train/loss", primary="x", mode="max") == "min"
    assert metric_mode("eval/lfw/tar@far=1e-3", primary="x", mode="min") == "max"
    assert metric_mode("x", primary="x", mode="min") == "min"
    # a declared direction wins over the name (a loss the old rule read as higher-is-better);
    # the study's own mode wins over both
    declared = {"train/cosface_loss": "min", "x": "max"}
    assert metric_mode("train/cosface_loss", primary="x", mode="max") == "max"
    assert metric_mode("train/cosface_loss", primary="x", mode="max", directions=declared) == "min"
    assert metric_mode("x", primary="x", mode="min", directions=declared) == "min"


def test_the_best_row_follows_the_declared_direction():
    """The lowest EER is bolded by the name; declared higher-is-better, the highest is."""
    by_name = _table()
    declared = _table(directions={"eval/x/eer": "max"})
    assert by_name.modes["eval/x/eer"] == "min" and by_name.cells[("better", "eval/x/eer")].best
    assert declared.modes["eval/x/eer"] == "max" and not declared.cells[("better", "eval/x/eer")].best
    best = max(["ref", "same"], key=lambda v: declared.cells[(v, "eval/x/eer")].mean)
    assert declared.cells[(best, "eval/x/eer")].best


def test_report_uses_the_test_the_spec_names(tmp_path):
    """report.test reaches the tables through run.json; each rendering names the test."""
    from reports import build_report

    tmp_path = _ablation_run(tmp_path / "run", test="wilcoxon")
    build_report(tmp_path)
    csv = pd.read_csv(tmp_path / "report" / "ablation.csv")
    row = csv[(csv["variant"] == "better") & (csv["metric"] == M)].iloc[0]
    assert row["test"] == "Wilcoxon signed-rank test over seeds"
    assert row["p"] == pytest.approx(stats.wilcoxon([0.75, 0.78, 0.76], [0.70, 0.72, 0.71]).pvalue)
    for name in ("ablation.md", "ablation.tex", "ablation_stats.tex", "index.html"):
        assert "Wilcoxon signed-rank test" in (tmp_path / "report" / name).read_text(), name


def _raw_p() -> dict[tuple[str, str], float]:
    ref, better, same = [0.70, 0.72, 0.71], [0.75, 0.78, 0.76], [0.70, 0.73, 0.70]
    return {
        ("better", M): stats.ttest_rel(better, ref).pvalue,
        ("same", M): stats.ttest_rel(same, ref).pvalue,
        ("better", "eval/x/eer"): stats.ttest_rel([1 - x for x in better], [1 - x for x in ref]).pvalue,
        ("same", "eval/x/eer"): stats.ttest_rel([1 - x for x in same], [1 - x for x in ref]).pvalue,
    }


@pytest.mark.parametrize("family", ["primary", "per_metric"])
def test_each_metric_is_its_own_family(family):
    """Holm runs over one metric's comparisons with the reference (two here), not the table's
    four: the study metric's family is the primary one, and with ``primary`` the other
    metrics are labelled secondary."""
    t = ablation_table(
        _results(), study="s", variants=["ref", "better", "same"], metrics=[M, "eval/x/eer"],
        reference="ref", primary=M, mode="max", family=family,
    )  # fmt: skip
    raw = _raw_p()
    for metric in (M, "eval/x/eer"):
        keys = [("better", metric), ("same", metric)]
        # Holm over two: the smaller p times 2, the larger times 1 but not below the first
        lo, hi = sorted(raw[k] for k in keys)
        expected = {k: (min(1, 2 * lo) if raw[k] == lo else max(min(1, 2 * lo), hi)) for k in keys}
        for k in keys:
            cell = t.cells[k]
            assert cell.p_holm == pytest.approx(expected[k]) and cell.family == metric and cell.family_size == 2
            assert cell.secondary == (family == "primary" and metric != M)
    assert t.families == {M: 2, "eval/x/eer": 2} and t.comparisons == 2
    assert t.is_secondary("eval/x/eer") == (family == "primary") and not t.is_secondary(M)


def test_simultaneous_interval_and_detectable_difference_by_definition():
    """Next to a p adjusted over m comparisons: the t interval at 1 - alpha/m (Bonferroni),
    and the smallest difference the paired t-test detects with 80% power at alpha/m
    (statsmodels' power solver times the sd of the differences)."""
    from statsmodels.stats.power import TTestPower

    t = ablation_table(
        _results(), study="s", variants=["ref", "better", "same"], metrics=[M], reference="ref",
        primary=M, mode="max", alpha=0.05, min_effect=0.005,
    )  # fmt: skip
    d = pd.Series([0.75, 0.78, 0.76]) - pd.Series([0.70, 0.72, 0.71])
    n, sd, level = 3, d.std(ddof=1), 0.05 / 2
    half = stats.t.ppf(1 - level / 2, n - 1) * sd / n**0.5
    cell = t.cells[("better", M)]
    assert (cell.sim_low, cell.sim_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert cell.sim_high - cell.sim_low > cell.ci_high - cell.ci_low  # wider than the unadjusted 95%
    # statsmodels' power at the MDE (standardised) is 80% (its own solver stops short at n = 3:
    # it returns an effect whose power, by its own power function, is 0.786)
    assert TTestPower().power(effect_size=cell.mde / sd, nobs=n, alpha=level) == pytest.approx(0.8, abs=1e-9)
    # seeds for 0.005: the fewest n whose power (statsmodels) reaches 80% at the same level
    power = [TTestPower().power(effect_size=0.005 / sd, nobs=k, alpha=level) for k in range(2, 200)]
    assert cell.seeds_needed == next(k for k, p in zip(range(2, 200), power) if p >= 0.8)


def test_no_spread_of_the_differences_has_no_detectable_effect():
    """Every seed moved by the same amount (the default ablation on some CPUs: two seeds,
    both 0.000625 apart, sd ~1e-16 from float noise): no t-test exists, so the row claims no
    MDE and no seed count (not a detectable difference of 1e-15), its p is the exact
    sign-flip one, 2 / 2^n, and the power sentence leaves it out."""
    from reports.ablation import power_sentence

    df = _results()
    ref = df[df["variant"] == "ref"]
    shifted = ref.assign(variant="shifted", trial_name=lambda f: "shifted_" + f["seed"].astype(str))
    noisy = [v + 0.000625 for v in ref[M]]
    noisy[2] = float(np.nextafter(noisy[2], 1.0))  # a constant difference, up to float noise
    shifted[M] = noisy
    assert 0 < pd.Series(shifted[M].to_numpy() - ref[M].to_numpy()).std(ddof=1) < 1e-12
    t = ablation_table(
        pd.concat([df, shifted]), study="s", variants=["ref", "better", "shifted"], metrics=[M], reference="ref",
        primary=M, mode="max", min_effect=0.005,
    )  # fmt: skip
    cell = t.cells[("shifted", M)]
    assert cell.mde is None and cell.seeds_needed is None and cell.p == pytest.approx(2 / 2**3)
    assert t.cells[("better", M)].mde is not None
    text = power_sentence(t)
    assert f"of about {t.cells[('better', M)].mde:.3g} and above " in text and " over the " not in text


def test_power_sentence_states_seeds_detectable_and_needed():
    from reports.ablation import power_sentence

    t = ablation_table(
        _results(), study="s", variants=["ref", "better", "same"], metrics=[M], reference="ref",
        primary=M, mode="max", min_effect=0.005,
    )  # fmt: skip
    text = power_sentence(t)
    mdes = sorted(t.cells[(v, M)].mde for v in ("better", "same"))
    needed = sorted(t.cells[(v, M)].seeds_needed for v in ("better", "same"))
    assert text.startswith(f"With 3 seeds this study can detect differences in {M} of about ")
    assert f"{(mdes[0] + mdes[1]) / 2:.3g}" in text and f"{mdes[0]:.3g} to {mdes[1]:.3g}" in text
    assert "alpha 0.05/2 per comparison" in text and f"; {needed[0]} seeds would detect 0.005" in text
    from dataclasses import replace

    assert "seeds would detect" not in power_sentence(replace(t, min_effect=None))


def _ablation_run(path, **extra):
    import json

    path.mkdir()
    _results().to_csv(path / "results.csv", index=False)
    meta = {
        "study": "ablation",
        "kind": "ablation",
        "description": "",
        "trainable": "t",
        "metric": M,
        "mode": "max",
        "report_metrics": [M],
        "variants": ["ref", "better", "same"],
        "reference": "ref",
        "family": "primary",
        **extra,
    }
    (path / "run.json").write_text(json.dumps(meta))
    return path


def test_labels_are_unique_across_runs_and_rows_show_their_names(tmp_path):
    """Two runs of one study input into one paper: every label carries the run directory's
    name (or report.label); captions read as the spec's title, not "Ablation of ablation";
    rows show report.names while the CSV keeps the variant's identifier."""
    import re

    from reports import build_report

    names = {"better": "Better (full)", "ref": "Reference_1"}
    one = _ablation_run(tmp_path / "run-one", title="Component ablation", names=names)
    two = _ablation_run(tmp_path / "run-two", title="Component ablation", names=names, label="paper")
    labels = {}
    for run in (one, two):
        build_report(run)
        tex = "".join((run / "report" / f).read_text() for f in ("ablation.tex", "ablation_stats.tex"))
        labels[run.name] = set(re.findall(r"\\label\{([^}]*)\}", tex))
        assert "Ablation of" not in tex and tex.count(r"\caption{Component ablation") == 2
        assert r"Better (full)" in tex and r"\textit{Reference\_1}" in tex  # the reference in italics
        assert "better" not in tex.replace("Better", "")
        md = (run / "report" / "ablation.md").read_text()
        assert "Better (full)" in md
        csv = pd.read_csv(run / "report" / "ablation.csv")
        assert set(csv["variant"]) == {"ref", "better", "same"}
        assert dict(zip(csv["variant"], csv["shown_as"])) == {
            "ref": "Reference_1",
            "better": "Better (full)",
            "same": "same",
        }
    assert labels["run-one"] == {"tab:run-one-ablation", "tab:run-one-ablation-stats"}
    assert labels["run-two"] == {"tab:paper-ablation", "tab:paper-ablation-stats"}


def test_labels_of_an_awkward_run_name_compile_and_the_main_table_stands_alone(tmp_path):
    """A run directory named ``ablation v2 (50%)`` gives labels of letters, digits and ``-``
    that pdflatex accepts; ``ablation.tex`` input on its own names its companion tables'
    files instead of printing "Table ??" (LaTeX's "Reference ... undefined" warning), and with
    them, after LaTeX's second pass, refers to them by number."""
    import re
    import subprocess

    from reports import build_report

    run = _ablation_run(tmp_path / "ablation v2 (50%)", title="Component ablation")
    build_report(run)
    report = run / "report"
    labels = set(re.findall(r"\\label\{([^}]*)\}", (report / "ablation.tex").read_text()))
    assert labels == {"tab:ablation-v2-50-ablation"}

    def compile_(inputs: list[str], passes: int) -> str:
        work = tmp_path / f"doc{len(inputs)}"  # a path without the run name's % and spaces
        work.mkdir()
        for name in inputs:
            shutil.copy(report / name, work / name)
        body = "".join(f"\\input{{{name}}}\n" for name in inputs)
        (work / "doc.tex").write_text(
            "\\documentclass{article}\n\\usepackage{booktabs,siunitx}\n\\begin{document}\n" + body + "\\end{document}\n"
        )
        for _ in range(passes):
            proc = subprocess.run(
                ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                cwd=work, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout[-1500:]
        return (work / "doc.log").read_text(errors="replace")

    alone = compile_(["ablation.tex"], passes=1)
    assert "undefined" not in alone
    together = compile_(["ablation.tex", "ablation_stats.tex"], passes=2)
    assert "undefined" not in together and "Rerun" not in together.split("Output written")[0][-400:]
    aux = (tmp_path / "doc2" / "doc.aux").read_text()
    assert "\\newlabel{tab:ablation-v2-50-ablation-stats}" in aux


def test_tables_fit_the_page_in_every_document_class(tmp_path):
    """The default ablation's shape (6 variants with long names, 7 metrics, one reference):
    the main table fits a column, the full and statistics tables the text width, and none
    is taller than the page, in one- and two-column article and elsarticle (5p, review)."""
    from reports import build_report
    from tests.latex_check import assert_fits

    variants = ["lora", "lora+domain_classifier", "lora+domain_lora", "lora+maml", "lora+contrastive", "da_lora"]
    metrics = [
        "eval/cross_domain/acc",
        "eval/cross_domain/tar@far=1e-3",
        "eval/visible/acc",
        "eval/thermal/acc",
        "eval/low_quality/acc",
        "eval/harsh_light/acc",
        "eval/occluded/acc",
    ]
    rows = [
        {"trial_name": f"{v}_{s}", "variant": v, "seed": s, "status": "TERMINATED", "error": "",
         **{m: 0.5 + 0.01 * i - 0.003 * j + 0.002 * s * (j % 3) for j, m in enumerate(metrics)}}
        for i, v in enumerate(variants) for s in range(3)
    ]  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    import json

    names = {"lora+domain_classifier": "+ domain classifier", "da_lora": "DA-LoRA (full)"}
    (run / "run.json").write_text(json.dumps({
        "study": "ablation", "kind": "ablation", "title": "DA-LoRA component ablation (synthfaces, synthetic)",
        "description": "", "trainable": "t", "metric": metrics[0], "mode": "max", "report_metrics": metrics,
        "variants": variants, "reference": "da_lora", "family": "primary", "names": names, "min_effect": 0.005,
    }))  # fmt: skip
    build_report(run)
    report = run / "report"
    assert "resizebox" not in "".join(f.read_text() for f in report.glob("*.tex"))  # never scaled
    assert_fits([report / "ablation.tex", report / "ablation_full.tex", report / "ablation_stats.tex"], tmp_path)


@pytest.mark.parametrize(
    "n_variants,label",
    [(3, "v{i}"), (6, "variant number {i}"), (9, "v{i}"), (12, "lambda_a=0.{i}, lambda_b=0.{i}, lambda_c=1")],
)
def test_statistics_floats_hold_every_comparison_once_within_the_page(n_variants, label):
    """However many rows and however long their labels: every comparison appears exactly
    once, the reference opens every continued part, no float holds more than STATS_ROWS
    lines or STATS_METRICS metrics, and a metric's rows are split between floats only when
    they alone are taller than a float."""
    from reports.ablation import AblationTable, Cell
    from reports.latex import STATS_METRICS, STATS_ROWS, _stats_floats
    from reports.latex_cells import ROW_CHARS, break_lines

    variants = ["ref"] + [f"v{i}" for i in range(1, n_variants)]
    metrics = [f"eval/m{k}/acc" for k in range(7)]
    labels = {v: label.format(i=i) for i, v in enumerate(variants)}
    t = AblationTable("s", metrics, variants, "ref", {m: "max" for m in metrics},
                      {(v, m): Cell(0.5, 0.1, 3) for v in variants for m in metrics}, labels=labels)  # fmt: skip
    floats = _stats_floats(t, metrics)
    for m in metrics:
        parts = [(rows, part) for f in floats for mm, rows, part in f if mm == m]
        shown = [v for rows, _ in parts for v in rows if v != "ref"]
        assert sorted(shown) == sorted(variants[1:]) and all(rows[0] == "ref" for rows, _ in parts)
        whole = 1 + sum(len(break_lines(t.label(v), ROW_CHARS)) for v in variants)
        assert len(parts) == 1 or whole > STATS_ROWS, (m, whole, parts)
    for f in floats:
        lines = sum(1 + sum(len(break_lines(t.label(v), ROW_CHARS)) for v in rows) for _, rows, _ in f)
        assert lines <= STATS_ROWS and len({m for m, _, _ in f}) <= STATS_METRICS


def test_sign_flip_with_three_seeds_can_detect_nothing_and_says_so():
    """With 3 seeds the exact sign-flip test's smallest p is 2/2^3 = 0.25, above 0.05/2: the
    table states no detectable difference and warns; its p is the exact one."""
    t = _table(test="sign_flip")
    better = t.cells[("better", M)]
    assert better.p == pytest.approx(0.25)  # every seed better: 2 of the 8 sign patterns
    assert better.mde is None and t.cells[("same", M)].mde is None
    assert any("cannot give p below 0.25" in w and "no comparison can be significant" in w for w in t.warnings)
    t_test = _table()
    assert t_test.cells[("better", M)].mde is not None
    assert not any("cannot give p below" in w for w in t_test.warnings)


def test_bootstrap_intervals_under_ten_seeds_carry_a_warning():
    from reports.stats import bootstrap_interval

    t = _table(interval="bootstrap")
    c = t.cells[("better", M)]
    d = np.array([0.75 - 0.70, 0.78 - 0.72, 0.76 - 0.71])
    assert (c.ci_low, c.ci_high) == bootstrap_interval((d,), 0.95, paired=True)
    assert (c.sim_low, c.sim_high) == bootstrap_interval((d,), 1 - 0.05 / 2, paired=True)  # 2 in the family
    assert any(w.startswith("bootstrap intervals from 3 seeds: under 10") for w in t.warnings)
    assert not any(w.startswith("bootstrap") for w in _table().warnings)
    assert "bootstrap" in t.interval


def test_probability_of_improvement_follows_the_metric_direction():
    t = _table()
    assert t.cells[("better", M)].p_better == pytest.approx(1.0)  # every better value beats every ref value
    assert t.cells[("better", "eval/x/eer")].p_better == pytest.approx(1.0)  # eer: lower is better
    same = np.mean([1.0 if x > y else 0.5 if x == y else 0.0 for x in [0.70, 0.73, 0.70] for y in [0.70, 0.72, 0.71]])
    assert t.cells[("same", M)].p_better == pytest.approx(same)
    assert t.cells[("ref", M)].p_better is None


def test_a_fold_spread_is_labelled_as_not_a_spread_over_seeds():
    from reports._format import difference_caption

    df = _results()
    df["eval/x/acc_std"] = 0.01
    t = ablation_table(
        df, study="s", variants=["ref", "better"], metrics=[M, "eval/x/acc_std"], reference="ref", primary=M, mode="max"
    )
    assert "10 folds within one trial" in difference_caption(t) and "neither a spread over seeds" in difference_caption(
        t
    )
    assert "folds" not in difference_caption(_table())


def test_a_report_without_its_static_figures_says_so_on_the_console_in_one_line(tmp_path, monkeypatch, capsys):
    """Chromium missing (kaleido raises): the page says so, and so does the console, once,
    however many figure sets failed; a report with its figures says nothing of them."""
    import plotly.io as pio

    from orchestrator.cli import main

    run = _ablation_run(tmp_path / "run")

    def no_browser(*args, **kwargs):
        raise RuntimeError("Chrome not found: kaleido needs a browser")

    monkeypatch.setenv("ORCHESTRATOR_STATIC_FIGURES", "1")
    monkeypatch.setattr(pio, "write_images", no_browser)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    warned = [line for line in out if line.startswith("warning: PDF/PNG figures missing from the report: ")]
    assert len(warned) == 1 and "Chrome not found" in warned[0] and "apt-get install chromium" in warned[0], out
    assert "Chrome not found" in (run / "report" / "index.html").read_text()

    def draws(figs, files, *, scale):
        for f in files:
            f.write_bytes(b"%PDF" if f.suffix == ".pdf" else b"\x89PNG")

    monkeypatch.setattr(pio, "write_images", draws)
    assert main(["report", str(run)]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning")]

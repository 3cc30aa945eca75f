"""``run ablation|search --quick`` and ``run confirm`` end to end on the shared
local Ray: results.csv, curves, the reports, figures, the Optuna storage file, and LaTeX
tables that compile with pdflatex."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from orchestrator.cli import main
from reports.stats import paired_ttest
from tests.browser_check import assert_page_fits, console_and_screenshot
from tests.conftest import static_figures
from tests.latex_check import assert_fits
from tests.stats_reference import holm, paired_p


@pytest.fixture(scope="module")
def quick_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ablation-quick"
    with static_figures():
        assert main(["run", "ablation", "--quick", "--out", str(out), "--set", "epochs=1"]) == 0
    return out


def test_results_table(quick_run):
    df = pd.read_csv(quick_run / "results.csv")
    assert len(df) == 12  # 6 variants x 2 quick seeds
    assert set(df["status"]) == {"TERMINATED"}
    assert list(df["variant"].unique()) == [
        "lora",
        "lora+domain_classifier",
        "lora+domain_lora",
        "lora+maml",
        "lora+contrastive",
        "da_lora",
    ]
    assert sorted(df["seed"].unique()) == [0, 1]
    assert (df["iterations"] == 1).all() and (df["config/epochs"] == 1).all()  # --set reached every trial
    for col in (
        "trial_id",
        "study",
        "wall_s",
        "config/lora_targets",
        "train/loss",
        "eval/cross_domain/acc",
        "eval/visible/acc_std",
        "eval/cross_domain/tar@far=1e-3",
        "config_hash",
        "data_fingerprint",
        "git_commit",
        "torch_version",
        "ray_version",
        "optuna_version",
        "peft_version",
    ):
        assert col in df.columns, col
    assert df["eval/cross_domain/acc"].between(0.5, 1.0).all()
    assert df["trial_id"].is_unique and (df["wall_s"] > 0).all()
    # each component's loss term is computed exactly where its weight is not zero
    has = {
        v: rows[["train/contrastive_loss", "train/domain_loss"]].notna().all().to_dict()
        for v, rows in df.groupby("variant")
    }
    assert has["lora"] == {"train/contrastive_loss": False, "train/domain_loss": False}
    assert has["lora+domain_classifier"] == {"train/contrastive_loss": False, "train/domain_loss": True}
    assert has["lora+contrastive"] == {"train/contrastive_loss": True, "train/domain_loss": False}
    assert has["da_lora"] == {"train/contrastive_loss": True, "train/domain_loss": True}
    assert df[df["variant"] == "da_lora"]["train/loss"].nunique() == 2  # seeds differ
    # each trial's last checkpoint in the run keeps its final evaluation and its best epoch's
    # (reports/rundir/evaluation.py), whose pairs give the accuracy results.csv holds
    from reports.rundir.evaluation import read_evaluation, trial_evaluation
    from tests.trainables_tests.test_evaluation_files import ten_fold_reference

    for _, row in df.iterrows():
        ev = read_evaluation(trial_evaluation(quick_run, row["study"], row["trial_name"]))
        best = read_evaluation(trial_evaluation(quick_run, row["study"], row["trial_name"], best=True))
        assert ev.epoch == best.epoch == 1 and "eval/cross_domain" in ev.pairs
        p = ev.pairs["eval/cross_domain"]
        acc = ten_fold_reference(p["scores"].astype(float), p["labels"], p["folds"])
        assert row["eval/cross_domain/acc"] == pytest.approx(acc, abs=1e-12)


def test_load_run_of_a_quick_run_gives_the_study_as_it_ran_and_writes_to_parquet(quick_run, tmp_path):
    """``load_run`` of a --quick run: ``spec`` is the quick form (the shipped ablation's quick
    seeds and variants, its base with the quick overrides), not the full study; the results
    frame round-trips through Parquet (a mapping config such as ``benchmarks`` as JSON text)."""
    import json

    import orchestrator
    from orchestrator.studies import load_study

    run = orchestrator.load_run(quick_run)
    full, _ = load_study("ablation")
    ran = json.loads((quick_run / "run.json").read_text())
    assert run.spec.seeds == ran["seeds"] == list(full.quick.seeds or full.seeds)
    assert run.spec.seeds != full.seeds  # what this test is about: the shipped quick form differs
    assert list(run.spec.variants) == ran["variants"]
    assert run.spec.base == {**full.base, **full.quick.base}
    run.results.to_parquet(tmp_path / "results.parquet")
    back = pd.read_parquet(tmp_path / "results.parquet")
    assert back.shape == run.results.shape
    assert back["config/benchmarks"].tolist() == [json.dumps({})] * len(back)
    assert back["config/lora_rank"].tolist() == run.results["config/lora_rank"].tolist()


def test_report_matches_results(quick_run):
    df = pd.read_csv(quick_run / "results.csv")
    table = pd.read_csv(quick_run / "report" / "ablation.csv")
    m = "eval/cross_domain/acc"
    row = table[(table["variant"] == "lora") & (table["metric"] == m)].iloc[0]
    full = df[df["variant"] == "lora"].sort_values("seed")[m].to_numpy()
    ref = df[df["variant"] == "da_lora"].sort_values("seed")[m].to_numpy()
    assert row["mean"] == pytest.approx(full.mean())
    assert row["p"] == pytest.approx(paired_ttest(full, ref).p)
    assert row["p_holm"] >= row["p"]
    index = (quick_run / "report" / "index.html").read_text()
    assert "synthetic" in index and "data_samples.png" in index and "ablation.tex" in index
    assert (quick_run / "data_samples.png").is_file()


def test_the_primary_family_is_the_study_metric_and_power_is_stated(quick_run):
    """The default ablation's stars answer its question: Holm over the study metric's 5
    comparisons with the reference, each secondary metric over its own 5; beside each, the
    smallest difference detectable with 80% power at 0.05/5 and the page saying it."""
    from statsmodels.stats.power import TTestPower

    df = pd.read_csv(quick_run / "results.csv")
    table = pd.read_csv(quick_run / "report" / "ablation.csv")
    variants = ["lora", "lora+domain_classifier", "lora+domain_lora", "lora+maml", "lora+contrastive"]
    for m, secondary in (("eval/cross_domain/acc", False), ("eval/thermal/acc", True)):
        ref = df[df["variant"] == "da_lora"].set_index("seed")[m].sort_index()
        diffs = {v: df[df["variant"] == v].set_index("seed")[m].sort_index() - ref for v in variants}
        raw = [paired_p(diffs[v].to_numpy()) for v in variants]
        rows = table[(table["metric"] == m) & ~table["reference"]].set_index("variant").loc[variants]
        assert list(rows["p_holm"]) == pytest.approx(holm(raw))
        assert (rows["family_size"] == 5).all() and (rows["secondary"] == secondary).all()
        for v in variants:
            sd = diffs[v].std(ddof=1)
            mde = rows.at[v, "mde"]
            if sd <= 1e-12:  # every seed moved alike: no t-test, so no MDE is claimed
                assert np.isnan(mde)
                continue
            assert TTestPower().power(effect_size=mde / sd, nobs=2, alpha=0.05 / 5) == pytest.approx(0.8, abs=1e-6)
    index = (quick_run / "report" / "index.html").read_text()
    assert "With 2 seeds this study can detect differences in eval/cross_domain/acc of about" in index
    assert "cross_domain accuracy is the primary family (5 comparisons)" in index


def test_plan_prints_what_a_finished_run_could_detect(quick_run, search_run, tmp_path, capsys):
    assert main(["plan", str(quick_run), "--effect", "0.005"]) == 0
    out = capsys.readouterr().out
    assert "With 2 seeds this study can detect differences in eval/cross_domain/acc" in out
    # rows as the spec names them (report.names)
    assert "seeds for 0.005" in out and "+ MAML init. vs DA-LoRA (full)" in out and "(secondary)" in out
    table = pd.read_csv(quick_run / "report" / "ablation.csv")
    mde = table[(table["variant"] == "lora") & (table["metric"] == "eval/cross_domain/acc")]["mde"].iloc[0]
    line = next(x for x in out.splitlines() if "eval/cross_domain/acc" in x and " LoRA vs DA-LoRA (full)" in x)
    assert f"{mde:.3f}" in line.split()
    assert main(["plan", str(search_run)]) == 0
    assert "plan its confirm run instead" in capsys.readouterr().out
    for bad in (["plan", str(tmp_path / "nowhere")], ["plan", str(quick_run), "--effect", "-1"]):
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1


def test_ablation_figures_interactive_and_static(quick_run):
    from PIL import Image

    report = quick_run / "report"
    # the study's own figures, and those drawn from the pairs and embeddings its trials kept
    for stem in (
        "fig_ablation",
        "fig_ablation_metrics",
        "fig_roc",
        "fig_det",
        "fig_scores",
        "fig_fairness",
        "fig_tsne",
        "fig_routing",  # the variants with domain LoRA route their images
        "fig_cross_domain",
    ):
        assert "plotly.min.js" in (report / f"{stem}.html").read_text()
        assert (report / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
        png = np.asarray(Image.open(report / f"{stem}.png").convert("L"), dtype=float)
        assert png.std() > 10  # drawn, not blank
    index = (report / "index.html").read_text()
    assert index.index("class=headline") < index.index("fig_ablation.png") < index.index("<h2>Ablation</h2>")
    assert index.index("<h2>Ablation</h2>") < index.index("data_samples.png")  # context after the answer


def test_report_regenerates_from_results_alone(quick_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(quick_run, copy, ignore=shutil.ignore_patterns("tune", "report"))
    assert main(["report", str(copy)]) == 0
    assert (copy / "report" / "ablation.csv").read_text() == (quick_run / "report" / "ablation.csv").read_text()


def test_latex_tables_compile_and_fit(quick_run, tmp_path):
    report = quick_run / "report"
    assert_fits([report / "ablation.tex", report / "ablation_full.tex", report / "ablation_stats.tex"], tmp_path)


def test_existing_run_directory_is_not_overwritten(quick_run, capsys):
    before = (quick_run / "results.csv").read_text()
    assert main(["run", "ablation", "--quick", "--out", str(quick_run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (quick_run / "results.csv").read_text() == before


def test_every_report_page_fits_the_window_and_has_no_console_errors(quick_run, search_run, confirm_run, tmp_path):
    """The ablation, search and confirm pages opened 1280 px wide: no element reaches past
    the window (wide tables scroll inside their own box) and nothing goes to the console
    (no script error, no missing image). The sensitivity page is checked in test_sensitivity_study.py."""
    for run in (quick_run, search_run, confirm_run):
        assert_page_fits(run / "report" / "index.html", tmp_path)


@pytest.fixture(scope="module")
def search_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "search-quick"
    # one trial at a time: ASHA's decisions then depend only on the (seeded) results, not on
    # which of two concurrent trials reports first, so the run is the same every time
    with static_figures():
        assert main(["run", "search", "--quick", "--out", str(out), "--max-concurrent", "1"]) == 0
    return out


def test_search_quick_run(search_run, tmp_path):
    df = pd.read_csv(search_run / "results.csv")
    assert len(df) == 6 and set(df["status"]) <= {"TERMINATED", "STOPPED"}
    first = df[df["trial"] == "trial000"].iloc[0]  # the base config is evaluated first
    assert (first["config/lr"], first["config/lora_rank"], first["config/maml_inner_steps"]) == (1e-3, 8, 3)
    from orchestrator.plan import compile_search
    from orchestrator.studies import load_study

    base = compile_search(load_study("search")[0], quick=True).base_config
    assert json.loads((search_run / "configs.json").read_text())[first["trial_name"]] == base
    stopped, finished = df[df["status"] == "STOPPED"], df[df["status"] == "TERMINATED"]
    # ASHA by promotion, one rung (iteration 1), eta 2: at least ceil(6/2) = 3 go on to the
    # end (more when a later arrival outranks one promoted earlier), the best at the rung
    # among them; the others stop there
    assert len(finished) >= 3 and len(stopped) >= 1 and len(finished) + len(stopped) == 6
    assert (stopped["rung"] == 1).all() and (stopped["iterations"] == 1).all()
    assert finished["rung"].isna().all() and (finished["iterations"] == 2).all()
    from reports.rundir.files import read_curves
    from reports.search_analysis import metric_curves

    # ASHA promoted on the validation identities: the best validation value at the rung went on
    curves = metric_curves(read_curves(search_run), "val/cross_domain/acc")
    at_rung = curves[curves["iteration"] == 1].set_index("trial_name")["value"]
    assert at_rung.idxmax() in set(finished["trial_name"])
    # MAML's learning rate is searched only where MAML is on; elsewhere it keeps the base value
    assert (df.loc[df["config/maml_inner_steps"] == 0, "config/maml_inner_lr"] == 0.01).all()
    top = pd.read_csv(search_run / "report" / "top_k.csv")
    m, test = "val/cross_domain/acc", "eval/cross_domain/acc"
    finished = df[df["status"] == "TERMINATED"].sort_values(m, ascending=False)
    assert list(top["trial"]) == list(finished["trial"])[:5]  # ranked on validation; stopped trials never
    assert list(top[m]) == pytest.approx(list(finished[m])[:5])
    assert list(top[test]) == pytest.approx(list(finished[test])[:5])  # the test metric of what was chosen
    assert "Chosen on: val/cross_domain/acc" in (search_run / "report" / "top_k.md").read_text()
    assert_fits([search_run / "report" / "top_k.tex"], tmp_path)
    page = (search_run / "report" / "index.html").read_text()
    assert "Trials stopped early or failed" in page
    # the early-stopping check: ASHA's one rung (iteration 1) against the end, over the trials
    # that ran to completion (rho only from 4 of them)
    rungs = pd.read_csv(search_run / "report" / "rung_correlation.csv")
    assert list(rungs["rung"]) == [1] and rungs.at[0, "trials"] == len(finished)
    assert "Early stopping check" in page and rungs["rho"].isna().all() == (len(finished) < 4)


def test_lora_rank_keeps_its_type_from_the_spec_to_the_latex_table(search_run):
    """One key walked end to end: parsed once (the spec's space, when the spec is validated),
    validated once per trial (its config), an integer in configs.json, an Int64 column
    wherever the run is read (reports and the API alike), an integer in the LaTeX table."""
    from orchestrator.plan import compile_search
    from orchestrator.studies import load_study
    from reports.rundir.files import read_run

    spec = load_study("search")[0]
    (rank,) = [p for p in spec.space.params if p.name == "lora_rank"]
    assert rank.values == (4, 8, 16, 32) and compile_search(spec, quick=True).params[1] is rank  # not parsed again
    configs = json.loads((search_run / "configs.json").read_text())
    assert {type(c["lora_rank"]) for c in configs.values()} == {int}
    df, _ = read_run(search_run)
    assert str(df["config/lora_rank"].dtype) == "Int64"
    # the table's column blocks (each starts with rank and trial): the one with lora_rank
    blocks = (search_run / "report" / "top_k.tex").read_text().split(r"\begin{tabular}")[1:]
    lines = next(b for b in blocks if "lora\\_rank" in b.split(r"\midrule")[0]).splitlines()
    header = next(ln for ln in lines if ln.startswith("{rank} & trial"))  # (an S column's head in braces)
    column = [c.strip().strip("{}") for c in header.rstrip("\\ ").split("&")].index("lora\\_rank")
    rows = [ln for ln in lines if ln.split("&")[0].strip().isdigit()]
    cells = [ln.rstrip("\\ ").split("&")[column].strip() for ln in rows]
    top = df[df["status"] == "TERMINATED"].sort_values("val/cross_domain/acc", ascending=False).head(len(rows))
    assert cells == [str(int(v)) for v in top["config/lora_rank"]] and all(c.isdigit() for c in cells)


def test_the_sampler_is_told_which_trials_were_stopped(search_run):
    """Tune's searcher state after the search: the trials ASHA stopped are PRUNED in the
    sampler's own Optuna study (with their per-epoch values), the finished ones COMPLETE
    with their final value; Tune's OptunaSearch alone records every one as COMPLETE."""
    import optuna

    from orchestrator.searcher import StoppedAwareOptunaSearch

    searcher = StoppedAwareOptunaSearch()
    searcher.restore_from_dir(str(search_run / "tune"))
    df = pd.read_csv(search_run / "results.csv")
    trials = searcher._ot_study.trials
    assert len(trials) == len(df)
    m = "val/cross_domain/acc"
    S = optuna.trial.TrialState
    # the sampler's trials in the order it proposed them, as results.csv lists them
    for t, (_, r) in zip(trials, df.iterrows()):
        assert t.state == {"TERMINATED": S.COMPLETE, "STOPPED": S.PRUNED}[r["status"]], r["trial"]
        assert t.value == pytest.approx(r[m])  # a pruned trial: its last intermediate value
        assert max(t.intermediate_values) == r["iterations"]
    assert {t.state for t in trials} == {S.COMPLETE, S.PRUNED}


def test_search_curves_figures_and_optuna_storage(search_run, tmp_path):
    import optuna
    from PIL import Image

    from reports.rundir.files import read_curves
    from reports.search_analysis import metric_curves

    m = "val/cross_domain/acc"  # the search's metric
    df = pd.read_csv(search_run / "results.csv")
    curves = metric_curves(read_curves(search_run), m)
    for _, r in df.iterrows():  # every trial's metric at every iteration it ran, the last one its result
        mine = curves[curves["trial_name"] == r["trial_name"]].sort_values("iteration")
        assert list(mine["iteration"]) == list(range(1, r["iterations"] + 1))
        assert mine["value"].iloc[-1] == pytest.approx(r[m])
    report = search_run / "report"
    for stem in ("best_by_trial", "best_by_compute", "learning_curves", "parallel"):
        png = np.asarray(Image.open(report / f"fig_search_{stem}.png").convert("L"), dtype=float)
        assert png.std() > 10 and (report / f"fig_search_{stem}.pdf").read_bytes()[:4] == b"%PDF"
    # the Optuna study optuna-dashboard opens: one trial per row, in the row's state
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{report / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert states == [{"TERMINATED": "COMPLETE", "STOPPED": "PRUNED"}[s] for s in df["status"]]
    finished = df[df["status"] == "TERMINATED"]
    assert study.best_value == pytest.approx(finished[m].max())
    assert study.best_trial.user_attrs["trial"] == finished.loc[finished[m].idxmax(), "trial"]
    for t, (_, r) in zip(study.trials, df.iterrows()):
        assert sorted(t.intermediate_values) == list(range(1, r["iterations"] + 1))
        assert t.params["lr"] == pytest.approx(r["config/lr"]) and ("maml_inner_lr" in t.params) == (
            r["config/maml_inner_steps"] > 0
        )
    if len(finished) >= 2:  # importance, from optuna.importance on the completed trials
        imp = pd.read_csv(report / "importance.csv")
        assert set(imp["key"]) <= {
            "lr",
            "lora_rank",
            "lambda_contrastive",
            "lambda_domain",
            "maml_inner_steps",
            "maml_inner_lr",
        } and imp["importance"].sum() == pytest.approx(1, abs=1e-3)
    console, shot = console_and_screenshot(report / "index.html", tmp_path)
    assert console == [] and shot.std() > 10


def test_search_report_rebuilds_without_ray(search_run, tmp_path):
    """`report DIR` on a copy without Tune's files, in a process where Ray cannot be imported;
    with ORCHESTRATOR_STATIC_FIGURES=0 the figures are interactive only, and the page says so."""
    import sys

    import optuna

    copy = tmp_path / "copy"
    shutil.copytree(search_run, copy, ignore=shutil.ignore_patterns("tune", "report"))
    code = (
        "import sys; sys.modules['ray'] = None; from orchestrator.cli import main; "
        f"sys.exit(main(['report', {str(copy)!r}]))"
    )
    env = {**os.environ, "ORCHESTRATOR_STATIC_FIGURES": "0"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (copy / "report" / "top_k.csv").read_text() == (search_run / "report" / "top_k.csv").read_text()
    # the same table, its LaTeX label too: the name the run directory had when the run started
    # (recorded in run.json), so that a paper's \ref survives a copy or a rename
    tex = (copy / "report" / "top_k.tex").read_text()
    original = (search_run / "report" / "top_k.tex").read_text()
    assert tex == original and r"\label{tab:" + search_run.name.replace("_", "-") + "-top-k}" in tex
    figures = sorted(p.name for p in (copy / "report").glob("fig_*"))
    assert figures and all(f.endswith(".html") for f in figures)  # the full run has their PDF and PNG
    assert (search_run / "report" / figures[0]).with_suffix(".pdf").is_file()
    assert (
        "static export (PDF, PNG) skipped: ORCHESTRATOR_STATIC_FIGURES=0"
        in (copy / "report" / "index.html").read_text()
    )
    trials = [
        optuna.load_study(study_name="search", storage=f"sqlite:///{d / 'report' / 'optuna.db'}").trials
        for d in (search_run, copy)
    ]
    assert [(t.state, t.value, t.params) for t in trials[0]] == [(t.state, t.value, t.params) for t in trials[1]]


@pytest.fixture(scope="module")
def confirm_run(search_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "confirm-quick"
    assert main(["run", "confirm", "--from", str(search_run), "--quick", "--out", str(out)]) == 0
    return out


def test_confirm_reruns_the_best_configs_with_fresh_seeds(search_run, confirm_run, tmp_path):

    from orchestrator.studies import load_study

    m, chosen = "eval/cross_domain/acc", "val/cross_domain/acc"  # tested on test identities, chosen on validation
    search = pd.read_csv(search_run / "results.csv")
    search_configs = json.loads((search_run / "configs.json").read_text())
    best = search[(search["status"] == "TERMINATED") & (search["trial"] != "trial000")].sort_values(
        chosen, ascending=False
    )
    expected = list(best["trial"])[:2]  # quick: confirm.top_k 2
    df = pd.read_csv(confirm_run / "results.csv")
    meta = json.loads((confirm_run / "run.json").read_text())
    assert meta["kind"] == "confirm" and [c["trial"] for c in meta["candidates"]] == expected
    assert meta["metric"] == m and meta["search_metric"] == chosen
    variants = ["base"] + [f"top{i + 1}" for i in range(len(expected))]
    assert list(dict.fromkeys(df["variant"])) == variants
    assert set(df["status"]) == {"TERMINATED"} and sorted(set(df["seed"])) == [1, 2]  # fresh seeds, not 0
    configs = json.loads((confirm_run / "configs.json").read_text())
    for variant, trial in zip(variants, ["trial000", *expected]):  # each reran its search trial's config
        for _, r in df[df["variant"] == variant].iterrows():
            mine, theirs = configs[r["trial_name"]], search_configs[f"{trial}_seed0"]
            assert {**mine, "seed": 0} == theirs and mine["seed"] == r["seed"]
    # each candidate against the base: paired t-test over seeds, Holm over the candidates
    table = pd.read_csv(confirm_run / "report" / "confirm.csv")
    base = df[df["variant"] == "base"].set_index("seed")[m]
    raw = [
        stats.ttest_rel(df[df["variant"] == v].set_index("seed")[m].loc[base.index], base).pvalue for v in variants[1:]
    ]
    got = table[(table["metric"] == m) & ~table["reference"]]
    assert list(got["p"]) == pytest.approx(raw) and list(got["p_holm"]) == pytest.approx(holm(raw))
    cand = pd.read_csv(confirm_run / "report" / "confirm_candidates.csv")
    assert list(cand[f"search {chosen}"][1:]) == pytest.approx(list(best[chosen])[: len(expected)])
    assert cand.columns.tolist()[3:5] == [f"confirmed {chosen}", f"confirmed {m}"]  # chosen-on and tested, side by side
    top1 = df[df["variant"] == "top1"][chosen]
    assert cand[f"confirmed {chosen}"][1].startswith(f"{top1.mean():.4f} ± {top1.std(ddof=1):.4f} (n=2)")
    assert set(table["metric"]) == {m}  # the test family: the candidates on the test metric only
    assert_fits(
        [confirm_run / "report" / f for f in ("confirm.tex", "confirm_stats.tex", "confirm_candidates.tex")], tmp_path
    )
    # the figure of the winner's curse: each candidate's search value beside its reruns'
    page = (confirm_run / "report" / "index.html").read_text()
    assert (confirm_run / "report" / "fig_confirm_search.html").is_file() and "fig_confirm_search" in page
    assert (confirm_run / "report" / "fig_confirm.html").is_file()
    spec, _ = load_study(str(confirm_run / "spec.yaml"))  # the confirm run, as an ablation anyone can rerun
    assert spec.kind == "ablation" and list(spec.variants) == variants and spec.seeds == [1, 2]


def test_plan_of_a_confirm_run_reads_its_candidates_as_the_report_does(confirm_run, capsys):
    """``plan`` on a confirm run: each candidate against the base, named, in the same family
    and with the same MDE as the report's confirm table."""
    assert main(["plan", str(confirm_run), "--effect", "0.01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    meta = json.loads((confirm_run / "run.json").read_text())
    m, k = meta["metric"], len(meta["candidates"])
    assert lines[0].startswith(f"Confirm: the top {k} config(s) of the search (study {meta['search_study']})")
    assert "seeds for 0.01" in lines[2]
    table = pd.read_csv(confirm_run / "report" / "confirm.csv")
    base = table.loc[table["reference"], "shown_as"].iloc[0]
    for c in meta["candidates"]:
        row = table[(table["metric"] == m) & (table["candidate"] == f"{c['variant']} ({c['trial']})")].iloc[0]
        line = next(x for x in lines[3:] if x.split()[0] == m and f" {row['shown_as']} vs {base} " in x)
        words = line.split()
        assert words[-3] == str(k)  # Holm over the candidates (columns: ..., family m, MDE, seeds)
        assert words[-2] == ("n/a" if pd.isna(row["mde"]) else f"{row['mde']:.3f}")


def test_confirm_refuses_what_is_not_a_finished_search(quick_run, search_run, tmp_path, capsys):
    interrupted = tmp_path / "interrupted"
    shutil.copytree(search_run, interrupted, ignore=shutil.ignore_patterns("tune", "report"))
    df = pd.read_csv(interrupted / "results.csv")
    df.loc[3, "status"] = "INTERRUPTED"
    from reports.rundir.files import write_checked  # as the tool would have written them

    write_checked(interrupted, "results.csv", df.to_csv(index=False))
    only_base = tmp_path / "only-base"
    shutil.copytree(interrupted, only_base)
    df.loc[1:, "status"] = "STOPPED"
    write_checked(only_base, "results.csv", df.to_csv(index=False))
    (tmp_path / "empty").mkdir()
    cases = {
        tmp_path / "missing": "not a directory",
        tmp_path / "empty": "not a finished search run",
        quick_run: "a run of kind ablation, not a search",
        interrupted: "the search did not finish",
        only_base: "no trial other than the base config ran to completion",
    }
    for from_dir, message in cases.items():
        out = tmp_path / "out"
        assert main(["run", "confirm", "--from", str(from_dir), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists()
    assert main(["run", "confirm", "--from", str(search_run), "--seeds", "3", "--out", str(tmp_path / "o")]) == 2
    assert "at least 2 distinct" in capsys.readouterr().err
    assert main(["run", "confirm", "--from", str(search_run), "--top-k", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--top-k must be >= 1, got 0" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["run", "ablation", "--from", str(search_run)]) == 2
    assert "--from belongs to `run confirm`" in capsys.readouterr().err

"""Figure contents. Each figure is computed as a small data object first (``*_info``, as
Optuna's ``_get_slice_plot_info``) and drawn from it: the tests check the numbers there,
against their definitions, and that the drawing shows exactly those numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.plots import _log_axis, mean_ci, sensitivity_figure, sensitivity_info
from reports.rundir.info import AxisPoint, RunInfo
from reports.search_plots import parallel_coordinates_figure, parallel_info

M = "eval/x/acc"


def test_mean_ci_is_the_t_interval():
    v = np.array([0.70, 0.72, 0.75, 0.71])
    m, lo, hi, n = mean_ci(v)
    ref = stats.t.interval(0.95, 3, loc=v.mean(), scale=stats.sem(v))
    assert (m, lo, hi, n) == (pytest.approx(v.mean()), pytest.approx(ref[0]), pytest.approx(ref[1]), 4)
    assert np.isnan(mean_ci(np.array([0.7]))[1]) and mean_ci(np.array([]))[3] == 0


def test_log_axis_only_for_rank_like_values():
    assert _log_axis([2, 4, 8, 16, 32]) and _log_axis([0.01, 0.1, 0.5])
    assert not _log_axis([1, 3, 5]) and not _log_axis([0, 10, 100]) and not _log_axis([None, 10])


def _df(values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"point": p, "seed": s, "status": "TERMINATED", M: v}
            for p, vals in values.items()
            for s, v in enumerate(vals)
        ]
    )


def test_line_figure_plots_means_and_band():
    df = _df({"base": [0.70, 0.72], "r=2": [0.60, 0.64], "r=32": [0.80, 0.81]})
    points = [
        {"point": "r=2", "values": {"r": 2}, "base": False},
        {"point": "base", "values": {"r": 8}, "base": True},
        {"point": "r=32", "values": {"r": 32}, "base": False},
    ]
    info = sensitivity_info(df, "r", [AxisPoint(label=p["point"], **p) for p in points], M)
    assert [(p.point, p.base, p.n) for p in info.points] == [("r=2", False, 2), ("base", True, 2), ("r=32", False, 2)]
    for p, v in zip(info.points, ([0.60, 0.64], [0.70, 0.72], [0.80, 0.81])):
        ref = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
        assert (p.mean, p.lo, p.hi) == (pytest.approx(np.mean(v)), pytest.approx(ref[0]), pytest.approx(ref[1]))
    assert info.x == [2, 8, 32] and info.log_axis and not info.categorical and info.z is None
    fig = sensitivity_figure(info)
    band, mean, base = fig.data
    assert list(mean.x) == [2, 8, 32] and list(mean.y) == pytest.approx([0.62, 0.71, 0.805])
    lo = [mean_ci(np.array(v))[1] for v in ([0.60, 0.64], [0.70, 0.72], [0.80, 0.81])]
    assert list(band.y)[3:] == pytest.approx(lo[::-1])
    assert list(base.x) == [8] and fig.layout.xaxis.type == "log"


def test_grid_figure_is_a_heatmap_of_means():
    df = _df({"base": [0.7, 0.7], "a=1,b=2": [0.6, 0.8], "a=2,b=1": [0.5, 0.5], "a=2,b=2": [0.9, 0.7]})
    points = [
        {"point": "base", "values": {"a": 1, "b": 1}, "base": True},
        {"point": "a=1,b=2", "values": {"a": 1, "b": 2}, "base": False},
        {"point": "a=2,b=1", "values": {"a": 2, "b": 1}, "base": False},
        {"point": "a=2,b=2", "values": {"a": 2, "b": 2}, "base": False},
    ]
    info = sensitivity_info(df, "ab", [AxisPoint(label=p["point"], **p) for p in points], M)
    assert info.ys == [1, 2] and info.xs == [1, 2] and info.keys == ["a", "b"]
    heat = sensitivity_figure(info).data[0]
    assert np.allclose(np.asarray(heat.z), [[0.7, 0.7], [0.5, 0.8]])  # rows a, columns b
    assert heat.text[0][0] == "0.700*"


def test_a_categorical_axis_keeps_its_order_and_no_log():
    df = _df({"base": [0.7, 0.7], "h=supcon": [0.6, 0.8]})
    points = [
        {"point": "base", "values": {"h": "linear"}, "base": True},
        {"point": "h=supcon", "values": {"h": "supcon"}, "base": False},
    ]
    info = sensitivity_info(df, "h", [AxisPoint(label=p["point"], **p) for p in points], M)
    assert info.x == ["linear", "supcon"] and info.categorical and not info.log_axis
    assert sensitivity_figure(info).layout.xaxis.type == "category"


def test_parallel_info_puts_log_keys_on_log10_and_choices_on_their_index():
    from reports.rundir.space import parse_space

    params = parse_space(
        {"lr": {"loguniform": [1e-4, 1e-2]}, "rank": {"choice": [4, 8, 16]}, "loss": {"choice": ["ce", "supcon"]}}
    )
    df = pd.DataFrame(
        {
            "status": ["TERMINATED", "TERMINATED", "STOPPED"],
            M: [0.7, 0.9, 0.95],
            "config/lr": [1e-3, 1e-2, 1e-4],
            "config/rank": pd.array([8, 16, 4]),
            "config/loss": ["supcon", "ce", "ce"],
        }
    )
    info = parallel_info(df, params, M)
    lr, rank, loss, metric = info.dims
    assert (
        lr["label"] == "lr (log scale)"
        and list(lr["values"]) == pytest.approx([-3.0, -2.0])
        and lr["range"] == [-4, -2]
    )
    # the log axis is labelled with the values (at their log10 positions), not with exponents
    assert lr["ticktext"] == ["0.0001", "0.001", "0.01"] and lr["tickvals"] == pytest.approx([-4.0, -3.0, -2.0])
    assert list(rank["values"]) == [8.0, 16.0] and rank["range"] == [4, 16]  # an Int64 column, as read_run types it
    assert loss["values"] == [1, 0] and loss["ticktext"] == ["ce", "supcon"]
    assert list(metric["values"]) == [0.7, 0.9] and info.n == 2  # the stopped trial is not drawn
    assert (info.cmin, info.cmax) == (0.7, 0.9)
    drawn = parallel_coordinates_figure(info).data[0]
    assert [d.label for d in drawn.dimensions][:3] == ["lr (log scale)", "rank", "loss"] and len(drawn.dimensions) == 4
    assert list(drawn.dimensions[0].ticktext) == lr["ticktext"]


@pytest.mark.parametrize(
    "low, high, expected",
    [
        (1e-4, 1e-2, [1e-4, 1e-3, 1e-2]),  # powers of ten
        (1e-4, 3e-3, [1e-4, 2e-4, 5e-4, 1e-3, 2e-3]),  # fewer than 3 powers: 2x and 5x too
        (0.3, 0.4, [0.3, 0.4]),  # not even those: the ends
    ],
)
def test_log_ticks(low, high, expected):
    from reports.search_plots import log_ticks

    assert log_ticks(low, high) == pytest.approx(expected)


def test_search_figures_put_every_trial_where_it_ended_and_count_in_whole_numbers():
    """Best so far by compute: one point per trial at the compute spent when it ended,
    stopped trials grey; the learning curves name each stopped trial and where it stopped;
    iteration and trial axes tick at whole numbers."""
    from reports import search_analysis as sa
    from reports.search_plots import best_so_far_figure, learning_curves_figure

    df = pd.DataFrame(
        [
            {"trial_name": "t0", "status": "TERMINATED", "iterations": 3, M: 0.80},
            {"trial_name": "t1", "status": "STOPPED", "iterations": 1, M: 0.60},
            {"trial_name": "t2", "status": "TERMINATED", "iterations": 3, M: 0.85},
        ]
    )
    rows, t = [], 0.0
    for name, its in (("t0", 3), ("t1", 1), ("t2", 3)):
        final = float(df.set_index("trial_name").at[name, M])
        for it in range(1, its + 1):
            t += 1
            rows.append(
                {
                    "trial_name": name,
                    "iteration": it,
                    "time_total_s": it,
                    "timestamp": t,
                    "key": M,
                    "value": final - 0.01 * (its - it),
                }
            )
    curves = pd.DataFrame(rows)
    by = sa.best_so_far_by_compute(df, curves, M, "max")
    fig = best_so_far_figure(by, M, x="iterations")
    done, stopped = fig.data[0], fig.data[1]
    assert list(done.x) == [3, 7] and list(done.y) == [0.80, 0.85]  # t0 ended after 3 iterations, t2 after 7
    assert list(stopped.x) == [4] and list(stopped.y) == [0.60] and "170" in stopped.marker.color
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"
    lc = learning_curves_figure(sa.metric_curves(curves, M), df, M, [1])
    assert [d.name for d in lc.data if d.showlegend is not False] == ["t0", "t1 (stopped at 1)", "t2"]
    assert lc.layout.xaxis.dtick == 1


def test_ablation_info_and_figure_show_the_seeds_means_and_the_familys_stars():
    """Per variant: its seeds' values of the study metric, their mean and 95% t interval
    (scipy's), and the star of the paired t-test against the reference, Holm over the study
    metric's comparisons; the heatmap holds the other metrics' means; the drawing shows
    exactly those numbers."""
    from reports.ablation import ablation_table
    from reports.ablation_plots import ablation_figure, ablation_heatmap, ablation_info

    values = {"ref": [0.70, 0.71, 0.72], "up": [0.80, 0.815, 0.82], "same": [0.70, 0.72, 0.71]}
    rows = [
        {
            "trial_name": f"{v}_{s}",
            "variant": v,
            "seed": s,
            "status": "TERMINATED",
            "error": "",
            M: x,
            "eval/y/acc": x / 2,
        }
        for v, xs in values.items()
        for s, x in enumerate(xs)
    ] + [{"trial_name": "up_9", "variant": "up", "seed": 9, "status": "ERROR", "error": "boom", M: 0.1}]
    df = pd.DataFrame(rows)
    table = ablation_table(
        df, study="s", variants=list(values), metrics=[M, "eval/y/acc"], reference="ref", primary=M, mode="max",
        display={"up": "Up (new)"},
    )  # fmt: skip
    info = ablation_info(table, df)
    raw = {v: stats.ttest_rel(values[v], values["ref"]).pvalue for v in ("up", "same")}
    lo, hi = sorted(raw.values())
    holm = {v: (2 * lo if raw[v] == lo else max(2 * lo, hi)) for v in raw}
    stars = {v: "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "" for v, p in holm.items()}
    for r in info.rows:
        assert r.values == pytest.approx(values[r.variant]) and r.seeds == [0, 1, 2]  # not the failed trial
        ci = stats.t.interval(0.95, 2, loc=np.mean(values[r.variant]), scale=stats.sem(values[r.variant]))
        assert (r.mean, r.lo, r.hi) == pytest.approx((np.mean(values[r.variant]), *ci))
        assert r.star == ("" if r.variant == "ref" else stars[r.variant]) and r.reference == (r.variant == "ref")
    assert [r.shown for r in info.rows] == ["ref", "Up (new)", "same"]
    assert info.columns == ["y acc"] and info.z[:, 0] == pytest.approx([np.mean(values[v]) / 2 for v in values])
    fig = ablation_figure(info, title="t")
    seeds, means = fig.data[0], fig.data[1]
    assert list(seeds.y) == pytest.approx([x for v in values for x in values[v]])
    assert list(means.y) == pytest.approx([np.mean(values[v]) for v in values])
    assert list(means.error_y.array) == pytest.approx([r.hi - r.mean for r in info.rows])
    drawn = {a.x: a.text for a in fig.layout.annotations if a.text in ("*", "**", "***")}
    assert drawn == {"Up (new)": stars["up"]} if stars["up"] else drawn == {}
    heat = ablation_heatmap(info, title="h")
    assert np.asarray(heat.data[0].z) == pytest.approx(info.z)
    # the reference's line is named in the legend, not by a label drawn over the points
    assert not [a.text for a in fig.layout.annotations if "reference" in (a.text or "")]
    assert [t.name for t in fig.data if t.mode == "lines"] == ["ref (reference): mean"]


def test_lines_on_a_written_figure_are_drawn(tmp_path):
    """plotly's simple_white template draws shapes 0 px wide at 30% opacity: a written
    figure's lines (here a reference mean, as the ablation figure draws it) are given a width
    and full opacity, or they would not appear in the HTML, PDF or PNG."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from reports.plots import Figures, write_figure

    assert pio.templates["simple_white"].layout.shapedefaults.line.width == 0  # why this is needed
    fig = go.Figure(go.Scatter(x=["a", "b"], y=[1, 2]))
    fig.update_layout(template="simple_white", title="t")
    fig.add_hline(y=1.5, line_dash="dot", line_color="black")
    fig.add_vline(x=0.5, line={"dash": "dot", "color": "grey", "width": 1})
    write_figure(fig, tmp_path, "fig_t", Figures(), title="t")
    assert [(s.line.width, s.opacity) for s in fig.layout.shapes] == [(1.5, 1), (1, 1)]


def test_a_long_title_is_wrapped_to_the_figures_width_and_given_room(tmp_path):
    """Every line of a written figure's title fits its width (at TITLE_PX_PER_CHAR, less 40
    px of padding), no word is lost, and the top margin and the height grow by one line's
    height per extra line, so that the plotting area keeps its size."""
    import plotly.graph_objects as go

    from reports.plots import FIGURE_HEIGHT, FIGURE_WIDTH, TITLE_LINE_PX, TITLE_PX_PER_CHAR, Figures, write_figure

    title = "DA-LoRA component ablation (synthfaces, synthetic): the other metrics (mean over seeds; stars: test)"
    fig = go.Figure(go.Scatter(x=[1, 2], y=[1, 2]))
    fig.update_layout(title=title, width=FIGURE_WIDTH, height=FIGURE_HEIGHT, margin={"t": 60})
    write_figure(fig, tmp_path, "fig_t", Figures(), title=title)
    lines = fig.layout.title.text.split("<br>")
    assert len(lines) >= 2 and " ".join(lines) == title
    assert all(len(line) * TITLE_PX_PER_CHAR <= FIGURE_WIDTH - 40 for line in lines)
    assert fig.layout.margin.t == 60 + TITLE_LINE_PX * (len(lines) - 1)
    assert fig.layout.height == FIGURE_HEIGHT + TITLE_LINE_PX * (len(lines) - 1)


def test_confirm_info_puts_each_candidates_search_value_beside_its_reruns():
    """The winner's curse made visible: per candidate, the one-seed value the search ranked
    it on and the mean (95% t interval) of the same validation metric over the fresh seeds."""
    from reports.ablation import ablation_table
    from reports.kinds.confirm import confirm_figure, confirm_info

    V = "val/x/acc"
    reruns = {"base": [0.70, 0.71, 0.69], "c1": [0.74, 0.72, 0.73], "c2": [0.71, 0.70, 0.72]}
    df = pd.DataFrame(
        [
            {"trial_name": f"{v}_{s}", "variant": v, "seed": s, "status": "TERMINATED", "error": "", V: x, M: x - 0.05}
            for v, xs in reruns.items()
            for s, x in zip((7, 8, 9), xs)
        ]
        + [{"trial_name": "c2_10", "variant": "c2", "seed": 10, "status": "ERROR", "error": "x", V: 0.99, M: 0.99}]
    )
    meta = RunInfo.model_validate(
        {
            "study": "s",
            "kind": "confirm",
            "metric": M,
            "search_metric": V,
            "mode": "max",
            "base_search_value": None,  # the search did not run the base config
            "candidates": [
                {"variant": "c1", "trial": "trial003", "search_value": 0.80},
                {"variant": "c2", "trial": "trial001", "search_value": 0.77},
            ],
        }
    )
    table = ablation_table(df, study="s", variants=list(reruns), metrics=[M], reference="base", primary=M, mode="max")
    info = confirm_info(table, meta, df)
    by = {p.candidate: p for p in info.points}
    assert info.metric == V and by["c1"].search == 0.80 and np.isnan(by["base"].search) and by["base"].base
    for v, xs in reruns.items():
        ref = stats.t.interval(0.95, 2, loc=np.mean(xs), scale=stats.sem(xs))
        assert (by[v].mean, by[v].lo, by[v].hi, by[v].n) == (
            pytest.approx(np.mean(xs)),
            pytest.approx(ref[0]),
            pytest.approx(ref[1]),
            3,
        )
    assert info.shrinkage == pytest.approx(np.mean([np.mean(reruns["c1"]) - 0.80, np.mean(reruns["c2"]) - 0.77]))
    fig = confirm_figure(info, title="t")
    cands = fig.data[0]
    assert list(cands.x) == [0.80, 0.77] and list(cands.y) == pytest.approx([by["c1"].mean, by["c2"].mean])
    diagonal = fig.data[-1]
    assert diagonal.name == "confirmed = search" and list(diagonal.x) == list(diagonal.y)
    assert fig.layout.shapes[0].y0 == pytest.approx(by["base"].mean)  # the base: a line at its confirmed mean


def _pending(tmp_path, n: int):
    import plotly.graph_objects as go

    from reports.plots import Figures

    figures = Figures()
    figures.pending = [(go.Figure(go.Scatter(x=[0, 1], y=[i, 1])), tmp_path / f"fig{i}") for i in range(n)]
    return figures


def test_a_static_file_kaleido_left_unwritten_is_rendered_again_then_named(tmp_path, monkeypatch):
    """plotly drops kaleido's per-file rendering errors: a file can be missing with no
    exception. The export renders what is missing once more, and names what is still
    missing instead of leaving the paper's figure to be found absent."""
    import plotly.io as pio

    from reports.plots import export_static

    calls: list[list[str]] = []

    def flaky(figs, files, *, scale):  # renders every file but the first of each call's list
        assert len(figs) == len(files) == len(scale) and scale == [1 if f.suffix == ".pdf" else 2 for f in files]
        calls.append([f.name for f in files])
        for f in files[1:]:
            f.write_bytes(b"%PDF" if f.suffix == ".pdf" else b"\x89PNG")

    monkeypatch.setenv("ORCHESTRATOR_STATIC_FIGURES", "1")
    monkeypatch.setattr(pio, "write_images", flaky)
    figures = export_static(_pending(tmp_path, 2))
    # every file asked for; then only the one left out; that one is left out again
    assert calls == [["fig0.pdf", "fig0.png", "fig1.pdf", "fig1.png"], ["fig0.pdf"]]
    assert figures.static_error.startswith("static export (PDF, PNG) failed for 1 of 4 files (e.g. fig0.pdf)")

    first = []

    def once_flaky(figs, files, *, scale):  # leaves out the first file the first time only
        first.append(files[0].name)
        for f in files[1:] if len(first) == 1 else files:
            f.write_bytes(b"%PDF" if f.suffix == ".pdf" else b"\x89PNG")

    (tmp_path / "again").mkdir()
    monkeypatch.setattr(pio, "write_images", once_flaky)
    figures = export_static(_pending(tmp_path / "again", 1))
    assert first == ["fig0.pdf", "fig0.pdf"] and figures.static_error == ""
    assert (tmp_path / "again" / "fig0.pdf").read_bytes() == b"%PDF"

"""The look of the figures: log axes where data span decades, y limits from the data, legends off
the curves, titles inside the canvas, partial windows marked, and PNG / SVG / PDF output."""
import itertools
import xml.etree.ElementTree as ET

import numpy as np
import polars as pl
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.lines import Line2D
from matplotlib.patches import StepPatch
from servelab.analysis.arrivals import window_stats
from servelab.analysis.store import write_store
from servelab.figures import arrivals as A
from servelab.figures import clients as C
from servelab.figures import lengths as L
from servelab.figures.registry import figure_specs, get_figure
from servelab.figures.style import SAVE_FORMATS, figure, legend_outside, save_figure
from servelab.fitting.windows import gamma_per_window


def _draw(fig):
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _units(fig):
    """Every labelled axis names its unit in parentheses."""
    for ax in fig.axes:
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            if label:
                assert "(" in label and ")" in label, f"no unit in axis label {label!r}"


def _hist_table(rng, n_req_bins=3, n=6000):
    inp = rng.lognormal(5, 1.5, n)
    out = rng.lognormal(3 + 0.2 * np.log(inp), 0.7)
    edges = np.quantile(inp, np.arange(1, n_req_bins) / n_req_bins)
    rbin = np.searchsorted(edges, inp)
    lo, hi = np.log1p(out.min()), np.log1p(out.max())
    rows = []
    for k in range(n_req_bins):
        counts, e = np.histogram(np.log1p(out[rbin == k]), bins=20, range=(lo, hi))
        for b in range(20):
            rows.append({"group": "all", "request_bin": k, "request_lo": float(inp[rbin == k].min()),
                         "request_hi": float(inp[rbin == k].max()), "request_n": int((rbin == k).sum()), "bin": b,
                         "response_lo": float(np.expm1(e[b])), "response_hi": float(np.expm1(e[b + 1])),
                         "count": int(counts[b]), "probability": counts[b] / (rbin == k).sum()})
    return pl.DataFrame(rows).with_columns((pl.col("probability") / (pl.col("response_hi") - pl.col("response_lo")))
                                           .alias("density"))


def test_fig10_one_step_line_per_request_bin_on_a_log_axis(rng):
    table = _hist_table(rng)
    spec = get_figure("burstgpt.fig10")
    assert spec.function is L.response_per_request_bin and spec.paper_figure == "BurstGPT Fig. 10"
    fig = L.response_per_request_bin(table)
    ax = fig.axes[0]
    steps = [p for p in ax.patches if isinstance(p, StepPatch)]
    assert len(steps) == 3
    for k, step in enumerate(steps):  # the drawn heights are the table's shares
        np.testing.assert_allclose(step.get_data().values,
                                   table.filter(pl.col("request_bin") == k).sort("bin")["probability"].to_numpy())
    assert ax.get_xscale() == "log" and ax.get_ylim()[0] == 0
    _units(fig)
    renderer = _draw(fig)
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.y1 <= ax.get_window_extent(renderer).y0  # under the axes, never over the curves
    # several groups: one panel each, largest first
    two = pl.concat([table, table.filter(pl.col("request_bin") < 2).with_columns(pl.lit("small").alias("group"))])
    fig = L.response_per_request_bin(two)
    assert [a.get_title() for a in fig.axes] == ["all", "small"]


def test_fig8_omni_needs_two_modalities():
    load = pl.DataFrame({"window": [0, 1, 2], "start_s": [0.0, 600.0, 1200.0], "requests": [5, 6, 7],
                         "text_tps": [10.0, 12.0, 9.0], "image_tps": [5.0, 1.0, 0.0], "audio_tps": [1.0, 3.0, 4.0],
                         "video_tps": [0.0, 0.0, 0.0]})
    assert L.modality_columns(load) == ["image", "audio"]
    items = pl.DataFrame({"modality": ["image", "image", "audio"], "items": [1, 2, 1], "count": [3, 1, 4],
                          "probability": [0.75, 0.25, 1.0]})
    fig = L.omni_load(load, items)
    assert get_figure("servegen.fig8").function is L.omni_load
    assert len(fig.axes) == 3
    mix = fig.axes[2]
    assert mix.get_ylim() == (0.0, 1.0)
    # the stacked shares per window: image 5/6, 1/4, 0
    top_of_image = mix.collections[0].get_paths()[0].vertices[:, 1].max()
    assert top_of_image == pytest.approx(5 / 6)
    _units(fig)
    with pytest.raises(ValueError, match="at least two modalities; got \\['image'\\]"):
        L.omni_load(load.drop("audio_tps"), items)


def test_linear_fit_uses_log_x_when_bins_span_decades():
    corr = pl.DataFrame({"group": ["all"], "slope": [0.01], "intercept": [20.0], "r2": [0.1]})
    wide = pl.DataFrame({"group": ["all"] * 4, "input_median": [3.0, 30.0, 300.0, 3000.0],
                         "output_mean": [20.0, 21.0, 24.0, 50.0], "output_p5": [5.0, 5.0, 6.0, 8.0],
                         "output_p95": [60.0, 70.0, 80.0, 120.0]})
    fig = L.linear_relation(wide, corr)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"  # 5-120 tokens: < 30x
    ols = next(line for line in ax.get_lines() if line.get_label().startswith("OLS"))
    x, y = ols.get_data()
    np.testing.assert_allclose(y, 20.0 + 0.01 * x)
    assert x.min() == pytest.approx(3.0) and x.max() == pytest.approx(3000.0)
    narrow = wide.with_columns(pl.Series("input_median", [100.0, 120.0, 150.0, 200.0]))
    assert L.linear_relation(narrow, corr).axes[0].get_xscale() == "linear"
    _units(fig)


def test_length_density_y_limits_follow_the_data_not_the_fit():
    lo = np.exp(np.arange(12) * 0.6) - 1
    hi = np.exp((np.arange(12) + 1) * 0.6) - 1
    p = np.linspace(0.2, 0.01, 12)
    p = p / p.sum()
    pmf = pl.DataFrame({"group": ["all"] * 12, "bin": np.arange(12), "bin_lo": lo, "bin_hi": hi,
                        "count": np.full(12, 5), "probability": p, "density": p / (hi - lo)})
    x = np.geomspace(1, 2000, 50)
    curves = pl.DataFrame({"family": ["exponential"] * 50, "x": x, "pdf": 0.05 * np.exp(-0.05 * x)})  # to 1e-45
    fig = L.length_distributions(pmf, pmf, output_curves=curves)
    dens = pmf["density"].to_numpy()
    for ax in fig.axes:
        y0, y1 = ax.get_ylim()
        assert ax.get_yscale() == "log"
        assert y0 >= dens.min() / 100 and y1 <= dens.max() * 10  # about 4 decades, not 45


def _gamma_store(rng, tmp_path, *, tail_s):
    """Poisson arrivals at 0.5/s over 3 full 20-min windows plus a partial one of ``tail_s``."""
    span = 3 * 1200 + tail_s
    t = np.sort(rng.uniform(0, span, rng.poisson(0.5 * span)))
    t[0], t[-1] = 0.0, span - 1e-6
    return write_store(pl.DataFrame({"timestamp": t}), tmp_path / f"g{tail_s}")


def test_gamma_windows_partial_marked_and_sparse_left_out(rng, tmp_path):
    gamma = gamma_per_window(window_stats(_gamma_store(rng, tmp_path, tail_s=8), window_s="20m"))
    # the last window holds ~4 gaps: a Gamma fitted to them is noise and is left out
    assert gamma["gamma_n"][-1] < 20
    frame = A.gamma_plot_frame(gamma, "alpha", window_s=1200.0)
    assert frame["alpha"][-1] is None and frame["partial"].to_list() == [False, False, False, True]
    fig = A.burstgpt_fig6(gamma, window_s=1200.0)
    line = fig.axes[0].get_lines()[0]
    y = np.asarray(line.get_ydata(), dtype=float)
    assert np.isnan(y[-1]) and np.all(np.isfinite(y[:3]))
    assert "1 window(s) with < 20 gaps left out" in [t.get_text() for t in fig.axes[0].texts]
    # a partial window with enough gaps is kept and drawn with an open marker; window length inferred
    gamma = gamma_per_window(window_stats(_gamma_store(rng, tmp_path, tail_s=400), window_s="20m"))
    assert gamma["gamma_n"][-1] >= 20
    fig = A.burstgpt_fig6(gamma)
    ax = fig.axes[0]
    open_marks = [ln for ln in ax.get_lines() if ln.get_markerfacecolor() == "white"]
    assert len(open_marks) == 1 and open_marks[0].get_xdata()[0] == pytest.approx(3 * 1200 / 3600)
    alpha = gamma.filter(pl.col("gamma_n") >= 20)["alpha"]
    assert ax.get_yscale() == ("log" if alpha.max() / alpha.min() > 10 else "linear")
    spread = gamma.with_columns(pl.Series("alpha", [0.05, 0.5, 5.0, 50.0]))  # four decades: log
    assert A.burstgpt_fig6(spread).axes[0].get_yscale() == "log"
    assert len(fig.legends) == 1 and all(a.get_legend() is None for a in fig.axes)  # one legend for both panels
    _units(fig)


def test_fig1_titles_inside_their_axes():
    hist = pl.DataFrame({"left_s": [0.01, 0.1, 1.0], "right_s": [0.1, 1.0, 10.0], "density": [5.0, 0.5, 0.01]})
    comp = pl.DataFrame({"family": ["weibull", "gamma", "exponential"], "ks_distance": [0.1, 0.2, 0.5],
                         "delta_aic_per_1000": [0.0, 50.0, 3400.0], "clearly_best": [True, False, False]})
    fig = A.servegen_fig1(hist, None, comp)
    renderer = _draw(fig)
    for ax in fig.axes:
        title = ax.title.get_window_extent(renderer)
        box = ax.get_window_extent(renderer)
        assert title.x0 >= box.x0 - 1 and title.x1 <= box.x1 + 1, ax.get_title()
    right = fig.axes[1]
    assert right.get_ylim()[1] >= 0.5 * 1.1  # room for the dAIC labels above the tallest bar
    assert "green: clearly best" in right.get_xlabel()
    _units(fig)


def _client_tables(rng):
    clients = ["a", "b", "c"]
    rows = []
    for i, c in enumerate(clients):
        for w in range(6):
            rows.append({"client_id": c, "window": w, "window_start_s": w * 600.0, "n_requests": 50,
                         "rate_rps": (i + 1) * (1 + 0.1 * w), "cv": 1.0 + 0.2 * i,
                         "mean_input": 20.0 * 10 ** i * (1 + 0.05 * w), "mean_output": 50.0 + w})
    windows = pl.DataFrame(rows)
    summary = windows.group_by("client_id").agg(pl.col("rate_rps").mean().alias("rate"), pl.col("cv").mean(),
                                                pl.col("mean_input").mean(), pl.col("mean_output").mean())
    return summary, windows, clients


def test_fig6_one_client_legend_below_and_labels_clear(rng):
    summary, windows, clients = _client_tables(rng)
    fig = C.servegen_fig6(summary, windows, clients=clients)
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 3
    renderer = _draw(fig)
    legend = fig.legends[0].get_window_extent(renderer)
    assert all(legend.y1 <= ax.get_window_extent(renderer).y0 + 1 for ax in fig.axes)  # below every panel
    bottom = fig.axes[4:]
    for left, right in itertools.pairwise(bottom):  # a y label never reaches into the panel on its left
        assert right.yaxis.label.get_window_extent(renderer).x0 >= left.get_window_extent(renderer).x1
    mean_input_range = fig.axes[6]
    assert mean_input_range.get_yscale() == "log"  # 20 to 2,000 tokens
    assert fig.axes[7].get_yscale() == "linear"  # 50 to 55 tokens
    _units(fig)


def test_save_figure_writes_valid_png_svg_pdf(tmp_path):
    fig, ax = figure()
    ax.plot([1, 2, 3], [1, 4, 9])
    written = save_figure(fig, tmp_path / "fig", formats=SAVE_FORMATS)
    assert [p.suffix for p in written] == [".png", ".svg", ".pdf"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.parse(written[1]).getroot()
    assert root.tag.endswith("svg")
    pdf = written[2].read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    # the suffix of the path chooses the format when none is given
    assert save_figure(fig, tmp_path / "single.pdf") == [tmp_path / "single.pdf"]
    assert (tmp_path / "single.pdf").read_bytes().startswith(b"%PDF-")
    assert save_figure(fig, tmp_path / "noext") == [tmp_path / "noext.png"]
    with pytest.raises(ValueError, match=r"formats must be a non-empty selection of \('png', 'svg', 'pdf'\); got \('jpg',\)"):
        save_figure(fig, tmp_path / "x", formats=("jpg",))


def test_legend_outside_rejects_unknown_place():
    fig, ax = figure()
    ax.plot([1, 2], [1, 2], label="a")
    with pytest.raises(ValueError, match="where must be 'below' or 'right'; got 'above'"):
        legend_outside(ax, where="above")
    legend = legend_outside(ax, where="right")
    renderer = _draw(fig)
    assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    _, empty_ax = figure()
    assert legend_outside(empty_ax) is None


def test_registry_has_the_new_paper_figures():
    specs = figure_specs()
    assert {"burstgpt.fig10", "servegen.fig8"} <= set(specs)
    assert all(spec.paper_figure for spec in specs.values())
    assert isinstance(Line2D, type)


def test_fig2_log_rate_when_groups_span_decades_and_one_legend():
    rows = []
    for c, rate in (("big", 10.0), ("small", 0.02)):
        for w in range(5):
            rows.append({"client_id": c, "window_start_s": w * 300.0, "n_requests": int(rate * 300) + 1,
                         "rate_rps": rate * (1 + 0.1 * w), "cv": 1.0 + 0.1 * w})
    windows = pl.DataFrame(rows)
    fig = A.servegen_fig2(windows, group="client_id")
    top, bottom = fig.axes
    assert top.get_yscale() == "log" and bottom.get_yscale() == "linear"  # rates x500 apart, CVs 1-1.4
    assert top.get_xlabel() == "" and "(h)" in bottom.get_xlabel()
    assert len(fig.legends) == 1 and [t.get_text() for t in fig.legends[0].get_texts()] == ["big", "small"]
    renderer = _draw(fig)
    assert fig.legends[0].get_window_extent(renderer).x0 >= top.get_window_extent(renderer).x1  # beside
    _units(fig)

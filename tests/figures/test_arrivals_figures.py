"""Arrival figures: registered ids, units on axes, one line per family / group."""
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from servelab.figures.arrivals import burstgpt_fig6, servegen_fig1, servegen_fig2
from servelab.figures.registry import figure_specs
from servelab.fitting.compare import compare_families, density_curves


def test_registered():
    specs = figure_specs()
    for fid, paper in [("servegen.fig1", "ServeGen Fig. 1"), ("servegen.fig2", "ServeGen Fig. 2"),
                       ("burstgpt.fig6", "BurstGPT (KDD'25) Fig. 6")]:
        assert specs[fid].paper_figure == paper


def test_fig1_draws_every_family_on_log_axes(rng):
    x = rng.gamma(0.5, 1.0, 3000)
    comp = compare_families(x)
    edges = np.geomspace(x.min(), x.max(), 31)
    counts, _ = np.histogram(x, edges)
    hist = pl.DataFrame({"left_s": edges[:-1], "right_s": edges[1:], "density": counts / (x.size * np.diff(edges))})
    fig = servegen_fig1(hist, density_curves(comp, np.geomspace(x.min(), x.max(), 50)), comp.table())
    assert isinstance(fig, Figure)
    left, right = fig.axes
    assert left.get_xscale() == "log" and "(s)" in left.get_xlabel()
    assert len(left.get_lines()) == 4
    assert [t.get_text() for t in right.get_xticklabels()] == comp.table()["family"].to_list()


def test_fig2_and_fig6_one_line_per_group():
    windows = pl.DataFrame({
        "service": ["api"] * 3 + ["conversation"] * 3,
        "window_start_s": [0.0, 300.0, 600.0] * 2,
        "n_requests": [5, 0, 7, 9, 8, 9],
        "rate_rps": [0.1, 0.0, 0.2, 0.3, 0.3, 0.3],
        "cv": [1.5, None, 2.0, 1.0, 0.9, 1.1],
        "alpha": [0.4, None, 0.3, 1.0, 1.1, 0.9],
        "beta": [0.05, None, 0.07, 0.3, 0.33, 0.27],
    })
    fig = servegen_fig2(windows, group="service")
    assert len(fig.axes[0].get_lines()) == 2 and "requests/s" in fig.axes[0].get_ylabel()
    fig6 = burstgpt_fig6(windows, group="service")
    assert len(fig6.axes[0].get_lines()) == 2 and fig6.axes[1].get_ylabel() == "rate beta (1/s)"

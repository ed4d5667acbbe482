"""The periodicity figures are registered and draw what they are given."""
import numpy as np
import polars as pl
from servelab.figures import figure_specs
from servelab.figures import periodicity as figs


def test_registered_with_paper_figures():
    specs = figure_specs()
    for fid, paper in (("burstgpt.fig2", "BurstGPT Fig. 2"), ("burstgpt.fig5", "BurstGPT Fig. 5"),
                       ("burstgpt.fig11", "BurstGPT Fig. 11"), ("burstgpt.fig17", "BurstGPT Fig. 17"),
                       ("burstgpt.fig18", "BurstGPT Fig. 18"),
                       ("burstgpt2024.fig5", "BurstGPT preprint (2024) Fig. 5")):
        assert specs[fid].paper_figure == paper


def test_select_groups_prefers_service_and_model():
    t = pl.DataFrame({"group": ["all", "api", "conversation", "api / GPT-4", "conversation / GPT-4"]})
    rows, note = figs.select_groups(t, "conversation")
    assert rows["group"].to_list() == ["conversation / GPT-4"] and note == "conversation, per model"
    rows, note = figs.select_groups(t.filter(~pl.col("group").str.contains("/")), "api")
    assert rows["group"].to_list() == ["api"]
    rows, note = figs.select_groups(t, "batch")
    assert rows["group"].to_list() == ["all"] and "no 'batch' service" in note


def test_hour_of_day_plot_draws_the_means():
    prof = pl.DataFrame({
        "group": ["all"] * 24, "day_type": ["all"] * 24, "hour": np.arange(24, dtype=np.int32),
        "mean": np.arange(24.0), "p25": np.arange(24.0) - 1, "p75": np.arange(24.0) + 1,
        "clock": ["local"] * 24,
    })
    ax = figs.plot_hour_of_day(prof)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), np.arange(24.0))
    assert ax.get_xlabel() == "hour of day (local time)"
    rel = figs.plot_hour_of_day(prof.with_columns(clock=pl.lit("relative to trace start")))
    assert "origin unknown" in rel.get_xlabel()

"""Prefix-reuse figures (issue 15): registered, draw exactly the tables they are given, units on axes."""
import numpy as np
import polars as pl
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from servelab.figures import prefixes as P
from servelab.figures.registry import get_figure


def _units(fig):
    for ax in fig.axes:
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            if label:
                assert "(" in label and ")" in label, f"no unit in axis label {label!r}"


def test_registered():
    assert get_figure("prefixes.hit_rate").function is P.prefix_hit_rate
    assert get_figure("prefixes.sources").function is P.prefix_sources
    assert get_figure("prefixes.sources").needs == ("prefix_blocks",)


def test_hit_rate_figure_draws_the_curve_and_the_distances():
    lru = pl.DataFrame({"capacity_blocks": [1, 2, 4, 8, 16], "block_hit_rate": [0.0, 0.1, 0.3, 0.5, 0.6],
                        "token_hit_rate": [0.0, 0.12, 0.31, 0.52, 0.61]})
    hist = pl.DataFrame({"distance_from": [0, 1, 2, 4, 8], "distance_to": [1, 2, 4, 8, 16],
                         "accesses": [5, 0, 10, 20, 5], "share": [0.05, 0.0, 0.1, 0.2, 0.05]})
    fig = P.prefix_hit_rate(lru, hist, infinite=0.61, reference=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    left, right = fig.axes
    lines = {line.get_label(): line for line in left.get_lines()}
    np.testing.assert_array_equal(lines["tokens"].get_ydata(), lru["token_hit_rate"].to_numpy())
    np.testing.assert_array_equal(lines["blocks"].get_xdata(), lru["capacity_blocks"].to_numpy())
    assert left.get_xscale() == "log" and left.get_ylim() == (0, 1)
    heights = [p.get_height() for p in right.patches]
    np.testing.assert_allclose(heights, hist["accesses"].to_numpy() / 40)
    _units(fig)


def test_sources_figure_stacks_one_area_per_source_and_bars_for_one_window():
    rows = [{"window_start_s": w * 3600.0, "source": s, "token_share": v}
            for w in range(3) for s, v in zip(("system", "template", "conversation", "other"), (0.3, 0.1, 0.2, 0.05))]
    fig = P.prefix_sources(pl.DataFrame(rows))
    ax = fig.axes[0]
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 4
    assert ax.get_legend() is not None
    _units(fig)
    assert ax.get_xlim() == (0.0, 3.0)  # three one-hour steps
    one = P.prefix_sources(pl.DataFrame([r for r in rows if r["window_start_s"] == 0.0]), window_s=1800.0)
    assert one.axes[0].get_xlim() == (0.0, 0.5)
    assert len([c for c in one.axes[0].collections if isinstance(c, PolyCollection)]) == 4

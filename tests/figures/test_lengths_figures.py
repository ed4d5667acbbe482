"""figures.lengths: every registered request-data figure draws from small tables, with units."""
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from servelab.figures import lengths as F
from servelab.figures.registry import get_figure


def _pmf():
    lo = np.exp(np.arange(10) * 0.8) - 1
    hi = np.exp((np.arange(10) + 1) * 0.8) - 1
    p = np.full(10, 0.1)
    return pl.DataFrame({"group": ["all"] * 10, "bin": np.arange(10), "bin_lo": lo, "bin_hi": hi,
                         "count": np.full(10, 5), "probability": p, "density": p / (hi - lo)})


def _labels(fig):
    return [ax.get_xlabel() + " " + ax.get_ylabel() for ax in fig.axes]


def test_length_distribution_figures_have_units():
    curves = pl.DataFrame({"family": ["exponential"] * 3, "x": [1.0, 10.0, 100.0], "pdf": [0.01, 0.005, 0.001]})
    fig = F.length_distributions(_pmf(), _pmf(), output_curves=curves)
    assert isinstance(fig, Figure) and all("token" in lab for lab in _labels(fig))
    assert get_figure("servegen.fig3").function is F.length_distributions
    fig = F.burstgpt_histograms(_pmf(), None)
    assert "request (tokens)" in fig.axes[0].get_xlabel()


def test_relation_shift_reasoning_and_multimodal_figures():
    bins = pl.DataFrame({"group": ["all"] * 3, "bin": [0, 1, 2], "input_lo": [0.0, 10.0, 100.0],
                         "input_hi": [10.0, 100.0, 1000.0], "n": [5, 5, 5], "input_median": [5.0, 50.0, 500.0],
                         "output_p5": [1.0, 2.0, 3.0], "output_median": [10.0, 20.0, 30.0],
                         "output_p95": [100.0, 200.0, 300.0], "output_mean": [20.0, 30.0, 40.0]})
    corr = pl.DataFrame({"group": ["all"], "n": [15], "pearson": [0.3], "spearman": [0.2], "spearman_n": [15],
                         "slope": [0.05], "intercept": [20.0], "r2": [0.09], "mean_x": [100.0], "mean_y": [30.0]})
    assert "output length (tokens)" in F.io_relation(bins, by_period=bins).axes[0].get_ylabel()
    assert "response length (tokens)" in F.linear_relation(bins, corr).axes[0].get_ylabel()
    hourly = pl.DataFrame({"hour": [0, 1, 2], "n": [3, 3, 3], "mean_input_tokens": [1.0, 2.0, 3.0],
                           "mean_output_tokens": [3.0, 2.0, 1.0]})
    assert "hour" in F.length_shift(hourly).axes[0].get_xlabel()
    summary = pl.DataFrame({"group": ["all"] * 3, "column": ["reason_tokens", "answer_tokens", "output_tokens"],
                            "mean": [10.0, 5.0, 15.0], "p5": [1.0, 1.0, 2.0], "p95": [30.0, 20.0, 40.0]})
    ratio = pl.DataFrame({"group": ["all"] * 2, "ratio": [0.3, 0.9], "count": [5, 5], "probability": [0.5, 0.5]})
    fig = F.reasoning_lengths(summary, ratio, ratio_pmf_by_client=ratio.with_columns(pl.lit("c1").alias("group")))
    assert len(fig.axes) == 3 and "reason ratio" in fig.axes[1].get_xlabel()
    load = pl.DataFrame({"window": [0, 1], "start_s": [0.0, 600.0], "requests": [3, 4], "text_tps": [1.0, 2.0],
                         "image_tps": [3.0, 1.0]})
    items = pl.DataFrame({"modality": ["image"] * 2, "items": [1, 2], "count": [3, 1], "probability": [0.75, 0.25]})
    fig = F.multimodal_load(load, items)
    assert "tokens/s" in fig.axes[0].get_ylabel() and "items per request" in fig.axes[1].get_xlabel()
    hist = pl.DataFrame({"bin": [0, 1], "share_lo": [0.0, 0.5], "share_hi": [0.5, 1.0], "count": [1, 3],
                         "probability": [0.25, 0.75]})
    assert "multimodal share" in F.multimodal_share(hist).axes[0].get_xlabel()

"""analysis.lengths.response_histograms (BurstGPT Fig. 10) against an independent numpy count."""
import numpy as np
import polars as pl
import pytest
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.lengths import response_histograms
from servelab.analysis.store import write_store


def _frame(rng, n=5000):
    inp = np.round(rng.lognormal(5.0, 1.2, n)).astype(np.int64) + 1
    out = np.round(rng.lognormal(3.0 + 0.3 * np.log(inp), 0.8)).astype(np.int64) + 1
    out[rng.random(n) < 0.03] = 0  # BurstGPT's failed requests: excluded
    model = np.where(rng.random(n) < 0.6, "ChatGPT", "GPT-4")
    return pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 3600, n)), "model": model,
                         "input_tokens": inp, "output_tokens": out})


@pytest.fixture
def store(rng, tmp_path):
    frame = _frame(rng)
    return write_store(frame, tmp_path / "s"), frame


def _reference(inp, out, edges, nb, lo_out, hi_out):
    """Histograms per request bin with numpy: request bin = number of edges strictly below."""
    rbin = np.searchsorted(np.asarray(edges, dtype=float), inp, side="left")
    rows = {}
    for k in np.unique(rbin):
        sel = rbin == k
        counts, _ = np.histogram(np.log1p(out[sel]), bins=nb, range=(np.log1p(lo_out), np.log1p(hi_out)))
        rows[int(k)] = (counts, int(inp[sel].min()), int(inp[sel].max()))
    return rows


def test_quantile_bins_match_numpy(store):
    s, frame = store
    ok = frame.filter(pl.col("output_tokens") != 0)
    inp, out = ok["input_tokens"].to_numpy(), ok["output_tokens"].to_numpy()
    table = response_histograms(s, request_bins=4, response_bins=25)
    edges = np.unique(np.quantile(inp, [0.25, 0.5, 0.75], method="inverted_cdf"))  # DuckDB quantile_disc
    ref = _reference(inp, out, edges, 25, out.min(), out.max())
    assert sorted(table["request_bin"].unique().to_list()) == sorted(ref)
    for k, (counts, lo, hi) in ref.items():
        part = table.filter(pl.col("request_bin") == k).sort("bin")
        np.testing.assert_array_equal(part["count"].to_numpy(), counts)
        assert part["request_lo"][0] == lo and part["request_hi"][0] == hi
        assert part["request_n"][0] == counts.sum()
        assert part["probability"].sum() == pytest.approx(1.0, abs=1e-12)
        width = part["response_hi"].to_numpy() - part["response_lo"].to_numpy()
        np.testing.assert_allclose(part["density"].to_numpy(), part["probability"].to_numpy() / width)
    # equal-count bins: each holds about a quarter of the requests (ties at an edge shift a little)
    shares = table.group_by("request_bin").agg(pl.col("request_n").first())["request_n"].to_numpy() / inp.size
    assert np.all(np.abs(shares - 0.25) < 0.03)
    # response bins are shared and log-spaced from the smallest to the largest response
    first = table.filter(pl.col("request_bin") == 0).sort("bin")
    assert first["response_lo"][0] == pytest.approx(out.min())
    assert first["response_hi"][-1] == pytest.approx(out.max())
    ratios = (first["response_hi"].to_numpy() + 1) / (first["response_lo"].to_numpy() + 1)
    np.testing.assert_allclose(ratios, ratios[0])


def test_explicit_edges_and_per_model(store):
    s, frame = store
    table = response_histograms(s, request_edges=(100, 1000), response_bins=10, by="model")
    assert set(table["group"].unique().to_list()) == {"ChatGPT", "GPT-4"}
    ok = frame.filter(pl.col("output_tokens") != 0)
    out_all = ok["output_tokens"].to_numpy()
    for model in ("ChatGPT", "GPT-4"):
        part = ok.filter(pl.col("model") == model)
        ref = _reference(part["input_tokens"].to_numpy(), part["output_tokens"].to_numpy(), (100, 1000), 10,
                         out_all.min(), out_all.max())  # bins shared across models
        got = table.filter(pl.col("group") == model)
        for k, (counts, lo, hi) in ref.items():
            rows = got.filter(pl.col("request_bin") == k).sort("bin")
            np.testing.assert_array_equal(rows["count"].to_numpy(), counts)
            assert rows["request_lo"][0] == lo and rows["request_hi"][0] == hi
    # right-closed: a request of exactly 100 tokens falls in bin 0
    assert table.filter(pl.col("request_bin") == 0)["request_hi"].max() <= 100
    assert table.filter(pl.col("request_bin") == 1)["request_lo"].min() > 100


def test_errors_and_not_applicable(store, tmp_path, rng):
    s, _ = store
    with pytest.raises(ValueError, match="request_bins must be a positive int"):
        response_histograms(s, request_bins=0)
    with pytest.raises(ValueError, match="response_bins must be a positive int"):
        response_histograms(s, response_bins=2.5)
    with pytest.raises(ValueError, match="strictly increasing"):
        response_histograms(s, request_edges=(1000, 100))
    no_out = write_store(pl.DataFrame({"timestamp": [0.0, 1.0], "input_tokens": [3, 4]}), tmp_path / "no_out")
    with pytest.raises(NotApplicableError, match="output_tokens"):
        response_histograms(no_out)
    failed = write_store(pl.DataFrame({"timestamp": [0.0, 1.0], "input_tokens": [3, 4], "output_tokens": [0, 0]}),
                         tmp_path / "failed")
    with pytest.raises(NotApplicableError, match="no non-failed request"):
        response_histograms(failed)

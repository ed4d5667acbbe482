"""The clients' per-window length statistics by numpy cells (``client_window_stats`` and
``aggregate_window_stats`` without quantiles, and the aggregate pooled from the per-client cells in
``decompose_clients``) against an independent polars group-by on the raw rows.

The trace has what the SQL handles and a shortcut could get wrong: rows without a client id (left
out per client, counted in the aggregate), null lengths (skipped), zero denominators (no ratio),
reasoning and modality columns, and a 0.1-s clock with ties, so that the arrival frame's rows are in
jittered order rather than request order.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from servelab.analysis.clients import aggregate_window_stats, client_ranking, client_window_stats, decompose_clients
from servelab.analysis.store import write_store

W = 60.0
_LENGTHS = ["sum_input", "mean_input", "var_input", "sum_output", "mean_output", "var_output", "mean_reason_ratio",
            "mean_image_ratio", "mean_audio_ratio", "mean_mm_ratio"]


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    rng = np.random.default_rng(7)
    n = 3000
    t = np.round(np.sort(rng.uniform(0.0, 10 * W, n)), 1)  # a 0.1-s clock (half the mean gap): ties, jittered order
    client = rng.choice(np.array(["a", "b", "c", "d", None], dtype=object), n, p=[0.4, 0.3, 0.15, 0.1, 0.05])

    def tokens(low, high, null_share):
        x = rng.integers(low, high, n).astype(float)
        x[rng.random(n) < null_share] = np.nan
        return pl.Series(x, nan_to_null=True).cast(pl.Int64)

    frame = pl.DataFrame({"timestamp": t, "client_id": pl.Series(client, dtype=pl.String),
                          "input_tokens": tokens(0, 900, 0.05), "output_tokens": tokens(0, 300, 0.05),
                          "reason_tokens": tokens(0, 200, 0.1), "image_tokens": tokens(0, 400, 0.2),
                          "audio_tokens": tokens(0, 100, 0.3)})
    return write_store(frame, tmp_path_factory.mktemp("lengths") / "s"), frame


def _reference(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    inp, out = pl.col("input_tokens").cast(pl.Float64), pl.col("output_tokens").cast(pl.Float64)

    def share(num, den):
        return pl.when(den > 0).then(num / den).mean()

    mm = pl.col("image_tokens").fill_null(0) + pl.col("audio_tokens").fill_null(0)
    return (frame.with_columns((pl.col("timestamp") / W).floor().cast(pl.Int64).alias("window"))
            .group_by(keys).agg(inp.sum().alias("sum_input"), inp.mean().alias("mean_input"),
                                inp.var(ddof=1).alias("var_input"), out.sum().alias("sum_output"),
                                out.mean().alias("mean_output"), out.var(ddof=1).alias("var_output"),
                                share(pl.col("reason_tokens"), out).alias("mean_reason_ratio"),
                                share(pl.col("image_tokens"), inp).alias("mean_image_ratio"),
                                share(pl.col("audio_tokens"), inp).alias("mean_audio_ratio"),
                                share(mm, inp).alias("mean_mm_ratio"))
            .with_columns(pl.when(pl.col(c.replace("sum", "mean")).is_not_null()).then(pl.col(c))
                          for c in ("sum_input", "sum_output"))  # SQL: the sum of no value is null
            .sort(keys))


def _check(got: pl.DataFrame, ref: pl.DataFrame, keys: list[str]) -> None:
    got = got.select(*keys, *_LENGTHS).sort(keys)
    assert got.select(keys).equals(ref.select(keys))
    for c in _LENGTHS:
        x, y = got[c], ref[c]
        assert x.is_null().equals(y.is_null()), c
        np.testing.assert_allclose(x.drop_nulls().to_numpy(), y.drop_nulls().to_numpy(), rtol=1e-12, err_msg=c)


def test_client_and_aggregate_lengths_match_a_group_by_on_the_rows(trace):
    store, frame = trace
    ref_client = _reference(frame.filter(pl.col("client_id").is_not_null()), ["client_id", "window"])
    ref_all = _reference(frame, ["window"])
    _check(aggregate_window_stats(store, window_s=W, length_quantiles=False), ref_all, ["window"])
    # the decomposition: client_window_stats' table, and the aggregate pooled from the per-client cells
    # (rows without a client id included)
    dec = decompose_clients(store, window_s=W, length_quantiles=False)
    ws = dec.window_stats
    _check(ws, ref_client, ["client_id", "window"])
    _check(dec.aggregate, ref_all, ["window"])
    # its ranking, null rows and span come from the cells and the frame: those of the SQL, exactly
    assert_frame_equal(dec.ranking, client_ranking(store), check_exact=True)
    assert dec.null_client_rows == frame["client_id"].null_count() > 0
    t = frame["timestamp"]
    assert dec.summary["rate"].to_numpy() == pytest.approx(
        dec.ranking.sort("client_id")["requests"].to_numpy() / (t.max() - t.min()), rel=1e-12)
    # with quantiles the SQL path: the same means
    with_q = client_window_stats(store, window_s=W, length_quantiles=True)
    assert with_q.select("client_id", "window").equals(ws.select("client_id", "window"))
    np.testing.assert_allclose(with_q["var_output"].drop_nulls().to_numpy(), ws["var_output"].drop_nulls().to_numpy(),
                               rtol=1e-12)


def test_the_trace_is_in_jittered_order(trace):
    """The fixture exercises the reordering: the arrival frame's rows are not in request order."""
    from servelab.analysis.arrivals import arrival_frame

    order = arrival_frame(trace[0], by="client_id").work["order"]
    assert order is not None and (np.diff(order) < 0).any()

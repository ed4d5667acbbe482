"""The grouped arrival frames (numpy order and group codes, issue 16) equal an independent polars
construction: jitter one uniform per request in request order, stable sort by the jittered time,
each request's predecessor by ``shift().over(group)``; nulls are one group, sorted last."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servelab.analysis.arrivals import _previous_in_group, arrival_frame, shared_arrival_frames
from servelab.analysis.store import frame_source


def _source(seed: int = 5, n: int = 3_000):
    rng = np.random.default_rng(seed)
    t = np.round(np.cumsum(rng.exponential(0.05, n)), 3)  # a 1-ms clock with ties
    names = np.array([f"c{k:02d}" for k in rng.integers(0, 40, n)], dtype=object)
    names[rng.random(n) < 0.05] = None  # rows without a client: one group of their own
    return frame_source(pl.DataFrame({"timestamp": t, "client_id": pl.Series(names, dtype=pl.String)}), source="t")


def _reference(source, column: str | None, *, seed: int, step: float | None) -> pl.DataFrame:
    rows = source.to_polars(["request_id", "timestamp"] + ([column] if column else [])).sort("request_id")
    grp = pl.col(column) if column else pl.lit(None, pl.String)
    rows = rows.select(grp.cast(pl.String).alias("grp_"), "timestamp")

    def lag(c: str) -> pl.Expr:
        return pl.col(c).shift(1).over("grp_") if column else pl.col(c).shift(1)

    if step is None:
        return rows.select("grp_", "timestamp", lag("timestamp").alias("prev_"))
    u = np.random.default_rng(seed).uniform(0.0, step, rows.height)
    rows = rows.with_columns((pl.col("timestamp") + pl.Series(u)).alias("tj_")).sort("tj_", maintain_order=True)
    return rows.select("grp_", "timestamp", lag("timestamp").alias("prev_"), "tj_", lag("tj_").alias("prevj_"))


@pytest.mark.parametrize("clock", ["auto", None])
def test_grouped_frames_equal_the_polars_construction(clock):
    source = _source()
    with shared_arrival_frames():  # the whole frame first: the others reuse its order
        frames = {c: arrival_frame(source, by=c, clock=clock, seed=7) for c in (None, "client_id")}
    whole = frames[None]
    step = whole.jitter_step_s
    assert (step is not None) == (clock == "auto")
    for column, frame in frames.items():
        expected = _reference(source, column, seed=7, step=step)
        assert frame.data.equals(expected, null_equal=True), column
    groups, codes = frames["client_id"].work["codes"]
    assert groups.to_list()[-1] is None and groups.drop_nulls().to_list() == sorted(groups.drop_nulls().to_list())
    assert groups.gather(codes).equals(frames["client_id"].data["grp_"], null_equal=True)


def test_previous_in_group_past_the_radix_range():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 70_000, 5_000)  # more groups than uint16 holds: the general stable sort
    got = _previous_in_group(codes, 70_000)
    last: dict[int, int] = {}
    expected = np.empty(codes.size, dtype=np.int64)
    for i, c in enumerate(codes.tolist()):  # the definition, row by row (a small reference)
        expected[i] = last.get(c, -1)
        last[c] = i
    np.testing.assert_array_equal(got, expected)

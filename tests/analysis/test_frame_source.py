"""Analyses take an in-memory frame (issue 19 item 4): :func:`as_source` / :func:`frame_source`.

Every public analysis that reads a trace gives the same result on a :class:`FrameSource` as on
the store :func:`write_store` writes from the same frame (the independent reference: the Parquet
path the analyses were written and tested against), including the areas; frames that break the
canonical schema are refused with an error naming the column and the value.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from servelab.analysis import (
    EmptyTraceError,
    FrameSource,
    TraceFormatError,
    TraceStore,
    as_source,
    frame_source,
    write_store,
)
from servelab.analysis import arrivals, bursts, clients, conversations, failures, lengths, multimodal
from servelab.analysis import periodicity as per
from servelab.analysis import prefix_reuse, reasoning, shared_prefixes
from servelab.analysis.budget import Budget
from servelab.analysis.upsampling import window_cv

N = 6_000
ORIGIN = dt.datetime(2025, 3, 3, 0, 0, 0)


def _frame(seed: int = 3) -> pl.DataFrame:
    """A two-day trace with every kind of column, rows deliberately out of time order."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 2 * 86_400, N))
    n_conv = N // 3
    conv = rng.integers(0, n_conv, N)
    # each conversation's turns share its first blocks; a system prompt (block 0) is shared by all
    depth = rng.integers(1, 6, N)
    blocks = [[0] + [1_000 + 10 * int(c) + k for k in range(int(d))] for c, d in zip(conv, depth)]
    frame = pl.DataFrame({
        "timestamp": np.floor(t),  # a 1-s logging clock with ties
        "client_id": [f"c{k}" for k in rng.zipf(1.6, N) % 40],
        "model": rng.choice(["m-a", "m-b"], N),
        "service": rng.choice(["chat", "api"], N),
        "input_tokens": rng.lognormal(6, 1, N).astype(np.int64) + 1,
        "output_tokens": rng.lognormal(5, 1, N).astype(np.int64) + 1,
        "reason_tokens": rng.integers(0, 400, N),
        "text_tokens": rng.integers(1, 500, N),
        "image_tokens": np.where(rng.random(N) < 0.3, rng.integers(100, 2_000, N), 0),
        "image_count": np.where(rng.random(N) < 0.3, rng.integers(1, 4, N), 0),
        "prefix_blocks": pl.Series(blocks, dtype=pl.List(pl.Int64)),
        "latency_s": rng.exponential(0.5, N),
        "failed": rng.random(N) < 0.05,
    })
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)  # the source sorts, as write_store does


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    frame = _frame()
    store = write_store(frame, tmp_path_factory.mktemp("frame") / "store", origin=ORIGIN, timezone="UTC")
    return store, frame_source(frame, origin=ORIGIN, timezone="UTC"), frame


PERIODS = (lengths.Period(name="Night", start_hour=0, end_hour=12), lengths.Period(name="Day", start_hour=12, end_hour=24))

ANALYSES = {
    "gap_summary": lambda s: arrivals.gap_summary(s, by="client"),
    "window_stats": lambda s: arrivals.window_stats(s, window_s="20m", by="service"),
    "inter_arrival_gaps": lambda s: arrivals.inter_arrival_gaps(s, by="model"),
    "gap_array": lambda s: arrivals.gap_array(s),
    "gap_array_censored": lambda s: arrivals.gap_array(s, censored=True, seed=2),
    "burst_counts": lambda s: bursts.burst_counts(s, by="service"),
    "burst_ratio_histogram": lambda s: bursts.burst_ratio_histogram(s),
    "failure_rates": lambda s: failures.failure_rates(s, by="model"),
    "failure_rate_over_time": lambda s: failures.failure_rate_over_time(s, window_s=3600.0),
    "trace_clock": lambda s: per.trace_clock(s),
    "binned_load": lambda s: per.binned_load(s, window_s=600.0, by="service", tokens="input_tokens"),
    "hourly_counts": lambda s: per.hourly_counts(s),
    "periodicity": lambda s: per.periodicity(s),
    "length_counts": lambda s: lengths.length_counts(s),
    "length_quantiles": lambda s: lengths.length_quantiles(s, by="model"),
    "length_pmf": lambda s: lengths.length_pmf(s, "input_tokens", periods=PERIODS),
    "length_sample": lambda s: lengths.length_sample(s, "output_tokens", max_n=1_000, seed=4),
    "io_bins": lambda s: lengths.io_bins(s, periods=PERIODS),
    "io_correlation": lambda s: lengths.io_correlation(s, periods=PERIODS),
    "response_histograms": lambda s: lengths.response_histograms(s),
    "hourly_lengths": lambda s: lengths.hourly_lengths(s),
    "length_shifts": lambda s: lengths.length_shifts(s, periods=PERIODS),
    "reasoning_counts": lambda s: reasoning.reasoning_counts(s),
    "reason_summary": lambda s: reasoning.reason_summary(s, periods=PERIODS),
    "reason_answer_correlation": lambda s: reasoning.reason_answer_correlation(s, periods=PERIODS),
    "reason_ratio_pmf": lambda s: reasoning.reason_ratio_pmf(s, periods=PERIODS),
    "reason_ratios": lambda s: reasoning.reason_ratios(s, max_n=2_000, seed=1),
    "client_reason_ratios": lambda s: reasoning.client_reason_ratios(s, top=5, min_n=20),
    "modalities": lambda s: multimodal.modalities(s),
    "tokens_per_item": lambda s: multimodal.tokens_per_item(s),
    "items_per_request": lambda s: multimodal.items_per_request(s),
    "multimodal_share": lambda s: multimodal.multimodal_share(s),
    "text_multimodal_correlation": lambda s: multimodal.text_multimodal_correlation(s, seed=2),
    "modality_load": lambda s: multimodal.modality_load(s),
    "per_item_shift": lambda s: multimodal.per_item_shift(s, periods=PERIODS),
    "decompose_clients": lambda s: clients.decompose_clients(s, window_s=3600.0),
    "client_ranking": lambda s: clients.client_ranking(s),
    "client_window_stats": lambda s: clients.client_window_stats(s, window_s=3600.0),
    "aggregate_window_stats": lambda s: clients.aggregate_window_stats(s, window_s=3600.0),
    "link_conversations": lambda s: conversations.link_conversations(s, min_shared_blocks=2),
    "available_link_rules": lambda s: conversations.available_link_rules(s),
    "find_shared_prefixes": lambda s: shared_prefixes.find_shared_prefixes(s),
    "prefix_reuse": lambda s: prefix_reuse.prefix_reuse(s),
}


def _same(a, b, path="result"):
    """Equality of analysis results (frames, arrays, records, numbers; NaN equals NaN).

    Floats to 1e-12 relative: multi-threaded sums (polars group_by, DuckDB) add in an order that
    changes from run to run, so the same store analysed twice differs in the last bits already.
    """
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, pl.DataFrame):
        assert_frame_equal(a, b, check_exact=False, rel_tol=1e-12, abs_tol=0.0)
    elif isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, err_msg=path)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=0), path
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


@pytest.mark.parametrize("name", sorted(ANALYSES))
def test_analysis_same_on_frame_and_store(sources, name):
    store, source, _ = sources
    _same(ANALYSES[name](source), ANALYSES[name](store), name)


@pytest.mark.parametrize("area_id", ["overview", "arrivals", "periodicity", "lengths", "clients", "conversations"])
def test_area_same_on_frame_and_store(sources, area_id):
    from servelab.reports.areas import get_area

    store, source, _ = sources
    area = get_area(area_id)
    options = {"gof": None} if area_id == "arrivals" else {}
    on_frame = area.measure(source, budget=Budget.quick(), seed=1, **options)
    on_store = area.measure(store, budget=Budget.quick(), seed=1, **options)
    t_frame, t_store = area.detail_tables(on_frame), area.detail_tables(on_store)
    assert t_frame.keys() == t_store.keys() and len(t_store) > 0
    for key in t_store:
        _same(t_frame[key], t_store[key], f"{area_id}.{key}")
    verdicts = [(f.id, f.verdict) for f in area.findings(on_store)]
    assert [(f.id, f.verdict) for f in area.findings(on_frame)] == verdicts


def test_manifest_and_rows_match_the_store(sources):
    store, source, frame = sources
    assert isinstance(source, FrameSource) and isinstance(store, TraceStore)
    assert source.columns == store.columns and source.n_requests == store.n_requests == N
    assert source.manifest["span_s"] == store.manifest["span_s"]
    assert source.origin == store.origin and source.timezone == "UTC"
    # the clock is detected from the timestamps (the 1-s floor), as a store without one detects it
    assert source.clock == store.clock and source.clock_s == pytest.approx(1.0)
    assert source.manifest["detected_clock"] == store.clock.to_json() and "clock" not in source.manifest
    assert source.to_polars().equals(pl.read_parquet(store.requests_path))
    assert source.query("SELECT count(*) AS n, sum(input_tokens) AS s FROM requests").row(0) == \
        (N, int(frame["input_tokens"].sum()))


def test_as_source_accepts_every_kind(sources, tmp_path):
    store, source, frame = sources
    assert as_source(store) is store and as_source(source) is source
    assert as_source(store.path).path == store.path and as_source(str(store.path)).n_requests == N
    for kind in (frame, frame.lazy(), frame.to_arrow(), frame.to_arrow().to_batches()[0]):
        assert as_source(kind).to_polars().equals(source.to_polars()), type(kind).__name__


def test_upsampling_window_cv_writes_no_store(tmp_path, monkeypatch):
    """window_cv is window_stats on the arrivals; no temporary store is written any more."""
    import tempfile

    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 7_200, 3_000))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = window_cv(t, window_s=600.0)
    assert list(tmp_path.iterdir()) == []
    reference = arrivals.window_stats(write_store(pl.DataFrame({"timestamp": t}), tmp_path / "s"),
                                      window_s=600.0, fill_idle=True)
    assert out.equals(reference.select(out.columns))


@pytest.mark.parametrize(("frame", "error", "match"), [
    (pl.DataFrame({"t": [1.0]}), TraceFormatError, r"lacks the required 'timestamp' column; columns found: \['t'\]"),
    (pl.DataFrame({"timestamp": [1.0], "prompt": ["x"]}), TraceFormatError, r"columns \['prompt'\] are not in the canonical"),
    (pl.DataFrame({"timestamp": [1.0, None]}), TraceFormatError, r"'timestamp' .* got 1 null and 0 non-finite"),
    (pl.DataFrame({"timestamp": [1.0, float("inf")]}), TraceFormatError, r"got 0 null and 1 non-finite"),
    (pl.DataFrame({"timestamp": ["1.0", "soon"]}), TraceFormatError, r"column 'timestamp' .* 1 values do not convert to the canonical DOUBLE; e.g. 'soon'"),
    (pl.DataFrame({"timestamp": [1.0], "input_tokens": [[1, 2]]}), TraceFormatError, r"column 'input_tokens' .* 1 values do not convert to the canonical BIGINT; e.g. '\[1, 2\]'"),
    (pl.DataFrame({"timestamp": [1.0, 2.0], "output_tokens": [3, -4]}), TraceFormatError, r"'output_tokens' .* 1 negative values \(smallest -4\)"),
    (pl.DataFrame({"timestamp": []}, schema={"timestamp": pl.Float64}), EmptyTraceError, r"has no rows"),
    ({"timestamp": [1.0]}, TypeError, r"polars DataFrame or LazyFrame or a pyarrow Table or RecordBatch; got dict"),
])
def test_bad_frames_are_refused(frame, error, match):
    with pytest.raises(error, match=match):
        as_source(frame)


def test_request_id_of_the_frame_is_replaced():
    """As in write_store: request_id is the position in (timestamp, input row) order."""
    source = frame_source(pa.table({"request_id": [7, 8, 9], "timestamp": [5.0, 1.0, 5.0], "input_tokens": [1, 2, 3]}))
    assert source.to_polars().rows() == [(0, 1.0, 2), (1, 5.0, 1), (2, 5.0, 3)]


def test_subset_of_a_frame_source(sources, tmp_path):
    """The report's deterministic subsets (quick mode) read a frame source like a store."""
    from servelab.reports.sampling import subset_store

    store, source, _ = sources
    cond = "timestamp < 86400"
    a = subset_store(source, cond, tmp_path / "a", description="first day")
    b = subset_store(store, cond, tmp_path / "b", description="first day")
    assert a.to_polars().equals(b.to_polars()) and 0 < a.n_requests < N
    assert a.manifest["extra"]["subset_of"] == "in-memory frame"

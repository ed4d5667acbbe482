"""fit_pool on an in-memory frame (polars / Arrow) gives the pool the store gives (issue 19 item 4)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from servelab.analysis.store import write_store
from servelab.fitting.pool_fit import fit_pool, frame_sha256


@pytest.fixture
def frame(rng):
    """Two clients of 1,500 Gamma / exponential arrivals each over ~20 min, with token counts."""
    a = np.cumsum(rng.gamma(0.5, 1.6, 1500))
    b = np.cumsum(rng.exponential(0.8, 1500))
    n = a.size + b.size
    return pl.DataFrame({"timestamp": np.concatenate([a, b]), "client_id": ["a"] * a.size + ["b"] * b.size,
                         "input_tokens": rng.integers(1, 2000, n), "output_tokens": rng.integers(1, 400, n)})


def _same_tables(x, y):
    for name in ("clients", "arrivals", "data"):
        # multi-threaded sums add in a run-dependent order: equal to 1e-12 relative, not bitwise
        assert_frame_equal(getattr(x, name), getattr(y, name), check_exact=False, rel_tol=1e-12, abs_tol=0.0)


def test_frame_and_store_give_the_same_pool(frame, tmp_path):
    kw = dict(window_s="5m", data_window_s="10m", clock="none", conversations=False)
    from_store = fit_pool(write_store(frame, tmp_path / "s"), **kw)
    from_polars = fit_pool(frame, **kw)
    from_arrow = fit_pool(frame.to_arrow(), **kw)
    _same_tables(from_store, from_polars)
    _same_tables(from_polars, from_arrow)
    src = from_polars.provenance["source"]
    assert src["format"] == "frame" and src["rows"] == frame.height and "path" not in src
    assert from_store.provenance["source"]["format"] == "store"
    # the digest is of the canonical table: the same rows from polars or Arrow digest the same
    assert from_arrow.provenance["source"]["frame_sha256"] == src["frame_sha256"]


def test_frame_digest_ignores_chunking_and_sees_one_changed_value():
    t = pa.table({"timestamp": [0.0, 1.0, 2.0, 3.0]})
    chunked = pa.concat_tables([t.slice(0, 1), t.slice(1, 3)])
    assert chunked.column(0).num_chunks == 2
    assert frame_sha256(chunked) == frame_sha256(t)
    assert frame_sha256(pa.table({"timestamp": [0.0, 1.0, 2.0, 3.5]})) != frame_sha256(t)


def test_spark_engine_refuses_a_frame(frame):
    with pytest.raises(ValueError, match="an in-memory frame runs on engine 'duckdb'"):
        fit_pool(frame, engine="spark", conversations=False)

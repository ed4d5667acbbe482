"""validate(max_requests=...) reads only the sampled clients' requests (issue 16: a 100 M-row store's
full read did not fit), and gets exactly what sample_clients picks from the full read."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from servelab.analysis.store import write_store
from servelab.generator import validation


def _store(tmp_path, rng, n=5_000, *, nulls=True):
    # ties on the timestamp keep their file order through the stable sort in both reads
    t = np.sort(rng.integers(0, 3_000, n)).astype(float)
    ids = rng.choice([f"c{i:02d}" for i in range(30)], n).astype(object)
    if nulls:
        ids[rng.random(n) < 0.05] = None
    frame = pl.DataFrame({"timestamp": t, "client_id": pl.Series(ids, dtype=pl.String),
                          "input_tokens": rng.integers(1, 100, n), "output_tokens": rng.integers(1, 50, n)})
    return write_store(frame, tmp_path / "s")


@pytest.mark.parametrize("bound, seed", [(1, 0), (700, 3), (2_500, 11), (4_999, 5), (5_000, 2)])
@pytest.mark.parametrize("nulls", [True, False])
def test_bounded_read_equals_sampling_the_full_read(tmp_path, rng, bound, seed, nulls):
    store = _store(tmp_path, rng, nulls=nulls)
    want, want_record = validation.sample_clients(validation._read(store), bound, seed=seed)
    got, got_record = validation._read_bounded(store, bound, seed=seed)
    assert_frame_equal(got, want)
    assert got_record == want_record
    if bound < 5_000:  # at most the bound, unless the one client always kept holds more
        assert got.height <= bound or got_record["clients"] == 1
        assert got_record["requests_total"] == 5_000 and got_record["clients"] >= 1


def test_bounded_read_rejects_a_bad_bound(tmp_path, rng):
    store = _store(tmp_path, rng, n=100)
    with pytest.raises(ValueError, match="bound must be a positive integer; got 0"):
        validation._read_bounded(store, 0, seed=0)

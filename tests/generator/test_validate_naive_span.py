"""The naive baseline's ``data_span`` (issue 17): out of sample, naive knows the past mix only."""
import numpy as np
import polars as pl
import pytest

from servelab.analysis.store import write_store
from servelab.fitting.pool_fit import fit_pool
from servelab.generator.exceptions import GenerationError
from servelab.generator.naive import naive_generate

DAY = 86400.0


def test_naive_takes_its_request_data_from_the_given_period(tmp_path):
    # one client: inputs of 100 tokens on day 1, 1000 on day 2; the same rate both days
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 2 * DAY, 4000))
    frame = pl.DataFrame({"timestamp": t, "client_id": "c", "input_tokens": np.where(t < DAY, 100, 1000),
                          "output_tokens": rng.integers(5, 50, t.size)})
    pool = fit_pool(write_store(frame, tmp_path / "s"), window_s="1h", conversations=False)
    day2 = naive_generate(pool, "pool", DAY, start=DAY, seed=1)
    past = naive_generate(pool, "pool", DAY, start=DAY, seed=1, data_span=(0.0, DAY))
    assert set(day2["input_tokens"].unique().to_list()) == {1000}
    assert set(past["input_tokens"].unique().to_list()) == {100}
    # the times are the generated period's either way
    assert past["timestamp"].equals(day2["timestamp"])
    with pytest.raises(GenerationError, match="data_span must be"):
        naive_generate(pool, "pool", DAY, start=DAY, seed=1, data_span=(DAY, 0.0))

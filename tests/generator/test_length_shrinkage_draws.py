"""The generator's side of length shrinkage (issue 17, :mod:`servelab.fitting.pool_shrinkage`).

Past the fitted span, a request of a client whose ``data_own_weight`` is lambda draws from the
client's own PMF with probability lambda and from the fitted center (the clients' PMFs weighted by
lambda) otherwise; inside it, from its own. Checked against those exact probabilities on a
two-client pool of one-value PMFs.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
from _genpools import make_pool

from servelab.fitting.pool_shrinkage import OWN_WEIGHT_COLUMN
from servelab.generator.generate import generate


#: the center a fit would record: the two clients' PMFs weighted by their lambdas (0.25 and 1)
CENTER = {"value": [100.0, 1000.0], "probability": [0.2, 0.8]}


def _two_client_pool(weight_a: float | None):
    """Clients a (input always 100) and b (always 1000) at equal rates over 2 h, the second hour
    past the fitted span (as an extension's would be)."""
    pool = make_pool({"a": [0.5] * 12, "b": [0.5] * 12}, cvs={"a": 1.0, "b": 1.0}, data_window_s=3600.0,
                     pmfs={"a": {"input_tokens": ([100.0], [1.0])}, "b": {"input_tokens": ([1000.0], [1.0])}})
    pool.provenance = {"extension": {"start_s": 3600.0}, "length_shrinkage": {"input_tokens": {"center": CENTER}}}
    if weight_a is not None:
        pool.clients = pool.clients.with_columns(pl.Series(OWN_WEIGHT_COLUMN, [
            json.dumps({"input_tokens": weight_a}), json.dumps({"input_tokens": 1.0})]))
    return pool


def test_past_the_fitted_span_a_request_draws_its_own_pmf_with_probability_lambda():
    out = generate(_two_client_pool(0.25), "pool", 7200.0, seed=3, conversations=False)
    a = out.filter(pl.col("client_id") == "a")
    inside = a.filter(pl.col("timestamp") < 3600.0)["input_tokens"].to_numpy()
    past = a.filter(pl.col("timestamp") >= 3600.0)["input_tokens"].to_numpy()
    # inside the fitted span a client's PMFs are what it sent
    assert inside.size > 1000 and set(np.unique(inside)) == {100}
    # past it: own (100) with probability 0.25, else the center (0.2 at 100): P(100) = 0.4
    assert set(np.unique(past)) == {100, 1000}
    share = (past == 100).mean()
    sd = np.sqrt(0.4 * 0.6 / past.size)
    assert past.size > 1000 and abs(share - 0.4) < 4 * sd
    # b (lambda 1) keeps its own everywhere
    assert set(out.filter(pl.col("client_id") == "b")["input_tokens"].unique().to_list()) == {1000}
    again = generate(_two_client_pool(0.25), "pool", 7200.0, seed=3, conversations=False)
    assert out.equals(again)  # the same seed, the same workload
    # no weights (older pools, ServeGen's): every request from its own PMF
    plain = generate(_two_client_pool(None), "pool", 7200.0, seed=3, conversations=False)
    assert set(plain.filter(pl.col("client_id") == "a")["input_tokens"].unique().to_list()) == {100}

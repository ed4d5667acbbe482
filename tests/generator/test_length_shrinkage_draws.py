"""The generator's side of length shrinkage (issue 17, :mod:`servelab.fitting.pool_shrinkage`).

A request of a client whose ``data_own_weight`` is lambda draws from the client's own PMF with
probability lambda and from the clients' PMFs over the fitted span weighted by lambda otherwise;
checked against those exact probabilities on a two-client pool of one-value PMFs.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
from _genpools import make_pool

from servelab.fitting.pool_shrinkage import OWN_WEIGHT_COLUMN
from servelab.generator.generate import generate


def _two_client_pool(weight_a: float | None):
    pool = make_pool({"a": [0.5] * 12, "b": [0.5] * 12}, cvs={"a": 1.0, "b": 1.0}, data_window_s=3600.0,
                     pmfs={"a": {"input_tokens": ([100.0], [1.0])}, "b": {"input_tokens": ([1000.0], [1.0])}})
    if weight_a is not None:
        pool.clients = pool.clients.with_columns(pl.Series(OWN_WEIGHT_COLUMN, [
            json.dumps({"input_tokens": weight_a}), json.dumps({"input_tokens": 1.0})]))
    return pool


def test_generator_draws_own_with_probability_lambda_else_the_clients_mean():
    out = generate(_two_client_pool(0.25), "pool", 7200.0, seed=3, conversations=False)
    a = out.filter(pl.col("client_id") == "a")["input_tokens"].to_numpy()
    b = out.filter(pl.col("client_id") == "b")["input_tokens"].to_numpy()
    # the center weighs the clients by lambda (equal requests): 0.25 / 1.25 at 100, 1 / 1.25 at 1000,
    # so P(100) = 0.25 + 0.75 * 0.2 = 0.4 for a; b (lambda 1) keeps its own
    assert set(np.unique(a)) <= {100, 1000} and set(np.unique(b)) == {1000}
    share = (a == 100).mean()
    sd = np.sqrt(0.4 * 0.6 / a.size)
    assert a.size > 2000 and abs(share - 0.4) < 4 * sd
    again = generate(_two_client_pool(0.25), "pool", 7200.0, seed=3, conversations=False)
    assert out.equals(again)  # the same seed, the same workload
    # no weights (older pools, ServeGen's): every request from its own PMF
    plain = generate(_two_client_pool(None), "pool", 7200.0, seed=3, conversations=False)
    assert set(plain.filter(pl.col("client_id") == "a")["input_tokens"].unique().to_list()) == {100}



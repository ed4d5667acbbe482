"""The load-length coupling table does not depend on the order its per-window cells arrive in.

``coupling_from_cells`` takes float sums over each client's windows in row order; the cells come
from a hash aggregate (DuckDB's or polars') whose row order varies from run to run, and fits of
one 268k-request trace with 1 and 4 DuckDB threads gave different ``coupling.parquet`` bytes.
The cells are sorted first; here the same cells, shuffled, must give the same table bit for bit.
"""
import numpy as np
import polars as pl

from servelab.fitting.pool_coupling import coupling_from_cells


def test_coupling_table_is_the_same_for_shuffled_cells():
    rng = np.random.default_rng(5)
    clients, windows = 4, 300
    c = np.repeat(np.arange(clients), windows)
    n = rng.integers(5, 200, c.size)
    # lengths rising with the window's rate for clients 0 and 1 (kept), flat for 2 and 3
    slope = np.array([0.4, 0.2, 0.0, 0.0])[c]
    mean_in = np.exp(6.0 + slope * np.log(n) + rng.normal(0.0, 0.3, c.size))
    per = pl.DataFrame({"c": c, "w": np.tile(np.arange(windows), clients), "n": n,
                        "input_tokens": mean_in, "input_tokens_var": mean_in ** 2 * rng.uniform(0.1, 1.0, c.size),
                        "output_tokens": mean_in / 3, "output_tokens_var": (mean_in / 3) ** 2})
    names = [f"k{i}" for i in range(clients)]
    want = coupling_from_cells(per, names, ["input_tokens", "output_tokens"], window_s=60.0)
    assert want["kept"].sum() >= 2  # the coupled clients are found: a table with content is compared
    for seed in range(3):
        got = coupling_from_cells(per.sample(fraction=1.0, shuffle=True, seed=seed), names,
                                  ["input_tokens", "output_tokens"], window_s=60.0)
        assert got.equals(want)

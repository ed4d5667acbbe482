"""``pmf_cdf`` searches runs of one group in that group's keys (issue 16: sampling speed); its
answers must be the bits of the one whole-table search it replaced (the reference below, written
out independently), for rows in runs and rows in no order, integer and fractional values, and
``x`` below, between, on and beyond a group's values."""
from __future__ import annotations

import numpy as np
import pytest

from servelab.generator.pmf import _entry_group, pmf_cdf, pmf_cdf_index, pmf_table


def _whole_table_cdf(table, g, x):
    key, span = pmf_cdf_index(table)
    q = g * 2 * span + np.minimum(x, span - 1.0)
    idx = np.searchsorted(key, q, side="right") - 1
    ok = (idx >= 0) & (_entry_group(table.cum[np.maximum(idx, 0)]) == g)
    return np.where(ok, table.cum[np.maximum(idx, 0)] - g, 0.0)


@pytest.mark.parametrize("seed", range(40))
def test_run_search_gives_the_whole_table_bits(seed):
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(1, 40))
    sizes = rng.integers(1, 30, n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    values = np.concatenate([np.sort(rng.choice(np.arange(-50, 400), s, replace=False)).astype(float) for s in sizes])
    if seed % 3 == 0:
        values = values + rng.random(values.size) * 0.3
    table = pmf_table(group, values, rng.random(group.size) + 1e-3)
    n = int(rng.integers(1, 5000))
    in_runs = seed % 2 == 0  # sorted groups: a few runs (run search); else the whole-table search
    g = np.sort(rng.integers(0, n_groups, n)) if in_runs else rng.integers(0, n_groups, n)
    x = rng.choice(np.r_[values, values + 0.5, values - 0.5, [-1e9, 1e9, 0.0]], n)
    got = pmf_cdf(table, g, x)
    assert got.tobytes() == _whole_table_cdf(table, g, x).tobytes()
    assert np.all((got >= 0) & (got <= 1))


@pytest.mark.parametrize("seed", range(40))
def test_pair_gives_two_searches_bits(seed):
    """``pmf_cdf_pair`` (one search for ``x - 0.5`` and ``x + 0.5``) equals two ``pmf_cdf`` calls,
    also where several entries lie between the two points (fractional values) and far outside."""
    from servelab.generator.pmf import pmf_cdf_pair

    rng = np.random.default_rng(100 + seed)
    n_groups = int(rng.integers(1, 30))
    sizes = rng.integers(1, 25, n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    step = 0.25 if seed % 2 else 1.0  # fractional values: up to four entries within one x +- 0.5
    values = np.concatenate([np.sort(rng.choice(np.arange(-40, 300), s, replace=False)) * step for s in sizes])
    table = pmf_table(group, values, rng.random(group.size) + 1e-3)
    n = int(rng.integers(1, 4000))
    g = np.sort(rng.integers(0, n_groups, n)) if seed % 4 < 2 else rng.integers(0, n_groups, n)
    x = np.rint(rng.choice(np.r_[values, values + 1, [-1e9, 1e9, 0.0]], n))
    lo, hi = pmf_cdf_pair(table, g, x - 0.5, x + 0.5)
    assert lo.tobytes() == _whole_table_cdf(table, g, x - 0.5).tobytes()
    assert hi.tobytes() == _whole_table_cdf(table, g, x + 0.5).tobytes()

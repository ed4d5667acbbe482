"""The lookups of :mod:`servelab.generator.pmf_lookup` (issue 16: sampling speed) must give the bits
of the searches they replace: the guide table the whole-table inverse-CDF search
(``pmf._search_whole``, written out independently below) for uniforms anywhere in [0, 1),
including 0 and the largest double below 1; the CDF grid two ``pmf_cdf`` searches for integers
inside the grid, below it, beyond it, and for non-integers."""
from __future__ import annotations

import numpy as np
import pytest

from servelab.generator.pmf import pmf_cdf_index, pmf_table, sample_pmf
from servelab.generator.pmf_lookup import cdf_around, cdf_grid, guide_table, sample_guided
from test_pmf_cdf_runs import _whole_table_cdf


def _whole_table_draw(table, g, u):
    key = g.astype(float) + u
    idx = np.searchsorted(table.cum, key, side="right")
    idx -= key >= g + 1.0  # u rounded up to g + 1: its own group's last value
    return table.values[np.minimum(idx, table.values.size - 1)]


def _random_table(rng, *, tiny: bool):
    n_groups = int(rng.integers(1, 200))
    sizes = rng.integers(1, 60, n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    values = np.concatenate([np.sort(rng.choice(np.arange(-50, 5000), s, replace=False)).astype(float) for s in sizes])
    prob = rng.random(group.size) + 1e-3
    if tiny:  # clustered CDF steps: many guide buckets hold two or more (searched)
        prob[rng.random(group.size) < 0.5] = 1e-9
    return pmf_table(group, values, prob), n_groups


@pytest.mark.parametrize("seed", range(30))
def test_guide_gives_the_whole_table_search(seed):
    rng = np.random.default_rng(seed)
    table, n_groups = _random_table(rng, tiny=seed % 2 == 1)
    guide = guide_table(table)
    assert guide is not None and guide.m & (guide.m - 1) == 0
    n = 20_000
    g = np.sort(rng.integers(0, n_groups, n)) if seed % 3 == 0 else rng.integers(0, n_groups, n)
    u = rng.random(n)
    u[:50], u[50:100] = 0.0, np.nextafter(1.0, 0.0)
    want = _whole_table_draw(table, g, u)
    assert sample_guided(table, guide, g, u).tobytes() == want.tobytes()
    assert sample_pmf(table, g, u).tobytes() == want.tobytes()  # sample_pmf reads the guide from 4,096 rows


def test_guide_not_built_beyond_its_budget():
    rng = np.random.default_rng(0)
    table, _ = _random_table(rng, tiny=False)
    assert guide_table(table, max_cells=10) is None


@pytest.mark.parametrize("seed", range(30))
def test_grid_gives_two_pmf_cdf_searches(seed):
    rng = np.random.default_rng(200 + seed)
    table, n_groups = _random_table(rng, tiny=False)
    index = pmf_cdf_index(table)
    grid = cdf_grid(table, index, max_cells=int(rng.integers(2_000, 400_000)))  # often cut below the top values
    assert grid is not None
    n = 20_000
    g = np.sort(rng.integers(0, n_groups, n)) if seed % 2 else rng.integers(0, n_groups, n)
    x = np.rint(rng.choice(np.r_[table.values, table.values + 1, [-1e9, 1e9, 0.0, -1.0]], n))
    x[:20] += 0.25  # not integers: searched
    below, upto = cdf_around(table, g, x, index=index, grid=grid)
    assert below.tobytes() == _whole_table_cdf(table, g, x - 0.5).tobytes()
    assert upto.tobytes() == _whole_table_cdf(table, g, x + 0.5).tobytes()


def test_grid_not_built_beyond_its_budget():
    table = pmf_table(np.zeros(3, dtype=np.int64), np.array([1.0, 5.0, 9.0]), np.full(3, 1 / 3))
    assert cdf_grid(table, max_cells=1) is None
    grid = cdf_grid(table)
    assert grid is not None and grid.n == 10

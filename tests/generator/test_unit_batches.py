"""Draws of many generation units at once: each unit's draws are the bytes it draws alone.

``renewal_units`` (arrivals) and ``sample_runs_units`` (request data) draw several units
together, each from its own random stream. The reference is every unit drawn alone (one unit per
call, a fresh stream of the same seed): the values and the stream's position afterwards (its next
draw) must be equal bit for bit. Arrivals: mixed families (one unit's draws come in several family
runs), stationary and continued units, units without cells and units that need several rounds of
draws. Data: long runs (multinomial counts), short runs (searched) and units of many short runs
(one search over the whole table), and a unit without requests.
"""
from __future__ import annotations

import numpy as np
import pytest

from servelab.generator.arrivals import arrival_law, renewal_units
from servelab.generator.exceptions import GenerationError
from servelab.generator.pmf import group_bounds, pmf_cdf, pmf_table, sample_pmf, sample_runs_units


def _rng(k: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(11, spawn_key=(1, k))))


@pytest.fixture(scope="module")
def units():
    cells = np.array([9, 0, 12, 3, 10])  # unit 1 has no cell
    n = int(cells.sum())
    fam = np.array(["gamma", "weibull", "lognormal", "exponential"] * 9)[:n]
    # Gamma with CV 10 at a few expected arrivals: its first round of draws often falls short
    law = arrival_law(fam, {"a": np.full(n, 0.01), "c": np.full(n, 0.7), "s": np.full(n, 1.2)})
    rate = np.linspace(0.01, 0.5, n)
    length = np.repeat([60.0, 60.0, 600.0, 37.5, 600.0], cells)
    first = np.linspace(0.0, 90.0, n)  # some beyond their unit's end: no arrival there
    stationary = np.array([True, True, False, True, False])
    return np.concatenate(([0], np.cumsum(cells))), rate, length, law, first, stationary


def test_units_drawn_together_equal_units_drawn_alone(units):
    ptr, rate, length, law, first, stationary = units
    rngs = [_rng(u) for u in range(ptr.size - 1)]
    cell, off, residual = renewal_units(rate, length, law, ptr, rngs, first=first, stationary=stationary)
    for u in range(ptr.size - 1):
        a, b = ptr[u], ptr[u + 1]
        alone = _rng(u)
        c1, o1, r1 = renewal_units(rate[a:b], length[a:b], law.take(np.arange(a, b)), [0, b - a], [alone],
                                   first=first[a:b], stationary=stationary[u:u + 1])
        mine = (cell >= a) & (cell < b)
        np.testing.assert_array_equal(cell[mine] - a, c1)
        assert off[mine].tobytes() == o1.tobytes()
        assert residual[a:b].tobytes() == r1.tobytes()
        assert rngs[u].random() == alone.random()  # the same position in the unit's stream
    assert cell.size > 500 and np.all(np.diff(cell) >= 0) and np.all(residual >= 0)


def test_the_units_need_several_rounds_of_draws(units, monkeypatch):
    # the equality above covers later rounds: one round does not cover these units
    import servelab.generator.arrivals as arrivals

    ptr, rate, length, law, first, stationary = units
    monkeypatch.setattr(arrivals, "_MAX_ROUNDS", 1)
    with pytest.raises(GenerationError, match="did not cover"):
        renewal_units(rate, length, law, ptr, [_rng(u) for u in range(ptr.size - 1)], first=first,
                      stationary=stationary)


def test_units_need_one_stream_each(units):
    ptr, rate, length, law, first, _ = units
    with pytest.raises(GenerationError, match="one random stream per unit"):
        renewal_units(rate, length, law, ptr, [_rng(0)], first=first)
    with pytest.raises(GenerationError, match="needs first"):
        renewal_units(rate, length, law, ptr, [_rng(u) for u in range(ptr.size - 1)])


def test_data_units_drawn_together_equal_units_drawn_alone():
    # three groups' PMFs: 2, 3 and 40 values
    group = np.repeat([0, 1, 2], [2, 3, 40])
    value = np.concatenate(([5.0, 9.0], [1.0, 2.0, 3.0], np.arange(40.0)))
    prob = np.concatenate(([0.3, 0.7], [0.2, 0.5, 0.3], np.full(40, 0.025)))
    table = pmf_table(group, value, prob)
    rng = np.random.default_rng(3)
    units = [np.repeat([0, 2, 1], [300, 5, 80]),  # long runs (multinomial) and a short run of the 40-value group
             np.zeros(0, dtype=np.int64),  # no request
             np.repeat([1, 0], [200, 1]),  # its first run continues the group of unit 0's last: not one run
             rng.integers(0, 3, 400)]  # many short runs: one uniform per request, whole-table search
    ptr = np.concatenate(([0], np.cumsum([u.size for u in units])))
    rngs = [_rng(u) for u in range(len(units))]
    together = sample_runs_units(table, np.concatenate(units), ptr, rngs)
    for u, g in enumerate(units):
        alone = _rng(u)
        assert together[ptr[u]:ptr[u + 1]].tobytes() == sample_runs_units(table, g, [0, g.size], [alone]).tobytes()
        assert rngs[u].random() == alone.random()
    # every draw is one of its group's values
    values = {0: {5.0, 9.0}, 1: {1.0, 2.0, 3.0}, 2: set(np.arange(40.0))}
    assert all(x in values[int(gi)] for x, gi in zip(together, np.concatenate(units)))


def test_pmf_draws_in_runs_equal_the_whole_table_search():
    # sample_pmf searches a run in its group's own CDF and scattered rows in the whole table: the
    # same (group, u) rows give the independent inverse CDF either way, u = 0 and u -> 1 included
    probs = {0: [0.3, 0.7], 1: [0.2, 0.5, 0.3], 2: [0.025] * 40}
    values = {0: [5.0, 9.0], 1: [1.0, 2.0, 3.0], 2: list(np.arange(40.0))}
    table = pmf_table(np.repeat([0, 1, 2], [2, 3, 40]), np.concatenate(list(values.values())),
                      np.concatenate(list(probs.values())))
    rng = np.random.default_rng(5)
    group = np.repeat([0, 1, 2], 300)  # three runs of 300: each searched in its group's CDF
    u = rng.random(group.size)
    # u -> 1 included: in group 1 and 2, g + u rounds up to g + 1 (the next group's first key)
    u[[0, 300, 600]], u[[299, 599, 899]] = 0.0, np.nextafter(1.0, 0.0)
    expected = np.array([values[g][int(np.searchsorted(np.cumsum(probs[g]), x, side="right"))] if x < 1 - 1e-12
                         else values[g][-1] for g, x in zip(group.tolist(), u.tolist())])
    scattered = rng.permutation(group.size)  # ~600 runs of about 1.5 rows: one search over the whole table
    assert np.array_equal(sample_pmf(table, group, u), expected)
    assert np.array_equal(sample_pmf(table, group[scattered], u[scattered]), expected[scattered])


def test_group_bounds_are_each_groups_entries():
    """group_bounds finds each group's entries (cum in (g, g + 1]) as a scan of the table does,
    for groups of one entry, of many, the last group, and repeated groups in any order."""
    rng = np.random.default_rng(4)
    sizes = np.array([1, 5, 2, 40, 1, 3])
    group = np.repeat(np.arange(sizes.size), sizes)
    value = np.concatenate([np.sort(rng.choice(1000, k, replace=False)) for k in sizes]).astype(float)
    table = pmf_table(group, value, rng.uniform(0.1, 1.0, group.size))
    ask = np.array([3, 0, 5, 1, 3, 4, 2, 5])
    lo, hi = group_bounds(table, ask)
    for g, a, b in zip(ask, lo, hi):
        rows = [i for i, c in enumerate(table.cum) if g < c <= g + 1]
        assert (a, b) == (rows[0], rows[-1] + 1)
        np.testing.assert_array_equal(table.values[a:b], value[group == g])
    assert lo.dtype == hi.dtype == np.int64


def test_pmf_table_cdf_of_a_late_group_is_its_own_running_sum():
    """After 1e5 groups of probability 1, a 2,000-value group's ``cum`` is ``g`` plus its exact CDF
    (math.fsum of its own probabilities) to within one unit in the last place of ``g`` (1.5e-11:
    ``cum`` holds no more); a running sum over the whole table, differenced at the group's start,
    was off by 1.3e-10 there (9 units: each of its ~2,000 additions rounds at the table's
    scale), and the last value is ``g + 1`` exactly either way."""
    import math

    rng = np.random.default_rng(8)
    n_single, k = 100_000, 2_000
    p_last = rng.uniform(0.01, 1.0, k)
    p_last /= p_last.sum()
    group = np.r_[np.arange(n_single), np.full(k, n_single)]
    prob = np.r_[np.ones(n_single), p_last]
    table = pmf_table(group, np.r_[np.zeros(n_single), np.arange(k, dtype=float)], prob)
    exact = np.array([math.fsum(p_last[:i + 1]) for i in range(k)]) / math.fsum(p_last)
    assert table.cum[-1] == n_single + 1.0
    assert np.abs(table.cum[n_single:] - (n_single + exact)).max() <= np.spacing(float(n_single))
    np.testing.assert_array_equal(table.cum[:n_single], np.arange(n_single) + 1.0)


def test_pmf_cdf_in_a_table_of_40000_groups():
    """pmf_cdf of every group of a 40,000-group table (two values each, 1 and 5, probabilities 0.3
    and 0.7) is the PMF's own CDF: 0 below 1, 0.3 from 1, 1 from 5 on. Groups from 16,384 on got
    0.7 at 5 and 0 at 1 when a group's last entry (cum = g + 1 exactly) was taken for the next
    group's."""
    n = 40_000
    group = np.repeat(np.arange(n), 2)
    table = pmf_table(group, np.tile([1.0, 5.0], n), np.tile([0.3, 0.7], n))
    g = np.arange(n)
    for x, want in ((0.5, 0.0), (1.0, 0.3), (3.0, 0.3), (5.0, 1.0), (9.0, 1.0)):
        got = pmf_cdf(table, g, np.full(n, x))
        np.testing.assert_allclose(got, want, atol=1e-9, err_msg=f"x = {x}")

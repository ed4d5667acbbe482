"""Request-data PMF sampling, vectorised over groups: many empirical PMFs in one table.

A :class:`PmfTable` concatenates PMFs (group ``g`` occupies CDF values in ``(g, g + 1]``), so one
``searchsorted`` draws from every request's own PMF; :func:`sample_runs` uses multinomial counts
for long runs of one group. :func:`aggregate_pmfs` mixes client PMFs weighted by expected
requests. Loops run over runs of groups, never over requests. This module knows nothing of pools.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

__all__ = ["PmfTable", "group_bounds", "pmf_cdf", "pmf_cdf_index", "pmf_cdf_pair", "pmf_table", "sample_pmf", "sample_runs",
           "sample_runs_units", "aggregate_pmfs"]

#: rows from which :func:`sample_pmf` reads a guide table (built once per table) instead of searching
_GUIDE_MIN_ROWS = 4096


@dataclass(frozen=True)
class PmfTable:
    """Concatenated PMFs; group ``g`` occupies ``cum`` values in ``(g, g + 1]``."""

    values: np.ndarray
    cum: np.ndarray

    @cached_property
    def guide(self):
        """The table's :class:`~servelab.generator.pmf_lookup.GuideTable` (None: too large), built on first use.

        Cached on the table: the generator draws from the same tables chunk after chunk.
        """
        from servelab.generator.pmf_lookup import guide_table  # pmf_lookup imports this module

        return guide_table(self)


def group_bounds(table: PmfTable, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each group's PMF lies in ``table``: its entries are ``table.values[lo:hi]``.

    Parameters
    ----------
    table : PmfTable
    group : numpy.ndarray of int
        Groups (any number, repeats allowed).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``lo`` and ``hi`` (int64) per group: the entries whose ``cum`` lies in ``(g, g + 1]``.
    """
    g = np.asarray(group).astype(float)
    return (np.searchsorted(table.cum, g, side="right").astype(np.int64),
            np.searchsorted(table.cum, g + 1.0, side="right").astype(np.int64))


def pmf_cdf_index(table: PmfTable) -> tuple[np.ndarray, float]:
    """The sorted search keys of :func:`pmf_cdf` over ``table`` (build once for many calls).

    Parameters
    ----------
    table : PmfTable

    Returns
    -------
    (numpy.ndarray, float)
        One key per table entry (group offset plus value, ascending) and the offset's scale.
    """
    span = float(np.max(np.abs(table.values))) + 1.0 if table.values.size else 1.0
    key = _entry_group(table.cum) * 2 * span + table.values
    return key, span


def _entry_group(cum: np.ndarray) -> np.ndarray:
    """The group of each table entry (as floats): ``cum`` lies in ``(g, g + 1]``, so the float just
    below it lies in ``[g, g + 1)``. (``floor(cum - 1e-12)`` put a group's last entry, ``cum = g + 1``
    exactly, in the next group from g = 16384 on, where 1e-12 is below half a unit in the last
    place of ``g``.)"""
    return np.floor(np.nextafter(cum, -np.inf))


def pmf_cdf(table: PmfTable, group: np.ndarray, x: np.ndarray, *,
            index: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """``P(value <= x)`` in each row's PMF group (values are sorted within a group).

    Parameters
    ----------
    table : PmfTable
    group : numpy.ndarray of int
        The PMF group of each row.
    x : numpy.ndarray
        One value per row.
    index : tuple, optional
        :func:`pmf_cdf_index` of ``table`` (built here when not given).

    Returns
    -------
    numpy.ndarray
        The CDF of the row's group at its ``x`` (0 below the group's smallest value, 1 at or
        beyond its largest).
    """
    key, span = pmf_cdf_index(table) if index is None else index
    # beyond the largest value the CDF is 1: clip there, or the key would run into the next group's
    q = group * 2 * span + np.minimum(np.asarray(x, dtype=float), span - 1.0)
    return _cdf_at(table, group, _search_keys(table, key, np.asarray(group), q))


def _cdf_at(table: PmfTable, group: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The CDF at entry ``idx`` of each row (:func:`_search_keys`), 0 where it is not in the row's group."""
    at = np.maximum(idx, 0)
    ok = (idx >= 0) & (_entry_group(table.cum[at]) == group)
    return np.where(ok, table.cum[at] - group, 0.0)


def pmf_cdf_pair(table: PmfTable, group: np.ndarray, x_lo: np.ndarray, x_hi: np.ndarray, *,
                 index: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(pmf_cdf(table, group, x_lo), pmf_cdf(table, group, x_hi))`` with one search (``x_lo <= x_hi``).

    The last key at or below ``x_hi`` is searched; the one at or below ``x_lo`` is the same entry
    or the one before it unless two or more entries lie in ``(x_lo, x_hi]`` (then those rows are
    searched again), so both answers are :func:`pmf_cdf`'s bits. For an input's mass between
    ``x - 0.5`` and ``x + 0.5`` that is one entry at most: one search instead of two.
    """
    key, span = pmf_cdf_index(table) if index is None else index
    group = np.asarray(group)
    base = group * 2 * span
    q_lo = base + np.minimum(np.asarray(x_lo, dtype=float), span - 1.0)
    q_hi = base + np.minimum(np.asarray(x_hi, dtype=float), span - 1.0)
    hi = _search_keys(table, key, group, q_hi)
    lo = hi.copy()
    over = (hi >= 0) & (key[np.maximum(hi, 0)] > q_lo)  # the entry at hi is above x_lo
    prev = hi - 1
    one = over & ((prev < 0) | (key[np.maximum(prev, 0)] <= q_lo))
    lo[one] = prev[one]
    again = over & ~one
    if again.any():
        lo[again] = np.searchsorted(key, q_lo[again], side="right") - 1
    return _cdf_at(table, group, lo), _cdf_at(table, group, hi)


def _search_keys(table: PmfTable, key: np.ndarray, group: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``searchsorted(key, q, side="right") - 1``: the last entry with a key <= ``q`` (-1: none).

    Rows that come in runs of one group (a client's requests, in cell order: a few hundred runs
    for millions of rows) are searched in their group's own keys, which stay in cache; the index
    is the one the whole-table search finds whenever it lands in the row's group, and otherwise
    one that is not in the row's group either (the entry before the group), so
    :func:`pmf_cdf`'s answer is the same. Rows without runs: one search of the whole table.
    """
    n = group.size
    if n == 0:
        return np.zeros(0, np.int64)
    change = np.empty(n, bool)
    change[0] = True
    np.not_equal(group[1:], group[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    if starts.size > max(64, n // 256):
        return np.searchsorted(key, q, side="right") - 1
    ends = np.concatenate((starts[1:], [n]))
    lo, hi = group_bounds(table, group[starts])
    idx = np.empty(n, np.int64)
    for s, e, a, b in zip(starts.tolist(), ends.tolist(), lo.tolist(), hi.tolist()):  # a loop over runs
        idx[s:e] = np.searchsorted(key[a:b], q[s:e], side="right") + (a - 1)
    return idx


@dataclass(frozen=True)
class _Runs:
    """Runs of equal group values within units (a run never crosses a unit's bound).

    Run ``r`` is rows ``starts[r]:ends[r]`` of group ``group[r]``; unit ``u`` holds runs
    ``unit_runs[u]:unit_runs[u + 1]``. A unit of many short runs (``whole[u]``: more than
    ``max(64, size // 256)`` runs) is searched in the whole table (:func:`_search_whole`); the runs
    of the other units carry ``table.cum[lo[r]:hi[r]]``, their group's CDF (:func:`_search_run`;
    0 for runs of ``whole`` units).
    """

    starts: np.ndarray
    ends: np.ndarray
    group: np.ndarray
    unit_runs: np.ndarray
    whole: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def _find_runs(table: PmfTable, group: np.ndarray, ptr: np.ndarray) -> _Runs:
    """The :class:`_Runs` of ``group`` cut into units at ``ptr`` (``group`` non-empty)."""
    n = group.size
    size = np.diff(ptr)
    change = np.ones(n, bool)
    change[1:] = group[1:] != group[:-1]
    change[ptr[:-1][size > 0]] = True  # a run never crosses units
    starts = np.flatnonzero(change)
    ends = np.concatenate((starts[1:], [n]))  # not np.r_: ~10 us a call, per field and unit
    unit = np.searchsorted(ptr, starts, side="right") - 1
    unit_runs = np.searchsorted(unit, np.arange(size.size + 1))
    whole = np.diff(unit_runs) > np.maximum(64, size // 256)
    g_run = group[starts]
    lo = np.zeros(starts.size, np.int64)
    hi = np.zeros(starts.size, np.int64)
    kept = ~whole[unit]
    if kept.any():
        lo[kept], hi[kept] = group_bounds(table, g_run[kept])
    return _Runs(starts=starts, ends=ends, group=g_run, unit_runs=unit_runs, whole=whole, lo=lo, hi=hi)


def _search_run(table: PmfTable, g: int, a: int, b: int, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws of one run of group ``g`` (uniforms ``u``), searched in its own CDF ``table.cum[a:b]``.

    The group's CDF is short and stays in cache; for ``u`` in [0, 1) the index is the one a search
    of the whole table would find.
    """
    local = np.searchsorted(table.cum[a:b], g + u, side="right")
    return table.values[a:b][np.minimum(local, b - a - 1)]


def _search_whole(table: PmfTable, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws of rows that do not come in runs: one search over the whole table.

    ``g + u`` rounds up to ``g + 1`` for ``u`` within an ulp of 1 (``g >= 1``; more often the
    larger ``g``): that key finds the next group's first entry, so it is moved back one, to its
    own group's last value (where :func:`_search_run`'s clip puts it).
    """
    key = group.astype(float) + u
    idx = np.searchsorted(table.cum, key, side="right")
    idx -= key >= group + 1.0
    return table.values[np.minimum(idx, table.values.size - 1)]


def sample_runs(table: PmfTable, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Independent draws from each request's group PMF, fast when groups come in long runs.

    A run of ``m`` requests of one group with ``k`` values and ``m >= k / 4`` gets multinomial
    counts ``(m; p)`` over the values, repeated and randomly permuted: exactly ``m`` independent
    draws from the PMF, in ``O(k + m)`` instead of ``O(m log k)``. Shorter runs, and requests that
    do not come in runs, use inverse-CDF search (:func:`sample_pmf`). (One unit of
    :func:`sample_runs_units`: the same draws from ``rng``.)
    """
    group = np.asarray(group)
    return sample_runs_units(table, group, np.array([0, group.size]), [rng])


def sample_runs_units(table: PmfTable, group: np.ndarray, ptr, rngs) -> np.ndarray:
    """:func:`sample_runs` of several units at once, unit ``u`` (``group[ptr[u]:ptr[u + 1]]``) from ``rngs[u]``.

    Each unit draws from its stream exactly what :func:`sample_runs` draws for it alone (same
    calls, same order), so the values are the same bytes; the runs (:func:`_find_runs`) and the PMF
    weights are found for all units at once, and the rows of units without runs are searched
    together. A short run is searched in its group's CDF like :func:`sample_pmf`'s runs
    (:func:`_search_run`). Python loops run over units and runs.
    """
    group = np.asarray(group)
    ptr = np.asarray(ptr, dtype=np.int64)
    n = group.size
    out = np.empty(n)
    if n == 0:
        return out
    size = np.diff(ptr)
    runs = _find_runs(table, group, ptr)
    multi = 4 * (runs.ends - runs.starts) >= runs.hi - runs.lo
    u = np.empty(n)
    whole = np.zeros(n, bool)  # rows of units searched in the whole table
    weights: dict[int, np.ndarray] = {}
    bounds = (runs.starts.tolist(), runs.ends.tolist(), runs.group.tolist(), runs.lo.tolist(), runs.hi.tolist(),
              multi.tolist())
    for unit in np.flatnonzero(size > 0).tolist():  # a loop over units, then runs: never requests
        rng = rngs[unit]
        if runs.whole[unit]:
            u[ptr[unit]:ptr[unit + 1]] = rng.random(int(size[unit]))
            whole[ptr[unit]:ptr[unit + 1]] = True
            continue
        for r in range(runs.unit_runs[unit], runs.unit_runs[unit + 1]):
            s, e, g, a, b = bounds[0][r], bounds[1][r], bounds[2][r], bounds[3][r], bounds[4][r]
            if bounds[5][r]:
                p = weights.get(g)
                if p is None:
                    p = np.clip(np.diff(table.cum[a:b] - g, prepend=0.0), 0.0, None)
                    p = weights[g] = p / p.sum()
                draws = np.repeat(table.values[a:b], rng.multinomial(e - s, p))
                rng.shuffle(draws)
                out[s:e] = draws
            else:
                out[s:e] = _search_run(table, g, a, b, rng.random(e - s))
    if whole.all():
        out[:] = _draw_whole(table, group, u)
    elif whole.any():
        out[whole] = _draw_whole(table, group[whole], u[whole])
    return out


def _draw_whole(table: PmfTable, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`_search_whole`'s draws, through the table's guide when there are many (the same bits)."""
    if group.size >= _GUIDE_MIN_ROWS and table.guide is not None:
        from servelab.generator.pmf_lookup import sample_guided

        return sample_guided(table, table.guide, group, u)
    return _search_whole(table, group, u)


def pmf_table(group: np.ndarray, value: np.ndarray, prob: np.ndarray) -> PmfTable:
    """Build a table from rows sorted by (group, value); groups are 0..G-1, each non-empty.

    Each group's CDF is its own running sum (the groups of one size summed together, a loop over
    the distinct group sizes): a running sum over the whole table, differenced per group, rounded
    each addition at the table's scale (after 1e5 groups of probability 1, a 2,000-value group's
    ``cum`` was off by 1.3e-10, 9 units in the last place of ``g``; now within one).
    """
    group = np.asarray(group)
    prob = np.asarray(prob, dtype=float)
    total = np.bincount(group, weights=prob)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    size = np.diff(np.r_[starts, group.size])
    local = np.empty(group.size)
    order = np.argsort(size, kind="stable")
    cuts = np.r_[0, np.flatnonzero(np.diff(size[order])) + 1, order.size]
    for i in range(cuts.size - 1):  # a loop over distinct group sizes, never groups
        chosen = order[cuts[i]:cuts[i + 1]]
        rows = starts[chosen][:, None] + np.arange(size[chosen[0]])
        local[rows] = np.cumsum(prob[rows], axis=1)
    within = local / total[group]
    within[np.r_[starts[1:] - 1, group.size - 1]] = 1.0
    return PmfTable(values=value.astype(float), cum=group.astype(float) + within)


def sample_pmf(table: PmfTable, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one value per request from its group's PMF (``u`` uniform [0, 1)).

    When requests come in long runs of the same group (as they do in cell order: one client, one
    data window), each run is searched in its own group's short CDF, which stays in cache; the
    loop runs over runs, never requests. Otherwise one search over the whole table. The runs and
    both searches are :func:`sample_runs_units`' (one unit, whose uniforms are ``u``).
    """
    group = np.asarray(group)
    n = group.size
    if n == 0:
        return np.zeros(0)
    u = np.asarray(u, dtype=float)
    if n >= _GUIDE_MIN_ROWS and table.guide is not None:  # no binary search: the same draws (issue 16)
        return _draw_whole(table, group, u)
    runs = _find_runs(table, group, np.array([0, n]))
    if runs.whole[0]:
        return _search_whole(table, group, u)
    out = np.empty(n)
    for s, e, g, a, b in zip(runs.starts.tolist(), runs.ends.tolist(), runs.group.tolist(), runs.lo.tolist(),
                             runs.hi.tolist()):  # a loop over runs, never requests
        out[s:e] = _search_run(table, g, a, b, u[s:e])
    return out


def aggregate_pmfs(data: pl.DataFrame, weights: pl.DataFrame, *, by_window: bool) -> pl.DataFrame:
    """Mixture of client PMFs weighted by expected requests.

    Parameters
    ----------
    data : polars.DataFrame
        Long PMFs ``[client_id, window_start, field, value, probability]``.
    weights : polars.DataFrame
        ``[client_id, window_start, weight]``: expected requests of the client in that data window.
    by_window : bool
        One mixture per data window (``window_start`` kept) or one for the whole period.

    Returns
    -------
    polars.DataFrame
        ``[window_start?, field, value, probability]`` with probabilities summing to 1 per group.
    """
    keys = ["window_start", "field"] if by_window else ["field"]
    mixed = (
        data.join(weights, on=["client_id", "window_start"], how="inner")
        .filter(pl.col("weight") > 0)
        .with_columns(
            (pl.col("probability") / pl.col("probability").sum().over(["client_id", "window_start", "field"])
             * pl.col("weight")).alias("mass")
        )
        .group_by([*keys, "value"])
        .agg(pl.col("mass").sum())
    )
    return (
        mixed.with_columns((pl.col("mass") / pl.col("mass").sum().over(keys)).alias("probability"))
        .drop("mass")
        .sort([*keys, "value"])
    )

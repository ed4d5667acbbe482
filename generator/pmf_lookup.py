"""Precomputed lookups that answer :mod:`~servelab.generator.pmf`'s searches without a binary search.

A binary search of a random query costs about ``log2(k)`` mispredicted branches (50-80 ns a row for
the generator's PMFs of a few hundred to a few thousand entries); the generator makes one or two
per request (issue 16). Two exact shortcuts, built once per table and reused by every chunk:

- :class:`CdfGrid`: :func:`~servelab.generator.pmf.pmf_cdf` of every group at the half-integers
  ``-0.5, 0.5, ..., n - 0.5``, so the CDF pair around an integer ``x`` (:func:`cdf_around`) is two
  reads of one row;
- :class:`GuideTable`: a guide table of each group's CDF in power-of-two buckets, so an
  inverse-CDF draw (:func:`sample_guided`) reads its bucket's bounds and compares once.

Both give the bits of the searches they replace (the grid is filled by those searches; a guide
bucket only narrows where the search would land, and a row whose bucket holds two or more CDF
steps is searched as before). Every function is vectorised over rows; loops run over nothing
larger than a table. This module draws no random numbers and knows nothing of pools.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servelab.generator.pmf import PmfTable, _cdf_at, pmf_cdf_index, pmf_cdf_pair

__all__ = ["CdfGrid", "GuideTable", "cdf_around", "cdf_grid", "guide_table", "sample_guided"]

#: largest grid or guide (entries); a bigger one is not built and the searches are used
MAX_CELLS = 1 << 21
#: guide buckets per CDF entry (rounded up to a power of two): few buckets hold two steps
_BUCKETS_PER_ENTRY = 4
#: most groups a guide is built for (its build loops over groups)
_MAX_GUIDE_GROUPS = 4096


@dataclass(frozen=True)
class CdfGrid:
    """``pmf_cdf(table, g, h - 0.5)`` for every group ``g`` and ``h = 0 .. n``, row by row.

    ``cdf[g * (n + 1) + h]``; a group absent from the table has a row of zeros (never read).
    """

    n: int
    cdf: np.ndarray


def cdf_grid(table: PmfTable, index: tuple[np.ndarray, float] | None = None, *,
             max_cells: int = MAX_CELLS) -> CdfGrid | None:
    """The :class:`CdfGrid` of ``table`` up to its largest value (None when it would exceed ``max_cells``).

    Each cell is :func:`~servelab.generator.pmf.pmf_cdf` of the same float query, so a read gives
    its bits. The grid is cut at ``max_cells // groups - 1`` half-integers when the values run
    further (rows beyond it are searched by :func:`cdf_around`).
    """
    if table.values.size == 0:
        return None
    key, span = pmf_cdf_index(table) if index is None else index
    n_groups = int(np.floor(np.nextafter(table.cum[-1], -np.inf))) + 1
    n = min(int(np.ceil(max(float(table.values.max()), 0.0))) + 1, max_cells // n_groups - 1)
    if n < 1:
        return None
    group = np.repeat(np.arange(n_groups, dtype=np.int64), n + 1)
    x = np.tile(np.arange(n + 1, dtype=float) - 0.5, n_groups)
    # pmf_cdf's own query and whole-table search (its run search gives the same CDF, pmf_cdf_runs)
    q = group * 2 * span + np.minimum(x, span - 1.0)
    return CdfGrid(n=n, cdf=_cdf_at(table, group, np.searchsorted(key, q, side="right") - 1))


def cdf_around(table: PmfTable, group: np.ndarray, x: np.ndarray, *, index: tuple[np.ndarray, float] | None = None,
               grid: CdfGrid | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``pmf_cdf_pair(table, group, x - 0.5, x + 0.5)``, read from ``grid`` where ``x`` is an integer in it.

    Parameters
    ----------
    table : PmfTable
    group : numpy.ndarray of int
        The PMF group of each row.
    x : numpy.ndarray of float
        One value per row (rows with a non-integer ``x``, or one outside the grid, are searched).
    index : tuple, optional
        :func:`~servelab.generator.pmf.pmf_cdf_index` of ``table``.
    grid : CdfGrid, optional
        :func:`cdf_grid` of ``table`` (None: every row is searched).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The CDF of each row's group just below and just above ``x`` (the mass of ``x`` between them).
    """
    x = np.asarray(x, dtype=float)
    group = np.asarray(group)
    if grid is None:
        return pmf_cdf_pair(table, group, x - 0.5, x + 0.5, index=index)
    # x in [0, n - 1] and whole: its pair is cells x and x + 1 of its group's row
    xi = np.clip(x, -1.0, grid.n).astype(np.int64)
    ok = (xi == x) & (xi >= 0) & (xi < grid.n)
    cell = group * (grid.n + 1) + xi
    if ok.all():
        return grid.cdf[cell], grid.cdf[cell + 1]
    cell = np.where(ok, cell, 0)
    below, upto = grid.cdf[cell], grid.cdf[cell + 1]
    miss = np.flatnonzero(~ok)
    below[miss], upto[miss] = pmf_cdf_pair(table, group[miss], x[miss] - 0.5, x[miss] + 0.5, index=index)
    return below, upto


@dataclass(frozen=True)
class GuideTable:
    """Each group's CDF in ``m`` buckets of ``[0, 1]`` (``m`` a power of two), ``m + 1`` per group.

    For a draw ``v`` (the query minus its group) in bucket ``j = floor(v * m)``, the number of CDF
    entries ``<= v`` lies between the entries ``<= j / m`` and those ``< (j + 1) / m``:

    - ``first[g * (m + 1) + j]``: the table position of the first entry ``> j / m`` (clipped to
      the group's last entry, where a search clips it);
    - ``steps[...]``: how many entries lie in the bucket (0, 1, or 2 for two or more).
    """

    m: int
    first: np.ndarray
    steps: np.ndarray


def guide_table(table: PmfTable, *, max_cells: int = MAX_CELLS) -> GuideTable | None:
    """The :class:`GuideTable` of ``table`` (None when it would exceed ``max_cells`` entries)."""
    if table.values.size == 0:
        return None
    group_of = np.floor(np.nextafter(table.cum, -np.inf)).astype(np.int64)
    n_groups = int(group_of[-1]) + 1
    largest = int(np.bincount(group_of, minlength=n_groups).max())
    m = 1 << int(np.ceil(np.log2(_BUCKETS_PER_ENTRY * largest)))
    if n_groups * (m + 1) > max_cells or n_groups > _MAX_GUIDE_GROUPS:
        return None
    edge = np.arange(m + 1, dtype=float) / m  # exact: m is a power of two
    bounds = np.searchsorted(group_of, np.arange(n_groups + 1), side="left")
    first = np.empty(n_groups * (m + 1), dtype=np.int64)
    steps = np.empty(n_groups * (m + 1), dtype=np.int8)
    for g in range(n_groups):  # a loop over groups: each searches its own local CDF, exactly
        a, b = int(bounds[g]), int(bounds[g + 1])
        local = table.cum[a:b] - g  # exact (cum and g within a factor of two, or g = 0)
        lo = np.searchsorted(local, edge, side="right")  # entries <= j / m
        hi = np.searchsorted(local, edge + 1.0 / m, side="left")  # entries < (j + 1) / m
        cells = slice(g * (m + 1), (g + 1) * (m + 1))
        first[cells] = a + np.minimum(lo, max(b - a - 1, 0))
        steps[cells] = np.minimum(hi - lo, 2)
    return GuideTable(m=m, first=first, steps=steps)


def sample_guided(table: PmfTable, guide: GuideTable, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`~servelab.generator.pmf.sample_pmf`'s draws (same bits), through ``guide``.

    A row's query is ``group + u`` (as the searches form it); its bucket gives the answer outright
    (no step in it) or after one comparison (one step); rows of buckets with more steps are
    searched in the whole table as :func:`~servelab.generator.pmf.sample_pmf` does.
    """
    from servelab.generator.pmf import _search_whole

    group = np.asarray(group, dtype=np.int64)
    key = group + np.asarray(u, dtype=float)
    v = key - group  # exact: key lies in [g, g + 1]
    cell = group * (guide.m + 1) + (v * guide.m).astype(np.int64)
    pos = guide.first[cell]
    steps = guide.steps[cell]
    # one step in the bucket: past it when its entry is <= the query (the search's side="right")
    pos += (steps == 1) & (table.cum[pos] <= key)
    out = table.values[pos]
    many = np.flatnonzero(steps > 1)
    if many.size:
        out[many] = _search_whole(table, group[many], np.asarray(u, dtype=float)[many])
    return out

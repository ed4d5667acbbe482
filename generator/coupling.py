"""The generator's load-length coupling (issue 17 item 3).

A pool's ``coupling`` table (:mod:`servelab.fitting.pool_coupling`) keeps, per client and length
field, the elasticity ``b`` of the client's mean length with its rate when the fitted slope test
kept it. :func:`coupling_plan` turns the kept rows into per-(pool client) arrays once per workload,
and :func:`apply_coupling_plan` scales the lengths drawn for each request by

.. math:: f = r^{b} / E[r^{b}],

with ``r`` the pool rate of the request's client in the request's arrival window, and the
normaliser :math:`E[r^b]` taken over the client's expected requests in the generation period
(weights ``rate x window time in the period``), so each client keeps its mean length. The
normaliser is fixed before the first draw, so the result does not depend on how the workload is
cut into chunks. A request in a window of pool rate 0 (a follow-up turn) is left as drawn; nulls
stay null. A pool without the table (older pools, ServeGen pools, the naive aggregate) is left
unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from servelab.generator.grid import WindowGrid, dense_row_sums

__all__ = ["CouplingPlan", "apply_coupling_plan", "coupling_plan"]


@dataclass(frozen=True)
class CouplingPlan:
    """Kept couplings as arrays over the generation period's grid.

    Attributes
    ----------
    fields : tuple of str
        The coupled length fields.
    elasticity, norm : numpy.ndarray
        ``(len(fields), P)``: ``b`` per pool client (0: not coupled) and :math:`E[r^b]`.
    window_start : numpy.ndarray
        The grid's window starts (W,).
    key : numpy.ndarray of int64
        The grid's active cells as ``client * W + window``, sorted.
    rate : numpy.ndarray
        Pool rate of each cell of ``key`` (> 0; absent cells are idle, rate 0).
    """

    fields: tuple[str, ...]
    elasticity: np.ndarray
    norm: np.ndarray
    window_start: np.ndarray
    key: np.ndarray
    rate: np.ndarray


def coupling_plan(pool, grid: WindowGrid, lo: float, hi: float) -> CouplingPlan | None:
    """The :class:`CouplingPlan` of ``pool`` over ``[lo, hi)`` (None when nothing is coupled)."""
    try:
        table = pool.lazy("coupling").filter(pl.col("kept")).collect()
    except (KeyError, AttributeError):  # no coupling table
        return None
    if table.height == 0:
        return None
    index = {c: i for i, c in enumerate(grid.pool_ids)}
    fields = tuple(sorted(table["field"].unique().to_list()))
    n_pool = len(grid.pool_ids)
    b = np.zeros((len(fields), n_pool))
    for i, f in enumerate(fields):  # two fields at most
        rows = table.filter(pl.col("field") == f)
        idx = np.array([index.get(c, -1) for c in rows["client_id"].to_list()], dtype=np.int64)
        ok = idx >= 0
        b[i, idx[ok]] = rows["elasticity"].to_numpy()[ok]
    a = np.asarray(grid.window_start, dtype=float)
    e = np.clip(np.minimum(a + grid.window_len, hi) - np.maximum(a, lo), 0.0, None)  # window time in the period
    n_w = a.size
    p, w, rate = grid.client, grid.cell_window, np.asarray(grid.rate, dtype=float)
    live = np.isfinite(rate) & (rate > 0)
    p, w, rate = p[live], w[live], rate[live]
    weight = rate * e[w]
    norm = np.ones_like(b)
    # sums over each client's windows as over its dense row (idle windows weigh 0): same bits
    total = dense_row_sums(p, w, weight, n_pool, n_w)
    for i in range(len(fields)):  # two fields at most
        num = dense_row_sums(p, w, weight * rate ** b[i][p], n_pool, n_w)
        norm[i] = np.where(total > 0, num / np.where(total > 0, total, 1.0), 1.0)
    key = p * n_w + w
    order = np.argsort(key, kind="stable")
    return CouplingPlan(fields=fields, elasticity=b, norm=norm, window_start=a, key=key[order], rate=rate[order])


def apply_coupling_plan(plan: CouplingPlan | None, fields: dict[str, np.ndarray], pool_index: np.ndarray,
                        t: np.ndarray) -> dict[str, np.ndarray]:
    """``fields`` (length arrays per request, NaN for null) with the coupled fields scaled.

    Parameters
    ----------
    plan : CouplingPlan or None
    fields : dict of str to numpy.ndarray
        The drawn request data of one unit.
    pool_index : numpy.ndarray of int
        Pool client of every request.
    t : numpy.ndarray
        Pool time of every request.
    """
    if plan is None or t.size == 0 or plan.key.size == 0:
        return fields
    w = np.clip(np.searchsorted(plan.window_start, t, side="right") - 1, 0, plan.window_start.size - 1)
    key = np.asarray(pool_index, dtype=np.int64) * plan.window_start.size + w
    out = dict(fields)
    for i, f in enumerate(plan.fields):
        if f not in out:
            continue
        # only the coupled clients' rows are scaled: the others (most) keep factor 1 without an
        # exp, a log or a rate lookup each (issue 16)
        rows = np.flatnonzero(plan.elasticity[i, pool_index] != 0)
        if rows.size == 0:
            continue
        r = _rates(plan, key[rows])
        live = np.isfinite(r) & (r > 0)
        if not live.any():
            continue
        p = pool_index[rows]
        factor = np.ones(t.size)
        factor[rows] = np.where(live, np.exp(plan.elasticity[i, p] * np.log(np.where(live, r, 1.0))) / plan.norm[i, p],
                                1.0)
        v = np.asarray(out[f], dtype=float)
        out[f] = np.where(v > 0, np.maximum(np.round(v * factor), 1.0), v)
    return out


def _rates(plan: CouplingPlan, key: np.ndarray) -> np.ndarray:
    """Pool rate of each (client, window) ``key`` (``client * W + window``), 0 for an idle one."""
    pos = np.minimum(np.searchsorted(plan.key, key), plan.key.size - 1)
    return np.where(plan.key[pos] == key, plan.rate[pos], 0.0)

"""The generator's load-length coupling (issue 17 item 3).

A pool's ``coupling`` table (:mod:`servelab.fitting.pool_coupling`) keeps, per client and length
field, the elasticity ``b`` of the client's mean length with its rate when the fitted slope test
kept it. :func:`coupling_plan` turns the kept rows into one factor per active (client, arrival
window) once per workload, and :func:`apply_coupling_plan` scales the lengths drawn for each
request by its cell's factor

.. math:: f = r^{b} / E_d[r^{b}],

with ``r`` the pool rate of the request's client in the request's arrival window, and the
normaliser :math:`E_d[r^b]` taken over the client's expected requests in the *same data window*
``d`` (weights ``rate x window time in the period``): each (client, data window) keeps the mean
length of the PMF its requests draw from. The factor only moves lengths between the arrival
windows of one data window: the coupling a data window's single PMF cannot hold. Between data
windows the PMFs already differ as the trace did; a normaliser over the whole period (before
2026-12-04) scaled a busy data window's PMF, which holds that window's long prompts already, up
again: on a 2 M-row sample of the 10 M store (6-h data windows, 600-s arrival windows) the
coupling then moved input_ks from 0.0018 to 0.0022 in sample and 0.0024 to 0.0037 past the split,
and the rate-input correlation not at all (-0.009 / -0.012 against the real 0.049). Where data
windows are as short as arrival windows every factor is 1. The factors are fixed before the first
draw, so the result does not depend on how the workload is cut into chunks. A request in a window
of pool rate 0 (a follow-up turn) is left as drawn; nulls stay null. A pool without the table
(older pools, ServeGen pools, the naive aggregate) is left unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from servelab.generator.grid import WindowGrid

__all__ = ["CouplingPlan", "apply_coupling_plan", "coupling_plan"]


@dataclass(frozen=True)
class CouplingPlan:
    """Kept couplings as per-cell factors over the generation period's grid.

    Attributes
    ----------
    fields : tuple of str
        The coupled length fields.
    elasticity : numpy.ndarray
        ``(len(fields), P)``: ``b`` per pool client (0: not coupled).
    window_start : numpy.ndarray
        The grid's window starts (W,).
    key : numpy.ndarray of int64
        The grid's active cells as ``client * W + window``, sorted.
    factor : numpy.ndarray
        ``(len(fields), len(key))``: each cell's :math:`r^b / E_d[r^b]` (1 for uncoupled clients).
    """

    fields: tuple[str, ...]
    elasticity: np.ndarray
    window_start: np.ndarray
    key: np.ndarray
    factor: np.ndarray


def coupling_plan(pool, grid: WindowGrid, lo: float, hi: float, *, data_anchor: float | None = None,
                  data_window_s: float | None = None) -> CouplingPlan | None:
    """The :class:`CouplingPlan` of ``pool`` over ``[lo, hi)`` (None when nothing is coupled).

    ``data_anchor`` and ``data_window_s`` place the data windows (the request-data sampler's grid:
    :class:`~servelab.generator.request_data.DataSampler`); an arrival window belongs to the data
    window of its start. Without them the whole period is one data window.
    """
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
    key = p * n_w + w
    order = np.argsort(key, kind="stable")
    p, w, rate, key = p[order], w[order], rate[order], key[order]
    weight = rate * e[w]
    # each cell's (client, data window) group, numbered in key order; sums over a group in that
    # order (numpy.bincount: one sequential pass, the same bits under any threads)
    if data_anchor is not None and data_window_s and data_window_s > 0:
        d = np.floor((a[w] - data_anchor) / data_window_s + 1e-9).astype(np.int64)
    else:
        d = np.zeros(p.size, dtype=np.int64)
    _, group = np.unique(np.stack([p, d]), axis=1, return_inverse=True)
    group = group.ravel()
    total = np.bincount(group, weights=weight)
    factor = np.ones((len(fields), p.size))
    for i in range(len(fields)):  # two fields at most
        coupled = b[i][p] != 0
        if not coupled.any():
            continue
        powered = np.where(coupled, np.exp(b[i][p] * np.log(rate)), 1.0)
        num = np.bincount(group, weights=weight * powered)
        norm = np.where(total > 0, num / np.where(total > 0, total, 1.0), 1.0)
        factor[i] = np.where(coupled, powered / norm[group], 1.0)
    return CouplingPlan(fields=fields, elasticity=b, window_start=a, key=key, factor=factor)


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
        # only the coupled clients' rows are looked up: the others (most) keep factor 1 (issue 16)
        rows = np.flatnonzero(plan.elasticity[i, pool_index] != 0)
        if rows.size == 0:
            continue
        pos = np.minimum(np.searchsorted(plan.key, key[rows]), plan.key.size - 1)
        hit = plan.key[pos] == key[rows]  # a cell of pool rate 0 (a follow-up turn): left as drawn
        factor = np.ones(t.size)
        factor[rows] = np.where(hit, plan.factor[i, pos], 1.0)
        v = np.asarray(out[f], dtype=float)
        out[f] = np.where(v > 0, np.maximum(np.round(v * factor), 1.0), v)
    return out

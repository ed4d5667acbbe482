"""The generator's hook for load-length coupling (issue 17 item 3).

:func:`couple_lengths` finds, for every generated request, its pool client and that client's pool
rate in the request's arrival window, and applies the pool's ``coupling`` table with
:func:`servelab.fitting.pool_coupling.apply_coupling`. A pool without the table (older pools,
ServeGen pools, the naive aggregate) is left unchanged.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from servelab.fitting.pool_coupling import apply_coupling
from servelab.generator.grid import WindowGrid

__all__ = ["couple_lengths"]


def couple_lengths(pool, frame: pl.DataFrame, grid: WindowGrid, sel: np.ndarray, client: np.ndarray,
                   t: np.ndarray) -> pl.DataFrame:
    """``frame`` (one row per generated request) with the pool's kept couplings applied.

    Parameters
    ----------
    pool : ClientPool
    frame : polars.DataFrame
        The request data, row ``i`` for the request at time ``t[i]`` of synthetic client
        ``client[i]``.
    grid : WindowGrid
        The generation period's grid.
    sel : array of int
        Pool index of every synthetic client.
    client, t : arrays
        Synthetic client and time of every request.
    """
    try:
        table = pool.lazy("coupling").filter(pl.col("kept")).collect()
    except (KeyError, AttributeError):  # no coupling table
        return frame
    if table.height == 0 or frame.height == 0:
        return frame
    p = sel[client]
    w = np.clip(np.searchsorted(grid.window_start, t, side="right") - 1, 0, grid.window_start.size - 1)
    ids = np.asarray(grid.pool_ids, dtype=object)[p]
    return apply_coupling(table, frame, ids, grid.rate[p, w])

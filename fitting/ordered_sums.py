r"""Grouped float sums added in row order, so that a fitted pool has the same bytes every run.

A polars ``group_by(...).agg(pl.col(x).sum())`` on many rows adds per-thread partial sums in an
order that depends on thread scheduling: a sum of non-integer weights (the window-corrected reuse
weights of :mod:`~servelab.fitting.pool_prefixes`) can differ in its last bit between two runs
of the same fit on the same store, and so can every probability divided by it. Integer counts
(``pl.len()``) do not have the problem; weighted sums do. :func:`grouped_sums` adds each group's
values in row order with :func:`numpy.bincount` (one sequential pass), whatever the number of
threads.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

__all__ = ["grouped_sums"]


def grouped_sums(frame: pl.DataFrame, keys: Sequence[str], **sums: str | pl.Expr) -> pl.DataFrame:
    """Sums per distinct combination of ``keys``, each added in ``frame``'s row order.

    Parameters
    ----------
    frame : polars.DataFrame
        Rows to sum; key columns must hold no nulls.
    keys : sequence of str
        Grouping columns (numeric or boolean).
    **sums : str or polars.Expr
        ``alias=column`` or ``alias=expression`` over ``frame``, each summed as float64 (a count
        is ``pl.lit(1.0)``: exact below 2**53 rows).

    Returns
    -------
    polars.DataFrame
        One row per distinct key combination, sorted by the keys (key columns keep their
        dtypes), then one float64 column per sum. The same bytes for the same ``frame``, under
        any number of polars or numpy threads.
    """
    keys = list(keys)
    if not keys:
        raise ValueError("grouped_sums needs at least one key column")
    if not sums:
        raise ValueError("grouped_sums needs at least one sum (alias=column or expression)")
    key_frame = frame.select(keys)
    if key_frame.null_count().sum_horizontal().item():
        raise ValueError(f"grouped_sums: key columns {keys} hold nulls")
    exprs = [(pl.col(v) if isinstance(v, str) else v).cast(pl.Float64).alias(a) for a, v in sums.items()]
    if frame.height == 0:
        return key_frame.clear().with_columns([pl.lit(0.0, pl.Float64).alias(a) for a in sums]).clear()
    values = frame.select(exprs)
    # each key column coded on its own (a 1-D unique: fast), the codes combined into one integer
    # key in the keys' order (lexicographic, as the sorted result), which a last 1-D unique numbers
    uniques, code = [], np.zeros(frame.height, dtype=np.int64)
    for k in keys:
        u, inv = np.unique(key_frame[k].to_numpy(), return_inverse=True)
        if u.size and code.max(initial=0) > (np.iinfo(np.int64).max - u.size) // u.size:
            raise ValueError(f"grouped_sums: too many distinct key combinations over {keys}")
        code = code * u.size + inv.ravel()
        uniques.append(u)
    combined, inverse = np.unique(code, return_inverse=True)
    inverse = inverse.ravel()
    cols, rest = {}, combined
    for k, u in zip(reversed(keys), reversed(uniques)):
        rest, idx = np.divmod(rest, u.size)
        cols[k] = u[idx]
    out = pl.DataFrame({k: cols[k] for k in keys})
    return out.with_columns([pl.col(k).cast(key_frame.schema[k]) for k in keys]
                            + [pl.Series(a, np.bincount(inverse, weights=values[a].to_numpy(), minlength=combined.size),
                                         dtype=pl.Float64) for a in sums])

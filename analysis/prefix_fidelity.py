r"""Prefix-cache fidelity: how close a candidate workload's prefix reuse is to a reference's (issue 15).

When both workloads carry ``prefix_blocks``, three numbers say whether a cache study on the
candidate would give the reference's answer:

- ``prefix_hit_rate``: the share of blocks an infinite prefix cache serves
  (:func:`~servelab.analysis.prefix_reuse.infinite_cache_hits`);
- ``prefix_lru_curve_distance``: the largest absolute difference, over cache capacities, between
  the two LRU hit-rate curves (share of blocks; capacities are the powers of two from 1 block up
  to the first that serves every reusable block of both workloads, so the infinite-cache level is
  included); in hit-rate units, so 0.05 is "5 points";
- ``reuse_distance_ks``: the two-sample KS distance between the LRU stack (reuse) distances of
  the re-accessed blocks of the two workloads (cold accesses are not distances and are left out:
  the hit rates above carry them).

Requests are taken in arrival order (``timestamp``, ties in row order). This module reads
traces and computes numbers; it does not plot and holds no block lists in its results.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from servelab.analysis.exceptions import TraceFormatError
from servelab.analysis.prefix_reuse import infinite_cache_hits, lru_hit_curve, prefix_distances, stack_distances
from servelab.analysis.store import TraceStore, open_store

__all__ = ["PREFIX_METRICS", "PrefixFidelity", "curve_capacities", "load_blocks", "prefix_fidelity", "prefix_rows"]

#: metric -> (kind, description), in the convention of :data:`servelab.analysis.fidelity.METRICS`
PREFIX_METRICS = {
    "prefix_hit_rate": ("value", "share of prompt blocks an infinite prefix cache serves"),
    "prefix_lru_curve_distance": ("distance", "largest |difference| of LRU block hit rates over capacities"),
    "reuse_distance_ks": ("distance", "KS D of LRU stack distances of re-accessed blocks"),
}


@dataclass(frozen=True)
class PrefixFidelity:
    """Prefix-cache fidelity of one candidate (see the module docstring).

    Attributes
    ----------
    reference_hit_rate, candidate_hit_rate : float
        Infinite-cache block hit rates.
    curve_distance : float
        Largest absolute difference of the LRU block hit-rate curves.
    worst_capacity : int
        The capacity (blocks) where it is reached.
    reuse_distance_ks : float
    n_capacities : int
        Capacities compared.
    """

    reference_hit_rate: float
    candidate_hit_rate: float
    curve_distance: float
    worst_capacity: int
    reuse_distance_ks: float
    n_capacities: int

    def to_dict(self) -> dict:
        return {"reference_hit_rate": self.reference_hit_rate, "candidate_hit_rate": self.candidate_hit_rate,
                "curve_distance": self.curve_distance, "worst_capacity": self.worst_capacity,
                "reuse_distance_ks": self.reuse_distance_ks, "n_capacities": self.n_capacities}


def load_blocks(trace) -> tuple[np.ndarray, np.ndarray] | None:
    """Flat block ids and list lengths of a trace's requests in arrival order; None when the
    trace has no ``prefix_blocks`` (or none is set).

    ``trace`` is a :class:`~servelab.analysis.store.TraceStore`, a store folder, a canonical
    ``.parquet`` file or a polars DataFrame.
    """
    if isinstance(trace, (str, os.PathLike)):
        path = Path(trace)
        if path.is_dir():
            trace = open_store(path)
        elif path.suffix == ".parquet":
            names = pl.read_parquet_schema(path)
            if "prefix_blocks" not in names or "timestamp" not in names:
                return None
            trace = pl.read_parquet(path, columns=["timestamp", "prefix_blocks"])
        else:
            return None
    if isinstance(trace, TraceStore):
        if "prefix_blocks" not in trace.columns:
            return None
        trace = pl.from_arrow(trace.read_arrow(["request_id", "timestamp", "prefix_blocks"])).sort("request_id").select(
            "timestamp", "prefix_blocks")
    if not isinstance(trace, pl.DataFrame):
        raise TypeError(f"trace must be a TraceStore, a path or a polars DataFrame; got {type(trace).__name__}")
    if "prefix_blocks" not in trace.columns or trace["prefix_blocks"].null_count() == trace.height:
        return None
    if "timestamp" not in trace.columns:
        raise TraceFormatError(f"a trace needs a 'timestamp' column; columns found: {trace.columns}")
    frame = trace.select("timestamp", pl.col("prefix_blocks").cast(pl.List(pl.Int64))).sort(
        "timestamp", maintain_order=True)
    lengths = frame["prefix_blocks"].list.len().fill_null(0).to_numpy().astype(np.int64)
    values = frame["prefix_blocks"].explode().drop_nulls().to_numpy().astype(np.int64)
    return values, lengths


def curve_capacities(*distances: np.ndarray) -> np.ndarray:
    """Powers of two from 1 up to the first capacity above every finite prefix distance given."""
    top = 1.0
    for d in distances:
        finite = d[np.isfinite(d)]
        if finite.size:
            top = max(top, float(finite.max()) + 1)
    return 2 ** np.arange(0, math.ceil(math.log2(top)) + 1, dtype=np.int64)


def prefix_fidelity(reference, candidate) -> PrefixFidelity | None:
    """Prefix-cache fidelity of ``candidate`` against ``reference``; None unless both carry blocks.

    Parameters
    ----------
    reference, candidate
        Stores, store folders, canonical Parquet files or polars DataFrames (see
        :func:`load_blocks`), or ``(values, lengths)`` pairs already loaded.
    """
    ref = reference if isinstance(reference, tuple) else load_blocks(reference)
    cand = candidate if isinstance(candidate, tuple) else load_blocks(candidate)
    if ref is None or cand is None or ref[1].sum() == 0 or cand[1].sum() == 0:
        return None
    dr, dc = prefix_distances(*ref), prefix_distances(*cand)
    caps = curve_capacities(dr, dc)
    cr = lru_hit_curve(dr, capacities=caps)["block_hit_rate"].to_numpy()
    cc = lru_hit_curve(dc, capacities=caps)["block_hit_rate"].to_numpy()
    diff = np.abs(cr - cc)
    worst = int(np.argmax(diff))
    sr, sc = stack_distances(*ref), stack_distances(*cand)
    sr, sc = sr[sr >= 0], sc[sc >= 0]
    ks = float(stats.ks_2samp(sr, sc).statistic) if sr.size and sc.size else float("nan")
    return PrefixFidelity(
        reference_hit_rate=float(infinite_cache_hits(*ref).mean()), candidate_hit_rate=float(infinite_cache_hits(*cand).mean()),
        curve_distance=float(diff[worst]), worst_capacity=int(caps[worst]), reuse_distance_ks=ks,
        n_capacities=int(caps.size))


def prefix_rows(reference, candidates: Sequence, names: Sequence[str]) -> pl.DataFrame:
    """Rows of :data:`PREFIX_METRICS` for :func:`servelab.analysis.fidelity.compare`'s table
    (``metric``, ``kind``, ``reference``, one column per candidate); no rows unless the reference
    carries ``prefix_blocks``. A candidate without blocks gets NaN."""
    schema = {"metric": pl.String, "kind": pl.String, "reference": pl.Float64, **{n: pl.Float64 for n in names}}
    ref = load_blocks(reference)
    if ref is None or ref[1].sum() == 0:
        return pl.DataFrame(schema=schema)
    table = {"metric": list(PREFIX_METRICS), "kind": [k for k, _ in PREFIX_METRICS.values()],
             "reference": [float(infinite_cache_hits(*ref).mean()), 0.0, 0.0]}
    for name, cand in zip(names, candidates):
        res = prefix_fidelity(ref, cand)
        table[name] = ([float("nan")] * 3 if res is None
                       else [res.candidate_hit_rate, res.curve_distance, res.reuse_distance_ks])
    return pl.DataFrame(table, schema=schema)

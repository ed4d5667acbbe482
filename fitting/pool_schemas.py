"""The schemas of the pool tables fitted by their own modules: ``prefixes``
(:mod:`servelab.fitting.pool_prefixes`), ``churn`` (:mod:`servelab.fitting.pool_churn`) and
``coupling`` (:mod:`servelab.fitting.pool_coupling`).

Kept apart from their fitting in a module that imports only polars, so that loading a pool or
generating from one does not import what fits the tables (DuckDB, scipy).
"""
from __future__ import annotations

import polars as pl

__all__ = ["CHURN_SCHEMA", "COUPLING_SCHEMA", "PREFIXES_SCHEMA", "PREFIX_KINDS"]

PREFIXES_SCHEMA = {
    "client_id": pl.String, "kind": pl.String, "group": pl.Int64, "extends": pl.Int64,
    "value": pl.Float64, "probability": pl.Float64, "min_blocks": pl.Int64, "block_size": pl.Int64,
}
#: the kinds of rows of the prefixes table (see the module docstring)
PREFIX_KINDS = ("shared", "template", "reuse_gap", "reuse_lag_s", "reuse_same_length", "history_gap", "suffix_blocks",
                "reuse_censoring")

#: one row per client active in the span (:mod:`servelab.fitting.pool_churn`)
CHURN_SCHEMA = {
    "client_id": pl.String, "first_s": pl.Float64, "last_s": pl.Float64, "arrived": pl.Boolean,
    "departed": pl.Boolean, "grace_s": pl.Float64, "span_start": pl.Float64, "span_end": pl.Float64,
}
#: one row per (client, field) (:mod:`servelab.fitting.pool_coupling`)
COUPLING_SCHEMA = {
    "client_id": pl.String, "field": pl.String, "n_windows": pl.Int64, "r": pl.Float64, "t": pl.Float64,
    "p_value": pl.Float64, "elasticity": pl.Float64, "kept": pl.Boolean,
}

"""The schema of a pool's ``prefixes`` table, apart from its fitting (:mod:`servelab.fitting.pool_prefixes`).

Kept in a module that imports only polars, so that loading a pool or generating from one does not
import the analyses (DuckDB) that fit the table.
"""
from __future__ import annotations

import polars as pl

__all__ = ["PREFIXES_SCHEMA", "PREFIX_KINDS"]

PREFIXES_SCHEMA = {
    "client_id": pl.String, "kind": pl.String, "group": pl.Int64, "extends": pl.Int64,
    "value": pl.Float64, "probability": pl.Float64, "min_blocks": pl.Int64, "block_size": pl.Int64,
}
#: the kinds of rows of the prefixes table (see the module docstring)
PREFIX_KINDS = ("shared", "template", "reuse_gap", "reuse_lag_s", "reuse_same_length", "history_gap", "suffix_blocks")

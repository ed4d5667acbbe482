"""Fit a :class:`~servelab.generator.pool.ClientPool` from a trace store (``servelab fit-pool``).

:func:`fit_pool` reads the store once and assembles the pool from three parts, each in its own
module:

- arrivals per client and window (rate over the covered time, gap CV, the arrival family of
  lowest AIC with its named parameters, consistently with the trace's logging clock):
  :mod:`servelab.fitting.pool_arrivals`;
- request-data PMFs (and log-normal fits) per client and data window:
  :mod:`servelab.fitting.pool_data`;
- conversation parameters per client: :mod:`servelab.fitting.pool_conversations`.

How it fits is one frozen :class:`~servelab.fitting.pool_settings.PoolFitSettings`. Clients with
fewer than ``min_requests`` requests (and rows without a client id) are merged into one residual
client, ``residual_id``, so no traffic is lost. A fitted pool is compared with a reference pool by
:func:`~servelab.fitting.pool_compare.compare_pools`.

This module reads the store and returns a pool; it writes nothing and plots nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import polars as pl

from servelab import __version__
from servelab.analysis.exceptions import EmptyTraceError
from servelab.analysis.store import TraceStore
from servelab.fitting.pool_arrivals import (
    WindowFamilies,
    arrival_windows,
    family_cv,
    fit_arrival_windows,
    param_columns,
)
from servelab.fitting.pool_churn import fit_churn_table  # issue 17
from servelab.fitting.pool_coupling import coupling_table  # issue 17
from servelab.fitting.pool_compare import PoolComparison, compare_pools
from servelab.fitting.pool_conversations import conversation_tables
from servelab.fitting.pool_data import bin_values, data_pmfs, request_fields
from servelab.fitting.pool_settings import POOL_FIT_FAMILIES, RESIDUAL_ID, PoolFitSettings
from servelab.fitting.segments import weibull_mle_segments

__all__ = [
    "fit_pool",
    "PoolFitSettings",
    "compare_pools",
    "PoolComparison",
    "family_cv",
    "fit_arrival_windows",
    "WindowFamilies",
    "weibull_mle_segments",
    "bin_values",
    "param_columns",
    "POOL_FIT_FAMILIES",
    "RESIDUAL_ID",
]

REQUESTS_FILE = "requests.parquet"


def _store_sha256(store: TraceStore) -> str:
    h = hashlib.sha256()
    with open(store.requests_path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _settings(settings: PoolFitSettings | None, overrides: dict) -> PoolFitSettings:
    if settings is not None and not isinstance(settings, PoolFitSettings):
        raise TypeError(f"settings must be a PoolFitSettings; got {type(settings).__name__}")
    unknown = sorted(set(overrides) - set(PoolFitSettings.names()))
    if unknown:
        raise TypeError(f"fit_pool() got unknown settings {unknown}; allowed: {list(PoolFitSettings.names())}")
    base = settings or PoolFitSettings()
    return dataclasses.replace(base, **overrides) if overrides else base


def _read(store: TraceStore) -> pl.DataFrame:
    """The columns the pool needs, in arrival order."""
    columns = store.columns
    link_col = "conversation_id" if "conversation_id" in columns else None
    raw_cols = sorted({c for c in columns if c in ("input_tokens", "output_tokens", "reason_tokens", "text_tokens")
                       or c.endswith("_tokens") or c.endswith("_count")})
    want = (["request_id", "timestamp"] + (["client_id"] if "client_id" in columns else []) + raw_cols
            + ([link_col] if link_col else []))
    frame = pl.scan_parquet(store.requests_path).select(want).collect()
    if frame.height == 0:
        raise EmptyTraceError(f"store {str(store.path)!r} has no requests; nothing to fit")
    if not frame["request_id"].is_sorted():
        frame = frame.sort("request_id")
    return frame


@dataclasses.dataclass(frozen=True)
class _Clients:
    index: np.ndarray  # pool client index of every request
    names: list[str]  # pool order: by requests, descending
    n_small: int
    n_null: int


def _clients(frame: pl.DataFrame, min_requests: int, residual_id: str) -> _Clients:
    """Client ids as integer codes; small clients (and rows without id) go to the residual."""
    if "client_id" in frame.columns:
        col = frame["client_id"].cast(pl.String)
        uniq = col.drop_nulls().unique().sort()
        ids = np.asarray(uniq.to_list(), dtype=object)
        code = col.replace_strict(uniq, pl.Series(np.arange(uniq.len(), dtype=np.int64)), default=-1,
                                  return_dtype=pl.Int64).fill_null(-1).to_numpy()
        counts = np.bincount(code[code >= 0], minlength=ids.size)
    else:
        ids = np.array(["all"], dtype=object)
        code = np.zeros(frame.height, dtype=np.int64)
        counts = np.array([frame.height])
    small = counts < min_requests
    n_small = int(small.sum())
    n_null = int((code < 0).sum())
    has_residual = n_small > 0 or n_null > 0
    if has_residual and residual_id in set(ids[~small].tolist()):
        raise ValueError(f"residual_id {residual_id!r} is also a client id in the store; pass another residual_id")
    kept = np.flatnonzero(~small)
    table = pl.DataFrame({"code": kept, "client_id": ids[kept], "n": counts[kept]})
    if has_residual:
        n_res = int(counts[small].sum()) + n_null
        table = pl.concat([table, pl.DataFrame({"code": [-1], "client_id": [residual_id], "n": [n_res]})])
    table = table.sort(["n", "client_id"], descending=[True, False]).with_row_index("cidx")
    to_cidx = np.full(ids.size + 1, -1, dtype=np.int64)  # last slot: residual (code -1)
    to_cidx[table["code"].to_numpy()] = table["cidx"].to_numpy()
    if has_residual:
        to_cidx[np.flatnonzero(small)] = to_cidx[-1]
    return _Clients(index=to_cidx[code], names=table["client_id"].to_list(), n_small=n_small, n_null=n_null)


def fit_pool(store: TraceStore, *, settings: PoolFitSettings | None = None, **overrides):
    """Fit a client pool from ``store``.

    Parameters
    ----------
    store : TraceStore
    settings : PoolFitSettings, optional
        How to fit (defaults: :class:`PoolFitSettings` ()).
    **overrides
        Any :class:`PoolFitSettings` field by name (``window="5m"``, ``min_requests=10``, ...),
        replacing the one in ``settings``.

    Returns
    -------
    ClientPool

    Raises
    ------
    ValueError
        If a setting is out of range.
    TypeError
        If a keyword is not a setting.
    EmptyTraceError
        If the store has no requests.
    """
    from servelab.generator.pool import ClientPool

    s = _settings(settings, overrides)
    fields = request_fields(store.columns)
    frame = _read(store)
    clients = _clients(frame, s.min_requests, s.residual_id)
    names = clients.names

    arrivals = arrival_windows(frame["timestamp"].to_numpy(), clients.index, len(names), s,
                               manifest=store.manifest)
    name_of = pl.DataFrame({"cidx": np.arange(len(names), dtype=np.int64), "client_id": names},
                           schema={"cidx": pl.Int64, "client_id": pl.String})
    table = arrivals.table.join(name_of, on="cidx", how="left", maintain_order="left").drop("cidx")
    table = table.select("client_id", *[c for c in table.columns if c != "client_id"])

    data, data_fits = data_pmfs(frame, clients.index, names, fields, data_window_s=s.data_window_s,
                                exact_below=s.exact_below, bin_ratio=s.bin_ratio, spike_share=s.spike_share,
                                max_bin_mass=s.max_bin_mass, min_fit_requests=s.min_fit_requests)
    with_data = set(data["client_id"].unique().to_list()) if data.height else set()

    conv, conv_pmfs, conv_note = None, None, "not fitted (conversations=False)"
    if s.conversations:
        conv, conv_pmfs, conv_note = conversation_tables(store, frame, clients.index, names, bin_ratio=s.bin_ratio,
                                                         linking=s.linking)

    residual_note = (f"residual: {clients.n_small} client(s) below min_requests={s.min_requests}"
                     + (f" and {clients.n_null} request(s) without client id" if clients.n_null else "") + " merged")
    client_table = pl.DataFrame({"client_id": names}, schema={"client_id": pl.String}).select(
        "client_id",
        pl.lit(True).alias("has_arrivals"),
        pl.col("client_id").is_in(list(with_data)).alias("has_data"),
        pl.when(pl.col("client_id") == s.residual_id).then(pl.lit(residual_note)).otherwise(pl.lit("")).alias("note"),
    )
    window_s = s.window_s
    pool_span = (arrivals.first_window * window_s, (arrivals.last_window + 1) * window_s)
    provenance = {
        "source": {"format": "store", "path": str(Path(store.path).resolve()), "sha256": _store_sha256(store),
                   "sha256_of": REQUESTS_FILE, "rows": frame.height, "origin": dict(store.manifest.get("origin") or {})},
        "servelab_version": __version__,
        "fitted_by": "servelab.fitting.pool_fit.fit_pool",
        "settings": {**s.to_dict(), "family_selection": "lowest AIC",
                     "stored_precision": "estimates and probabilities rounded to float32 precision; rates exact",
                     "reason_ratio_grid": "nearest of k/501, k = 0..500 (ServeGen's grid values)",
                     "modality_tokens": "per item (tokens / count)"},
        "arrivals": {"rate": "requests / seconds of the window inside covered_s (servelab.analysis.window_rates)",
                     "covered_s": list(arrivals.covered_s), "clock_s": arrivals.clock_s,
                     "clock_source": arrivals.clock_source,
                     "clock_handling": ("arrival times jittered uniformly within the clock step before gaps, CVs "
                                        "and family fits" if arrivals.clock_s is not None else "timestamps used as given"),
                     "zero_gaps_before_jitter": arrivals.n_zero_gaps},
        "residual": {"clients_merged": clients.n_small, "requests_without_client": clients.n_null},
        "conversations": conv_note,
    }
    return ClientPool(clients=client_table, arrivals=table, data=data if data.height else None,
                      data_fits=data_fits if data_fits.height else None, conversations=conv,
                      conversation_pmfs=conv_pmfs, churn=fit_churn_table(table, pool_span, window_s=window_s),
                      coupling=coupling_table(frame["timestamp"].to_numpy(), clients.index, names,
                                              {f: frame[f].to_numpy() for f in ("input_tokens", "output_tokens")
                                               if f in frame.columns}, window_s=window_s),
                      window_s=window_s, data_window_s=s.data_window_s, span=pool_span,
                      fields=[f[0] for f in fields], provenance=provenance)

"""Fit a :class:`~servelab.fitting.pool.ClientPool` from a trace store (``servelab fit-pool``).

:func:`fit_pool` never loads the store's rows: DuckDB computes per (client, window) sufficient
statistics, bounded seeded gap samples and value counts in plain SQL
(:mod:`servelab.analysis.aggregates`), so memory follows the active (client, window) cells, not the
rows. Gap samples are fitted in batches of whole clients (``batch_gaps``). The pool is assembled
from three parts, each in its own module:

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

Differences from fitting on rows in memory (:func:`~servelab.fitting.pool_arrivals.arrival_windows`,
:func:`~servelab.fitting.pool_data.data_pmfs`, the references the tests compare with): the clock
jitter's uniforms are hashed from ``(request_id, seed)`` instead of drawn from numpy's generator
(same seed, same pool; another seed moves each gap by less than one clock step), and a window with
more than ``max_fit_gaps`` gaps fits a seeded uniform subsample instead of every k-th gap.

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
from servelab.analysis.store import TraceStore, as_source
from servelab.analysis.aggregates import (
    AggregateSource,
    aggregate_source,
    window_length_stats,
    arrival_cells,
    build_gaps,
    client_counts,
    conversation_aggregates,
    conversation_increments,
    field_sql,
    gap_samples,
    log_stats,
    trace_gaps,
    value_counts,
)
from servelab.analysis.window_rates import covered_span
from servelab.fitting.pool_arrivals import (
    WindowFamilies,
    arrival_windows_from_aggregates,
    clock_from_trace_gaps,
    family_cv,
    fit_arrival_windows,
    param_columns,
)
from servelab.fitting.pool_churn import fit_churn_table  # issue 17
from servelab.fitting.pool_coupling import COUPLING_FIELDS, coupling_from_cells  # issue 17
from servelab.fitting.pool_compare import PoolComparison, compare_pools
from servelab.fitting.pool_conversations import (conversation_spans, conversation_tables, increment_pmfs,
                                                 tables_from_aggregates, window_tables, window_weights)
from servelab.fitting.pool_data import bin_values, pmfs_from_counts, request_fields, spread_bins
from servelab.fitting.pool_prefixes import prefix_table
from servelab.fitting.pool_settings import POOL_FIT_FAMILIES, RESIDUAL_ID, PoolFitSettings, resolve_setting_aliases
from servelab.fitting.pool_shrinkage import fit_shrinkage, own_weights, shrinkage_centers
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
    for path in store.requests_files:  # one file, or a partitioned store's files in order
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def frame_sha256(table) -> str:
    """SHA-256 of the Arrow IPC stream bytes of ``table`` (chunks combined first, so that the same
    rows in the same schema give the same digest however they were chunked)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    table = table.combine_chunks()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _source_provenance(store, n_rows: int) -> dict:
    """Where the pool's requests came from: a store's file digest, or a frame's IPC digest."""
    origin = dict(store.manifest.get("origin") or {})
    if getattr(store, "path", None) is None:
        return {"format": "frame", "source": store.manifest.get("source", "in-memory frame"),
                "frame_sha256": frame_sha256(store.table), "sha256_of": "Arrow IPC stream of the canonical table",
                "rows": n_rows, "origin": origin}
    return {"format": "store", "path": str(Path(store.path).resolve()), "sha256": _store_sha256(store),
            "sha256_of": REQUESTS_FILE, "rows": n_rows, "origin": origin}


def _settings(settings: PoolFitSettings | None, overrides: dict) -> PoolFitSettings:
    if settings is not None and not isinstance(settings, PoolFitSettings):
        raise TypeError(f"settings must be a PoolFitSettings; got {type(settings).__name__}")
    overrides = resolve_setting_aliases(overrides, where="fit_pool")
    unknown = sorted(set(overrides) - set(PoolFitSettings.names()))
    if unknown:
        raise TypeError(f"fit_pool() got unknown settings {unknown}; allowed: {list(PoolFitSettings.names())}")
    base = settings or PoolFitSettings()
    return dataclasses.replace(base, **overrides) if overrides else base


def _conversation_frame(src: AggregateSource, store: TraceStore) -> tuple[pl.DataFrame, np.ndarray]:
    """Request ids and their pool clients, in arrival order (for links inferred by
    :func:`~servelab.analysis.conversations.link_conversations`, which reads the store itself)."""
    sql = f"SELECT q.request_id, {src.cidx} AS cidx FROM {src.source} q {src.join} ORDER BY q.request_id"
    frame = src.engine.frame(sql).with_columns(pl.col("cidx").cast(pl.Int64))
    return frame.drop("cidx"), frame["cidx"].to_numpy().astype(np.int64)


@dataclasses.dataclass(frozen=True)
class _Clients:
    index: pl.DataFrame  # client_id -> pool client index (small clients -> the residual's)
    residual: int  # pool index of unlisted ids (NULL ids, small clients); -1 when there is none
    names: list[str]  # pool order: by requests, descending
    n_small: int
    n_null: int


def _clients(counts: pl.DataFrame, min_requests: int, residual_id: str) -> _Clients:
    """Pool clients from the requests per client id; small clients (and rows without id) go to the residual."""
    has_ids = counts["client_id"].null_count() < counts.height or counts.height > 1
    if has_ids:
        named = counts.filter(pl.col("client_id").is_not_null())
        n_null = int(counts.filter(pl.col("client_id").is_null())["n"].sum())
    else:  # a store without client ids: one client, "all"
        named = pl.DataFrame({"client_id": ["all"], "n": [int(counts["n"].sum())]})
        n_null = 0
    small = named.filter(pl.col("n") < min_requests)
    kept = named.filter(pl.col("n") >= min_requests)
    n_small = small.height
    has_residual = n_small > 0 or n_null > 0
    if has_residual and residual_id in set(kept["client_id"].to_list()):
        raise ValueError(f"residual_id {residual_id!r} is also a client id in the store; pass another residual_id")
    table = kept.select("client_id", pl.col("n").cast(pl.Int64))
    if has_residual:
        table = pl.concat([table, pl.DataFrame({"client_id": [residual_id], "n": [int(small["n"].sum()) + n_null]},
                                               schema={"client_id": pl.String, "n": pl.Int64})])
    table = table.sort(["n", "client_id"], descending=[True, False]).with_row_index("cidx")
    names = table["client_id"].to_list()
    residual = names.index(residual_id) if has_residual else -1
    index = table.filter(pl.col("client_id") != residual_id) if has_residual else table
    index = index.select("client_id", pl.col("cidx").cast(pl.Int64))
    if not has_ids:
        residual = 0  # every row is the one client
    return _Clients(index=index, residual=residual, names=names, n_small=n_small, n_null=n_null)


def _gap_batches(src: AggregateSource, cells: pl.DataFrame, s: PoolFitSettings, *, batch_gaps: int):
    """Gap samples in batches of whole clients of about ``batch_gaps`` gaps each (a loop over batches)."""
    per_client = (cells.filter(pl.col("n_pos_gaps") >= s.min_fit_gaps)
                  .group_by("cidx").agg(pl.col("n_pos_gaps").clip(upper_bound=s.max_fit_gaps).sum().alias("k"))
                  .sort("cidx"))
    if per_client.height == 0:
        return
    cidx = per_client["cidx"].to_numpy()
    batch = np.cumsum(per_client["k"].to_numpy()) // max(batch_gaps, 1)
    edges = np.flatnonzero(np.diff(batch)) + 1
    bounds = np.concatenate([[cidx[0]], cidx[edges], [cidx[-1] + 1]])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        yield gap_samples(src, min_gaps=s.min_fit_gaps, k=s.max_fit_gaps, seed=s.seed, lo=lo, hi=hi)


def fit_pool(store: TraceStore, *, settings: PoolFitSettings | None = None, memory_limit: str | None = None,
             batch_gaps: int = 4_000_000, engine: str = "duckdb", spark_master: str | None = None, **overrides):
    """Fit a client pool from ``store``.

    Parameters
    ----------
    store : TraceStore, path, polars.DataFrame / LazyFrame or pyarrow.Table
        The trace: a store (or its path), or an in-memory frame in the canonical schema
        (:func:`~servelab.analysis.store.as_source`; no file is written). The pool's provenance
        records a store's ``requests.parquet`` SHA-256, or a frame's ``frame_sha256`` (of its
        canonical table's Arrow IPC bytes).
    settings : PoolFitSettings, optional
        How to fit (defaults: :class:`PoolFitSettings` ()).
    memory_limit : str, optional
        DuckDB's buffer limit for the aggregation queries (e.g. ``"4GB"``; it spills beyond).
    batch_gaps : int
        Gaps fitted per batch of clients (bounds the memory of the family fits).
    engine : {"duckdb", "spark"}
        Where the aggregation SQL runs (:func:`~servelab.analysis.aggregates.aggregate_source`);
        the fits run here on its per-cell results. Both engines give the same pool.
    spark_master : str, optional
        Spark's master URL for engine ``spark`` (default ``local[2]``).
    **overrides
        Any :class:`PoolFitSettings` field by name (``window_s="5m"``, ``min_requests=10``, ...),
        replacing the one in ``settings`` (the old names of
        :data:`~servelab.fitting.pool_settings.SETTING_ALIASES` still work, with a DeprecationWarning).

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
    from servelab.fitting.pool import ClientPool

    store = as_source(store)
    s = _settings(settings, overrides)
    fields = request_fields(store.columns)
    agg = {"memory_limit": memory_limit, "engine": engine, "spark_master": spark_master}
    with aggregate_source(store, **agg) as probe:
        counts = client_counts(probe)
    n_rows = int(counts["n"].sum()) if counts.height else 0
    if n_rows == 0:
        where = store.manifest.get("source", "in-memory frame") if store.path is None else str(store.path)
        raise EmptyTraceError(f"store {where!r} has no requests; nothing to fit")
    clients = _clients(counts, s.min_requests, s.residual_id)
    names = clients.names
    with aggregate_source(store, clients.index, residual=clients.residual, **agg) as src:
        tg = trace_gaps(src)
        clock = clock_from_trace_gaps(s, store.manifest, tg)
        covered = covered_span(tg.first, tg.last, s.span)
        # a short trace gets shorter data windows (PoolFitSettings.min_data_windows; issue 15)
        requested_dw = s.data_window_s
        s = dataclasses.replace(s, data_window_s=s.effective_data_window(covered[1] - covered[0]))
        build_gaps(src, window_s=s.window_s, step=clock[0], seed=s.seed)
        cells = arrival_cells(src)
        arrivals = arrival_windows_from_aggregates(cells, _gap_batches(src, cells, s, batch_gaps=batch_gaps), s,
                                                   covered=covered, clock=clock)
        src.engine.drop_temp_table(src.table)
        count_parts, stat_parts, shrink_fits, weight_parts = [], [], {}, []
        for name, _, kind in fields:
            value, scale, count_col = field_sql(name, kind, store.columns)
            binning = None if kind == "grid" else {"exact_below": s.exact_below, "bin_ratio": s.bin_ratio,
                                                    "spike_share": s.spike_share, "max_bin_mass": s.max_bin_mass}
            vc = value_counts(src, value=value, data_window_s=s.data_window_s, scale=scale, count_col=count_col,
                              binning=binning)
            lohi = ("lo", "hi") if "lo" in vc.columns else ("vk", "vk")  # a grid value: itself
            part = vc.select(pl.col("cidx").alias("c"), "d", pl.lit(name).alias("field"),
                             (pl.col("vk").cast(pl.Float64) / scale).alias("v"), "n",
                             (pl.col(lohi[0]).cast(pl.Float64) / scale).alias("lo"),
                             (pl.col(lohi[1]).cast(pl.Float64) / scale).alias("hi"))
            del vc
            if s.length_shrinkage:  # the weights count requests: the counts as binned, one field at a time
                fit_f, weights_f = fit_shrinkage(part.select("c", "d", "field", "v", "n"), [name],
                                                 log_bins=(float(s.exact_below), float(s.bin_ratio)),
                                                 log_fields=[name] if kind != "grid" else [])
                shrink_fits.update(fit_f)
                weight_parts.append(weights_f)
            # bins of several values spread over them (pool_data.spread_bins), for the PMFs and the
            # shrinkage's center; field by field, so that the bins' ends are held for one field only
            count_parts.append(spread_bins(part, points=s.spread_points))
            del part
            if kind == "tokens" and not name.endswith("_count"):
                ls = log_stats(src, value=value, data_window_s=s.data_window_s, count_col=count_col)
                stat_parts.append(ls.select(pl.col("cidx").alias("c"), "d", pl.lit(name).alias("field"), "n", "mu",
                                            "var"))
        conv_frame, conv_aggs, conv_spans, rules = None, None, None, ()
        if s.conversations:
            from servelab.analysis.conversations import available_link_rules

            rules = available_link_rules(store)
            if rules and rules[0] == "conversation_id":  # explicit ids: aggregated in SQL
                conv_aggs = conversation_aggregates(src, bin_ratio=s.bin_ratio)
                if "input_tokens" in store.columns:  # follow-up input increments (issue 15)
                    conv_aggs = (*conv_aggs, conversation_increments(src, exact_below=s.exact_below,
                                                                     bin_ratio=s.bin_ratio))
                if s.window_censoring and covered[1] > covered[0]:  # the window's two cuts (issue 15)
                    conv_spans = conversation_spans(src, conv_aggs[1], span=covered, exact_below=s.exact_below,
                                                    has_input="input_tokens" in store.columns, bin_ratio=s.bin_ratio)
            elif rules:  # inferred links (link_conversations reads the store itself): ids -> clients
                conv_frame = _conversation_frame(src, store)
        # per (client, window) length statistics for the load-length coupling (issue 17)
        coupling_fields = [f for f in COUPLING_FIELDS if f in store.columns]
        coupling_cells = (window_length_stats(src, fields=coupling_fields, window_s=s.window_s)
                          if coupling_fields else None)
        # pool client per request in request_id order, for the prefix model (issue 15)
        prefix_ci = None
        if "prefix_blocks" in store.columns:
            prefix_ci = conv_frame[1] if conv_frame is not None else _conversation_frame(src, store)[1]
    name_of = pl.DataFrame({"cidx": np.arange(len(names), dtype=np.int64), "client_id": names},
                           schema={"cidx": pl.Int64, "client_id": pl.String})
    table = arrivals.table.join(name_of, on="cidx", how="left", maintain_order="left").drop("cidx")
    table = table.select("client_id", *[c for c in table.columns if c != "client_id"])

    counts = pl.concat(count_parts) if fields else None  # spread counts: the PMFs and the shrinkage's center
    del count_parts
    kinds = {name: kind for name, _, kind in fields}
    if fields:
        data, data_fits = pmfs_from_counts(counts, pl.concat(stat_parts) if stat_parts else None, names, kinds,
                                           data_window_s=s.data_window_s, exact_below=s.exact_below,
                                           bin_ratio=s.bin_ratio, spike_share=s.spike_share,
                                           max_bin_mass=s.max_bin_mass, min_fit_requests=s.min_fit_requests,
                                           binned=True)
    else:
        data, data_fits = pl.DataFrame(), pl.DataFrame()
    with_data = set(data["client_id"].unique().to_list()) if data.height else set()
    # sparse clients' PMFs shrink toward the clients' mean past the fitted span (issue 17;
    # fitting.pool_shrinkage)
    shrinkage, own_weight, centers = {}, None, {}
    if fields and s.length_shrinkage:
        shrinkage = shrink_fits
        weights = (pl.concat(weight_parts) if weight_parts
                   else pl.DataFrame(schema={"c": pl.Int64, "field": pl.String, "weight": pl.Float64}))
        own_weight = own_weights(weights, names)
        centers = shrinkage_centers(counts, weights, kinds, exact_below=s.exact_below, bin_ratio=s.bin_ratio,
                                    spike_share=s.spike_share, max_bin_mass=s.max_bin_mass,
                                    spread_points=s.spread_points)

    conv, conv_pmfs, conv_note = None, None, "not fitted (conversations=False)"
    if s.conversations:
        if conv_aggs is not None:
            turns, itt, req = conv_aggs[:3]
            if s.window_censoring and covered[1] > covered[0]:  # ITT weights at the bin means (issue 15)
                w = pl.Series(window_weights(itt["value"].to_numpy().astype(float), covered[1] - covered[0]))
                itt = itt.with_columns(pl.col("n").cast(pl.Float64) * w, pl.col("total").cast(pl.Float64) * w)
            if conv_spans is not None:  # turns and first inputs by window_mixture (issue 15)
                conv, conv_pmfs = window_tables(*conv_spans, itt, req, conv_aggs[3] if len(conv_aggs) > 3 else None,
                                                names, span=covered, exact_below=s.exact_below, bin_ratio=s.bin_ratio,
                                                spread_points=s.spread_points)
            else:
                conv, conv_pmfs = tables_from_aggregates(turns, itt, req, names)
                if len(conv_aggs) > 3:
                    conv_pmfs = pl.concat([conv_pmfs, increment_pmfs(conv_aggs[3], names,
                                                                     spread_points=s.spread_points)])
            n_conv = int(turns["n"].sum())
            n_multi = int(turns.filter(pl.col("turns") >= 2)["n"].sum())
            conv_note = f"linked by conversation_id: {n_conv} conversations, {n_multi} multi-turn"
        elif conv_frame is None:
            conv_note = "no link information in the store"
        else:
            frame, ci = conv_frame
            conv, conv_pmfs, conv_note = conversation_tables(store, frame, ci, names, bin_ratio=s.bin_ratio,
                                                             linking=s.linking, exact_below=s.exact_below,
                                                             window_censoring=s.window_censoring,
                                                             span=covered, traffic_window_s=s.window_s,
                                                             data_window_s=s.data_window_s,
                                                             spread_points=s.spread_points)

    # prefix model (issue 15): per client, from prefix_blocks (None without them)
    prefixes = (prefix_table(store, prefix_ci, names, linking=s.linking,
                             span_s=(covered[1] - covered[0]) if s.window_censoring and covered[1] > covered[0]
                             else None)
                if prefix_ci is not None else None)
    residual_note = (f"residual: {clients.n_small} client(s) below min_requests={s.min_requests}"
                     + (f" and {clients.n_null} request(s) without client id" if clients.n_null else "") + " merged")
    client_table = pl.DataFrame({"client_id": names}, schema={"client_id": pl.String}).select(
        "client_id",
        pl.lit(True).alias("has_arrivals"),
        pl.col("client_id").is_in(list(with_data)).alias("has_data"),
        pl.when(pl.col("client_id") == s.residual_id).then(pl.lit(residual_note)).otherwise(pl.lit("")).alias("note"),
    )
    if own_weight is not None:
        client_table = client_table.join(own_weight, on="client_id", how="left", maintain_order="left")
    window_s = s.window_s
    pool_span = (arrivals.first_window * window_s, (arrivals.last_window + 1) * window_s)
    provenance = {
        "source": _source_provenance(store, n_rows),
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
                                        "and family fits (uniforms hashed from request_id and seed)"
                                        if arrivals.clock_s is not None else "timestamps used as given"),
                     "cells": "active (client, window) cells only; idle windows are implicit (rate 0)",
                     "aggregation": "plain SQL per (client, window) (servelab.analysis.aggregates)",
                     "zero_gaps_before_jitter": arrivals.n_zero_gaps},
        "data_window": (f"{s.data_window_s:g} s: the covered span {covered[1] - covered[0]:g} s is shorter than "
                        f"min_data_windows={s.min_data_windows} windows of {requested_dw:g} s"
                        if s.data_window_s != requested_dw else f"{s.data_window_s:g} s as set"),
        "residual": {"clients_merged": clients.n_small, "requests_without_client": clients.n_null},
        "conversations": conv_note,
        "conversation_censoring": (
            ("inter-turn times weighted by T/(T-x) capped at 20 (T: covered span); "
             + ("turns and first-turn inputs per conversation by the censored likelihood of a window cut at both "
                "ends (window_mixture: EM over begun inside / cut at the end / tail of a conversation begun before; "
                "tails left to the generator's warm-up)"
                if conv_aggs is None or conv_spans is not None
                else "turns as seen (conversation_id aggregates carry no last-turn times)"))
            if s.window_censoring else "none (counts as seen)"),
        "length_shrinkage": ({f: {**fit.describe(), **({"center": centers[f]} if f in centers else {})}
                              for f, fit in shrinkage.items()} if s.length_shrinkage
                             else "none (every client's own PMFs)"),
        "prefix_censoring": ("reuse lags weighted by T/(T-x) capped at 20 in the reuse share and PMFs; the generator "
                             "drops reuses whose lag reaches before the client's first row"
                             if s.window_censoring else "none (reuse counts as seen)"),
    }
    return ClientPool(clients=client_table, arrivals=table, data=data if data.height else None,
                      data_fits=data_fits if data_fits.height else None, conversations=conv,
                      conversation_pmfs=conv_pmfs, prefixes=prefixes,
                      churn=fit_churn_table(table, pool_span, window_s=window_s),
                      coupling=coupling_from_cells(coupling_cells, names, coupling_fields, window_s=window_s)
                      if coupling_fields else None,
                      window_s=window_s, data_window_s=s.data_window_s, span=pool_span,
                      fields=[f[0] for f in fields], provenance=provenance)

"""The client pool: per-client arrival and request-data parameters, in memory.

A :class:`ClientPool` is what servelab's analysis produces and its generator consumes. It holds
polars tables (lazily: a pool loaded from disk reads nothing until a table is asked for) and never
changes: every operation (:meth:`ClientPool.clip`, :meth:`ClientPool.select`,
:meth:`ClientPool.filter`) returns a new pool.

Tables (the agreed layout; columns may be added, never renamed or removed)
---------------------------------------------------------------------------
``clients``
    ``client_id: str, has_arrivals: bool, has_data: bool, note: str``; fitted pools also carry
    ``data_own_weight: str | null`` (JSON ``{field: lambda}``: the weight of the client's own
    request-data PMFs against the clients' mean, length shrinkage of sparse clients,
    :mod:`servelab.fitting.pool_shrinkage`; absent or null: 1, the own PMFs only). ServeGen's
    format has no such weight: the export drops it and says so.
``arrivals``
    ``client_id, window_start: f64 s, window_s: f64, rate: f64 req/s, cv: f64,
    family: str | null``, then one ``f64 | null`` column per parameter name of the arrival
    families (:func:`~servelab.fitting.families.arrival_param_names`: ``a`` of ``gamma``, ``c`` of
    ``weibull``, ``s`` of ``lognormal``, then ``scale``), each window filling its family's
    parameters under their names; ``family`` is a registry name of an
    :class:`~servelab.fitting.families.ArrivalFamily`. ``rate`` is requests per covered second
    (:mod:`servelab.analysis.window_rates`). The table is *sparse*: it holds the active
    (client, window) cells only; a window it does not hold is idle (rate 0) and enters no CV or
    family summary. ``cv`` is null in an active window with fewer than 2 gaps (undefined). Rows
    of rate 0 (the idle placeholders of format version 2 and ServeGen's folders) are dropped on
    construction, so memory follows the active cells. A table with the single ``shape`` column
    of format version 1 (Gamma ``a`` or Weibull ``c``, by family) is converted on construction.
``data``
    long-format empirical PMFs ``client_id, window_start, window_s, field, value, probability``;
    an idle data window has no rows. The data window (``data_window_s``, the length model's time
    resolution) is 6 h by default, and a trace shorter than ``min_data_windows`` of them (3:
    18 h) is fitted with windows of about ``span / min_data_windows`` s instead (a multiple of the
    arrival window, or the arrival window over a whole number)
    (:meth:`~servelab.fitting.pool_settings.PoolFitSettings.effective_data_window`), so a short
    trace keeps its lengths' time profile (a 17-min trace whose prompts double is not one 6-h
    window). The generator follows it, first-turn inputs of conversations included
    (:func:`~servelab.generator.conversations.draw_increments`: the first-turn PMF is pooled over
    the trace; the position of a request's data draw in the client's pool-wide input PMF picks its
    first-turn quantile). Data windows may then be shorter than arrival windows: a request's data
    window is the one holding its time.
``data_fits``
    ``client_id, window_start, field, fit`` (:class:`~servelab.fitting.result.FitResult` JSON).
``conversations``
    one row per client that has conversation links: ``client_id, n_conversations: i64,
    multi_turn_share: f64`` (share of requests that belong to a conversation of >= 2 turns),
    ``turns_mean: f64`` (turns per conversation; a conversation inferred from prompt blocks that
    branches counts as its longest chain, as the generator makes chains), ``itt_mean_s: f64``
    (mean inter-turn time),
    ``turns_fit, itt_fit: str | null`` (FitResult JSON when a parametric fit was made).
``conversation_pmfs``
    long empirical PMFs of the same: ``client_id, quantity ("turns" | "itt_s"), value,
    probability``; fitted from stores with ``input_tokens`` also ``input_increment``,
    ``first_input``, ``first_input_multi`` (a follow-up's input minus its history, first-turn
    inputs; null ``client_id``: pooled fallback; :mod:`servelab.fitting.pool_conversations`);
    from inferred links (``prefix_blocks``, ``parent_id``) also ``itt_traffic_s``: the inter-turn
    times in the trace's traffic time, which the generator spaces turns by
    (:data:`~servelab.fitting.pool_conversations.ITT_TRAFFIC`), and a pooled
    ``input_increment_profile`` row (value 1) when the follow-ups' increments follow the data
    windows' time profile (a one-sided test,
    :func:`~servelab.fitting.pool_conversations.increment_profile_rows`): the generator then
    draws them at their data window's level, as first turns.
``prefixes``
    the per-client prefix model (shared system prompts, templates, reuse, conversation history):
    ``client_id, kind, group, extends, value, probability, block_size``
    (:data:`~servelab.fitting.pool_schemas.PREFIXES_SCHEMA`, described in
    :mod:`servelab.fitting.pool_prefixes`); empty for pools without ``prefix_blocks``.
``churn``
    client population dynamics (issue 17), one row per client active in the span:
    :data:`~servelab.fitting.pool_schemas.CHURN_SCHEMA` (first and last active instants, arrived /
    departed flags, the grace and span they were built for); empty in pools that predate it, which
    :func:`~servelab.generator.extend.pool_churn` then fits from ``arrivals``.
``coupling``
    load-length coupling per client and field (issue 17):
    :data:`~servelab.fitting.pool_schemas.COUPLING_SCHEMA` (Fisher-tested correlation of window
    log rate and log mean length, elasticity, kept flag); empty in older pools (no coupling).

This module does no file I/O of its own (:mod:`~servelab.fitting.pool_format` and
:mod:`~servelab.fitting.servegen_format` read and write) and draws no random numbers
(:mod:`~servelab.generator.sampling` does).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Any

import polars as pl

from servelab.fitting.families import arrival_family_names, get_arrival_family
from servelab.fitting.families import arrival_param_columns as param_columns  # not pool fitting: light
from servelab.fitting.pool_schemas import CHURN_SCHEMA, COUPLING_SCHEMA, PREFIXES_SCHEMA
from servelab.fitting.exceptions import PoolFormatError, PoolSpanError

__all__ = [
    "ClientPool",
    "Span",
    "CLIENTS_SCHEMA",
    "ARRIVALS_SCHEMA",
    "arrivals_schema",
    "named_arrival_params",
    "DATA_SCHEMA",
    "DATA_FITS_SCHEMA",
    "CONVERSATIONS_SCHEMA",
    "CONVERSATION_PMFS_SCHEMA",
    "DATA_FIELDS",
    "POOL_FAMILIES",
]

CLIENTS_SCHEMA = {"client_id": pl.String, "has_arrivals": pl.Boolean, "has_data": pl.Boolean, "note": pl.String}
#: the arrivals columns before the parameter columns
_ARRIVALS_BASE = {
    "client_id": pl.String, "window_start": pl.Float64, "window_s": pl.Float64, "rate": pl.Float64,
    "cv": pl.Float64, "family": pl.String,
}


def arrivals_schema() -> dict[str, pl.DataType]:
    """The arrivals table's columns: the base columns, every arrival family's shapes, ``scale``."""
    return {**_ARRIVALS_BASE, **{p: pl.Float64 for p in param_columns()}}


#: the arrivals schema of the families registered when this module was imported
ARRIVALS_SCHEMA = arrivals_schema()
DATA_SCHEMA = {
    "client_id": pl.String, "window_start": pl.Float64, "window_s": pl.Float64, "field": pl.String,
    "value": pl.Float64, "probability": pl.Float64,
}
DATA_FITS_SCHEMA = {"client_id": pl.String, "window_start": pl.Float64, "field": pl.String, "fit": pl.String}
CONVERSATIONS_SCHEMA = {
    "client_id": pl.String, "n_conversations": pl.Int64, "multi_turn_share": pl.Float64, "turns_mean": pl.Float64,
    "itt_mean_s": pl.Float64, "turns_fit": pl.String, "itt_fit": pl.String,
}
CONVERSATION_PMFS_SCHEMA = {"client_id": pl.String, "quantity": pl.String, "value": pl.Float64, "probability": pl.Float64}

_SCHEMAS = {
    "clients": CLIENTS_SCHEMA,
    "arrivals": ARRIVALS_SCHEMA,
    "data": DATA_SCHEMA,
    "data_fits": DATA_FITS_SCHEMA,
    "conversations": CONVERSATIONS_SCHEMA,
    "conversation_pmfs": CONVERSATION_PMFS_SCHEMA,
    "prefixes": PREFIXES_SCHEMA,
    "churn": CHURN_SCHEMA,  # issue 17: client churn (servelab.fitting.pool_churn)
    "coupling": COUPLING_SCHEMA,  # issue 17: load-length coupling (servelab.fitting.pool_coupling)
}

#: request-data fields a pool may describe, in canonical order
DATA_FIELDS = (
    "input_tokens", "output_tokens", "reason_ratio", "reason_tokens", "text_tokens", "image_tokens",
    "audio_tokens", "video_tokens", "image_count", "audio_count", "video_count",
)
#: arrival families a pool window may name (registered when this module was imported; see
#: :func:`servelab.fitting.families.arrival_family_names` for the current list)
POOL_FAMILIES = arrival_family_names()


class Span(tuple):
    """A pool's time span ``(start, end)`` in seconds that can also be called to clip the pool.

    ``pool.span`` is the tuple; ``pool.span(start, end)`` is :meth:`ClientPool.clip` (ServeGen's
    spelling).
    """

    def __new__(cls, start: float, end: float, pool: "ClientPool | None" = None):
        obj = super().__new__(cls, (float(start), float(end)))
        obj._pool = pool
        return obj

    @property
    def start(self) -> float:
        return self[0]

    @property
    def end(self) -> float:
        return self[1]

    @property
    def duration(self) -> float:
        return self[1] - self[0]

    def __call__(self, start: float | None = None, end: float | None = None) -> "ClientPool":
        if self._pool is None:
            raise TypeError("this span is not attached to a pool")
        return self._pool.clip(start, end)

    def __reduce__(self):
        return (Span, (self[0], self[1]))


def named_arrival_params(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Arrivals with a version-1 ``shape`` column turned into named parameter columns.

    ``shape`` held the single shape parameter of the window's family (Gamma ``a``, Weibull
    ``c``); it goes to the column of that family's shape name. Missing parameter columns are
    added as nulls. A table without ``shape`` only gets the missing columns.
    """
    names = lf.collect_schema().names()
    exprs = []
    if "shape" in names:
        for column in param_columns():
            if column == "scale":
                continue
            owners = [f for f in arrival_family_names() if get_arrival_family(f).shape_names == (column,)]
            legacy = pl.when(pl.col("family").is_in(owners)).then(pl.col("shape").cast(pl.Float64))
            exprs.append((pl.coalesce(pl.col(column).cast(pl.Float64), legacy) if column in names else legacy)
                         .alias(column))
        lf = lf.with_columns(exprs).drop("shape")
    names = lf.collect_schema().names()
    missing = [pl.lit(None, pl.Float64).alias(c) for c in param_columns() if c not in names]
    return lf.with_columns(missing) if missing else lf


def _as_lazy(table, name: str) -> pl.LazyFrame:
    schema = arrivals_schema() if name == "arrivals" else _SCHEMAS[name]
    if table is None:
        return pl.LazyFrame(schema=schema)
    if isinstance(table, pl.DataFrame):
        table = table.lazy()
    if not isinstance(table, pl.LazyFrame):
        raise TypeError(f"pool table {name!r} must be a polars DataFrame or LazyFrame; got {type(table).__name__}")
    if name == "arrivals":
        table = named_arrival_params(table)
    have = table.collect_schema()
    names = have.names()
    missing = [c for c in schema if c not in names]
    if missing:
        raise PoolFormatError(f"pool table {name!r} lacks columns {missing}; required: {list(schema)}; got {names}")
    # cast only the columns whose type differs (stored Float32 / Int64 narrowings): a no-op cast of
    # every column still costs each later query a projection over the whole table
    casts = [pl.col(c).cast(t) for c, t in schema.items() if have[c] != t]
    return table.with_columns(casts) if casts else table


class ClientPool:
    """A frozen set of clients with per-window arrival and request-data parameters.

    Parameters
    ----------
    clients, arrivals, data, data_fits, conversations, conversation_pmfs, prefixes, churn, coupling : polars DataFrame or LazyFrame
        The tables described in the module docstring (``None`` gives an empty table).
    window_s : float
        Arrival window length in seconds (ServeGen: 600).
    data_window_s : float
        Request-data window length in seconds (ServeGen: 21600; shorter for short traces, see
        ``data`` in the module docstring).
    span : (float, float), optional
        ``(start, end)`` in seconds; computed from the arrival windows when not given.
    fields : sequence of str, optional
        Request-data fields present, in order; computed from ``data`` when not given.
    provenance : Mapping, optional
        Where the pool came from (source, settings, versions); JSON-serialisable.

    Notes
    -----
    Tables are held as polars LazyFrames and collected (once) on first access of the property of
    the same name, so ``ClientPool.load`` of a large pool costs almost nothing until used.
    """

    def __init__(
        self,
        *,
        clients=None,
        arrivals=None,
        data=None,
        data_fits=None,
        conversations=None,
        conversation_pmfs=None,
        prefixes=None,
        churn=None,
        coupling=None,
        window_s: float,
        data_window_s: float,
        span: tuple[float, float] | None = None,
        fields: Iterable[str] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ):
        if not (isinstance(window_s, (int, float)) and window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}")
        if not (isinstance(data_window_s, (int, float)) and data_window_s > 0 and math.isfinite(data_window_s)):
            raise ValueError(f"data_window_s must be a positive number of seconds; got {data_window_s!r}")
        lazy = {name: _as_lazy(t, name) for name, t in (
            ("clients", clients), ("arrivals", arrivals), ("data", data), ("data_fits", data_fits),
            ("conversations", conversations), ("conversation_pmfs", conversation_pmfs), ("prefixes", prefixes),
            ("churn", churn), ("coupling", coupling))}
        d = self.__dict__
        d["window_s"] = float(window_s)
        d["data_window_s"] = float(data_window_s)
        if span is None:  # over every window given, idle placeholders included
            row = lazy["arrivals"].select(
                pl.col("window_start").min().alias("a"), (pl.col("window_start") + pl.col("window_s")).max().alias("b")
            ).collect()
            a, b = row["a"][0], row["b"][0]
            span = (0.0, 0.0) if a is None else (a, b)
        if not span[1] >= span[0]:
            raise PoolSpanError(f"span must satisfy start <= end; got {tuple(span)}")
        d["_span"] = (float(span[0]), float(span[1]))
        # idle placeholders (rate 0) are not held: a missing (client, window) is idle; a null rate
        # stays for the checks to refuse
        rate = pl.col("rate")
        lazy["arrivals"] = lazy["arrivals"].filter(rate.is_null() | (rate != 0))
        if fields is None:
            present = set(lazy["data"].select(pl.col("field").unique()).collect()["field"].to_list())
            fields = [f for f in DATA_FIELDS if f in present] + sorted(present - set(DATA_FIELDS))
        d["fields"] = tuple(fields)
        d["_lazy"] = MappingProxyType(lazy)
        d["provenance"] = MappingProxyType(dict(provenance or {}))

    def __setattr__(self, name, value):
        raise AttributeError(f"ClientPool is frozen; {name!r} cannot be set (operations return new pools)")

    def __delattr__(self, name):
        raise AttributeError(f"ClientPool is frozen; {name!r} cannot be deleted")

    def __repr__(self) -> str:
        return (f"<ClientPool span={self._span} window_s={self.window_s:g} data_window_s={self.data_window_s:g} "
                f"fields={list(self.fields)}>")

    # ------------------------------------------------------------------ tables
    def lazy(self, name: str) -> pl.LazyFrame:
        """The LazyFrame behind table ``name`` (``clients``, ``arrivals``, ``data``, ...)."""
        try:
            return self._lazy[name]
        except KeyError:
            raise KeyError(f"unknown pool table {name!r}; tables: {list(self._lazy)}") from None

    @cached_property
    def clients(self) -> pl.DataFrame:
        return self._lazy["clients"].collect()

    @cached_property
    def arrivals(self) -> pl.DataFrame:
        return self._lazy["arrivals"].collect()

    @cached_property
    def data(self) -> pl.DataFrame:
        return self._lazy["data"].collect()

    @cached_property
    def data_fits(self) -> pl.DataFrame:
        return self._lazy["data_fits"].collect()

    @cached_property
    def conversations(self) -> pl.DataFrame:
        return self._lazy["conversations"].collect()

    @cached_property
    def conversation_pmfs(self) -> pl.DataFrame:
        return self._lazy["conversation_pmfs"].collect()

    @cached_property
    def prefixes(self) -> pl.DataFrame:
        return self._lazy["prefixes"].collect()

    @property
    def span(self) -> Span:
        """``(start, end)`` in seconds; call it, ``pool.span(start, end)``, to clip."""
        return Span(*self._span, pool=self)

    @property
    def client_ids(self) -> tuple[str, ...]:
        return tuple(self.clients["client_id"].to_list())

    @property
    def n_clients(self) -> int:
        return self.clients.height

    # ------------------------------------------------------------------ construction
    def replace(self, **changes) -> "ClientPool":
        """A new pool with some tables or settings replaced (the others shared, not copied)."""
        kwargs: dict[str, Any] = dict(self._lazy)
        kwargs.update(window_s=self.window_s, data_window_s=self.data_window_s, span=self._span,
                      fields=self.fields, provenance=self.provenance)
        unknown = set(changes) - set(kwargs)
        if unknown:
            raise TypeError(f"replace() got unknown arguments {sorted(unknown)}; allowed: {sorted(kwargs)}")
        kwargs.update(changes)
        return ClientPool(**kwargs)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> "ClientPool":
        """Open a pool folder: servelab's format (lazily), or ServeGen's (imported).

        Keyword arguments go to :func:`~servelab.fitting.servegen_format.read_servegen` when
        ``path`` is a ServeGen pool (e.g. ``missing_data="drop"``).
        """
        from servelab.fitting.pool_format import is_servelab_pool, read_pool
        from servelab.fitting.servegen_format import is_servegen_pool, read_servegen

        if is_servelab_pool(path):
            return read_pool(path, **kwargs)
        if is_servegen_pool(path):
            return read_servegen(path, **kwargs)
        from servelab.fitting.exceptions import PoolNotFoundError

        raise PoolNotFoundError(
            f"{str(path)!r} is neither a servelab pool (manifest.json) nor a ServeGen pool (chunk-<id>-trace.csv files)"
        )

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the pool in servelab's format (see :mod:`~servelab.fitting.pool_format`)."""
        from servelab.fitting.pool_format import write_pool

        write_pool(self, path, overwrite=overwrite)

    def to_servegen(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the pool in ServeGen's format (see :mod:`~servelab.fitting.servegen_format`)."""
        from servelab.fitting.servegen_format import write_servegen

        write_servegen(self, path, overwrite=overwrite)

    # ------------------------------------------------------------------ operations (new pools)
    def clip(self, start: float | None = None, end: float | None = None) -> "ClientPool":
        """The pool restricted to windows overlapping ``[start, end)`` (seconds).

        Nested clips intersect: ``pool.clip(0, 100).clip(50, 200).span == (50, 100)``. Windows are
        kept whole (a window partly inside keeps its parameters); samplers only draw inside the
        span.

        Raises
        ------
        PoolSpanError
            If the clipped span is empty.
        """
        lo, hi = self._span
        start = lo if start is None else max(lo, float(start))
        end = hi if end is None else min(hi, float(end))
        if not end > start:
            raise PoolSpanError(
                f"span({start!r}, {end!r}) is empty within the pool's span {self._span}; give start < end inside it"
            )

        def keep(lf: pl.LazyFrame) -> pl.LazyFrame:
            return lf.filter((pl.col("window_start") < end) & (pl.col("window_start") + pl.col("window_s") > start))

        data_fits = self._lazy["data_fits"].filter(
            (pl.col("window_start") < end) & (pl.col("window_start") + self.data_window_s > start))
        return self.replace(arrivals=keep(self._lazy["arrivals"]), data=keep(self._lazy["data"]),
                            data_fits=data_fits, span=(start, end))

    def select(self, client_ids: Iterable[str]) -> "ClientPool":
        """The pool with only ``client_ids`` (in the pool's order).

        Raises
        ------
        KeyError
            If an id is not in the pool.
        """
        wanted = [str(c) for c in client_ids]
        unknown = sorted(set(wanted) - set(self.client_ids))
        if unknown:
            raise KeyError(f"client_ids {unknown[:10]} are not in the pool; it has {self.n_clients} clients, "
                           f"e.g. {list(self.client_ids[:5])}")
        keep = pl.col("client_id").is_in(wanted)
        return self.replace(**{name: lf.filter(keep) for name, lf in self._lazy.items()})

    def filter(
        self,
        predicate: pl.Expr | None = None,
        *,
        min_rate: float | None = None,
        max_rate: float | None = None,
        min_cv: float | None = None,
        max_cv: float | None = None,
    ) -> "ClientPool":
        """Clients whose statistics over the span pass every given bound.

        Parameters
        ----------
        predicate : polars.Expr, optional
            Any expression over the columns of :meth:`client_stats`, e.g.
            ``pl.col("mean_input_tokens") < 2000``.
        min_rate, max_rate : float, optional
            Bounds on the client's mean rate (requests/s over the span).
        min_cv, max_cv : float, optional
            Bounds on the client's rate-weighted mean CV.
        """
        stats = self.client_stats()
        cond = pl.lit(True)
        for col, lo, hi in (("mean_rate", min_rate, max_rate), ("cv_mean", min_cv, max_cv)):
            if lo is not None:
                cond = cond & (pl.col(col) >= lo)
            if hi is not None:
                cond = cond & (pl.col(col) <= hi)
        if predicate is not None:
            cond = cond & predicate
        return self.select(stats.filter(cond.fill_null(False))["client_id"].to_list())

    def top(self, n: int) -> "ClientPool":
        """The ``n`` clients with the highest mean rate over the span."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n must be a positive integer; got {n!r}")
        ids = self.client_stats().sort("mean_rate", descending=True, maintain_order=True).head(n)["client_id"]
        return self.select(ids.to_list())

    # ------------------------------------------------------------------ statistics
    def data_means(self) -> pl.DataFrame:
        """Mean of every field per client and data window: ``client_id, window_start, field, mean``."""
        return (self._lazy["data"].group_by("client_id", "window_start", "field")
                .agg(((pl.col("value") * pl.col("probability")).sum() / pl.col("probability").sum()).alias("mean"))
                .sort("client_id", "window_start", "field").collect())

    def data_window_rates(self) -> pl.DataFrame:
        """Mean rate of each client in each data window: ``client_id, window_start, rate``.

        Requests in the data window over its seconds inside the pool's span (idle arrival
        windows count as rate 0; only data windows with an active arrival window have a row).
        """
        dw = self.data_window_s
        lo, hi = self._span
        dws = pl.col("window_start")
        seconds = (pl.min_horizontal(dws + dw, pl.lit(hi)) - pl.max_horizontal(dws, pl.lit(lo)))
        return (self._lazy["arrivals"]
                .with_columns(((pl.col("window_start") / dw).floor() * dw).alias("dws"))
                .group_by("client_id", "dws")
                .agg((pl.col("rate") * pl.col("window_s")).sum().alias("requests"),
                     pl.col("window_s").sum().alias("held"))
                .rename({"dws": "window_start"})
                .with_columns(pl.max_horizontal(seconds, pl.col("held")).alias("seconds"))
                .select("client_id", "window_start", (pl.col("requests") / pl.col("seconds")).alias("rate"))
                .sort("client_id", "window_start").collect())

    def client_stats(self) -> pl.DataFrame:
        """Per-client statistics over the span, one row per client in the pool's order.

        Columns: ``client_id, mean_rate`` (requests/s over the span), ``rate_share``,
        ``active_windows``, ``cv_mean`` (rate-weighted over active windows with a CV), ``cv_max``,
        ``family_mode`` and ``mean_<field>`` (request-weighted over data windows) for each field.
        """
        duration = max(self._span[1] - self._span[0], 1e-300)
        arr = self._lazy["arrivals"].filter(pl.col("rate") > 0)
        per = arr.group_by("client_id").agg(
            ((pl.col("rate") * pl.col("window_s")).sum() / duration).alias("mean_rate"),
            pl.len().cast(pl.Int64).alias("active_windows"),
            ((pl.col("cv") * pl.col("rate")).sum() / pl.col("rate").filter(pl.col("cv").is_not_null()).sum())
            .alias("cv_mean"),
            pl.col("cv").max().alias("cv_max"),
            pl.col("family").drop_nulls().mode().sort().first().alias("family_mode"),
        ).collect()
        out = self.clients.select("client_id").join(per, on="client_id", how="left", maintain_order="left")
        out = out.with_columns(pl.col("mean_rate").fill_null(0.0), pl.col("active_windows").fill_null(0))
        total = out["mean_rate"].sum()
        out = out.with_columns((pl.col("mean_rate") / total if total > 0 else pl.lit(0.0)).alias("rate_share"))
        if self.fields:
            means = self.data_means().join(self.data_window_rates(), on=["client_id", "window_start"], how="left")
            means = means.with_columns(pl.col("rate").fill_null(0.0) + 1e-12)
            wide = (means.group_by("client_id", "field")
                    .agg(((pl.col("mean") * pl.col("rate")).sum() / pl.col("rate").sum()).alias("m"))
                    .pivot(on="field", index="client_id", values="m"))
            wide = wide.rename({f: f"mean_{f}" for f in wide.columns if f != "client_id"})
            out = out.join(wide, on="client_id", how="left", maintain_order="left")
            for f in self.fields:
                if f"mean_{f}" not in out.columns:
                    out = out.with_columns(pl.lit(None, pl.Float64).alias(f"mean_{f}"))
        order = ["client_id", "mean_rate", "rate_share", "active_windows", "cv_mean", "cv_max", "family_mode"]
        return out.select(order + [f"mean_{f}" for f in self.fields])

    def summary(self) -> pl.DataFrame:
        """:meth:`client_stats` joined with the ``clients`` table (has_arrivals, has_data, note)."""
        return self.client_stats().join(self.clients, on="client_id", how="left", maintain_order="left")

    def total_rate(self) -> pl.DataFrame:
        """The pool's total rate per arrival window: ``window_start, rate``."""
        return (self._lazy["arrivals"].group_by("window_start").agg(pl.col("rate").sum())
                .sort("window_start").collect())

    def window_cdf(self, stat: str = "cv", *, weighted: bool = True) -> pl.DataFrame:
        """Per-window CDF across clients of ``stat``, each client weighted by its rate.

        Parameters
        ----------
        stat : str
            ``"rate"`` or ``"cv"`` (per arrival window), or a data field name (the client's
            mean of that field per data window).
        weighted : bool
            Weight clients by their rate in the window (ServeGen's convention); else equally.

        Returns
        -------
        polars.DataFrame
            ``window_start, value, weight, cdf`` sorted by window and value; only active clients.
        """
        if stat in ("rate", "cv"):
            table = self._lazy["arrivals"].filter((pl.col("rate") > 0) & pl.col(stat).is_not_null()).select(
                "window_start", pl.col(stat).alias("value"), pl.col("rate").alias("w")).collect()
        elif stat in self.fields:
            table = (self.data_means().filter(pl.col("field") == stat)
                     .join(self.data_window_rates(), on=["client_id", "window_start"], how="left")
                     .select("window_start", pl.col("mean").alias("value"), pl.col("rate").fill_null(0.0).alias("w")))
        else:
            raise ValueError(f"stat must be 'rate', 'cv' or one of the pool's fields {list(self.fields)}; got {stat!r}")
        if not weighted:
            table = table.with_columns(pl.lit(1.0).alias("w"))
        return (table.sort("window_start", "value")
                .with_columns((pl.col("w").cum_sum() / pl.col("w").sum()).over("window_start").alias("cdf"))
                .rename({"w": "weight"}))

    def info(self, *, top: int = 5) -> dict[str, Any]:
        """Headline numbers for ``servelab pool info``: clients, span, top-client share, ranges, gaps."""
        stats = self.summary()
        shares = stats.sort("rate_share", descending=True)["rate_share"]
        arr = self._lazy["arrivals"].filter(pl.col("rate") > 0).select(
            pl.col("cv").min().alias("cv_min"), pl.col("cv").max().alias("cv_max"),
            pl.col("rate").max().alias("rate_max"), pl.len().alias("active_windows"),
            pl.col("family").value_counts(sort=True).alias("families")).collect()
        lengths = {}
        if self.fields:
            means = self.data_means()
            for f in self.fields:
                m = means.filter(pl.col("field") == f)["mean"]
                lengths[f] = (m.min(), m.max()) if m.len() else (None, None)
        fam = {}
        if arr.height:
            for row in arr["families"].to_list():
                # active windows without a family: too few gaps to fit one
                fam[row["family"] if row["family"] is not None else "no family"] = int(row["count"])
        return {
            "clients": self.n_clients,
            "span_s": tuple(self._span),
            "window_s": self.window_s,
            "data_window_s": self.data_window_s,
            "fields": list(self.fields),
            "mean_total_rate": float(stats["mean_rate"].sum()),
            f"top{top}_rate_share": float(shares.head(top).sum()) if shares.len() else 0.0,
            "active_windows": int(arr["active_windows"][0]) if arr.height else 0,
            "families": fam,
            "cv_range": (arr["cv_min"][0], arr["cv_max"][0]) if arr.height else (None, None),
            "rate_max": arr["rate_max"][0] if arr.height else None,
            "mean_field_range": lengths,
            "clients_without_data": stats.filter(~pl.col("has_data"))["client_id"].to_list(),
            "clients_without_arrivals": stats.filter(~pl.col("has_arrivals"))["client_id"].to_list(),
            "conversation_clients": self.conversations.height,
        }

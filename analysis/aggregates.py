r"""Per-(client, window) sufficient statistics of a trace store, in plain SQL (what pool fitting reads).

Every statistic :func:`~servelab.fitting.pool_fit.fit_pool` needs is computed here by DuckDB (or
Spark SQL: :mod:`servelab.analysis.engines`) over the store's ``requests`` Parquet, streaming: no Python loop over rows and no fetch of the whole
table. The results are O(clients x active windows) (plus bounded samples), so fitting memory
follows the active cells, not the rows.

Queries (the SQL text is kept in :data:`SQL`, one template per query, over the canonical schema)
------------------------------------------------------------------------------------------------
``client_counts``
    requests per ``client_id`` (NULL ids included as a NULL row).
``trace_gaps``
    the gaps of the whole trace in time order (for the logging clock): totals (gaps, exact zero
    gaps, smallest positive gap) over all rows, and the first ``limit`` gaps in time order as a
    bounded sample for :func:`~servelab.analysis.clock.clock_from_gaps`.
``gaps`` (a temporary table, built once)
    per request: pool client ``cidx``, arrival window ``w = floor(t / W)``, the *jittered* time
    ``tj = t + step * u`` (``u`` a uniform in [0, 1) hashed from ``(request_id, seed)``: the
    seeded, order-free SQL equivalent of the clock jitter of
    :mod:`servelab.fitting.pool_arrivals`), and the gap to the client's previous request in
    ``tj`` order when both lie in the same window (``NULL`` otherwise).
``arrival_cells``
    per active (client, window): ``n_req``, ``n_gaps``, ``sum_gap``, ``sum_gap2``, ``sum_log_gap``
    (positive gaps), ``n_pos_gaps``, ``mean_gap``, ``std_gap`` (population), ``n_zero_gaps`` (gaps
    of exactly 0 *before* the jitter: requests on the same clock tick).
``gap_samples``
    the positive gaps of cells with at least ``min_gaps`` of them, at most ``k`` per cell: all of
    a cell's gaps when it has ``k`` or fewer, else a seeded uniform subsample (``row_number()``
    over a hash of ``(request_id, seed)``): what the Weibull / Gamma likelihoods need raw.
``value_counts``
    per (client, data window, field, value key): requests (the request-data PMFs before binning);
    ``binned_counts`` bins them as the pool's PMFs are binned, in SQL.
``log_stats``
    per (client, data window, token field): count, mean and population variance of ``ln(value)``
    over positive values (the closed-form log-normal fit).
``conversation_turns``, ``conversation_itt``, ``requests_per_client``
    by explicit ``conversation_id``: conversations per (client, turns); inter-turn times per
    (client, bin) with their mean and count (bins of 0.1 s below 1 s, log bins above).

Portability (issue 21): the queries use only standard aggregates (``count``, ``sum``, ``avg``,
``stddev_pop``, ``var_pop``, ``min``, ``max``), window functions (``lag``, ``row_number``,
``max() OVER``) and CTEs, in DuckDB's spelling; :mod:`servelab.analysis.engines` runs them on DuckDB
as is or on Spark SQL translated by sqlglot (``aggregate_source(..., engine="spark")``). The seeded
uniforms come from :func:`mix_sql`, a 32-bit hash in plain integer and bit arithmetic (``&``, ``>>``,
``xor``, ``*`` without overflow) that both engines compute bit for bit (DuckDB's ``hash`` and Spark's
``xxhash64`` differ, so the jitter and the gap subsamples would differ). Half-to-even rounding is written out with ``floor`` so every engine rounds alike.

This module reads a store and returns small polars tables; it fits and writes nothing.
"""
from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import polars as pl

from servelab.analysis.engines import DuckDBEngine, Engine, SparkEngine, check_engine, spark_session
from servelab.analysis.store import TraceStore, duckdb_config

__all__ = ["SQL", "DIALECT", "AggregateSource", "aggregate_source", "client_counts", "trace_gaps", "TraceGaps",
           "build_gaps", "arrival_cells", "gap_samples", "value_counts", "log_stats", "uniform_sql", "mix_sql",
           "MIX_RANGE", "MIX_MULT", "round_half_even_sql", "binned_counts_sql", "BINNING_KEYS", "field_sql",
           "conversation_aggregates", "conversation_increments",
           "window_length_stats", "VALUE_KEY_MAX", "DEFAULT_MEMORY_LIMIT"]

#: the SQL fragments that are not plain templates, in DuckDB's spelling (the requests' table is each
#: engine's :meth:`~servelab.analysis.engines.Engine.parquet_source`); ``mix`` is the portable seeded hash of
#: :func:`mix_sql` (plain integer arithmetic both engines compute bit for bit, unlike DuckDB's
#: ``hash`` and Spark's ``xxhash64``); per-engine pieces are in :data:`servelab.analysis.engines.DIALECTS`
DIALECT = MappingProxyType({
    # a Parquet file as DuckDB reads it (DuckDBEngine.parquet_source; Spark reads the files into a view)
    "source": "read_parquet({path})",
    # one round of the mix: xor-shift by 16, times MIX_MULT, low 32 bits (every product < 2^59)
    # (every xor in parentheses: sqlglot writes it as Spark's ``^`` without them, which binds looser than ``*``)
    "mix_round": "(((xor(({x}) >> 16, {x})) * 73244475) & 4294967295)",
})

#: the values of :func:`mix_sql` are in [0, MIX_RANGE) (32 bits)
MIX_RANGE = 2**32

#: the multiplier of a :func:`mix_sql` round (0x45d9f3b: the 32-bit integer hash of T. Mueller's
#: answer on Stack Overflow 664014, two rounds and a final xor-shift)
MIX_MULT = 0x45D9F3B

#: DuckDB's buffer limit for the aggregation queries unless one is set (they spill beyond it)
DEFAULT_MEMORY_LIMIT = "4GB"

#: the keys of a ``binning`` (:func:`value_counts`, :func:`binned_counts_sql`)
BINNING_KEYS = ("exact_below", "bin_ratio", "spike_share", "max_bin_mass")

#: value keys (``round(value * scale)``) are clipped to this (they pack into 32 bits, as before)
VALUE_KEY_MAX = 2**32 - 1


def mix_sql(key: str, seed: int) -> str:
    """SQL of a seeded 32-bit hash of the BIGINT ``key``: an integer in [0, 2^32), the same bit for bit on
    every engine.

    The key's low 32 bits, xor the seed's (times the golden ratio's 0x9E3779B1, low 32 bits), xor
    its high bits times 40503 (low 32 bits), go through two rounds of ``x -> ((x >> 16) xor x) *
    0x45d9f3b mod 2^32`` and a final ``(x >> 16) xor x``: a bijection of 32 bits with full avalanche.
    Only ``&``, ``>>``, ``xor`` and products below 2^59, so DuckDB and Spark SQL (sqlglot writes
    ``xor`` as ``^``, ``>>`` as ``SHIFTRIGHT``) give the same value without overflow. Cheaper than
    modular squaring (no division): on 1 M rows about 40 ms of DuckDB CPU over a plain scan, against 20 ms for
    ``hash()`` and 75 ms for the four squarings modulo 2^31 - 1 it replaces.
    Keys that agree modulo 2^32 after the high-bit term collide (unavoidable past 2^32 keys).
    """
    m = MIX_RANGE - 1
    s = (int(seed) * 0x9E3779B1) & m
    k = f"CAST({key} AS BIGINT)"
    x = f"(xor((xor(({k} & {m}), {s})), ((({k} >> 32) * 40503) & {m})))"
    for _ in range(2):
        x = DIALECT["mix_round"].format(x=x)
    return f"(xor(({x}) >> 16, {x}))"


def uniform_sql(key: str, seed: int) -> str:
    """SQL of a uniform in [0, 1) on the grid k / 2^32: :func:`mix_sql` of ``key`` and ``seed`` over
    2^32 (the resolution is far below any clock step it jitters)."""
    return f"(CAST({mix_sql(key, seed)} AS DOUBLE) / {float(MIX_RANGE)!r})"


def round_half_even_sql(x: str) -> str:
    """SQL rounding ``x`` half to even (numpy's and polars' rounding), with ``floor`` only."""
    return (f"(CASE WHEN ({x}) - floor({x}) = 0.5 THEN 2 * floor(({x}) / 2 + 0.5) "
            f"ELSE floor(({x}) + 0.5) END)")


#: every query of this module, by name; ``{...}`` are filled by the functions below
#: rows of a (client, data window) with the value of a field whose meaning needs the window's maximum
#: of a count column (``group_max``; the per-item modality tokens): the shared head of the two
#: ``*_window`` queries below
_WINDOW_VALUES = """
        WITH r AS (
            SELECT {cidx} AS cidx, CAST(floor(q.timestamp / {data_window_s}) AS BIGINT) AS d, q.*
            FROM {source} q {join}
        ), x AS (
            SELECT cidx, d, {value} AS v FROM (
                SELECT *, max({count_col}) OVER (PARTITION BY cidx, d) AS group_max FROM r
            ) z
        )
"""

# mean and population variance of ln(v) over the positive values of ``x`` (cidx, d, v), per
# (cidx, d), from exact sums: ln(v) on a fixed-point grid of 2^-40 (q, DECIMAL(38, 0); an error of at
# most 4.6e-13 in ln v), the variance from the integer deviations of q from the rounded mean. avg and
# var_pop over doubles depend on the order the engine's threads add the rows in, which changed the
# pool's data_fits from run to run (1 M synthetic store: 3 fits, 3 tables). The sums stay below
# 10^38 up to 10^9 requests per (client, data window) with |ln v| below 21 (1e-9 < v < 1.3e9).
_LOG_STATS = """, c AS (
            SELECT cidx, d, CAST(round(ln(v) * 1.099511627776E12) AS DECIMAL(38, 0)) AS q, count(*) AS k
            FROM x
            WHERE v > 0 AND v < 'Infinity'
            GROUP BY 1, 2, 3
        ), m AS (
            SELECT cidx, d, sum(k) AS n, sum(k * q) AS s1 FROM c GROUP BY 1, 2
        ), e AS (
            SELECT cidx, d, n, s1, CAST(round(CAST(s1 AS DOUBLE) / n) AS DECIMAL(38, 0)) AS m0 FROM m
        )
        SELECT e.cidx, e.d, e.n, CAST(e.s1 AS DOUBLE) / e.n / 1.099511627776E12 AS mu,
               (CAST(sum(c.k * (c.q - e.m0) * (c.q - e.m0)) AS DOUBLE) / e.n
                - power(CAST(sum(c.k * (c.q - e.m0)) AS DOUBLE) / e.n, 2)) / 1.208925819614629174706176E24 AS var
        FROM c JOIN e ON c.cidx = e.cidx AND c.d = e.d
        GROUP BY e.cidx, e.d, e.n, e.s1
    """

SQL = MappingProxyType({
    "client_counts": """
        SELECT CAST(client_id AS VARCHAR) AS client_id, count(*) AS n
        FROM {source}
        GROUP BY 1
    """,
    "trace_gaps_totals": """
        WITH t AS (
            SELECT timestamp - lag(timestamp) OVER (ORDER BY timestamp, request_id) AS gap FROM {source}
        )
        SELECT count(gap) AS n_gaps, count(CASE WHEN gap = 0 THEN 1 END) AS n_zero,
               min(CASE WHEN gap > 0 THEN gap END) AS min_positive,
               min(gap) AS min_gap
        FROM t
    """,
    "trace_gaps_head": """
        WITH h AS (
            SELECT timestamp, request_id FROM {source} ORDER BY timestamp, request_id LIMIT {limit}
        ), t AS (
            SELECT timestamp - lag(timestamp) OVER (ORDER BY timestamp, request_id) AS gap,
                   row_number() OVER (ORDER BY timestamp, request_id) AS k
            FROM h
        )
        SELECT gap FROM t WHERE gap IS NOT NULL ORDER BY k
    """,
    "span": """
        SELECT count(*) AS n, min(timestamp) AS first, max(timestamp) AS last FROM {source}
    """,
    # the rows of the temporary table {table} (each engine makes it: Engine.create_temp_table)
    "gaps": """
        WITH r AS (
            SELECT {cidx} AS cidx, CAST(floor(q.timestamp / {window_s}) AS BIGINT) AS w, q.request_id,
                   q.timestamp AS t, q.timestamp + {step} * {uniform} AS tj
            FROM {source} q {join}
        ), o AS (
            SELECT cidx, w, request_id, t, tj,
                   lag(t) OVER (PARTITION BY cidx ORDER BY tj, request_id) AS prev_t,
                   lag(tj) OVER (PARTITION BY cidx ORDER BY tj, request_id) AS prev_tj,
                   lag(w) OVER (PARTITION BY cidx ORDER BY tj, request_id) AS prev_w
            FROM r
        )
        SELECT cidx, w, request_id, CASE WHEN prev_w = w THEN tj - prev_tj END AS gap,
               CASE WHEN prev_w = w AND t = prev_t THEN 1 ELSE 0 END AS raw_zero
        FROM o
    """,
    "arrival_cells": """
        SELECT cidx, w, count(*) AS n_req, count(gap) AS n_gaps, sum(gap) AS sum_gap,
               sum(gap * gap) AS sum_gap2, sum(CASE WHEN gap > 0 THEN ln(gap) END) AS sum_log_gap,
               count(CASE WHEN gap > 0 THEN 1 END) AS n_pos_gaps, sum(raw_zero) AS n_zero_gaps,
               avg(gap) AS mean_gap, stddev_pop(gap) AS std_gap
        FROM {table}
        GROUP BY cidx, w
    """,
    "gap_samples": """
        WITH c AS (
            SELECT cidx, w FROM {table}
            WHERE gap > 0 AND cidx >= {lo} AND cidx < {hi}
            GROUP BY cidx, w HAVING count(*) >= {min_gaps}
        ), s AS (
            SELECT g.cidx, g.w, g.gap,
                   row_number() OVER (PARTITION BY g.cidx, g.w ORDER BY {order_key}, g.request_id) AS k
            FROM {table} g JOIN c ON g.cidx = c.cidx AND g.w = c.w
            WHERE g.gap > 0
        )
        SELECT cidx, w, gap FROM s WHERE k <= {k} ORDER BY cidx, w, gap
    """,
    "value_counts": """
        WITH r AS (
            SELECT {cidx} AS cidx, CAST(floor(q.timestamp / {data_window_s}) AS BIGINT) AS d, {value} AS v
            FROM {source} q {join}
        )
        SELECT cidx, d, CAST(least({key}, {key_max}) AS BIGINT) AS vk, count(*) AS n
        FROM r
        WHERE v IS NOT NULL AND NOT isnan(v) AND v >= 0 AND v < 'Infinity'
        GROUP BY 1, 2, 3
    """,
    "value_counts_window": _WINDOW_VALUES + """
        SELECT cidx, d, CAST(least({key}, {key_max}) AS BIGINT) AS vk, count(*) AS n
        FROM x
        WHERE v IS NOT NULL AND NOT isnan(v) AND v >= 0 AND v < 'Infinity'
        GROUP BY 1, 2, 3
    """,
    # the PMF binning of servelab.fitting.pool_data over value counts ``{counts}`` (a query giving
    # cidx, d, vk, n): exact values below {exact_below}, log bins of ratio exp({log_ratio}) above,
    # a value with at least {spike} of its window kept, a log bin above {max_mass} of the window
    # cut at multiples of {max_mass} of its CDF; a bin's value is its count-weighted mean, ``lo`` and
    # ``hi`` the smallest and largest value it holds
    # (a bin's mass is its exact integer count over the window's: a float sum of the shares depends
    # on the order the engine adds them in, and decides the cut). One window partition (cidx, d):
    # ``lo`` orders the values as ``vk`` does and is constant over a log bin ``lb`` (``vk`` below
    # {exact_below}; else {exact_below} - 1 - lb, which grows with vk), so the running sum (ordered by
    # lo, vk: vk's order) and the log bin's count (the peers of ``lo``) share one partition and sort,
    # where a second partition by (cidx, d, lb), 2.1 M of them at 10 M rows, took a third of the
    # step's CPU on DuckDB: the same sums, the same bytes.
    "binned_counts": """
        WITH vc AS ({counts}), l AS (
            SELECT cidx, d, vk, n,
                   CASE WHEN vk < {exact_below} THEN CAST(vk AS DOUBLE)
                        ELSE -1 - floor(ln(CAST(vk AS DOUBLE) / {exact_below}) / {log_ratio}) END AS lb
            FROM vc
        ), o AS (
            SELECT cidx, d, vk, n, lb, CASE WHEN vk < {exact_below} THEN lb ELSE {exact_below} - 1 - lb END AS lo
            FROM l
        ), s AS (
            SELECT cidx, d, CAST(vk AS DOUBLE) AS v, n, lb, sum(n) OVER (PARTITION BY cidx, d) AS tot,
                   sum(n) OVER (PARTITION BY cidx, d ORDER BY lo, vk ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                       - n AS before,
                   sum(n) OVER (PARTITION BY cidx, d ORDER BY lo RANGE BETWEEN CURRENT ROW AND CURRENT ROW) AS lbn
            FROM o
        ), m AS (
            SELECT cidx, d, v, n, lb, CAST(n AS DOUBLE) / tot AS share, CAST(before AS DOUBLE) / tot AS cum_before,
                   CAST(lbn AS DOUBLE) / tot AS lbmass
            FROM s
        ), b AS (
            SELECT cidx, d, v, n,
                   CASE WHEN share >= {spike} THEN v WHEN v < {exact_below} THEN v
                        WHEN lbmass > {max_mass} THEN lb * 1000 - floor(cum_before / {max_mass})
                        ELSE lb * 1000 END AS bin
            FROM m
        ), g AS (
            SELECT cidx, d, {mean_key} AS vk, sum(n) AS n, min(v) AS lo, max(v) AS hi FROM b GROUP BY cidx, d, bin
        )
        SELECT cidx, d, CAST(vk AS BIGINT) AS vk, CAST(sum(n) AS BIGINT) AS n, CAST(min(lo) AS BIGINT) AS lo,
               CAST(max(hi) AS BIGINT) AS hi
        FROM g GROUP BY 1, 2, 3
    """,
    "log_stats": """
        WITH x AS (
            SELECT {cidx} AS cidx, CAST(floor(q.timestamp / {data_window_s}) AS BIGINT) AS d, {value} AS v
            FROM {source} q {join}
        )""" + _LOG_STATS,
    "log_stats_window": _WINDOW_VALUES.rstrip() + _LOG_STATS,
    # per (client, arrival window): requests, and mean and sample variance of each length field
    # (the load-length coupling of fitting.pool_coupling)
    "window_length_stats": """
        SELECT {cidx} AS c, CAST(floor(q.timestamp / {window_s}) AS BIGINT) AS w, count(*) AS n, {stats}
        FROM {source} q {join}
        GROUP BY 1, 2
    """,
    # conversations by explicit id: a conversation's turns are its requests in arrival order
    # (request_id); it belongs to the client of its first turn; a request without an id is a
    # conversation of one turn; an inter-turn time belongs to the client of its later turn
    "conversation_turns": """
        WITH r AS (
            SELECT {cidx} AS cidx, q.conversation_id AS conv, q.request_id FROM {source} q {join}
        ), c AS (
            SELECT conv, count(*) AS turns, min(request_id) AS first_id FROM r WHERE conv IS NOT NULL GROUP BY conv
        ), owned AS (
            SELECT r.cidx, c.turns FROM c JOIN r ON r.conv = c.conv AND r.request_id = c.first_id
            UNION ALL
            SELECT cidx, 1 AS turns FROM r WHERE conv IS NULL
        )
        SELECT cidx, turns, count(*) AS n FROM owned GROUP BY cidx, turns
    """,
    # an ITT bin's mean and total from an exact sum on a fixed-point grid of 2^-40 s (DECIMAL(38, 0)):
    # a sum of doubles depends on the order the engine's threads add the rows in
    "conversation_itt": """
        WITH r AS (
            SELECT {cidx} AS cidx, q.conversation_id AS conv, q.request_id, q.timestamp AS t
            FROM {source} q {join} WHERE q.conversation_id IS NOT NULL
        ), l AS (
            SELECT cidx, t - lag(t) OVER (PARTITION BY conv ORDER BY request_id) AS itt FROM r
        ), b AS (
            SELECT cidx, itt,
                   CASE WHEN itt < 1 THEN floor(itt * 10) + 1000000
                        ELSE -1 - floor(ln(itt) / {log_ratio}) END AS bin
            FROM l WHERE itt IS NOT NULL AND itt >= 0
        ), s AS (
            SELECT cidx, bin, count(*) AS n, sum(CAST(round(itt * 1.099511627776E12) AS DECIMAL(38, 0))) AS q
            FROM b GROUP BY cidx, bin
        )
        SELECT cidx, bin, CAST(q AS DOUBLE) / n / 1.099511627776E12 AS value, n, CAST(q AS DOUBLE) / 1.099511627776E12 AS total
        FROM s
    """,
    "conversation_increments": """
        WITH r AS (
            SELECT {cidx} AS cidx, q.conversation_id AS conv, q.request_id,
                   CAST(q.input_tokens AS DOUBLE) AS i, {output} AS o
            FROM {source} q {join}
        ), l AS (
            SELECT cidx, i,
                   CASE WHEN conv IS NOT NULL THEN lag(request_id) OVER w END AS prev,
                   CASE WHEN conv IS NOT NULL THEN lag(i) OVER w + coalesce(lag(o) OVER w, 0) END AS h,
                   conv IS NOT NULL AND count(*) OVER (PARTITION BY conv) > 1 AS multi
            FROM r WINDOW w AS (PARTITION BY conv ORDER BY request_id)
        ), x AS (
            SELECT cidx, prev IS NULL AS first, multi, CASE WHEN prev IS NULL THEN i ELSE i - h END AS x FROM l
        ), b AS (
            SELECT cidx, first, multi, x, x < 0 AS neg,
                   CASE WHEN abs(x) < {exact_below} THEN abs(x)
                        ELSE -1 - floor(ln(abs(x) / {exact_below}) / {log_ratio}) END AS bin
            FROM x WHERE x IS NOT NULL
        )
        SELECT cidx, first, multi, neg, bin, avg(x) AS value, count(*) AS n, min(x) AS lo, max(x) AS hi
        FROM b GROUP BY cidx, first, multi, neg, bin
    """,
    "requests_per_client": """
        SELECT {cidx} AS cidx, count(*) AS n FROM {source} q {join} GROUP BY 1
    """,
})


def _int64(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """``frame`` with the integer columns ``names`` as Int64 (each engine's integer types alike)."""
    return frame.with_columns(pl.col(*names).cast(pl.Int64))


def _sql_str(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class AggregateSource:
    """A store opened for aggregation: an :class:`~servelab.analysis.engines.Engine` and how rows map
    to pool clients.

    ``cidx`` and ``join`` are SQL fragments (see :func:`aggregate_source`); ``table`` names the
    temporary gaps table once :func:`build_gaps` has run.
    """

    engine: Engine
    source: str
    cidx: str
    join: str
    columns: tuple[str, ...]
    table: str = "pool_gaps"

    @property
    def con(self):
        """The DuckDB connection (engine ``duckdb`` only; TypeError on another engine)."""
        if not isinstance(self.engine, DuckDBEngine):
            raise TypeError(f"con is the DuckDB connection; this source runs on engine {self.engine.name!r}")
        return self.engine.con

    def frame(self, name: str, **values) -> pl.DataFrame:
        """The rows of query ``name`` (filled as by :meth:`fill`) on this source's engine."""
        return self.engine.frame(self.fill(name, **values))

    def fill(self, name: str, **values) -> str:
        """The SQL of query ``name`` with this source's fragments and ``values`` filled in."""
        return SQL[name].format(source=self.source, cidx=self.cidx, join=self.join, table=self.table, **values)


@contextlib.contextmanager
def aggregate_source(store: TraceStore, client_index: pl.DataFrame | None = None, *, residual: int = 0,
                     memory_limit: str | None = None, engine: str = "duckdb",
                     spark_master: str | None = None) -> Iterator[AggregateSource]:
    """Open ``store`` for the queries of this module (a context manager closing the connection).

    Parameters
    ----------
    store : TraceStore or FrameSource
        A store on disk, or an in-memory frame (engine ``duckdb``: its ``requests`` view).
    client_index : polars.DataFrame, optional
        ``client_id: str, cidx: i64``: the pool client of each store client id. Ids not listed
        (and NULL ids) go to ``residual``. None: every row is client ``residual`` (a store
        without ``client_id``).
    residual : int
        The pool client of unlisted ids.
    memory_limit : str, optional
        DuckDB's buffer limit (spills to a temporary directory beyond it). Default: the
        :func:`~servelab.analysis.store.duckdb_settings` in force, else :data:`DEFAULT_MEMORY_LIMIT`
        (the per-request gaps table of a 100 M-row store is several GB; it spills rather than grow).
        Engine ``duckdb`` only.
    engine : {"duckdb", "spark"}
        Where the queries run (:mod:`servelab.analysis.engines`): DuckDB in this process, or
        Spark SQL (the same SQL translated by sqlglot; needs ``servelab[spark]`` and Java).
    spark_master : str, optional
        Spark's master URL (``local[2]`` by default, ``spark://host:7077``).

    Raises
    ------
    ValueError
        If ``engine`` is unknown, or ``spark_master`` is given with engine ``duckdb``.
    EngineUnavailableError
        If engine ``spark`` cannot run here (pyspark or Java missing).
    """
    check_engine(engine)
    if engine == "duckdb" and spark_master is not None:
        raise ValueError(f"spark_master is for engine 'spark'; got spark_master={spark_master!r} with engine 'duckdb'")
    in_memory = getattr(store, "path", None) is None  # a FrameSource: its connection's ``requests`` view
    if in_memory and engine != "duckdb":
        raise ValueError(f"engine {engine!r} reads a store on disk; an in-memory frame runs on engine 'duckdb'")
    tmp = None
    if engine == "spark":
        eng: Engine = SparkEngine(spark_session(spark_master))
    else:
        if memory_limit is None and "memory_limit" not in duckdb_config():
            memory_limit = DEFAULT_MEMORY_LIMIT
        con = store.connect(memory_limit=memory_limit)
        eng = DuckDBEngine(con)
    try:
        source = "requests" if in_memory else eng.parquet_source(store.requests_files, store.columns)
        if engine == "duckdb":
            tmp = tempfile.TemporaryDirectory(prefix="servelab-agg-")
            con.execute(f"SET temp_directory = {_sql_str(tmp.name)}")
            con.execute("SET preserve_insertion_order = false")
        if client_index is None or "client_id" not in store.columns:
            cidx, join = f"CAST({int(residual)} AS BIGINT)", ""
        else:
            eng.register("pool_client_index", client_index.select(
                pl.col("client_id").cast(pl.String), pl.col("cidx").cast(pl.Int64)))
            cidx = f"coalesce(m.cidx, CAST({int(residual)} AS BIGINT))"
            join = "LEFT JOIN pool_client_index m ON CAST(q.client_id AS VARCHAR) = m.client_id"
        yield AggregateSource(engine=eng, source=source, cidx=cidx, join=join, columns=tuple(store.columns))
    finally:
        eng.close()
        if tmp is not None:
            tmp.cleanup()


def client_counts(src: AggregateSource) -> pl.DataFrame:
    """Requests per client id: ``client_id: str | null, n: i64`` (one row per id)."""
    if "client_id" not in src.columns:
        n = src.frame("span")["n"][0]
        return pl.DataFrame({"client_id": [None], "n": [int(n)]}, schema={"client_id": pl.String, "n": pl.Int64})
    return src.frame("client_counts").with_columns(pl.col("client_id").cast(pl.String), pl.col("n").cast(pl.Int64))


@dataclass(frozen=True)
class TraceGaps:
    """The trace's gaps in time order, for its logging clock (see :func:`trace_gaps`).

    ``head`` is the first gaps in time order (all of them when ``n_gaps <= len(head)``);
    ``n_gaps``, ``n_zero`` and ``min_positive`` are over the whole trace.
    """

    n_rows: int
    first: float | None
    last: float | None
    n_gaps: int
    n_zero: int
    min_positive: float | None
    head: np.ndarray


def trace_gaps(src: AggregateSource, *, limit: int = 2_000_000) -> TraceGaps:
    """Totals over all the trace's gaps and the first ``limit`` gaps in time order.

    Raises
    ------
    ValueError
        If ``limit`` is not a positive integer.
    """
    if not (isinstance(limit, int) and limit >= 1):
        raise ValueError(f"limit must be a positive integer; got {limit!r}")
    n, first, last = src.frame("span").row(0)
    if not n:
        return TraceGaps(0, None, None, 0, 0, None, np.empty(0))
    n_gaps, n_zero, min_pos, _ = src.frame("trace_gaps_totals").row(0)
    head = src.frame("trace_gaps_head", limit=int(limit) + 1)["gap"].cast(pl.Float64).to_numpy()
    return TraceGaps(int(n), float(first), float(last), int(n_gaps), int(n_zero),
                     None if min_pos is None else float(min_pos), np.asarray(head, dtype=float))


def build_gaps(src: AggregateSource, *, window_s: float, step: float | None, seed: int) -> None:
    """Create the temporary gaps table of ``src`` (once; see the module docstring).

    ``step`` None: the timestamps as given (no jitter). Raises ValueError on a bad window or step.
    """
    if not (math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}")
    if step is not None and not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be None or a positive number of seconds; got {step!r}")
    uniform = uniform_sql("q.request_id", seed) if step is not None else "0.0"
    query = src.fill("gaps", window_s=repr(float(window_s)), step=repr(float(step or 0.0)), uniform=uniform)
    src.engine.create_temp_table(src.table, query)


def arrival_cells(src: AggregateSource) -> pl.DataFrame:
    """Per active (client, window) counts and gap sums (needs :func:`build_gaps` first), by cidx, w."""
    return _int64(src.frame("arrival_cells"), "cidx", "w", "n_req", "n_gaps", "n_pos_gaps", "n_zero_gaps"
                  ).sort("cidx", "w")


def gap_samples(src: AggregateSource, *, min_gaps: int, k: int, seed: int, lo: int = 0,
                hi: int = 2**62) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cidx, w, gap) of the positive gaps of clients ``lo <= cidx < hi``, at most ``k`` per cell.

    Cells with fewer than ``min_gaps`` positive gaps are left out; a cell with more than ``k``
    keeps a seeded uniform subsample (the ``k`` smallest hashes of ``(request_id, seed)``). Rows
    come sorted by cell.
    """
    if not (isinstance(k, int) and k >= 1 and isinstance(min_gaps, int) and min_gaps >= 1):
        raise ValueError(f"k and min_gaps must be positive integers; got k={k!r}, min_gaps={min_gaps!r}")
    order_key = mix_sql("g.request_id", int(seed) + 1)
    out = src.frame("gap_samples", min_gaps=int(min_gaps), k=int(k), lo=int(lo), hi=int(hi), order_key=order_key)
    return (np.asarray(out["cidx"], dtype=np.int64), np.asarray(out["w"], dtype=np.int64),
            np.asarray(out["gap"], dtype=float))


def value_counts(src: AggregateSource, *, value: str, data_window_s: float, scale: float = 1.0,
                 count_col: str | None = None, binning: Mapping[str, float] | None = None) -> pl.DataFrame:
    """Requests per (client, data window, value key): ``cidx, d, vk, n``.

    Parameters
    ----------
    value : str
        SQL expression of the field over the store's columns (prefix ``q.``); with ``count_col``
        it may use ``group_max``, the largest ``count_col`` of the (client, data window).
    data_window_s : float
    scale : float
        Value keys are ``round_half_even(value * scale)`` (1: token counts; 501: ServeGen's ratio grid).
    binning : Mapping, optional
        ``exact_below, bin_ratio, spike_share, max_bin_mass``: bin the counts in SQL as
        :func:`servelab.fitting.pool_data.pmfs_from_counts` does (``vk`` is then a bin's rounded
        count-weighted mean value, and columns ``lo, hi`` the smallest and largest value keys the
        bin holds), so that the result is bounded by the PMF's size, not by the distinct values.
    """
    key = round_half_even_sql(f"v * {float(scale)!r}")
    name = "value_counts_window" if count_col else "value_counts"
    extra = {"count_col": count_col} if count_col else {}
    sql = src.fill(name, value=value, data_window_s=repr(float(data_window_s)), key=key, key_max=VALUE_KEY_MAX,
                   **extra)
    if binning is not None:
        sql = binned_counts_sql(sql, **{k: binning[k] for k in BINNING_KEYS})
        return _int64(src.engine.frame(sql), "cidx", "d", "vk", "n", "lo", "hi")
    return _int64(src.engine.frame(sql), "cidx", "d", "vk", "n")


def binned_counts_sql(counts: str, *, exact_below: int, bin_ratio: float, spike_share: float,
                      max_bin_mass: float) -> str:
    """SQL binning the value counts of query ``counts`` (``cidx, d, vk, n``) as the pool's PMFs are binned.

    :data:`SQL` ``["binned_counts"]`` filled in: the SQL twin of
    :func:`servelab.fitting.pool_data.pmfs_from_counts`'s binning (values below ``exact_below``
    exact, log bins of ratio ``bin_ratio`` above, a value of at least ``spike_share`` of its
    window kept, a log bin over ``max_bin_mass`` of its window cut at multiples of
    ``max_bin_mass`` of the window's CDF). Gives ``cidx, d, vk, n, lo, hi``: ``vk`` a bin's
    count-weighted mean value rounded half to even, ``lo`` and ``hi`` the smallest and largest
    value it holds (both ``vk`` for a value kept exactly).
    """
    return SQL["binned_counts"].format(
        counts=counts, exact_below=int(exact_below), log_ratio=repr(math.log(bin_ratio)),
        spike=repr(float(spike_share)), max_mass=repr(float(max_bin_mass)),
        mean_key=round_half_even_sql("sum(v * n) / sum(n)"))


def log_stats(src: AggregateSource, *, value: str, data_window_s: float, count_col: str | None = None) -> pl.DataFrame:
    """Per (client, data window): ``cidx, d, n, mu, var`` of ``ln(value)`` over positive values.

    ``value`` and ``count_col`` as for :func:`value_counts`.
    """
    name = "log_stats_window" if count_col else "log_stats"
    extra = {"count_col": count_col} if count_col else {}
    sql = src.fill(name, value=value, data_window_s=repr(float(data_window_s)), **extra)
    return _int64(src.engine.frame(sql), "cidx", "d", "n")


def _exact_mean_var(field: str) -> str:
    """SQL of ``<field>`` (mean of the non-null values) and ``<field>_var`` (sample variance, null
    below 2 values) from exact integer sums of an integer column (DECIMAL(38, 0); the store's
    lengths are BIGINT): ``avg`` and ``var_samp`` over doubles depend on the order the engine's
    threads add the rows in, which changed the pool's coupling table from run to run."""
    x, m = f"CAST(q.{field} AS DECIMAL(38, 0))", f"count(q.{field})"
    s1, s2 = f"sum({x})", f"sum({x} * {x})"
    return (f"CAST({s1} AS DOUBLE) / {m} AS {field}, "
            f"CASE WHEN {m} > 1 THEN CAST({m} * {s2} - {s1} * {s1} AS DOUBLE) / ({m} * ({m} - 1)) END AS {field}_var")


def window_length_stats(src: AggregateSource, *, fields: Sequence[str], window_s: float) -> pl.DataFrame:
    """Per active (client, window) of ``window_s``: ``c, w, n`` and, per field, ``<field>`` (mean of
    the non-null values) and ``<field>_var`` (their sample variance), the input of
    :func:`servelab.fitting.pool_coupling.coupling_from_cells`."""
    stats = ", ".join(_exact_mean_var(f) for f in fields)
    sql = src.fill("window_length_stats", window_s=repr(float(window_s)), stats=stats)
    return _int64(src.engine.frame(sql), "c", "w", "n")


def field_sql(name: str, kind: str, columns: Sequence[str]) -> tuple[str, float, str | None]:
    """(SQL value expression, key scale, count column for the window rule) of a pool data field.

    The SQL twins of :func:`servelab.fitting.pool_data.request_fields`: ``reason_ratio`` on
    ServeGen's grid k / 501, per-item modality tokens (``{0: 1}`` for a window none of whose
    requests carries the modality).
    """
    if name == "reason_ratio":
        ratio = "least(greatest(CAST(q.reason_tokens AS DOUBLE) / q.output_tokens, 0.0), 1.0)"
        grid = f"least(greatest({round_half_even_sql(ratio + ' * 501')}, 0), 500) / 501.0"
        return f"CASE WHEN q.output_tokens > 0 THEN {grid} END", 501.0, None
    if name.endswith("_tokens") and name[:-len("_tokens")] in ("image", "audio", "video"):
        cnt = name[:-len("_tokens")] + "_count"
        if cnt in columns:
            per_item = round_half_even_sql(f"CAST(q.{name} AS DOUBLE) / q.{cnt}").replace("q.", "z.")
            value = (f"CASE WHEN z.{cnt} > 0 THEN {per_item} WHEN z.group_max = 0 THEN 0.0 END")
            return value, 1.0, cnt
    return f"CAST(q.{name} AS DOUBLE)", 1.0, None



def conversation_aggregates(src: AggregateSource, *, bin_ratio: float
                            ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """By ``conversation_id``: ``(turns, itt, requests)`` per client.

    ``turns``: ``cidx, turns, n`` (conversations of that many turns, owned by the client of
    their first turn; requests without an id are 1-turn conversations); ``itt``: ``cidx, bin,
    value`` (mean), ``n``, ``total`` per inter-turn-time bin (0.1 s bins below 1 s, log bins of
    ratio ``bin_ratio`` above, the keys of :func:`servelab.fitting.pool_data.bin_values`);
    ``requests``: ``cidx, n``.
    """
    if not bin_ratio > 1:
        raise ValueError(f"bin_ratio must be > 1; got {bin_ratio!r}")
    turns = src.frame("conversation_turns")
    itt = src.frame("conversation_itt", log_ratio=repr(math.log(bin_ratio)))
    req = src.frame("requests_per_client")
    if not isinstance(src.engine, DuckDBEngine):  # DuckDB's types (Spark's floor is a BIGINT)
        turns = turns.with_columns(pl.col("cidx", "turns").cast(pl.Int64))
        itt = itt.with_columns(pl.col("cidx").cast(pl.Int64), pl.col("bin").cast(pl.Float64))
        req = req.with_columns(pl.col("cidx").cast(pl.Int64))
    return turns, itt, req


def conversation_increments(src: AggregateSource, *, exact_below: int, bin_ratio: float) -> pl.DataFrame:
    """By ``conversation_id``: per client, binned first-turn inputs and follow-up increments (issue 15).

    A follow-up's increment is its ``input_tokens`` minus its history (its parent's input +
    output, output NULL counted as 0; the parent is the previous request of the conversation by
    ``request_id``); a first turn (requests without an id included) counts its input. Returns
    ``cidx, first`` (bool: a first turn's input, else an increment), ``multi`` (the request's
    conversation has two turns or more), ``neg, bin, value`` (mean),
    ``n``, ``lo, hi`` (the smallest and largest value): bins of ``|x|`` as
    :func:`servelab.fitting.pool_data.bin_values` keys them, ``neg`` for negative values.
    Needs ``input_tokens`` in the store.
    """
    if not bin_ratio > 1:
        raise ValueError(f"bin_ratio must be > 1; got {bin_ratio!r}")
    if not (isinstance(exact_below, int) and exact_below >= 1):
        raise ValueError(f"exact_below must be an integer >= 1; got {exact_below!r}")
    output = "CAST(q.output_tokens AS DOUBLE)" if "output_tokens" in src.columns else "CAST(NULL AS DOUBLE)"
    frame = src.frame("conversation_increments", exact_below=exact_below, output=output,
                      log_ratio=repr(math.log(bin_ratio)))
    # Spark's floor is an integer, DuckDB's a double: the bins as doubles on both engines
    return _int64(frame, "cidx", "n").with_columns(pl.col("bin").cast(pl.Float64))

r"""Generation sharded by client: each client drawn from its own seed, on any number of machines (issue 21).

In the per-client model clients are independent, so a workload splits by client: client ``c``
draws its requests for the span from the stream of :func:`client_seed` ``(seed, c)``, a seed
derived from the global seed and the client id by SHA-256 (not from its position in the pool or
its shard). A client's rows therefore do not depend on which other clients are generated with it,
in which order, on how many workers: the workload is the same *set of rows* whether it is drawn

- in one process (:func:`generate_by_client`, the single-machine reference; on the command line
  ``servelab generate POOL --rate pool --streams client``),
- by client groups (:func:`generate_shard` of each group, :func:`generate_sharded` locally;
  :func:`write_sharded` writes them as Parquet partitioned by day, ``servelab generate --shards N``), or
- by Spark tasks (:func:`spark_generate`: ``mapInArrow`` over the client ids, each task running
  :func:`generate_shard` on its clients and writing Parquet partitioned by day; ``servelab generate
  --shards N --spark-master URL``).

:func:`read_sharded` reads a folder of either writer back as one frame. Cost on one machine:
drawing each client from its own stream is a Python loop over clients (each client's requests
vectorised), so it is slower than :func:`~servelab.generator.generate.generate` when a pool has
many small clients; ``benchmarks/bench_engines.py --streams-cost`` measures the ratio.

Each client is :func:`servelab.generator.generate.generate` of the pool restricted to that client
(``pool.select([c])``) at the pool's own rate (``rate="pool"``: its fitted windows' rates), with
seed :func:`client_seed`. What is per client follows from that: a (client, data window) without
a PMF borrows the client's nearest window, else the *client's* rate-weighted aggregate (not the
whole pool's); conversation ids are prefixed with the client id (``"<client>/<id>"``) so they stay
unique across clients.

Why not :func:`~servelab.generator.generate.generate` row by row: ``generate()`` on the whole pool
draws each time unit of *all* clients from one stream (``SeedSequence(seed, spawn_key=(1, unit))``,
:mod:`servelab.generator.stream`), vectorised over the unit's (client, segment) cells, so the
numbers a client gets depend on the other clients of the unit; no split by client reproduces its
rows without drawing per (client, unit) (a Python loop over cells that would change ``generate()``'s
bytes and slow it down). What the sharded workload equals instead: exactly, the rows of
``generate()`` of each client alone with :func:`client_seed` (``tests/generator/test_sharded_generation.py``);
in law, ``generate()`` on the whole pool for every client with request data (the same renewal
process and window PMFs; the test compares the lengths by two-sample KS). One difference by design:
a client without any data in the pool gets null lengths here, where ``generate()`` lends it the
rate-weighted aggregate of the clients that have data (a shard sees only its own clients).

Design point: a day at 100,000 req/s is 8.64 B requests. Clients are the unit of work; a task
holds one client's draws for the span at a time (a client above ~10^8 requests per span would be
split further by time, which this module does not do). ``benchmarks/bench_engines.py`` measures a
slice and projects the rest.

This module draws and writes; it fits nothing.
"""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from servelab.generator.rates import DEFAULT_MAX_REQUESTS

__all__ = ["client_seed", "active_clients", "shard_schema", "generate_shard", "generate_by_client", "generate_sharded",
           "client_groups", "spark_generate", "write_sharded", "read_sharded", "DAY_COLUMN"]

#: the partition column :func:`spark_generate` writes (``day=YYYY-MM-DD``: 1970-01-01 + timestamp, the
#: workload's seconds from its start, so the first 24 h are ``day=1970-01-01``)
DAY_COLUMN = "day"


def client_seed(seed: int, client_id: str) -> int:
    """The seed of client ``client_id``: the first 8 bytes of SHA-256(``"<seed>\\x00<client_id>"``),
    as an integer in [0, 2^63).

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer or ``client_id`` not a string.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    if not isinstance(client_id, str):
        raise ValueError(f"client_id must be a string; got {client_id!r}")
    digest = hashlib.sha256(f"{int(seed)}\x00{client_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _span(pool, duration: float, start: float | None) -> tuple[float, float]:
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds; got {duration!r}")
    lo = float(pool.span.start if start is None else start)
    return lo, lo + float(duration)


def active_clients(pool, duration: float, *, start: float | None = None) -> tuple[str, ...]:
    """The pool's clients with a window of positive rate overlapping ``[start, start + duration)``
    (the others draw no request there), in the pool's order."""
    lo, hi = _span(pool, duration, start)
    a = pool.arrivals
    live = a.filter((pl.col("window_start") < hi) & (pl.col("window_start") + pl.col("window_s") > lo)
                    & (pl.col("rate") > 0))["client_id"].unique()
    keep = set(live.to_list())
    return tuple(c for c in pool.client_ids if c in keep)


def _one_client(pool, client: str, lo: float, hi: float, seed: int, conversations: bool) -> pl.DataFrame:
    from servelab.generator.generate import generate

    frame = generate(pool.select([client]), "pool", hi - lo, start=lo, seed=client_seed(seed, client),
                     conversations=conversations, max_requests=None)  # the caller checked the budget
    links = [c for c in ("conversation_id", "parent_id") if c in frame.columns]
    if links:
        frame = frame.with_columns(pl.when(pl.col(c).is_not_null()).then(pl.lit(f"{client}/") + pl.col(c))
                                   .otherwise(None).alias(c) for c in links)
    return frame


def shard_schema(pool, duration: float, *, start: float | None = None, conversations: bool = True) -> pl.Schema:
    """The columns (and types) of every shard of ``pool`` over the span: those of
    :func:`~servelab.generator.generate.generate` on the pool's active clients (a client without
    some field, e.g. one whose dataset is missing, has nulls there)."""
    from servelab.generator.generate import _empty_frame
    from servelab.generator.stream import plan_generation

    lo, hi = _span(pool, duration, start)
    live = active_clients(pool, duration, start=lo)
    if not live:
        return pl.Schema({"timestamp": pl.Float64, "client_id": pl.String})
    plan = plan_generation(pool.select(live), "pool", hi - lo, start=lo, seed=0, conversations=conversations)
    return _empty_frame(plan).schema


def _check_budget(pool, clients: Sequence[str], lo: float, hi: float, max_requests: int | None) -> None:
    """Refuse ``clients``' workload over ``[lo, hi)`` when its expected size (each at its pool rate)
    exceeds ``max_requests`` (:func:`servelab.generator.rates.check_request_budget`)."""
    from servelab.generator.rates import check_request_budget, pool_rate

    if max_requests is not None and clients:
        check_request_budget(pool_rate(1.0), hi - lo, pool.select(list(clients)), start=lo, max_requests=max_requests)


def generate_shard(pool, clients: Sequence[str], duration: float, *, seed: int, start: float | None = None,
                   conversations: bool = True, max_requests: int | None = DEFAULT_MAX_REQUESTS,
                   schema: pl.Schema | None = None) -> pl.DataFrame:
    """The requests of ``clients`` over ``[start, start + duration)`` (start: the pool's), each
    client drawn from :func:`client_seed` ``(seed, client)``; sorted by (timestamp, client_id),
    with the columns of :func:`shard_schema`.

    A loop over clients (each client's requests are drawn vectorised); clients without a window in
    the span give no rows. ``max_requests`` (None: no limit) bounds the shard's expected size, each
    client at its pool rate, checked before anything is drawn. ``schema``: :func:`shard_schema` of
    the same pool, span and ``conversations`` when the caller has it (it plans the whole pool, so
    the shards of one workload compute it once), else computed here.

    Raises
    ------
    ValueError
        If a client is not in the pool, or ``seed`` / ``duration`` is invalid.
    RequestBudgetError
        If the shard is estimated above ``max_requests``.
    """
    client_seed(seed, "")  # checks the seed
    lo, hi = _span(pool, duration, start)
    known = set(pool.client_ids)
    unknown = [c for c in clients if c not in known]
    if unknown:
        raise ValueError(f"clients must be ids of the pool; got unknown {unknown[:5]!r}")
    if schema is None:
        schema = shard_schema(pool, duration, start=lo, conversations=conversations)
    live = set(active_clients(pool, duration, start=lo))
    _check_budget(pool, [c for c in clients if c in live], lo, hi, max_requests)
    frames = [_one_client(pool, c, lo, hi, seed, conversations) for c in clients if c in live]
    frames = [f.select(pl.col(n).cast(t) if n in f.columns else pl.lit(None, dtype=t).alias(n)
                       for n, t in schema.items()) for f in frames if f.height]
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames).sort("timestamp", "client_id", maintain_order=True)


def generate_by_client(pool, duration: float, *, seed: int, start: float | None = None,
                       conversations: bool = True, max_requests: int | None = DEFAULT_MAX_REQUESTS) -> pl.DataFrame:
    """The whole pool's workload in one process: :func:`generate_shard` of every client (the
    single-machine reference of :func:`generate_sharded`, :func:`write_sharded` and
    :func:`spark_generate`; ``servelab generate --streams client``)."""
    return generate_shard(pool, pool.client_ids, duration, seed=seed, start=start, conversations=conversations,
                          max_requests=max_requests)


def client_groups(clients: Sequence[str], n_groups: int) -> tuple[tuple[str, ...], ...]:
    """``clients`` dealt into ``n_groups`` groups by a hash of the id (SHA-256, so a client's group
    does not depend on the list's order); empty groups are dropped.

    Raises
    ------
    ValueError
        If ``n_groups`` is not a positive integer.
    """
    if isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive integer; got {n_groups!r}")
    key = [int.from_bytes(hashlib.sha256(c.encode()).digest()[:8], "big") % n_groups for c in clients]
    groups = [tuple(c for c, k in zip(clients, key) if k == g) for g in range(n_groups)]
    return tuple(g for g in groups if g)


def generate_sharded(pool, duration: float, *, seed: int, n_shards: int, start: float | None = None,
                     conversations: bool = True,
                     max_requests: int | None = DEFAULT_MAX_REQUESTS) -> Iterator[pl.DataFrame]:
    """The pool's workload as ``n_shards`` client groups (:func:`client_groups`), one frame per
    group, drawn one after the other in this process (what a worker of a cluster would do with its
    group). Their union is :func:`generate_by_client`'s rows. ``max_requests`` bounds the whole
    workload (checked once, before the first shard)."""
    lo, hi = _span(pool, duration, start)
    _check_budget(pool, active_clients(pool, duration, start=lo), lo, hi, max_requests)
    schema = shard_schema(pool, duration, start=lo, conversations=conversations)
    for group in client_groups(list(pool.client_ids), n_shards):
        yield generate_shard(pool, group, duration, seed=seed, start=lo, conversations=conversations,
                             max_requests=None, schema=schema)


def write_sharded(pool, duration: float, *, seed: int, output: str | os.PathLike, n_shards: int,
                  start: float | None = None, conversations: bool = True,
                  max_requests: int | None = DEFAULT_MAX_REQUESTS) -> dict:
    """:func:`generate_sharded` written as :func:`spark_generate` writes it, without Spark: each
    shard's rows go to ``output/day=YYYY-MM-DD/shard-KKKKK.parquet`` (its rows of that day), one
    shard in memory at a time.

    Parameters
    ----------
    pool : ClientPool
    duration : float
        Seconds to generate from ``start`` (default: the pool's start).
    seed : int
    output : path-like
        A folder that must not exist yet (or be empty).
    n_shards : int
        Client groups (:func:`client_groups`).
    start : float, optional
    conversations : bool
    max_requests : int or None
        Bound on the whole workload's expected size (None: no limit).

    Returns
    -------
    dict
        ``output`` (str), ``clients`` (active clients), ``shards`` (non-empty client groups),
        ``requests``, ``days`` (sorted), ``files``.

    Raises
    ------
    ValueError
        For a bad seed, duration or ``n_shards``, or an ``output`` folder that is not empty.
    RequestBudgetError
        If the workload is estimated above ``max_requests``.
    """
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output must be a new or empty folder; got {str(out)!r}")
    lo, _ = _span(pool, duration, start)
    live = active_clients(pool, duration, start=lo)
    requests, files, days = 0, 0, set()
    for k, frame in enumerate(generate_sharded(pool, duration, seed=seed, n_shards=n_shards, start=lo,
                                               conversations=conversations, max_requests=max_requests)):
        if not frame.height:
            continue
        frame = frame.with_columns(_day(pl.col("timestamp")).alias(DAY_COLUMN))
        for (day,), part in frame.group_by(DAY_COLUMN, maintain_order=True):
            folder = out / f"{DAY_COLUMN}={day}"
            folder.mkdir(parents=True, exist_ok=True)
            part.drop(DAY_COLUMN).write_parquet(folder / f"shard-{k:05d}.parquet")
            files += 1
            days.add(day)
        requests += frame.height
    out.mkdir(parents=True, exist_ok=True)
    return {"output": str(out), "clients": len(live), "shards": len(client_groups(list(pool.client_ids), n_shards)),
            "requests": requests, "days": sorted(days), "files": files}


def read_sharded(path: str | os.PathLike) -> pl.DataFrame:
    """The rows of a folder written by :func:`write_sharded` or :func:`spark_generate` (Parquet
    under ``day=YYYY-MM-DD/``), without the ``day`` column (it is derived from ``timestamp``),
    sorted by (timestamp, client_id) as :func:`generate_by_client` sorts them.

    Raises
    ------
    FileNotFoundError
        If ``path`` holds no ``day=*/*.parquet`` file.
    """
    files = sorted(Path(path).glob(f"{DAY_COLUMN}=*/*.parquet"))
    if not files:
        raise FileNotFoundError(f"path must hold Parquet files under {DAY_COLUMN}=*/; got {str(path)!r}")
    frame = pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="vertical_relaxed")
    return frame.sort("timestamp", "client_id", maintain_order=True)


def _day(timestamp: pl.Expr) -> pl.Expr:
    """``YYYY-MM-DD`` of 1970-01-01 + ``timestamp`` seconds (UTC), as polars computes it."""
    return (timestamp * 1e6).round().cast(pl.Int64).cast(pl.Datetime("us")).dt.strftime("%Y-%m-%d")


def _spark_type(dtype: pl.DataType) -> str:
    """The Spark DDL type of a polars column of a generated workload."""
    names = {pl.Float64: "double", pl.Int64: "bigint", pl.String: "string", pl.Int32: "int", pl.Boolean: "boolean"}
    if isinstance(dtype, pl.List):
        return f"array<{_spark_type(dtype.inner)}>"
    for k, v in names.items():
        if dtype == k:
            return v
    raise ValueError(f"dtype must be one of {list(names)} or a list of them; got {dtype!r}")


def spark_generate(pool, duration: float, *, seed: int, output: str | os.PathLike, master: str | None = None,
                   n_tasks: int = 2, start: float | None = None, conversations: bool = True,
                   max_requests: int | None = DEFAULT_MAX_REQUESTS) -> dict:
    """Generate the pool's workload on Spark and write it as Parquet partitioned by day.

    The client ids become a DataFrame of ``n_tasks`` partitions; ``mapInArrow`` runs
    :func:`generate_shard` on each batch of ids (the pool travels to the tasks pickled with the
    function) and Spark writes ``output/day=YYYY-MM-DD/part-*.parquet`` (days of 1970-01-01 +
    timestamp, the seconds from the workload's start as :func:`generate_shard` gives them; the
    ``day`` column is in the path only). The rows are those of
    :func:`generate_by_client` with the same seed, as a set.

    Parameters
    ----------
    pool : ClientPool
    duration : float
        Seconds to generate from ``start`` (default: the pool's start).
    seed : int
    output : path-like
        Folder to write (replaced if it exists); on a cluster, a path every executor can write.
    master : str, optional
        Spark master URL (:func:`servelab.analysis.engines.spark_session`).
    n_tasks : int
        Spark tasks (partitions of the client ids).
    max_requests : int or None
        Bound on the whole workload's expected size, checked on the driver before any task runs
        (None: no limit).

    Returns
    -------
    dict
        ``output`` (str), ``clients`` (active clients), ``tasks``, ``days`` (sorted).

    Raises
    ------
    EngineUnavailableError
        If Spark cannot run here.
    ValueError
        For a bad seed, duration or ``n_tasks``.
    RequestBudgetError
        If the workload is estimated above ``max_requests``.
    """
    from servelab.analysis.engines import spark_session

    if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1:
        raise ValueError(f"n_tasks must be a positive integer; got {n_tasks!r}")
    client_seed(seed, "")
    lo, hi = _span(pool, duration, start)
    clients = list(active_clients(pool, duration, start=lo))
    _check_budget(pool, clients, lo, hi, max_requests)
    schema = shard_schema(pool, duration, start=lo, conversations=conversations)
    columns = [*schema.names(), DAY_COLUMN]
    ddl = ", ".join([f"`{c}` {_spark_type(t)}" for c, t in schema.items()] + [f"`{DAY_COLUMN}` string"])
    session = spark_session(master)

    def draw(batches):  # runs in the Spark tasks
        import pyarrow as pa

        for batch in batches:
            ids = batch.column(0).to_pylist()
            if not ids:
                continue
            frame = generate_shard(pool, ids, hi - lo, seed=seed, start=lo, conversations=conversations,
                                   max_requests=None, schema=schema)  # planned once, on the driver
            frame = frame.with_columns(_day(pl.col("timestamp")).alias(DAY_COLUMN)).select(columns)
            table = frame.to_arrow()
            target = pa.schema([pa.field(f.name, _plain_arrow(f.type)) for f in table.schema])
            yield from table.cast(target).to_batches()

    ids = session.createDataFrame([(c,) for c in clients], "client_id string").repartition(n_tasks, "client_id")
    out = ids.mapInArrow(draw, ddl)
    out.write.mode("overwrite").partitionBy(DAY_COLUMN).parquet(os.path.abspath(str(output)))
    days = sorted(p.name.split("=", 1)[1] for p in Path(output).glob(f"{DAY_COLUMN}=*"))
    return {"output": str(output), "clients": len(clients), "tasks": n_tasks, "days": days}


def _plain_arrow(t):
    """Arrow type without polars' large/view variants (Spark's Arrow reader wants plain ones)."""
    import pyarrow as pa

    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_list(t):
        return pa.list_(_plain_arrow(t.value_type))
    return t

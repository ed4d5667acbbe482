"""Seeded writer of big, realistically shaped synthetic traces for scale work.

Two outputs from the same draw:

- :func:`write_burstgpt_csv` writes a CSV in BurstGPT's schema (8 columns with ``Session ID`` and
  ``Elapsed time``, or the 6-column v1 schema), i.e. what ``servelab ingest --format burstgpt``
  reads, for ingest benchmarks;
- :func:`make_synthetic_store` writes a canonical trace store directly (with ``client_id``, which
  BurstGPT's CSV does not carry), for benchmarks of the analyses.

Shape (enough to exercise the code paths realistically; this is not the generator):

- client popularity is Zipf-like (weight ~ rank^-1.1), each client lives for a sub-window of the
  trace, and its arrivals form a Gamma renewal process with its own CV (log-normal around 1.5,
  so most clients are burstier than Poisson);
- a diurnal rate (peak around 14:00 at the origin's zone, trough at night, amplitude 0.6) warps
  every client's arrival times;
- request lengths are Zipf-like (a discretised Lomax, tail index 1.2, clipped to the model's
  context), responses bimodal (a short and a long log-normal mode), a few percent of requests
  fail (response 0; more often on ChatGPT and in conversations, as BurstGPT reports);
- models ``ChatGPT`` / ``GPT-4``; services ``Conversation log`` / ``API log`` (large clients are
  API users, conversations come from the long tail); conversation turns are grouped into
  sessions (a new session after 30 min of silence or with probability 0.3).

Everything is vectorised (numpy draws, DuckDB writes): there is no Python loop over requests,
and the same seed gives the same bytes. It must not be used as a model of any real trace.

Command line::

    python benchmarks/synthetic_trace.py --rows 10000000 --csv /tmp/burst.csv
    python benchmarks/synthetic_trace.py --rows 10000000 --store /tmp/burst_store --overwrite
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from servelab.analysis.store import (
    MANIFEST_NAME,
    REQUESTS_NAME,
    TraceStore,
    atomic_store_dir,
    build_manifest,
    open_store,
)

__all__ = ["draw_requests", "write_burstgpt_csv", "make_synthetic_store", "SYNTHETIC_ORIGIN"]

#: wall-clock time of timestamp 0 in a synthetic store (the diurnal profile is defined against it)
SYNTHETIC_ORIGIN = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

_DAY = 86_400.0
_MODELS = ("ChatGPT", "GPT-4")
_LOG_TYPES = ("API log", "Conversation log")


def _validate(n_rows: int, n_clients: int, days: float) -> None:
    if not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive int; got {n_rows!r}")
    if not isinstance(n_clients, (int, np.integer)) or n_clients < 1:
        raise ValueError(f"n_clients must be a positive int; got {n_clients!r}")
    if not (days > 0):
        raise ValueError(f"days must be > 0; got {days!r}")


def draw_requests(n_rows: int, *, n_clients: int = 2000, days: float = 1.0, seed: int = 0) -> pa.Table:
    """Draw ``n_rows`` synthetic requests, sorted by timestamp, as an Arrow table of codes.

    Parameters
    ----------
    n_rows : int
        Number of requests.
    n_clients : int
        Number of clients (popularity Zipf-like, so a few dominate).
    days : float
        Trace span in days.
    seed : int
        Seed of the numpy generator; the same seed gives the same table.

    Returns
    -------
    pyarrow.Table
        Columns ``timestamp`` (s, ms resolution), ``client`` (int), ``gpt4`` (bool),
        ``conversation`` (bool), ``session`` (int, -1 for API rows), ``input_tokens``,
        ``output_tokens`` (0 = failed), ``latency_s``.
    """
    _validate(n_rows, n_clients, days)
    rng = np.random.default_rng(seed)
    span = float(days) * _DAY

    # --- clients: popularity, burstiness, lifetime, model and service ------------------------
    rank = np.arange(1, n_clients + 1)
    weight = rank ** -1.1
    weight /= weight.sum()
    counts = rng.multinomial(n_rows, weight)
    cv = np.clip(np.exp(rng.normal(np.log(1.5), 0.5, n_clients)), 0.5, 8.0)
    shape = 1.0 / cv**2
    # large clients live for the whole trace; small ones for a random sub-window
    life = np.where(rank <= 20, 1.0, rng.beta(2.0, 1.0, n_clients))
    start = rng.random(n_clients) * (1.0 - life)
    client_gpt4 = rng.random(n_clients) < 0.15
    client_conv = (rank > 20) & (rng.random(n_clients) < 0.5)

    # --- arrivals: per-client Gamma renewal in operational time, then a diurnal warp ---------
    cid = np.repeat(np.arange(n_clients), counts)
    # counts + 1 gaps per client: positions are cumulative gaps over the client's total
    gid = np.repeat(np.arange(n_clients), counts + 1)
    # each client's gaps are scaled to sum to 1 before the running sum over all clients: a client
    # with a tiny Gamma shape (CV up to 8) can draw gaps far below the running sum's precision,
    # which gave 0/0 positions (NaN times); draws that underflow to 0 are lifted to the smallest float
    gaps = np.maximum(rng.gamma(shape[gid], 1.0), np.finfo(float).tiny)
    gaps /= np.add.reduceat(gaps, np.concatenate(([0], np.cumsum(counts + 1)[:-1])))[gid]
    csum = np.cumsum(gaps)
    seg_end = np.cumsum(counts + 1) - 1
    seg_total = csum[seg_end] - np.concatenate(([0.0], csum[seg_end[:-1]]))
    seg_base = np.concatenate(([0.0], csum[seg_end[:-1]]))
    last_of_client = np.zeros(gid.size, dtype=bool)
    last_of_client[seg_end] = True
    frac = (csum[~last_of_client] - seg_base[cid]) / seg_total[cid]  # in (0, 1), increasing per client
    op = start[cid] + life[cid] * frac  # operational time as a fraction of the span

    grid = np.linspace(0.0, span, int(max(2, days * 1440)) + 1)  # minute grid
    rate = 1.0 + 0.6 * np.cos(2.0 * np.pi * (grid / _DAY - 14.0 / 24.0))
    cum = np.concatenate(([0.0], np.cumsum((rate[1:] + rate[:-1]) * 0.5 * np.diff(grid))))
    t = np.round(np.interp(op * cum[-1], cum, grid), 3)

    order = np.argsort(t, kind="stable")
    t = t[order]
    cid = cid[order]
    n = n_rows

    # --- request attributes ------------------------------------------------------------------
    gpt4 = client_gpt4[cid] ^ (rng.random(n) < 0.05)
    conv = client_conv[cid]
    u = rng.random(n)
    context = np.where(gpt4, 32_768, 16_384)
    req = np.minimum(1 + np.floor(250.0 * ((1.0 - u) ** (-1.0 / 1.2) - 1.0)), context).astype(np.int64)
    long_mode = rng.random(n) < 0.7
    median = np.where(long_mode, np.where(gpt4, 420.0, 300.0), 22.0)
    sigma = np.where(long_mode, 0.6, 0.7)
    resp = np.clip(np.round(median * np.exp(sigma * rng.standard_normal(n))), 1, 4096).astype(np.int64)
    p_fail = np.where(gpt4, 0.01, 0.025) + np.where(conv, 0.035, 0.0)
    failed = rng.random(n) < p_fail
    resp[failed] = 0
    per_token = np.where(gpt4, 0.045, 0.018)
    latency = 0.25 + req * 2e-5 + resp * per_token * np.exp(0.3 * rng.standard_normal(n))
    latency = np.where(failed, rng.uniform(0.05, 30.0, n), latency)
    latency = np.round(latency, 3)

    # --- conversation sessions: per client, in time order -----------------------------------
    by_client = np.lexsort((t, cid))  # stable: client, then time
    c_sorted = cid[by_client]
    t_sorted = t[by_client]
    new_client = np.empty(n, dtype=bool)
    new_client[0] = True
    new_client[1:] = c_sorted[1:] != c_sorted[:-1]
    silence = np.empty(n, dtype=bool)
    silence[0] = True
    silence[1:] = (t_sorted[1:] - t_sorted[:-1]) > 1800.0
    new_session = new_client | silence | (rng.random(n) < 0.3)
    session_sorted = np.cumsum(new_session) - 1
    session = np.empty(n, dtype=np.int64)
    session[by_client] = session_sorted
    session = np.where(conv, session, -1)

    return pa.table(
        {
            "timestamp": t,
            "client": cid.astype(np.int64),
            "gpt4": gpt4,
            "conversation": conv,
            "session": session,
            "input_tokens": req,
            "output_tokens": resp,
            "latency_s": latency,
        }
    )


def _sql_str(value: str | os.PathLike) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def write_burstgpt_csv(
    path: str | os.PathLike,
    *,
    n_rows: int,
    n_clients: int = 2000,
    days: float = 1.0,
    seed: int = 0,
    with_session: bool = True,
) -> Path:
    """Write a synthetic trace as a BurstGPT CSV.

    Parameters
    ----------
    path : path-like
        The CSV file to write (overwritten).
    n_rows, n_clients, days, seed
        See :func:`draw_requests`.
    with_session : bool
        True: the 8-column schema ``Timestamp,Session ID,Elapsed time,Model,Request tokens,
        Response tokens,Total tokens,Log Type``; False: the 6-column v1 schema.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = draw_requests(n_rows, n_clients=n_clients, days=days, seed=seed)
    session_cols = (
        "CASE WHEN session >= 0 THEN CAST(session AS VARCHAR) END AS \"Session ID\", "
        "latency_s AS \"Elapsed time\", "
        if with_session
        else ""
    )
    sql = (
        f"SELECT timestamp AS \"Timestamp\", {session_cols}"
        f"CASE WHEN gpt4 THEN '{_MODELS[1]}' ELSE '{_MODELS[0]}' END AS \"Model\", "
        "input_tokens AS \"Request tokens\", output_tokens AS \"Response tokens\", "
        "input_tokens + output_tokens AS \"Total tokens\", "
        f"CASE WHEN conversation THEN '{_LOG_TYPES[1]}' ELSE '{_LOG_TYPES[0]}' END AS \"Log Type\" "
        "FROM synth"
    )
    con = duckdb.connect()
    try:
        con.register("synth", table)
        # one thread keeps the row order of the (already sorted) table in the file
        con.execute("SET preserve_insertion_order = true")
        con.execute(f"COPY ({sql}) TO {_sql_str(path)} (FORMAT csv, HEADER true)")
    finally:
        con.close()
    return path


def make_synthetic_store(
    path: str | os.PathLike,
    *,
    n_rows: int,
    n_clients: int = 2000,
    days: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
    numeric_ids: bool = False,
) -> TraceStore:
    """Write a synthetic trace directly as a canonical trace store.

    Columns: ``request_id, timestamp, client_id, model, service, input_tokens, output_tokens,
    conversation_id`` (conversation rows only), ``latency_s, failed``. The origin is
    :data:`SYNTHETIC_ORIGIN` (UTC), against which the diurnal profile peaks at 14:00.

    Parameters
    ----------
    path : path-like
        The store folder to create.
    n_rows, n_clients, days, seed
        See :func:`draw_requests`.
    overwrite : bool
        Replace an existing store.
    numeric_ids : bool
        Client ids are the bare client numbers (``"17"``) instead of ``"c00017"``: ServeGen's
        released loader parses an integer id from its ``chunk-<id>-...`` file names, so a pool
        fitted from this store can be exported to ServeGen's format and read by it.

    Raises
    ------
    StoreExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    table = draw_requests(n_rows, n_clients=n_clients, days=days, seed=seed)
    table = table.append_column("request_id", pa.array(np.arange(n_rows, dtype=np.int64)))
    client_sql = "CAST(client AS VARCHAR)" if numeric_ids else "'c' || lpad(CAST(client AS VARCHAR), 5, '0')"
    sql = (
        "SELECT request_id, timestamp, "
        f"{client_sql} AS client_id, "
        f"CASE WHEN gpt4 THEN '{_MODELS[1]}' ELSE '{_MODELS[0]}' END AS model, "
        "CASE WHEN conversation THEN 'conversation' ELSE 'api' END AS service, "
        "input_tokens, output_tokens, "
        "CASE WHEN session >= 0 THEN 's' || CAST(session AS VARCHAR) END AS conversation_id, "
        "latency_s, output_tokens = 0 AS failed FROM synth"
    )
    columns = ["request_id", "timestamp", "client_id", "model", "service", "input_tokens",
               "output_tokens", "conversation_id", "latency_s", "failed"]
    with atomic_store_dir(path, overwrite=overwrite) as tmp:
        con = duckdb.connect()
        try:
            con.register("synth", table)
            con.execute("SET preserve_insertion_order = true")
            con.execute(f"COPY ({sql}) TO {_sql_str(tmp / REQUESTS_NAME)} (FORMAT parquet)")
        finally:
            con.close()
        ts = table.column("timestamp")
        span = (float(ts[0].as_py()), float(ts[-1].as_py()))
        settings = {"n_rows": int(n_rows), "n_clients": int(n_clients), "days": float(days), "seed": int(seed)}
        if numeric_ids:
            settings["numeric_ids"] = True
        manifest = build_manifest(
            fmt="synthetic",
            sources=[{"path": "benchmarks/synthetic_trace.py", "sha256": None, "format": "synthetic",
                      "rows_read": int(n_rows), "rows_stored": int(n_rows), "rows_rejected": {}}],
            columns=columns,
            rows={"read": int(n_rows), "stored": int(n_rows), "rejected": {}, "duplicates": None, "unsorted": None},
            span=span,
            origin=SYNTHETIC_ORIGIN,
            timezone="UTC",
            extra={"synthetic": settings},
        )
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return open_store(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="number of requests (default 1e6)")
    parser.add_argument("--clients", type=int, default=2000, help="number of clients (default 2000)")
    parser.add_argument("--days", type=float, default=1.0, help="span in days (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--v1", action="store_true", help="CSV: 6-column v1 schema (no Session ID / Elapsed time)")
    parser.add_argument("--overwrite", action="store_true", help="store: replace an existing store")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--csv", type=Path, help="write a BurstGPT-schema CSV here")
    out.add_argument("--store", type=Path, help="write a canonical trace store here")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.csv is not None:
        write_burstgpt_csv(args.csv, n_rows=args.rows, n_clients=args.clients, days=args.days,
                           seed=args.seed, with_session=not args.v1)
        what = f"CSV {args.csv} ({args.csv.stat().st_size / 1e6:.1f} MB)"
    else:
        store = make_synthetic_store(args.store, n_rows=args.rows, n_clients=args.clients, days=args.days,
                                     seed=args.seed, overwrite=args.overwrite)
        what = f"store {store.path} ({store.requests_path.stat().st_size / 1e6:.1f} MB parquet)"
    print(f"wrote {args.rows:,} rows to {what} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""Workload generation by per-client composition (ServeGen section 6.1), without its code's flaws.

:func:`generate` turns a client pool into a workload: a polars DataFrame in the canonical schema
(``timestamp``, ``client_id``, the request-data columns the pool has, and conversation links when
the pool models conversations), which :func:`servelab.analysis.store.write_store`, ``servelab
ingest`` and every analysis accept unchanged.

How a workload is drawn
-----------------------
1. **Total rate as a function of time** (:class:`RateSchedule`): a constant, a table of points
   linearly interpolated, or the pool's own historical total scaled.
2. **Clients** (:func:`select_clients`): all clients of the pool, or ``N`` synthetic clients drawn
   from the pool by its rate ranking (stratified on rank quantiles, so the skew of client rates
   is kept; a client's CV and data travel with it), so 100 pool clients can drive 1,000.
3. **Scaling**: in every segment (pool arrival window, cut further at rate-table points) each
   client's rate is its pool rate times ``target(t) / sum of selected clients' pool rates`` so
   each keeps its share.
4. **Arrivals** (:func:`~servelab.generator.arrivals.renewal_arrivals`): in each client-segment a
   *stationary* renewal process of the window's arrival family (any registered
   :class:`~servelab.fitting.families.ArrivalFamily`: its named shapes, the scale set so that the
   mean gap is exactly ``1 / rate``). The first arrival comes
   after a forward-recurrence time, :math:`U \cdot L` with ``L`` length-biased, so the expected
   count in a segment of length ``T`` is exactly ``rate * T`` (renewal theory), and the count is
   random. ServeGen's released code fixes the count at ``int(rate * T)`` and loses about one
   request per client-window on average.
5. **Request data** (:func:`sample_pmf`): each field drawn from the client's PMF for the data
   window, each field with its own uniform (independent, as the pool records marginals only;
   ServeGen's code reuses one uniform for all fields, which makes input and output perfectly
   rank-correlated). A client-window without data borrows the client's nearest data window,
   else the rate-weighted aggregate of the clients that have data in that window.
6. **Conversations** (when the pool has conversation parameters): the renewal process gives
   conversation starts at ``rate / E[turns]``; each conversation gets a sampled number of turns
   and follow-ups after sampled inter-turn times (ITT); a follow-up's input holds the earlier
   turn's input and output: with the pool's fitted increments (default when present) it is that
   history plus a new prompt drawn from the client's increment PMF; without them a
   conversation's input draws go to its turns in ascending order, each at least its history,
   which keeps the pool's input marginal (``context``). Conversations are
   started during a warm-up before ``start`` so the rate is stationary from the first second.

Everything is vectorised over requests (numpy / polars); Python loops run over units of time,
rounds of draws, fields, families or clients only. The same seed gives the same bytes.

Streaming: the workload is drawn unit by unit (:mod:`servelab.generator.stream`: pieces of at
most 600 s, each from its own random stream, renewal residuals and conversation follow-ups carried
across); :func:`generate` collects every chunk into one DataFrame, :func:`generate_chunks` yields
them one at a time, and :func:`servelab.generator.writers.generate_to` writes them as they come
in memory bounded by a chunk. The rows do not depend on the chunk size.

This module is the orchestration; each concern has its own module: rate schedules
(:mod:`~servelab.generator.rates`), the window grid (:mod:`~servelab.generator.grid`), arrival
sampling (:mod:`~servelab.generator.arrivals`), PMF sampling (:mod:`~servelab.generator.pmf`,
:mod:`~servelab.generator.request_data`) and conversations
(:mod:`~servelab.generator.conversations`); their public names are re-exported here. It does not
read or write files (see :mod:`servelab.generator.exports`) and does not build the naive baseline
(see :mod:`servelab.generator.naive`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from servelab.generator.arrivals import ArrivalLaw, arrival_law, poisson_arrivals, renewal_arrivals
from servelab.generator.exceptions import GenerationError
from servelab.generator.grid import WindowGrid, pool_span, window_grid
from servelab.generator.pmf import PmfTable, aggregate_pmfs, sample_pmf, sample_runs
from servelab.generator.pool import DATA_FIELDS  # re-exported: fields a pool may hold
from servelab.generator.rates import (
    DEFAULT_MAX_REQUESTS,
    RateSchedule,
    check_request_budget,
    constant_rate,
    pool_rate,
    rate_table,
    read_rate_file,
    resolve_rate,
)
from servelab.generator.request_data import canonical_arrays
from servelab.generator.stream import generate_chunks, plan_generation

__all__ = [
    "DATA_FIELDS",
    "DEFAULT_MAX_REQUESTS",
    "ArrivalLaw",
    "PmfTable",
    "RateSchedule",
    "WindowGrid",
    "aggregate_pmfs",
    "arrival_law",
    "check_request_budget",
    "clock_times",
    "constant_rate",
    "generate",
    "generate_chunks",
    "poisson_arrivals",
    "pool_rate",
    "pool_span",
    "rate_table",
    "read_rate_file",
    "renewal_arrivals",
    "resolve_rate",
    "sample_pmf",
    "sample_runs",
    "select_clients",
    "window_grid",
]

def select_clients(pool_ids: Sequence[str], mean_rate: np.ndarray, mean_cv: np.ndarray, n: int | None,
                   *, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Pick ``n`` synthetic clients from the pool by its rate and CV rankings.

    Pool clients active in the period are ranked by mean rate (CV breaks ties); synthetic client
    ``k`` of ``n`` takes the client at rank quantile ``(k + U_k) / n`` (one uniform per client:
    stratified sampling). With ``n <= P`` this picks ``n`` distinct clients spread over the whole
    ranking; with ``n > P`` every pool client is used ``n / P`` times (rounded), each copy an
    independent client with its own id ``<id>~<copy>``. A client's CV, family and data travel
    with it, so the joint (rate, CV) ranking of the pool is kept.

    Returns
    -------
    (pool index per synthetic client, synthetic client ids)
    """
    active = np.flatnonzero(np.asarray(mean_rate) > 0)
    if active.size == 0:
        raise GenerationError("no pool client has a rate > 0 in the requested period")
    if n is None:
        return active, [pool_ids[i] for i in active]
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise GenerationError(f"clients must be a positive integer or None (all); got {n!r}")
    order = active[np.lexsort((-np.asarray(mean_cv)[active], -np.asarray(mean_rate)[active]))]
    q = (np.arange(n) + rng.random(n)) / n
    pick = order[np.minimum((q * order.size).astype(np.int64), order.size - 1)]
    copy = np.zeros(n, dtype=np.int64)
    # copy number of each repeated pool client (vectorised rank within equal values)
    srt = np.argsort(pick, kind="stable")
    ps = pick[srt]
    first = np.r_[0, np.flatnonzero(np.diff(ps)) + 1]
    run = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
    copy[srt] = run
    repeated = np.bincount(pick, minlength=len(pool_ids))[pick] > 1
    ids = [f"{pool_ids[p]}~{c}" if r else pool_ids[p] for p, c, r in zip(pick, copy, repeated)]
    return pick, ids


def clock_times(times: np.ndarray, step: float) -> np.ndarray:
    """Times (seconds since the workload's start) floored to multiples of a logging clock ``step``.

    A trace logged on a clock of ``step`` seconds records each request at the last tick before
    it: ``floor(t / step) * step``. Flooring is monotone, so sorted times stay sorted, and every
    time stays in its bucket ``[k step, (k + 1) step)``, so the count per bucket is unchanged.

    Raises
    ------
    GenerationError
        If ``step`` is not a finite number > 0.
    """
    if not (isinstance(step, (int, float, np.integer, np.floating)) and not isinstance(step, bool)
            and math.isfinite(step) and step > 0):
        raise GenerationError(f"clock must be a finite number of seconds > 0; got {step!r}")
    return np.floor(np.asarray(times, dtype=np.float64) / step) * step


def generate(pool, rate, duration: float, *, start: float | None = None, clients: int | None = None,
             seed: int, conversations: bool = True, max_segment_s: float = 60.0, counts: str = "renewal",
             missing_data: str = "borrow", context: str | None = None, clock: float | None = None,
             max_requests: int | None = DEFAULT_MAX_REQUESTS) -> pl.DataFrame:
    """Generate a workload from ``pool`` by per-client composition.

    Parameters
    ----------
    pool : ClientPool
        A client pool (``clients``, ``arrivals``, ``data`` and optionally ``conversations``
        frames; see :mod:`servelab.generator.pool`).
    rate : float, "pool", (times, rates), DataFrame or RateSchedule
        Target total rate (req/s) as a function of time since ``start`` (see
        :func:`resolve_rate`).
    duration : float
        Seconds to generate.
    start : float, optional
        Where in the pool's time line to start (seconds, the pool's clock); defaults to the
        pool's first window. ``[start, start + duration]`` must lie within the pool's span.
    clients : int, optional
        Number of synthetic clients drawn from the pool by rate ranking (see
        :func:`select_clients`); None uses every client.
    seed : int
        Seed of every random draw; the same seed gives the same workload.
    conversations : bool
        Model multi-turn conversations when the pool has conversation parameters.
    max_segment_s : float
        With a rate table, the longest stretch over which the target is held constant.
    counts : {"renewal", "poisson"}
        ``renewal`` (default): stationary renewal processes, whose counts carry the family's
        burstiness (:func:`~servelab.generator.arrivals.renewal_arrivals`); ``poisson``: Poisson
        counts per client-segment with gaps normalised inside it
        (:func:`~servelab.generator.arrivals.poisson_arrivals`; the reference sampler's contract).
    missing_data : {"borrow", "null"}
        A (client, data window) without a PMF borrows the client's nearest data window, else the
        rate-weighted aggregate (``borrow``), or, with ``null``, its nearest window else nulls.
    context : {None, "fitted", "sorted", "additive"}
        How a follow-up's input holds its history ``h`` (previous turn's input + output).
        ``fitted`` (the default, None, when the pool has follow-up input increments, the
        ``input_increment`` rows of ``conversation_pmfs``): ``max(h + increment, 1)``, the
        increment drawn from the client's fitted PMF of ``input - history`` (else the pooled
        one), so a follow-up is its history plus a new prompt as in the trace. ``sorted`` (the
        default for pools without increments; keeps the pool's input marginal except where a
        draw falls below its history): a conversation's draws go to its turns in ascending
        order, follow-up input ``max(draw, h)``. ``additive`` (PMFs of fresh prompts): ``h`` +
        the draw.
    clock : float, optional
        A logging clock step in seconds: every timestamp is floored to a multiple of ``clock``
        from the workload's start (:func:`clock_times`), as a trace logged on that clock would
        be, so the workload compares like for like with a clocked trace. The count per clock
        bucket is unchanged. None (default) keeps the exact times.
    max_requests : int or None
        Refuse a workload whose expected size (:meth:`RateSchedule.expected_requests`) exceeds
        this, before anything is allocated (default :data:`DEFAULT_MAX_REQUESTS`, about 7.5 GB
        while generating); None sets no limit.

    Returns
    -------
    polars.DataFrame
        Canonical columns, sorted by ``timestamp`` (seconds since ``start``): ``timestamp``,
        ``client_id``, the data fields the pool has (``input_tokens``, ``output_tokens``,
        ``reason_tokens``, per-modality tokens and counts), and ``conversation_id``,
        ``parent_id``, ``turn`` when conversations are modelled.

    Raises
    ------
    GenerationError
        For a bad rate, duration, start, clients, seed, context or clock (``fitted`` on a pool
        without increments).
    RequestBudgetError
        If the workload is estimated above ``max_requests`` (a :class:`GenerationError`).
    """
    plan = plan_generation(pool, rate, duration, start=start, clients=clients, seed=seed,
                           conversations=conversations, max_segment_s=max_segment_s, counts=counts,
                           missing_data=missing_data, context=context, clock=clock, max_requests=max_requests)
    return collect_chunks(plan, generate_chunks(pool, rate, duration, plan=plan, chunk_s=None))


def collect_chunks(plan, chunks) -> pl.DataFrame:
    """One DataFrame from the chunks of :func:`generate_chunks` (an empty frame with the columns when none)."""
    frames = list(chunks)
    if not frames:
        return _empty_frame(plan)
    return frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=True)


def _empty_frame(plan) -> pl.DataFrame:
    schema = {"timestamp": pl.Float64, "client_id": pl.String}
    if plan.data is not None:
        probe = canonical_arrays({f: np.zeros(0) for f in plan.data.tables})
        schema.update({c: pl.Int64 for c in probe})
    if plan.conv is not None:
        schema.update({"conversation_id": pl.String, "parent_id": pl.String, "turn": pl.Int64})
    if getattr(plan, "prefixes", None) is not None:
        schema["prefix_blocks"] = pl.List(pl.Int64)
    return pl.DataFrame(schema=schema)

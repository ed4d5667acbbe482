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
   turn's input and output (by default a conversation's input draws go to its turns in ascending
   order, each at least its history, which keeps the pool's input marginal). Conversations are
   started during a warm-up before ``start`` so the rate is stationary from the first second.

Everything is vectorised over requests (numpy / polars); Python loops run over rounds of
draws, fields, families or clients only. The same seed gives the same bytes.

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
import warnings
from collections.abc import Sequence

import numpy as np
import polars as pl

from servelab.generator.arrivals import ArrivalLaw, arrival_law, poisson_arrivals, renewal_arrivals
from servelab.generator.conversations import (
    accumulate_context,
    conversation_model,
    expand_conversations,
    link_columns,
)
from servelab.generator.coupling import couple_lengths  # issue 17
from servelab.generator.exceptions import GenerationError, GenerationWarning
from servelab.generator.grid import WindowGrid, frame_of, pool_span, segments, window_grid
from servelab.generator.pmf import PmfTable, aggregate_pmfs, pmf_table, sample_pmf, sample_runs
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
from servelab.generator.request_data import request_data

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

# the names before the split (used by sampling and naive)
_frame = frame_of
_grid = window_grid
_pmf_table = pmf_table


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
             missing_data: str = "borrow", context: str = "sorted", clock: float | None = None,
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
    context : {"sorted", "additive"}
        How a follow-up's input holds its history ``h`` (previous turn's input + output).
        ``sorted`` (default; keeps the pool's input marginal, right for pools fitted from real
        traces whose input PMFs include histories): a conversation's draws go to its turns in
        ascending order, follow-up input ``max(draw, h)``. ``additive`` (PMFs of fresh
        prompts): ``h`` + the draw.
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
        For a bad rate, duration, start, clients, seed or clock.
    RequestBudgetError
        If the workload is estimated above ``max_requests`` (a :class:`GenerationError`).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise GenerationError(f"seed must be an integer; got {seed!r}")
    if counts not in ("renewal", "poisson"):
        raise GenerationError(f"counts must be 'renewal' or 'poisson'; got {counts!r}")
    if missing_data not in ("borrow", "null"):
        raise GenerationError(f"missing_data must be 'borrow' or 'null'; got {missing_data!r}")
    if context not in ("sorted", "additive"):
        raise GenerationError(f"context must be 'sorted' or 'additive'; got {context!r}")
    if not (isinstance(duration, (int, float, np.integer, np.floating)) and math.isfinite(duration) and duration > 0):
        raise GenerationError(f"duration must be a finite number of seconds > 0; got {duration!r}")
    if clock is not None and not (isinstance(clock, (int, float, np.integer, np.floating))
                                  and not isinstance(clock, bool) and math.isfinite(clock) and clock > 0):
        raise GenerationError(f"clock must be a finite number of seconds > 0 or None; got {clock!r}")
    schedule = resolve_rate(rate)
    span_lo, span_hi = pool_span(pool)
    lo = span_lo if start is None else float(start)
    if math.isnan(lo):
        raise GenerationError(f"start must be a number of seconds in the pool's span; got {start!r}")
    hi = lo + float(duration)
    eps = 1e-6 * max(1.0, abs(span_hi))
    if schedule.kind == "pool" and hi > span_hi + eps and lo >= span_lo - eps:
        # issue 17: beyond the span, the pool is extended with client churn and a forecast total
        from servelab.generator.extend import extend_pool

        pool, _ = extend_pool(pool, hi, seed=int(seed))
        span_lo, span_hi = pool_span(pool)
    if lo < span_lo - eps or hi > span_hi + eps:
        raise GenerationError(
            f"start={lo:g} s and duration={float(duration):g} s give [{lo:g}, {hi:g}] s, outside the pool's span "
            f"[{span_lo:g}, {span_hi:g}] s"
        )
    check_request_budget(schedule, duration, pool, start=lo, max_requests=max_requests)
    rng = np.random.default_rng(int(seed))
    grid = window_grid(pool, lo, hi)
    seg_a, seg_b, seg_w = segments(lo, hi, grid, schedule, max_segment_s)
    seg_len = seg_b - seg_a
    # pool rate per (pool client, segment); zero where no window covers the segment
    rate_ps = np.where(seg_w[None, :] >= 0, grid.rate[:, np.maximum(seg_w, 0)], 0.0)
    mean_rate = (rate_ps * seg_len).sum(axis=1) / seg_len.sum()
    mean_cv = np.where(rate_ps > 0, grid.cv[:, np.maximum(seg_w, 0)], 0.0).sum(axis=1) / np.maximum(
        (rate_ps > 0).sum(axis=1), 1)
    sel, syn_ids = select_clients(grid.pool_ids, mean_rate, mean_cv, clients, rng=rng)
    n_syn = sel.size

    # target total per segment and the scale factor for the selected clients
    if schedule.kind == "pool":
        target = schedule.value * rate_ps.sum(axis=0)
    else:
        target = 0.5 * (schedule.at(seg_a - lo) + schedule.at(seg_b - lo))
    selected_total = rate_ps[sel].sum(axis=0)
    dead = (target > 0) & (selected_total <= 0)
    if np.any(dead):
        warnings.warn(
            f"{int(dead.sum())} of {dead.size} segments ({seg_len[dead].sum():g} s) have a target rate but no "
            "selected client active in the pool: nothing is generated there",
            GenerationWarning, stacklevel=2,
        )
    factor = np.where(selected_total > 0, target / np.where(selected_total > 0, selected_total, 1.0), 0.0)

    conv = conversation_model(pool, grid.pool_ids) if conversations else None
    use_conv = conv is not None and bool(np.any(conv.has[sel]))
    mean_turns = conv.mean_turns[sel] if use_conv else np.ones(n_syn)

    # cells: (synthetic client, segment) with a positive rate
    r_ns = rate_ps[sel] * factor[None, :]
    cn, cs = np.nonzero(r_ns > 0)
    c_rate = r_ns[cn, cs] / mean_turns[cn]
    c_a = seg_a[cs]
    c_len = seg_len[cs]
    w_c = seg_w[cs]
    c_law = sel[cn] * grid.window_start.size + w_c  # cells of grid.law
    if use_conv:
        # warm-up: conversations started before `start` whose follow-ups land inside
        warm = min(conv.max_itt * max(conv.max_turns - 1, 0), 6 * 3600.0)
        first = cs == cs.min() if cs.size else np.zeros(0, bool)
        wm = first & conv.has[sel[cn]]
        if warm > 0 and np.any(wm):
            c_rate = np.r_[c_rate, c_rate[wm]]
            c_a = np.r_[c_a, np.full(int(wm.sum()), lo - warm)]
            c_len = np.r_[c_len, np.full(int(wm.sum()), warm)]
            cn = np.r_[cn, cn[wm]]
            c_law = np.r_[c_law, c_law[wm]]
    sampler = renewal_arrivals if counts == "renewal" else poisson_arrivals
    cell, off = sampler(c_rate, c_len, grid.law.take(c_law), rng=rng)
    t = c_a[cell] + off
    client = cn[cell]

    turn = conv_id = None
    if use_conv:
        t, client, conv_id, turn = expand_conversations(t, client, sel, conv, rng)
    inside = (t >= lo) & (t < hi)

    frame = request_data(pool, grid, sel, client, t, seg_a, seg_b, rate_ps, lo, hi, rng,
                          borrow=missing_data == "borrow")
    frame = couple_lengths(pool, frame, grid, sel, client, t)  # issue 17: load-length coupling
    if use_conv:
        frame = accumulate_context(frame, turn, context=context)
    # crop, sort, label
    order = np.flatnonzero(inside)
    order = order[np.argsort(t[order], kind="stable")]
    ids = pl.Series("client_id", syn_ids, dtype=pl.String)
    times = t[order] - lo
    columns = [pl.Series("timestamp", times if clock is None else clock_times(times, clock)),
               ids.gather(client[order])]
    columns += [frame[c].gather(order) for c in frame.columns]
    if use_conv:
        columns += link_columns(conv_id, turn, order)
    return pl.DataFrame(columns)


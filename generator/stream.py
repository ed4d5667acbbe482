r"""Streaming generation: a workload drawn piece by piece and handed out in time chunks.

:func:`generate_chunks` yields the workload of :func:`~servelab.generator.generate.generate` as
consecutive polars DataFrames (sorted by ``timestamp``, each chunk after the previous one), so a
writer can put each chunk on disk and memory holds one chunk plus the generator's state, never
the whole workload.

Determinism whatever the chunk size
-----------------------------------
The period is cut, once and independently of the chunk size, into *units*: the segments of
:func:`~servelab.generator.grid.segments` (pool windows, cut further at rate-table points), each
cut into pieces of at most :data:`UNIT_S` seconds (shorter when the target rate would put more
than :data:`UNIT_REQUESTS` requests in one). Unit ``k`` draws everything it needs (arrivals,
conversations, request data) from its own random stream, ``SeedSequence(seed, spawn_key=(1, k))``
(the choice of synthetic clients from ``spawn_key=(0,)``), so its draws do not depend on which
chunk it falls in. The state that crosses unit boundaries is carried explicitly:

- each client's renewal process inside a segment: the time to its next arrival (the residual
  gap, :func:`~servelab.generator.arrivals.continue_renewals`), so a segment cut into units is one
  renewal process; a new segment starts in equilibrium, as in :func:`generate`;
- conversation follow-ups that fall after the chunk's end wait in a buffer until their chunk
  (with the link to their parent's output row);
- the running numbers of output rows and conversations.

A chunk covers the units that start in ``[start + i * chunk_s, start + (i + 1) * chunk_s)``; it
hands out every request before the end of its last unit, in the order ``(time, unit, position in
the unit)``. The same seed therefore gives the same rows in the same order for any chunk size.

Everything is vectorised over requests and cells; Python loops run over units, rounds of draws,
fields and turn numbers. This module writes no file (:mod:`servelab.generator.writers` does).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from servelab.generator.allocator import reuse_freed_memory
from servelab.generator.arrivals import ArrivalLaw, continue_renewals, first_arrivals, poisson_arrivals, renewal_units
from servelab.generator.conversations import CONTEXTS, ConversationModel, accumulate_inputs, conversation_model, \
    draw_increments, expand_conversations, fresh_followups
from servelab.generator.coupling import CouplingPlan, apply_coupling_plan, coupling_plan
from servelab.generator.exceptions import GenerationError, GenerationWarning
from servelab.generator.grid import (SegmentRates, WindowGrid, dense_row_sums, pool_span, segment_rates,
                                     segments, window_grid)
from servelab.generator.rates import DEFAULT_MAX_REQUESTS, RateSchedule, check_request_budget, resolve_rate
from servelab.generator.request_data import POOLED_INPUT, DataSampler, canonical_arrays, data_sampler, int_series

__all__ = ["UNIT_REQUESTS", "UNIT_S", "GenerationPlan", "chunk_frame", "generate_chunks", "iter_plan", "plan_generation",
           "prefix_blocks_step"]

#: longest unit of generation (seconds): a segment longer than this is drawn in pieces
UNIT_S = 600.0
#: expected requests above which a unit is made shorter than :data:`UNIT_S`
UNIT_REQUESTS = 1_000_000


@dataclass(frozen=True)
class GenerationPlan:
    """Everything a workload's units are drawn from, fixed before the first draw (no random state).

    Cells are (synthetic client, segment) pairs with a positive rate, ordered by segment; the
    warm-up of conversations before ``lo`` is one more segment (index ``n_segments``).
    """

    lo: float
    hi: float
    seed: int
    counts: str
    syn_ids: list[str]
    sel: np.ndarray  # pool index per synthetic client
    cell_client: np.ndarray  # synthetic client per cell
    cell_rate: np.ndarray  # start rate (requests / E[turns]) per cell
    cell_ptr: np.ndarray  # cells of segment s: cell_ptr[s]:cell_ptr[s + 1]
    law: ArrivalLaw  # per cell
    unit_a: np.ndarray
    unit_b: np.ndarray
    unit_seg: np.ndarray
    unit_new: np.ndarray  # the unit starts its segment (processes start in equilibrium)
    conv: ConversationModel | None
    context: str
    data: DataSampler | None
    clock: float | None
    coupling: CouplingPlan | None = None  # load-length coupling (issue 17)
    prefixes: object | None = None  # generator.prefixes.PrefixModel: prompt blocks from the pool's prefix model
    pool_clients: dict | None = None  # synthetic client id -> pool client id (for the prefix model)

    @property
    def n_units(self) -> int:
        return int(self.unit_a.size)


def _unit_rng(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def plan_generation(pool, rate, duration: float, *, start: float | None = None, clients: int | None = None,
                    seed: int, conversations: bool = True, max_segment_s: float = 60.0, counts: str = "renewal",
                    missing_data: str = "borrow", context: str | None = None, clock: float | None = None,
                    max_requests: int | None = DEFAULT_MAX_REQUESTS, data: bool = True,
                    grid: WindowGrid | None = None) -> GenerationPlan:
    """Check the arguments of :func:`~servelab.generator.generate.generate` and fix its units.

    Same parameters as :func:`~servelab.generator.generate.generate`, plus ``data`` (False: no
    request data, timestamps and clients only) and ``grid`` (the pool's window grid over the
    period when the caller has it already). Raises what ``generate`` raises.
    """
    from servelab.generator.generate import select_clients  # generate imports this module

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise GenerationError(f"seed must be an integer; got {seed!r}")
    if counts not in ("renewal", "poisson"):
        raise GenerationError(f"counts must be 'renewal' or 'poisson'; got {counts!r}")
    if missing_data not in ("borrow", "null"):
        raise GenerationError(f"missing_data must be 'borrow' or 'null'; got {missing_data!r}")
    if context not in (None, *CONTEXTS):
        raise GenerationError(f"context must be 'sorted' or 'additive', 'fitted' (pools with input increments) or "
                              f"None (fitted when the pool has them, else sorted); got {context!r}")
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
        grid = None
    if lo < span_lo - eps or hi > span_hi + eps:
        raise GenerationError(
            f"start={lo:g} s and duration={float(duration):g} s give [{lo:g}, {hi:g}] s, outside the pool's span "
            f"[{span_lo:g}, {span_hi:g}] s"
        )
    check_request_budget(schedule, duration, pool, start=lo, max_requests=max_requests)
    seed = int(seed)
    if grid is None:
        grid = window_grid(pool, lo, hi)
    seg_a, seg_b, seg_w = segments(lo, hi, grid, schedule, max_segment_s)
    seg_len = seg_b - seg_a
    n_pool, n_seg = len(grid.pool_ids), seg_a.size
    # active (pool client, segment) cells, by segment then pool client (idle ones are implicit: rate 0)
    rates = segment_rates(grid, seg_w)
    # every sum adds its terms in the order the former dense (client, segment) matrix did (same bytes):
    # in segment order per client, numpy's pairwise sum over all pool clients per segment (_targets)
    mean_rate = rates.client_sums(rates.rate * seg_len[rates.segment]) / seg_len.sum()
    mean_cv = rates.client_sums(grid.cv[rates.cell]) / np.maximum(np.bincount(rates.client, minlength=n_pool), 1)
    sel, syn_ids = select_clients(grid.pool_ids, mean_rate, mean_cv, clients, rng=_unit_rng(seed, (0,)))
    n_syn = sel.size
    target = _targets(schedule, rates, seg_a, seg_b, lo)
    # (synthetic client, segment) cells: every copy of a selected pool client's cells, by segment then client
    by_p = np.argsort(sel, kind="stable")
    copies = np.bincount(sel, minlength=n_pool)
    first = np.r_[0, np.cumsum(copies)[:-1]]
    k = copies[rates.client]
    src = np.repeat(np.arange(rates.client.size), k)
    syn = by_p[np.repeat(first[rates.client] - np.r_[0, np.cumsum(k)[:-1]], k) + np.arange(src.size)]
    srt = np.lexsort((syn, rates.segment[src]))
    src, syn = src[srt], syn[srt]
    sn_seg = rates.segment[src]
    selected_total = np.bincount(sn_seg, weights=rates.rate[src], minlength=n_seg)
    dead = (target > 0) & (selected_total <= 0)
    # slivers a float apart from window edges (2.3e-10 s on the sparse 3-week store) lose nothing
    if np.any(dead) and float(seg_len[dead].sum()) >= 1e-6:
        warnings.warn(
            f"{int(dead.sum())} of {dead.size} segments ({seg_len[dead].sum():g} s) have a target rate but no "
            "selected client active in the pool: nothing is generated there",
            GenerationWarning, stacklevel=3,
        )
    factor = np.where(selected_total > 0, target / np.where(selected_total > 0, selected_total, 1.0), 0.0)

    r_sn = rates.rate[src] * factor[sn_seg]
    live = r_sn > 0
    # only the clients with a cell draw: the conversation model's pool-wide input PMFs are built for them
    conv = conversation_model(pool, grid.pool_ids, needed=np.unique(sel[syn[live]])) if conversations else None
    if conv is not None and not bool(np.any(conv.has[sel])):
        conv = None
    mean_turns = conv.mean_turns[sel] if conv is not None else np.ones(n_syn)
    fitted = conv is not None and conv.inc is not None
    if context == "fitted" and conv is not None and not fitted:
        raise GenerationError("context 'fitted' needs the pool's follow-up input increments (input_increment rows "
                              "of conversation_pmfs); this pool has none: use 'sorted' or 'additive'")
    context = context if context is not None else ("fitted" if fitted else "sorted")

    # cells (synthetic client, segment) with a positive rate, ordered by segment then client
    cs, cn = sn_seg[live], syn[live]
    c_rate = r_sn[live] / mean_turns[cn]
    c_law = rates.cell[src[live]]  # cells of grid.law
    ptr = np.searchsorted(cs, np.arange(n_seg + 1))
    # warm-up: conversations started before `lo` whose follow-ups land inside, one more segment
    warm = 0.0
    if conv is not None and cs.size:
        warm = min(conv.max_itt * max(conv.max_turns - 1, 0), 6 * 3600.0)
        wm = np.flatnonzero((cs == cs[0]) & conv.has[sel[cn]])
        if warm > 0 and wm.size:
            cn, c_rate, c_law = np.r_[cn, cn[wm]], np.r_[c_rate, c_rate[wm]], np.r_[c_law, c_law[wm]]
        else:
            warm = 0.0
    ptr = np.r_[ptr, cn.size]
    # units: the warm-up first, then the segments in time order, each cut into pieces
    starts = np.r_[seg_a, lo - warm] if warm > 0 else seg_a
    ends = np.r_[seg_b, lo] if warm > 0 else seg_b
    seg_ids = np.r_[np.arange(n_seg), n_seg] if warm > 0 else np.arange(n_seg)
    order = np.r_[n_seg, np.arange(n_seg)] if warm > 0 else np.arange(n_seg)
    seg_rate = np.bincount(np.repeat(np.arange(ptr.size - 1), np.diff(ptr)), weights=c_rate,
                           minlength=ptr.size - 1) * (float(np.max(mean_turns)) if n_syn else 1.0)
    unit_len = UNIT_S if seg_rate.size == 0 or seg_rate.max() <= 0 else float(
        min(UNIT_S, max(1.0, UNIT_REQUESTS / seg_rate.max())))
    pieces = np.maximum(np.ceil((ends - starts) / unit_len - 1e-9).astype(np.int64), 1)[order]
    seg_of_unit = np.repeat(seg_ids[order], pieces)
    first_piece = np.r_[0, np.cumsum(pieces)[:-1]]
    j = np.arange(seg_of_unit.size) - np.repeat(first_piece, pieces)
    a = starts[order][np.repeat(np.arange(order.size), pieces)]
    b_seg = ends[order][np.repeat(np.arange(order.size), pieces)]
    unit_a = a + j * unit_len
    unit_b = np.where(j == np.repeat(pieces, pieces) - 1, b_seg, np.minimum(a + (j + 1) * unit_len, b_seg))
    sampler = (data_sampler(pool, grid, seg_a, seg_b, rates, lo, hi, borrow=missing_data == "borrow")
               if data else None)
    return GenerationPlan(
        lo=lo, hi=hi, seed=seed, counts=counts, syn_ids=syn_ids, sel=sel, cell_client=cn, cell_rate=c_rate,
        cell_ptr=ptr, law=grid.law.take(c_law), unit_a=unit_a, unit_b=unit_b, unit_seg=seg_of_unit,
        unit_new=j == 0, conv=conv, context=context, data=sampler, clock=clock,
        # the coupling scales drawn request data: none without a sampler
        coupling=(coupling_plan(pool, grid, lo, hi, data_anchor=sampler.anchor, data_window_s=sampler.dw)
                  if sampler is not None else None),
        **_prefix_fields(pool, grid, sel, syn_ids, data))


def _prefix_fields(pool, grid: WindowGrid, sel: np.ndarray, syn_ids: list[str], data: bool) -> dict:
    """The plan's prefix model and client map when the pool has a prefix model (issue 15)."""
    if not data or "prefixes" not in getattr(pool, "_lazy", {}):
        return {}
    from servelab.generator.prefixes import prefix_model  # only pools with a prefix model pay for it

    model = prefix_model(pool)
    if model is None:
        return {}
    return {"prefixes": model, "pool_clients": {s: grid.pool_ids[i] for s, i in zip(syn_ids, sel.tolist())}}


def _targets(schedule: RateSchedule, rates: SegmentRates, seg_a: np.ndarray, seg_b: np.ndarray,
             lo: float) -> np.ndarray:
    """Target total rate per segment."""
    if schedule.kind == "pool":
        # each segment's total as numpy's pairwise sum over all pool clients (the dense column): same bits
        return schedule.value * dense_row_sums(rates.segment, rates.client, rates.rate, seg_a.size, rates.n_clients)
    return 0.5 * (schedule.at(seg_a - lo) + schedule.at(seg_b - lo))


class _Drawer:
    """Draws unit after unit, carrying each segment's renewal state and the conversation counter."""

    def __init__(self, plan: GenerationPlan):
        self.plan = plan
        self.residual = np.zeros(plan.cell_client.size)
        self.conv_base = 0
        self._ready: dict[int, tuple[np.random.Generator, np.ndarray, np.ndarray]] = {}

    def prepare(self, k0: int, k1: int) -> None:
        """Draw the renewal arrivals of units ``k0 .. k1 - 1`` at once (:func:`renewal_units`).

        Each unit draws from its own stream exactly what :meth:`unit` would draw for it alone, so
        the workload is the same bytes; a unit that continues its segment waits for the residuals
        of the unit before it (one wave per piece of a segment). :meth:`unit` then takes the
        unit's stream and arrivals from here. Loops run over waves and units.
        """
        p = self.plan
        if p.counts != "renewal" or k1 <= k0:
            return
        ks = np.arange(k0, k1)
        new = p.unit_new[ks]
        start = np.maximum.accumulate(np.where(new | (ks == k0), ks, k0))
        wave = ks - start  # units of one segment come one after the other: the j-th piece waits for the (j-1)-th
        rngs = {int(k): _unit_rng(p.seed, (1, int(k))) for k in ks}
        for w in range(int(wave.max()) + 1):  # a loop over waves
            units = ks[wave == w]
            seg = p.unit_seg[units]
            lo, hi = p.cell_ptr[seg], p.cell_ptr[seg + 1]
            ptr = np.concatenate(([0], np.cumsum(hi - lo)))
            cells = np.repeat(lo - ptr[:-1], hi - lo) + np.arange(ptr[-1])
            length = np.repeat(p.unit_b[units] - p.unit_a[units], hi - lo)
            cell, off, residual = renewal_units(p.cell_rate[cells], length, p.law.take(cells), ptr,
                                                [rngs[int(k)] for k in units], first=self.residual[cells],
                                                stationary=p.unit_new[units])
            self.residual[cells] = residual
            cuts = np.searchsorted(cell, ptr)
            for i, k in enumerate(units.tolist()):  # a loop over units
                a, b = cuts[i], cuts[i + 1]
                self._ready[k] = (rngs[k], cell[a:b] - ptr[i], off[a:b])

    def unit(self, k: int) -> dict[str, np.ndarray]:
        """The requests of unit ``k`` as arrays (pool times), in generation order, cropped to the period."""
        return self.units(k, k + 1)[0]

    def units(self, k0: int, k1: int) -> list[dict[str, np.ndarray]]:
        """:meth:`unit` of units ``k0 .. k1 - 1``: the same arrays, their draws done a phase at a time.

        Arrivals (:meth:`prepare`), then conversations unit by unit, then the request data of all
        the units at once (:meth:`~servelab.generator.request_data.DataSampler.draw_units`), then
        the rest unit by unit: each unit's stream sees the calls of :meth:`unit` in its order.
        """
        p = self.plan
        self.prepare(k0, k1)
        staged = [self._arrive(k) for k in range(k0, k1)]
        raw: list[dict[str, np.ndarray] | None] = [None] * len(staged)
        if p.data is not None and staged:
            ptr = np.concatenate(([0], np.cumsum([out["t"].size for _, out in staged])))
            cols = p.data.draw_units(p.sel[np.concatenate([out["client"] for _, out in staged])],
                                     np.concatenate([out["t"] for _, out in staged]), ptr,
                                     [rng for rng, _ in staged])
            raw = [{f: v[ptr[i]:ptr[i + 1]] for f, v in cols.items()} for i in range(len(staged))]
        return [self._finish(k, rng, out, r) for k, (rng, out), r in zip(range(k0, k1), staged, raw)]

    def _arrive(self, k: int) -> tuple[np.random.Generator, dict[str, np.ndarray]]:
        """Unit ``k``'s stream and its requests' times, clients and conversations (before any data draw)."""
        p = self.plan
        s = int(p.unit_seg[k])
        cells = np.arange(p.cell_ptr[s], p.cell_ptr[s + 1])
        if k in self._ready:  # drawn by prepare(), from this unit's stream
            rng, cell, off = self._ready.pop(k)
        else:
            rng = _unit_rng(p.seed, (1, k))
            length = float(p.unit_b[k] - p.unit_a[k])
            rate = p.cell_rate[cells]
            law = p.law.take(cells)
            if p.counts == "renewal":
                first = first_arrivals(rate, law, rng) if p.unit_new[k] else self.residual[cells]
                cell, off, self.residual[cells] = continue_renewals(rate, length, law, first, rng)
            else:
                cell, off = poisson_arrivals(rate, np.full(rate.size, length), law, rng=rng)
        t = p.unit_a[k] + off
        client = p.cell_client[cells][cell]
        out: dict[str, np.ndarray] = {}
        if p.conv is not None:
            t, client, conv_id, turn = expand_conversations(t, client, p.sel, p.conv, rng)
            n_conv = int(conv_id[-1]) + 1 if conv_id.size else 0
            conv_id = conv_id + self.conv_base
            self.conv_base += n_conv
            # conversations over before the start (warm-up) never reach the workload: dropped
            # before any draw (later turns past the end stay until the data is drawn: the
            # sorted context gives a conversation's inputs to its turns in order)
            if t.size and p.unit_a[k] < p.lo:
                starts = np.flatnonzero(turn == 1)
                last = np.maximum.reduceat(t, starts)
                keep = np.repeat(last >= p.lo, np.diff(np.r_[starts, t.size]))
                t, client, conv_id, turn = t[keep], client[keep], conv_id[keep], turn[keep]
            out["conv"], out["turn"] = conv_id, turn
        out["t"], out["client"] = t, client
        return rng, out

    def _finish(self, k: int, rng: np.random.Generator, out: dict[str, np.ndarray],
                raw: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Unit ``k``'s arrays from :meth:`_arrive`'s and its drawn request data ``raw``."""
        p = self.plan
        t, client = out["t"], out["client"]
        if p.data is not None:
            pool_index = p.sel[client]  # gathered once for the steps below
            fields = canonical_arrays(raw)
            fields = apply_coupling_plan(p.coupling, fields, pool_index, t)  # issue 17
            if p.conv is not None and "input_tokens" in fields and (p.context == "fitted" or np.any(out["turn"] > 1)):
                inp = np.nan_to_num(fields["input_tokens"])
                outp = np.nan_to_num(fields["output_tokens"]) if "output_tokens" in fields else np.zeros_like(inp)
                inc = (draw_increments(p.conv, pool_index, out["turn"], inp, rng, pooled=raw.get(POOLED_INPUT))
                       if p.context == "fitted" else None)  # first inputs and follow-up increments, after the data
                fresh = fresh_followups(p.conv, pool_index, out["turn"]) if p.context == "fitted" else None
                fields["input_tokens"] = accumulate_inputs(inp, outp, out["turn"], context=p.context, increments=inc,
                                                           fresh=fresh)  # no history where follow-ups do not grow
            out.update({f"f:{c}": v for c, v in fields.items()})
        n = t.size
        if p.conv is None:  # rows never leave their unit: sort here, emit in unit order
            inside = (t >= p.lo) & (t < p.hi)
            order = np.flatnonzero(inside) if not inside.all() else None
            order = np.argsort(t, kind="stable") if order is None else order[np.argsort(t[order], kind="stable")]
            return {c: v[order] for c, v in out.items()}
        # rows outside [lo, hi) stay: after the chunk's sort they lead (warm-up turns) or trail
        # (turns past the end) its buffer and are cut off there, without a masked copy here
        # (iter_plan); a follow-up's parent is the row before it (_parent_links)
        return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [x for x in parts if x]
    if not parts:
        return {}
    if len(parts) == 1:
        return parts[0]
    return {c: np.concatenate([x[c] for x in parts]) for c in parts[0]}


def _chunk_bounds(plan: GenerationPlan, chunk_s: float | None) -> np.ndarray:
    """Unit index where each chunk starts (and the total at the end)."""
    if chunk_s is None:
        return np.array([0, plan.n_units])
    if not (isinstance(chunk_s, (int, float, np.integer, np.floating)) and not isinstance(chunk_s, bool)
            and math.isfinite(chunk_s) and chunk_s > 0):
        raise GenerationError(f"chunk_s must be a finite number of seconds > 0 or None (one chunk); got {chunk_s!r}")
    idx = np.floor(np.maximum(plan.unit_a - plan.lo, 0.0) / float(chunk_s)).astype(np.int64)
    cuts = np.flatnonzero(np.diff(idx)) + 1
    return np.r_[0, cuts, plan.n_units]


def chunk_frame(plan: GenerationPlan, parts: list[dict[str, np.ndarray]], base: int) -> pl.DataFrame:
    """The canonical frame of emitted rows (``parts`` in output order), output rows ``base``, ``base + 1``, ..."""
    from servelab.generator.generate import clock_times  # generate imports this module

    ids = pl.Series("client_id", plan.syn_ids, dtype=pl.String)
    # the units' arrays joined first, then one frame (a frame per unit cost ~0.3 ms each: 10,080
    # one-minute units per week); the same rows, values and dtypes as a concat of per-unit frames
    rows = _concat(list(parts))
    times = rows["t"] - plan.lo
    columns = [pl.Series("timestamp", times if plan.clock is None else clock_times(times, plan.clock)),
               ids.gather(rows["client"])]
    columns += [int_series(c[2:], v) for c, v in rows.items() if c.startswith("f:")]
    if plan.conv is not None:
        parent = pl.Series("parent_id", rows["prow"], dtype=pl.Int64)
        columns += [pl.Series("conversation_id", rows["conv"], dtype=pl.Int64).cast(pl.String),
                    pl.select(pl.when(parent >= 0).then(parent).otherwise(None).cast(pl.String)).to_series()
                    .alias("parent_id"),
                    pl.Series("turn", rows["turn"], dtype=pl.Int64)]
    return pl.DataFrame(columns)


def generate_chunks(pool, rate, duration: float, *, chunk_s: float | None = 600.0,
                    progress: Callable[[int, float], None] | None = None, **kwargs) -> Iterator[pl.DataFrame]:
    """The workload of :func:`~servelab.generator.generate.generate`, chunk after chunk.

    Parameters
    ----------
    pool, rate, duration
        As in :func:`~servelab.generator.generate.generate`.
    chunk_s : float or None
        Seconds of workload per chunk (None: one chunk). Does not change the workload: the same
        seed gives the same rows in the same order for any ``chunk_s`` (module docstring).
    progress : callable, optional
        Called after each chunk with ``(requests in the chunk, seconds of workload done)``.
    **kwargs
        The keyword arguments of :func:`~servelab.generator.generate.generate` (``start``,
        ``clients``, ``seed``, ``conversations``, ``max_segment_s``, ``counts``,
        ``missing_data``, ``context``, ``clock``, ``max_requests``).

    Yields
    ------
    polars.DataFrame
        Consecutive pieces of the workload, each sorted by ``timestamp`` and after the previous
        one; ``parent_id`` counts output rows across chunks. Chunks may be empty.

    Raises
    ------
    GenerationError
        As :func:`~servelab.generator.generate.generate`, and for a bad ``chunk_s``.
    """
    plan = kwargs.pop("plan", None) or plan_generation(pool, rate, duration, **kwargs)
    yield from iter_plan(plan, chunk_s=chunk_s, progress=progress)


def iter_plan(plan: GenerationPlan, *, chunk_s: float | None = 600.0,
              progress: Callable[[int, float], None] | None = None, frames: bool = True) -> Iterator:
    """Draw ``plan`` chunk by chunk (see :func:`generate_chunks`); ``frames=False`` yields the raw arrays.

    The chunks reuse the memory the chunk before them freed (:func:`~servelab.generator.allocator.reuse_freed_memory`).
    """
    bounds = _chunk_bounds(plan, chunk_s)
    with reuse_freed_memory():  # the kernel no longer faults each chunk's arrays in anew (issue 16)
        yield from _iter_chunks(plan, bounds, progress, frames)


def _iter_chunks(plan: GenerationPlan, bounds: np.ndarray, progress, frames: bool) -> Iterator:
    """:func:`iter_plan`'s loop over the chunks cut at units ``bounds``."""
    drawer = _Drawer(plan)
    carry: dict[str, np.ndarray] = {}
    base = 0
    prefix_state = None
    for i in range(bounds.size - 1):  # a loop over chunks, then units
        k0, k1 = int(bounds[i]), int(bounds[i + 1])
        parts = drawer.units(k0, k1)  # the chunk's units, each draw phase for all of them at once
        last = i == bounds.size - 2
        horizon = plan.hi if last else float(plan.unit_a[k1])
        if plan.conv is None:
            rows = [x for x in parts if x["t"].size]
        else:
            rows, carry = _chunk_rows(carry, parts, plan.lo, plan.hi if last else horizon, base)
        n = sum(int(x["t"].size) for x in rows)
        if progress is not None:
            progress(n, horizon - plan.lo)
        if not frames:
            yield rows, base
        elif n:
            frame = chunk_frame(plan, rows, base)
            if plan.prefixes is not None:
                frame, prefix_state = prefix_blocks_step(plan, frame, rows, prefix_state)
            yield frame
        base += n


def prefix_blocks_step(plan: GenerationPlan, frame: pl.DataFrame, rows: list[dict[str, np.ndarray]], state):
    """``frame`` with ``prefix_blocks`` from the plan's prefix model, and the state for the next chunk.

    The prefix step (:func:`~servelab.generator.prefixes.assign_prefix_blocks`) seeds each call by
    its ``state.chunk``; it is called once per unit of the plan that has rows (units do not depend
    on ``chunk_s``, and a chunk ends at a unit boundary), with ``chunk`` set to the unit's index,
    so the blocks are the same whatever the chunk size.
    """
    from dataclasses import replace

    from servelab.generator.prefixes import PrefixState, assign_prefix_blocks

    t = np.concatenate([x["t"] for x in rows])
    starts = np.unique(plan.unit_a)
    unit = np.searchsorted(starts, t, side="right") - 1
    cuts = np.r_[0, np.flatnonzero(np.diff(unit)) + 1, t.size]
    state = PrefixState.start(plan.prefixes) if state is None else state
    out = []
    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):  # a loop over units
        piece, state = assign_prefix_blocks(frame.slice(a, b - a), plan.prefixes, seed=plan.seed,
                                            state=replace(state, chunk=int(unit[a])), pool_clients=plan.pool_clients)
        out.append(piece)
    return (out[0] if len(out) == 1 else pl.concat(out, rechunk=False)), state


def _time_order(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.argsort(t, kind="stable")`` and ``t`` in that order, from the faster unstable sort.

    numpy's stable argsort of doubles is a merge sort (80-90 ns a row on times in no order); its
    quicksort is vectorised (15-20 ns). The two differ only among equal times, rare for continuous
    times: those rows are put back in position order, so the permutation is the stable one.
    """
    order = np.argsort(t, kind="quicksort")
    ts = t[order]
    tie = np.flatnonzero(ts[1:] == ts[:-1])
    if tie.size:
        slots = np.unique(np.concatenate((tie, tie + 1)))  # the rows of every run of equal times
        order[slots] = order[slots][np.lexsort((order[slots], ts[slots]))]
        ts[slots] = t[order[slots]]  # equal values, but -0.0 and 0.0 keep their own bits
    return order, ts


def _chunk_rows(carry: dict[str, np.ndarray], parts: list[dict[str, np.ndarray]], lo: float, horizon: float,
                base: int) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The rows a chunk of a conversation workload emits, and the rows it carries to the next chunk.

    The buffer (the carry, then the chunk's units in order) is sorted by (time, position): the
    carry, sorted so, holds earlier units' rows, and a unit's rows come in generation order, so
    this is the order ``(time, unit, position in the unit)``. Rows before ``lo`` (warm-up turns)
    are dropped, rows before ``horizon`` emitted as output rows ``base, base + 1, ...`` with their
    parents' rows (``prow``, :func:`_parent_links`), the others carried with ``prow`` and ``ppos``.
    """
    buf = _concat([{c: v for c, v in carry.items() if c not in _LINKS}, *parts])
    if not buf:
        return [], carry
    order, t_sorted = _time_order(buf["t"])
    a = int(np.searchsorted(t_sorted, lo, side="left"))  # warm-up turns before the start
    m = int(np.searchsorted(t_sorted, horizon, side="left")) - a
    keep = order[a:]
    out = {c: (t_sorted[a:] if c == "t" else v[keep]) for c, v in buf.items()}
    n_carry = carry["t"].size if carry else 0
    prow, ppos = _parent_links(buf["turn"], carry.get("prow"), carry.get("ppos"), n_carry, order, a, m, base)
    rows = {c: v[:m] for c, v in out.items()}
    rows["prow"] = prow[:m]
    rest = {c: v[m:] for c, v in out.items()}
    rest["prow"], rest["ppos"] = prow[m:], ppos
    return [rows], rest


#: the carry's link columns: a row's parent's output row (-1: not known yet) and its parent's
#: position in the carry (-1: none there)
_LINKS = ("prow", "ppos")


def _parent_links(turn: np.ndarray, carry_prow: np.ndarray | None, carry_ppos: np.ndarray | None, n_carry: int,
                  order: np.ndarray, a: int, m: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Every kept row's parent output row (``prow``, -1: none or not emitted yet), and ``ppos`` for the carry.

    ``turn`` is per buffer row (the carry's ``n_carry`` rows, then the units'); ``order`` sorts
    the buffer, whose sorted rows ``a:`` are kept and ``a:a + m`` emitted as output rows from
    ``base``. A unit's follow-up has its parent in the row before it (rows are grouped by
    conversation in turn order); a carried row has its ``prow`` when its parent was emitted,
    else its parent's carry position ``ppos``. Parents and children are found by position
    through the inverse permutation (no search); a parent dropped before the start stays -1.
    """
    n = turn.size
    # kept sorted position of each buffer row (< 0: dropped); int32 when it fits: the scatter's
    # cache misses are the cost, and half the bytes miss less
    pos_type = np.int32 if n < 2**31 else np.int64
    inv = np.empty(n, dtype=pos_type)
    inv[order] = np.arange(-a, n - a, dtype=pos_type)
    prow = np.full(n - a, -1, dtype=np.int64)
    child = n_carry + np.flatnonzero(turn[n_carry:] > 1)
    parent = child - 1
    if n_carry:
        linked = np.flatnonzero(carry_prow >= 0)
        prow[inv[linked]] = carry_prow[linked]  # carried rows come after the start: never dropped
        waiting = np.flatnonzero(carry_ppos >= 0)
        child, parent = np.concatenate((waiting, child)), np.concatenate((carry_ppos[waiting], parent))
    cs, ps = inv[child], inv[parent]
    # a parent comes before its child (earlier time, or the same time and an earlier position)
    out = (ps >= 0) & (ps < m)
    prow[cs[out]] = ps[out].astype(np.int64) + base
    later = ps >= m  # both carried: the parent's position in the next carry
    ppos = np.full(n - a - m, -1, dtype=np.int64)
    ppos[cs[later] - m] = ps[later] - m
    return prow, ppos

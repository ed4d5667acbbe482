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
4. **Arrivals** (:func:`renewal_arrivals`): in each client-segment a *stationary* renewal process
   of the window's family (Gamma, Weibull; exponential = Gamma with shape 1) with the window's
   shape and the scale set so that the mean gap is exactly ``1 / rate``. The first arrival comes
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

This module does not read or write files (see :mod:`servelab.generator.exports`) and does not
build the naive baseline (see :mod:`servelab.generator.naive`).
"""
from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import special
from servelab.generator.exceptions import GenerationError, GenerationWarning
from servelab.generator.pool import DATA_FIELDS  # re-exported: fields a pool may hold

__all__ = [
    "DATA_FIELDS",
    "GAMMA",
    "WEIBULL",
    "RateSchedule",
    "aggregate_pmfs",
    "constant_rate",
    "family_codes",
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
]

_MODALITIES = ("image", "audio", "video")

#: family codes of :func:`renewal_arrivals` (exponential is Gamma with shape 1)
GAMMA = 0
WEIBULL = 1

#: shape floors: Gamma a >= 1e-4 (CV 100), Weibull c >= 0.1 (CV ~ 430); below them draws degenerate
_MIN_GAMMA_SHAPE = 1e-4
_MIN_WEIBULL_SHAPE = 0.1
_MAX_ROUNDS = 1000


# --------------------------------------------------------------------------------------------
# total rate as a function of time
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RateSchedule:
    """The target total request rate (req/s) as a function of time since the workload's start.

    Parameters
    ----------
    kind : {"constant", "table", "pool"}
        A constant rate, a table of points linearly interpolated (held flat beyond its ends),
        or the pool's own historical total rate times ``value``.
    value : float
        The constant rate, or the scale applied to the pool's total.
    times, rates : tuple of float
        The table's points (seconds since the workload's start, req/s); ``kind="table"`` only.
    """

    kind: str
    value: float = 0.0
    times: tuple[float, ...] = ()
    rates: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "table", "pool"):
            raise GenerationError(f"RateSchedule kind must be 'constant', 'table' or 'pool'; got {self.kind!r}")
        if self.kind in ("constant", "pool") and not (math.isfinite(self.value) and self.value > 0):
            raise GenerationError(f"rate must be a finite number > 0; got {self.value!r}")
        if self.kind == "table":
            t = np.asarray(self.times, dtype=float)
            r = np.asarray(self.rates, dtype=float)
            if t.size == 0 or t.size != r.size:
                raise GenerationError(
                    f"a rate table needs as many times as rates and at least one point; got {t.size} times, {r.size} rates"
                )
            if not (np.all(np.isfinite(t)) and np.all(np.isfinite(r)) and np.all(r >= 0)):
                raise GenerationError("rate table times and rates must be finite and rates >= 0")
            if np.any(np.diff(t) <= 0):
                raise GenerationError("rate table times must be strictly increasing")
            if not np.any(r > 0):
                raise GenerationError("rate table rates are all 0: nothing to generate")

    def at(self, t) -> np.ndarray:
        """Target rate at times ``t`` (seconds since start); only for constant and table kinds."""
        t = np.asarray(t, dtype=float)
        if self.kind == "constant":
            return np.full(t.shape, self.value)
        if self.kind == "table":
            return np.interp(t, np.asarray(self.times), np.asarray(self.rates))
        raise GenerationError("a 'pool' rate schedule has no values of its own: it follows the pool's total")

    def describe(self) -> str:
        if self.kind == "constant":
            return f"constant {self.value:g} req/s"
        if self.kind == "pool":
            return f"pool total x {self.value:g}"
        return f"table of {len(self.times)} points, {min(self.rates):g}..{max(self.rates):g} req/s"


def constant_rate(rate: float) -> RateSchedule:
    """A constant total rate (req/s)."""
    return RateSchedule("constant", value=float(rate))


def rate_table(times: Sequence[float], rates: Sequence[float]) -> RateSchedule:
    """A total rate interpolated linearly between points (seconds since start, req/s)."""
    return RateSchedule("table", times=tuple(float(x) for x in times), rates=tuple(float(x) for x in rates))


def pool_rate(scale: float = 1.0) -> RateSchedule:
    """The pool's own historical total rate, times ``scale``."""
    return RateSchedule("pool", value=float(scale))


def read_rate_file(path: str | os.PathLike) -> RateSchedule:
    """Read a rate table from a CSV with a header: ``time_s`` and ``rate`` columns.

    ``time``/``t``/``timestamp`` are accepted for the time column and ``rate_rps``/``rps`` for
    the rate. Times are seconds since the workload's start.
    """
    try:
        table = pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as err:
        raise GenerationError(f"cannot read rate file {str(path)!r}: {err}") from None
    names = {c.lower(): c for c in table.columns}
    tcol = next((names[c] for c in ("time_s", "time", "t", "timestamp") if c in names), None)
    rcol = next((names[c] for c in ("rate", "rate_rps", "rps") if c in names), None)
    if tcol is None or rcol is None:
        raise GenerationError(
            f"rate file {str(path)!r} needs a time column (time_s, time, t, timestamp) and a rate column "
            f"(rate, rate_rps, rps); columns found: {table.columns}"
        )
    table = table.sort(tcol)
    return rate_table(table[tcol].cast(pl.Float64).to_list(), table[rcol].cast(pl.Float64).to_list())


def resolve_rate(rate) -> RateSchedule:
    """Turn ``rate`` (number, ``"pool"``, ``(times, rates)``, a frame, or a schedule) into a schedule."""
    if isinstance(rate, RateSchedule):
        return rate
    if isinstance(rate, str):
        if rate == "pool":
            return pool_rate(1.0)
        raise GenerationError(f"rate as text must be 'pool'; got {rate!r}")
    if isinstance(rate, pl.DataFrame):
        cols = rate.columns
        tcol = "time_s" if "time_s" in cols else cols[0]
        rcol = "rate" if "rate" in cols else cols[1]
        return rate_table(rate[tcol].to_list(), rate[rcol].to_list())
    if isinstance(rate, tuple) and len(rate) == 2:
        return rate_table(rate[0], rate[1])
    if isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, bool):
        return constant_rate(float(rate))
    raise GenerationError(
        f"rate must be a number (req/s), 'pool', (times, rates), a DataFrame or a RateSchedule; got {type(rate).__name__}"
    )


# --------------------------------------------------------------------------------------------
# pool access (the agreed in-memory layout: clients / arrivals / data / conversations frames)
# --------------------------------------------------------------------------------------------
def _frame(value) -> pl.DataFrame | None:
    if value is None:
        return None
    if isinstance(value, pl.LazyFrame):
        return value.collect()
    return value


def pool_span(pool) -> tuple[float, float]:
    """(first window start, last window end) of the pool's arrival windows, seconds."""
    arrivals = _frame(pool.arrivals)
    if arrivals is None or arrivals.height == 0:
        raise GenerationError("the pool has no arrival windows: nothing to generate from")
    lo = arrivals["window_start"].min()
    hi = (arrivals["window_start"] + arrivals["window_s"]).max()
    return float(lo), float(hi)


@dataclass(frozen=True)
class _Grid:
    """Dense per-(pool client, arrival window) arrays over the generation period."""

    pool_ids: list[str]
    window_start: np.ndarray  # (W,)
    window_len: np.ndarray  # (W,)
    rate: np.ndarray  # (P, W)
    cv: np.ndarray
    family: np.ndarray  # int codes, -1 = none
    shape: np.ndarray


def _grid(pool, lo: float, hi: float) -> _Grid:
    arrivals = _frame(pool.arrivals).filter(
        (pl.col("window_start") < hi) & ((pl.col("window_start") + pl.col("window_s")) > lo)
    )
    clients = _frame(pool.clients)
    if clients is not None and "has_arrivals" in clients.columns:
        ids = clients.filter(pl.col("has_arrivals"))["client_id"].to_list()
    else:
        ids = arrivals["client_id"].unique(maintain_order=True).to_list()
    ids = sorted(set(ids))
    starts = np.unique(arrivals["window_start"].to_numpy().astype(float))
    lens = (
        arrivals.group_by("window_start").agg(pl.col("window_s").max()).sort("window_start")["window_s"].to_numpy()
    )
    P, W = len(ids), starts.size
    index = pl.DataFrame({"client_id": ids, "p": np.arange(P)})
    a = arrivals.join(index, on="client_id", how="inner")
    p = a["p"].to_numpy()
    w = np.searchsorted(starts, a["window_start"].to_numpy().astype(float))
    rate = np.zeros((P, W))
    cv = np.zeros((P, W))
    shape = np.ones((P, W))
    fam = np.full((P, W), -1, dtype=np.int8)
    rate[p, w] = a["rate"].fill_null(0.0).to_numpy()
    cv[p, w] = a["cv"].fill_null(0.0).to_numpy() if "cv" in a.columns else 0.0
    names = a["family"].to_list() if "family" in a.columns else [None] * a.height
    shapes = a["shape"].to_numpy() if "shape" in a.columns else np.full(a.height, np.nan)
    codes, shp = family_codes(names, shapes, cv[p, w])
    fam[p, w] = codes
    shape[p, w] = shp
    return _Grid(ids, starts, lens.astype(float), rate, cv, fam, shape)


def family_codes(families, shapes, cvs) -> tuple[np.ndarray, np.ndarray]:
    """Map registry family names (+ shape, CV) to :func:`renewal_arrivals` codes and shapes.

    ``gamma`` keeps its shape ``a``; ``weibull`` its ``c``; ``exponential`` is Gamma with
    ``a = 1``. A window without a family but with a CV > 0 becomes Gamma with ``a = 1 / CV^2``
    (the Gamma with that CV); without either it is exponential. Shapes are floored (Gamma
    ``a >= 1e-4``, Weibull ``c >= 0.1``) so that draws stay finite.
    """
    fam = np.asarray([str(f).lower() if f is not None else "" for f in families], dtype=object)
    shapes = np.asarray(shapes, dtype=float)
    cvs = np.asarray(cvs, dtype=float)
    codes = np.full(fam.size, GAMMA, dtype=np.int8)
    out = np.ones(fam.size)
    is_w = fam == "weibull"
    is_g = fam == "gamma"
    is_e = fam == "exponential"
    unknown = ~(is_w | is_g | is_e | (fam == ""))
    if np.any(unknown):
        raise GenerationError(
            f"arrival family must be gamma, weibull or exponential; got {sorted(set(fam[unknown]))}"
        )
    codes[is_w] = WEIBULL
    ok = np.isfinite(shapes) & (shapes > 0)
    out[is_w & ok] = np.maximum(shapes[is_w & ok], _MIN_WEIBULL_SHAPE)
    out[is_g & ok] = np.maximum(shapes[is_g & ok], _MIN_GAMMA_SHAPE)
    # no usable shape: the Gamma with the window's CV
    from_cv = ~is_e & ~((is_w | is_g) & ok)
    codes[from_cv] = GAMMA
    cv_ok = from_cv & np.isfinite(cvs) & (cvs > 0)
    out[cv_ok] = np.maximum(1.0 / cvs[cv_ok] ** 2, _MIN_GAMMA_SHAPE)
    return codes, out


# --------------------------------------------------------------------------------------------
# client selection (ServeGen's Client Generator)
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# arrivals: stationary renewal processes, all client-segments at once
# --------------------------------------------------------------------------------------------
def _unit_mean_scale(code: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Scale giving mean 1 for each (family, shape)."""
    out = np.empty(shape.size)
    g = code == GAMMA
    out[g] = 1.0 / shape[g]
    out[~g] = 1.0 / special.gamma(1.0 + 1.0 / shape[~g])
    return out


def _draw(code: np.ndarray, shape: np.ndarray, rng: np.random.Generator, *, length_biased: bool) -> np.ndarray:
    """Unit-scale draws (scale applied by the caller), one per element of ``code``."""
    out = np.empty(code.size)
    g = code == GAMMA
    if np.any(g):
        out[g] = rng.gamma(shape[g] + (1.0 if length_biased else 0.0))
    w = ~g
    if np.any(w):
        c = shape[w]
        if length_biased:  # x f(x) for Weibull: (x/s)^c ~ Gamma(1 + 1/c)
            out[w] = rng.gamma(1.0 + 1.0 / c) ** (1.0 / c)
        else:
            out[w] = rng.weibull(c)
    return out


def renewal_arrivals(rate, length, family, shape, rng: np.random.Generator,
                     *, stationary: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times of independent renewal processes, one per cell, all drawn at once.

    Cell ``i`` runs for ``length[i]`` seconds with gaps from ``family[i]`` (:data:`GAMMA` or
    :data:`WEIBULL`) of shape ``shape[i]`` and mean ``1 / rate[i]``. With ``stationary`` the
    first arrival comes after a forward-recurrence time (``U`` times a length-biased gap), so
    the process is in equilibrium from time 0 and the expected count is exactly
    ``rate[i] * length[i]``; the count itself is random.

    Returns
    -------
    cell : int64 array
        The cell of each arrival, non-decreasing.
    offset : float64 array
        Time of each arrival since its cell's start, increasing within a cell.
    """
    rate = np.asarray(rate, dtype=float)
    length = np.broadcast_to(np.asarray(length, dtype=float), rate.shape)
    code = np.broadcast_to(np.asarray(family, dtype=np.int8), rate.shape)
    shape = np.broadcast_to(np.asarray(shape, dtype=float), rate.shape)
    if np.any(~np.isfinite(rate)) or np.any(rate <= 0) or np.any(length < 0):
        raise GenerationError("renewal_arrivals needs rates > 0 and lengths >= 0")
    scale = _unit_mean_scale(code, shape) / rate
    cv2 = np.where(code == GAMMA, 1.0 / shape, special.gamma(1 + 2 / shape) / special.gamma(1 + 1 / shape) ** 2 - 1)
    cv = np.sqrt(np.clip(cv2, 0.0, 1e6))
    cells_out, offs_out = [], []
    todo = np.flatnonzero(length > 0)
    elapsed = np.zeros(rate.size)
    first_round = True
    for _ in range(_MAX_ROUNDS):
        if todo.size == 0:
            break
        m = rate[todo] * (length[todo] - elapsed[todo])
        k = np.ceil(m + 4.0 * np.sqrt(m) * np.maximum(cv[todo], 1.0) + 4.0).astype(np.int64)
        rep = np.repeat(todo, k)
        gaps = _draw(code[rep], shape[rep], rng, length_biased=False)
        if first_round and stationary:
            heads = np.r_[0, np.cumsum(k)[:-1]]
            lb = _draw(code[todo], shape[todo], rng, length_biased=True)
            gaps[heads] = rng.random(todo.size) * lb
        gaps *= scale[rep]
        t = np.cumsum(gaps)
        ends = np.cumsum(k) - 1
        base = np.r_[0.0, t[ends[:-1]]]
        t -= np.repeat(base, k)
        t += np.repeat(elapsed[todo], k)
        keep = t < length[rep]
        cells_out.append(rep[keep])
        offs_out.append(t[keep])
        last = t[ends]
        elapsed[todo] = last
        todo = todo[last < length[todo]]
        first_round = False
    else:  # pragma: no cover - needs absurd parameters
        raise GenerationError(f"renewal_arrivals did not cover {todo.size} cells in {_MAX_ROUNDS} rounds")
    if not cells_out:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    cell = np.concatenate(cells_out).astype(np.int64, copy=False)
    off = np.concatenate(offs_out)
    if len(cells_out) > 1:  # later rounds continue their cells: a stable sort on the cell suffices
        order = np.argsort(cell, kind="stable")
        cell, off = cell[order], off[order]
    return cell, off


def poisson_arrivals(rate, length, family, shape, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Arrivals with a Poisson count per cell, placed by the family's normalised gaps.

    Cell ``i`` gets ``N ~ Poisson(rate[i] * length[i])`` arrivals at the first ``N`` partial sums
    of ``N + 1`` gaps from the family (shape ``shape[i]``), scaled so the ``N + 1`` gaps fill the
    cell. The count is exactly Poisson (the contract of
    :func:`~servelab.generator.sampling.sample_requests`, which round-trip fits rely on) and the
    within-cell gaps keep the family's shape; across cells the count does not carry the family's
    burstiness (use :func:`renewal_arrivals` for that). Same return as :func:`renewal_arrivals`.
    """
    rate = np.asarray(rate, dtype=float)
    length = np.broadcast_to(np.asarray(length, dtype=float), rate.shape)
    code = np.broadcast_to(np.asarray(family, dtype=np.int8), rate.shape)
    shape = np.broadcast_to(np.asarray(shape, dtype=float), rate.shape)
    counts = rng.poisson(rate * length)
    n_gaps = counts + 1
    cell_g = np.repeat(np.arange(rate.size), n_gaps)
    gaps = _draw(code[cell_g], shape[cell_g], rng, length_biased=False)
    cum = np.cumsum(gaps)
    ends = np.cumsum(n_gaps) - 1
    base = np.r_[0.0, cum[ends[:-1]]] if rate.size else np.zeros(0)
    local = cum - np.repeat(base, n_gaps)
    keep = np.ones(cum.size, bool)
    keep[ends] = False
    cell = cell_g[keep]
    frac = local[keep] / np.repeat(local[ends], counts)
    off = np.minimum(frac * length[cell], np.nextafter(length[cell], -np.inf))
    return cell.astype(np.int64), off


# --------------------------------------------------------------------------------------------
# request data: PMF sampling, vectorised over groups
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PmfTable:
    """Concatenated PMFs; group ``g`` occupies ``cum`` values in ``(g, g + 1]``."""

    values: np.ndarray
    cum: np.ndarray


def _group_runs(table: _PmfTable, group: np.ndarray):
    """``(start, end, group, lo, hi)`` per run of equal ``group`` values, where ``table.cum[lo:hi]``
    is that group's CDF; None when the runs are too many and short to be worth a loop over runs."""
    n = group.size
    cuts = np.flatnonzero(group[1:] != group[:-1]) + 1
    if cuts.size + 1 > max(64, n // 256):
        return None
    starts = np.r_[0, cuts]
    g_run = group[starts]
    lo = np.searchsorted(table.cum, g_run.astype(float), side="right")
    hi = np.searchsorted(table.cum, g_run.astype(float) + 1.0, side="right")
    return zip(starts.tolist(), np.r_[cuts, n].tolist(), g_run.tolist(), lo.tolist(), hi.tolist())


def sample_runs(table: _PmfTable, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Independent draws from each request's group PMF, fast when groups come in long runs.

    A run of ``m`` requests of one group with ``k`` values and ``m >= k / 4`` gets multinomial
    counts ``(m; p)`` over the values, repeated and randomly permuted: exactly ``m`` independent
    draws from the PMF, in ``O(k + m)`` instead of ``O(m log k)``. Shorter runs, and requests that
    do not come in runs, use inverse-CDF search (:func:`sample_pmf`).
    """
    group = np.asarray(group)
    n = group.size
    if n == 0:
        return np.zeros(0)
    runs = _group_runs(table, group)
    if runs is None:
        return sample_pmf(table, group, rng.random(n))
    out = np.empty(n)
    for s, e, g, a, b in runs:
        m, k = e - s, b - a
        if 4 * m >= k:
            within = table.cum[a:b] - g
            p = np.clip(np.diff(np.r_[0.0, within]), 0.0, None)
            counts = rng.multinomial(m, p / p.sum())
            out[s:e] = rng.permutation(np.repeat(table.values[a:b], counts))
        else:
            local = np.searchsorted(table.cum[a:b], g + rng.random(m), side="right")
            out[s:e] = table.values[a:b][np.minimum(local, k - 1)]
    return out


def _pmf_table(group: np.ndarray, value: np.ndarray, prob: np.ndarray) -> _PmfTable:
    """Build a table from rows sorted by (group, value); groups are 0..G-1, each non-empty."""
    total = np.bincount(group, weights=prob)
    c = np.cumsum(prob)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    before = np.r_[0.0, c[starts[1:] - 1]]
    within = (c - np.repeat(before, np.diff(np.r_[starts, group.size]))) / total[group]
    within[np.r_[starts[1:] - 1, group.size - 1]] = 1.0
    return _PmfTable(values=value.astype(float), cum=group.astype(float) + within)


def sample_pmf(table: _PmfTable, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one value per request from its group's PMF (``u`` uniform [0, 1)).

    When requests come in long runs of the same group (as they do in cell order: one client, one
    data window), each run is searched in its own group's short CDF, which stays in cache; the
    loop runs over runs, never requests. Otherwise one search over the whole table.
    """
    group = np.asarray(group)
    n = group.size
    if n == 0:
        return np.zeros(0)
    runs = _group_runs(table, group)
    if runs is None:
        idx = np.searchsorted(table.cum, group.astype(float) + u, side="right")
        return table.values[np.minimum(idx, table.values.size - 1)]
    out = np.empty(n)
    for s, e, g, a, b in runs:
        local = np.searchsorted(table.cum[a:b], g + u[s:e], side="right")
        out[s:e] = table.values[a:b][np.minimum(local, b - a - 1)]
    return out


def aggregate_pmfs(data: pl.DataFrame, weights: pl.DataFrame, *, by_window: bool) -> pl.DataFrame:
    """Mixture of client PMFs weighted by expected requests.

    Parameters
    ----------
    data : polars.DataFrame
        Long PMFs ``[client_id, window_start, field, value, probability]``.
    weights : polars.DataFrame
        ``[client_id, window_start, weight]``: expected requests of the client in that data window.
    by_window : bool
        One mixture per data window (``window_start`` kept) or one for the whole period.

    Returns
    -------
    polars.DataFrame
        ``[window_start?, field, value, probability]`` with probabilities summing to 1 per group.
    """
    keys = ["window_start", "field"] if by_window else ["field"]
    mixed = (
        data.join(weights, on=["client_id", "window_start"], how="inner")
        .filter(pl.col("weight") > 0)
        .with_columns(
            (pl.col("probability") / pl.col("probability").sum().over(["client_id", "window_start", "field"])
             * pl.col("weight")).alias("mass")
        )
        .group_by([*keys, "value"])
        .agg(pl.col("mass").sum())
    )
    return (
        mixed.with_columns((pl.col("mass") / pl.col("mass").sum().over(keys)).alias("probability"))
        .drop("mass")
        .sort([*keys, "value"])
    )


def _field_sampler(data: pl.DataFrame, field: str, pool_ids: list[str], dstarts: np.ndarray,
                   weights: pl.DataFrame, wmatrix: np.ndarray, *, borrow: bool = True) -> tuple[_PmfTable, np.ndarray]:
    """Table and key -> group map (``key = p * D + d``) for one field, with fallbacks.

    A (client, data window) without its own PMF borrows the client's nearest data window, else
    the rate-weighted aggregate of that window, else the aggregate of the whole period.
    Without ``borrow`` only the client's own windows are used (-1 in the map: no data).
    """
    P, D = len(pool_ids), dstarts.size
    index = pl.DataFrame({"client_id": pool_ids, "p": np.arange(P)})
    sub = (
        data.filter((pl.col("field") == field) & (pl.col("probability") > 0))
        .join(index, on="client_id", how="inner")
    )
    d_idx = np.searchsorted(dstarts, sub["window_start"].to_numpy().astype(float))
    own_key = sub["p"].to_numpy() * D + d_idx
    by_window = aggregate_pmfs(data.filter(pl.col("field") == field), weights, by_window=True)
    overall = aggregate_pmfs(data.filter(pl.col("field") == field), weights, by_window=False)
    # groups: own keys first, then one per aggregated window, then the overall aggregate
    own_keys = np.unique(own_key)
    agg_d = np.searchsorted(dstarts, by_window["window_start"].to_numpy().astype(float))
    agg_ds = np.unique(agg_d)
    group_of_key = np.full(P * D, -1, dtype=np.int64)
    group_of_key[own_keys] = np.arange(own_keys.size)
    g_own = np.searchsorted(own_keys, own_key)
    g_agg = own_keys.size + np.searchsorted(agg_ds, agg_d)
    g_all = own_keys.size + agg_ds.size
    group = np.concatenate([g_own, g_agg, np.full(overall.height, g_all)])
    value = np.concatenate([sub["value"].to_numpy(), by_window["value"].to_numpy(), overall["value"].to_numpy()])
    prob = np.concatenate(
        [sub["probability"].to_numpy(), by_window["probability"].to_numpy(), overall["probability"].to_numpy()]
    )
    if value.size == 0:
        raise GenerationError(f"the pool has no data for field {field!r}")
    order = np.lexsort((value, group))
    table = _pmf_table(group[order], value[order], prob[order])
    # fallbacks for keys with traffic and no PMF of their own
    need = np.flatnonzero((group_of_key < 0) & (wmatrix.reshape(-1) > 0))
    has_own = (group_of_key >= 0).reshape(P, D)
    agg_set = set(agg_ds.tolist())
    for key in need:  # loop over (client, data window) keys, never requests
        p, d = divmod(int(key), D)
        own = np.flatnonzero(has_own[p])
        if own.size:
            group_of_key[key] = group_of_key[p * D + own[np.argmin(np.abs(own - d))]]
        elif not borrow:
            continue
        elif d in agg_set:
            group_of_key[key] = own_keys.size + int(np.searchsorted(agg_ds, d))
        elif overall.height:
            group_of_key[key] = g_all
    return table, group_of_key


# --------------------------------------------------------------------------------------------
# conversations
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Conversations:
    """Per pool client: does it converse, its mean turns, and its turns / ITT PMFs."""

    has: np.ndarray  # (P,) bool
    mean_turns: np.ndarray  # (P,)
    turns: _PmfTable  # groups = t_map[p]
    itt: _PmfTable  # groups = i_map[p]
    t_map: np.ndarray  # pool index -> turns group (-1: none)
    i_map: np.ndarray  # pool index -> ITT group (-1: none)
    max_itt: float
    max_turns: int


def _conversation_pmfs(pool) -> pl.DataFrame | None:
    """``[client_id, quantity, value, probability]`` with ``quantity`` in (turns, itt_s), or None.

    From ``pool.conversation_pmfs`` when present. A turns PMF without mass at 1 describes
    multi-turn conversations only; with the client's ``multi_turn_share`` (share of requests in
    conversations of >= 2 turns, from ``pool.conversations``) single-turn conversations are added
    back: ``P(1) = (1 - s) / ((1 - s) + s / m)`` with ``m`` the multi-turn mean. Clients with a
    summary row but no PMFs get geometric turns with the row's ``turns_mean`` and exponential ITTs
    with its ``itt_mean_s``, binned at 1 s (a 99.9 % quantile cap).
    """
    pmfs = _frame(getattr(pool, "conversation_pmfs", None))
    summary = _frame(getattr(pool, "conversations", None))
    parts = []
    if pmfs is not None and pmfs.height and "quantity" in pmfs.columns:
        parts.append(pmfs.select("client_id", "quantity", pl.col("value").cast(pl.Float64),
                                 pl.col("probability").cast(pl.Float64)))
    if summary is not None and summary.height and {"turns_mean", "itt_mean_s"} <= set(summary.columns):
        have = set(parts[0]["client_id"].unique().to_list()) if parts else set()
        rows = summary.filter(~pl.col("client_id").is_in(list(have)) & (pl.col("turns_mean") > 1)
                              & (pl.col("itt_mean_s") > 0))
        for cid, tm, im in rows.select("client_id", "turns_mean", "itt_mean_s").iter_rows():  # per client
            q = 1.0 / tm
            k = np.arange(1, int(np.ceil(np.log(1e-3) / np.log1p(-q))) + 2 if q < 1 else 2)
            pk = q * (1 - q) ** (k - 1)
            x = np.arange(0.5, -np.log(1e-3) * im + 1.0)
            px = np.exp(-(x - 0.5) / im) - np.exp(-(x + 0.5) / im)
            parts.append(pl.DataFrame({
                "client_id": [cid] * (k.size + x.size), "quantity": ["turns"] * k.size + ["itt_s"] * x.size,
                "value": np.r_[k.astype(float), x], "probability": np.r_[pk, px]}))
    if not parts:
        return None
    out = pl.concat(parts).filter(pl.col("probability") > 0)
    if summary is not None and summary.height and "multi_turn_share" in summary.columns:
        turns = out.filter(pl.col("quantity") == "turns")
        multi_only = (turns.group_by("client_id").agg(pl.col("value").min().alias("vmin"),
                                                     ((pl.col("value") * pl.col("probability")).sum()
                                                      / pl.col("probability").sum()).alias("m"))
                      .filter(pl.col("vmin") >= 2)
                      .join(summary.select("client_id", "multi_turn_share"), on="client_id", how="inner")
                      .filter(pl.col("multi_turn_share").is_between(0, 1, closed="left")))
        if multi_only.height:
            s_, m_ = pl.col("multi_turn_share"), pl.col("m")
            single = multi_only.select(
                "client_id", pl.lit("turns").alias("quantity"), pl.lit(1.0).alias("value"),
                ((1 - s_) / ((1 - s_) + s_ / m_)).alias("p1"))
            scaled = (turns.join(multi_only, on="client_id", how="inner")
                      .with_columns((pl.col("probability") / pl.col("probability").sum().over("client_id")
                                     * (s_ / m_) / ((1 - s_) + s_ / m_)).alias("probability"))
                      .select("client_id", "quantity", "value", "probability"))
            rest = out.filter(~((pl.col("quantity") == "turns") & pl.col("client_id").is_in(multi_only["client_id"].to_list())))
            out = pl.concat([rest, scaled, single.rename({"p1": "probability"})])
    return out


def _conversation_model(pool, pool_ids: list[str]) -> _Conversations | None:
    """Per pool client turns and ITT PMF tables (see :func:`_conversation_pmfs`), or None.

    A client without conversation parameters is single-turn; rows with a null ``client_id``
    apply to every client without rows of its own.
    """
    conv = _conversation_pmfs(pool)
    if conv is None or conv.height == 0:
        return None
    P = len(pool_ids)
    index = pl.DataFrame({"client_id": pool_ids, "p": np.arange(P)})
    parts = {}
    for field in ("turns", "itt_s"):
        rows = conv.filter((pl.col("quantity") == field) & (pl.col("probability") > 0))
        own = rows.filter(pl.col("client_id").is_not_null()).join(index, on="client_id", how="inner")
        own = own.select("p", "value", "probability")
        shared = rows.filter(pl.col("client_id").is_null())
        if shared.height:
            missing = np.setdiff1d(np.arange(P), own["p"].unique().to_numpy())
            fill = pl.DataFrame({"p": missing}).join(shared.select("value", "probability"), how="cross")
            own = pl.concat([own, fill.select("p", "value", "probability")])
        if own.height == 0:
            return None
        parts[field] = own.sort(["p", "value"])
    turns, itt = parts["turns"], parts["itt_s"]
    tp, ip = turns["p"].to_numpy(), itt["p"].to_numpy()
    t_present, i_present = np.unique(tp), np.unique(ip)
    has = np.zeros(P, bool)
    has[np.intersect1d(t_present, i_present)] = True
    tv, tw = turns["value"].to_numpy(), turns["probability"].to_numpy()
    mean_turns = np.ones(P)
    mean_turns[t_present] = (np.bincount(tp, weights=tv * tw, minlength=P)[t_present]
                             / np.bincount(tp, weights=tw, minlength=P)[t_present])
    t_map = np.full(P, -1)
    t_map[t_present] = np.arange(t_present.size)
    i_map = np.full(P, -1)
    i_map[i_present] = np.arange(i_present.size)
    return _Conversations(
        has=has,
        mean_turns=np.where(has, np.maximum(mean_turns, 1.0), 1.0),
        turns=_pmf_table(t_map[tp], tv, tw),
        itt=_pmf_table(i_map[ip], itt["value"].to_numpy(), itt["probability"].to_numpy()),
        t_map=t_map,
        i_map=i_map,
        max_itt=float(itt["value"].max()),
        max_turns=int(turns["value"].max()),
    )


# --------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------
def _segments(lo: float, hi: float, grid: _Grid, schedule: RateSchedule, max_segment_s: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cuts = [np.array([lo, hi]), grid.window_start, grid.window_start + grid.window_len]
    if schedule.kind == "table":
        cuts.append(lo + np.asarray(schedule.times))
        n = math.ceil((hi - lo) / max_segment_s)
        cuts.append(lo + np.arange(n + 1) * max_segment_s)
    b = np.unique(np.concatenate(cuts))
    b = b[(b >= lo) & (b <= hi)]
    a, e = b[:-1], b[1:]
    w = np.searchsorted(grid.window_start, a, side="right") - 1
    covered = (w >= 0) & (a < grid.window_start[np.maximum(w, 0)] + grid.window_len[np.maximum(w, 0)])
    return a, e, np.where(covered, w, -1)


def generate(pool, rate, duration: float, *, start: float | None = None, clients: int | None = None,
             seed: int, conversations: bool = True, max_segment_s: float = 60.0, counts: str = "renewal",
             missing_data: str = "borrow", context: str = "sorted") -> pl.DataFrame:
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
        burstiness (:func:`renewal_arrivals`); ``poisson``: Poisson counts per client-segment with
        gaps normalised inside it (:func:`poisson_arrivals`; the reference sampler's contract).
    missing_data : {"borrow", "null"}
        A (client, data window) without a PMF borrows the client's nearest data window, else the
        rate-weighted aggregate (``borrow``), or, with ``null``, its nearest window else nulls.
    context : {"sorted", "additive"}
        How a follow-up's input holds its history ``h`` (previous turn's input + output).
        ``sorted`` (default; keeps the pool's input marginal, right for pools fitted from real
        traces whose input PMFs include histories): a conversation's draws go to its turns in
        ascending order, follow-up input ``max(draw, h)``. ``additive`` (PMFs of fresh
        prompts): ``h`` + the draw.

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
        For a bad rate, duration, start, clients or seed.
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
    schedule = resolve_rate(rate)
    span_lo, span_hi = pool_span(pool)
    lo = span_lo if start is None else float(start)
    hi = lo + float(duration)
    eps = 1e-6 * max(1.0, abs(span_hi))
    if lo < span_lo - eps or hi > span_hi + eps:
        raise GenerationError(
            f"start={lo:g} s and duration={float(duration):g} s give [{lo:g}, {hi:g}] s, outside the pool's span "
            f"[{span_lo:g}, {span_hi:g}] s"
        )
    rng = np.random.default_rng(int(seed))
    grid = _grid(pool, lo, hi)
    seg_a, seg_b, seg_w = _segments(lo, hi, grid, schedule, max_segment_s)
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

    conv = _conversation_model(pool, grid.pool_ids) if conversations else None
    use_conv = conv is not None and bool(np.any(conv.has[sel]))
    mean_turns = conv.mean_turns[sel] if use_conv else np.ones(n_syn)

    # cells: (synthetic client, segment) with a positive rate
    r_ns = rate_ps[sel] * factor[None, :]
    cn, cs = np.nonzero(r_ns > 0)
    c_rate = r_ns[cn, cs] / mean_turns[cn]
    c_a = seg_a[cs]
    c_len = seg_len[cs]
    w_c = seg_w[cs]
    c_code = grid.family[sel[cn], w_c]
    c_shape = grid.shape[sel[cn], w_c]
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
            c_code = np.r_[c_code, c_code[wm]]
            c_shape = np.r_[c_shape, c_shape[wm]]
    sampler = renewal_arrivals if counts == "renewal" else poisson_arrivals
    cell, off = sampler(c_rate, c_len, c_code, c_shape, rng)
    t = c_a[cell] + off
    client = cn[cell]

    turn = conv_id = None
    if use_conv:
        t, client, conv_id, turn = _expand_conversations(t, client, sel, conv, rng)
    inside = (t >= lo) & (t < hi)

    frame = _request_data(pool, grid, sel, client, t, seg_a, seg_b, rate_ps, lo, hi, rng,
                          borrow=missing_data == "borrow")
    if use_conv:
        frame = _accumulate_context(frame, turn, context=context)
    # crop, sort, label
    order = np.flatnonzero(inside)
    order = order[np.argsort(t[order], kind="stable")]
    ids = pl.Series("client_id", syn_ids, dtype=pl.String)
    columns = [pl.Series("timestamp", t[order] - lo), ids.gather(client[order])]
    columns += [frame[c].gather(order) for c in frame.columns]
    if use_conv:
        columns += _link_columns(conv_id, turn, order)
    return pl.DataFrame(columns)


def _expand_conversations(t, client, sel, conv: _Conversations, rng):
    """Turn conversation starts into requests: turns and ITTs drawn per conversation."""
    n = t.size
    has = conv.has[sel[client]]
    k = np.ones(n, dtype=np.int64)
    hs = np.flatnonzero(has)
    if hs.size:
        g = conv.t_map[sel[client[hs]]]
        k[hs] = np.maximum(np.rint(sample_pmf(conv.turns, g, rng.random(hs.size))), 1).astype(np.int64)
    conv_id = np.repeat(np.arange(n, dtype=np.int64), k)
    first = np.r_[0, np.cumsum(k)[:-1]]
    turn = np.arange(conv_id.size) - np.repeat(first, k) + 1
    follow = turn > 1
    cl = np.repeat(client, k)
    gaps = np.zeros(conv_id.size)
    if np.any(follow):
        gi = conv.i_map[sel[cl[follow]]]
        gaps[follow] = sample_pmf(conv.itt, gi, rng.random(int(follow.sum())))
    c = np.cumsum(gaps)
    c -= np.repeat(c[first], k)
    times = np.repeat(t, k) + c
    return times, cl, conv_id, turn


def _accumulate_context(frame: pl.DataFrame, turn: np.ndarray, *, context: str) -> pl.DataFrame:
    """A follow-up's input holds its history ``h`` (the previous turn's input + output).

    Rows are grouped by conversation in turn order (see :func:`_expand_conversations`), so a
    follow-up's parent is the row before it; turns are processed level by level (a loop over turn
    numbers, never requests).

    ``sorted``: the conversation's independent draws are assigned to its turns in ascending order
    and each follow-up's input is ``max(draw, h)``: the multiset of inputs, hence the marginal the
    pool records (which, fitted from a real trace, already includes histories), is kept except
    where a draw falls below its history. ``additive``: input = ``h`` + the row's own draw (for
    PMFs of fresh prompts).
    """
    if "input_tokens" not in frame.columns:
        return frame
    inp = frame["input_tokens"].fill_null(0).to_numpy().astype(np.int64)
    out = (frame["output_tokens"].fill_null(0).to_numpy().astype(np.int64) if "output_tokens" in frame.columns
           else np.zeros_like(inp))
    follow = np.flatnonzero(turn > 1)
    if follow.size == 0:
        return frame
    if context == "sorted":
        conv = np.cumsum(turn == 1)  # conversation blocks are contiguous, turn 1 first
        inp = inp[np.lexsort((inp, conv))]
    follow = follow[np.argsort(turn[follow], kind="stable")]
    levels = np.r_[0, np.flatnonzero(np.diff(turn[follow])) + 1, follow.size]
    for a, b in itertools.pairwise(levels):  # one pass per turn number
        rows = follow[a:b]
        h = inp[rows - 1] + out[rows - 1]
        inp[rows] = np.maximum(inp[rows], h) if context == "sorted" else h + inp[rows]
    return frame.with_columns(pl.Series("input_tokens", inp, dtype=pl.Int64))


def _link_columns(conv_id: np.ndarray, turn: np.ndarray, order: np.ndarray) -> list[pl.Series]:
    """``conversation_id``, ``parent_id`` (the parent's row in the output, null if cropped), ``turn``.

    Before cropping, rows are grouped by conversation in turn order, so a follow-up's parent is
    the row just before it; ``order`` lists the kept rows in output order.
    """
    m = conv_id.size
    pos = np.full(m, -1, dtype=np.int64)
    pos[order] = np.arange(order.size)
    prev = np.r_[-1, pos[:-1]]
    parent = np.where(turn > 1, prev, -1)[order]
    parent_s = pl.Series("parent_id", parent, dtype=pl.Int64)
    parent_s = pl.select(pl.when(parent_s >= 0).then(parent_s).otherwise(None).cast(pl.String)).to_series()
    return [
        pl.Series("conversation_id", conv_id[order], dtype=pl.Int64).cast(pl.String),
        parent_s.alias("parent_id"),
        pl.Series("turn", turn[order], dtype=pl.Int64),
    ]


def _nearest_borrow(pool, data: pl.DataFrame, need: pl.DataFrame) -> pl.DataFrame:
    """Rows of each needing client's nearest non-empty data window (whole pool), relabelled.

    ``need`` is ``[client_id, window_start]``; the result has the PMF rows of the nearest window
    of that client with ``window_start`` set to the needed one.
    """
    lazy = pool.lazy("data") if hasattr(pool, "lazy") else _frame(pool.data).lazy()
    ids = need["client_id"].unique().to_list()
    have = lazy.filter(pl.col("client_id").is_in(ids)).select("client_id", "window_start").unique().collect()
    if have.height == 0:
        return data.clear()
    pick = (need.join(have.rename({"window_start": "src"}), on="client_id", how="inner")
            .with_columns((pl.col("src") - pl.col("window_start")).abs().alias("dist"))
            .sort("client_id", "window_start", "dist", "src")
            .group_by("client_id", "window_start", maintain_order=True).first()
            .select("client_id", "window_start", "src"))
    rows = (lazy.filter(pl.col("client_id").is_in(pick["client_id"].unique().to_list())).collect()
            .with_columns(pl.col("window_start").cast(pl.Float64))
            .join(pick.rename({"window_start": "target"}), left_on=["client_id", "window_start"],
                  right_on=["client_id", "src"], how="inner"))
    return rows.with_columns(pl.col("target").alias("window_start")).select(data.columns)


def _request_data(pool, grid: _Grid, sel, client, t, seg_a, seg_b, rate_ps, lo, hi, rng, *,
                  borrow: bool) -> pl.DataFrame:
    """Draw every data field of the pool for every request (one uniform per field and request).

    Data windows form a regular grid of ``pool.data_window_s`` anchored at the pool's first data
    window. A client with traffic but no PMF in a data window borrows its nearest non-empty
    window (anywhere in the pool); with ``borrow``, a client with no data at all gets the
    rate-weighted aggregate of the window, otherwise nulls.
    """
    lazy = pool.lazy("data") if hasattr(pool, "lazy") else (_frame(pool.data).lazy() if pool.data is not None else None)
    if lazy is None:
        return pl.DataFrame()
    bounds = lazy.select(pl.col("window_start").min().alias("a"), pl.col("window_s").max().alias("w")).collect()
    anchor = bounds["a"][0]
    if anchor is None:
        return pl.DataFrame()
    dw = float(getattr(pool, "data_window_s", None) or bounds["w"][0])
    k0 = math.floor((lo - anchor) / dw)
    k1 = math.floor((np.nextafter(hi, -np.inf) - anchor) / dw)
    dstarts = anchor + np.arange(k0, k1 + 1) * dw
    data = (lazy.filter((pl.col("window_start") >= dstarts[0] - 1e-6) & (pl.col("window_start") <= dstarts[-1] + 1e-6)
                        & (pl.col("probability") > 0))
            .with_columns(pl.col("window_start").cast(pl.Float64)).collect())
    P, D = len(grid.pool_ids), dstarts.size
    # expected requests of each pool client in each data window over the period (aggregate weights)
    seg_d = np.clip(np.floor((seg_a - anchor) / dw).astype(np.int64) - k0, 0, D - 1)
    wmatrix = np.zeros((P, D))
    for d in range(D):  # loop over data windows (a handful), not requests
        wmatrix[:, d] = (rate_ps[:, seg_d == d] * (seg_b - seg_a)[seg_d == d]).sum(axis=1)
    # snap window starts to the grid, then borrow the nearest window for empty (client, window)s
    data = data.with_columns(pl.Series("window_start", dstarts[np.clip(np.rint(
        (data["window_start"].to_numpy() - anchor) / dw).astype(np.int64) - k0, 0, D - 1)]))
    present = data.select("client_id", "window_start").unique()
    pi, di = np.nonzero(wmatrix > 0)
    active = pl.DataFrame({"client_id": pl.Series([grid.pool_ids[i] for i in pi], dtype=pl.String),
                           "window_start": dstarts[di], "weight": wmatrix[pi, di]})
    need = active.join(present, on=["client_id", "window_start"], how="anti").select("client_id", "window_start")
    if need.height:
        data = pl.concat([data, _nearest_borrow(pool, data, need)])
    if data.height == 0:
        return pl.DataFrame()
    p_req = sel[client]
    d_req = np.clip(np.floor((t - anchor) / dw).astype(np.int64) - k0, 0, D - 1)
    key = p_req * D + d_req
    fields = [f for f in DATA_FIELDS if f in set(data["field"].unique().to_list())]
    cols: dict[str, np.ndarray] = {}
    for field in fields:
        table, group_of_key = _field_sampler(data, field, grid.pool_ids, dstarts, active, wmatrix, borrow=borrow)
        g = group_of_key[key]
        if g.min(initial=0) >= 0:  # every request has data: no masking pass
            cols[field] = sample_runs(table, g, rng)
            continue
        draw = np.full(t.size, np.nan)
        ok = g >= 0
        draw[ok] = sample_runs(table, g[ok], rng)
        cols[field] = draw
    return _canonical_fields(cols)


def _canonical_fields(cols: dict[str, np.ndarray]) -> pl.DataFrame:
    """Sampled fields -> canonical integer columns (null where a draw is NaN: no data).

    ``reason_tokens = round(reason_ratio * output_tokens)``; ServeGen's multimodal ``<m>_tokens``
    are tokens per item, so a request's ``<m>_tokens = round(per-item) * <m>_count``; without an
    ``input_tokens`` field, ``input_tokens = text_tokens + sum of modality tokens``.
    """
    out: dict[str, np.ndarray] = {}
    n = next(iter(cols.values())).size
    for m in _MODALITIES:
        tok, cnt = cols.get(f"{m}_tokens"), cols.get(f"{m}_count")
        if cnt is not None:
            out[f"{m}_count"] = np.rint(cnt)
        if tok is not None:
            out[f"{m}_tokens"] = np.rint(tok) * (out[f"{m}_count"] if cnt is not None else 1.0)
    for f in ("text_tokens", "input_tokens", "output_tokens", "reason_tokens"):
        if f in cols:
            out[f] = np.rint(cols[f])
    if "input_tokens" not in out and "text_tokens" in out:
        out["input_tokens"] = out["text_tokens"] + sum(
            np.nan_to_num(out[f"{m}_tokens"]) for m in _MODALITIES if f"{m}_tokens" in out)
    if "reason_tokens" not in out and "reason_ratio" in cols and "output_tokens" in out:
        out["reason_tokens"] = np.rint(np.clip(cols["reason_ratio"], 0, 1) * out["output_tokens"])
    order = [c for c in ("input_tokens", "output_tokens", "reason_tokens", "text_tokens", "image_tokens",
                         "audio_tokens", "video_tokens", "image_count", "audio_count", "video_count") if c in out]
    series = []
    for c in order:
        v = out[c]
        if np.isnan(v).any():
            series.append(pl.Series(c, v).fill_nan(None).cast(pl.Int64))
        else:
            series.append(pl.Series(c, v.astype(np.int64)))
    del n
    return pl.DataFrame(series)

r"""The arrival half of pool fitting: per client and window, the rate, the gap CV and a fitted family.

Per client and arrival window ``[k W, (k + 1) W)``:

- ``rate`` = requests / the window's exposure, the part of it inside the trace's covered span
  (``[first, last]`` request, widened to a stated span): the project's one definition,
  :mod:`servelab.analysis.window_rates`, so the last window of a 58-minute trace is not diluted
  over 60 minutes. (A window whose exposure is 0, e.g. one starting exactly at the last request,
  falls back to the full window length.)
- the *logging clock*: when the trace's timestamps sit on a grid (the store manifest's ``clock_s``,
  else :func:`~servelab.fitting.ties.detect_resolution` on its gaps), each arrival time is moved
  uniformly within its clock step (seeded; the jitter of :func:`servelab.fitting.ties.prepare_sample`),
  so that gaps below the step are treated as censored, never as exact zeros and never dropped. A
  Poisson process floored to a 3-s clock then gets CV ~ 1 again, not ~ 3;
- ``cv`` = population std / mean of the window's gaps (both requests in the window), null with
  fewer than 2 gaps;
- the arrival family with the lowest AIC among the settings' ``families``, with its parameters
  under their own names, for windows with at least ``min_fit_gaps`` gaps (every family's
  :meth:`~servelab.fitting.families.ArrivalFamily.fit_segments`: one call for all client-windows).
  Fitted on the same (jittered) gaps as ``cv``, a window's family parameters and its CV agree
  within sampling error. Above ``max_fit_gaps`` gaps a systematic subsample (every k-th gap) is
  fitted.

No Python loop runs over requests, gaps or windows; loops run over families. This module reads
arrays it is given; it reads no store and writes nothing.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import polars as pl

from servelab.analysis.aggregates import TraceGaps
from servelab.analysis.clock import clock_from_gaps
from servelab.analysis.window_rates import covered_span, exposure, window_cv, window_index
from servelab.fitting.families import arrival_family_names, arrival_param_columns, get_arrival_family
from servelab.fitting.pool_settings import POOL_FIT_FAMILIES, PoolFitSettings
from servelab.fitting.ties import detect_resolution

__all__ = ["WindowFamilies", "ArrivalWindows", "fit_arrival_windows", "family_cv", "arrival_windows",
           "arrival_windows_from_aggregates", "clock_from_trace_gaps", "param_columns"]


def param_columns() -> tuple[str, ...]:
    """The pool's per-window parameter columns: every arrival family's shapes, then ``scale``."""
    return arrival_param_columns()


@dataclass(frozen=True)
class WindowFamilies:
    """The best family per segment of gaps (see :func:`fit_arrival_windows`).

    Parameters
    ----------
    family : numpy.ndarray of object
        Registry name per segment, or None (too few gaps, or no family converged).
    params : Mapping[str, numpy.ndarray]
        One array per parameter name of the compared families; NaN where the segment's family
        does not have that parameter.
    n_fit : numpy.ndarray of int64
        Gaps fitted per segment (after subsampling).
    log_likelihood : numpy.ndarray
        Of the chosen family (NaN without one).
    """

    family: np.ndarray
    params: Mapping[str, np.ndarray]
    n_fit: np.ndarray
    log_likelihood: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


def _systematic_keep(seg: np.ndarray, n_seg: int, cap: int) -> np.ndarray:
    """Mask keeping at most ``cap`` elements per segment, spread evenly (every k-th)."""
    counts = np.bincount(seg, minlength=n_seg)
    if counts.size == 0 or counts.max() <= cap:
        return np.ones(seg.size, bool)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(seg.size) - starts[seg]
    n = counts[seg]
    big = n > cap
    return ~big | ((pos * cap) // np.maximum(n, 1) != ((pos - 1) * cap) // np.maximum(n, 1)) | (pos == 0)


def fit_arrival_windows(gaps: np.ndarray, seg: np.ndarray, n_seg: int, *,
                        families: Sequence[str] = POOL_FIT_FAMILIES, min_fit_gaps: int = 10,
                        max_fit_gaps: int = 5000) -> WindowFamilies:
    """Best arrival family by AIC per segment of gaps (``seg`` sorted, ``0 .. n_seg - 1``).

    Parameters
    ----------
    gaps : numpy.ndarray
        Gaps > 0 (handle a logging clock first, see :func:`arrival_windows`).
    seg, n_seg
        The segment of each gap and the number of segments.
    families : sequence of str
        Registered arrival families compared; ties go to the earlier one.
    min_fit_gaps, max_fit_gaps : int
        Fewest gaps for a fit; most gaps fitted (a systematic subsample above).

    Raises
    ------
    ValueError
        If ``families`` names no arrival family, or a gap is <= 0.
    """
    known = arrival_family_names()
    families = tuple(families)
    if not families or any(f not in known for f in families):
        raise ValueError(f"families must be a non-empty subset of the arrival families {known}; got {families!r}")
    gaps = np.asarray(gaps, dtype=float)
    seg = np.asarray(seg, dtype=np.int64)
    if gaps.size and not gaps.min() > 0:
        raise ValueError(f"gaps must be > 0; got {int(np.sum(~(gaps > 0)))} gaps <= 0 (jitter a logging clock's ties "
                         "within its step first: servelab.fitting.ties)")
    keep = _systematic_keep(seg, n_seg, max_fit_gaps)
    x, s = gaps[keep], seg[keep]
    n_fit = np.bincount(s, minlength=n_seg).astype(np.int64)
    enough = n_fit >= max(min_fit_gaps, 2)
    if not enough.all():  # segments too small for a fit are not fitted at all
        x, s = x[enough[s]], s[enough[s]]
    names = tuple(dict.fromkeys(p for f in families for p in get_arrival_family(f).param_names))
    best_aic = np.full(n_seg, np.inf)
    family = np.full(n_seg, None, dtype=object)
    params = {p: np.full(n_seg, np.nan) for p in names}
    loglik = np.full(n_seg, np.nan)
    for name in families:  # a loop over families; each fits every segment at once
        fits = get_arrival_family(name).fit_segments(x, s, n_seg, min_n=max(min_fit_gaps, 2))
        aic = fits.aic
        better = np.isfinite(aic) & (aic < best_aic)
        best_aic = np.where(better, aic, best_aic)
        family[better] = name
        for p in names:
            params[p] = np.where(better, fits.params.get(p, np.nan), params[p])
        loglik = np.where(better, fits.log_likelihood, loglik)
    return WindowFamilies(family=family, params=params, n_fit=n_fit, log_likelihood=loglik)


def family_cv(family, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """CV implied by each row's family and parameters (NaN without a family).

    Parameters
    ----------
    family : array-like of str or None
        Registry names per row.
    params : Mapping[str, array-like]
        Parameter arrays by name (rows of other families may hold NaN).
    """
    family = np.asarray(family, dtype=object)
    out = np.full(family.size, np.nan)
    for name in set(family[family != None].tolist()):  # noqa: E711 - element-wise on an object array
        fam = get_arrival_family(name)
        rows = family == name
        shapes = {p: np.asarray(params[p], dtype=float)[rows] for p in fam.shape_names}
        out[rows] = np.broadcast_to(fam.cv(shapes), int(rows.sum()))
    return out


@dataclass(frozen=True)
class ArrivalWindows:
    """The arrival table of a pool and how it was made (see :func:`arrival_windows`)."""

    table: pl.DataFrame
    first_window: int
    last_window: int
    covered_s: tuple[float, float]
    clock_s: float | None
    clock_source: str
    n_zero_gaps: int


def _clock(settings: PoolFitSettings, manifest: Mapping, t_sorted: np.ndarray) -> tuple[float | None, str, int]:
    """(step or None, where it came from, zero gaps of the whole trace)."""
    gaps = np.diff(t_sorted)
    n_zero = int(np.sum(gaps == 0))
    if settings.clock == "none":
        return None, "none (clock='none')", n_zero
    if not isinstance(settings.clock, str):
        return float(settings.clock), "given (clock setting)", n_zero
    recorded = manifest.get("clock_s") if manifest else None
    if recorded:
        return float(recorded), "store manifest clock_s", n_zero
    step = detect_resolution(gaps).step if gaps.size else None
    if step is not None:
        return step, "detected (servelab.fitting.ties.detect_resolution)", n_zero
    if n_zero:
        positive = gaps[gaps > 0]
        if positive.size:
            return float(positive.min()), "no clock detected; ties spread within the smallest positive gap", n_zero
    return None, "none detected", n_zero


def _jitter(t: np.ndarray, client: np.ndarray, step: float, seed: int) -> np.ndarray:
    """Each time moved uniformly within ``[t, t + step)``, kept sorted within each client.

    ``t`` is sorted within each client (clients contiguous). Requests of one client at one clock
    tick are exchangeable, so each tick's run takes its uniforms sorted (a float sort of
    ``run id + U``), which keeps the order without a lexsort.
    """
    rng = np.random.default_rng(seed)
    u = rng.random(t.size)
    tie = np.zeros(t.size, bool)  # same client and tick as the request before
    tie[1:] = (client[1:] == client[:-1]) & (t[1:] == t[:-1])
    tied = np.flatnonzero(tie | np.r_[tie[1:], False])  # requests in runs of 2 or more
    if tied.size:
        run = np.cumsum(~tie)[tied].astype(float)
        u[tied] = np.clip(np.sort(run + u[tied]) - run, 0.0, np.nextafter(1.0, 0.0))
    out = t + u * step
    same = client[1:] == client[:-1]
    if np.any(np.diff(out)[same] < 0):  # timestamps only approximately on the grid: sort properly
        out = out[np.lexsort((out, client))]
    return out


def _cell_table(cidx: np.ndarray, w: np.ndarray, n_req: np.ndarray, cv: np.ndarray, fam: WindowFamilies,
                window_s: float, covered: tuple[float, float]) -> pl.DataFrame:
    """The sparse arrivals rows of the active cells ``(cidx, w)`` (sorted by client, window)."""
    starts = w.astype(np.float64) * window_s
    exp_w = exposure(starts, window_s, covered)
    exp_w = np.where(exp_w > 0, exp_w, window_s)
    # estimates are stored at float32 precision (relative 6e-8, far below their sampling error) so
    # that the pool compresses well; rates stay exact
    def f32(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float).astype(np.float32).astype(np.float64)

    columns = {
        "cidx": cidx.astype(np.int64),
        "window_start": starts,
        "window_s": np.full(cidx.size, float(window_s)),
        "rate": n_req / exp_w,
        "cv": f32(cv),
        "family": pl.Series(fam.family.tolist(), dtype=pl.String),
    }
    for p in param_columns():
        columns[p] = f32(fam.params[p]) if p in fam.params else np.full(cidx.size, np.nan)
    return pl.DataFrame(columns).with_columns(pl.col(pl.Float64).fill_nan(None))


def _window_range(w: np.ndarray, covered: tuple[float, float], window_s: float) -> tuple[int, int]:
    w0 = min(int(w.min()), math.floor(covered[0] / window_s))
    w1 = max(int(w.max()), math.ceil(covered[1] / window_s) - 1)
    return w0, w1


def arrival_windows(t: np.ndarray, client: np.ndarray, n_clients: int, settings: PoolFitSettings, *,
                    manifest: Mapping | None = None) -> ArrivalWindows:
    """Per active (client, window) rate, CV and family parameters, as the pool's ``arrivals`` rows.

    The in-memory reference of :func:`arrival_windows_from_aggregates` (which
    :func:`~servelab.fitting.pool_fit.fit_pool` uses on a store): same rows, the clock jitter
    drawn with numpy's generator instead of hashed in SQL, a systematic subsample of gaps above
    ``max_fit_gaps`` instead of a hashed one.

    Parameters
    ----------
    t : numpy.ndarray
        Request times in arrival order.
    client : numpy.ndarray of int
        Client index ``0 .. n_clients - 1`` of each request (the pool's client order).
    n_clients : int
    settings : PoolFitSettings
    manifest : Mapping, optional
        The store manifest (its ``clock_s`` is used when recorded).

    Returns
    -------
    ArrivalWindows
        ``table`` has one row per *active* (client, window), i.e. with at least one request
        (idle windows are implicit, rate 0): ``window_start, window_s, rate, cv, family`` and the
        parameter columns (:func:`param_columns`), plus ``cidx`` (client index), sorted by client
        and window. ``cv`` is null with fewer than 2 gaps.
    """
    window_s = settings.window_s
    step, source, n_zero = _clock(settings, manifest or {}, t)
    covered = covered_span(float(t.min()), float(t.max()), settings.span)
    perm = np.argsort(client, kind="stable")
    ts, cs = t[perm], client[perm]
    w = window_index(ts, window_s)
    w0, w1 = _window_range(w, covered, window_s)
    n_w = w1 - w0 + 1
    key = cs * n_w + (w - w0)
    brk = np.flatnonzero(key[1:] != key[:-1]) + 1
    seg_start = np.concatenate([[0], brk])
    seg_key = key[seg_start]
    n_req = np.diff(np.concatenate([seg_start, [key.size]]))
    n_seg = seg_start.size
    seg_of = np.repeat(np.arange(n_seg), n_req)
    tj = _jitter(ts, cs, step, settings.seed) if step is not None else ts
    same = np.zeros(ts.size, bool)
    same[1:] = key[1:] == key[:-1]
    g = (tj[1:] - tj[:-1])[same[1:]]
    gs = seg_of[same]
    ng = np.bincount(gs, minlength=n_seg).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mg = np.bincount(gs, weights=g, minlength=n_seg) / ng
        vg = np.bincount(gs, weights=(g - mg[gs]) ** 2, minlength=n_seg) / ng
    cv = window_cv(ng, mg, np.sqrt(vg))
    positive = g > 0  # without a clock, exact duplicates (if any) cannot be fitted by a density
    fam = fit_arrival_windows(g[positive], gs[positive], n_seg, families=settings.families,
                              min_fit_gaps=settings.min_fit_gaps, max_fit_gaps=settings.max_fit_gaps)
    table = _cell_table(seg_key // n_w, seg_key % n_w + w0, n_req.astype(float), cv, fam, window_s, covered)
    n_zero_gaps = int(np.sum(np.diff(ts)[same[1:]] == 0))
    return ArrivalWindows(table=table, first_window=w0, last_window=w1, covered_s=covered, clock_s=step,
                          clock_source=source, n_zero_gaps=n_zero_gaps)


def clock_from_trace_gaps(settings: PoolFitSettings, manifest: Mapping, gaps: TraceGaps) -> tuple[float | None, str]:
    """(step or None, where it came from) from the aggregated trace gaps
    (:func:`~servelab.analysis.aggregates.trace_gaps`).

    Same rule as the in-memory path: the ``clock`` setting, the manifest's ``clock_s``, a clock
    detected on the gaps (all of them when the trace has at most ``len(gaps.head)`` gaps, else
    the first ones in time order with the whole trace's totals), else the smallest positive gap
    when there are exact ties.
    """
    if settings.clock == "none":
        return None, "none (clock='none')"
    if not isinstance(settings.clock, str):
        return float(settings.clock), "given (clock setting)"
    recorded = manifest.get("clock_s") if manifest else None
    if recorded:
        return float(recorded), "store manifest clock_s"
    step = None
    if gaps.n_gaps and gaps.head.size >= gaps.n_gaps:
        step = detect_resolution(gaps.head).step
    elif gaps.n_gaps:
        head = gaps.head
        # the head's positive gaps as a sample of the trace's, with the whole trace's totals
        step = clock_from_gaps(head[head > 0], n_gaps=gaps.n_gaps, n_zero=gaps.n_zero).step_s
    if step is not None:
        return step, "detected (servelab.fitting.ties.detect_resolution)"
    if gaps.n_zero and gaps.min_positive is not None:
        return gaps.min_positive, "no clock detected; ties spread within the smallest positive gap"
    return None, "none detected"


def arrival_windows_from_aggregates(cells: pl.DataFrame, samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                                    settings: PoolFitSettings, *, covered: tuple[float, float],
                                    clock: tuple[float | None, str]) -> ArrivalWindows:
    """The sparse arrivals rows from per-cell SQL aggregates and bounded gap samples.

    Parameters
    ----------
    cells : polars.DataFrame
        :func:`~servelab.analysis.aggregates.arrival_cells`: ``cidx, w, n_req, n_gaps, mean_gap,
        std_gap, n_zero_gaps`` per active cell.
    samples : sequence of (cidx, w, gap) arrays
        :func:`~servelab.analysis.aggregates.gap_samples` batches (positive gaps, at most
        ``max_fit_gaps`` per cell, cells with at least ``min_fit_gaps``), each sorted by cell.
        Every batch is fitted on its own (cells never straddle batches).
    settings : PoolFitSettings
    covered : (float, float)
        The trace's covered span (:func:`~servelab.analysis.window_rates.covered_span`).
    clock : (step or None, source)
        From :func:`clock_from_trace_gaps`.

    Returns
    -------
    ArrivalWindows
        As :func:`arrival_windows`.
    """
    window_s = settings.window_s
    cells = cells.sort("cidx", "w")
    cidx = cells["cidx"].to_numpy().astype(np.int64)
    w = cells["w"].to_numpy().astype(np.int64)
    n_req = cells["n_req"].to_numpy().astype(float)
    cv = window_cv(cells["n_gaps"].to_numpy(), cells["mean_gap"].fill_null(np.nan).to_numpy(),
                   cells["std_gap"].fill_null(np.nan).to_numpy())
    n_cells = cidx.size
    names = tuple(dict.fromkeys(p for f in settings.families for p in get_arrival_family(f).param_names))
    family = np.full(n_cells, None, dtype=object)
    params = {p: np.full(n_cells, np.nan) for p in names}
    n_fit = np.zeros(n_cells, np.int64)
    loglik = np.full(n_cells, np.nan)
    w_span = max(int(w.max()) - int(w.min()) + 1, 1) if n_cells else 1
    w_min = int(w.min()) if n_cells else 0
    cell_key = cidx * w_span + (w - w_min)  # sorted, like the cells
    for sc, sw, gap in samples:  # a loop over batches of clients, each fitted at once
        if gap.size == 0:
            continue
        k = sc * w_span + (sw - w_min)
        brk = np.flatnonzero(k[1:] != k[:-1]) + 1
        first = np.concatenate([[0], brk])
        seg = np.repeat(np.arange(first.size), np.diff(np.concatenate([first, [k.size]])))
        fam = fit_arrival_windows(gap, seg, first.size, families=settings.families,
                                  min_fit_gaps=settings.min_fit_gaps, max_fit_gaps=settings.max_fit_gaps)
        rows = np.searchsorted(cell_key, k[first])
        family[rows] = fam.family
        for p in names:
            params[p][rows] = fam.params[p]
        n_fit[rows] = fam.n_fit
        loglik[rows] = fam.log_likelihood
    fams = WindowFamilies(family=family, params=params, n_fit=n_fit, log_likelihood=loglik)
    table = _cell_table(cidx, w, n_req, cv, fams, window_s, covered)
    w0, w1 = _window_range(w, covered, window_s) if n_cells else (0, 0)
    n_zero_gaps = int(cells["n_zero_gaps"].sum()) if n_cells else 0
    return ArrivalWindows(table=table, first_window=w0, last_window=w1, covered_s=covered, clock_s=clock[0],
                          clock_source=clock[1], n_zero_gaps=n_zero_gaps)

"""ServeGen's upsampling experiment (Fig. 16): does keeping conversations' inter-turn times make
arrivals less bursty?

The multi-turn requests of a trace (those in conversations of two or more turns) are scaled up to
the size of the original workload in two ways, and the burstiness (CV of gaps per window) of both
is compared with the original's:

``naive``
    Conversation-agnostic: the multi-turn arrival sequence is compressed in time by the factor
    ``k = n_original / n_multi_turn`` (every inter-arrival gap divided by ``k``), and ``ceil(k)``
    compressed copies are laid end to end over the original span (then cut at its end).
``itt``
    Conversation-aware: only the times *between conversations* are compressed (each
    conversation's start is mapped as above), and each conversation keeps its own inter-turn
    times (every turn keeps its offset from its conversation's start).

Why here and not in :mod:`servelab.fitting` or :mod:`servelab.generator`: this is a deterministic
re-timing of the trace's own observed requests (no fitted distribution, no random draw) whose only
output is a characterization (CV per window), so it is an analysis. The generator's conversation
model, which samples ITTs from fits, is a different thing.

The CV per window is the project's one definition (:func:`servelab.analysis.arrivals.window_stats`
on :func:`~servelab.analysis.arrivals.arrival_frame_from_times`: the clock detected from the times, gaps
below a censoring step jittered with a seeded uniform draw, a gap counted in a window when both of its
requests lie in it), computed by :func:`window_cv` directly on the sorted arrays with ``numpy.bincount``
per window (counts, gap sums and squared deviations) instead of a polars frame aggregated by DuckDB:
the same draws and the same statistics up to floating-point rounding, at a sixth of the cost on 10 M
arrivals. Calling :func:`servelab.analysis.arrivals._cells_numpy` instead (on a one-group frame of
the arrays: ``timestamp``, ``prev_``, ``tj_``, ``prevj_``) gave tables equal to these bit for bit
but cost more, as it also sums ties, positive gaps and their logs: on the 1 M-row store's arrival
times 0.20 -> 0.25-0.29 CPU-s, on continuous times 0.085 -> 0.165 (measured 2026-12-03), so this
copy of the few statistics Fig. 16 needs is kept. The re-timed arrivals exist only as arrays (their clock and jitter need every time), so a SQL
engine would add a copy and no saving. This module must not import fitting, generator, figures or matplotlib.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
from servelab.analysis.clock import resolve_clock
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.window_rates import exposure as window_exposure
from servelab.analysis.window_rates import window_rate

__all__ = ["UPSAMPLING_METHODS", "UpsamplingResult", "upsample_multiturn", "upsampling_burstiness", "window_cv"]

UPSAMPLING_METHODS = ("naive", "itt")
#: workloads of :func:`upsampling_burstiness` measured at once (threads)
_THREADS = 2


def upsample_multiturn(links: pl.DataFrame, *, method: str, target_n: int | None = None,
                       span: tuple[float, float] | None = None) -> np.ndarray:
    """Scale the multi-turn requests to ``target_n`` requests over ``span``.

    Parameters
    ----------
    links : polars.DataFrame
        :attr:`servelab.analysis.conversations.Conversations.links` (needs ``timestamp``,
        ``conversation``).
    method : {"naive", "itt"}
        See the module docstring.
    target_n : int, optional
        Size to scale to; default: the number of requests in ``links`` (the whole trace).
    span : (float, float), optional
        Time span to fill; default: first to last timestamp of ``links``.

    Returns
    -------
    numpy.ndarray
        Sorted arrival times (s). Its size is close to ``target_n``: conversations whose
        compressed start falls past the span are dropped whole; turns that spill past its end
        wrap to its beginning.

    Raises
    ------
    NotApplicableError
        If the trace has no multi-turn conversation.
    """
    if method not in UPSAMPLING_METHODS:
        raise ValueError(f"method must be one of {UPSAMPLING_METHODS}; got {method!r}")
    sizes = links.group_by("conversation").len()
    multi = links.join(sizes.filter(pl.col("len") >= 2).select("conversation"), on="conversation", how="semi")
    if multi.height == 0:
        raise NotApplicableError("upsampling of multi-turn requests", reason="the trace has no multi-turn conversation")
    t0, t1 = span if span is not None else (float(links["timestamp"].min()), float(links["timestamp"].max()))
    if not t1 > t0:
        raise ValueError(f"span must have positive length; got ({t0!r}, {t1!r})")
    target = links.height if target_n is None else int(target_n)
    if target < multi.height:
        raise ValueError(f"target_n must be at least the number of multi-turn requests ({multi.height}); got {target}")
    k = target / multi.height
    copies = math.ceil(k)
    length = (t1 - t0) / k  # span covered by one compressed copy
    shifts = t0 + np.arange(copies, dtype=float) * length
    t = multi["timestamp"].to_numpy().astype(float)
    if method == "naive":
        start = t
        offset = np.zeros_like(t)
    else:
        start = multi.select(pl.col("timestamp").min().over("conversation")).to_series().to_numpy().astype(float)
        offset = t - start
    mapped_start = (shifts[:, None] + ((start - t0) / k)[None, :]).ravel()
    out = mapped_start + np.tile(offset, copies)
    # whole conversations whose (compressed) start falls past the span are dropped; turns of kept
    # conversations that spill past the end wrap to its beginning, so that no edge thins out
    out = out[mapped_start <= t1]
    out = t0 + np.mod(out - t0, (t1 - t0) * (1 + 1e-12))
    out.sort()
    return out


def window_cv(timestamps: np.ndarray, *, window_s: float, clock="auto", seed: int = 0) -> pl.DataFrame:
    """Rate and CV per window of an arrival-time array, filled over the span (idle windows: no CV).

    The table of :func:`~servelab.analysis.arrivals.window_stats` (``by=None``, ``fill_idle=True``)
    on :func:`~servelab.analysis.arrivals.arrival_frame_from_times` of ``timestamps``, computed on
    the arrays: the times sorted stably, the clock resolved from them (``clock``, ``seed`` as for
    :func:`~servelab.analysis.arrivals.arrival_frame`), under a censoring step each time jittered
    by the same seeded uniform draw and the requests re-ordered by jittered time (stable), each gap
    (of jittered times, else logged) counted in its later request's window when the earlier request
    lies in the same window; per window the count, the gaps' sum and their squared deviations from
    the window's mean (two passes of :func:`numpy.bincount`; DuckDB's ``var_pop`` in the frame path:
    equal up to rounding).

    Parameters
    ----------
    timestamps : numpy.ndarray
        Arrival times (s), any order.
    window_s : float
        Window length (s).
    clock : "auto", None, "none", float or Clock
        See :func:`~servelab.analysis.clock.resolve_clock` (``"auto"``: detected from the times).
    seed : int
        Seed of the jitter under a censoring clock.

    Returns
    -------
    polars.DataFrame
        ``window, window_start_s, exposure_s, n_requests, rate_rps, n_gaps, cv`` (CV null with
        fewer than 2 gaps or a zero mean gap).

    Raises
    ------
    ValueError
        If ``timestamps`` is empty or not finite, or ``window_s`` is not a positive number.
    """
    t = np.sort(np.asarray(timestamps, dtype=np.float64), kind="stable")
    if t.size == 0:
        raise ValueError("timestamps is empty; need at least one arrival")
    if not np.isfinite(t).all():
        raise ValueError(f"timestamps must be finite; got {float(t[~np.isfinite(t)][0])!r}")
    if isinstance(window_s, bool) or not isinstance(window_s, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}")
    seconds = float(window_s)
    t0, t1 = float(t[0]), float(t[-1])
    found = resolve_clock(clock, None, timestamps=t)
    step = found.censor_step_s if found is not None else None
    if step is None:
        gap = np.diff(t)
    else:  # the draw of arrival_frame_from_times: one uniform per request in sorted order
        tj = t + np.random.default_rng(seed).uniform(0.0, step, t.size)
        order = np.argsort(tj, kind="stable")
        t, tj = t[order], tj[order]
        del order
        gap = np.diff(tj)
        del tj
    w0, w1 = math.floor(t0 / seconds), math.floor(t1 / seconds)
    n_win = w1 - w0 + 1
    wr = np.floor(t / seconds).astype(np.int64)
    del t
    cell = np.clip(wr, w0, w1) - w0  # a request's window on the grid [w0, w1]
    n_requests = np.bincount(cell, minlength=n_win)
    inside = wr[1:] == wr[:-1]  # both requests of the gap in one window
    del wr
    g_cell = cell[1:][inside]
    del cell
    gap = gap[inside]
    n_gaps = np.bincount(g_cell, minlength=n_win)
    s1 = np.bincount(g_cell, weights=gap, minlength=n_win)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n_gaps > 0, s1 / np.maximum(n_gaps, 1), np.nan)
        m2 = np.bincount(g_cell, weights=(gap - mean[g_cell]) ** 2, minlength=n_win)
        std = np.sqrt(m2 / np.maximum(n_gaps, 1))
        cv = np.where((n_gaps >= 2) & (mean > 0), std / mean, np.nan)
    win = np.arange(w0, w1 + 1, dtype=np.int64)
    start_s = win * seconds
    exposure = window_exposure(start_s, seconds, (t0, t1))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = window_rate(n_requests, exposure)
    return pl.DataFrame({
        "window": win, "window_start_s": start_s.astype(np.float64), "exposure_s": exposure.astype(np.float64),
        "n_requests": n_requests.astype(np.int64), "rate_rps": rate, "n_gaps": n_gaps.astype(np.int64), "cv": cv,
    }).with_columns(pl.col(pl.Float64).fill_nan(None))


@dataclass(frozen=True)
class UpsamplingResult:
    """Burstiness of the original trace and of its two upsampled multi-turn workloads.

    Attributes
    ----------
    factor : float
        ``n_original / n_multi_turn``.
    n_original, n_multi_turn, n_naive, n_itt : int
        Request counts.
    window_s : float
    median_cv_original, median_cv_naive, median_cv_itt : float
        Median CV over windows with at least ``min_gaps`` gaps (NaN when no window qualifies).
    windows : polars.DataFrame
        ``window``, ``window_start_s``, ``cv_original``, ``cv_naive``, ``cv_itt`` and the
        matching ``rate_`` columns.
    """

    factor: float
    n_original: int
    n_multi_turn: int
    n_naive: int
    n_itt: int
    window_s: float
    median_cv_original: float
    median_cv_naive: float
    median_cv_itt: float
    windows: pl.DataFrame


def upsampling_burstiness(links: pl.DataFrame, *, window_s: float = 600.0, min_gaps: int = 20,
                          timestamps: np.ndarray | None = None) -> UpsamplingResult:
    """Run both upsampling methods and compare CV per window with the original (Fig. 16).

    Parameters
    ----------
    links : polars.DataFrame
        :attr:`servelab.analysis.conversations.Conversations.links` (``timestamp``,
        ``conversation``): every request, or (with ``timestamps``) at least the multi-turn ones.
    window_s : float
        Window of the CVs (s).
    min_gaps : int
        A window's CV enters the medians with at least this many gaps.
    timestamps : numpy.ndarray, optional
        The whole trace's arrival times, when ``links`` holds only part of the trace (e.g. the
        multi-turn requests of :func:`servelab.analysis.conversations_sql.link_multi_turn`): the
        original workload, its size (the upsampling target) and its span. Default: ``links``'s.
    """
    original = (links["timestamp"].to_numpy() if timestamps is None else np.asarray(timestamps)).astype(float)
    if original.size == 0:
        raise ValueError("the trace has no request; need at least one arrival")
    span = (float(original.min()), float(original.max()))
    sizes = links.group_by("conversation").len()
    n_multi = int(sizes.filter(pl.col("len") >= 2)["len"].sum() or 0)

    def measure(name: str) -> tuple[int, pl.DataFrame]:
        arr = original if name == "original" else upsample_multiturn(links, method=name, target_n=original.size,
                                                                     span=span)
        return arr.size, window_cv(arr, window_s=window_s)

    # the three workloads are independent (each its own seeded jitter): two at a time, in threads
    # (numpy's sorts and array arithmetic release the GIL), so at most two re-timed workloads are in
    # memory at once; the same tables as one after the other
    names = ("original", *UPSAMPLING_METHODS)
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        done = dict(zip(names, pool.map(measure, names)))
    frames = {}
    counts = {}
    medians = {}
    for name in names:
        counts[name], w = done.pop(name)
        ok = w.filter((pl.col("n_gaps") >= min_gaps) & pl.col("cv").is_not_null())
        medians[name] = float(ok["cv"].median()) if ok.height else float("nan")
        frames[name] = w.select("window", "window_start_s",
                                pl.col("cv").alias(f"cv_{name}"), pl.col("rate_rps").alias(f"rate_{name}"))
    joined = frames["original"]
    for name in UPSAMPLING_METHODS:
        joined = joined.join(frames[name].drop("window_start_s"), on="window", how="left")
    return UpsamplingResult(
        factor=original.size / n_multi if n_multi else float("nan"), n_original=int(original.size),
        n_multi_turn=n_multi, n_naive=counts["naive"], n_itt=counts["itt"], window_s=float(window_s),
        median_cv_original=medians["original"], median_cv_naive=medians["naive"], median_cv_itt=medians["itt"],
        windows=joined.sort("window"),
    )

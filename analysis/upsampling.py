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

The CV per window comes from :func:`servelab.analysis.arrivals.window_stats` (the project's one
definition), run on an arrival frame of the re-timed arrivals
(:func:`~servelab.analysis.arrivals.arrival_frame_from_times`: no store, no DuckDB). This module must not import
fitting, generator, figures or matplotlib.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from servelab.analysis.arrivals import arrival_frame_from_times, window_stats
from servelab.analysis.exceptions import NotApplicableError

__all__ = ["UPSAMPLING_METHODS", "UpsamplingResult", "upsample_multiturn", "upsampling_burstiness", "window_cv"]

UPSAMPLING_METHODS = ("naive", "itt")


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


def window_cv(timestamps: np.ndarray, *, window_s: float) -> pl.DataFrame:
    """Rate and CV per window of an arrival-time array (via :func:`~servelab.analysis.arrivals.window_stats`)."""
    timestamps = np.asarray(timestamps, dtype=float)
    if timestamps.size == 0:
        raise ValueError("timestamps is empty; need at least one arrival")
    # the frame of frame_source(...) + arrival_frame(...), built from the array directly
    frame = arrival_frame_from_times(timestamps)
    return window_stats(None, window_s=window_s, by=None, fill_idle=True, frame=frame).select(
        "window", "window_start_s", "exposure_s", "n_requests", "rate_rps", "n_gaps", "cv")


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


def upsampling_burstiness(links: pl.DataFrame, *, window_s: float = 600.0, min_gaps: int = 20) -> UpsamplingResult:
    """Run both upsampling methods and compare CV per window with the original (Fig. 16)."""
    span = (float(links["timestamp"].min()), float(links["timestamp"].max()))
    sizes = links.group_by("conversation").len()
    n_multi = int(sizes.filter(pl.col("len") >= 2)["len"].sum() or 0)
    frames = {}
    counts = {}
    arrays = {"original": links["timestamp"].to_numpy().astype(float)}
    for method in UPSAMPLING_METHODS:
        arrays[method] = upsample_multiturn(links, method=method, span=span)
    medians = {}
    for name, arr in arrays.items():
        w = window_cv(arr, window_s=window_s)
        counts[name] = arr.size
        ok = w.filter((pl.col("n_gaps") >= min_gaps) & pl.col("cv").is_not_null())
        medians[name] = float(ok["cv"].median()) if ok.height else float("nan")
        frames[name] = w.select("window", "window_start_s",
                                pl.col("cv").alias(f"cv_{name}"), pl.col("rate_rps").alias(f"rate_{name}"))
    joined = frames["original"]
    for name in UPSAMPLING_METHODS:
        joined = joined.join(frames[name].drop("window_start_s"), on="window", how="left")
    return UpsamplingResult(
        factor=links.height / n_multi, n_original=links.height, n_multi_turn=n_multi,
        n_naive=counts["naive"], n_itt=counts["itt"], window_s=float(window_s),
        median_cv_original=medians["original"], median_cv_naive=medians["naive"], median_cv_itt=medians["itt"],
        windows=joined.sort("window"),
    )

"""Multimodal request inputs (ServeGen 2025 sec. 4.1-4.2, Findings 6 and 7; Fig. 7 and 9).

Needs ``<m>_tokens`` (the request's input tokens of modality ``m``, all items together) and,
for per-item numbers, ``<m>_count`` (items per request), for ``m`` in image, audio, video;
``text_tokens`` for the text side. Measures, as DuckDB SQL:

- tokens per item per modality (``<m>_tokens / <m>_count`` over requests with items) and items
  per request (:func:`tokens_per_item`, :func:`items_per_request`);
- the multimodal share of each request's input, ``mm / (text + mm)`` (Fig. 9), as a histogram
  with flatness numbers: normalised entropy and the KS distance from a uniform share
  (:func:`multimodal_share`);
- text vs multimodal token correlation (:func:`text_multimodal_correlation`);
- per-modality token load over time and how independently the modalities move
  (:func:`modality_load`, :func:`load_independence`), and the shift of the mean tokens per item
  across periods of the day (:func:`per_item_shift`).

Failed requests are excluded. This module never imports fitting, figures or matplotlib.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl

from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.lengths import (
    DEFAULT_PERIODS,
    DEFAULT_QUANTILES,
    Period,
    grouped_count_stats,
    hour_of_day_expression,
    pair_correlation,
    period_expression,
)
from servelab.analysis.store import TraceStore

__all__ = [
    "MODALITIES",
    "modalities",
    "multimodal_filter",
    "tokens_per_item",
    "items_per_request",
    "MultimodalShare",
    "multimodal_share",
    "text_multimodal_correlation",
    "modality_load",
    "LoadIndependence",
    "load_independence",
    "per_item_shift",
]

MODALITIES = ("image", "audio", "video")


def modalities(store: TraceStore, *, need_counts: bool = False) -> tuple[str, ...]:
    """Modalities with a ``<m>_tokens`` column (and ``<m>_count`` when ``need_counts``)."""
    return tuple(m for m in MODALITIES if store.has(f"{m}_tokens") and (not need_counts or store.has(f"{m}_count")))


def _require_any(store: TraceStore, analysis: str, *, need_counts: bool = False, need_text: bool = False) -> tuple[str, ...]:
    mods = modalities(store, need_counts=need_counts)
    if not mods:
        wanted = [f"{m}_tokens" for m in MODALITIES] + ([f"{m}_count" for m in MODALITIES] if need_counts else [])
        raise NotApplicableError(analysis, missing=wanted,
                                 reason="the trace has no modality columns (" + ", ".join(wanted) + ")")
    if need_text:
        store.require("text_tokens", analysis=analysis)
    return mods


def multimodal_filter(store: TraceStore) -> str:
    """SQL predicate: the request did not fail (output 0 or ``failed``)."""
    parts = ["true"]
    if store.has("output_tokens"):
        parts.append("coalesce(output_tokens, 1) <> 0")
    if store.has("failed"):
        parts.append("NOT coalesce(failed, false)")
    return " AND ".join(parts)


def _mm_sum(mods: Sequence[str]) -> str:
    return "(" + " + ".join(f"coalesce({m}_tokens, 0)" for m in mods) + ")"


def tokens_per_item(store: TraceStore, *, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> pl.DataFrame:
    """Tokens per item of each modality over the requests that carry items of it.

    Returns
    -------
    polars.DataFrame
        ``modality, n (requests with items), n_items, mean, std, cv, min, p.., max`` of
        ``<m>_tokens / <m>_count`` (a request's items share its tokens equally).

    Raises
    ------
    NotApplicableError
        If no modality has both ``<m>_tokens`` and ``<m>_count``.
    """
    mods = _require_any(store, "tokens per item", need_counts=True)
    cond = multimodal_filter(store)
    parts = [f"SELECT '{m}' AS modality, {m}_tokens::DOUBLE / {m}_count AS v, count(*) AS c FROM requests "
             f"WHERE {cond} AND {m}_count > 0 AND {m}_tokens IS NOT NULL GROUP BY v" for m in mods]
    counts = store.query(" UNION ALL ".join(parts))
    items = store.query(" UNION ALL ".join(
        f"SELECT '{m}' AS modality, coalesce(sum({m}_count), 0)::BIGINT AS n_items FROM requests "
        f"WHERE {cond} AND {m}_count > 0 AND {m}_tokens IS NOT NULL" for m in mods))
    stats = grouped_count_stats(counts, ["modality"], quantiles)
    out = pl.DataFrame({"modality": list(mods)}).join(items, on="modality", how="left").join(stats, on="modality", how="left")
    return out.select("modality", pl.col("n").fill_null(0), "n_items", *[c for c in stats.columns if c not in ("modality", "n")])


def items_per_request(store: TraceStore) -> pl.DataFrame:
    """PMF of the number of items per request, per modality (ServeGen Fig. 7a).

    Returns
    -------
    polars.DataFrame
        ``modality, items, count, probability`` over non-failed requests with a known count.
    """
    mods = _require_any(store, "items per request", need_counts=True)
    cond = multimodal_filter(store)
    table = store.query(" UNION ALL ".join(
        f"SELECT '{m}' AS modality, {m}_count AS items, count(*) AS count FROM requests "
        f"WHERE {cond} AND {m}_count IS NOT NULL GROUP BY items" for m in mods))
    return table.with_columns((pl.col("count") / pl.col("count").sum().over("modality")).alias("probability")).sort(
        "modality", "items")


@dataclass(frozen=True)
class MultimodalShare:
    """The multimodal share of input (:func:`multimodal_share`): its histogram and how flat it is.

    Unpacks as ``histogram, numbers`` (``numbers`` = :meth:`to_dict`), like the tuple it replaced.

    Parameters
    ----------
    histogram : polars.DataFrame
        ``bin, share_lo, share_hi, count, probability``.
    n : int
        Requests counted.
    mean, p10, p50, p90 : float
        Mean and quantiles of the share.
    normalised_entropy : float
        Entropy of the histogram over log(bins) (1 = perfectly flat over the bins).
    ks_uniform : float
        Largest distance between the share's CDF and the uniform CDF, read at the bin edges.
    share_text_heavy, share_mm_heavy : float
        Shares of requests with a multimodal share below 0.2 and above 0.8.
    """

    histogram: pl.DataFrame
    n: int
    mean: float
    p10: float
    p50: float
    p90: float
    normalised_entropy: float
    ks_uniform: float
    share_text_heavy: float
    share_mm_heavy: float

    def to_dict(self) -> dict[str, Any]:
        """The numbers (every field but the histogram), JSON-ready."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "histogram"}

    def __iter__(self) -> Iterator[Any]:
        return iter((self.histogram, self.to_dict()))


@dataclass(frozen=True)
class LoadIndependence:
    """How independently the modalities' loads move (:func:`load_independence`, Finding 6).

    Parameters
    ----------
    n_windows : int
    cv_text : float or None
        CV of the text load across windows (None with fewer than 2 windows or no text column).
    cv_image, cv_audio, cv_video : float or None
        CV of each modality's load across windows (None when the modality is absent).
    corr_text_image, corr_text_audio, corr_text_video : float or None
        Pearson correlation of text and that modality's load across windows (NaN when either is
        constant; None when the modality is absent).
    """

    n_windows: int
    cv_text: float | None = None
    cv_image: float | None = None
    cv_audio: float | None = None
    cv_video: float | None = None
    corr_text_image: float | None = None
    corr_text_audio: float | None = None
    corr_text_video: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The measured numbers only (absent modalities left out), JSON-ready."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def multimodal_share(store: TraceStore, *, bins: int = 20, only_multimodal: bool = True) -> MultimodalShare:
    """Histogram of each request's multimodal share of input, ``mm / (text + mm)`` (Fig. 9).

    Parameters
    ----------
    bins : int
        Equal-width bins on [0, 1] (a share of exactly 1 falls in the last bin).
    only_multimodal : bool
        Count only requests with some multimodal tokens (the paper's breakdown); otherwise
        text-only requests add to the first bin.

    Returns
    -------
    MultimodalShare
        The histogram ``bin, share_lo, share_hi, count, probability`` and flatness numbers
        (``n``, ``mean``, quantiles, ``normalised_entropy``, ``ks_uniform``, text- and
        multimodal-heavy shares).

    Raises
    ------
    NotApplicableError
        If the trace lacks ``text_tokens`` or every modality column, or no request qualifies.
    """
    mods = _require_any(store, "multimodal share of input", need_text=True)
    if not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an int >= 2; got {bins!r}")
    mm = _mm_sum(mods)
    share = f"({mm}::DOUBLE / (coalesce(text_tokens, 0) + {mm}))"
    cond = f"{multimodal_filter(store)} AND (coalesce(text_tokens, 0) + {mm}) > 0"
    if only_multimodal:
        cond += f" AND {mm} > 0"
    hist = store.query(
        f"SELECT least({bins - 1}, floor({share} * {bins}))::BIGINT AS bin, count(*) AS count FROM requests "
        f"WHERE {cond} GROUP BY 1 ORDER BY 1")
    full = pl.DataFrame({"bin": np.arange(bins, dtype=np.int64)}).join(hist, on="bin", how="left").with_columns(
        pl.col("count").fill_null(0))
    n = int(full["count"].sum())
    if n == 0:
        raise NotApplicableError("multimodal share of input", reason="no non-failed request has multimodal tokens")
    full = full.with_columns((pl.col("bin") / bins).alias("share_lo"), ((pl.col("bin") + 1) / bins).alias("share_hi"),
                             (pl.col("count") / n).alias("probability")).select(
        "bin", "share_lo", "share_hi", "count", "probability")
    p = full["probability"].to_numpy()
    nz = p[p > 0]
    entropy = float(-np.sum(nz * np.log(nz)) / math.log(bins))
    cdf = np.cumsum(p)
    edges = np.arange(1, bins + 1) / bins
    q = store.query(f"SELECT avg({share}) AS mean, quantile_cont({share}, [0.1, 0.5, 0.9]) AS q, "
                    f"avg(CASE WHEN {share} < 0.2 THEN 1.0 ELSE 0.0 END) AS lo, "
                    f"avg(CASE WHEN {share} > 0.8 THEN 1.0 ELSE 0.0 END) AS hi FROM requests WHERE {cond}")
    qs = q["q"][0]
    return MultimodalShare(histogram=full, n=n, mean=float(q["mean"][0]), p10=float(qs[0]), p50=float(qs[1]),
                           p90=float(qs[2]), normalised_entropy=entropy, ks_uniform=float(np.max(np.abs(cdf - edges))),
                           share_text_heavy=float(q["lo"][0]), share_mm_heavy=float(q["hi"][0]))


def text_multimodal_correlation(store: TraceStore, *, seed: int = 0) -> pl.DataFrame:
    """Pearson and Spearman correlation of text tokens and multimodal tokens per request (Fig. 7c),
    over requests with multimodal input. Columns as :func:`servelab.analysis.lengths.io_correlation`."""
    mods = _require_any(store, "text vs multimodal token correlation", need_text=True)
    mm = _mm_sum(mods)
    where = f"{multimodal_filter(store)} AND text_tokens IS NOT NULL AND {mm} > 0"
    return pair_correlation(store, "text_tokens", mm, where=where, seed=seed)


def modality_load(store: TraceStore, *, window_s: float = 600.0) -> pl.DataFrame:
    """Token load per modality over time (Fig. 7d): tokens per second in windows of ``window_s``.

    Returns
    -------
    polars.DataFrame
        ``window, start_s, requests, text_tps, image_tps, ...`` (the modalities present).
    """
    mods = _require_any(store, "per-modality token load")
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0 seconds; got {window_s!r}")
    cols = ([("text", "text_tokens")] if store.has("text_tokens") else []) + [(m, f"{m}_tokens") for m in mods]
    sums = ", ".join(f"coalesce(sum({c}), 0) / {float(window_s)!r} AS {name}_tps" for name, c in cols)
    return store.query(
        f"SELECT floor(timestamp / {float(window_s)!r})::BIGINT AS window, "
        f"floor(timestamp / {float(window_s)!r}) * {float(window_s)!r} AS start_s, count(*) AS requests, {sums} "
        f"FROM requests WHERE {multimodal_filter(store)} GROUP BY 1, 2 ORDER BY 1")


def load_independence(load: pl.DataFrame) -> LoadIndependence:
    """How independently the modalities' loads move (Finding 6), from :func:`modality_load`.

    Returns
    -------
    LoadIndependence
        For each modality column ``<m>_tps`` besides text: ``corr_text_<m>`` (Pearson correlation
        of text and ``m`` load across windows, NaN when either is constant) and ``cv_<m>`` (CV of
        its load across windows); ``cv_text`` too, and ``n_windows``.
    """
    out: dict = {"n_windows": load.height}
    if "text_tps" in load.columns and load.height >= 2:
        t = load["text_tps"].to_numpy()
        out["cv_text"] = float(np.std(t) / np.mean(t)) if np.mean(t) > 0 else float("nan")
    for m in MODALITIES:
        col = f"{m}_tps"
        if col not in load.columns or load.height < 2:
            continue
        v = load[col].to_numpy()
        out[f"cv_{m}"] = float(np.std(v) / np.mean(v)) if np.mean(v) > 0 else float("nan")
        if "text_tps" in load.columns and np.std(v) > 0 and np.std(load["text_tps"].to_numpy()) > 0:
            out[f"corr_text_{m}"] = float(np.corrcoef(load["text_tps"].to_numpy(), v)[0, 1])
        else:
            out[f"corr_text_{m}"] = float("nan")
    return LoadIndependence(**out)


def per_item_shift(store: TraceStore, *, periods: Sequence[Period] = DEFAULT_PERIODS,
                   by_hour: bool = False) -> pl.DataFrame:
    """Mean tokens per item of each modality per period of the day (or per hour), and max/min.

    ServeGen: "the average image length in mm-image varies by up to 19% over the course of a day".

    Returns
    -------
    polars.DataFrame
        ``modality, period, n, mean_tokens_per_item`` plus, per modality, ``max_min_ratio``
        across the periods that hold items.
    """
    mods = _require_any(store, "tokens-per-item shift", need_counts=True)
    if by_hour:
        hour, _ = hour_of_day_expression(store)
        key = f"lpad(CAST(floor({hour})::BIGINT AS VARCHAR), 2, '0')"
    else:
        key = period_expression(store, periods)
    cond = multimodal_filter(store)
    table = store.query(" UNION ALL ".join(
        f"SELECT '{m}' AS modality, {key} AS period, count(*) AS n, sum({m}_tokens)::DOUBLE / sum({m}_count) AS mean_tokens_per_item "
        f"FROM requests WHERE {cond} AND {m}_count > 0 AND {m}_tokens IS NOT NULL GROUP BY 2" for m in mods)
    ).filter(pl.col("period").is_not_null())
    if not by_hour:
        order = {p.name: i for i, p in enumerate(periods)}
        table = table.with_columns(pl.col("period").replace_strict(order, return_dtype=pl.Int64).alias("_o")).sort(
            "modality", "_o").drop("_o")
    else:
        table = table.sort("modality", "period")
    return table.with_columns(
        (pl.col("mean_tokens_per_item").max().over("modality") / pl.col("mean_tokens_per_item").min().over("modality"))
        .alias("max_min_ratio"))

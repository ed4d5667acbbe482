r"""Fit a :class:`~servelab.generator.pool.ClientPool` from a trace store (``servelab fit-pool``).

Per client and arrival window (default 600 s, on the grid ``k * window_s``):

- ``rate`` = requests in the window / ``window_s`` (so the pool's total rate per window equals the
  trace's request count / ``window_s`` exactly, the residual client included);
- ``cv`` = population std / mean of the window's gaps (a gap counts when both requests lie in the
  window, as in :mod:`servelab.analysis.arrivals`); null with fewer than 2 gaps;
- the arrival family with the lowest AIC among ``families`` (default Gamma, Weibull,
  Exponential: maximum likelihood, loc 0, on the window's positive gaps; ties are left out), with
  its params, for windows with at least ``min_fit_gaps`` positive gaps; above ``max_fit_gaps`` a
  systematic subsample (every k-th gap, spread over the window) is fitted. Gamma comes from its
  sufficient statistics (:func:`~servelab.fitting.families.gamma_mle_from_stats`), Exponential
  in closed form, Weibull by a Newton iteration run on all windows at once (segment sums), so no
  Python loop runs over windows or gaps.

Per client and data window (default 6 h) the empirical PMF of every request-data field the store
has: ``input_tokens``, ``output_tokens``, ``reason_ratio`` (= reason / output tokens, to the nearest
value of ServeGen's grid k / 501), ``text_tokens``, per-item ``image/audio/video_tokens`` (tokens / count, as ServeGen
stores them) and the item counts. Token values up to ``exact_below`` are kept exactly; larger
ones go into log-spaced bins of ratio ``bin_ratio`` represented by their count-weighted mean
(values holding at least ``spike_share`` of the window keep their own row; a bin holding more than
``max_bin_mass`` is cut at multiples of ``max_bin_mass`` of the CDF, so binning moves the CDF by
about ``max_bin_mass`` at most), so a PMF has at most about
``exact_below + log(max / exact_below) / log(bin_ratio) + 1 / spike_share + 1 / max_bin_mass`` rows. Where a
window has at least ``min_fit_requests`` requests a log-normal fit of each token field is stored
as FitResult JSON in ``data_fits`` (closed form from the sufficient statistics; no KS distance,
since the data are not kept).

Conversation parameters, where the store carries links (``conversation_id``, ``parent_id`` or
``prefix_blocks``, linked by :func:`servelab.analysis.conversations.link_conversations`): per
client ``n_conversations``, ``multi_turn_share``, ``turns_mean``, ``itt_mean_s`` and PMFs of
turns (exact) and ITT (log-binned) in ``conversation_pmfs``.

Clients with fewer than ``min_requests`` requests (and rows without a client id) are merged into
one residual client, ``residual_id``, so no traffic is lost.

This module reads the store and returns a pool; it writes nothing and plots nothing.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from scipy import special

from servelab import __version__
from servelab.analysis.arrivals import parse_window
from servelab.analysis.exceptions import EmptyTraceError
from servelab.analysis.store import TraceStore
from servelab.fitting.families import gamma_mle_from_stats

__all__ = ["fit_pool", "compare_pools", "family_cv", "fit_arrival_windows", "weibull_mle_segments", "bin_values", "POOL_FIT_FAMILIES",
           "RESIDUAL_ID"]

#: the arrival families compared per window (registry names)
POOL_FIT_FAMILIES = ("gamma", "weibull", "exponential")
RESIDUAL_ID = "__residual__"
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "text_tokens")
_MODALITIES = ("image", "audio", "video")


# ---------------------------------------------------------------------------------------- arrivals
def weibull_mle_segments(x: np.ndarray, seg: np.ndarray, n_seg: int, *, max_iter: int = 60,
                         tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Weibull MLE (loc 0) of many samples at once; ``x`` > 0 grouped by ``seg`` (sorted, 0..n_seg-1).

    Newton on the profile score :math:`g(c) = \sum y^c \ln y / \sum y^c - 1/c - \overline{\ln y}`
    (``y`` = x over its segment's geometric mean), increasing in ``c``, with a bracket kept per
    segment (bisection when a Newton step leaves it), as in
    :class:`~servelab.fitting.families.WeibullFamily` but over segment sums. Then
    :math:`\lambda = (\overline{x^c})^{1/c}`.

    Returns
    -------
    c, scale : numpy.ndarray
        Per segment (NaN where a segment has fewer than 2 values or all are equal).
    converged : numpy.ndarray of bool
    """
    n = np.bincount(seg, minlength=n_seg).astype(float)
    logx = np.log(x)
    mlog = np.bincount(seg, weights=logx, minlength=n_seg) / np.maximum(n, 1)
    z = logx - mlog[seg]
    var = np.bincount(seg, weights=z * z, minlength=n_seg) / np.maximum(n, 1)
    ok = (n >= 2) & (var > 0)
    c = np.where(ok, np.pi / (np.sqrt(6.0 * np.where(ok, var, 1.0))), 1.0)
    lo = np.zeros(n_seg)
    hi = np.full(n_seg, np.inf)
    done = ~ok
    za, sa = z, seg  # elements of segments still iterating (shrunk as segments converge)
    for it in range(max_iter):
        if it and it % 3 == 0:
            keep = ~done[sa]
            za, sa = za[keep], sa[keep]
        if sa.size == 0:
            break
        cnt = np.bincount(sa, minlength=n_seg)
        nonempty_a = cnt > 0
        starts_a = np.searchsorted(sa, np.flatnonzero(nonempty_a))
        cz = c[sa] * za
        top = np.full(n_seg, -np.inf)
        top[nonempty_a] = np.maximum.reduceat(cz, starts_a)
        w = np.exp(cz - top[sa])
        s0 = np.bincount(sa, weights=w, minlength=n_seg)
        s1 = np.bincount(sa, weights=w * za, minlength=n_seg)
        s2 = np.bincount(sa, weights=w * za * za, minlength=n_seg)
        with np.errstate(divide="ignore", invalid="ignore"):
            m1 = s1 / s0
            m2 = s2 / s0
            g = m1 - 1.0 / c
            gp = (m2 - m1 * m1) + 1.0 / (c * c)
            upd = nonempty_a & ~done
            hi = np.where(upd & (g > 0), np.minimum(hi, c), hi)
            lo = np.where(upd & (g <= 0), np.maximum(lo, c), lo)
            c_new = c - g / gp
        inside = np.isfinite(c_new) & (c_new > lo) & (c_new < hi)
        c_new = np.where(inside, c_new, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * c))
        step_ok = np.abs(c_new - c) <= tol * c
        c = np.where(upd, c_new, c)
        done = done | (upd & step_ok)
        if done.all():
            break
    nonempty = n > 0
    starts = np.searchsorted(seg, np.flatnonzero(nonempty))
    cz = c[seg] * z
    top = np.full(n_seg, -np.inf)
    if starts.size:
        top[nonempty] = np.maximum.reduceat(cz, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_exp = np.bincount(seg, weights=np.exp(cz - top[seg]), minlength=n_seg) / np.maximum(n, 1)
        scale = np.exp(mlog + (top + np.log(mean_exp)) / c)
    c = np.where(ok, c, np.nan)
    scale = np.where(ok, scale, np.nan)
    return c, scale, ok & done & np.isfinite(c) & np.isfinite(scale)


def _systematic_keep(seg: np.ndarray, n_seg: int, cap: int) -> np.ndarray:
    """Mask keeping at most ``cap`` elements per segment, spread evenly (every k-th)."""
    counts = np.bincount(seg, minlength=n_seg)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(seg.size) - starts[seg]
    n = counts[seg]
    big = n > cap
    return ~big | ((pos * cap) // np.maximum(n, 1) != ((pos - 1) * cap) // np.maximum(n, 1)) | (pos == 0)


def fit_arrival_windows(gaps: np.ndarray, seg: np.ndarray, n_seg: int, *,
                        families=POOL_FIT_FAMILIES, min_fit_gaps: int = 10,
                        max_fit_gaps: int = 5000) -> dict[str, np.ndarray]:
    """Best family by AIC per segment of positive gaps (``seg`` sorted, 0..n_seg-1).

    Returns
    -------
    dict of numpy.ndarray
        ``family`` (object: registry name or None), ``shape`` (gamma a / weibull c; NaN for
        exponential), ``scale``, ``n_fit`` (gaps fitted), ``loglik``.
    """
    unknown = [f for f in families if f not in POOL_FIT_FAMILIES]
    if unknown or not families:
        raise ValueError(f"families must be a non-empty subset of {POOL_FIT_FAMILIES}; got {tuple(families)}")
    pos = gaps > 0
    x, s = gaps[pos], seg[pos]
    keep = _systematic_keep(s, n_seg, max_fit_gaps)
    x, s = x[keep], s[keep]
    n = np.bincount(s, minlength=n_seg).astype(float)
    fit = n >= max(min_fit_gaps, 2)
    x, s = x[fit[s]], s[fit[s]]
    nn = np.maximum(n, 1)
    mean = np.bincount(s, weights=x, minlength=n_seg) / nn
    mlog = np.bincount(s, weights=np.log(x), minlength=n_seg) / nn
    cands = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if "exponential" in families:
            ll = -n * (np.log(mean) + 1.0)
            cands["exponential"] = (np.full(n_seg, np.nan), mean, ll, 1)
        if "gamma" in families:
            a, sc, _ = gamma_mle_from_stats(np.where(fit, mean, 1.0), np.where(fit, mlog, np.nan))
            ll = n * ((a - 1.0) * mlog - mean / sc - special.gammaln(a) - a * np.log(sc))
            cands["gamma"] = (a, sc, ll, 2)
        if "weibull" in families:
            c, sc, _ = weibull_mle_segments(x, s, n_seg)
            ll = n * (np.log(c) - c * np.log(sc) + (c - 1.0) * mlog - 1.0)
            cands["weibull"] = (c, sc, ll, 2)
    best_aic = np.full(n_seg, np.inf)
    family = np.full(n_seg, None, dtype=object)
    shape = np.full(n_seg, np.nan)
    scale = np.full(n_seg, np.nan)
    loglik = np.full(n_seg, np.nan)
    for name in POOL_FIT_FAMILIES:  # fixed order: ties go to the earlier family
        if name not in cands:
            continue
        sh, sc, ll, k = cands[name]
        aic = 2 * k - 2 * ll
        better = fit & np.isfinite(aic) & np.isfinite(sc) & (aic < best_aic)
        best_aic = np.where(better, aic, best_aic)
        family[better] = name
        shape = np.where(better, sh, shape)
        scale = np.where(better, sc, scale)
        loglik = np.where(better, ll, loglik)
    return {"family": family, "shape": shape, "scale": scale, "n_fit": n.astype(np.int64), "loglik": loglik}


# ---------------------------------------------------------------------------------------- data
def bin_values(values: pl.Expr, *, exact_below: int, bin_ratio: float) -> pl.Expr:
    """Bin key of non-negative values: the value itself below ``exact_below``, else a log bin index.

    Keys above the cutoff are negative (``-1 - floor(log(v / exact_below) / log(bin_ratio))``) so
    they never collide with exact values.
    """
    logbin = (-1 - ((values / exact_below).log() / math.log(bin_ratio)).floor()).cast(pl.Float64)
    return pl.when(values < exact_below).then(values.cast(pl.Float64)).otherwise(logbin)


def _request_fields(columns: tuple[str, ...]) -> list[tuple[str, pl.Expr, str]]:
    """(pool field, expression over the store's columns, kind) for every field the store supports."""
    out: list[tuple[str, pl.Expr, str]] = []
    for f in ("input_tokens", "output_tokens"):
        if f in columns:
            out.append((f, pl.col(f).cast(pl.Float64), "tokens"))
    if "reason_tokens" in columns and "output_tokens" in columns:
        ratio = pl.when(pl.col("output_tokens") > 0).then(
            (pl.col("reason_tokens") / pl.col("output_tokens")).clip(0.0, 1.0))
        # ServeGen's grid of values k / 501 (k = 0..500); each ratio goes to the nearest grid value,
        # which also inverts a sampler's round(k / 501 * output) without a one-bin shift
        out.append(("reason_ratio", (ratio * 501).round().clip(0, 500) / 501, "grid"))
    if "text_tokens" in columns:
        out.append(("text_tokens", pl.col("text_tokens").cast(pl.Float64), "tokens"))
    for m in _MODALITIES:
        tok, cnt = f"{m}_tokens", f"{m}_count"
        if tok in columns:
            if cnt in columns:
                # per item over requests that carry the modality; a (client, data window) none of whose
                # requests carries it gets {0: 1.0}, as ServeGen writes it
                per_item = pl.when(pl.col(cnt) > 0).then((pl.col(tok) / pl.col(cnt)).round()).when(
                    pl.col(cnt).max().over("_group") == 0).then(0.0)
            else:
                per_item = pl.col(tok).cast(pl.Float64)
            out.append((tok, per_item, "tokens"))
    for m in _MODALITIES:
        if f"{m}_count" in columns:
            out.append((f"{m}_count", pl.col(f"{m}_count").cast(pl.Float64), "tokens"))
    order = ["input_tokens", "output_tokens", "reason_ratio", "text_tokens", "image_tokens", "audio_tokens",
             "video_tokens", "image_count", "audio_count", "video_count"]
    return sorted(out, key=lambda t: order.index(t[0]))


def _data_pmfs(frame: pl.DataFrame, ci: np.ndarray, names: list[str], fields, *, data_window_s: float,
               exact_below: int, bin_ratio: float, spike_share: float, max_bin_mass: float,
               min_fit_requests: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Long PMFs and log-normal fits per (client, data window, field), grouped on integer keys."""
    if not fields:
        return pl.DataFrame(), pl.DataFrame()
    dwin = np.floor(frame["timestamp"].to_numpy() / data_window_s).astype(np.int64)
    d0 = int(dwin.min())
    n_d = int(dwin.max()) - d0 + 1
    group = ci.astype(np.int64) * n_d + (dwin - d0)  # one integer per (client, data window)
    values = frame.with_columns(pl.Series("_group", group)).select(*[expr.alias(name) for name, expr, _ in fields])
    pmf_parts, stat_parts = [], []
    for name, _, kind in fields:
        v = values[name].cast(pl.Float64).fill_nan(None).to_numpy()
        ok = np.isfinite(v) & (v >= 0)
        scale = 501.0 if kind == "grid" else 1.0
        vi = np.minimum(np.round(v[ok] * scale), 2**32 - 1).astype(np.int64)
        gk = group[ok]
        # (group, value) packed into one int64: a single-column hash group-by
        vc = pl.Series("k", (gk << 32) | vi).value_counts(name="n")
        k = vc["k"].to_numpy()
        counts = pl.DataFrame({"c": (k >> 32) // n_d, "d": (k >> 32) % n_d + d0,
                               "v": (k & (2**32 - 1)).astype(np.float64) / scale, "n": vc["n"].cast(pl.Int64)})
        if kind == "grid":
            binned = counts
        else:
            total = pl.col("n").sum().over("c", "d")
            share = pl.col("n") / total
            cum_before = (pl.col("n").cum_sum().over("c", "d") - pl.col("n")) / total
            lb = bin_values(pl.col("v"), exact_below=exact_below, bin_ratio=bin_ratio)
            # a log bin holding more than max_bin_mass is cut at multiples of max_bin_mass of the
            # window's CDF, so that binning moves the CDF by at most about max_bin_mass
            split = pl.when(pl.col("lbmass") > max_bin_mass).then(
                pl.col("lb") * 1000 - (pl.col("cum_before") / max_bin_mass).floor()).otherwise(pl.col("lb") * 1000)
            binned = (counts.sort("c", "d", "v")
                      .with_columns(lb.alias("lb"), share.alias("share"), cum_before.alias("cum_before"))
                      .with_columns(pl.col("share").sum().over("c", "d", "lb").alias("lbmass"))
                      .with_columns(pl.when(pl.col("share") >= spike_share).then(pl.col("v"))
                                    .when(pl.col("v") < exact_below).then(pl.col("v"))
                                    .otherwise(split).alias("bin"))
                      .group_by("c", "d", "bin")
                      .agg(((pl.col("v") * pl.col("n")).sum() / pl.col("n").sum()).round().alias("v"), pl.col("n").sum())
                      .group_by("c", "d", "v").agg(pl.col("n").sum()))
        pmf_parts.append(binned.select("c", "d", pl.lit(name).alias("field"), "v", pl.col("n").cast(pl.Int64)))
        if kind == "tokens" and not name.endswith("_count"):
            pos = v[ok] > 0
            lv = np.log(v[ok][pos])
            gp = gk[pos]
            n_g = group.max() + 1
            cnt = np.bincount(gp, minlength=n_g)
            with np.errstate(divide="ignore", invalid="ignore"):
                mu = np.bincount(gp, weights=lv, minlength=n_g) / cnt
                var = np.bincount(gp, weights=(lv - mu[gp]) ** 2, minlength=n_g) / cnt
            sel = np.flatnonzero((cnt >= min_fit_requests) & (var > 0))
            stat_parts.append(pl.DataFrame({"c": sel // n_d, "d": sel % n_d + d0, "field": name,
                                            "n": cnt[sel].astype(np.int64), "mu": mu[sel], "sigma": np.sqrt(var[sel])}))
    name_of = pl.DataFrame({"c": np.arange(len(names), dtype=np.int64), "client_id": names},
                           schema={"c": pl.Int64, "client_id": pl.String})
    pmfs = (pl.concat(pmf_parts)
            .with_columns((pl.col("n") / pl.col("n").sum().over("c", "d", "field")).cast(pl.Float32).cast(pl.Float64)
                          .alias("probability"))
            .join(name_of, on="c")
            .select("client_id", (pl.col("d").cast(pl.Float64) * data_window_s).alias("window_start"),
                    pl.lit(data_window_s).alias("window_s"), "field", pl.col("v").alias("value"), "probability")
            .sort("client_id", "window_start", "field", "value"))
    if not stat_parts:
        return pmfs, pl.DataFrame()
    stats = (pl.concat(stat_parts).join(name_of, on="c")
             .with_columns((pl.col("d").cast(pl.Float64) * data_window_s).alias("window_start"))
             .sort("client_id", "window_start", "field"))
    n = stats["n"].to_numpy().astype(float)
    mu = stats["mu"].to_numpy()
    sig = stats["sigma"].to_numpy()
    ll = -n * mu - n * np.log(sig) - 0.5 * n * np.log(2 * np.pi) - 0.5 * n
    fits = [
        json.dumps({"family": "lognormal", "params": {"s": float(s_), "scale": float(math.exp(m_))}, "n": int(k),
                    "n_params": 2, "log_likelihood": float(l_), "aic": float(4 - 2 * l_),
                    "bic": float(2 * math.log(k) - 2 * l_), "ks_distance": None, "p_value": None,
                    "p_value_method": None, "converged": True,
                    "notes": ["closed-form MLE from sufficient statistics; zero values left out"]}, sort_keys=True)
        for k, m_, s_, l_ in zip(n.tolist(), mu.tolist(), sig.tolist(), ll.tolist())
    ]
    data_fits = stats.select("client_id", "window_start", "field").with_columns(pl.Series("fit", fits, dtype=pl.String))
    return pmfs, data_fits


# ---------------------------------------------------------------------------------------- pool
REQUESTS_FILE = "requests.parquet"


def _store_sha256(store: TraceStore) -> str:
    h = hashlib.sha256()
    with open(store.requests_path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def fit_pool(
    store: TraceStore,
    *,
    window: str | float = "10m",
    data_window: str | float = "6h",
    min_requests: int = 1,
    families=POOL_FIT_FAMILIES,
    min_fit_gaps: int = 10,
    max_fit_gaps: int = 5000,
    exact_below: int = 64,
    bin_ratio: float = 1.05,
    spike_share: float = 0.005,
    max_bin_mass: float = 0.02,
    min_fit_requests: int = 30,
    conversations: bool = True,
    residual_id: str = RESIDUAL_ID,
    span: tuple[float, float] | None = None,
):
    """Fit a client pool from ``store`` (see the module docstring for every definition).

    Parameters
    ----------
    store : TraceStore
    window, data_window : str or float
        Arrival and request-data window lengths (``"10m"``, ``"6h"``, seconds).
    min_requests : int
        Clients with fewer requests are merged into the residual client ``residual_id``.
    families : sequence of str
        Arrival families compared per window (subset of :data:`POOL_FIT_FAMILIES`).
    min_fit_gaps, max_fit_gaps : int
        Fewest positive gaps for a family fit; most gaps fitted (systematic subsample above).
    exact_below, bin_ratio, spike_share : int, float, float
        PMF binning: exact values below ``exact_below``, log bins of ratio ``bin_ratio`` above,
        except that a value holding at least ``spike_share`` of its window's requests keeps its
        own row (a spike is never smeared over a bin), and a log bin holding more than
        ``max_bin_mass`` of the window is cut at multiples of ``max_bin_mass`` of its CDF.
    min_fit_requests : int
        Fewest requests in a data window for a log-normal fit in ``data_fits``.
    conversations : bool
        Fit conversation parameters when the store carries links.
    residual_id : str
        Id of the residual client.
    span : (float, float), optional
        Time span the pool should cover (e.g. the interval a trace was recorded over); windows
        without requests inside it are idle. Default: the windows from the first request's to the
        last request's.

    Returns
    -------
    ClientPool

    Raises
    ------
    ValueError
        If a setting is out of range.
    EmptyTraceError
        If the store has no requests.
    """
    from servelab.generator.pool import ClientPool

    window_s = parse_window(window)
    data_window_s = parse_window(data_window)
    if not (isinstance(min_requests, int) and min_requests >= 1):
        raise ValueError(f"min_requests must be an integer >= 1; got {min_requests!r}")
    if not (isinstance(exact_below, int) and exact_below >= 1):
        raise ValueError(f"exact_below must be an integer >= 1; got {exact_below!r}")
    if not (bin_ratio > 1):
        raise ValueError(f"bin_ratio must be > 1; got {bin_ratio!r}")
    if not (isinstance(min_fit_gaps, int) and min_fit_gaps >= 2 and isinstance(max_fit_gaps, int)
            and max_fit_gaps >= min_fit_gaps):
        raise ValueError(f"need integers 2 <= min_fit_gaps <= max_fit_gaps; got {min_fit_gaps!r}, {max_fit_gaps!r}")

    columns = store.columns
    fields = _request_fields(columns)
    has_client = "client_id" in columns
    link_col = "conversation_id" if "conversation_id" in columns else None
    raw_cols = sorted({c for c in columns if c in ("input_tokens", "output_tokens", "reason_tokens", "text_tokens")
                       or c.endswith("_tokens") or c.endswith("_count")})
    want = ["request_id", "timestamp"] + (["client_id"] if has_client else []) + raw_cols + ([link_col] if link_col else [])
    frame = pl.scan_parquet(store.requests_path).select(want).collect()
    if frame.height == 0:
        raise EmptyTraceError(f"store {str(store.path)!r} has no requests; nothing to fit")
    if not frame["request_id"].is_sorted():
        frame = frame.sort("request_id")

    # --- client ids as integer codes; small clients (and rows without id) -> the residual ----------
    if has_client:
        col = frame["client_id"].cast(pl.String)
        uniq = col.drop_nulls().unique().sort()
        ids = np.asarray(uniq.to_list(), dtype=object)
        code = col.replace_strict(uniq, pl.Series(np.arange(uniq.len(), dtype=np.int64)), default=-1,
                                  return_dtype=pl.Int64).fill_null(-1).to_numpy()
        counts = np.bincount(code[code >= 0], minlength=ids.size)
    else:
        ids = np.array(["all"], dtype=object)
        code = np.zeros(frame.height, dtype=np.int64)
        counts = np.array([frame.height])
    small = counts < min_requests
    n_small = int(small.sum())
    n_null = int((code < 0).sum())
    has_residual = n_small > 0 or n_null > 0
    if has_residual and residual_id in set(ids[~small].tolist()):
        raise ValueError(f"residual_id {residual_id!r} is also a client id in the store; pass another residual_id")
    kept = np.flatnonzero(~small)
    table = pl.DataFrame({"code": kept, "client_id": ids[kept], "n": counts[kept]})
    if has_residual:
        n_res = int(counts[small].sum()) + n_null
        table = pl.concat([table, pl.DataFrame({"code": [-1], "client_id": [residual_id], "n": [n_res]})])
    table = table.sort(["n", "client_id"], descending=[True, False]).with_row_index("cidx")
    to_cidx = np.full(ids.size + 1, -1, dtype=np.int64)  # last slot: residual (code -1)
    for c, i in zip(table["code"].to_list(), table["cidx"].to_list()):
        to_cidx[c] = i
    if has_residual:
        to_cidx[np.flatnonzero(small)] = to_cidx[-1]
    ci = to_cidx[code]
    client_names = table["client_id"].to_list()

    # --- arrival windows: requests sorted by client (stable: time order within a client) ---------
    perm = np.argsort(ci, kind="stable")
    t = frame["timestamp"].to_numpy()[perm]
    cis = ci[perm]
    w = np.floor(t / window_s).astype(np.int64)
    w0, w1 = int(w.min()), int(w.max())
    if span is not None:
        w0 = min(w0, int(math.floor(span[0] / window_s)))
        w1 = max(w1, int(math.ceil(span[1] / window_s)) - 1)
    n_w = w1 - w0 + 1
    key = cis * n_w + (w - w0)
    brk = np.flatnonzero(key[1:] != key[:-1]) + 1
    seg_start = np.concatenate([[0], brk])
    seg_key = key[seg_start]
    n_req = np.diff(np.concatenate([seg_start, [key.size]]))
    n_seg = seg_start.size
    seg_of = np.repeat(np.arange(n_seg), n_req)
    same = np.zeros(t.size, bool)
    same[1:] = key[1:] == key[:-1]
    g = (t[1:] - t[:-1])[same[1:]]
    gs = seg_of[same]
    ng = np.bincount(gs, minlength=n_seg).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mg = np.bincount(gs, weights=g, minlength=n_seg) / ng
        vg = np.bincount(gs, weights=(g - mg[gs]) ** 2, minlength=n_seg) / ng
        cv = np.where((ng >= 2) & (mg > 0), np.sqrt(vg) / mg, np.nan)
    fam = fit_arrival_windows(g, gs, n_seg, families=families, min_fit_gaps=min_fit_gaps, max_fit_gaps=max_fit_gaps)
    n_zero_gaps = int((g == 0).sum())
    rate = np.zeros(len(client_names) * n_w)
    cvs = np.zeros(rate.size)
    shape = np.full(rate.size, np.nan)
    scale = np.full(rate.size, np.nan)
    family = np.full(rate.size, None, dtype=object)
    rate[seg_key] = n_req / window_s
    cvs[seg_key] = cv
    shape[seg_key] = fam["shape"]
    scale[seg_key] = fam["scale"]
    family[seg_key] = fam["family"]
    # estimates are stored at float32 precision (relative 6e-8, far below their sampling error) so
    # that the pool compresses well; rates (count / window) stay exact
    cvs, shape, scale = (x.astype(np.float32).astype(np.float64) for x in (cvs, shape, scale))
    arrivals = pl.DataFrame({
        "client_id": np.repeat(np.asarray(client_names, dtype=object), n_w).tolist() if client_names else [],
        "window_start": np.tile((np.arange(w0, w1 + 1, dtype=np.float64)) * window_s, len(client_names)),
        "window_s": np.full(rate.size, window_s),
        "rate": rate,
        "cv": cvs,
        "family": pl.Series(family.tolist(), dtype=pl.String),
        "shape": shape,
        "scale": scale,
    }, schema_overrides={"client_id": pl.String}).with_columns(
        pl.col("cv").fill_nan(None), pl.col("shape").fill_nan(None), pl.col("scale").fill_nan(None))

    # --- request data ---------------------------------------------------------------------------
    data, data_fits = _data_pmfs(frame, ci, client_names, fields, data_window_s=data_window_s,
                                 exact_below=exact_below, bin_ratio=bin_ratio, spike_share=spike_share,
                                 max_bin_mass=max_bin_mass,
                                 min_fit_requests=min_fit_requests)
    with_data = set(data["client_id"].unique().to_list()) if data.height else set()

    # --- conversations --------------------------------------------------------------------------
    conv, conv_pmfs, conv_note = None, None, "not fitted (conversations=False)"
    if conversations:
        conv, conv_pmfs, conv_note = _conversations(store, frame, ci, client_names, bin_ratio=bin_ratio)

    residual_note = (f"residual: {n_small} client(s) below min_requests={min_requests}"
                     + (f" and {n_null} request(s) without client id" if n_null else "") + " merged")
    clients = pl.DataFrame({"client_id": client_names}, schema={"client_id": pl.String}).select(
        "client_id",
        pl.lit(True).alias("has_arrivals"),
        pl.col("client_id").is_in(list(with_data)).alias("has_data"),
        pl.when(pl.col("client_id") == residual_id).then(pl.lit(residual_note)).otherwise(pl.lit("")).alias("note"),
    )
    pool_span = (w0 * window_s, (w1 + 1) * window_s)
    provenance = {
        "source": {"format": "store", "path": str(Path(store.path).resolve()), "sha256": _store_sha256(store),
                   "sha256_of": REQUESTS_FILE, "rows": frame.height, "origin": dict(store.manifest.get("origin") or {})},
        "servelab_version": __version__,
        "fitted_by": "servelab.fitting.pool_fit.fit_pool",
        "settings": {"window_s": window_s, "data_window_s": data_window_s, "min_requests": min_requests,
                     "families": list(families), "family_selection": "lowest AIC", "min_fit_gaps": min_fit_gaps, "spike_share": spike_share,
                     "max_bin_mass": max_bin_mass,
                     "max_fit_gaps": max_fit_gaps, "exact_below": exact_below, "bin_ratio": bin_ratio,
                     "min_fit_requests": min_fit_requests, "residual_id": residual_id,
                     "stored_precision": "estimates and probabilities rounded to float32 precision; rates exact",
                     "reason_ratio_grid": "nearest of k/501, k = 0..500 (ServeGen's grid values)", "modality_tokens": "per item (tokens / count)"},
        "residual": {"clients_merged": n_small, "requests_without_client": n_null},
        "zero_gaps_left_out_of_family_fits": n_zero_gaps,
        "conversations": conv_note,
    }
    return ClientPool(clients=clients, arrivals=arrivals, data=data if data.height else None,
                      data_fits=data_fits if data_fits.height else None, conversations=conv,
                      conversation_pmfs=conv_pmfs, window_s=window_s, data_window_s=data_window_s, span=pool_span,
                      fields=[f[0] for f in fields], provenance=provenance)


def _conversations(store: TraceStore, frame: pl.DataFrame, ci: np.ndarray, names: list[str], *, bin_ratio: float):
    """Per-client conversation parameters and PMFs (turns exact, ITT log-binned)."""
    from servelab.analysis.conversations import available_link_rules, link_conversations
    from servelab.analysis.exceptions import NotApplicableError

    rules = available_link_rules(store)
    if not rules:
        return None, None, "no link information in the store"
    if rules[0] == "conversation_id":
        # explicit ids: the turns of a conversation are its requests in arrival order (the rule of
        # analysis.conversations), done here as polars group-bys: linking every request of a 10 M-row
        # store through link_conversations takes minutes. Requests without an id are single-turn.
        rows = frame.select("conversation_id", "timestamp", pl.Series("cidx", ci))
        linked = rows.filter(pl.col("conversation_id").is_not_null())
        single = rows.filter(pl.col("conversation_id").is_null()).select("cidx", pl.lit(1, pl.Int64).alias("turns"))
        per_conv = pl.concat([
            linked.group_by("conversation_id").agg(pl.col("cidx").first(), pl.len().cast(pl.Int64).alias("turns"))
            .select("cidx", "turns"),
            single,
        ])
        links = linked.select("cidx", pl.col("timestamp").diff().over("conversation_id").alias("itt_s"))
        rule, n_conv = "conversation_id", per_conv.height
        n_multi = int((per_conv["turns"] >= 2).sum())
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                conv = link_conversations(store, rule=rules[0])
        except NotApplicableError as err:
            return None, None, err.reason
        rid = frame.select("request_id", pl.Series("cidx", ci))
        links = conv.links.join(rid, on="request_id", how="inner")
        owner = links.filter(pl.col("request_id") == pl.col("conversation")).select("conversation", "cidx")
        per_conv = (links.group_by("conversation").agg(pl.len().alias("turns"))
                    .join(owner, on="conversation", how="inner").select("cidx", "turns"))
        links = links.select("cidx", "itt_s")
        rule, n_conv, n_multi = rules[0], conv.summary.n_conversations, conv.summary.n_multi_turn
    name_of = pl.DataFrame({"cidx": np.arange(len(names), dtype=np.int64), "client_id": names})
    per_conv = per_conv.with_columns(pl.col("cidx").cast(pl.Int64), pl.col("turns").cast(pl.Int64))
    links = links.with_columns(pl.col("cidx").cast(pl.Int64))
    req_per_client = pl.DataFrame({"cidx": np.arange(len(names), dtype=np.int64),
                                   "len": np.bincount(ci, minlength=len(names))})
    table = (per_conv.group_by("cidx").agg(
        pl.len().alias("n_conversations"),
        pl.col("turns").mean().alias("turns_mean"),
        pl.col("turns").filter(pl.col("turns") >= 2).sum().alias("multi_req"))
        .join(req_per_client, on="cidx", how="left")
        .join(links.group_by("cidx").agg(pl.col("itt_s").mean().alias("itt_mean_s")), on="cidx", how="left")
        .join(name_of, on="cidx")
        .select("client_id", pl.col("n_conversations").cast(pl.Int64),
                (pl.col("multi_req").fill_null(0) / pl.col("len")).alias("multi_turn_share"),
                pl.col("turns_mean").cast(pl.Float64), pl.col("itt_mean_s").cast(pl.Float64),
                pl.lit(None, pl.String).alias("turns_fit"), pl.lit(None, pl.String).alias("itt_fit"))
        .sort("client_id"))
    turns = (per_conv.group_by("cidx", "turns").len()
             .select("cidx", pl.lit("turns").alias("quantity"), pl.col("turns").cast(pl.Float64).alias("value"),
                     pl.col("len").cast(pl.Int64).alias("n")))
    # ITT: 0.1 s bins below 1 s, log bins of ratio bin_ratio above (value = bin mean)
    itt = (links.filter(pl.col("itt_s").is_not_null() & (pl.col("itt_s") >= 0))
           .with_columns(pl.when(pl.col("itt_s") < 1).then((pl.col("itt_s") * 10).floor() + 1e6)
                         .otherwise(bin_values(pl.col("itt_s"), exact_below=1, bin_ratio=bin_ratio)).alias("bin"))
           .group_by("cidx", "bin").agg(pl.col("itt_s").mean().cast(pl.Float32).cast(pl.Float64).alias("value"),
                                        pl.len().cast(pl.Int64).alias("n"))
           .select("cidx", pl.lit("itt_s").alias("quantity"), "value", "n"))
    pmfs = (pl.concat([turns, itt])
            .with_columns((pl.col("n") / pl.col("n").sum().over("cidx", "quantity")).cast(pl.Float32).cast(pl.Float64)
                          .alias("probability"))
            .join(name_of, on="cidx")
            .select("client_id", "quantity", "value", "probability").sort("client_id", "quantity", "value"))
    note = f"linked by {rule}: {n_conv} conversations, {n_multi} multi-turn"
    return table, pmfs, note


# ---------------------------------------------------------------------------------------- checks
def family_cv(family: np.ndarray, shape: np.ndarray) -> np.ndarray:
    r"""CV implied by a family and its shape: Gamma :math:`1/\sqrt{a}`, Weibull
    :math:`\sqrt{\Gamma(1 + 2/c) / \Gamma(1 + 1/c)^2 - 1}`, Exponential 1; NaN otherwise."""
    family = np.asarray(family, dtype=object)
    shape = np.asarray(shape, dtype=float)
    out = np.full(family.size, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        g = family == "gamma"
        out[g] = 1.0 / np.sqrt(shape[g])
        wb = family == "weibull"
        c = shape[wb]
        out[wb] = np.sqrt(np.expm1(special.gammaln(1 + 2 / c) - 2 * special.gammaln(1 + 1 / c)))
        out[family == "exponential"] = 1.0
    return out


def compare_pools(reference, fitted, *, min_count_cv: int = 1000, min_count_family: int = 1000,
                  min_requests_ks: int = 200, ratio_resolution: float = 0.01) -> dict[str, pl.DataFrame]:
    """Compare a fitted pool with the pool its trace was sampled from, client by client.

    Returns
    -------
    dict of polars.DataFrame
        ``rate``: per client and window the reference count ``lambda = rate * window_s``, the
        fitted count and ``z = (n - lambda) / sqrt(lambda)`` (Poisson); ``cv``: windows with at
        least ``min_count_cv`` requests, the reference's recorded CV (``cv_ref``), the CV its family
        and shape imply (``cv_family_ref``; a sampler reproduces this one), the fitted CV and the
        relative differences ``rel_diff`` (to the recorded) and ``rel_diff_family``;
        ``family``: windows with at least ``min_count_family`` requests, both families and shapes;
        ``data``: per client, data window and field with at least ``min_requests_ks`` fitted
        requests, the KS distance between the two PMFs (CDFs compared on the union of values;
        ``reason_ratio`` values first rounded to ``ratio_resolution``).
    """
    ref = reference.arrivals.select("client_id", "window_start", pl.col("rate").alias("rate_ref"),
                                    pl.col("cv").alias("cv_ref"), pl.col("family").alias("family_ref"),
                                    pl.col("shape").alias("shape_ref"))
    ref = ref.with_columns(pl.Series("cv_family_ref", family_cv(ref["family_ref"].to_numpy(),
                                                                ref["shape_ref"].fill_null(np.nan).to_numpy())).fill_nan(None))
    fit = fitted.arrivals.select("client_id", "window_start", pl.col("rate").alias("rate_fit"),
                                 pl.col("cv").alias("cv_fit"), pl.col("family").alias("family_fit"))
    w = reference.window_s
    both = ref.join(fit, on=["client_id", "window_start"], how="left").with_columns(
        pl.col("rate_fit").fill_null(0.0)).with_columns(
        (pl.col("rate_ref") * w).alias("lam"), (pl.col("rate_fit") * w).round().alias("n"))
    rate = both.filter(pl.col("lam") > 0).with_columns(((pl.col("n") - pl.col("lam")) / pl.col("lam").sqrt()).alias("z"))
    cv = both.filter((pl.col("n") >= min_count_cv) & pl.col("cv_fit").is_not_null() & (pl.col("cv_ref") > 0)).with_columns(
        ((pl.col("cv_fit") - pl.col("cv_ref")) / pl.col("cv_ref")).alias("rel_diff"),
        ((pl.col("cv_fit") - pl.col("cv_family_ref")) / pl.col("cv_family_ref")).alias("rel_diff_family"))
    shape_fit = fitted.arrivals.select("client_id", "window_start", pl.col("shape").alias("shape_fit"))
    family = (both.filter((pl.col("n") >= min_count_family) & pl.col("family_ref").is_not_null())
              .join(shape_fit, on=["client_id", "window_start"], how="left")
              .select("client_id", "window_start", "n", "cv_ref", "cv_family_ref", "family_ref", "family_fit",
                      "shape_ref", "shape_fit"))
    # data: KS between PMFs on the union of support points
    dw = reference.data_window_s
    counts = (fitted.arrivals.with_columns(((pl.col("window_start") / dw).floor() * dw).alias("dws"))
              .group_by("client_id", "dws").agg((pl.col("rate") * pl.col("window_s")).sum().round().alias("n_requests"))
              .rename({"dws": "window_start"}))
    keys = ["client_id", "window_start", "field"]
    # ratios are compared at ratio_resolution: a trace stores reason tokens as integers, so a ratio
    # is only known to 1/output_tokens, coarser than ServeGen's 1/501 grid for short outputs
    coarse = pl.when(pl.col("field") == "reason_ratio").then(
        (pl.col("value") / ratio_resolution).round() * ratio_resolution).otherwise(pl.col("value"))

    def table(pool, name):
        return (pool.data.with_columns(coarse.alias("value")).group_by(keys + ["value"])
                .agg(pl.col("probability").sum().alias(name)))

    a = table(reference, "p_ref")
    b = table(fitted, "p_fit")
    common = a.select(keys).unique().join(b.select(keys).unique(), on=keys)
    u = (pl.concat([a.join(common, on=keys).select(*keys, "value"), b.join(common, on=keys).select(*keys, "value")])
         .unique().join(a, on=keys + ["value"], how="left").join(b, on=keys + ["value"], how="left")
         .with_columns(pl.col("p_ref").fill_null(0.0), pl.col("p_fit").fill_null(0.0)).sort(keys + ["value"]))
    data = (u.with_columns((pl.col("p_ref").cum_sum().over(keys) - pl.col("p_fit").cum_sum().over(keys)).abs().alias("d"))
            .group_by(keys).agg(pl.col("d").max().alias("ks"))
            .join(counts, on=["client_id", "window_start"], how="left")
            .filter(pl.col("n_requests") >= min_requests_ks).sort(keys))
    return {"rate": rate, "cv": cv, "family": family, "data": data}

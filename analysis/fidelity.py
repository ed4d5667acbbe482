r"""Fidelity: how close a candidate workload is to a reference one (ServeGen section 6.2, in numbers).

ServeGen's Fig. 19 shows, in short windows (3 s), the window request rate against the window's
mean input (or output) length, for the real workload, ServeGen's and the naive one. This module
turns that picture into distances:

- ``joint_input_energy`` / ``joint_output_energy``: the energy distance between the 2-D
  distributions of (window rate, window mean length), both coordinates divided by the
  reference's standard deviation; with :math:`X, X'` from the reference and :math:`Y, Y'` from
  the candidate, :math:`D = \sqrt{2E\|X-Y\| - E\|X-X'\| - E\|Y-Y'\|}` (0 iff equal);
- ``rate_input_corr`` / ``rate_output_corr``: Spearman correlation of window rate and window mean
  length (the real workload's rate-length coupling that per-client composition reproduces);
- ``window_rate_ks``: KS distance between the distributions of window rates (empty windows
  count, rate 0); ``window_rate_cv``: CV of window rates (variability);
- ``gap_cv``: CV of inter-arrival gaps of the whole trace;
- ``input_ks`` / ``output_ks``: KS distance between per-request length distributions.

The window: ServeGen's 3 s suits a busy service, but on a sparse trace almost every 3-s window is
empty and every window statistic then says "0 requests" whatever the candidate. Unless a window is
given, :func:`choose_window` picks one from the reference: **the shortest window of**
:data:`WINDOW_LADDER` **(3 s upwards) whose median window (empty windows included) holds at least**
:data:`MIN_MEDIAN_REQUESTS` **(10) requests**, provided the trace still spans at least
:data:`MIN_WINDOWS` (30) full windows; when no ladder window meets both, the longest window that
still leaves :data:`MIN_WINDOWS` windows (and at least the shortest rung). The reference alone decides, so
every candidate is scored on the same windows.

Works on any traces (two real days, real vs generated): a :class:`~servelab.analysis.store.TraceStore`,
a store folder, a canonical Parquet file or a polars DataFrame. It lives in ``analysis`` because
it needs only the store and numpy/scipy, so the generator, the reports and the CLI can all use it;
it does not generate workloads and does not plot.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import polars as pl
from scipy import stats
from servelab.analysis.exceptions import EmptyTraceError, TraceFormatError
from servelab.analysis.store import TraceStore, open_store
from servelab.analysis.window_rates import covered_span, exposure, full_enough, window_index, window_rate

__all__ = [
    "METRICS",
    "MIN_MEDIAN_REQUESTS",
    "MIN_WINDOWS",
    "WINDOW_LADDER",
    "FidelityResult",
    "WindowChoice",
    "choose_window",
    "compare",
    "energy_distance",
    "fidelity",
    "load_trace",
    "window_stats",
]

#: metric -> (kind, description); kind "value" has a reference value, "distance" is 0 at identity
METRICS = MappingProxyType({
    "n_requests": ("value", "requests in the compared span"),
    "mean_rate": ("value", "requests per second"),
    "gap_cv": ("value", "CV of inter-arrival gaps"),
    "window_rate_cv": ("value", "CV of window rates"),
    "rate_input_corr": ("value", "Spearman rho of window rate and window mean input"),
    "rate_output_corr": ("value", "Spearman rho of window rate and window mean output"),
    "window_rate_ks": ("distance", "KS D of window rates"),
    "joint_input_energy": ("distance", "energy distance of (window rate, mean input), reference-standardised"),
    "joint_output_energy": ("distance", "energy distance of (window rate, mean output), reference-standardised"),
    "input_ks": ("distance", "KS D of per-request input tokens"),
    "output_ks": ("distance", "KS D of per-request output tokens"),
})


#: candidate window lengths (s) of :func:`choose_window`, shortest first (3 s: ServeGen's Fig. 19)
WINDOW_LADDER = (3.0, 6.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
                 21600.0, 43200.0, 86400.0)
#: requests the median window must hold for the window statistics to mean something
MIN_MEDIAN_REQUESTS = 10
#: full windows the trace must still span at the chosen window
MIN_WINDOWS = 30


@dataclass(frozen=True)
class WindowChoice:
    """The window :func:`choose_window` picked and why.

    Attributes
    ----------
    window_s : float
        The chosen window length (seconds).
    median_requests : float
        Requests in the reference's median window at that length (empty windows count).
    n_windows : int
        Full windows of the reference at that length.
    rule : str
        The rule, in words, and whether it was met.
    """

    window_s: float
    median_requests: float
    n_windows: int
    rule: str


def _window_counts(t: np.ndarray, window_s: float) -> np.ndarray:
    """Requests per full window (exposure >= half the window) of times ``t``."""
    span = covered_span(float(t.min()), float(t.max()))
    k = window_index(t, window_s)
    k0 = int(k.min())
    n = np.bincount(k - k0)
    starts = (k0 + np.arange(n.size)) * float(window_s)
    keep = full_enough(exposure(starts, window_s, span), window_s, 0.5)
    return n[keep]


def choose_window(trace, *, min_median: int = MIN_MEDIAN_REQUESTS, min_windows: int = MIN_WINDOWS,
                  ladder: Sequence[float] = WINDOW_LADDER) -> WindowChoice:
    """The shortest window of ``ladder`` whose median window of ``trace`` holds >= ``min_median`` requests.

    The rule (module docstring): the shortest ``W`` in ``ladder`` such that the median request
    count over the trace's full windows of ``W`` (empty windows included) is at least
    ``min_median`` and the trace spans at least ``min_windows`` full windows. When no ``W``
    meets both, the longest ``W`` that still gives ``min_windows`` windows (the shortest rung when
    even that one gives fewer); :attr:`WindowChoice.rule` says which case applied.

    Raises
    ------
    ValueError
        If ``min_median`` or ``min_windows`` is not a positive integer, or ``ladder`` is empty or
        holds a non-positive length.
    """
    for name, v in (("min_median", min_median), ("min_windows", min_windows)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    ladder = sorted(float(w) for w in ladder)
    if not ladder or ladder[0] <= 0 or not all(math.isfinite(w) for w in ladder):
        raise ValueError(f"ladder must hold positive finite window lengths; got {ladder!r}")
    t = load_trace(trace)["timestamp"].cast(pl.Float64).to_numpy()
    rule = (f"shortest of {len(ladder)} windows from {ladder[0]:g} s whose median window holds >= {min_median} "
            f"requests, with >= {min_windows} windows")
    fallback = None
    for w in ladder:
        n = _window_counts(t, w)
        if n.size < min_windows:
            break
        med = float(np.median(n))
        fallback = WindowChoice(window_s=w, median_requests=med, n_windows=int(n.size),
                                rule=rule + f"; not met (trace too short or too sparse): longest window with "
                                            f">= {min_windows} windows used")
        if med >= min_median:
            return WindowChoice(window_s=w, median_requests=med, n_windows=int(n.size), rule=rule)
    if fallback is None:
        n = _window_counts(t, ladder[0])
        return WindowChoice(window_s=ladder[0], median_requests=float(np.median(n)) if n.size else 0.0,
                            n_windows=int(n.size), rule=rule + f"; not met (fewer than {min_windows} windows even at "
                                                              f"{ladder[0]:g} s): shortest window used")
    return fallback


@dataclass(frozen=True)
class FidelityResult:
    """The metrics of one candidate against one reference (see :data:`METRICS`)."""

    name: str
    window_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", MappingProxyType({k: float(v) for k, v in self.metrics.items()}))


def load_trace(trace) -> pl.DataFrame:
    """The columns fidelity needs (timestamp, input/output tokens when present) as a frame."""
    if isinstance(trace, pl.DataFrame):
        frame = trace
    elif isinstance(trace, TraceStore):
        frame = trace.to_polars([c for c in ("timestamp", "input_tokens", "output_tokens") if c in trace.columns])
    elif isinstance(trace, (str, os.PathLike)):
        path = Path(trace)
        if path.is_dir():
            return load_trace(open_store(path))
        if path.suffix in (".parquet", ".csv"):
            try:
                frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
            except (OSError, pl.exceptions.PolarsError) as err:
                raise TraceFormatError(f"cannot read {str(path)!r} as a canonical {path.suffix[1:]} file: {err}") from None
        else:
            raise TraceFormatError(
                f"{str(path)!r} is neither a trace store folder nor a canonical .parquet / .csv file; "
                "ingest it first with `servelab ingest`"
            )
    else:
        raise TypeError(f"trace must be a TraceStore, a path or a polars DataFrame; got {type(trace).__name__}")
    if "timestamp" not in frame.columns:
        raise TraceFormatError(f"a trace needs a 'timestamp' column; columns found: {frame.columns}")
    keep = [c for c in ("timestamp", "input_tokens", "output_tokens") if c in frame.columns]
    frame = frame.select(keep)
    if frame.height < 2:
        raise EmptyTraceError(f"fidelity needs at least 2 requests; got {frame.height}")
    return frame


def window_stats(trace, *, window_s: float = 3.0, min_exposure_fraction: float = 0.5) -> pl.DataFrame:
    """Per window of ``window_s`` seconds: rate and mean lengths, by the project's one definition.

    Windows are ``[k W, (k + 1) W)`` on the trace's clock and a window's rate is its requests over
    its exposure (the part inside the trace's span ``[first, last]``; see
    :mod:`servelab.analysis.window_rates`). Windows covered for less than
    ``min_exposure_fraction`` of ``window_s`` (the trace's ragged ends) are left out.

    Returns
    -------
    polars.DataFrame
        ``window`` (index ``k``), ``window_start_s``, ``exposure_s``, ``n``, ``rate`` (req/s),
        ``mean_input_tokens``, ``mean_output_tokens`` (null in empty windows or when the trace
        lacks the column), in window order; empty windows have ``n = 0`` and ``rate = 0``.
    """
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}")
    frame = load_trace(trace)
    t = frame["timestamp"].cast(pl.Float64).to_numpy()
    span = covered_span(float(t.min()), float(t.max()))
    k = window_index(t, window_s)
    k0 = int(k.min())
    local = k - k0
    n_win = int(local.max()) + 1
    n = np.bincount(local, minlength=n_win)
    starts = (k0 + np.arange(n_win)) * float(window_s)
    exp_s = exposure(starts, window_s, span)
    columns = {"window": k0 + np.arange(n_win, dtype=np.int64), "window_start_s": starts, "exposure_s": exp_s,
               "n": n.astype(np.int64), "rate": window_rate(n, exp_s)}
    for c in ("input_tokens", "output_tokens"):
        mean = np.full(n_win, np.nan)
        if c in frame.columns:
            v = frame[c].cast(pl.Float64).to_numpy()
            ok = np.isfinite(v)
            cnt = np.bincount(local[ok], minlength=n_win)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.bincount(local[ok], weights=v[ok], minlength=n_win) / cnt
        columns[f"mean_{c}"] = mean
    keep = full_enough(exp_s, window_s, min_exposure_fraction)
    out = pl.DataFrame(columns).filter(pl.Series(keep))
    return out.with_columns(pl.col("mean_input_tokens", "mean_output_tokens").fill_nan(None))


def energy_distance(x: np.ndarray, y: np.ndarray, *, max_n: int = 3000, seed: int = 0) -> float:
    r"""Energy distance between two samples of points (rows; 1-D arrays are points on a line).

    :math:`\sqrt{2E|X-Y| - E|X-X'| - E|Y-Y'|}` (scipy's ``energy_distance`` in one dimension).

    Samples larger than ``max_n`` are subsampled (seeded) so the cost stays
    :math:`O(\text{max\_n}^2)`.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.shape[0] < 2 or y.shape[0] < 2:
        return float("nan")
    if x.shape[0] > max_n:
        x = x[rng.choice(x.shape[0], max_n, replace=False)]
    if y.shape[0] > max_n:
        y = y[rng.choice(y.shape[0], max_n, replace=False)]

    def mean_dist(a, b):
        # blocks of rows bound the memory; each block's distances are
        # sqrt(((a - b) ** 2).sum(axis=2)) computed in place in buffers allocated once. Up to two
        # dimensions (what the report uses) the sum over the last axis is one addition per pair,
        # done on whole per-dimension planes instead of numpy's reduction along a short axis:
        # the same operations in the same order, so the same bits, at a fraction of the CPU
        block = min(500, a.shape[0])
        k = a.shape[1]
        dist = np.empty((block, b.shape[0]))
        other = np.empty((block, b.shape[0])) if k == 2 else None
        diff = np.empty((block, b.shape[0], k)) if k > 2 else None
        total = 0.0
        for i in range(0, a.shape[0], block):
            m = min(block, a.shape[0] - i)
            s = dist[:m]
            if k > 2:
                d = diff[:m]
                np.subtract(a[i:i + m, None, :], b[None, :, :], out=d)
                np.square(d, out=d)
                np.sum(d, axis=2, out=s)
            else:
                np.subtract(a[i:i + m, 0, None], b[None, :, 0], out=s)
                np.square(s, out=s)
                if k == 2:
                    o = other[:m]
                    np.subtract(a[i:i + m, 1, None], b[None, :, 1], out=o)
                    np.square(o, out=o)
                    np.add(s, o, out=s)
            np.sqrt(s, out=s)
            total += s.sum()
        return total / (a.shape[0] * b.shape[0])

    e = 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)
    return float(math.sqrt(max(e, 0.0)))


def _gap_cv(t: np.ndarray) -> float:
    g = np.diff(np.sort(t))
    return float(g.std() / g.mean()) if g.size > 1 and g.mean() > 0 else float("nan")


def _spearman(a, b) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.all(a[ok] == a[ok][0]) or np.all(b[ok] == b[ok][0]):
        return float("nan")
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def _ks(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(stats.ks_2samp(a, b).statistic)


def _describe(frame: pl.DataFrame, win: pl.DataFrame) -> dict[str, float]:
    t = frame["timestamp"].to_numpy()
    rate = win["rate"].to_numpy()
    out = {
        "n_requests": float(frame.height),
        "mean_rate": float(frame.height / max(t.max() - t.min(), 1e-300)),
        "gap_cv": _gap_cv(t),
        "window_rate_cv": float(rate.std() / rate.mean()) if rate.size and rate.mean() > 0 else float("nan"),
    }
    for col, key in (("mean_input_tokens", "rate_input_corr"), ("mean_output_tokens", "rate_output_corr")):
        out[key] = _spearman(rate, win[col].cast(pl.Float64).fill_null(np.nan).to_numpy())
    return out


def fidelity(reference, candidate, *, window_s: float | None = None, name: str = "candidate", seed: int = 0,
             max_points: int = 3000) -> FidelityResult:
    """All :data:`METRICS` of ``candidate`` against ``reference``.

    ``window_s`` None (default) picks the window from the reference with :func:`choose_window`;
    :attr:`FidelityResult.window_s` says which was used.
    """
    ref, cand = load_trace(reference), load_trace(candidate)
    if window_s is None:
        window_s = choose_window(ref).window_s
    wr, wc = window_stats(ref, window_s=window_s), window_stats(cand, window_s=window_s)
    metrics = _describe(cand, wc)
    metrics["window_rate_ks"] = _ks(wr["rate"].to_numpy(), wc["rate"].to_numpy())
    rate_sd = float(wr["rate"].std() or 1.0) or 1.0
    for col, key in (("mean_input_tokens", "joint_input_energy"), ("mean_output_tokens", "joint_output_energy")):
        a = wr.filter(pl.col("n") > 0).select("rate", col).drop_nulls()
        b = wc.filter(pl.col("n") > 0).select("rate", col).drop_nulls()
        if a.height < 2 or b.height < 2:
            metrics[key] = float("nan")
            continue
        scale = np.array([rate_sd, float(a[col].std() or 1.0) or 1.0])
        metrics[key] = energy_distance(a.to_numpy() / scale, b.to_numpy() / scale, max_n=max_points, seed=seed)
    for col, key in (("input_tokens", "input_ks"), ("output_tokens", "output_ks")):
        metrics[key] = (_ks(ref[col].to_numpy(), cand[col].to_numpy())
                        if col in ref.columns and col in cand.columns else float("nan"))
    return FidelityResult(name=name, window_s=float(window_s), metrics={k: metrics[k] for k in METRICS})


def compare(reference, candidates: Sequence, *, names: Sequence[str] | None = None,
            window_s: float | None = None, seed: int = 0) -> pl.DataFrame:
    """A table with one row per metric and one column per candidate (plus the reference's values).

    Parameters
    ----------
    reference
        The real (or target) workload: store, store folder, Parquet file or DataFrame.
    candidates : sequence
        Workloads to score against it.
    names : sequence of str, optional
        Column names of the candidates (default ``candidate_1``, ...).
    window_s : float, optional
        Window length of the window statistics (ServeGen: 3 s); None (default) picks it from the
        reference with :func:`choose_window` (the median window holds >= 10 requests).

    Returns
    -------
    polars.DataFrame
        ``metric``, ``kind`` ("value": compare with the reference column; "distance": 0 is
        identical, lower is closer), ``reference``, then one column per candidate (to know the
        window an automatic choice used, call :func:`choose_window` first and pass it).
    """
    if len(candidates) == 0:
        raise ValueError("compare needs at least one candidate; got none")
    names = list(names) if names is not None else [f"candidate_{i + 1}" for i in range(len(candidates))]
    if len(names) != len(candidates) or len(set(names)) != len(names) or "reference" in names:
        raise ValueError(f"names must be {len(candidates)} distinct names other than 'reference'; got {names}")
    ref = load_trace(reference)
    if window_s is None:
        window_s = choose_window(ref).window_s
    ref_desc = _describe(ref, window_stats(ref, window_s=window_s))
    table = {
        "metric": list(METRICS),
        "kind": [METRICS[m][0] for m in METRICS],
        "reference": [ref_desc.get(m, 0.0 if METRICS[m][0] == "distance" else float("nan")) for m in METRICS],
    }
    for nm, cand in zip(names, candidates):
        res = fidelity(ref, cand, window_s=window_s, name=nm, seed=seed)
        table[nm] = [res.metrics[m] for m in METRICS]
    # prefix-cache rows when the workloads carry prefix_blocks (issue 15: analysis.prefix_fidelity)
    from servelab.analysis.prefix_fidelity import prefix_rows
    return pl.concat([pl.DataFrame(table), prefix_rows(reference, candidates, names)], how="vertical_relaxed")

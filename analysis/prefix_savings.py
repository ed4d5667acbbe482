r"""How much of the prompt load a prefix cache saves, with a seeded cluster-bootstrap interval.

The saving of a cache is the share of prompt tokens it serves (its token hit rate). Each block's
outcome (served or not by an infinite cache, or by an LRU cache of ``C`` blocks) is measured once
on the whole trace; the interval resamples *clusters* of requests with replacement (clients when
the trace has at least :data:`MIN_CLUSTERS` of them, else :data:`TIME_CLUSTERS` contiguous slices of
requests in arrival order) and recomputes the ratio of sums. It describes how much the saving
depends on which clients (or periods) the trace happened to hold, with the cache's dynamics held
fixed: it does not re-simulate the cache on each resample.

Every draw takes a seed; the same seed gives the same interval. This module must not import
fitting, generator, figures or matplotlib, and its results hold numbers only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MIN_CLUSTERS",
    "TIME_CLUSTERS",
    "SavingEstimate",
    "bootstrap_ratio",
    "bootstrap_ratios",
    "request_clusters",
    "saving_estimate",
    "saving_estimates",
]

#: fewest clusters a bootstrap interval is computed on
MIN_CLUSTERS = 20
#: contiguous slices of requests used as clusters when the trace has too few clients
TIME_CLUSTERS = 50


@dataclass(frozen=True)
class SavingEstimate:
    """A ratio of sums (a saving, or a ratio of savings) with its bootstrap interval.

    Attributes
    ----------
    what : str
        What the ratio is, in words.
    value : float
        On the whole trace.
    low, high : float
        Percentile bootstrap interval at ``level`` (NaN with fewer than :data:`MIN_CLUSTERS`
        clusters).
    level : float
        Coverage of the interval (e.g. 0.95).
    n_boot : int
        Resamples.
    seed : int
    clusters : str
        ``"client"`` or ``"time slice"``.
    n_clusters : int
    """

    what: str
    value: float
    low: float
    high: float
    level: float
    n_boot: int
    seed: int
    clusters: str
    n_clusters: int

    @property
    def method(self) -> str:
        """The interval's method in words."""
        return (f"percentile bootstrap over {self.n_clusters:,} {self.clusters}s "
                f"(B={self.n_boot}, seed={self.seed}, {self.level:.0%})")

    def to_dict(self) -> dict:
        return {"what": self.what, "value": self.value, "low": self.low, "high": self.high, "level": self.level,
                "n_boot": self.n_boot, "seed": self.seed, "clusters": self.clusters, "n_clusters": self.n_clusters}


def request_clusters(n_requests: int, *, client_codes: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Cluster of each request: its client (with at least :data:`MIN_CLUSTERS` known clients; a
    request without a client is a cluster of its own slice) or its contiguous time slice.

    Returns
    -------
    (numpy.ndarray of int64, str)
        Dense cluster ids and ``"client"`` or ``"time slice"``.
    """
    if client_codes is not None:
        codes = np.asarray(client_codes, dtype=np.int64)
        known = codes >= 0
        if known.any() and int(np.count_nonzero(np.bincount(codes[known]))) >= MIN_CLUSTERS:
            # unknown clients: one extra cluster per time slice
            slices = np.arange(n_requests, dtype=np.int64) * TIME_CLUSTERS // max(n_requests, 1)
            raw = np.where(known, codes, int(codes.max()) + 1 + slices)
            # dense ids in the order of the raw codes (np.unique's inverse, by counting: no sort)
            dense = np.cumsum(np.bincount(raw) > 0) - 1
            return dense[raw].astype(np.int64), "client"
    return np.arange(n_requests, dtype=np.int64) * TIME_CLUSTERS // max(n_requests, 1), "time slice"


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, *, n_boot: int, seed: int,
                    level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``sum(num) / sum(den)`` over clusters resampled with replacement.

    Parameters
    ----------
    num, den : numpy.ndarray
        One value per cluster.
    n_boot : int
        Resamples (>= 1).
    seed : int
    level : float
        Coverage in (0, 1).

    Returns
    -------
    (float, float)
        NaN, NaN with fewer than :data:`MIN_CLUSTERS` clusters.
    """
    return bootstrap_ratios([(num, den)], n_boot=n_boot, seed=seed, level=level)[0]


def bootstrap_ratios(pairs, *, n_boot: int, seed: int, level: float = 0.95) -> list[tuple[float, float]]:
    """:func:`bootstrap_ratio` of several ``(num, den)`` pairs over the same clusters, on the same
    resamples: the cluster counts are drawn once for all pairs (each pair's interval equals a
    separate call's with the same seed, at a fraction of the draws).

    Parameters
    ----------
    pairs : sequence of (numpy.ndarray, numpy.ndarray)
        Per-cluster numerators and denominators, all of one length.
    n_boot, seed, level
        As :func:`bootstrap_ratio`.

    Returns
    -------
    list of (float, float)
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    pairs = [(np.asarray(num, dtype=float), np.asarray(den, dtype=float)) for num, den in pairs]
    sizes = {x.size for pair in pairs for x in pair}
    if len(sizes) > 1:
        raise ValueError(f"every numerator and denominator needs one value per cluster; got sizes {sorted(sizes)}")
    k = sizes.pop() if sizes else 0
    if k < MIN_CLUSTERS:
        return [(math.nan, math.nan)] * len(pairs)
    rng = np.random.default_rng(seed)
    ratios = np.empty((len(pairs), n_boot))
    step = max(1, 2_000_000 // k)  # replicates per batch: bounded memory
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        counts = rng.multinomial(k, np.full(k, 1.0 / k), size=b)
        with np.errstate(invalid="ignore", divide="ignore"):
            for i, (num, den) in enumerate(pairs):
                ratios[i, start:start + b] = (counts @ num) / (counts @ den)
    out = []
    alpha = (1 - level) / 2
    for row in ratios:
        row = row[np.isfinite(row)]  # a resample of clusters with no denominator has no ratio
        if row.size == 0:
            out.append((math.nan, math.nan))
            continue
        lo, hi = np.quantile(row, [alpha, 1 - alpha])
        out.append((float(lo), float(hi)))
    return out


def saving_estimate(num: np.ndarray, den: np.ndarray, *, what: str, clusters: str, n_boot: int, seed: int,
                    level: float = 0.95, bounds: tuple[float, float] | None = None) -> SavingEstimate:
    """:class:`SavingEstimate` of ``sum(num) / sum(den)`` from per-cluster sums.

    ``bounds``: the ratio's parameter space (a share: ``(0, 1)``). The value and the interval's
    ends are clipped to it: an interval intersected with the set the true value lies in covers
    it whenever the interval did, so clipping keeps the coverage (it matters only for estimated
    numerators, e.g. a sample scaled by ``1 / rate``, whose resamples may leave the space).
    """
    interval = bootstrap_ratio(num, den, n_boot=n_boot, seed=seed, level=level)
    return _estimate(num, den, interval, what=what, clusters=clusters, n_boot=n_boot, seed=seed, level=level,
                     bounds=bounds)


def _estimate(num, den, interval: tuple[float, float], *, what: str, clusters: str, n_boot: int, seed: int,
              level: float, bounds: tuple[float, float] | None) -> SavingEstimate:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    total = den.sum()
    low, high = interval
    value = float(num.sum() / total) if total else math.nan
    if bounds is not None:
        lo_b, hi_b = bounds
        if not lo_b < hi_b:
            raise ValueError(f"bounds must be (low, high) with low < high; got {bounds!r}")
        value, low, high = (float(np.clip(x, lo_b, hi_b)) if not math.isnan(x) else x for x in (value, low, high))
    return SavingEstimate(what=what, value=value, low=low, high=high, level=float(level), n_boot=int(n_boot),
                          seed=int(seed), clusters=clusters, n_clusters=int(num.size))


def saving_estimates(specs, *, clusters: str, n_boot: int, seed: int, level: float = 0.95) -> list[SavingEstimate]:
    """:func:`saving_estimate` of several ratios over the same clusters, their intervals on the same
    resamples (:func:`bootstrap_ratios`; each equals a separate call's with the same seed).

    Parameters
    ----------
    specs : sequence of dict
        ``num``, ``den``, ``what`` and optionally ``bounds`` of each ratio.
    clusters, n_boot, seed, level
        As :func:`saving_estimate`.
    """
    specs = list(specs)
    intervals = bootstrap_ratios([(sp["num"], sp["den"]) for sp in specs], n_boot=n_boot, seed=seed, level=level)
    return [_estimate(sp["num"], sp["den"], iv, what=sp["what"], clusters=clusters, n_boot=n_boot, seed=seed,
                      level=level, bounds=sp.get("bounds")) for sp, iv in zip(specs, intervals)]

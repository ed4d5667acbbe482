"""The logging clock of a timestamp sequence: the step its timestamps were recorded on.

Real logs round arrival times to a clock (Mooncake's conversation trace: about 3 s; BurstGPT:
1 s), so many inter-arrival gaps are 0 and every positive gap sits near a whole multiple of the
step. Read as exact, such gaps make a Poisson process look bursty (gap CV 3 instead of 1). This
module finds the step from the gaps themselves; the gap analyses
(:mod:`servelab.analysis.arrivals`, :mod:`servelab.fitting.ties`) then treat gaps below it as
censored.

The rule (:func:`clock_from_gaps`), on the positive gaps :math:`g` of sorted timestamps:

- **tolerance** at a step :math:`s`: :math:`\\tau(s) = \\min(10\\,\\mathrm{ms}, 0.05\\,s)`
  (:data:`ABS_TOLERANCE_S`, :data:`REL_TOLERANCE`): a logger's jitter of a few ms around each
  tick stays on the lattice;
- **ties**: gaps :math:`g \\le \\tau(s)` are requests of the same tick;
- **lattice**: a gap is on the lattice when :math:`|g - k s| \\le \\tau(s)` for a whole
  :math:`k \\ge 1`; the step is refined by least squares over the gaps on the lattice;
- **accepted** when, among the gaps longer than :math:`\\tau(s)`, at least
  :data:`MIN_LATTICE_SHARE` (90 %) are on the lattice (so the smallest of them cluster at
  :math:`s`: none may sit strictly between a tie and one step, beyond the 10 % allowance for
  off-lattice gaps), at least :data:`MIN_ON_LATTICE` are, and that many could not land there by
  chance: the binomial probability of as many gaps within :math:`\\tau` of a multiple, each with
  probability :math:`2\\tau/s`, is below :data:`CHANCE_LEVEL` (10^-9);
- the **step** is the largest accepted :math:`s` among the candidates
  :math:`q / d` (:math:`q` a cluster of positive gaps at one of :data:`_QUANTILES`,
  :math:`d = 1 \\ldots` :data:`MAX_DIVISOR`): a clock finer than 1/64 of every such gap is not
  looked for (it could not tie gaps).

The **precision** of the stored values is the exact grid of the gaps (an approximate
floating-point GCD, every gap within 10^-4 steps or the float error of the timestamps); it is
None for continuous float times. ``coarse`` says that the step is coarser than that precision
(e.g. 3 s on millisecond integers, or any lattice with jitter in float times); a step equal to
the precision (integer seconds) is a clock too, but not a coarse one. ``censors`` says whether
the step distorts gap analyses: some gaps are ties, or the step is at least 10 % of the median
positive gap (:data:`MATTERS_FRACTION`). Detection reads a deterministic, evenly spaced subsample of at most
:data:`SAMPLE_GAPS` positive gaps.

This module computes no statistic beyond the clock and fits nothing.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import bdtrc

__all__ = [
    "Clock",
    "GapSample",
    "detect_clock",
    "clock_from_gaps",
    "clock_at_step",
    "store_clock",
    "resolve_clock",
    "ABS_TOLERANCE_S",
    "REL_TOLERANCE",
    "MIN_LATTICE_SHARE",
    "MIN_ON_LATTICE",
    "CHANCE_LEVEL",
    "MAX_DIVISOR",
    "SAMPLE_GAPS",
    "MATTERS_FRACTION",
]

#: absolute lattice tolerance (seconds): jitter of a few ms around each tick
ABS_TOLERANCE_S = 0.010
#: relative lattice tolerance (fraction of the step) for fine clocks
REL_TOLERANCE = 0.05
#: share of the gaps longer than the tolerance that must be on the lattice
MIN_LATTICE_SHARE = 0.9
#: fewest positive gaps on the lattice that can establish a clock
MIN_ON_LATTICE = 3
#: largest chance probability (binomial tail) of the on-lattice count under no clock
CHANCE_LEVEL = 1e-9
#: candidates are gap clusters divided by 1 .. MAX_DIVISOR
MAX_DIVISOR = 64
#: detection reads at most this many positive gaps (evenly spaced)
SAMPLE_GAPS = 20_000
#: a step at least this fraction of the median positive gap distorts gaps even without ties (a
#: finer one changes a gap CV by well under 1 %: rounding adds at most step^2 / 6 to a gap's variance)
MATTERS_FRACTION = 0.1

_QUANTILES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
_GCD_VALUES = 40
_GIVEN = ("detected", "user")


def _tolerance(step):
    return np.minimum(ABS_TOLERANCE_S, REL_TOLERANCE * np.asarray(step, dtype=float))


@dataclass(frozen=True)
class Clock:
    """The timestamp step of a trace (or of one source).

    Parameters
    ----------
    step_s : float or None
        The logging step in seconds: the coarse clock when one was found, else the precision of
        the stored values; None for continuous float times with no clock.
    coarse : bool
        A clock coarser than the timestamps' precision was found (see the module docstring).
    precision_s : float or None
        Exact grid of the stored values (None: continuous floats).
    lattice_share : float or None
        Share of the gaps longer than the tolerance that lie on the lattice of ``step_s``.
    zero_share : float or None
        Share of the gaps that are ties at the step (within the tolerance of 0; exactly 0 when
        there is no step); None without gaps.
    n : int
        Gaps examined (timestamps - 1).
    median_positive_s : float or None
        Median of the gaps longer than the tolerance (or of the positive gaps without a step).
    tolerance_s : float or None
        The lattice tolerance at ``step_s``.
    given : {"detected", "user"}
        Whether the step was detected or given by the user.
    """

    step_s: float | None
    coarse: bool
    precision_s: float | None
    lattice_share: float | None
    zero_share: float | None
    n: int
    median_positive_s: float | None = None
    tolerance_s: float | None = None
    given: str = "detected"

    def __post_init__(self) -> None:
        if self.given not in _GIVEN:
            raise ValueError(f"given must be one of {_GIVEN}; got {self.given!r}")
        for name in ("step_s", "precision_s", "lattice_share", "zero_share", "median_positive_s", "tolerance_s"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))
        object.__setattr__(self, "n", int(self.n))

    @property
    def censors(self) -> bool:
        """True when the step distorts gap analyses (ties, or step >= 10 % of the median gap)."""
        if self.step_s is None:
            return False
        if self.given == "user" or (self.zero_share or 0.0) > 0:
            return True
        median = self.median_positive_s
        return bool(median) and self.step_s >= MATTERS_FRACTION * median

    @property
    def censor_step_s(self) -> float | None:
        """The step below which gaps are censored (None when the clock does not matter)."""
        return self.step_s if self.censors else None

    def describe(self) -> str:
        """One line for people: the step, how it was found, and the shares."""
        if self.step_s is None:
            return f"no clock: continuous timestamps ({self.n} gaps)"
        kind = "given by the user" if self.given == "user" else (
            "coarse clock" if self.coarse else "timestamp precision")
        shares = []
        if self.zero_share is not None:
            shares.append(f"{100 * self.zero_share:.1f}% of gaps are ties")
        if self.lattice_share is not None:
            shares.append(f"{100 * self.lattice_share:.1f}% of the others on the lattice")
        tail = f"; {', '.join(shares)}" if shares else ""
        count = f"; {self.n} gaps" if self.n else ""
        return f"step {self.step_s:.6g} s ({kind}){tail}{count}"

    def to_json(self) -> dict[str, Any]:
        """Strict-JSON dictionary (no NaN or infinity; undefined values are null)."""
        def clean(v):
            return None if v is None or not math.isfinite(v) else float(v)

        return {"step_s": clean(self.step_s), "coarse": bool(self.coarse), "censors": self.censors,
                "given": self.given, "precision_s": clean(self.precision_s),
                "lattice_share": clean(self.lattice_share), "zero_share": clean(self.zero_share),
                "n_gaps": int(self.n), "median_positive_s": clean(self.median_positive_s),
                "tolerance_s": clean(self.tolerance_s)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Clock:
        """The clock recorded by :meth:`to_json` (in a store's manifest)."""
        return cls(step_s=data.get("step_s"), coarse=bool(data.get("coarse", False)),
                   precision_s=data.get("precision_s"), lattice_share=data.get("lattice_share"),
                   zero_share=data.get("zero_share"), n=int(data.get("n_gaps", 0)),
                   median_positive_s=data.get("median_positive_s"), tolerance_s=data.get("tolerance_s"),
                   given=data.get("given", "detected"))


def _check_gaps(gaps) -> np.ndarray:
    x = np.asarray(gaps, dtype=float).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError(f"gaps must be finite; got {int(np.sum(~np.isfinite(x)))} non-finite values")
    if np.any(x < 0):
        raise ValueError(f"gaps must be >= 0 (timestamps sorted); got {int(np.sum(x < 0))} negative gaps")
    return x


def _evenly(x: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` values of ``x``, evenly spaced (deterministic)."""
    if x.size <= n:
        return x
    return x[np.linspace(0, x.size - 1, n).round().astype(np.int64)]


def _float_gcd(a: float, b: float, tol: float) -> float:
    while b > tol:
        a, b = b, math.fmod(a, b)
    return a


def _precision_step(positive: np.ndarray, *, scale: float = 0.0) -> float | None:
    """Exact grid of positive gaps (approximate float GCD), or None for continuous values.

    Accepted only if every gap lies within ``max(1e-4 step, float error)`` of a whole multiple
    (the float error is 16 ulp of ``scale``, the largest absolute timestamp) and the step is at
    least 10^-6 of the median gap.
    """
    if positive.size < 2:
        return None
    median = float(np.median(positive))
    smallest = float(positive.min())
    float_err = 16 * np.finfo(float).eps * max(scale, median)
    tol = max(1e-6 * smallest, float_err) + 1e-12
    distinct = np.unique(positive[:100_000])[:_GCD_VALUES]
    step = float(distinct[0])
    for value in distinct[1:]:
        step = _float_gcd(float(value), step, tol)
        if step < 1e-6 * median:
            return None
    if step < 1e-6 * median:
        return None
    # refine by least squares, small multiples first (the GCD of a few values is off by float
    # error, which whole multiples of 10^6 steps would turn into a wrong multiple)
    for limit in (1e3, 1e6, np.inf):
        k = np.round(positive / step)
        use = (k >= 1) & (k <= limit)
        if use.any():
            step = float(np.dot(positive[use], k[use]) / np.dot(k[use], k[use]))
    k = np.round(positive / step)
    if float(np.abs(positive - k * step).max()) > max(1e-4 * step, float_err):
        return None
    return step


def _candidates(positive_sorted: np.ndarray) -> np.ndarray:
    """Candidate steps, largest first: gap clusters at a few quantiles divided by 1..MAX_DIVISOR."""
    q = np.quantile(positive_sorted, _QUANTILES, method="inverted_cdf")
    q = np.unique(q[q > 0])
    # centre each value on its cluster (median of the gaps within the tolerance), robust to jitter
    tol = _tolerance(q)
    lo = np.searchsorted(positive_sorted, q - tol, side="left")
    hi = np.searchsorted(positive_sorted, q + tol, side="right")
    centres = np.array([np.median(positive_sorted[a:b]) for a, b in zip(lo, hi, strict=True)])
    cand = (centres[:, None] / np.arange(1, MAX_DIVISOR + 1)[None, :]).ravel()
    return np.unique(cand)[::-1]


def _lattice_counts(g: np.ndarray, steps: np.ndarray, tol: np.ndarray, *, refine: int = 2):
    """Refined steps and, per step, the number of gaps (> tol) on its lattice."""
    steps = steps.copy()
    for _ in range(refine + 1):
        k = np.round(g[None, :] / steps[:, None])
        on = (k >= 1) & (np.abs(g[None, :] - k * steps[:, None]) <= tol[:, None]) & (g[None, :] > tol[:, None])
        if _ < refine:
            kk = np.where(on, k, 0.0)
            denom = np.sum(kk * kk, axis=1)
            refined = np.sum(kk * g[None, :], axis=1) / np.where(denom > 0, denom, 1.0)
            steps = np.where(denom > 0, refined, steps)
            tol = _tolerance(steps)
    return steps, tol, on.sum(axis=1)


def _accepted(g: np.ndarray, cand: np.ndarray, *, chance: bool):
    """Per candidate: refined step, tolerance, lattice share and whether the rule accepts it."""
    tol = _tolerance(cand)
    n = g.size
    ties = np.searchsorted(g, tol, side="right")
    longer = n - ties
    steps, tols, on = _lattice_counts(g, cand, tol)
    ok = (longer >= MIN_ON_LATTICE) & (on >= MIN_ON_LATTICE) & (on >= MIN_LATTICE_SHARE * longer)
    if chance:
        p0 = np.minimum(1.0, 2 * tols / steps)
        ok &= bdtrc(on - 1, np.maximum(longer, 1), p0) <= CHANCE_LEVEL  # P(X >= on)
    return steps, tols, on / np.maximum(longer, 1), ok


def _search(positive_sorted: np.ndarray, *, scale: float = 0.0) -> tuple[float, float, float] | None:
    """(step, tolerance, lattice share) of the largest accepted candidate, or None.

    Candidates finer than 10^-6 of the median gap or than 2^10 float ulps of the timestamps are
    not considered (float rounding puts gaps on such a grid). The candidates are screened on an
    evenly spaced subsample of 2,000 gaps, then checked, largest first, on all of ``positive_sorted``.
    """
    if positive_sorted.size < MIN_ON_LATTICE:
        return None
    cand = _candidates(positive_sorted)
    floor = max(1e-6 * float(np.median(positive_sorted)), 1024 * np.finfo(float).eps * scale)
    cand = cand[cand > floor]
    g = positive_sorted
    tol = _tolerance(cand)
    ties = np.searchsorted(g, tol, side="right")
    longer = g.size - ties
    below_step = np.searchsorted(g, cand - tol, side="left") - ties
    # cheap screen: the gaps strictly between a tie and one step are off the lattice
    cand = cand[(longer >= MIN_ON_LATTICE) & (below_step <= (1 - MIN_LATTICE_SHARE) * longer)]
    if cand.size == 0:
        return None
    # quick screen on 200 gaps, unrefined, at twice the tolerance (a true step's candidate is off by
    # at most the jitter over its divisor, well inside that): most candidates of continuous
    # times put under a fifth of the gaps there
    tiny = _evenly(g, 200)
    k = np.round(tiny[None, :] / cand[:, None])
    tol2 = 2 * _tolerance(cand)[:, None]
    longer_tiny = tiny[None, :] > tol2 / 2
    near = (k >= 1) & (np.abs(tiny[None, :] - k * cand[:, None]) <= tol2) & longer_tiny
    cand = cand[near.sum(axis=1) >= 0.7 * np.maximum(longer_tiny.sum(axis=1), 1)]
    sub = _evenly(g, 2_000)
    if sub.size < g.size and cand.size:
        passed = np.zeros(cand.size, dtype=bool)
        for start in range(0, cand.size, 128):
            passed[start:start + 128] = _accepted(sub, cand[start:start + 128], chance=False)[3]
        # a lattice that holds on all gaps holds on an evenly spaced subsample up to sampling error
        cand = cand[passed]
    for start in range(0, cand.size, 8):
        steps, tols, share, ok = _accepted(g, cand[start:start + 8], chance=True)
        if ok.any():
            j = int(np.argmax(np.where(ok, steps, -np.inf)))
            return float(steps[j]), float(tols[j]), float(share[j])
    return None


def clock_from_gaps(gaps, *, n_gaps: int | None = None, n_zero: int | None = None, scale: float = 0.0) -> Clock:
    """The clock of non-negative gaps of sorted timestamps (rule in the module docstring).

    Parameters
    ----------
    gaps : array-like
        Gaps (seconds), or a sample of them (then give ``n_gaps`` and ``n_zero``).
    n_gaps, n_zero : int, optional
        Totals when ``gaps`` is a sample of the positive gaps of a longer stream: all gaps and
        the exact zeros among them.
    scale : float
        Largest absolute timestamp (bounds the float error of the gaps).

    Raises
    ------
    ValueError
        If ``gaps`` holds negative or non-finite values, or the totals are inconsistent.
    """
    x = _check_gaps(gaps)
    positive = x[x > 0]
    n = int(x.size if n_gaps is None else n_gaps)
    zeros = int(x.size - positive.size if n_zero is None else n_zero)
    if n < zeros + positive.size and n_gaps is not None:
        raise ValueError(f"n_gaps must be at least the gaps given; got n_gaps={n_gaps!r} for {x.size} gaps")
    if n == 0:
        return Clock(step_s=None, coarse=False, precision_s=None, lattice_share=None, zero_share=None, n=0)
    sample = np.sort(_evenly(positive, SAMPLE_GAPS))  # evenly spaced in stream order, then sorted
    n_pos_total = n - zeros
    precision = _precision_step(sample, scale=scale)
    found = _search(sample, scale=scale)
    if found is not None and (precision is None or found[0] > 1.5 * precision):
        step, tol, share = found
        # ties: exact zeros plus the positive gaps within the tolerance, scaled from the sample
        tied_pos = np.searchsorted(sample, tol, side="right") / sample.size * n_pos_total if sample.size else 0.0
        longer = sample[sample > tol]
        return Clock(step_s=step, coarse=True, precision_s=precision, lattice_share=share,
                     zero_share=(zeros + tied_pos) / n, n=n,
                     median_positive_s=float(np.median(longer)) if longer.size else None,
                     tolerance_s=tol)
    median = float(np.median(sample)) if sample.size else None
    if precision is None:
        return Clock(step_s=None, coarse=False, precision_s=None, lattice_share=None, zero_share=zeros / n, n=n,
                     median_positive_s=median)
    return Clock(step_s=precision, coarse=False, precision_s=precision, lattice_share=1.0 if sample.size else None,
                 zero_share=zeros / n, n=n, median_positive_s=median,
                 tolerance_s=float(_tolerance(precision)))


def clock_at_step(gaps, step_s: float, *, given: str = "user") -> Clock:
    """The shares of ``gaps`` at a known step (e.g. one the user gave), without a search.

    Raises
    ------
    ValueError
        If ``step_s`` is not a positive finite number of seconds, or the gaps are invalid.
    """
    if isinstance(step_s, bool) or not isinstance(step_s, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(step_s) and step_s > 0):
        raise ValueError(f"clock step must be a positive number of seconds; got {step_s!r}")
    x = _check_gaps(gaps)
    step = float(step_s)
    tol = float(_tolerance(step))
    n = x.size
    if n == 0:
        return Clock(step_s=step, coarse=True, precision_s=None, lattice_share=None, zero_share=None, n=0,
                     tolerance_s=tol, given=given)
    longer = x[x > tol]
    k = np.round(longer / step)
    on = int(np.sum((k >= 1) & (np.abs(longer - k * step) <= tol)))
    return Clock(step_s=step, coarse=True, precision_s=None,
                 lattice_share=on / longer.size if longer.size else None, zero_share=(n - longer.size) / n, n=n,
                 median_positive_s=float(np.median(longer)) if longer.size else None, tolerance_s=tol, given=given)


def detect_clock(timestamps) -> Clock:
    """The clock of a sequence of timestamps (seconds; sorted here when they are not).

    Raises
    ------
    ValueError
        If ``timestamps`` holds non-finite values.
    """
    t = np.asarray(timestamps, dtype=float).ravel()
    if not np.all(np.isfinite(t)):
        raise ValueError(f"timestamps must be finite; got {int(np.sum(~np.isfinite(t)))} non-finite values")
    if t.size and np.any(t[1:] < t[:-1]):
        t = np.sort(t)
    scale = float(np.max(np.abs(t))) if t.size else 0.0
    return clock_from_gaps(np.diff(t), scale=scale)


class GapSample:
    """Accumulates, batch by batch, what :func:`clock_from_gaps` needs of a long timestamp stream.

    Working state (not a result): the number of gaps, the exact zeros, and a systematic sample
    of the gaps: gap ``i`` (its index in the whole stream) is kept when ``i`` is a multiple of a
    stride that doubles whenever more than ``capacity`` gaps are kept. The sample depends on the
    gap indices only, never on how the stream was cut into batches, so a stream read in batches
    and the same timestamps added at once give the same clock. Gaps are taken in stream order; an
    unsorted stream contributes the absolute differences (still on a clock's lattice), and
    :attr:`unsorted` counts the decreasing steps.
    """

    def __init__(self, *, capacity: int = 4 * SAMPLE_GAPS) -> None:
        self.capacity = int(capacity)
        self.n = 0
        self.n_zero = 0
        self.unsorted = 0
        self.scale = 0.0
        self.stride = 1
        self._last: float | None = None
        self._kept: list[np.ndarray] = []
        self._kept_index: list[np.ndarray] = []
        self._n_kept = 0

    def add(self, ts: np.ndarray) -> None:
        """Add the next batch of timestamps (seconds)."""
        ts = np.asarray(ts, dtype=float)
        if ts.size == 0:
            return
        d = np.diff(ts) if self._last is None else np.diff(ts, prepend=self._last)
        self._last = float(ts[-1])
        self.scale = max(self.scale, float(np.max(np.abs(ts))))
        first = self.n
        self.n += d.size
        self.unsorted += int(np.count_nonzero(d < 0))
        d = np.abs(d)
        self.n_zero += int(np.count_nonzero(d == 0))
        # the kept gaps are the multiples of the stride among gap indices 0 .. n - 1, ceil(n / stride)
        # of them: double the stride until they fit, thin what is kept once, then take this batch's
        # (the same gaps whatever the batches, and a long batch is not thinned once per doubling)
        stride = self.stride
        while -(-self.n // stride) > self.capacity:
            stride *= 2
        if stride != self.stride and self._kept:
            values = np.concatenate(self._kept)
            index = np.concatenate(self._kept_index)
            keep = index % stride == 0
            self._kept, self._kept_index = [values[keep]], [index[keep]]
        self.stride = stride
        # gap indices first .. first + d.size - 1 that are multiples of the stride
        offset = (-first) % stride
        take = np.arange(offset, d.size, stride)
        self._kept.append(d[take])
        self._kept_index.append(take + first)
        self._n_kept = -(-self.n // stride)

    def clock(self) -> Clock:
        """The clock of the stream so far."""
        sample = np.concatenate(self._kept) if self._kept else np.empty(0)
        return clock_from_gaps(sample[sample > 0], n_gaps=self.n, n_zero=self.n_zero, scale=self.scale)


def store_clock(store, *, timestamps=None) -> Clock:
    """The clock of a trace store: the manifest's (ingest records it), else detected now.

    Parameters
    ----------
    store : TraceStore
    timestamps : array-like, optional
        The store's timestamps when the caller has them already (used only for a store whose
        manifest records no clock: stores written before clock detection, or by ``write_store``).
    """
    recorded = store.manifest.get("clock")
    if isinstance(recorded, Mapping) and "step_s" in recorded:
        return Clock.from_json(recorded)
    if timestamps is None:
        timestamps = store.to_polars(["timestamp"])["timestamp"].to_numpy()
    return detect_clock(timestamps)


def resolve_clock(clock, store=None, *, timestamps=None) -> Clock | None:
    """The clock an analysis should censor gaps at.

    Parameters
    ----------
    clock : "auto", None, "none", float or Clock
        ``"auto"``: the store's (:func:`store_clock`; ``timestamps`` spare a store without a
        recorded clock a second read), or without a store detected from ``timestamps``;
        None or ``"none"``: no clock (gaps exact); a number: a step in seconds given by the user;
        a :class:`Clock` is used as it is.
    store : TraceStore, optional
    timestamps : array-like, optional
        Used for ``"auto"`` instead of the store's manifest.

    Raises
    ------
    ValueError
        If ``clock`` is none of those.
    """
    if clock is None or (isinstance(clock, str) and clock == "none"):
        return None
    if isinstance(clock, str):
        if clock != "auto":
            raise ValueError(f"clock must be 'auto', None, 'none' or a step in seconds; got {clock!r}")
        if store is not None:
            return store_clock(store, timestamps=timestamps)
        if timestamps is not None:
            return detect_clock(timestamps)
        raise ValueError("clock='auto' needs a store or timestamps")
    if isinstance(clock, Clock):
        return clock
    if isinstance(clock, bool) or not isinstance(clock, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(clock) and clock > 0):
        raise ValueError(f"clock must be 'auto', None, 'none' or a positive step in seconds; got {clock!r}")
    step = float(clock)
    return Clock(step_s=step, coarse=True, precision_s=None, lattice_share=None, zero_share=None, n=0,
                 tolerance_s=float(_tolerance(step)), given="user")

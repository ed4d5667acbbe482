"""The settings of pool fitting, in one frozen object (:class:`PoolFitSettings`).

:func:`~servelab.fitting.pool_fit.fit_pool` takes one of these (or its fields as keywords); the
pool's provenance records :meth:`PoolFitSettings.to_dict`. This module validates settings only.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

from servelab.analysis.arrivals import parse_window
from servelab.analysis.conversations import LinkOptions
from servelab.fitting.families import arrival_family_names, get_arrival_family

__all__ = ["PoolFitSettings", "POOL_FIT_FAMILIES", "RESIDUAL_ID", "SETTING_ALIASES", "resolve_setting_aliases"]

#: the arrival families compared per window by default (registry names)
POOL_FIT_FAMILIES = ("gamma", "weibull", "exponential")
RESIDUAL_ID = "__residual__"

#: old setting keyword -> its name now (issue 19: seconds carry the ``_s`` suffix in the Python API);
#: the old keywords still work in ``PoolFitSettings(...)``, :meth:`PoolFitSettings.replace`,
#: ``fit_pool(...)`` and ``validate(...)``, with a DeprecationWarning
SETTING_ALIASES: dict[str, str] = {"window": "window_s", "data_window": "data_window_s"}


def resolve_setting_aliases(settings: dict[str, Any], *, where: str = "PoolFitSettings") -> dict[str, Any]:
    """``settings`` with the old keywords of :data:`SETTING_ALIASES` renamed (DeprecationWarning each).

    Raises
    ------
    TypeError
        If an old keyword and its new name are both given with different values.
    """
    if not any(old in settings for old in SETTING_ALIASES):
        return settings
    out = dict(settings)
    for old, new in SETTING_ALIASES.items():
        if old not in out:
            continue
        value = out.pop(old)
        warnings.warn(f"{where}(): the setting {old!r} is now {new!r}; got {old}={value!r}",
                      DeprecationWarning, stacklevel=3)
        if new in out and out[new] != value:
            raise TypeError(f"{where}() got both {old}= (the old name) and {new}=; got {value!r} and {out[new]!r}")
        out[new] = value
    return out


@dataclass(frozen=True)
class PoolFitSettings:
    """How :func:`~servelab.fitting.pool_fit.fit_pool` fits a client pool.

    Parameters
    ----------
    window_s, data_window_s : str or float
        Arrival and request-data window lengths (``"10m"``, ``"6h"`` or seconds); stored as
        seconds (floats). The old keywords ``window`` / ``data_window`` still work
        (:data:`SETTING_ALIASES`, with a DeprecationWarning). ``data_window_s`` is the time
        resolution of the length model; see ``min_data_windows`` for short traces.
    min_data_windows : int
        The fewest data windows a trace's covered span is cut into (0: no rule). A trace shorter
        than ``min_data_windows * data_window_s`` (18 h at the defaults) is fitted with data
        windows of about ``span / min_data_windows`` seconds instead, the longest at most that
        which is a multiple of ``window_s`` or ``window_s`` over a whole number
        (:meth:`effective_data_window`: a 17-minute trace gets 300-s windows, a 3-h one 3,600-s
        windows), so that its lengths keep a time profile: a trace whose prompts double within it
        is not one 6-h window. The pool records the window used (``data_window_s``); the
        generator, which reads it from the pool, follows. Traces of at least 18 h are unchanged.
        Why 3: on Mooncake's 17-min sample (``bench_prefix_seeds.py``, seeds 1-8) every
        hit-rate curve was within 5 points with 300-s windows (3 or 2 asked), 7/8 with 200 or
        150 s (4 or 6), 6/8 with 120 s (8): finer windows hold too few requests each (after
        branching conversations count as their depth: 0 2/8, max 0.0806; 1 7/8, 0.0676; 2 and
        3 8/8, 0.0407; 4 7/8, 0.0633; 6 7/8, 0.0510). Checked
        on traces not used to pick it (``bench_prefix_heldout.py``: the real Azure 2023 code
        trace's times and lengths, 1 h and 20 min, with and without a known x2 / x1.7 length
        drift, prompt blocks of known construction with and without conversations; seeds 1-8):
        every value of 0 (one 6-h window), 1, 2, 3, 4 and 6 met 5 points on every seed without
        conversations; the mean curve distance moved across them by at most 0.0026 with
        conversations and 0.0024 on the flat traces, and by 0.006-0.007 on the drifting ones
        without conversations, where finer windows did better (one 6-h window 0.0221 / 0.0207,
        3 0.0189 / 0.0167, 6 0.0160 / 0.0135) while on Mooncake 6 did worse (mean 0.0400 vs
        0.0306). No value was better on both, so 3 is kept; the misfit found there came from
        the conversation and group fits, not the data windows.
    min_requests : int
        Clients with fewer requests are merged into the residual client ``residual_id``.
    families : tuple of str
        Arrival families compared per window (registered :class:`~servelab.fitting.families.ArrivalFamily`
        names); the lowest AIC wins, ties going to the earlier name.
    min_fit_gaps, max_fit_gaps : int
        Fewest gaps for a family fit; most gaps fitted (above, a seeded uniform subsample of the
        window's gaps, hashed from request ids and ``seed``).
    clock : "auto", "none" or float
        The trace's logging clock (timestamp step, seconds). ``"auto"``: the store manifest's
        ``clock_s`` when recorded, else :func:`~servelab.fitting.ties.detect_resolution` on the
        trace's gaps. Arrival times are jittered uniformly within their clock step (seeded) before
        gaps, CVs and family fits, so that zero gaps from the clock are neither fitted as exact nor
        dropped. ``"none"`` uses the timestamps as they are.
    seed : int
        Seed of that jitter (same seed, same pool).
    exact_below, bin_ratio, spike_share, max_bin_mass : int, float, float, float
        PMF binning: exact values below ``exact_below``, log bins of ratio ``bin_ratio`` above,
        except that a value holding at least ``spike_share`` of its window's requests keeps its
        own row, and a log bin holding more than ``max_bin_mass`` of the window is cut at
        multiples of ``max_bin_mass`` of its CDF. A bin is drawn as its count-weighted mean, so a
        generated length takes one value per bin: a finer ``bin_ratio`` (1.0125) brings the
        generated length KS down to the sampling noise of 1 M requests (a 1 M-row store fitted on
        its first half, ``validate``: input 0.0063 -> 0.0025, output 0.0050 -> 0.0027, floor
        0.0018) but costs data rows (+21% at 10 M) and fit-pool memory: 9.3 GB peak on 100 M rows
        against 6.8 GB with 1.05 (issue 16's bound is 8 GB), so 1.05 stays the default.
    spread_points : int
        A bin of several values is stored as up to this many values spread over the values it
        holds, keeping its mean (:func:`~servelab.fitting.pool_data.spread_bins`; each value stands
        for at least :data:`~servelab.fitting.pool_data.MIN_POINT_REQUESTS` requests), instead of
        one row at its mean: generated lengths fill each bin, as a finer ``bin_ratio`` would,
        without the finer binning's fit memory (the rows are made after binning). 1: one row per bin.
    min_fit_requests : int
        Fewest requests in a data window for a log-normal fit in ``data_fits``.
    conversations : bool
        Fit conversation parameters when the store carries links.
    linking : LinkOptions
        How links are inferred from prompt block hashes (shared-prefix, clock and latency checks).
    residual_id : str
        Id of the residual client.
    span : (float, float), optional
        The time span the trace was recorded over; windows without requests inside it are idle and
        window rates are over the part of each window inside it (see
        :mod:`servelab.analysis.window_rates`). Default: ``[first, last]`` request.
    window_censoring : bool
        Correct conversations for the trace's window: inter-turn times weighted by
        :func:`~servelab.fitting.pool_conversations.window_weights` (long gaps are cut more
        often) and turns per conversation fitted by the exact
        censored likelihood of a window cut at both ends
        (:func:`~servelab.fitting.pool_conversations.window_mixture`: conversations cut by the
        trace's end are longer than they look, and tails of conversations begun before its start
        are not first turns: they are left out, for the generator's warm-up makes its own), and prefix reuses
        weighted by their lag (:func:`~servelab.fitting.pool_prefixes.fit_prefix_table`: a reuse
        whose original came before the trace's start is not seen as one). False: the counts as seen.
    length_shrinkage : bool
        Shrink sparse clients' request-data PMFs toward their window's pool mix by the fitted
        empirical-Bayes weight :math:`\\lambda = n / (n + k)` (:mod:`~servelab.fitting.pool_shrinkage`;
        the generator draws from the client's own PMF with probability :math:`\\lambda`). False: every
        client's own PMFs as seen.

    Raises
    ------
    ValueError
        If a setting is out of range (the message names it and the value given).
    """

    window_s: str | float = "10m"
    data_window_s: str | float = "6h"
    min_data_windows: int = 3
    min_requests: int = 1
    families: tuple[str, ...] = POOL_FIT_FAMILIES
    min_fit_gaps: int = 10
    max_fit_gaps: int = 5000
    clock: str | float = "auto"
    seed: int = 0
    exact_below: int = 64
    bin_ratio: float = 1.05
    spike_share: float = 0.005
    max_bin_mass: float = 0.02
    spread_points: int = 4
    min_fit_requests: int = 30
    conversations: bool = True
    linking: LinkOptions = LinkOptions()
    residual_id: str = RESIDUAL_ID
    span: tuple[float, float] | None = None
    window_censoring: bool = True
    length_shrinkage: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "window_s", parse_window(self.window_s))
        if not isinstance(self.linking, LinkOptions):
            raise TypeError(f"linking must be a LinkOptions; got {self.linking!r}")
        object.__setattr__(self, "data_window_s", parse_window(self.data_window_s))
        families = (self.families,) if isinstance(self.families, str) else tuple(self.families)
        known = arrival_family_names()
        if not families or any(f not in known for f in families):
            raise ValueError(f"families must be a non-empty subset of the arrival families {known}; got {families!r}")
        for f in families:
            get_arrival_family(f)
        object.__setattr__(self, "families", families)
        if not (isinstance(self.min_data_windows, int) and not isinstance(self.min_data_windows, bool)
                and self.min_data_windows >= 0):
            raise ValueError(f"min_data_windows must be an integer >= 0; got {self.min_data_windows!r}")
        if not (isinstance(self.min_requests, int) and self.min_requests >= 1):
            raise ValueError(f"min_requests must be an integer >= 1; got {self.min_requests!r}")
        if not (isinstance(self.exact_below, int) and self.exact_below >= 1):
            raise ValueError(f"exact_below must be an integer >= 1; got {self.exact_below!r}")
        if not (self.bin_ratio > 1):
            raise ValueError(f"bin_ratio must be > 1; got {self.bin_ratio!r}")
        if not (isinstance(self.min_fit_gaps, int) and self.min_fit_gaps >= 2 and isinstance(self.max_fit_gaps, int)
                and self.max_fit_gaps >= self.min_fit_gaps):
            raise ValueError(f"need integers 2 <= min_fit_gaps <= max_fit_gaps; got {self.min_fit_gaps!r}, "
                             f"{self.max_fit_gaps!r}")
        if not (0 < self.spike_share <= 1 and 0 < self.max_bin_mass <= 1):
            raise ValueError(f"spike_share and max_bin_mass must be in (0, 1]; got {self.spike_share!r}, "
                             f"{self.max_bin_mass!r}")
        if not (isinstance(self.spread_points, int) and not isinstance(self.spread_points, bool)
                and 1 <= self.spread_points <= 64):
            raise ValueError(f"spread_points must be an integer in [1, 64]; got {self.spread_points!r}")
        if not (isinstance(self.min_fit_requests, int) and self.min_fit_requests >= 2):
            raise ValueError(f"min_fit_requests must be an integer >= 2; got {self.min_fit_requests!r}")
        if isinstance(self.clock, str):
            if self.clock not in ("auto", "none"):
                raise ValueError(f"clock must be 'auto', 'none' or a step in seconds > 0; got {self.clock!r}")
        elif not (isinstance(self.clock, (int, float)) and math.isfinite(self.clock) and self.clock > 0):
            raise ValueError(f"clock must be 'auto', 'none' or a step in seconds > 0; got {self.clock!r}")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool)):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        if not isinstance(self.window_censoring, bool):
            raise ValueError(f"window_censoring must be True or False; got {self.window_censoring!r}")
        if not isinstance(self.length_shrinkage, bool):
            raise ValueError(f"length_shrinkage must be True or False; got {self.length_shrinkage!r}")
        if not (isinstance(self.residual_id, str) and self.residual_id):
            raise ValueError(f"residual_id must be a non-empty string; got {self.residual_id!r}")
        if self.span is not None:
            a, b = self.span
            if not (math.isfinite(a) and math.isfinite(b) and b >= a):
                raise ValueError(f"span must be (start, end) with start <= end; got {self.span!r}")
            object.__setattr__(self, "span", (float(a), float(b)))

    @property
    def window(self) -> float:
        """Deprecated name of :attr:`window_s` (seconds)."""
        warnings.warn("PoolFitSettings.window is now window_s (seconds)", DeprecationWarning, stacklevel=2)
        return self.window_s

    @property
    def data_window(self) -> float:
        """Deprecated name of :attr:`data_window_s` (seconds)."""
        warnings.warn("PoolFitSettings.data_window is now data_window_s (seconds)", DeprecationWarning, stacklevel=2)
        return self.data_window_s

    def effective_data_window(self, span_s: float) -> float:
        """The data window (s) fitted on a trace covering ``span_s`` seconds (see the class docstring).

        ``data_window_s`` when the span holds at least ``min_data_windows`` of them; else the
        longest window of at most ``span_s / min_data_windows`` that nests with the arrival
        windows: a multiple of ``window_s`` when that is at least ``window_s``, else ``window_s``
        divided by a whole number (so that one grid of multiples of the shorter window holds both).

        Parameters
        ----------
        span_s : float
            The trace's covered span (s); not finite or not positive: ``data_window_s``.

        Returns
        -------
        float
            The data window in seconds.
        """
        k = self.min_data_windows
        if k == 0 or not (math.isfinite(span_s) and span_s > 0) or span_s >= k * self.data_window_s:
            return float(self.data_window_s)
        target, w = span_s / k, float(self.window_s)
        if target >= w:
            return w * math.floor(target / w)
        return w / math.ceil(w / target)

    def replace(self, **changes: Any) -> "PoolFitSettings":
        """A copy with ``changes`` (setting names; the old ones of :data:`SETTING_ALIASES` accepted)."""
        return dataclasses.replace(self, **resolve_setting_aliases(changes, where="PoolFitSettings.replace"))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The setting names (the keywords :func:`~servelab.fitting.pool_fit.fit_pool` accepts)."""
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (window lengths in seconds), as recorded in a pool's provenance."""
        out = asdict(self)
        out.update(families=list(self.families), span=list(self.span) if self.span is not None else None)
        return out


def _accept_old_keywords(cls):
    """Let the dataclass constructor take the old keywords of :data:`SETTING_ALIASES`."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **resolve_setting_aliases(kwargs))

    cls.__init__ = __init__
    return cls


_accept_old_keywords(PoolFitSettings)

"""Out-of-sample validation: fit on the past, generate the future, score against what happened (issue 17).

:func:`validate` splits a trace store in time. On the part before the split it fits a client pool
(:func:`~servelab.fitting.pool_fit.fit_pool`); it then generates the span after the split twice,

- **servelab**: per-client composition (:func:`~servelab.generator.generate.generate`) on the pool
  extended past its span with client churn (:func:`~servelab.generator.extend.extend_pool`);
- **naive**: the naive baseline (:func:`~servelab.generator.naive.naive_generate`: one Gamma
  process, aggregate request data) following the *smooth* total (the forecast's trend x daily
  factor at each pool window's middle, or the given ``rate``): not servelab's realised
  window-to-window totals, which come from copied client rows (a naive baseline that shared them
  would share servelab's window rates by construction, and no test of the two could have power
  on them); on the same extended pool, its request data the aggregate of
  the fitted span (``data_span``): a baseline without a client model knows the past mix of
  clients, not how churn changes it (given the extension's mix it would share servelab's expected
  marginals and tie with it on them by construction),

both under **the same total-rate assumption**: ``rate="pool"`` on the extended pool, i.e. the
total rate the pool *forecasts* (trend times daily periodicity fitted on the part before the
split, :mod:`servelab.fitting.pool_forecast`), never the real later rate. Both are scored against
the real later part with the metrics of ``servelab compare``
(:data:`servelab.analysis.fidelity.METRICS`, same names) at the window
:func:`~servelab.analysis.fidelity.choose_window` picks from the real later part.

**The shape test** (:func:`shape_test`, per split): is servelab closer than naive to the real
later part in *shape*, the volume removed from both (window rates over their mean, the coupling of
window rate and mean lengths, the length mixes)? A one-sided Wilcoxon signed-rank test over blocks
of consecutive windows at level :data:`SHAPE_LEVEL`, the metrics scaled by the real later part's
own half-vs-half noise; its level and power on simulated traces of known truth are in
``benchmarks/bench_validate.py`` (part 0c).

The ``reference`` values are the real later part's own: for a "value" metric (``n_requests``,
``mean_rate``, ``gap_cv``, ...) the real later part's value, which a candidate's value is to be
compared with; for a "distance" metric 0 (the real later part against itself).

The split
---------
``split`` is a fraction of the trace's time span in ``(0, 1)`` (0.5: fit on the first half of the
time, not of the requests) or a time in seconds on the trace's clock. It is rounded down to a
whole arrival window of the pool (so the pool's span ends at the split) and must leave at least
one window on each side. With ``rolling=K``, the time after the split is cut into ``K`` equal test
folds; fold ``i`` is predicted from a pool fitted on everything before it (rolling origin,
expanding window), and :meth:`ValidationResult.spread` summarises the folds.

Bounded sample
--------------
With ``max_requests`` (the report's validation area passes one on big traces), a store holding
more requests is validated on a seeded sample of **whole clients** (a random order of the client
ids, kept while their requests add up to at most the bound; at least one client): every kept
client keeps all its requests, before and after the split, so churn, per-client laws and the
later part stay those of real clients, only fewer of them. The result records it
(``bounded_sample``); a trace without client ids is never sampled.

Several draws
-------------
One draw of the churn (which survivors leave, which new clients come) and of the arrivals can
decide a metric by chance: both generators follow the same forecast total, so on ``n_requests``
and ``mean_rate`` whichever draw lands nearer wins. With ``draws=K`` each split generates ``K``
seeded draws per generator (seeds :func:`draw_seeds`: the first is ``seed`` itself, so ``K = 1``
is the single-draw validation) from the one pool fitted before the split, and scores each with the
compare metrics. ``metrics`` (validate.json's ``servelab`` and ``naive``) then hold **the draws'
mean** of each metric; the per-draw values and their spread are kept (``SplitResult.draws``,
validate.json's ``draws``), and per metric :func:`draw_comparison` compares the candidates'
**expected score** over the draws -- each draw's score is its distance to the real later part
(``|value - reference|`` for a value metric: the absolute error of a point forecast, a proper
score for the median; the distance itself for a distance metric), lower is better -- with a
one-sided Wilcoxon signed-rank test of the per-draw score differences (paired by draw) at
:data:`DRAW_LEVEL`: the verdict is ``servelab`` or ``naive`` when that side's expected score is
lower beyond the draws' noise, ``tie`` otherwise. With ``K = 5`` the exact test reaches 5% only
when all five draws agree (p = 1/32); with ``K = 1`` it never decides. The test is conditional on
the one real later part: it says which generator's draws are closer to *this* future, not how
that generalises over traces (the shape test's blocks speak to that). The shape test, the
client turnover, the extension's description and the figure's counts are those of the first draw.

Results hold metrics and per-window aggregates (request counts for the figure), never request rows.
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import polars as pl
from scipy import stats

from servelab.analysis.fidelity import METRICS, choose_window, compare
from servelab.analysis.rate_components import rate_components
from servelab.analysis.store import TraceStore, open_store, write_store
from servelab.fitting.pool_fit import fit_pool
from servelab.fitting.pool_churn import MIN_SPAN_WINDOWS
from servelab.fitting.pool_settings import PoolFitSettings, resolve_setting_aliases
from servelab.generator.extend import NEW_CLIENT_PREFIX, extend_pool
from servelab.generator.generate import generate
from servelab.generator.naive import naive_generate

__all__ = ["CANDIDATES", "DEFAULT_DRAWS", "DRAWS_MAX_REQUESTS", "DRAW_LEVEL", "DRAW_SCORE", "DRAW_TEST",
           "GIVEN_RATE_ASSUMPTION", "RATE_ASSUMPTION", "SHAPE_LEVEL", "SHAPE_METRICS", "SHAPE_NULL",
           "POOL_WINDOWS", "ShapeTest", "SplitResult", "noise_floor", "ValidationResult", "pool_window_for",
           "resolve_split", "sample_clients",
           "crps_sample", "default_draws", "draw_comparison", "draw_seeds", "energy_score", "shape_scores",
           "shape_test", "validate"]

#: the two generators scored, in order
CANDIDATES = ("servelab", "naive")
#: the total-rate assumption, in words (validate.json's ``rate_assumption``)
RATE_ASSUMPTION = ("both generators follow the total rate the pool forecasts past the split (a damped trend x "
                   "a daily pattern, each kept only when significant on the part before it; "
                   "servelab.fitting.pool_forecast; on a span too short to test a trend (< 4 whole days), times the churn model's "
                   "expected volume path), "
                   "not the real rate: servelab per day-block with its clients' "
                   "window-to-window variation, naive smoothly; naive's request data is the mix before the split")
#: the total-rate assumption when a rate function is given
GIVEN_RATE_ASSUMPTION = ("both generators follow the given total rate function past the split (not a forecast: "
                         "the request count is then not a prediction); naive follows it smoothly between pool-window middles; "
                         "naive's request data is the mix before the split")


#: draws per generator ``servelab validate`` takes by default (:func:`default_draws`): the fewest
#: at which the exact one-sided Wilcoxon test over draws can reach :data:`DRAW_LEVEL` (p = 1/32)
DEFAULT_DRAWS = 5
#: above this many requests the default is one draw, so that ``servelab validate`` stays within
#: its 3-minute budget: each draw repeats the extension, both generations and the scoring. Five
#: draws cost 80-150 CPU-s per million requests on the 2,000-client, 14-day benchmark stores
#: (``benchmarks/bench_validate.py`` part 1, under the lock: 1 M rows 82.5 CPU-s / 67.3 s wall at
#: load 1.3, but 148.2 CPU-s / 194.1 s wall at load 10.5, over the budget; 500,000 rows 51.1
#: CPU-s / 42.2 s at load 1.2), so at this bound five draws stay within the budget at the load
#: this shared machine reaches; one draw of a 10 M-row store takes 90.7 CPU-s / 71.8 s (load 1.1;
#: 146 s at load ~5)
DRAWS_MAX_REQUESTS = 500_000
#: level of the paired test over draws (:func:`draw_comparison`)
DRAW_LEVEL = 0.05
#: a draw's score, in words
DRAW_SCORE = ("per draw, the distance of the draw to the real later part: |value - reference| for a value metric "
              "(absolute error of a point forecast), the distance itself for a distance metric; lower is better; "
              "the expected score is its mean over the draws")
#: the paired test over draws, in words
DRAW_TEST = ("one-sided Wilcoxon signed-rank tests of naive's score minus servelab's, paired by draw (exact when "
             "no draw ties), each way at the stated level: verdict 'servelab' or 'naive' when that side scores "
             "lower beyond the draws' noise, 'tie' otherwise (with 5 draws only 5 of 5 can decide; 1 draw never does)")


def draw_seeds(seed: int, draws: int) -> tuple[int, ...]:
    """The seeds of ``draws`` draws derived from ``seed``: ``seed`` itself first (so one draw is the
    single-draw validation), then words of ``numpy.random.SeedSequence([seed, i])`` (distinct streams).

    Raises
    ------
    ValueError
        If ``draws`` is not a positive integer.
    """
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be a positive integer; got {draws!r}")
    return (int(seed), *(int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0]) for i in range(1, draws)))


def default_draws(n_requests: int) -> int:
    """``servelab validate``'s draws per generator for a store of ``n_requests``:
    :data:`DEFAULT_DRAWS` up to :data:`DRAWS_MAX_REQUESTS`, one above (the time budget)."""
    return DEFAULT_DRAWS if n_requests <= DRAWS_MAX_REQUESTS else 1


def draw_comparison(reference: Mapping[str, float], draws: Sequence[Mapping[str, Mapping[str, float]]], *,
                    level: float = DRAW_LEVEL) -> pl.DataFrame:
    """Per metric, the candidates' draws summarised and compared by expected score (:data:`DRAW_SCORE`).

    Parameters
    ----------
    reference : Mapping
        ``{metric: value}`` of the real later part (0 for a distance).
    draws : sequence of Mapping
        Per draw, ``{"servelab": {metric: value}, "naive": {...}}``.
    level : float
        Level of each one-sided test (:data:`DRAW_TEST`).

    Returns
    -------
    polars.DataFrame
        ``metric, kind, reference``; ``servelab_mean, servelab_sd, naive_mean, naive_sd`` (the
        values over draws; sd null with one draw); ``servelab_score, naive_score`` (expected
        scores); ``draws`` (draws with both scores finite), ``servelab_wins`` (draws where
        servelab scores lower), ``p_servelab`` / ``p_naive`` (one-sided p that that side scores
        lower), ``verdict`` (``servelab``, ``naive``, ``tie``, or ``not scored`` when no draw
        holds both scores).
    """
    if not draws:
        raise ValueError("draw_comparison needs at least one draw; got none")
    rows = []
    for m, ref in reference.items():
        vals = {c: np.array([_nan(d[c].get(m)) for d in draws]) for c in CANDIDATES}
        ref = _nan(ref)
        loss = {c: np.abs(v - ref) for c, v in vals.items()}
        ok = np.isfinite(loss["servelab"]) & np.isfinite(loss["naive"])
        d = loss["naive"][ok] - loss["servelab"][ok]
        if not ok.any():
            p_s = p_n = math.nan
            verdict = "not scored"
        elif not np.any(d != 0):
            p_s = p_n = 1.0
            verdict = "tie"
        else:
            p_s = float(stats.wilcoxon(d, alternative="greater").pvalue)
            p_n = float(stats.wilcoxon(d, alternative="less").pvalue)
            verdict = "servelab" if p_s <= level else "naive" if p_n <= level else "tie"
        row = {"metric": m, "kind": METRICS[m][0] if m in METRICS else None, "reference": ref}
        for c in CANDIDATES:
            v = vals[c][np.isfinite(vals[c])]
            row[f"{c}_mean"] = float(v.mean()) if v.size else None
            row[f"{c}_sd"] = float(v.std(ddof=1)) if v.size > 1 else None
        for c in CANDIDATES:
            row[f"{c}_score"] = float(loss[c][ok].mean()) if ok.any() else None
        rows.append({**row, "draws": int(ok.sum()), "servelab_wins": int((d > 0).sum()), "p_servelab": p_s,
                     "p_naive": p_n, "verdict": verdict})
    schema = {"metric": pl.String, "kind": pl.String, "reference": pl.Float64,
              **{f"{c}_{k}": pl.Float64 for c in CANDIDATES for k in ("mean", "sd")},
              **{f"{c}_score": pl.Float64 for c in CANDIDATES},
              "draws": pl.Int64, "servelab_wins": pl.Int64, "p_servelab": pl.Float64, "p_naive": pl.Float64,
              "verdict": pl.String}
    return pl.DataFrame(rows, schema=schema)


def _nan(v) -> float:
    return math.nan if v is None else float(v)


def _frozen(d: Mapping) -> Mapping:
    return MappingProxyType({k: (MappingProxyType(dict(v)) if isinstance(v, Mapping) else v) for k, v in d.items()})


@dataclass(frozen=True)
class SplitResult:
    """One split: what was fitted, generated and measured.

    Attributes
    ----------
    split_s, end_s : float
        The test span ``[split_s, end_s)`` (seconds on the trace's clock); the pool is fitted on
        everything before ``split_s``.
    window_s : float
        Window of the window metrics (picked from the real later part).
    window_rule : str
        How it was picked.
    metrics : Mapping
        ``{"reference": {metric: value}, "servelab": {...}, "naive": {...}}``.
    clients : Mapping
        Turnover facts: ``later`` (clients in the real later part), ``seen_before`` (of those,
        active before the split), ``generated`` (clients in servelab's workload) and
        ``generated_new`` (of those, synthetic new clients); empty without client ids.
    extension : Mapping
        :meth:`~servelab.generator.extend.Extension.describe` of the pool's extension.
    counts : polars.DataFrame
        Requests per window of ``window_s`` over the test span: ``window_start_s`` (since the
        split), ``reference``, ``servelab``, ``naive`` (aggregates, for the figure).
    noise_floor : Mapping
        Per distance metric, the distance between the two halves of the real later part
        (:func:`noise_floor`): a generator whose distance is below it cannot be told from the
        real part by that metric at this sample size.
    shape_test : ShapeTest, optional
        Is servelab closer in shape (volume removed) than naive (:func:`shape_test`)?
    draws : tuple of Mapping
        Per draw, ``{"seed": int, "servelab": {metric: value}, "naive": {...}}`` (``metrics``'
        candidate values are their means; module docstring, "Several draws").
    rate_components : Mapping
        ``{"reference" | "servelab" | "naive": {"profile_cv": float, "dispersion": float}}``: the
        window-rate variation at ``window_s`` split into the hour-of-day profile and the
        dispersion about it (:func:`~servelab.analysis.rate_components.rate_components`; the
        candidates' are means over the draws; NaN on a test span under two days).
    """

    split_s: float
    end_s: float
    window_s: float
    window_rule: str
    metrics: Mapping[str, Mapping[str, float]]
    clients: Mapping[str, int]
    extension: Mapping
    counts: pl.DataFrame = field(repr=False, compare=False)
    noise_floor: Mapping[str, float] = field(default_factory=dict)
    shape_test: "ShapeTest | None" = None
    draws: tuple[Mapping, ...] = ()
    rate_components: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_floor", MappingProxyType(dict(self.noise_floor)))
        object.__setattr__(self, "rate_components", _frozen(self.rate_components))
        object.__setattr__(self, "metrics", _frozen(self.metrics))
        object.__setattr__(self, "draws", tuple(_frozen(d) for d in self.draws))
        object.__setattr__(self, "clients", MappingProxyType(dict(self.clients)))
        object.__setattr__(self, "extension", MappingProxyType(dict(self.extension)))

    def draw_table(self, *, level: float = DRAW_LEVEL) -> pl.DataFrame:
        """:func:`draw_comparison` of this split's draws (one draw: the split's own metrics)."""
        draws = self.draws or ({c: self.metrics[c] for c in CANDIDATES},)
        return draw_comparison(self.metrics["reference"], draws, level=level)


@dataclass(frozen=True)
class ValidationResult:
    """The splits of :func:`validate` and their summary.

    Attributes
    ----------
    store : str
        The validated store.
    splits : tuple of SplitResult
        One per test fold (one without ``rolling``).
    seed : int
        The seed of every draw.
    rate_assumption : str
        The total-rate assumption shared by both generators.
    bounded_sample : Mapping
        Empty when every request was used; else ``bound``, ``clients``, ``clients_total``,
        ``requests``, ``requests_total`` of the sample of whole clients (module docstring).
    draws : int
        Draws per generator and split (module docstring, "Several draws").
    """

    store: str
    splits: tuple[SplitResult, ...]
    seed: int
    rate_assumption: str = RATE_ASSUMPTION
    bounded_sample: Mapping[str, int] = field(default_factory=dict)
    draws: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "bounded_sample", MappingProxyType(dict(self.bounded_sample)))

    def table(self) -> pl.DataFrame:
        """One row per (split, metric): ``split_s, end_s, metric, kind, reference, servelab, naive,
        noise_floor`` (the last null for a value metric, or when the later part was too small to halve)."""
        rows = []
        for s in self.splits:
            for m in METRICS:
                rows.append({"split_s": s.split_s, "end_s": s.end_s, "metric": m, "kind": METRICS[m][0],
                             **{c: s.metrics[c].get(m) for c in ("reference", *CANDIDATES)},
                             "noise_floor": s.noise_floor.get(m)})
        return pl.DataFrame(rows, schema={"split_s": pl.Float64, "end_s": pl.Float64, "metric": pl.String,
                                          "kind": pl.String, "reference": pl.Float64, "servelab": pl.Float64,
                                          "naive": pl.Float64, "noise_floor": pl.Float64})

    def spread(self) -> pl.DataFrame:
        """Per metric over the splits: mean, standard deviation, min and max of each column, and
        ``servelab_wins`` (splits where servelab is closer to the reference than naive: smaller
        ``|value - reference|``)."""
        t = self.table().with_columns(
            servelab_wins=((pl.col("servelab") - pl.col("reference")).abs()
                           < (pl.col("naive") - pl.col("reference")).abs()).cast(pl.Int64))
        aggs = []
        for c in ("reference", *CANDIDATES):
            aggs += [pl.col(c).mean().alias(f"{c}_mean"), pl.col(c).std().alias(f"{c}_sd"),
                     pl.col(c).min().alias(f"{c}_min"), pl.col(c).max().alias(f"{c}_max")]
        return (t.group_by("metric", "kind", maintain_order=True)
                .agg(*aggs, pl.col("servelab_wins").sum(), pl.len().alias("splits")))

    def draws_table(self, *, level: float = DRAW_LEVEL) -> pl.DataFrame:
        """:meth:`SplitResult.draw_table` of every split, with ``split_s`` first."""
        return pl.concat([s.draw_table(level=level).select(pl.lit(s.split_s).alias("split_s"), pl.all())
                          for s in self.splits])

    def summary(self) -> dict[str, dict[str, float]]:
        """``{"reference": {...}, "servelab": {...}, "naive": {...}}``: the single split's metrics,
        or with several splits the mean over them."""
        out = {}
        sp = self.spread()
        for c in ("reference", *CANDIDATES):
            out[c] = {m: _num(v) for m, v in zip(sp["metric"], sp[f"{c}_mean"])}
        return out

    def to_json(self) -> dict:
        """validate.json: :meth:`summary` at the top, then how it was obtained and every split."""
        doc = self.summary()
        doc.update({
            "store": self.store, "seed": self.seed, "rate_assumption": self.rate_assumption,
            "bounded_sample": dict(self.bounded_sample) or None,
            "reference_meaning": ("the real later part's own values: for a 'value' metric its value, for a "
                                  "'distance' metric 0 (itself); with several splits, means over them"),
            "metrics": {m: {"kind": k, "description": d} for m, (k, d) in METRICS.items()},
            "splits": [{"split_s": s.split_s, "end_s": s.end_s, "window_s": s.window_s, "window_rule": s.window_rule,
                        **{c: {m: _num(v) for m, v in s.metrics[c].items()} for c in ("reference", *CANDIDATES)},
                        "noise_floor": {m: _num(v) for m, v in s.noise_floor.items()},
                        "shape_test": s.shape_test.describe() if s.shape_test is not None else None,
                        "clients": dict(s.clients), "extension": _plain(s.extension),
                        "rate_components": {c: {k: _num(v) for k, v in comp.items()}
                                            for c, comp in s.rate_components.items()}} for s in self.splits],
        })
        seeds = draw_seeds(self.seed, self.draws)
        doc["draws"] = {"count": self.draws, "seeds": list(seeds), "level": DRAW_LEVEL, "score": DRAW_SCORE,
                        "test": DRAW_TEST,
                        "values": ("the 'servelab' and 'naive' values above (and each split's) are the means over "
                                   "the draws; 'splits'[i]['draws'] holds each draw's values"),
                        "metrics": (_draw_doc(self.splits[0].draw_table()) if len(self.splits) == 1 else None)}
        for s, js in zip(self.splits, doc["splits"]):
            js["draws"] = {"seeds": [int(d["seed"]) for d in s.draws] or [self.seed],
                           **{c: {m: [_num(d[c].get(m)) for d in s.draws] for m in s.metrics["reference"]}
                              for c in CANDIDATES if s.draws},
                           "metrics": _draw_doc(s.draw_table())}
        if len(self.splits) > 1:
            doc["spread"] = {r["metric"]: {k: _num(v) if isinstance(v, float) else v for k, v in r.items() if k != "metric"}
                             for r in self.spread().iter_rows(named=True)}
        return doc


def _draw_doc(table: pl.DataFrame) -> dict:
    return {r["metric"]: {k: (_num(v) if isinstance(v, float) else v) for k, v in r.items() if k != "metric"}
            for r in table.iter_rows(named=True)}


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def _plain(v):
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


#: the pool windows :func:`pool_window_for` tries, longest first (seconds; 10 min is fit-pool's default)
POOL_WINDOWS = (600.0, 300.0, 120.0, 60.0, 30.0, 10.0)


def pool_window_for(split, first_s: float, last_s: float, *, rolling: int = 1) -> tuple[float, str]:
    """The longest pool window of :data:`POOL_WINDOWS` that leaves the part before the split
    :data:`~servelab.fitting.pool_churn.MIN_SPAN_WINDOWS` whole windows (what churn needs to be
    measured and the pool extended) and each of ``rolling`` test folds one; the shortest when none
    does (the split then fails with its own message).

    Why: ``servelab validate STORE --split 0.5`` at fit-pool's 10-min window refused every trace
    shorter than about 80 minutes (Azure 2023 code, one hour: "the pool's span 1200 s is shorter
    than 4 windows of 600 s"; Mooncake's 17 minutes: "split 0.5 gives 0 s"), traces like those the
    issue's check runs on. A long trace keeps 10 minutes.

    Parameters
    ----------
    split : float
        As for :func:`resolve_split`.
    first_s, last_s : float
        The trace's first and last timestamps.
    rolling : int
        Test folds after the split.

    Returns
    -------
    (float, str)
        The window (seconds) and the rule, in words.
    """
    for w in POOL_WINDOWS:
        try:
            t = resolve_split(split, first_s, last_s, w)
        except ValueError:
            continue
        if t - math.floor(first_s / w) * w >= MIN_SPAN_WINDOWS * w and last_s - t >= max(1, int(rolling)) * w:
            rule = ("automatic: the longest of " + ", ".join(f"{x:g}" for x in POOL_WINDOWS)
                    + f" s leaving >= {MIN_SPAN_WINDOWS} windows before the split")
            return w, rule
    return POOL_WINDOWS[-1], f"automatic: none of the windows leaves {MIN_SPAN_WINDOWS} before the split; the shortest"


def resolve_split(split, first_s: float, last_s: float, window_s: float) -> float:
    """The split time (seconds on the trace's clock), rounded down to a whole window.

    Parameters
    ----------
    split : float
        A fraction of the span in ``(0, 1)``, or a time in seconds (>= 1) on the trace's clock.
    first_s, last_s : float
        The trace's first and last timestamps.
    window_s : float
        The pool's arrival window.

    Raises
    ------
    ValueError
        If ``split`` is not a finite number, or leaves less than one whole window on a side.
    """
    if isinstance(split, bool) or not isinstance(split, (int, float, np.integer, np.floating)) or not math.isfinite(split):
        raise ValueError(f"split must be a fraction in (0, 1) or a time in seconds; got {split!r}")
    t = first_s + float(split) * (last_s - first_s) if 0 < split < 1 else float(split)
    t = math.floor(t / window_s) * window_s
    if not (t - first_s >= window_s and last_s - t >= window_s):
        raise ValueError(f"split {split!r} gives {t:g} s, which must leave at least one window of {window_s:g} s of "
                         f"the trace [{first_s:g}, {last_s:g}] s on each side")
    return t


def _read(store: TraceStore, clients: pl.Series | None = None) -> pl.DataFrame:
    """The columns fitting and scoring use: time, client, links, token counts and modality counts
    (of the requests of ``clients`` only, when given: filtered in the scan, before anything is held)."""
    keep = [c for c in store.columns if c in ("timestamp", "client_id", "conversation_id", "parent_id", "turn")
            or c.endswith("_tokens") or c.endswith("_count")]
    files = [str(f) for f in store.requests_files]  # one file, or a partitioned store's
    scan = pl.scan_parquet(files, hive_partitioning=False).select(keep)
    if clients is not None:
        scan = scan.filter(_of_clients(clients))
    return scan.sort("timestamp", maintain_order=True).collect()


def _of_clients(ids: pl.Series) -> pl.Expr:
    """Rows whose ``client_id`` is one of ``ids`` (a null among them keeps the rows without one)."""
    if ids.null_count() == 0:
        return pl.col("client_id").is_in(ids.implode())
    return pl.col("client_id").is_in(ids.drop_nulls().implode()) | pl.col("client_id").is_null()


def _chosen_clients(counts: pl.DataFrame, bound: int, seed: int) -> tuple[pl.Series, np.ndarray]:
    """:func:`sample_clients`' choice from the per-client request counts (``client_id``, ``len``):
    the kept ids and the keep mask over ``counts`` sorted by id."""
    counts = counts.sort("client_id", nulls_last=True)
    order = np.random.default_rng(int(seed)).permutation(counts.height)
    n = counts["len"].to_numpy()[order]
    keep = np.cumsum(n) <= bound
    keep[0] = True
    return counts["client_id"].gather(order[keep]), keep


def _read_bounded(store: TraceStore, bound: int, *, seed: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """``sample_clients(_read(store), bound, seed=seed)`` without reading the other clients' requests:
    the per-client counts come from one SQL aggregate, and only the chosen clients are read (a
    100 M-row store's full read did not fit the report's memory). The same rows, order and record."""
    if isinstance(bound, bool) or not isinstance(bound, (int, np.integer)) or bound < 1:
        raise ValueError(f"bound must be a positive integer; got {bound!r}")
    total = store.n_requests
    if "client_id" not in store.columns or total <= bound:
        return sample_clients(_read(store), bound, seed=seed)
    counts = store.query("SELECT client_id, count(*) AS len FROM requests GROUP BY client_id")
    ids, keep = _chosen_clients(counts, bound, seed)
    kept = _read(store, clients=ids)
    return kept, {"bound": int(bound), "clients": int(keep.sum()), "clients_total": counts.height,
                  "requests": kept.height, "requests_total": int(total)}


def sample_clients(frame: pl.DataFrame, bound: int, *, seed: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """The requests of a seeded sample of whole clients holding at most ``bound`` requests.

    The client ids, sorted, are put in a random order (``numpy.random.default_rng(seed)``) and kept
    while their request counts add up to at most ``bound`` (the first is always kept). Frames
    without ``client_id``, or with at most ``bound`` rows, come back unchanged with an empty record.

    Returns
    -------
    (polars.DataFrame, dict)
        The kept rows (in their order) and ``bound, clients, clients_total, requests,
        requests_total`` (empty when nothing was dropped).

    Raises
    ------
    ValueError
        If ``bound`` is not a positive integer.
    """
    if isinstance(bound, bool) or not isinstance(bound, (int, np.integer)) or bound < 1:
        raise ValueError(f"bound must be a positive integer; got {bound!r}")
    if frame.height <= bound or "client_id" not in frame.columns:
        return frame, {}
    counts = frame.group_by("client_id").len()
    ids, keep = _chosen_clients(counts, bound, seed)
    kept = frame.filter(_of_clients(ids))
    return kept, {"bound": int(bound), "clients": int(keep.sum()), "clients_total": counts.height,
                  "requests": kept.height, "requests_total": frame.height}


def noise_floor(real: pl.DataFrame, window_s: float, *, seed: int = 0) -> dict[str, float]:
    """The compare distances between the two halves of a workload: its own sampling noise.

    The windows of ``window_s`` (from the first timestamp's window) are dealt alternately to two
    halves, each closed up into a contiguous series (window ``2j + h`` becomes window ``j`` of
    half ``h``, times inside a window kept), and half 0 is scored against half 1 with
    :func:`~servelab.analysis.fidelity.compare` at ``window_s``. Both halves follow the same
    process, so a distance is what that many requests differ by chance -- at half the sample size,
    so the floor is on the generous side of the noise of a full-size comparison.

    Returns
    -------
    dict
        ``{metric: distance}`` for the distance metrics; empty when a half has fewer than 2
        requests or the workload spans fewer than 4 windows.
    """
    t = real["timestamp"].to_numpy()
    if t.size < 4:
        return {}
    t0 = math.floor(float(t.min()) / window_s) * window_s
    k = np.floor((t - t0) / window_s).astype(np.int64)
    if k.max() < 3:
        return {}
    halves = []
    for h in (0, 1):
        sel = (k % 2) == h
        if sel.sum() < 2:
            return {}
        halves.append(real.filter(pl.Series(sel)).with_columns(
            timestamp=pl.Series((k[sel] // 2) * window_s + (t[sel] - t0 - k[sel] * window_s))))
    table = compare(halves[0], [halves[1]], names=["half"], window_s=window_s, seed=seed)
    return {m: float(v) for m, kind, v in zip(table["metric"], table["kind"], table["half"]) if kind == "distance"}


#: level of the shape test (:func:`shape_test`)
SHAPE_LEVEL = 0.05
#: blocks of consecutive windows the shape test pairs over (at most), fewest windows a block
#: holds, and fewest blocks the test is run on
SHAPE_BLOCKS = 20
SHAPE_MIN_BLOCK_WINDOWS = 10
SHAPE_MIN_BLOCKS = 8
#: the shape test's proper scores, each of a real item against a candidate's whole-span sample
SHAPE_METRICS = MappingProxyType({
    "rate_shape": "CRPS of a real window's rate / mean rate against the candidate's (volume removed)",
    "joint_input_shape": ("energy score of a real window's (rate / mean rate, mean input) against the candidate's, "
                          "reference-standardised"),
    "joint_output_shape": ("energy score of a real window's (rate / mean rate, mean output) against the "
                           "candidate's, reference-standardised"),
    "input_length": "CRPS of a real request's input tokens against the candidate's",
    "output_length": "CRPS of a real request's output tokens against the candidate's",
})
#: the shape test's null, in words
SHAPE_NULL = ("servelab predicts the real later part's shape (volume removed) no better than naive: the per-block "
              "mean of naive's proper scores minus servelab's is symmetric about a median <= 0 (one-sided Wilcoxon "
              "signed-rank test over blocks of consecutive windows; a Diebold-Mariano comparison)")
_LENGTHS = ("input", "output")
#: candidate points an energy score is taken against, and real windows scored per block (seeded subsamples)
_ES_POINTS = 1000
_ES_PER_BLOCK = 250


@dataclass(frozen=True)
class _Features:
    """Per-window counts (over the workload's mean: volume removed) and mean lengths of a
    workload over ``n`` windows, and its requests' window indices and lengths."""

    rate: np.ndarray
    n: np.ndarray
    mean: Mapping[str, np.ndarray]
    k: np.ndarray
    values: Mapping[str, np.ndarray]


def _features(frame: pl.DataFrame, window_s: float, n_win: int) -> _Features:
    k = np.floor(frame["timestamp"].to_numpy() / window_s).astype(np.int64)
    ok = (k >= 0) & (k < n_win)
    k = k[ok]
    n = np.bincount(k, minlength=n_win).astype(float)
    mean, values = {}, {}
    for c in _LENGTHS:
        col = f"{c}_tokens"
        if col not in frame.columns:
            continue
        v = frame[col].cast(pl.Float64).fill_null(np.nan).to_numpy()[ok]
        fin = np.isfinite(v)
        s = np.bincount(k[fin], weights=v[fin], minlength=n_win)
        m = np.bincount(k[fin], minlength=n_win)
        mean[c] = np.where(m > 0, s / np.maximum(m, 1), np.nan)
        values[c] = v
    return _Features(rate=n / max(n.mean(), 1e-300), n=n, mean=mean, k=k, values=values)


def crps_sample(sample: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The fair CRPS of each ``x`` against the law ``sample`` is drawn from: ``mean|X_i - x|`` minus
    half the mean of ``|X_i - X_j|`` over the pairs ``i != j`` (unbiased for the law's CRPS
    ``E|X - x| - E|X - X'| / 2`` whatever the sample's size; exact, by sorting and prefix sums;
    lower is better). NaN with fewer than 2 sample values."""
    s = np.sort(np.asarray(sample, dtype=float)[np.isfinite(sample)])
    x = np.asarray(x, dtype=float)
    n = s.size
    if n < 2:
        return np.full(x.shape, np.nan)
    p = np.r_[0.0, np.cumsum(s)]
    k = np.searchsorted(s, x, side="right")
    near = (x * k - p[k] + (p[n] - p[k]) - x * (n - k)) / n
    spread = 2.0 * np.sum((2 * np.arange(n) - n + 1) * s) / (n * (n - 1))  # mean |X_i - X_j|, i != j
    return near - spread / 2


def energy_score(sample: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The fair energy score of each row of ``y`` against the law ``sample``'s rows are drawn from:
    ``mean||X_i - y||`` minus half the mean of ``||X_i - X_j||`` over the pairs ``i != j``
    (unbiased for ``E||X - y|| - E||X - X'|| / 2``; lower is better; NaN with fewer than 2 rows)."""
    if sample.shape[0] < 2:
        return np.full(y.shape[0], np.nan)
    def mean_dist(a: np.ndarray) -> np.ndarray:  # rows of ``a`` to every sample row, 500 rows at a time
        return np.concatenate([np.sqrt(((sample[None, :, :] - a[i:i + 500, None, :]) ** 2).sum(axis=2)).mean(axis=1)
                               for i in range(0, a.shape[0], 500)]) if a.shape[0] else np.zeros(0)

    m = sample.shape[0]
    near = mean_dist(y)
    spread = float(mean_dist(sample).mean()) * m / (m - 1)  # the diagonal's zeros left out
    return near - spread / 2


@dataclass(frozen=True)
class ShapeTest:
    """The shape test of one split (:func:`shape_test`): does servelab predict the shape better than naive?

    Attributes
    ----------
    blocks : int
        Blocks of consecutive windows paired over (0: not run, see ``reason``).
    windows_per_block : int
    level : float
        The test's level.
    advantage : Mapping
        Per metric, the mean over blocks of naive's score minus servelab's, over its root mean
        square (> 0: servelab predicts better on it; about ``1 / sqrt(blocks)`` is one standard
        error).
    differences : tuple of float
        Per block, the sum over metrics of naive's mean score minus servelab's, each over the
        metric's root mean square over blocks (> 0: servelab better in that block).
    wins : int
        Blocks with a positive difference.
    statistic, p_value : float
        Wilcoxon signed-rank statistic and one-sided p-value (alternative: servelab better).
    servelab_better : bool
        ``p_value <= level``: the null :data:`SHAPE_NULL` is rejected.
    reason : str
        Why the test was not run (empty when it was).
    """

    blocks: int
    windows_per_block: int
    level: float
    advantage: Mapping[str, float]
    differences: tuple[float, ...]
    wins: int
    statistic: float
    p_value: float
    servelab_better: bool
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "advantage", MappingProxyType(dict(self.advantage)))
        object.__setattr__(self, "differences", tuple(float(d) for d in self.differences))

    def text(self) -> str:
        """The outcome in one line (the CLI's and the report's)."""
        if not self.blocks:
            return f"the shape test was not run ({self.reason})"
        adv = ", ".join(f"{m} {v:+.2f}" for m, v in self.advantage.items())
        return (f"shape test (volume removed, {self.blocks} blocks of {self.windows_per_block} windows): servelab "
                f"scores better in {self.wins} of {self.blocks} blocks, one-sided p = {self.p_value:.3g} "
                f"({'<=' if self.servelab_better else '>'} {self.level:g}: servelab "
                f"{'predicts the shape better' if self.servelab_better else 'not shown better'}); "
                f"mean advantage per metric in RMS units (+ servelab better): {adv}")

    def describe(self) -> dict:
        """A JSON-ready summary."""
        return {"null": SHAPE_NULL, "level": self.level, "blocks": self.blocks,
                "windows_per_block": self.windows_per_block,
                "advantage": {m: _num(v) for m, v in self.advantage.items()},
                "wins": self.wins, "statistic": _num(self.statistic), "p_value": _num(self.p_value),
                "servelab_better": self.servelab_better, "differences": [_num(d) for d in self.differences],
                "reason": self.reason or None}


def _not_run(reason: str, level: float) -> ShapeTest:
    return ShapeTest(blocks=0, windows_per_block=0, level=level, advantage={}, differences=(), wins=0,
                     statistic=math.nan, p_value=math.nan, servelab_better=False, reason=reason)


def _finite_mean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def shape_scores(real: _Features, cand: _Features, block: np.ndarray, group: np.ndarray, b: int,
                 scored: np.ndarray, *, seed: int, metrics: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Per metric of :data:`SHAPE_METRICS`, the mean score per block of the real items of block
    ``i`` (``block``: each real window's block) against the candidate's items of group ``i``
    (``group``: each candidate window's group, a seeded random split of its whole span into ``b``
    disjoint parts, so a block's predictive sample is the whole span's law and the blocks'
    candidate noise is independent); ``scored``: the real windows whose energy scores are taken;
    ``metrics``: only those are scored (default all; the others come back all NaN)."""
    want = set(SHAPE_METRICS if metrics is None else metrics)
    rng = np.random.default_rng(seed)
    out = {m: np.full(b, np.nan) for m in SHAPE_METRICS}
    cols = [c for c in _LENGTHS if c in real.mean and c in cand.mean]
    a = {c: np.column_stack([real.rate, real.mean[c]]) for c in cols}
    sd = {}
    for c in cols:
        v = np.nanstd(a[c][real.n > 0], axis=0)
        sd[c] = np.where(np.isfinite(v) & (v > 0), v, 1.0)
    pts_all = {c: np.column_stack([cand.rate, cand.mean[c]]) for c in cols}
    rq_block, cq_group = block[real.k], group[cand.k]
    for i in range(b):  # a handful of blocks; each is vectorised
        mine, theirs = block == i, group == i
        if "rate_shape" in want:
            out["rate_shape"][i] = _finite_mean(crps_sample(cand.rate[theirs], real.rate[mine]))
        for c in cols:
            if f"{c}_length" in want:
                out[f"{c}_length"][i] = _finite_mean(crps_sample(cand.values[c][cq_group == i],
                                                                 real.values[c][rq_block == i]))
            if f"joint_{c}_shape" not in want:
                continue
            pts = pts_all[c][theirs & (cand.n > 0)]
            pts = pts[np.isfinite(pts).all(axis=1)]
            if pts.shape[0] > _ES_POINTS:
                pts = pts[rng.choice(pts.shape[0], _ES_POINTS, replace=False)]
            sel = mine & scored & (real.n > 0) & np.isfinite(a[c]).all(axis=1)
            if sel.any():
                out[f"joint_{c}_shape"][i] = _finite_mean(energy_score(pts / sd[c], a[c][sel] / sd[c]))
    return {m: v for m, v in out.items() if m == "rate_shape" or any(m.startswith(f"joint_{c}") or
                                                                     m.startswith(c) for c in cols)}


def shape_test(real: pl.DataFrame, servelab: pl.DataFrame, naive: pl.DataFrame, window_s: float, duration: float, *,
               seed: int = 0, level: float = SHAPE_LEVEL, max_blocks: int = SHAPE_BLOCKS,
               metrics: tuple[str, ...] | None = None) -> ShapeTest:
    """Test whether servelab predicts the real later part's shape better than naive (volume removed).

    A Diebold-Mariano comparison of the two candidates as *predictive distributions*: the real
    later part's windows are cut into ``B = min(max_blocks, windows // 10)`` blocks of
    consecutive windows (at least 8), and each candidate's windows are dealt at random into
    ``B`` disjoint groups of its whole span. The items of real block ``i`` are scored against
    group ``i`` of each candidate with fair (size-unbiased) proper scores
    (:data:`SHAPE_METRICS`: the CRPS of each window's rate over the workload's mean rate, the
    energy score of each window's (rate over mean, mean input / output), the CRPS of each
    request's lengths). Dividing each workload's window counts by its own mean removes the
    volume, so a count error of the forecast does not decide it (the count is judged apart).
    Per block and metric: naive's mean score minus servelab's, each metric over its root mean
    square across blocks (metrics of different units weigh alike), summed over metrics. The
    one-sided Wilcoxon signed-rank test of the block differences at ``level`` rejects
    :data:`SHAPE_NULL` when servelab scores better consistently over the blocks.

    Why groups: scored against a candidate's whole sample, every block would share that one
    sample's noise, and two draws of one generator would be told apart (a first version
    rejected in 5 of 20 null traces). With disjoint groups, each block carries its own real
    windows and its own candidate sample, so the blocks' noise is (nearly) independent -- within
    a block the real windows stay dependent (bursts, the daily cycle). The level is checked
    where the null holds exactly (two draws of one generator: ``benchmarks/bench_validate.py
    --parts aa``) and with power on simulated traces of known truth (``--parts v1``).

    Energy scores are taken for at most 250 real windows per block against at most 1,000
    candidate windows of the group (seeded subsamples); CRPS is exact.

    ``metrics`` (default all of :data:`SHAPE_METRICS`) restricts the sum to those metrics (the
    report's F12 tests the joint window metrics only); the scores are the same.

    Returns
    -------
    ShapeTest
        Not run (``blocks`` 0, ``reason`` says why) with fewer than 8 blocks of 10 windows.
    """
    if metrics is not None and (not metrics or set(metrics) - set(SHAPE_METRICS)):
        raise ValueError(f"metrics must be names of SHAPE_METRICS ({', '.join(SHAPE_METRICS)}); got {metrics!r}")
    n_win = int(math.floor(duration / window_s))
    b = min(int(max_blocks), n_win // SHAPE_MIN_BLOCK_WINDOWS)
    if b < SHAPE_MIN_BLOCKS:
        return _not_run(f"{n_win} whole windows of {window_s:g} s hold fewer than {SHAPE_MIN_BLOCKS} blocks of "
                        f"{SHAPE_MIN_BLOCK_WINDOWS}", level)
    fr, fs, fn = (_features(f, window_s, n_win) for f in (real, servelab, naive))
    if fr.n.sum() == 0 or fs.n.sum() == 0 or fn.n.sum() == 0:
        return _not_run("a workload holds no request in the whole windows", level)
    per = n_win // b
    block = np.minimum(np.arange(n_win) // per, b - 1)
    rng = np.random.default_rng(seed)
    scored = np.ones(n_win, dtype=bool)
    if per > _ES_PER_BLOCK:  # a seeded subsample of the windows of each block
        rank = (pl.DataFrame({"b": block, "k": rng.random(n_win)})
                .select(pl.col("k").rank("ordinal").over("b"))["k"].to_numpy())
        scored = rank <= _ES_PER_BLOCK
    # each candidate's windows dealt at random into b equal groups (its whole span's law, disjoint)
    groups = [np.argsort(np.random.default_rng([seed, j]).permutation(n_win)) % b for j in (0, 1)]
    s_ours = shape_scores(fr, fs, block, groups[0], b, scored, seed=seed, metrics=metrics)
    s_naive = shape_scores(fr, fn, block, groups[1], b, scored, seed=seed, metrics=metrics)
    total = np.zeros(b)
    advantage = {}
    for m in SHAPE_METRICS:
        if m not in s_ours or m not in s_naive or (metrics is not None and m not in metrics):
            continue
        d = s_naive[m] - s_ours[m]
        if not np.isfinite(d).all():
            continue
        rms = float(np.sqrt(np.mean(d ** 2)))
        if rms <= 0:
            continue
        total += d / rms
        advantage[m] = float(d.mean() / rms)
    if not advantage or not np.any(total != 0):
        return _not_run("no metric could be scored in every block", level)
    res = stats.wilcoxon(total, alternative="greater")
    p = float(res.pvalue)
    return ShapeTest(blocks=b, windows_per_block=int(per), level=float(level), advantage=advantage,
                     differences=tuple(total), wins=int((total > 0).sum()), statistic=float(res.statistic),
                     p_value=p, servelab_better=bool(p <= level))


def _one_split(store: TraceStore, frame: pl.DataFrame, split_s: float, end_s: float, *, seed: int,
               settings: PoolFitSettings, workdir: Path, window_s: float | None, rate=None,
               draws: int = 1) -> SplitResult:
    t = frame["timestamp"]
    before = frame.filter(t < split_s)
    later = frame.filter((t >= split_s) & (t < end_s))
    if later.height < 2:
        raise ValueError(f"the test span [{split_s:g}, {end_s:g}) s holds {later.height} request(s); at least 2 needed")
    part = write_store(before, workdir / f"before-{int(split_s)}", source=str(store.path),
                       fmt="validate-split", origin=store.origin, timezone=store.timezone, overwrite=True)
    pool = fit_pool(part, settings=settings)
    duration = end_s - split_s
    clock = store.clock_s
    real = later.with_columns(pl.col("timestamp") - split_s)
    if window_s is None:
        choice = choose_window(real)
        w, rule = choice.window_s, f"automatic: {choice.rule}"
    else:
        w, rule = float(window_s), "given"
    floor = noise_floor(real, w, seed=seed)

    def components(f: pl.DataFrame) -> dict[str, float]:
        return rate_components(f["timestamp"].to_numpy(), duration_s=duration, window_s=w, start_s=split_s)

    parts = {"reference": components(real)}
    part_draws = []
    per_draw = []
    for i, s in enumerate(draw_seeds(seed, draws)):  # a few draws; each is vectorised
        ext, info = extend_pool(pool, end_s, seed=s, rate=rate)
        ours = generate(ext, "pool", duration, start=split_s, seed=s, clock=clock, max_requests=None)
        # naive knows the past mix only: its request data is the aggregate of the fitted span (its
        # times follow the same forecast total); the extension's mix is servelab's churn model
        naive = naive_generate(ext, _smooth_total(info, rate, split_s, duration, pool.window_s), duration,
                               start=split_s, seed=s, clock=clock, max_requests=None, data_span=tuple(pool.span))
        table = compare(real, [ours, naive], names=list(CANDIDATES), window_s=w, seed=s)
        per_draw.append({"seed": s, **{c: dict(zip(table["metric"], table[c])) for c in CANDIDATES}})
        part_draws.append({"servelab": components(ours), "naive": components(naive)})
        if i:
            continue
        # the first draw's shape test, turnover, extension and counts (module docstring)
        reference = dict(zip(table["metric"], table["reference"]))
        shape = shape_test(real, ours, naive, w, duration, seed=s)
        clients = {}
        if "client_id" in frame.columns:
            seen = set(before["client_id"].drop_nulls().unique().to_list())
            later_ids = later["client_id"].drop_nulls().unique()
            new = ours.filter(pl.col("client_id").str.starts_with(NEW_CLIENT_PREFIX))["client_id"]
            clients = {"later": later_ids.len(), "seen_before": int(later_ids.is_in(list(seen)).sum()),
                       "generated": ours["client_id"].n_unique(), "generated_new": new.n_unique()}
        n_win = max(1, int(math.ceil(duration / w)))
        counts = {"window_start_s": np.arange(n_win) * w}
        for name, f in (("reference", real), ("servelab", ours), ("naive", naive)):
            k = np.clip(np.floor(f["timestamp"].to_numpy() / w).astype(np.int64), 0, n_win - 1)
            counts[name] = np.bincount(k, minlength=n_win)
        extension = info.describe()
    metrics = {"reference": reference, **{c: {m: _draw_mean([d[c].get(m) for d in per_draw]) for m in reference}
                                          for c in CANDIDATES}}
    for c in CANDIDATES:
        parts[c] = {k: _draw_mean([d[c][k] for d in part_draws]) for k in parts["reference"]}
    return SplitResult(split_s=split_s, end_s=end_s, window_s=w, window_rule=rule, metrics=metrics, clients=clients,
                       extension=extension, counts=pl.DataFrame(counts), noise_floor=floor,
                       shape_test=shape, draws=tuple(per_draw), rate_components=parts)


def _draw_mean(values: list):
    """The mean of a metric over draws (its finite values; NaN when none is); one draw's value as is."""
    if len(values) == 1:
        return values[0]
    v = np.array([_nan(x) for x in values])
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def _smooth_total(info, rate, split_s: float, duration: float, window_s: float):
    """Naive's total rate past the split, a table (seconds since the split, req/s) at the pool's
    window mids: the extension's total (:meth:`~servelab.generator.extend.Extension.rate_at`: the
    forecast's trend x daily factor, times the churn model's expected volume path when the span
    was too short to test a trend), or the given ``rate``. It is the total
    servelab's blocks follow, without servelab's window-to-window variation (copied client rows):
    a baseline that knows the total-rate forecast but no client."""
    mids = (np.arange(max(1, int(math.ceil(duration / window_s)))) + 0.5) * window_s
    f = rate if rate is not None else info.rate_at
    r = np.maximum(np.asarray(f(split_s + mids), dtype=float), 0.0)
    if not np.any(r > 0):
        r = np.ones_like(r) * 1e-9
    times = np.r_[0.0, mids, duration] if duration > mids[-1] else np.r_[0.0, mids]
    rates = np.r_[r[0], r, r[-1]] if duration > mids[-1] else np.r_[r[0], r]
    keep = np.r_[True, np.diff(times) > 0]
    return (times[keep].tolist(), rates[keep].tolist())


def validate(store, *, split=0.5, seed: int = 0, rolling: int | None = None, window_s: float | None = None,
             max_requests: int | None = None, settings: PoolFitSettings | None = None, rate=None,
             draws: int = 1, **overrides) -> ValidationResult:
    """Fit on the part of ``store`` before ``split``, generate after it, score both generators.

    Parameters
    ----------
    store : TraceStore or path
    split : float
        Fraction of the time span in (0, 1), or a time in seconds (see :func:`resolve_split`).
    seed : int
        Seed of the extension, both generators and the metrics' subsamples.
    rolling : int, optional
        Number of rolling test folds after the split (module docstring); None is one.
    window_s : float, optional
        Window of the window metrics; default picked from each real later part.
    max_requests : int, optional
        Above this many requests, validate on a seeded sample of whole clients of at most this
        many (:func:`sample_clients`; module docstring); None uses every request.
    settings : PoolFitSettings, optional
        How the pool is fitted; ``**overrides`` replace fields (``min_requests=10``, ...; the
        pool's arrival window is the setting ``window_s``, which here names the metric window: pass
        it as ``settings=PoolFitSettings(window_s="10m")``, or as the deprecated alias ``window="10m"``).
    rate : callable, optional
        Total rate (req/s) past the split as a function of time (seconds on the trace's clock,
        numpy array in and out), followed by both generators instead of the pool's forecast
        (:func:`~servelab.generator.extend.extend_pool`'s ``rate``): to score the shape of the
        workload given its volume (e.g. an oracle, the real later rate), or a planned load. The
        request count then follows the given rate and is no prediction.
    draws : int
        Seeded draws per generator and split (:func:`draw_seeds`; module docstring, "Several
        draws"): the candidates' metrics are then the draws' means, each draw's values are kept
        and :meth:`ValidationResult.draws_table` compares the expected scores. Default 1 (the
        report's validation area); ``servelab validate`` takes :func:`default_draws`.

    Returns
    -------
    ValidationResult

    Raises
    ------
    ValueError
        For a bad split, rolling count, draws or seed, or a test fold without requests.
    GenerationError
        If the pool cannot be extended or generated from.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    if rate is not None and not callable(rate):
        raise ValueError(f"rate must be a function of time (req/s) or None; got {rate!r}")
    k = 1 if rolling is None else rolling
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"rolling must be a positive integer; got {rolling!r}")
    draw_seeds(int(seed), draws)  # checks draws
    store = store if isinstance(store, TraceStore) else open_store(store)
    base = settings or PoolFitSettings()
    if overrides:
        base = base.replace(**resolve_setting_aliases(overrides, where="validate"))
    bounded: dict[str, int] = {}
    if max_requests is not None:
        frame, bounded = _read_bounded(store, max_requests, seed=int(seed))
    else:
        frame = _read(store)
    if frame.height < 2:
        raise ValueError(f"the store has {frame.height} request(s); validation needs at least 2")
    first, last = float(frame["timestamp"].min()), float(frame["timestamp"].max())
    W = base.window_s
    s0 = resolve_split(split, first, last, W)
    end = math.nextafter(last, math.inf)
    edges = [s0 + (end - s0) * i / k for i in range(k + 1)]
    edges = [math.floor(e / W) * W for e in edges[:-1]] + [end]
    if len(set(edges)) != len(edges):
        raise ValueError(f"rolling={k} cuts {end - s0:g} s after the split into folds shorter than one window of "
                         f"{W:g} s; use fewer folds or an earlier split")
    splits = []
    with tempfile.TemporaryDirectory(prefix="servelab-validate-") as tmp:
        for i in range(k):
            splits.append(_one_split(store, frame, edges[i], edges[i + 1], seed=seed, settings=base,
                                     workdir=Path(tmp), window_s=window_s, rate=rate, draws=int(draws)))
    return ValidationResult(store=str(store.path), splits=tuple(splits), seed=int(seed), bounded_sample=bounded,
                            rate_assumption=RATE_ASSUMPTION if rate is None else GIVEN_RATE_ASSUMPTION,
                            draws=int(draws))

"""BurstGPT's findings on long-term periodicity, short-term bursts, failures and load forecasting.

:func:`measure_periodicity` runs the analyses once on a store and keeps their small tables in a
:class:`PeriodicityEvidence`; :func:`periodicity_findings` turns the evidence into
:class:`~servelab.analysis.findings.Finding` records, each with measured numbers and a verdict, or
"not applicable" with the reason (a one-hour trace cannot show a daily period; a trace without
``failed`` has no failure rate). Neither ever raises for a trace lacking columns or span.

Findings (ids):

* ``burstgpt.periodicity`` -- conversation traffic periodic, API traffic aperiodic (KDD'25 §3.1,
  Fig. 2-5; preprint §III-B-1);
* ``burstgpt.weekday_weekend`` -- volumes peak on weekdays, drop at weekends (Fig. 2);
* ``burstgpt.bursts`` -- request volume doubles 65 times within 5 min and 38 times within 10 min
  per workday (preprint §III-B-2, Fig. 5): :func:`~servelab.fitting.rate_tests.doubling_test` at
  each horizon against Poisson arrivals with a rate constant within each hour, holding when the
  doubling share is beyond that null and at least half the paper's share, at both horizons;
* ``burstgpt.failures`` -- high failure rates, above 5% for the conversation service (§3.4, Fig. 11);
* ``burstgpt.forecasting`` -- load is forecastable; 10-minute bins are easier than 1-minute bins
  (§5.4, Fig. 17-18).

This module never imports matplotlib.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl
from servelab.analysis.budget import Budget
from servelab.analysis.bursts import burst_counts
from servelab.analysis.failures import (
    failure_rate_spread,
    over_time_from_bins,
    rates_from_bins,
)
from servelab.analysis.findings import Finding, FindingList, Verdict, not_applicable
from servelab.analysis.periodicity import (
    SUM_COLUMNS,
    binned_load,
    daily_counts,
    day_of_week_profile,
    hour_of_day_profile,
    human_duration,
    periodicity,
    rebin,
    trace_clock,
    weekday_weekend,
)
from servelab.analysis.store import TraceStore
from servelab.fitting.exceptions import InsufficientDataError
from servelab.fitting.rate_tests import doubling_test
from servelab.fitting.verdicts import DEFAULT_LEVEL, NullTest, combine
from servelab.fitting.forecasting import (
    ForecastResult,
    LoadForecaster,
    series_from_bins,
)

__all__ = [
    "FAILURE_RATE_HOLDS",
    "PAPER_BURSTS_PER_WORKDAY",
    "PAPER_DOUBLING",
    "PAPER_FORECAST_1MIN",
    "WEEKDAY_RATIO_HOLDS",
    "PeriodicityEvidence",
    "measure_periodicity",
    "periodicity_findings",
    "regroup",
]

#: this area's findings, in order (each finding function registers itself: ``@FINDINGS.register``)
FINDINGS = FindingList()

#: BurstGPT preprint §III-B-2: doublings per workday within 5 and 10 minutes (ChatGPT)
PAPER_BURSTS_PER_WORKDAY = {300.0: 65.0, 600.0: 38.0}
#: BurstGPT KDD'25 Fig. 17: request-count forecast at 1-minute bins
PAPER_FORECAST_1MIN = {"nmae": 0.73, "nmse": 0.48}
#: weekday mean / weekend mean daily volume from which "weekday peaks" is called holding
WEEKDAY_RATIO_HOLDS = 1.2
#: the paper's "consistently high" conversation failure rate
FAILURE_RATE_HOLDS = 0.05
#: least eligible 5-minute windows (2 hours) before a burst frequency is judged
MIN_BURST_WINDOWS = 24
#: the paper's share of windows whose volume doubles (BurstGPT preprint: 65 of 288 five-minute and 38 of 144
#: ten-minute windows per workday); half of it is the practical threshold
PAPER_DOUBLING = {300.0: 65 / 288, 600.0: 38 / 144}
#: per-window failure rates count only for windows with at least this many requests
FAILURE_MIN_REQUESTS = 10

_SRC_31 = "BurstGPT (KDD'25) §3.1, Fig. 2-5; BurstGPT preprint (2024) §III-B-1, Fig. 1-4"


@dataclass(frozen=True)
class PeriodicityEvidence:
    """What :func:`measure_periodicity` measured (small tables and results, never request rows).

    ``reasons`` maps an analysis name (``"failures"``, ``"forecast requests 600s"``, ...) to why it
    could not run; ``forecasts`` maps ``(target, window_s)`` to a :class:`ForecastResult`.
    """

    clock: str
    span_s: float
    group_cols: tuple[str, ...]
    hourly: pl.DataFrame
    daily: pl.DataFrame
    hour_profile: pl.DataFrame
    week_profile: pl.DataFrame
    weekday_weekend: pl.DataFrame
    periodicity: pl.DataFrame
    bursts: pl.DataFrame | None = None
    burst_tests: Mapping[float, NullTest] = field(default_factory=dict)
    failure_rates: pl.DataFrame | None = None
    failure_over_time: pl.DataFrame | None = None
    failure_spread: pl.DataFrame | None = None
    forecasts: Mapping[tuple[str, float], ForecastResult] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    budget: Budget = Budget.full()

    def __post_init__(self) -> None:
        object.__setattr__(self, "forecasts", MappingProxyType(dict(self.forecasts)))
        object.__setattr__(self, "burst_tests", MappingProxyType(dict(self.burst_tests)))
        object.__setattr__(self, "reasons", MappingProxyType(dict(self.reasons)))
        object.__setattr__(self, "notes", tuple(self.notes))

    def forecast_table(self) -> pl.DataFrame:
        """All forecast summaries stacked (empty when none ran)."""
        parts = [r.summary() for r in self.forecasts.values()]
        return pl.concat(parts) if parts else pl.DataFrame(
            schema={"target": pl.String, "bin_s": pl.Float64, "n_test": pl.Int64, "method": pl.String,
                    "nmae": pl.Float64, "nmse": pl.Float64})


def regroup(frame: pl.DataFrame, by: tuple[str, ...]) -> pl.DataFrame:
    """Sum a :func:`binned_load` table over groups, keeping ``by`` (``()`` -> the whole trace).

    Counts per bin of a coarser grouping are sums of those of a finer one, so one SQL scan by
    (service, model) serves the per-service, per-model and whole-trace tables.
    """
    calendar = [c for c in ("start_s", "local_time", "date", "hour", "weekday", "day_index", "is_weekend", "clock")
                if c in frame.columns]
    sums = [c for c in SUM_COLUMNS if c in frame.columns]
    out = frame.group_by([*by, "bin"], maintain_order=True).agg(
        *[pl.col(c).sum() for c in sums], *[pl.col(c).first() for c in calendar])
    label = (pl.concat_str([pl.col(c).cast(pl.String).fill_null("(none)") for c in by], separator=" / ")
             if by else pl.lit("all"))
    return out.with_columns(group=label).sort(["group", "bin"]).select(
        [*by, "group", "bin", *[c for c in out.columns if c not in (*by, "bin", "group")]])


def measure_periodicity(store: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0) -> PeriodicityEvidence:
    """Run every analysis of this area on ``store`` (each skipped, with its reason, if it cannot).

    Parameters
    ----------
    store : TraceStore
    budget : Budget
        ``budget.forecast_max_iter`` boosting iterations in the forecasts (100 in full and quick
        mode; nothing else here is sampled: the analyses read per-bin counts).
    seed : int
        Seed of the forecasting regressor.
    """
    clock = trace_clock(store)
    span = store.manifest.get("span_s") or {}
    span_s = float((span.get("last") or 0.0) - (span.get("first") or 0.0))
    cols = tuple(c for c in ("service", "model") if store.has(c))
    reasons: dict[str, str] = {}
    notes = [f"hours and weekdays read on the {clock.basis} clock"
             + (f" ({clock.zone})" if clock.zone else "")]
    if not clock.knows_weekdays:
        notes.append("the trace's origin (wall-clock start) is unknown: profiles are relative to the trace start")

    # one scan of the store: requests (and tokens, failures) per minute by service and model;
    # every table below is a sum over these bins (see `rebin` and `regroup`)
    tokens = "input_tokens" if store.has("input_tokens") else None
    has_failed = store.has("failed")
    cube = binned_load(store, window_s=60.0, by=cols, tokens=tokens, failed=has_failed, clock=clock)
    hourly_fine = rebin(cube, from_s=60.0, to_s=3600.0, by=cols, clock=clock)
    tables = [regroup(hourly_fine, ())]
    for c in cols:
        tables.append(regroup(hourly_fine, (c,)))
    if len(cols) > 1:
        tables.append(regroup(hourly_fine, cols))
    hourly = pl.concat([t.select("group", *[c for c in t.columns if c not in (*cols, "group")]) for t in tables],
                       how="vertical_relaxed")
    daily = daily_counts(hourly)
    per = []
    for t, label in zip(tables[: 1 + len(cols)], ("trace", *cols)):
        res = periodicity(store, by=() if label == "trace" else (label,), counts=t)
        per.append(res.table.with_columns(by=pl.lit(label)))
    periodic = pl.concat(per).select("by", *[c for c in per[0].columns if c != "by"])

    # bursts, for the whole trace and per service (when there is one)
    windows_fine = {h: rebin(cube, from_s=60.0, to_s=h, by=cols[:1], clock=clock) for h in (300.0, 600.0)}
    bursts = pl.concat([
        burst_counts(store, horizons_s=(h,), windows={h: regroup(w, ())}) for h, w in windows_fine.items()
    ] + ([burst_counts(store, horizons_s=(h,), windows={h: regroup(w, cols[:1])}) for h, w in windows_fine.items()]
         if cols[:1] else []))

    # the doubling test of the whole trace per horizon, against Poisson with a rate constant within each hour
    burst_tests = {}
    for h, w in windows_fine.items():
        counts = regroup(w, ()).sort("bin")["count"].to_numpy()
        burst_tests[h] = doubling_test(counts, block=int(round(3600.0 / h)), threshold_share=0.5 * PAPER_DOUBLING[h],
                                       paper_share=PAPER_DOUBLING[h], level=DEFAULT_LEVEL, seed=seed,
                                       replicates=2 * budget.n_boot + 99, label=f"{h / 60:g}-minute windows")

    fr = fot = spread = None
    if has_failed:
        levels = [((), "trace"), *[((c,), c) for c in cols]] + ([(cols, " / ".join(cols))] if len(cols) > 1 else [])
        fr = pl.concat([rates_from_bins(regroup(hourly_fine, g)).with_columns(by=pl.lit(label)) for g, label in levels]
                       ).select("by", "group", "n", "n_failed", "rate", "ci_low", "ci_high")
        fot = over_time_from_bins(regroup(hourly_fine, cols))
        spread = failure_rate_spread(fot, min_requests=FAILURE_MIN_REQUESTS)
    else:
        reasons["failures"] = "the trace has no 'failed' column"

    forecasts: dict[tuple[str, float], ForecastResult] = {}
    targets = ["requests"] + (["mean_tokens"] if tokens else [])
    if not tokens:
        reasons["forecast mean_tokens"] = "the trace has no 'input_tokens' column"
    series = {60.0: series_from_bins(regroup(cube, ())),
              600.0: series_from_bins(rebin(cube, from_s=60.0, to_s=600.0, clock=clock))}
    for window_s in (60.0, 600.0):
        for target in targets:
            try:
                forecasts[(target, window_s)] = LoadForecaster(
                    window_s=window_s, target=target, seed=seed, max_iter=budget.forecast_max_iter).fit_series(series[window_s])
            except InsufficientDataError as err:
                reasons[f"forecast {target} {window_s:g}s"] = str(err)
    return PeriodicityEvidence(
        clock=clock.basis, span_s=span_s, group_cols=cols, hourly=hourly, daily=daily,
        hour_profile=hour_of_day_profile(hourly), week_profile=day_of_week_profile(daily),
        weekday_weekend=weekday_weekend(daily), periodicity=periodic, bursts=bursts, burst_tests=burst_tests,
        failure_rates=fr, failure_over_time=fot, failure_spread=spread, forecasts=forecasts,
        reasons=reasons, notes=tuple(notes), budget=budget,
    )


# ---------------------------------------------------------------------------------------------


def _kind(group: str) -> str | None:
    g = group.lower()
    if "conv" in g or "chat" == g:
        return "conversation"
    if "api" in g:
        return "api"
    return None


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


@FINDINGS.register
def _periodicity_finding(ev: PeriodicityEvidence) -> Finding:
    fid, figs = "burstgpt.periodicity", ("burstgpt.fig2", "burstgpt.fig3", "burstgpt.fig4", "burstgpt.fig5")
    statement = ("Conversation traffic is periodic (working-hour highs, night lows, repeating daily) while "
                 "API traffic is aperiodic and bursty.")
    t = ev.periodicity
    daily = t.filter(pl.col("period") == "daily")
    whole = daily.filter(pl.col("by") == "trace").row(0, named=True)
    if not whole["applicable"]:
        return not_applicable(fid, statement, _SRC_31, whole["reason"], figs)
    measured: dict[str, Any] = {"clock": ev.clock, "span_days": round(ev.span_s / 86400, 2)}
    for row in t.filter(pl.col("applicable")).iter_rows(named=True):
        key = row["group"] if row["by"] != "trace" else "trace"
        measured[f"{row['period']}_strength_excess[{key}]"] = _num(row["strength_excess"])
        measured[f"{row['period']}_acf[{key}]"] = _num(row["acf"])
        measured[f"{row['period']}_periodic[{key}]"] = row["periodic"]
    svc = daily.filter(pl.col("by") == "service")
    if svc.height == 0:
        return Finding(fid, statement, _SRC_31, Verdict.NOT_APPLICABLE, measured,
                       "the trace has no 'service' column, so conversation and API traffic cannot be told apart; "
                       f"the whole trace is {'periodic' if whole['periodic'] else 'not periodic'} at the daily period "
                       f"(excess strength {whole['strength_excess']:.2f}, ACF(1 day) {whole['acf']:.2f})", figs)
    kinds = {_kind(g): r for g, r in zip(svc["group"], svc.iter_rows(named=True)) if _kind(g)}
    if not {"conversation", "api"} <= set(kinds):
        return Finding(fid, statement, _SRC_31, Verdict.INCONCLUSIVE, measured,
                       f"services {svc['group'].to_list()} do not include both a conversation and an API service", figs)
    conv, api = kinds["conversation"], kinds["api"]
    holds = bool(conv["periodic"]) and not bool(api["periodic"])
    reason = (f"daily period: conversation excess strength {conv['strength_excess']:.2f}, ACF {conv['acf']:.2f} "
              f"({'periodic' if conv['periodic'] else 'not periodic'}); API excess strength "
              f"{api['strength_excess']:.2f}, ACF {api['acf']:.2f} ({'periodic' if api['periodic'] else 'not periodic'}); "
              "periodic = excess MSTL strength >= 0.5 over white noise and ACF above max(0.3, 3/sqrt(n))")
    return Finding(fid, statement, _SRC_31, Verdict.HOLDS if holds else Verdict.DOES_NOT_HOLD, measured, reason, figs)


@FINDINGS.register
def _weekday_finding(ev: PeriodicityEvidence) -> Finding:
    fid, figs = "burstgpt.weekday_weekend", ("burstgpt.fig2", "burstgpt.fig3")
    statement = "Conversation volumes peak on weekdays and diminish at weekends."
    src = "BurstGPT (KDD'25) §3.1, Fig. 2; preprint §III-B-1, Fig. 1"
    ww = ev.weekday_weekend
    if ev.clock == "relative to trace start":
        return not_applicable(fid, statement, src,
                              "the trace's origin (wall-clock start) is unknown: weekdays cannot be told", figs)
    conv = ww.filter(pl.col("group").map_elements(lambda g: _kind(g) == "conversation", return_dtype=pl.Boolean))
    target = conv if conv.height else ww.filter(pl.col("group") == "all")
    row = target.row(0, named=True)
    label = row["group"]
    measured = {f"weekday_mean[{r['group']}]": _num(r["weekday_mean"]) for r in ww.iter_rows(named=True)}
    measured |= {f"weekend_mean[{r['group']}]": _num(r["weekend_mean"]) for r in ww.iter_rows(named=True)}
    measured |= {f"ratio[{r['group']}]": _num(r["ratio"]) for r in ww.iter_rows(named=True)}
    if row["weekday_days"] == 0 or row["weekend_days"] == 0:
        return Finding(fid, statement, src, Verdict.NOT_APPLICABLE, measured,
                       f"{row['reason']} (the trace spans {human_duration(ev.span_s)}; the ratio needs complete "
                       "weekdays and weekend days)", figs)
    if row["ratio"] is None:
        return Finding(fid, statement, src, Verdict.INCONCLUSIVE, measured, row["reason"], figs)
    scope = "conversation service" if conv.height else "whole trace (no conversation service)"
    reason = (f"{scope} '{label}': {row['weekday_mean']:.4g} requests per weekday vs {row['weekend_mean']:.4g} per "
              f"weekend day (ratio {row['ratio']:.2f}; holds at >= {WEEKDAY_RATIO_HOLDS}) over "
              f"{row['weekday_days']} weekdays and {row['weekend_days']} weekend days")
    if row["weekend_days"] < 2 or row["weekday_days"] < 2:
        return Finding(fid, statement, src, Verdict.INCONCLUSIVE, measured,
                       reason + "; fewer than 2 complete days on one side", figs)
    verdict = Verdict.HOLDS if row["ratio"] >= WEEKDAY_RATIO_HOLDS else Verdict.DOES_NOT_HOLD
    return Finding(fid, statement, src, verdict, measured, reason, figs)


@FINDINGS.register
def _burst_finding(ev: PeriodicityEvidence) -> Finding:
    fid, figs = "burstgpt.bursts", ("burstgpt2024.fig5",)
    statement = ("Request volume doubles often: on average 65 times within 5 minutes and 38 times within "
                 "10 minutes per workday (ChatGPT).")
    src = "BurstGPT preprint (2024) §III-B-2, Fig. 5"
    b = ev.bursts.filter(pl.col("group") == "all")
    r5 = b.filter(pl.col("horizon_s") == 300.0).row(0, named=True)
    r10 = b.filter(pl.col("horizon_s") == 600.0).row(0, named=True)
    per_day = "workday_bursts_per_day" if r5["workday_bursts_per_day"] is not None else "bursts_per_day"
    measured: dict[str, Any] = {"rate_basis": "per workday" if per_day.startswith("workday") else "per day of trace"}
    for r in ev.bursts.iter_rows(named=True):
        key = f"{int(r['horizon_s'] // 60)}min[{r['group']}]"
        measured[f"bursts_per_day_{key}"] = _num(r[per_day] if r[per_day] is not None else r["bursts_per_day"])
        measured[f"burst_share_{key}"] = _num(r["burst_share"])
        measured[f"poisson_share_{key}"] = _num(r["poisson_burst_share"])
    measured["paper_per_workday_5min"] = 65.0
    measured["paper_per_workday_10min"] = 38.0
    if r5["n_eligible"] < MIN_BURST_WINDOWS:
        return Finding(fid, statement, src, Verdict.INCONCLUSIVE, measured,
                       f"only {r5['n_eligible']} consecutive 5-minute window pairs with requests (the trace spans "
                       f"{human_duration(ev.span_s)}); at least {MIN_BURST_WINDOWS} are needed to judge a frequency", figs)
    tests = [ev.burst_tests[h] for h in (300.0, 600.0) if h in ev.burst_tests]
    reason = (f"{r5[per_day]:.1f} doublings per {'workday' if per_day.startswith('workday') else 'day'} within 5 min "
              f"(share of windows {r5['burst_share']:.3f}; Poisson at {r5['mean_count']:.3g} requests per window "
              f"would give {r5['poisson_burst_share']:.3f}) and {r10[per_day]:.1f} within 10 min (share "
              f"{r10['burst_share']:.3f}, Poisson {r10['poisson_burst_share']:.3f}); the paper's 65 and 38 per "
              "workday are shares of 0.226 and 0.264")
    if len(tests) < 2:
        return Finding(fid, statement, src, Verdict.INCONCLUSIVE, measured, reason + "; the doubling tests did not run",
                       figs)
    verdict, text = combine(tests, parts=["5 min", "10 min"])
    measured["doubling_p_value_5min"] = tests[0].p_value
    measured["doubling_p_value_10min"] = tests[1].p_value
    reason = (f"{text} (holds when volume doubles beyond counting noise, and in at least half the paper's share of "
              "windows, at both horizons); " + "; ".join(
                  f"{name} [{t.decision.value}]: null = {t.null}; {t.reason}" for name, t in zip(("5 min", "10 min"), tests))
              + "; " + reason)
    return Finding(fid, statement, src, verdict, measured, reason, figs, tests=tuple(tests))


@FINDINGS.register
def _failure_finding(ev: PeriodicityEvidence) -> Finding:
    fid, figs = "burstgpt.failures", ("burstgpt.fig11",)
    statement = ("Failure rates are high: the conversation service fails more than 5% of requests (ChatGPT), "
                 "far above regular cloud services; GPT-4 is more reliable than ChatGPT.")
    src = "BurstGPT (KDD'25) §3.4, Fig. 11; preprint §III-E, Fig. 14"
    if ev.failure_rates is None:
        return not_applicable(fid, statement, src, ev.reasons.get("failures", "no failure information"), figs)
    fr = ev.failure_rates
    measured: dict[str, Any] = {f"rate[{r['group']}]": _num(r["rate"]) for r in fr.iter_rows(named=True)}
    if ev.failure_spread is not None:
        measured |= {f"hourly_rate_std[{r['group']}]": _num(r["std"]) for r in ev.failure_spread.iter_rows(named=True)}
    svc = fr.filter(pl.col("by") == "service")
    conv = svc.filter(pl.col("group").map_elements(lambda g: _kind(g) == "conversation", return_dtype=pl.Boolean))
    row = conv.row(0, named=True) if conv.height else fr.filter(pl.col("by") == "trace").row(0, named=True)
    scope = f"conversation service '{row['group']}'" if conv.height else "whole trace (no conversation service)"
    if not row["n"]:
        return Finding(fid, statement, src, Verdict.INCONCLUSIVE, measured, f"{scope} has no requests", figs)
    reason = (f"{scope}: {row['n_failed']} of {row['n']} requests failed, rate {row['rate']:.4f} "
              f"(Wilson 95% {row['ci_low']:.4f}-{row['ci_high']:.4f}); holds when the rate exceeds "
              f"{FAILURE_RATE_HOLDS:.0%} beyond its interval")
    models = fr.filter(pl.col("by") == "model")
    if models.height > 1:
        reason += "; per model: " + ", ".join(f"{g} {r:.4f}" for g, r in zip(models["group"], models["rate"]))
    if row["ci_low"] > FAILURE_RATE_HOLDS:
        verdict = Verdict.HOLDS
    elif row["ci_high"] < FAILURE_RATE_HOLDS:
        verdict = Verdict.DOES_NOT_HOLD
    else:
        verdict = Verdict.INCONCLUSIVE
    return Finding(fid, statement, src, verdict, measured, reason, figs)


@FINDINGS.register
def _forecast_finding(ev: PeriodicityEvidence) -> Finding:
    fid, figs = "burstgpt.forecasting", ("burstgpt.fig17", "burstgpt.fig18")
    statement = ("Load is forecastable from lags, rolling statistics and calendar features (1-minute request "
                 "counts: NMAE 0.73, NMSE 0.48), and 10-minute bins are easier than 1-minute bins (58% lower NMSE).")
    src = "BurstGPT (KDD'25) §5.4, Fig. 17-18"
    measured: dict[str, Any] = {}
    for (target, window_s), r in ev.forecasts.items():
        key = f"{target}_{int(window_s // 60)}min"
        measured[f"nmae_{key}"] = _num(r.nmae)
        measured[f"nmse_{key}"] = _num(r.nmse)
        best = r.best_baseline
        if best:
            measured[f"best_naive_nmse_{key}"] = _num(best[1])
    one, ten = ev.forecasts.get(("requests", 60.0)), ev.forecasts.get(("requests", 600.0))
    if one is None:
        return not_applicable(fid, statement, src, ev.reasons.get("forecast requests 60s", "no 1-minute forecast"), figs)
    if ten is None:
        return Finding(fid, statement, src, Verdict.NOT_APPLICABLE, measured,
                       "10-minute forecast not possible: " + ev.reasons.get("forecast requests 600s", "")
                       + f"; at 1 minute NMAE {one.nmae:.2f}, NMSE {one.nmse:.2f}", figs)
    if not (math.isfinite(one.nmse) and math.isfinite(ten.nmse)):
        return Finding(fid, statement, src, Verdict.INCONCLUSIVE, measured, "an NMSE is undefined (constant test tail)",
                       figs)
    drop = 1 - ten.nmse / one.nmse
    measured["nmse_drop_10_vs_1min"] = drop
    beats = [r.beats_baselines for r in (one, ten)]
    reason = (f"requests: 1 min NMAE {one.nmae:.2f}, NMSE {one.nmse:.2f}; 10 min NMAE {ten.nmae:.2f}, NMSE "
              f"{ten.nmse:.2f} ({drop:.0%} lower; paper 58%); the model "
              + ("beats" if all(beats) else "does not beat")
              + " the naive forecasts (last value / seasonal naive) at both bin sizes")
    if not all(beats):
        return Finding(fid, statement, src, Verdict.DOES_NOT_HOLD, measured,
                       reason + ": the load is not forecastable beyond its last value here", figs)
    verdict = Verdict.HOLDS if ten.nmse < one.nmse else Verdict.DOES_NOT_HOLD
    return Finding(fid, statement, src, verdict, measured, reason, figs)


def periodicity_findings(evidence: PeriodicityEvidence) -> list[Finding]:
    """The BurstGPT findings of this area, from :func:`measure_periodicity`'s evidence."""
    return FINDINGS(evidence)

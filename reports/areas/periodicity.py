"""The periodicity area: BurstGPT's long-term periodicity, short-term bursts, failures and load
forecasting (BurstGPT KDD'25 §3.1, §3.4, §5.4; 2024 preprint §III-B).

:meth:`PeriodicityArea.measure` runs
:func:`servelab.reports.findings.periodicity.measure_periodicity` once; the other methods turn the
evidence into findings, small tables and figures. It never raises for a trace lacking columns or
span: what cannot be measured is a not-applicable finding with its reason, and no figure. Groups
are always the whole trace, each service and each model (per-client periodicity is not a BurstGPT
analysis).
"""
from __future__ import annotations

import math
from typing import Any

import polars as pl

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding
from servelab.analysis.store import TraceStore
from servelab.reports.areas.base import with_registered_figures
from servelab.reports.findings.periodicity import (
    PeriodicityEvidence,
    measure_periodicity,
    periodicity_findings,
)

__all__ = ["PERIODICITY", "PeriodicityArea"]

_DAY_S = 86400.0


@with_registered_figures
class PeriodicityArea:
    """Periodicity, bursts, failures and load forecasting (see the module docstring)."""

    id = "periodicity"
    title = "Periodicity, bursts, failures and load forecasting (BurstGPT)"

    def measure(self, source: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0) -> PeriodicityEvidence:
        """Per-bin counts, profiles, periodicity tests, bursts, failure rates and forecasts.

        The area reads per-bin counts only; the budget sets the forecasts' boosting iterations
        (100 in both full and quick mode: 50 changed the forecasting verdict of a 10 M-row
        synthetic trace). ``seed`` seeds the forecasting regressor.
        """
        return measure_periodicity(source, budget=budget, seed=seed)

    def findings(self, evidence: PeriodicityEvidence) -> tuple[Finding, ...]:
        """``burstgpt.periodicity``, ``burstgpt.weekday_weekend``, ``burstgpt.bursts``,
        ``burstgpt.failures``, ``burstgpt.forecasting``."""
        return tuple(periodicity_findings(evidence))

    def tables(self, evidence: PeriodicityEvidence) -> dict[str, pl.DataFrame]:
        """Periodicity tests, hour-of-day and day-of-week profiles, weekday/weekend, bursts,
        failure rates and their spread, forecasts (where they exist)."""
        ev = evidence
        tables = {
            "periodicity": ev.periodicity,
            "hour_of_day": ev.hour_profile,
            "day_of_week": ev.week_profile,
            "weekday_weekend": ev.weekday_weekend,
        }
        if ev.bursts is not None:
            tables["bursts"] = ev.bursts
        if ev.failure_rates is not None:
            tables["failure_rates"] = ev.failure_rates
            tables["failure_rate_spread"] = ev.failure_spread
        forecasts = ev.forecast_table()
        if forecasts.height:
            tables["forecasts"] = forecasts
        return tables

    def detail_tables(self, evidence: PeriodicityEvidence) -> dict[str, pl.DataFrame]:
        """The same tables as the report shows."""
        return self.tables(evidence)

    def headline(self, evidence: PeriodicityEvidence) -> dict[str, Any]:
        """Daily periodicity of the trace and each service, bursts per day, 1-min forecast NMSE."""
        ev = evidence
        headline: dict[str, object] = {}
        daily = ev.periodicity.filter((pl.col("period") == "daily") & pl.col("applicable"))
        for row in daily.iter_rows(named=True):
            if row["by"] in ("trace", "service"):
                headline[f"daily periodic [{row['group']}]"] = bool(row["periodic"])
        if ev.bursts is not None:
            b = ev.bursts.filter((pl.col("group") == "all") & (pl.col("horizon_s") == 300.0))
            if b.height and b["bursts_per_day"][0] is not None:
                headline["doublings per day within 5 min"] = round(float(b["bursts_per_day"][0]), 2)
        one = ev.forecasts.get(("requests", 60.0))
        if one is not None and math.isfinite(one.nmse):
            headline["1-min request forecast NMSE"] = round(one.nmse, 3)
            last = one.baselines.get("last value", {}).get("nmse")
            if last is not None and math.isfinite(last):
                beats = one.nmse < last
                headline["1-min forecast vs last-value baseline"] = (
                    f"{'beats' if beats else 'does not beat'} it (NMSE {one.nmse:.3g} vs {last:.3g})")
        return headline

    def notes(self, evidence: PeriodicityEvidence) -> tuple[str, ...]:
        """The clock, what could not run and why, the weekly figures' need, the budget."""
        ev = evidence
        notes = list(ev.notes) + [f"{k}: {v}" for k, v in ev.reasons.items()]
        if ev.span_s < 2 * _DAY_S:
            notes.append("weekly figures (BurstGPT Fig. 2-3) need at least two days of trace")
        b = ev.budget
        if not b.is_full:
            forecasts = ("its forecasts are as in full mode" if b.forecast_max_iter == Budget.full().forecast_max_iter
                         else f"its forecasts use {b.forecast_max_iter} boosting iterations")
            notes.append(f"{b.label} mode: this section is not subsampled (it reads per-bin request counts; {forecasts})")
        return tuple(notes)


#: the periodicity area
PERIODICITY = PeriodicityArea()

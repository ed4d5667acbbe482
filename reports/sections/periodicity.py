"""The report section on BurstGPT's long-term periodicity, short-term bursts, failures and load
forecasting (BurstGPT KDD'25 §3.1, §3.4, §5.4; 2024 preprint §III-B).

It measures once (:func:`servelab.reports.findings.periodicity.measure_periodicity`), turns the
evidence into findings, small tables and figures, and never raises for a trace lacking columns or
span: what cannot be measured is a not-applicable finding with its reason, and no figure.
"""
from __future__ import annotations

import math

import polars as pl
from servelab.analysis.store import TraceStore
from servelab.reports.findings.periodicity import (
    measure_periodicity,
    periodicity_findings,
)
from servelab.reports.section import Section

__all__ = ["build_section", "evidence_tables", "periodicity_step"]


def evidence_tables(ev) -> dict[str, pl.DataFrame]:
    """The section's small tables from a :class:`PeriodicityEvidence` (also used by the CLI)."""
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


def build_section(store: TraceStore, *, quick: bool = False, seed: int = 0) -> Section:
    """Periodicity, bursts, failures and forecasting of ``store``.

    Parameters
    ----------
    store : TraceStore
    quick : bool
        Ignored: the section reads per-bin counts only and its forecasts take about a second on
        a 10 M-row trace, so quick mode runs it as full mode does (its lighter forecasts, 50
        boosting iterations instead of 100, changed the forecasting verdict of the 10 M-row
        synthetic trace); the notes say so.
    seed : int
        Seed of the forecasting regressor.

    Returns
    -------
    Section
        Findings ``burstgpt.periodicity``, ``burstgpt.weekday_weekend``, ``burstgpt.bursts``,
        ``burstgpt.failures``, ``burstgpt.forecasting``; tables (see :func:`evidence_tables`);
        figures ``burstgpt.fig2``-``fig5``, ``burstgpt2024.fig5``, ``burstgpt.fig11``,
        ``burstgpt.fig17``-``fig18`` where their data exist.
    """
    from servelab.figures import periodicity as figs

    ev = measure_periodicity(store, quick=False, seed=seed)
    findings = periodicity_findings(ev)
    figures = {}
    multi_day = ev.span_s >= 2 * 86400
    if multi_day:
        figures["burstgpt.fig2"] = figs.weekly_conversation(ev.daily)
        figures["burstgpt.fig3"] = figs.weekly_api(ev.daily)
    if ev.span_s >= 86400:
        figures["burstgpt.fig4"] = figs.daily_conversation(ev.hour_profile)
        figures["burstgpt.fig5"] = figs.daily_api(ev.hour_profile)
    if ev.bursts is not None:
        figures["burstgpt2024.fig5"] = figs.burst_frequency(ev.bursts)
    if ev.failure_over_time is not None and ev.failure_over_time.height:
        figures["burstgpt.fig11"] = figs.failure_rates_figure(ev.failure_over_time)
    one = ev.forecasts.get(("requests", 60.0))
    if one is not None:
        figures["burstgpt.fig17"] = figs.forecast_figure(one, ev.forecasts.get(("mean_tokens", 60.0)))
        ten = ev.forecasts.get(("requests", 600.0))
        if ten is not None:
            figures["burstgpt.fig18"] = figs.forecast_bins_figure(one, ten)

    headline: dict[str, object] = {}
    daily = ev.periodicity.filter((pl.col("period") == "daily") & pl.col("applicable"))
    for row in daily.iter_rows(named=True):
        if row["by"] in ("trace", "service"):
            headline[f"daily periodic [{row['group']}]"] = bool(row["periodic"])
    if ev.bursts is not None:
        b = ev.bursts.filter((pl.col("group") == "all") & (pl.col("horizon_s") == 300.0))
        if b.height and b["bursts_per_day"][0] is not None:
            headline["doublings per day within 5 min"] = round(float(b["bursts_per_day"][0]), 2)
    if one is not None and math.isfinite(one.nmse):
        headline["1-min request forecast NMSE"] = round(one.nmse, 3)
    notes = list(ev.notes) + [f"{k}: {v}" for k, v in ev.reasons.items()]
    if not multi_day:
        notes.append("weekly figures (BurstGPT Fig. 2-3) need at least two days of trace")
    if quick:
        notes.append("quick mode: this section is not subsampled (it reads per-bin request counts; its forecasts are "
                     "as in full mode)")
    return Section(
        id="periodicity",
        title="Periodicity, bursts, failures and load forecasting (BurstGPT)",
        findings=tuple(findings),
        tables=evidence_tables(ev),
        figures=figures,
        headline=headline,
        notes=tuple(notes),
    )


def periodicity_step(store: TraceStore, options) -> object:
    """A ``servelab arrivals`` step (see :mod:`servelab.commands.arrivals`): the tables and findings
    of this section, without figures. Groups are always the whole trace, each service and each
    model (``options.by`` is not used: per-client periodicity is not a BurstGPT analysis)."""
    from servelab.commands.arrivals import StepResult

    ev = measure_periodicity(store, quick=options.quick, seed=options.seed)
    return StepResult(tables=evidence_tables(ev), findings=tuple(periodicity_findings(ev)),
                      notes=ev.notes + tuple(f"{k}: {v}" for k, v in ev.reasons.items()))

"""The report's arrivals section: burstiness, family fits and shifting rate / CV.

Runs :func:`servelab.reports.findings.arrivals.collect_arrival_evidence` once (grouped by client
when the trace has clients, else by service when it has services), builds the ServeGen F1 / F2 and
BurstGPT Gamma-shift findings, and draws ServeGen Fig. 1, Fig. 2 and BurstGPT Fig. 6. Only small
tables go into the section (no per-window-per-client table). It never raises for a trace that lacks
columns: the findings say what does not apply.
"""
from __future__ import annotations

import polars as pl

from servelab.analysis.store import TraceStore
from servelab.figures.arrivals import burstgpt_fig6, servegen_fig1, servegen_fig2
from servelab.reports.findings.arrivals import MIN_WINDOW_GAPS, arrival_findings, collect_arrival_evidence
from servelab.reports.section import Section

__all__ = ["build_section"]

_SMALL_TABLES = ("gap_summary", "family_comparison", "window_families", "shifts", "group_families")


def build_section(store: TraceStore, *, quick: bool = False, seed: int = 0) -> Section:
    """The arrivals section of ``store``.

    Parameters
    ----------
    store : TraceStore
    quick : bool
        Fit on at most 10^5 gaps (and 2,000 per window / group) instead of 10^6 (and 5,000).
    seed : int
        Seed of subsamples, tie jitter and bootstrap.
    """
    by = "client_id" if store.has("client_id") else ("service" if store.has("service") else None)
    ev = collect_arrival_evidence(store, by=by, window="5m", gamma_window="20m", seed=seed, quick=quick,
                                  gof="auto", n_boot=99 if quick else 200)
    findings = arrival_findings(ev)
    figures = {}
    notes = list(ev.notes)
    if "family_comparison" in ev.tables and "gap_histogram" in ev.tables:
        figures["servegen.fig1"] = servegen_fig1(ev.tables["gap_histogram"], ev.tables.get("family_densities"),
                                                 ev.tables["family_comparison"])
    group_windows = ev.tables.get("group_windows")
    if group_windows is not None and group_windows.height:
        figures["servegen.fig2"] = servegen_fig2(group_windows, group=ev.by)
    else:
        figures["servegen.fig2"] = servegen_fig2(ev.tables["windows"])
    gamma = ev.tables.get("gamma_windows")
    if gamma is not None and gamma.filter(pl.col("alpha").is_not_null() & (pl.col("gamma_n") >= MIN_WINDOW_GAPS)).height:
        figures["burstgpt.fig6"] = burstgpt_fig6(gamma, group=ev.gamma_by, window_s=ev.gamma_window_s,
                                                 min_gaps=MIN_WINDOW_GAPS)
    elif gamma is not None:
        notes.append(f"burstgpt.fig6 not drawn: no {ev.gamma_window_s / 60:g}-minute window holds {MIN_WINDOW_GAPS} "
                     "gaps with a converged Gamma fit")
    tables = {name: ev.tables[name] for name in _SMALL_TABLES if name in ev.tables}
    summary = ev.tables["gap_summary"]
    headline = {
        "gap CV": summary["cv"][0] if summary.height else None,
        "best arrival family": ev.comparison.best if ev.comparison else None,
        "arrival family clearly best": (ev.comparison.clearly_best or "none") if ev.comparison else None,
    }
    shifts = ev.tables.get("shifts")
    if shifts is not None and shifts.height:
        headline["rate max/min (5-min windows)"] = shifts["rate_max_over_min"][0]
        headline["CV max/min (5-min windows)"] = shifts["cv_max_over_min"][0]
    if quick:
        notes.append("quick mode: arrival families fitted on a seeded subsample of at most 10^5 gaps of the whole trace "
                     "(full: 10^6) and 2,000 per window or group (full: 5,000), bootstrap p-values from 99 replicates "
                     "(full: 200); rates, CVs and window statistics use every request")
    return Section(id="arrivals", title="Arrivals: burstiness, families and shifting rate", findings=findings,
                   tables=tables, figures=figures, headline=headline, notes=notes)

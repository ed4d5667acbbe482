"""The arrivals area: burstiness, family fits and shifting rate / CV (ServeGen F1, F2, Fig. 1-2;
BurstGPT's Gamma shift, Fig. 6).

:meth:`ArrivalsArea.measure` runs :func:`servelab.reports.findings.arrivals.measure_arrivals`
once (grouped by client when the trace has clients, else by service when it has services, unless
``by`` says otherwise); the other methods arrange that evidence. The report shows only small
tables (no per-window-per-client table); ``servelab arrivals`` prints and writes them all. It never
raises for a trace that lacks columns: the findings say what does not apply.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import polars as pl

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding
from servelab.analysis.store import TraceStore
from servelab.reports.areas.base import count_text, with_registered_figures
from servelab.reports.findings.arrivals import (
    MIN_WINDOW_GAPS,
    ArrivalEvidence,
    arrival_findings,
    best_family_headline,
    measure_arrivals,
)

__all__ = ["ARRIVALS", "ArrivalsArea"]

_SMALL_TABLES = ("gap_summary", "family_comparison", "window_families", "shifts", "group_families")


@with_registered_figures
class ArrivalsArea:
    """Arrival burstiness, families and shifting rate (see the module docstring)."""

    id = "arrivals"
    #: the report shares the arrival frames of this area with the others that read them
    shares_arrival_frames = True
    title = "Arrivals: burstiness, families and shifting rate"

    def measure(self, source: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0, by: str | None = "auto",
                window: str | float = "5m", gamma_window: str | float = "20m",
                gof: str | None = "auto", clock="auto") -> ArrivalEvidence:
        """Gap summary, windowed rate / CV, family comparisons, Gamma per window.

        Parameters
        ----------
        source : TraceStore
        budget : Budget
            Whole-trace fits on at most ``max_fit_n`` gaps, ``max_group_fit_n`` per window or
            group, ``n_boot`` bootstrap replicates.
        seed : int
            Seed of subsamples, tie jitter and bootstrap.
        by : {"auto", None, "model", "service", "client", "client_id"}
            Grouping of the per-group tables; ``"auto"``: ``client_id`` when the trace has it,
            else ``service`` when it has it, else none.
        window, gamma_window : str or float
            Window of the rate / CV table (5 min) and of the Gamma and per-window family tables
            (20 min).
        gof : {None, "auto", "bootstrap", "subsample"}
            Honest p-values for the whole-trace fits.
        clock : {"auto", None, "none"} or float
            Logging clock the gap analyses censor gaps at: ``"auto"`` the store's recorded clock,
            None or ``"none"`` exact timestamps, a number a step in seconds (overrides the store's).
        """
        if by == "auto":
            by = "client_id" if source.has("client_id") else ("service" if source.has("service") else None)
        from servelab.reports.sampling import budget_span

        # above budget.max_requests requests (quick: 10^6) the first whole hours holding about that many
        with budget_span(source, budget.max_requests, label=budget.label) as (store, note):
            evidence = measure_arrivals(store, by=by, window=window, gamma_window=gamma_window, seed=seed,
                                        budget=budget, gof=gof, clock=clock)
        return evidence if note is None else replace(evidence, notes=(note, *evidence.notes))

    def findings(self, evidence: ArrivalEvidence) -> tuple[Finding, ...]:
        """ServeGen F1, F2 and BurstGPT's Gamma shift."""
        return tuple(arrival_findings(evidence))

    def tables(self, evidence: ArrivalEvidence) -> dict[str, pl.DataFrame]:
        """Gap summary, family comparisons (whole trace, per window, per group) and shifts."""
        return {name: evidence.tables[name] for name in _SMALL_TABLES if name in evidence.tables}

    def detail_tables(self, evidence: ArrivalEvidence) -> dict[str, pl.DataFrame]:
        """Every table of the evidence (per-window and per-group ones included)."""
        return dict(evidence.tables)

    def headline(self, evidence: ArrivalEvidence) -> dict[str, Any]:
        """Gap CV, best family, whether it is clearly best, rate and CV max/min over windows."""
        summary = evidence.tables["gap_summary"]
        comparison = evidence.comparison
        headline = {
            "gap CV": summary["cv"][0] if summary.height else None,
            "best arrival family": best_family_headline(evidence),
            "arrival family clearly best": (comparison.clearly_best or "none") if comparison else None,
        }
        shifts = evidence.tables.get("shifts")
        if shifts is not None and shifts.height:
            headline["rate max/min (5-min windows)"] = shifts["rate_max_over_min"][0]
            headline["CV max/min (5-min windows)"] = shifts["cv_max_over_min"][0]
        return headline

    def notes(self, evidence: ArrivalEvidence) -> tuple[str, ...]:
        """The measurement's notes, why Fig. 6 was not drawn, and the budget when not full."""
        from servelab.figures.arrivals import gamma_drawable

        notes = list(evidence.notes)
        if evidence.tables.get("gamma_windows") is not None and not gamma_drawable(evidence):
            notes.append(f"burstgpt.fig6 not drawn: no {evidence.gamma_window_s / 60:g}-minute window holds "
                         f"{MIN_WINDOW_GAPS} gaps with a converged Gamma fit")
        b, full = evidence.budget, Budget.full()
        if not b.is_full:
            notes.append(f"{b.label} mode: arrival families fitted on a seeded subsample of at most "
                         f"{count_text(b.max_fit_n)} gaps of the whole trace (full: {count_text(full.max_fit_n)}) and "
                         f"{count_text(b.max_group_fit_n)} per window or group (full: {count_text(full.max_group_fit_n)}), "
                         f"bootstrap p-values from {b.n_boot} replicates (full: {full.n_boot}), shape-shift null distributions "
                         f"from {b.n_sim} (full: {full.n_sim}); rates, CVs and window "
                         "statistics use every request measured")
        return tuple(notes)


#: the arrivals area
ARRIVALS = ArrivalsArea()

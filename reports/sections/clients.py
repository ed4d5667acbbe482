"""The report's client section: ServeGen Findings 5, 8 and 11 with Fig. 6 / 12 / 17.

It runs :func:`servelab.reports.findings.clients.collect_client_evidence` once and arranges
its small tables, findings and figures. A trace without client ids gives a section of
not-applicable findings that say why; it never raises for missing columns.
"""
from __future__ import annotations

import polars as pl
from servelab.analysis.store import TraceStore
from servelab.figures.clients import servegen_fig6, servegen_fig12, servegen_fig17
from servelab.reports.findings.clients import (
    ClientEvidence,
    client_findings,
    collect_client_evidence,
)
from servelab.reports.section import Section

__all__ = ["build_section", "client_tables"]

TITLE = "Clients: who sends the traffic, and how stable each client is"


def client_tables(ev: ClientEvidence, *, top: int = 20) -> dict[str, pl.DataFrame]:
    """The section's small tables (top clients, stability, attribution) from the evidence."""
    d = ev.decomposition
    if d is None:
        return {}
    keep = [c for c in ("client_id", "requests", "request_share", "cum_request_share", "tokens", "token_share")
            if c in d.ranking.columns]
    summary_cols = [c for c in ("client_id", "rate", "cv", "cv_windows", "active_windows", "mean_input",
                                "mean_output", "mean_reason_ratio", "mean_mm_ratio") if c in d.summary.columns]
    tables = {
        "top_clients": d.ranking.head(top).select(keep).join(d.summary.select(summary_cols), on="client_id", how="left"),
        "stability": ev.stability if ev.stability is not None else pl.DataFrame(),
        "attribution": d.attribution,
    }
    if ev.reason_bimodality is not None:
        tables["reason_bimodality"] = ev.reason_bimodality
    return tables


def build_section(store: TraceStore, *, quick: bool = False, seed: int = 0) -> Section:
    """Client decomposition section (``quick`` tests at most 5,000 reason ratios per top client)."""
    # the per-window p50 / p95 lengths are not shown anywhere in the report: not computed
    ev = collect_client_evidence(store, seed=seed, max_reason_n=5_000 if quick else 20_000, length_quantiles=False)
    findings = client_findings(store, evidence=ev)
    notes = list(ev.notes)
    if quick and store.has("client_id", "reason_tokens", "output_tokens"):
        notes.append("quick mode: reasoning-ratio bimodality per top client tested on a seeded sample of at most 5,000 "
                     "ratios each (full: 20,000); the client decomposition itself uses every request")
    if ev.decomposition is None:
        notes.append(f"client decomposition skipped: {ev.reason}")
        return Section(id="clients", title=TITLE, findings=findings, notes=tuple(notes))
    d = ev.decomposition
    figures = {"servegen.fig6": servegen_fig6(d.summary, d.window_stats, clients=ev.top_ids)}
    if "mean_mm_ratio" in d.summary.columns:
        figures["servegen.fig12"] = servegen_fig12(d.summary, d.window_stats, clients=ev.top_ids)
    if ev.reason_bimodality is not None:
        figures["servegen.fig17"] = servegen_fig17(d.summary, d.ranking, reason_histograms=ev.reason_histograms)
    headline = {"clients": d.n_clients, "top clients carrying 50% of requests": d.top50,
                "top clients carrying 90% of requests": d.top90}
    notes.append(f"windows of {d.window_s:g} s; a window's CV and lengths count for stability only with at least "
                 "10 requests; rows without a client id left out: " + str(d.null_client_rows))
    return Section(id="clients", title=TITLE, findings=findings, tables=client_tables(ev), figures=figures,
                   headline=headline, notes=tuple(notes))

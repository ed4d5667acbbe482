"""The clients area: ServeGen Findings 5, 8 and 11 with Fig. 6 / 12 / 17.

:meth:`ClientsArea.measure` runs :func:`servelab.reports.findings.clients.measure_clients` once;
the other methods arrange its small tables, findings and figures. A trace without client ids gives
not-applicable findings that say why; nothing here raises for missing columns.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import polars as pl

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding
from servelab.analysis.store import TraceStore
from servelab.reports.findings.clients import ClientEvidence, client_findings, measure_clients
from servelab.reports.areas.base import with_registered_figures

__all__ = ["CLIENTS", "ClientsArea", "client_tables"]


def client_tables(ev: ClientEvidence, *, top: int = 20) -> dict[str, pl.DataFrame]:
    """The report's small tables (top clients, stability, attribution) from the evidence."""
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


@with_registered_figures
class ClientsArea:
    """Client decomposition: shares, per-client windows, stability, attribution (see the module
    docstring)."""

    id = "clients"
    #: the report shares the arrival frames of this area with the others that read them
    shares_arrival_frames = True
    title = "Clients: who sends the traffic, and how stable each client is"

    def measure(self, source: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0, window_s: float = 600.0,
                min_requests: int = 10, length_quantiles: bool = False) -> ClientEvidence:
        """The client decomposition and the top clients' reason-ratio bimodality.

        Parameters
        ----------
        source : TraceStore
        budget : Budget
            At most ``max_reason_n`` reason ratios per top client (20,000 full, 5,000 quick).
        seed : int
            Seed of the reason-ratio subsamples.
        window_s : float
            Window of the per-client statistics.
        min_requests : int
            A window's CV and lengths count for stability only with this many requests.
        length_quantiles : bool
            Also compute per-window p50 / p95 lengths (``servelab clients`` writes them; the
            report shows none).
        """
        from servelab.reports.sampling import budget_span

        # above budget.max_requests requests (quick: 10^6) the first whole hours holding about that many
        with budget_span(source, budget.max_requests, label=budget.label) as (store, note):
            evidence = measure_clients(store, window_s=window_s, min_requests=min_requests, seed=seed, budget=budget,
                                       length_quantiles=length_quantiles)
        return evidence if note is None else replace(evidence, notes=(note, *evidence.notes))

    def findings(self, evidence: ClientEvidence) -> tuple[Finding, ...]:
        """ServeGen F5, F8, F11."""
        return tuple(client_findings(evidence))

    def tables(self, evidence: ClientEvidence) -> dict[str, pl.DataFrame]:
        """See :func:`client_tables`."""
        return client_tables(evidence)

    def detail_tables(self, evidence: ClientEvidence) -> dict[str, pl.DataFrame]:
        """Ranking, per-client summary, per-client and aggregate windows, stability (per client and
        overview), attribution, reason-ratio bimodality."""
        d = evidence.decomposition
        if d is None:
            return {}
        tables = {"ranking": d.ranking, "client_summary": d.summary, "client_windows": d.window_stats,
                  "aggregate_windows": d.aggregate, "stability": d.stability,
                  "stability_overview": evidence.stability, "attribution": d.attribution}
        if evidence.reason_bimodality is not None:
            tables["reason_bimodality"] = evidence.reason_bimodality
        return tables

    def headline(self, evidence: ClientEvidence) -> dict[str, Any]:
        """Number of clients and how many carry 50 % and 90 % of the requests."""
        d = evidence.decomposition
        if d is None:
            return {}
        return {"clients": d.n_clients, "top clients carrying 50% of requests": d.top50,
                "top clients carrying 90% of requests": d.top90}

    def notes(self, evidence: ClientEvidence) -> tuple[str, ...]:
        """The measurement's notes, the budget, why the decomposition was skipped or its windows."""
        notes = list(evidence.notes)
        b, full = evidence.budget, Budget.full()
        if not b.is_full and evidence.reasoning_tested:
            notes.append(f"{b.label} mode: reasoning-ratio bimodality per top client tested on a seeded sample of at "
                         f"most {b.max_reason_n:,} ratios each (full: {full.max_reason_n:,}); the client "
                         "decomposition itself uses every request measured")
        d = evidence.decomposition
        if d is None:
            notes.append(f"client decomposition skipped: {evidence.reason}")
        else:
            notes.append(f"windows of {d.window_s:g} s; a window's CV and lengths count for stability only with at "
                         f"least {evidence.min_requests} requests; rows without a client id left out: {d.null_client_rows}")
        return tuple(notes)


#: the clients area
CLIENTS = ClientsArea()

"""``servelab clients STORE [--window 10m] [--min-requests N] [-o OUTDIR] [--figures]``.

Client decomposition of a store: ranking and share curve, per-client-per-window statistics,
per-client summary, stability and mix attribution, and ServeGen Findings 5, 8 and 11. Prints the
tables (first rows) and findings; with ``-o`` writes every table as Parquet and CSV plus
``findings.json`` (and, with ``--figures``, the figures as PNG). A trace without client ids
prints not-applicable findings with the reason. This module only parses options, calls the
library and prints.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import click
import polars as pl

from servelab.analysis.findings import Finding
from servelab.commands.output import print_findings, print_table, write_findings, write_table

__all__ = ["clients", "emit"]


def emit(tables: Mapping[str, pl.DataFrame], findings: Iterable[Finding], notes: Iterable[str], *,
         outdir: str | None, rows: int, figures: Mapping | None = None) -> None:
    """Print tables, notes and findings; write them (and figures) into ``outdir`` when given."""
    target = Path(outdir) if outdir else None
    written: list[Path] = []
    if target:
        target.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        print_table(name, table, rows)
        if target:
            written += write_table(target, name, table)
    for note in notes:
        click.echo(f"note: {note}")
    findings = list(findings)
    print_findings(findings)
    if target:
        written += write_findings(target, findings)
        if figures:
            from servelab.figures.style import save_figure

            for fig_id, fig in figures.items():
                written += save_figure(fig, target / fig_id.replace(".", "_"))
        click.echo(f"\nwrote {len(written)} files to {target}")


@click.command("clients")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("--window", default="10m", show_default=True, help="Window: seconds or 30s, 5m, 10m, 1h.")
@click.option("--min-requests", type=int, default=10, show_default=True,
              help="A window's CV and lengths count for a client's stability and typical CV only with this many requests.")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default=None,
              help="Write every table as Parquet and CSV, and findings.json, into this folder.")
@click.option("--figures", "with_figures", is_flag=True, help="With -o, also write ServeGen Fig. 6 / 12 / 17 as PNG.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the reason-ratio subsamples.")
@click.option("--rows", type=int, default=10, show_default=True, help="Rows printed per table.")
def clients(store_path: str, window: str, min_requests: int, outdir: str | None, with_figures: bool, seed: int,
            rows: int) -> None:
    """Client decomposition of STORE: shares, per-client windows, stability, attribution, findings."""
    from servelab.analysis.arrivals import parse_window
    from servelab.analysis.clients import top_clients_for_share
    from servelab.analysis.store import open_store
    from servelab.reports.findings.clients import (
        client_findings,
        collect_client_evidence,
    )

    try:
        window_s = parse_window(window)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--window") from None
    if min_requests < 1:
        raise click.BadParameter(f"must be >= 1; got {min_requests}", param_hint="--min-requests")
    store = open_store(store_path)
    ev = collect_client_evidence(store, window_s=window_s, min_requests=min_requests, seed=seed)
    findings = client_findings(store, evidence=ev)
    tables: dict[str, pl.DataFrame] = {}
    notes = list(ev.notes)
    figures = {}
    d = ev.decomposition
    if d is None:
        notes.append(f"client decomposition not applicable: {ev.reason}")
    else:
        click.echo(f"{d.n_clients} clients; {d.top50} carry 50% and {d.top90} carry 90% of requests"
                   + (f"; {top_clients_for_share(d.ranking, 0.9, by='tokens')} carry 90% of tokens"
                      if "cum_token_share" in d.ranking.columns else ""))
        tables = {"ranking": d.ranking, "client_summary": d.summary, "client_windows": d.window_stats,
                  "aggregate_windows": d.aggregate, "stability": d.stability, "stability_overview": ev.stability,
                  "attribution": d.attribution}
        if ev.reason_bimodality is not None:
            tables["reason_bimodality"] = ev.reason_bimodality
        if with_figures and outdir:
            from servelab.figures.clients import (
                servegen_fig6,
                servegen_fig12,
                servegen_fig17,
            )

            figures["servegen.fig6"] = servegen_fig6(d.summary, d.window_stats, clients=ev.top_ids)
            if "mean_mm_ratio" in d.summary.columns:
                figures["servegen.fig12"] = servegen_fig12(d.summary, d.window_stats, clients=ev.top_ids)
            if ev.reason_bimodality is not None:
                figures["servegen.fig17"] = servegen_fig17(d.summary, d.ranking, reason_histograms=ev.reason_histograms)
    emit(tables, findings, notes, outdir=outdir, rows=rows, figures=figures)

"""``servelab lengths STORE [--by model|service|client|period] [-o OUTDIR]``.

Runs the request-data analyses on one store (lengths and their fits, input/output relation,
shifts over the day; reasoning and multimodal analyses where the columns exist), prints each
table (its first rows) and every finding, and writes the tables as Parquet and CSV and the
findings as JSON into OUTDIR. ``--explore`` additionally scans many scipy families with
``fitter`` (slow; exploration only). This module only parses options, calls the library and prints.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from servelab.commands.output import print_findings, print_table, write_findings, write_table

__all__ = ["lengths"]


@click.command("lengths")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("--by", type=click.Choice(["model", "service", "client", "period"]), default=None,
              help="Also compute quantiles and correlations per group (period: ServeGen's Midnight/Morning/Afternoon).")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default=None,
              help="Write every table as Parquet and CSV (and findings.json) into this folder.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every subsample.")
@click.option("--quick", is_flag=True, help="Fit lengths on 10^5 values instead of 10^6.")
@click.option("--explore", is_flag=True, help="Also scan scipy's common families with fitter (slow, exploration only).")
@click.option("--rows", type=int, default=8, show_default=True, help="Rows printed per table.")
def lengths(store_path: str, by: str | None, outdir: str | None, seed: int, quick: bool, explore: bool, rows: int) -> None:
    """Request-data characterization of STORE: lengths, fits, shifts, reasoning, multimodal, findings."""
    from servelab.analysis.lengths import length_sample
    from servelab.analysis.store import open_store
    from servelab.reports.findings.lengths import length_findings, measure_lengths
    from servelab.reports.findings.multimodal import measure_multimodal, multimodal_findings
    from servelab.reports.findings.reasoning import measure_reasoning, reasoning_findings

    store = open_store(store_path)
    start = time.perf_counter()
    ev = measure_lengths(store, by=by, seed=seed, quick=quick)
    rev = measure_reasoning(store, seed=seed, quick=quick)
    mev = measure_multimodal(store, seed=seed)
    tables = {**ev.tables, **{f"reasoning_{k}": v for k, v in rev.tables.items()},
              **{f"multimodal_{k}": v for k, v in mev.tables.items()}}
    if explore and store.has("input_tokens"):
        from servelab.fitting.mixtures import explore_scipy_families

        tables["explore_input_fitter"] = explore_scipy_families(length_sample(store, "input_tokens", max_n=20_000,
                                                                              seed=seed), seed=seed)
    findings = [*length_findings(ev), *reasoning_findings(rev), *multimodal_findings(mev)]
    seconds = time.perf_counter() - start
    target = Path(outdir) if outdir else None
    if target:
        target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        print_table(name, table, rows)
        if target:
            written += write_table(target, name, table)
    for note in (*ev.notes, *rev.notes):
        click.echo(f"note: {note}")
    for what, why in {**ev.skipped, **rev.skipped, **mev.skipped}.items():
        click.echo(f"skipped: {what}: {why}")
    print_findings(findings)
    if target:
        written += write_findings(target, findings)
        click.echo(f"\nwrote {len(written)} files to {target}")
    click.echo(f"analyses took {seconds:.1f} s")

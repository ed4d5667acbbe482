"""``servelab lengths STORE [--by model|service|client|period] [-o OUTDIR]``.

Runs the request-data area (:data:`servelab.reports.areas.LENGTHS`: lengths and their fits,
input/output relation, shifts over the day; reasoning and multimodal analyses where the columns
exist) on one store, prints each table (its first rows) and every finding, and writes the tables
as Parquet and CSV and the findings as JSON into OUTDIR. ``--explore`` additionally scans many
scipy families with ``fitter`` (slow; exploration only). This module only parses options, calls
the library and prints.
"""
from __future__ import annotations

import time

import click

from servelab.commands.output import emit

__all__ = ["lengths"]


@click.command("lengths")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("--by", type=click.Choice(["model", "service", "client", "period"]), default=None,
              help="Also compute quantiles and correlations per group (period: ServeGen's Midnight/Morning/Afternoon).")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default=None,
              help="Write every table as Parquet and CSV (and findings.json) into this folder.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every subsample.")
@click.option("--quick", is_flag=True, help="Quick budget: fit lengths on 10^5 values instead of 10^6 (and measure a "
              "trace of more than 10^6 requests on a seeded sample of about 10^6).")
@click.option("--explore", is_flag=True, help="Also scan scipy's common families with fitter (slow, exploration only).")
@click.option("--rows", type=click.IntRange(min=1), default=8, show_default=True, help="Rows printed per table.")
def lengths(store_path: str, by: str | None, outdir: str | None, seed: int, quick: bool, explore: bool, rows: int) -> None:
    """Request-data characterization of STORE: lengths, fits, shifts, reasoning, multimodal, findings."""
    from servelab.analysis.budget import Budget
    from servelab.analysis.lengths import length_sample
    from servelab.analysis.store import open_store
    from servelab.reports.areas import LENGTHS

    store = open_store(store_path)
    start = time.perf_counter()
    ev = LENGTHS.measure(store, budget=Budget.quick() if quick else Budget.full(), seed=seed, by=by)
    tables = dict(LENGTHS.detail_tables(ev))
    if explore and store.has("input_tokens"):
        from servelab.fitting.mixtures import explore_scipy_families

        tables["explore_input_fitter"] = explore_scipy_families(length_sample(store, "input_tokens", max_n=20_000,
                                                                              seed=seed), seed=seed)
    findings = LENGTHS.findings(ev)
    seconds = time.perf_counter() - start
    emit(tables, findings, LENGTHS.notes(ev), outdir=outdir, rows=rows)
    click.echo(f"analyses took {seconds:.1f} s")

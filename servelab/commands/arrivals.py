"""``servelab arrivals STORE [--by model|service|client] [--window 5m] [--clock auto|none|SECONDS] [-o OUTDIR]``.

Runs the arrivals and periodicity areas (:data:`servelab.reports.areas.ARRIVALS` and
:data:`~servelab.reports.areas.PERIODICITY`) on one store, prints each table (its first rows),
note and finding, and writes every table as Parquet and CSV (and the findings) into OUTDIR. To add
tables or findings, add them to the area (its ``detail_tables`` and ``findings``); to run another
area here, add it to the loop below. An area that does not apply to the trace raises
:class:`~servelab.analysis.exceptions.NotApplicableError` and is reported as skipped; the others
still run. This module only parses options, calls the library and prints.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import click

from servelab.commands.output import print_findings, print_table, write_findings, write_table

__all__ = ["arrivals", "clock_option", "clock_value"]


def clock_value(ctx, param, value: str):
    """``--clock`` callback: ``"auto"`` (the store's recorded clock), None for ``none`` (exact
    timestamps), or a positive number of seconds."""
    text = str(value).strip().lower()
    if text in ("auto", "none"):
        return "auto" if text == "auto" else None
    try:
        step = float(text)
    except ValueError:
        step = float("nan")
    if not (math.isfinite(step) and step > 0):
        raise click.BadParameter(f"must be 'auto', 'none' or a positive number of seconds; got {value!r}")
    return step


#: the ``--clock`` option of the analysis commands (``arrivals``, ``report``)
clock_option = click.option(
    "--clock", default="auto", show_default=True, callback=clock_value,
    help="Logging clock step of the timestamps for the gap analyses: 'auto' (the store's recorded clock), "
         "'none' (timestamps exact) or seconds (overrides the store's).")


@click.command("arrivals")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("--by", type=click.Choice(["model", "service", "client"]), default=None,
              help="Also compute per-group tables (gaps, windows, families) by this column.")
@click.option("--window", default="5m", show_default=True,
              help="Window of the rate / CV table: seconds or 30s, 5m, 20min, 1h, 1d.")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default=None,
              help="Write every table as Parquet and CSV (and findings.json) into this folder.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of subsamples, jitter and bootstrap.")
@click.option("--quick", is_flag=True, help="Quick budget: fit smaller subsamples (10^5 gaps instead of 10^6).")
@click.option("--gof", type=click.Choice(["auto", "subsample", "bootstrap", "none"]), default="auto", show_default=True,
              help="Honest p-values for the whole-trace fits (auto: bootstrap on small samples, subsample KS on big).")
@click.option("--rows", type=click.IntRange(min=1), default=8, show_default=True, help="Rows printed per table.")
@clock_option
def arrivals(store_path: str, by: str | None, window: str, outdir: str | None, seed: int, quick: bool,
             gof: str, rows: int, clock) -> None:
    """Arrival characterization of STORE: gaps, windowed rate and CV, family fits, findings."""
    from servelab.analysis.arrivals import parse_window
    from servelab.analysis.budget import Budget
    from servelab.analysis.exceptions import NotApplicableError
    from servelab.analysis.store import open_store
    from servelab.reports.areas import ARRIVALS, PERIODICITY

    try:
        parse_window(window)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--window") from None
    store = open_store(store_path)
    budget = Budget.quick() if quick else Budget.full()
    options = {ARRIVALS.id: {"by": "client_id" if by == "client" else by, "window": window,
                             "gof": None if gof == "none" else gof, "clock": clock}}
    findings = []
    written: list[Path] = []
    target = Path(outdir) if outdir else None
    if target:
        target.mkdir(parents=True, exist_ok=True)
    for area in (ARRIVALS, PERIODICITY):
        start = time.perf_counter()
        try:
            ev = area.measure(store, budget=budget, seed=seed, **options.get(area.id, {}))
        except NotApplicableError as err:
            click.echo(f"\n### step {area.id}: not applicable: {err.reason} ({time.perf_counter() - start:.1f} s)")
            continue
        click.echo(f"\n### step {area.id}: ok ({time.perf_counter() - start:.1f} s)")
        for table_name, table in area.detail_tables(ev).items():
            print_table(table_name, table, rows)
            if target:
                written += write_table(target, table_name, table)
        for note in area.notes(ev):
            click.echo(f"note: {note}")
        findings.extend(area.findings(ev))
    if findings:
        print_findings(findings)
        if target:
            written += write_findings(target, findings)
    if target:
        click.echo(f"\nwrote {len(written)} files to {target}")

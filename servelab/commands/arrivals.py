"""``servelab arrivals STORE [--by model|service|client] [--window 5m] [-o OUTDIR]``.

Runs a list of table-producing steps (:data:`STEPS`) on one store, prints each table (its first
rows) and each finding, and writes every table as Parquet and CSV into OUTDIR. A step is a
function ``(store, ArrivalOptions) -> StepResult``; to add tables (periodicity, profiles, bursts,
failures, forecasts), write such a function in its own module and add one
``("name", "module:function")`` line to :data:`STEPS`. A step that does not apply to the trace
raises :class:`~servelab.analysis.exceptions.NotApplicableError` and is reported as skipped; the
others still run. This module only parses options, calls the library and prints.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import click
import polars as pl

from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding
from servelab.commands.output import print_findings, print_table, write_findings, write_table

__all__ = ["arrivals", "ArrivalOptions", "StepResult", "STEPS", "run_steps", "arrival_step"]


@dataclass(frozen=True)
class ArrivalOptions:
    """Options every step receives.

    Parameters
    ----------
    by : str or None
        ``model``, ``service``, ``client_id`` or None.
    window : str
        Window length as given (``"5m"``); steps parse it with
        :func:`servelab.analysis.arrivals.parse_window`.
    seed : int
        Seed of every random draw.
    quick : bool
        Subsample fits harder (big traces).
    gof : str or None
        Honest p-values for the whole-trace fits (``"auto"``, ``"bootstrap"``, ``"subsample"`` or None).
    n_boot : int
        Bootstrap replicates.
    """

    by: str | None = None
    window: str = "5m"
    seed: int = 0
    quick: bool = False
    gof: str | None = "auto"
    n_boot: int = 200


@dataclass(frozen=True)
class StepResult:
    """What a step hands back: named tables, findings and notes."""

    tables: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "notes", tuple(self.notes))


def arrival_step(store, options: ArrivalOptions) -> StepResult:
    """Gap summary, windowed rate / CV, family comparisons, Gamma per window; ServeGen F1, F2 and
    BurstGPT's Gamma shift."""
    from servelab.reports.findings.arrivals import arrival_findings, collect_arrival_evidence

    ev = collect_arrival_evidence(store, by=options.by, window=options.window, seed=options.seed,
                                  quick=options.quick, gof=options.gof, n_boot=options.n_boot)
    return StepResult(tables=ev.tables, findings=tuple(arrival_findings(ev)), notes=ev.notes)


#: (name, "module:function") of every step, in order; each function is ``(store, ArrivalOptions) -> StepResult``.
#: Other areas add their steps here (periodicity, calendar profiles, bursts, failures, forecasts).
STEPS: list[tuple[str, str]] = [
    ("arrivals", "servelab.commands.arrivals:arrival_step"),
    ("periodicity", "servelab.reports.sections.periodicity:periodicity_step"),
]


def _load(spec: str) -> Callable:
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


def run_steps(store, options: ArrivalOptions, *, steps: list[tuple[str, str]] | None = None
              ) -> list[tuple[str, StepResult | None, str, float]]:
    """Run ``steps`` (default :data:`STEPS`); returns (name, result or None, status text, seconds)."""
    out = []
    for name, spec in steps if steps is not None else STEPS:
        start = time.perf_counter()
        try:
            result = _load(spec)(store, options)
            status = "ok"
        except NotApplicableError as err:
            result, status = None, f"not applicable: {err.reason}"
        out.append((name, result, status, time.perf_counter() - start))
    return out


@click.command("arrivals")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("--by", type=click.Choice(["model", "service", "client"]), default=None,
              help="Also compute per-group tables (gaps, windows, families) by this column.")
@click.option("--window", default="5m", show_default=True,
              help="Window of the rate / CV table: seconds or 30s, 5m, 20min, 1h, 1d.")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default=None,
              help="Write every table as Parquet and CSV (and findings.json) into this folder.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of subsamples, jitter and bootstrap.")
@click.option("--quick", is_flag=True, help="Fit smaller subsamples (10^5 gaps instead of 10^6).")
@click.option("--gof", type=click.Choice(["auto", "subsample", "bootstrap", "none"]), default="auto", show_default=True,
              help="Honest p-values for the whole-trace fits (auto: bootstrap on small samples, subsample KS on big).")
@click.option("--rows", type=int, default=8, show_default=True, help="Rows printed per table.")
def arrivals(store_path: str, by: str | None, window: str, outdir: str | None, seed: int, quick: bool,
             gof: str, rows: int) -> None:
    """Arrival characterization of STORE: gaps, windowed rate and CV, family fits, findings."""
    from servelab.analysis.arrivals import parse_window
    from servelab.analysis.store import open_store

    try:
        parse_window(window)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--window") from None
    store = open_store(store_path)
    options = ArrivalOptions(by="client_id" if by == "client" else by, window=window, seed=seed, quick=quick,
                             gof=None if gof == "none" else gof)
    results = run_steps(store, options)
    findings: list[Finding] = []
    written: list[Path] = []
    target = Path(outdir) if outdir else None
    if target:
        target.mkdir(parents=True, exist_ok=True)
    for name, result, status, seconds in results:
        click.echo(f"\n### step {name}: {status} ({seconds:.1f} s)")
        if result is None:
            continue
        for table_name, table in result.tables.items():
            print_table(table_name, table, rows)
            if target:
                written += write_table(target, table_name, table)
        for note in result.notes:
            click.echo(f"note: {note}")
        findings.extend(result.findings)
    if findings:
        print_findings(findings)
        if target:
            written += write_findings(target, findings)
    if target:
        click.echo(f"\nwrote {len(written)} files to {target}")

"""Printing and writing the tables, findings and figures of the per-area commands.

``servelab arrivals``, ``lengths``, ``clients`` and ``conversations`` print the first rows of each
table and every finding, and with ``-o DIR`` write each table as Parquet and CSV, the findings
as ``findings.{parquet,csv,json}`` and (``--figures``) the figures as PNG. This module only
formats and writes; it computes nothing.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click
import polars as pl

from servelab.analysis.findings import Finding, findings_table

__all__ = ["emit", "print_findings", "print_table", "write_figures", "write_findings", "write_table"]


def print_table(name: str, table: pl.DataFrame, rows: int) -> None:
    """Echo ``table``'s shape and first ``rows`` rows under a ``== name`` heading."""
    click.echo(f"\n== {name} ({table.height} rows x {table.width} columns)")
    with pl.Config(tbl_rows=rows, tbl_cols=14, fmt_str_lengths=60, tbl_width_chars=160):
        click.echo(str(table.head(rows)))


def write_table(target: Path, name: str, table: pl.DataFrame) -> list[Path]:
    """Write ``table`` as ``target/name.parquet`` and ``target/name.csv``; return the paths."""
    paths = [target / f"{name}.parquet", target / f"{name}.csv"]
    table.write_parquet(paths[0])
    table.write_csv(paths[1])
    return paths


def print_findings(findings: Iterable[Finding]) -> None:
    """Echo a ``### findings`` list: id, verdict and reason of each finding."""
    click.echo("\n### findings")
    for f in findings:
        click.echo(f"- {f.id} [{f.verdict.value}] {f.reason}")


def write_findings(target: Path, findings: Iterable[Finding]) -> list[Path]:
    """Write ``findings.parquet``, ``findings.csv`` and ``findings.json`` into ``target``."""
    findings = list(findings)
    paths = [target / "findings.parquet", target / "findings.csv", target / "findings.json"]
    table = findings_table(findings)
    table.write_parquet(paths[0])
    table.write_csv(paths[1])
    paths[2].write_text(json.dumps([f.to_dict() for f in findings], indent=2))
    return paths


def write_figures(target: Path, figures: Mapping[str, Any]) -> list[Path]:
    """Save each figure as ``target/<figure id with "." -> "_">.png``; return the paths."""
    from servelab.figures.style import save_figure

    written: list[Path] = []
    for fig_id, fig in figures.items():
        written += save_figure(fig, target / fig_id.replace(".", "_"))
    return written


def emit(tables: Mapping[str, pl.DataFrame], findings: Iterable[Finding], notes: Iterable[str], *,
         outdir: str | None, rows: int, figures: Mapping[str, Any] | None = None) -> None:
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
            written += write_figures(target, figures)
        click.echo(f"\nwrote {len(written)} files to {target}")

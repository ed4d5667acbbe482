"""``servelab report``: characterize a trace and write one self-contained HTML report plus JSON.

A thin layer over :func:`servelab.reports.builder.build_report`; it parses options and prints
where the report went and what it found. It computes nothing itself.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import click

from servelab.commands.arrivals import clock_option
from servelab.commands.ingest import _FORMATS as INGEST_FORMATS
from servelab.commands.linking import link_options

__all__ = ["report", "TRACE_FORMATS"]

#: ``--format`` choices: the same as ``servelab ingest --format`` (one list for every command that ingests)
TRACE_FORMATS = INGEST_FORMATS


@click.command("report")
@click.argument("store_or_trace", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="HTML file to write; the JSON of all findings goes beside it (.json).")
@click.option("--quick", is_flag=True, help="Quick budget: subsample fits (for very large traces); each section says "
              "how.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for every random draw of the sections.")
@click.option("--format", "fmt", type=click.Choice(TRACE_FORMATS), default="auto", show_default=True,
              help="Format of a raw trace to ingest first: auto (sniffs it), burstgpt, azure, mooncake, bailian, "
                   "generic (with --column-map); ignored for a store.")
@click.option("--column-map", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="TOML column map of a raw trace in the generic format (see `servelab ingest --help`).")
@click.option("--section", "only", multiple=True, metavar="ID",
              help="Only this section (repeatable): overview, arrivals, periodicity, lengths, clients, "
                   "conversations, prefixes, generation. Default: all.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar over sections (shown only on a terminal).")
@click.option("--figures-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also save every figure here as <figure id>.<format> (the page embeds PNGs).")
@click.option("--figure-format", "figure_formats", multiple=True, type=click.Choice(["svg", "pdf", "png"]),
              help="Format(s) for --figures-dir (repeatable).  [default: svg]")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the sections that aggregate in SQL (overview, generation's pool fits) run it; the other "
                   "sections run locally and say so (spark: needs servelab[spark]).")
@click.option("--spark-master", default=None, help="Spark master URL for --engine spark: local[2] (default), local[*], "
              "spark://host:7077, or sc://host:15002 (Spark Connect).")
@clock_option
@link_options
def report(store_or_trace: Path | None, output: Path, quick: bool, seed: int, fmt: str, column_map: Path | None,
           only: tuple[str, ...], progress: bool, figures_dir: Path | None, figure_formats: tuple[str, ...],
           engine: str, spark_master: str | None, linking, clock) -> None:
    """Write the characterization report of STORE_OR_TRACE (default: the shipped Azure sample).

    STORE_OR_TRACE is a trace store folder (from `servelab ingest`) or a raw trace file, which is
    ingested into a temporary store first.
    """
    from servelab.analysis.budget import Budget
    from servelab.analysis.engines import EngineUnavailableError
    from servelab.analysis.exceptions import ColumnMapError, StoreNotFoundError, TraceFormatError
    from servelab.reports.areas import area_ids
    from servelab.reports.builder import SectionFailedWarning, build_report

    ids = area_ids()
    unknown = [name for name in only if name not in ids]
    if unknown:
        raise click.BadParameter(f"unknown section(s) {unknown}; allowed: {list(ids)}", param_hint="--section")
    sections = tuple(name for name in ids if name in only) if only else ids

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SectionFailedWarning)
        try:
            result = build_report(store_or_trace, output=output, budget=Budget.quick() if quick else Budget.full(),
                                  seed=seed, progress=progress, fmt=fmt,
                                  column_map=column_map, sections=sections, figures_dir=figures_dir,
                                  figure_formats=figure_formats or ("svg",),
                                  area_options={"conversations": {"linking": linking},
                                                "arrivals": {"clock": clock}},
                                  engine=engine, spark_master=spark_master)
        except (StoreNotFoundError, TraceFormatError, ColumnMapError, FileNotFoundError, ValueError,
                EngineUnavailableError) as err:
            raise click.ClickException(str(err)) from None
    for warning in caught:
        if not issubclass(warning.category, SectionFailedWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    counts = result.verdict_counts()
    click.echo(f"wrote {result.html_path} and {result.json_path} in {result.elapsed_s:.1f} s")
    if figures_dir is not None:
        click.echo(f"figures: {figures_dir}/<figure id>.{{{','.join(figure_formats or ('svg',))}}}")
    click.echo("findings: " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()))
    for section_id, error in result.errors.items():
        click.echo(f"section {section_id} FAILED: {error.splitlines()[0]}", err=True)

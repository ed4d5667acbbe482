"""``servelab compare``: how close candidate workloads are to a reference (ServeGen 6.2 in numbers).

A thin layer over :func:`servelab.analysis.fidelity.compare`.
"""
from __future__ import annotations

import click

__all__ = ["compare"]


@click.command("compare")
@click.argument("reference", type=click.Path(exists=True))
@click.argument("candidates", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--window", "window_s", type=float, default=3.0, show_default=True, help="Window length, seconds.")
@click.option("--names", default=None, help="Comma-separated names of the candidates (default: file names).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the energy-distance subsample.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
def compare(reference, candidates, window_s, names, seed, csv_out) -> None:
    """Compare CANDIDATE workloads with REFERENCE: a table with one column per candidate.

    Each argument is a trace store folder or a canonical .parquet / .csv file (e.g. the output of
    `servelab generate`). Distances are 0 for identical workloads (lower is closer); values are
    to be read against the reference column.
    """
    from pathlib import Path

    import polars as pl

    from servelab.analysis.exceptions import EmptyTraceError, TraceFormatError
    from servelab.analysis.fidelity import compare as run

    labels = [n.strip() for n in names.split(",")] if names else None
    if labels is None:
        labels = []
        for c in candidates:
            stem = Path(c).stem or Path(c).name
            labels.append(stem if stem not in labels and stem != "reference" else f"{stem}_{len(labels) + 1}")
    try:
        table = run(reference, list(candidates), names=labels, window_s=window_s, seed=seed)
    except (TraceFormatError, EmptyTraceError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    if csv_out:
        table.write_csv(csv_out)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=4, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=200):
        click.echo(str(table))

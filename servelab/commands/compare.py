"""``servelab compare``: how close candidate workloads are to a reference (ServeGen 6.2 in numbers).

A thin layer over :func:`servelab.analysis.fidelity.compare`. Without ``--window`` the window is
picked from the reference by :func:`servelab.analysis.fidelity.choose_window` (the shortest window
from 3 s up whose median window holds at least 10 requests); the window used is printed, and
written to ``--json``.
"""
from __future__ import annotations

import click

__all__ = ["compare"]


@click.command("compare")
@click.argument("reference", type=click.Path(exists=True))
@click.argument("candidates", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--window", "window_s", type=float, default=None,
              help="Window length, seconds (default: picked from the reference so that its median window "
                   "holds >= 10 requests).")
@click.option("--names", default=None, help="Comma-separated names of the candidates (default: file names).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the energy-distance subsample.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write {window_s, window_rule, reference: {metric: value}, <name>: {...}} as JSON.")
def compare(reference, candidates, window_s, names, seed, csv_out, json_out) -> None:
    """Compare CANDIDATE workloads with REFERENCE: a table with one column per candidate.

    Each argument is a trace store folder or a canonical .parquet / .csv file (e.g. the output of
    `servelab generate`). Distances are 0 for identical workloads (lower is closer); values are
    to be read against the reference column.
    """
    import json
    import math
    from pathlib import Path

    import polars as pl

    from servelab.analysis.exceptions import EmptyTraceError, TraceFormatError
    from servelab.analysis.fidelity import choose_window, load_trace
    from servelab.analysis.fidelity import compare as run

    labels = [n.strip() for n in names.split(",")] if names else None
    if labels is None:
        labels = []
        for c in candidates:
            stem = Path(c).stem or Path(c).name
            labels.append(stem if stem not in labels and stem != "reference" else f"{stem}_{len(labels) + 1}")
    try:
        if window_s is None:
            choice = choose_window(load_trace(reference))
            window_s, rule = choice.window_s, (f"automatic: {choice.rule}; median window holds "
                                               f"{choice.median_requests:g} requests over {choice.n_windows} windows")
        else:
            rule = "given (--window)"
        # the reference as given (not the loaded frame): compare reads the columns it needs, e.g. prefix_blocks
        table = run(reference, list(candidates), names=labels, window_s=window_s, seed=seed)
    except (TraceFormatError, EmptyTraceError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    if csv_out:
        table.write_csv(csv_out)
    if json_out:
        def clean(v):
            return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

        doc = {"window_s": window_s, "window_rule": rule}
        for col in ["reference", *labels]:
            doc[col] = {m: clean(v) for m, v in zip(table["metric"], table[col])}
        Path(json_out).write_text(json.dumps(doc, indent=2))
    click.echo(f"window: {window_s:g} s ({rule})")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=4, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=200):
        click.echo(str(table))

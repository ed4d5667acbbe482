"""``servelab clients STORE [--window 10m] [--min-requests N] [-o OUTDIR] [--figures]``.

Client decomposition of a store (the clients area, :data:`servelab.reports.areas.CLIENTS`):
ranking and share curve, per-client-per-window statistics, per-client summary, stability and mix
attribution, and ServeGen Findings 5, 8 and 11. Prints the tables (first rows) and findings; with
``-o`` writes every table as Parquet and CSV plus ``findings.json`` (and, with ``--figures``, the
area's figures as PNG: the same figures the report draws). A trace without client ids prints
not-applicable findings with the reason. This module only parses options, calls the library and
prints.
"""
from __future__ import annotations

import click

from servelab.commands.output import emit

__all__ = ["clients"]


@click.command("clients")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("--window", default="10m", show_default=True, help="Window: seconds or 30s, 5m, 10m, 1h.")
@click.option("--min-requests", type=int, default=10, show_default=True,
              help="A window's CV and lengths count for a client's stability and typical CV only with this many requests.")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default=None,
              help="Write every table as Parquet and CSV, and findings.json, into this folder.")
@click.option("--figures", "with_figures", is_flag=True, help="With -o, also write ServeGen Fig. 6 / 12 / 17 as PNG.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the reason-ratio subsamples.")
@click.option("--rows", type=click.IntRange(min=1), default=10, show_default=True, help="Rows printed per table.")
def clients(store_path: str, window: str, min_requests: int, outdir: str | None, with_figures: bool, seed: int,
            rows: int) -> None:
    """Client decomposition of STORE: shares, per-client windows, stability, attribution, findings."""
    from servelab.analysis.arrivals import parse_window
    from servelab.analysis.clients import top_clients_for_share
    from servelab.analysis.store import open_store
    from servelab.reports.areas import CLIENTS

    try:
        window_s = parse_window(window)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--window") from None
    if min_requests < 1:
        raise click.BadParameter(f"must be >= 1; got {min_requests}", param_hint="--min-requests")
    store = open_store(store_path)
    ev = CLIENTS.measure(store, seed=seed, window_s=window_s, min_requests=min_requests, length_quantiles=True)
    d = ev.decomposition
    if d is None:
        notes = [*ev.notes, f"client decomposition not applicable: {ev.reason}"]
    else:
        notes = list(CLIENTS.notes(ev))
        click.echo(f"{d.n_clients} clients; {d.top50} carry 50% and {d.top90} carry 90% of requests"
                   + (f"; {top_clients_for_share(d.ranking, 0.9, by='tokens')} carry 90% of tokens"
                      if "cum_token_share" in d.ranking.columns else ""))
    figures = CLIENTS.figures(ev) if with_figures and outdir else {}
    emit(CLIENTS.detail_tables(ev), CLIENTS.findings(ev), notes, outdir=outdir, rows=rows, figures=figures)

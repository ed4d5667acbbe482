"""``servelab fit-pool STORE -o POOL``: fit a client pool from a trace store.

A thin layer over :func:`servelab.fitting.pool_fit.fit_pool` and the pool writer.
"""
from __future__ import annotations

import time

import click

from servelab.commands.linking import link_options

__all__ = ["fit_pool"]


@click.command("fit-pool")
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="Pool folder to write.")
@click.option("--window", default="10m", show_default=True, help="Arrival window (rate, CV, family).")
@click.option("--data-window", default="6h", show_default=True, help="Request-data window (PMFs).")
@click.option("--min-data-windows", default=3, show_default=True, type=click.IntRange(min=0),
              help="A trace shorter than this many data windows gets shorter ones (about span / this, nested "
                   "with --window), so its lengths keep a time profile; 0: always --data-window.")
@click.option("--min-requests", default=1, show_default=True, type=click.IntRange(min=1),
              help="Clients with fewer requests are merged into one residual client.")
@click.option("--bin-ratio", default=1.05, show_default=True, type=click.FloatRange(min=1.0, min_open=True),
              help="Ratio of the log bins of lengths above 64 tokens (each bin stored as --spread-points values "
                   "over it). 1.0125: finer bins, at about +20% PMF rows and, on 100 M rows, 9.3 GB fit memory "
                   "against 6.8 GB.")
@click.option("--spread-points", default=4, show_default=True, type=click.IntRange(min=1, max=64),
              help="A bin of several lengths is stored as up to this many values spread over them (each "
                   "standing for >= 8 requests), keeping its mean, so generated lengths fill the bin; 1: each bin "
                   "at its mean.")
@click.option("--families", default="gamma,weibull,exponential", show_default=True,
              help="Arrival families compared per window (lowest AIC wins).")
@click.option("--max-fit-gaps", default=5000, show_default=True, type=click.IntRange(min=2),
              help="Gaps fitted per window at most (a seeded uniform subsample above).")
@click.option("--clock", default="auto", show_default=True,
              help="Timestamp clock step in seconds, 'auto' (the store's recorded clock_s, else detected) or "
                   "'none'; arrival times are jittered within it (seeded) before gaps, CVs and fits.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the clock jitter.")
@click.option("--servegen", "servegen_out", type=click.Path(), default=None,
              help="Also write the pool in ServeGen's format to this folder.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the aggregation SQL runs (spark: needs servelab[spark] and Java); the same pool either way.")
@click.option("--spark-master", default=None, help="Spark master URL for --engine spark: local[2] (default), local[*], "
              "spark://host:7077, or sc://host:15002 (Spark Connect).")
@click.option("--no-window-censoring", "no_window_censoring", is_flag=True,
              help="Fit conversations and prefix reuses as seen, without the correction for the trace's window.")
@link_options
def fit_pool(store: str, output: str, window: str, data_window: str, min_data_windows: int, min_requests: int,
             bin_ratio: float, spread_points: int, families: str,
             max_fit_gaps: int, clock: str, seed: int, servegen_out: str | None, overwrite: bool, engine: str, spark_master: str | None,
             no_window_censoring: bool, linking) -> None:
    """Fit a client pool from the trace store STORE and write it to OUTPUT."""
    from servelab.analysis.engines import EngineUnavailableError
    from servelab.analysis.exceptions import EmptyTraceError, StoreNotFoundError, TraceFormatError
    from servelab.analysis.store import open_store
    from servelab.fitting.pool_fit import fit_pool as fit
    from servelab.generator import PoolExistsError

    from servelab.analysis.arrivals import parse_window

    t0 = time.perf_counter()
    for hint, text in (("--window", window), ("--data-window", data_window)):
        try:
            parse_window(text)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint=hint) from None
    try:
        step = clock if clock in ("auto", "none") else float(clock)
    except ValueError:
        raise click.BadParameter(f"must be a number of seconds, 'auto' or 'none'; got {clock!r}",
                                 param_hint="--clock") from None
    try:
        st = open_store(store)
        pool = fit(st, window_s=window, data_window_s=data_window, min_data_windows=min_data_windows,
                   min_requests=min_requests, bin_ratio=bin_ratio, spread_points=spread_points,
                   families=tuple(f.strip() for f in families.split(",") if f.strip()),
                   max_fit_gaps=max(max_fit_gaps, 10), clock=step, seed=seed, linking=linking,
                   engine=engine, spark_master=spark_master, window_censoring=not no_window_censoring)
        pool.save(output, overwrite=overwrite)
        if servegen_out:
            pool.to_servegen(servegen_out, overwrite=overwrite)
    except (StoreNotFoundError, TraceFormatError, EmptyTraceError, PoolExistsError, ValueError,
            EngineUnavailableError) as err:
        raise click.ClickException(str(err)) from None
    info = pool.info()
    click.echo(f"wrote {output}: {info['clients']} clients, {info['active_windows']} active windows "
               f"({', '.join(f'{k} {v}' for k, v in info['families'].items())}), fields {', '.join(info['fields']) or 'none'}, "
               f"{pool.conversations.height} client(s) with conversations, in {time.perf_counter() - t0:.1f} s")

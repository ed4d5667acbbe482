"""``servelab pool``: inspect a client pool and convert between servelab's and ServeGen's formats.

A thin layer over :mod:`servelab.generator`; nothing here computes what a notebook could not.
"""
from __future__ import annotations

import json
import warnings

import click
import polars as pl

__all__ = ["pool"]


def _load(path: str):
    from servelab.generator import ClientPool, PoolFormatError, PoolNotFoundError

    try:
        return ClientPool.load(path)
    except (PoolFormatError, PoolNotFoundError) as err:
        raise click.ClickException(str(err)) from None


def _save(action, output: str) -> None:
    from servelab.generator import PoolExistsError, PoolFormatError

    try:
        action()
    except (PoolExistsError, PoolFormatError) as err:
        raise click.ClickException(str(err)) from None


def _arrival_trend_line(trend) -> str:
    """``pool info``'s line on the arrival-trend test (:class:`~servelab.fitting.pool_churn.ArrivalTrend`'s
    description, or why it was not tested)."""
    from servelab.fitting.pool_churn import MIN_TREND_ARRIVALS, MIN_TREND_DAYS

    if isinstance(trend, str):
        return trend
    if trend["p_value"] is None:
        return (f"not tested ({trend['dense_arrivals']} dense arrivals; needs {MIN_TREND_ARRIVALS} on "
                f"{MIN_TREND_DAYS} whole days)")
    test = f"Cox-Lewis z {trend['z']:.3g}, p {trend['p_value']:.2g}"
    if trend["kept"]:
        return (f"kept: {trend['slope_per_day']:+.3g} per day in log rate ({test}, {trend['dense_arrivals']} "
                f"dense arrivals), damped past the span")
    if trend.get("refused"):
        return (f"none ({test}, but {trend['refused']}; curvature p {trend['curvature_p']:.2g}): "
                f"a constant arrival rate")
    return f"none ({test} >= {trend['level']:g}, {trend['dense_arrivals']} dense arrivals): a constant arrival rate"


@click.group("pool")
def pool() -> None:
    """Inspect client pools; import and export ServeGen's format."""


@pool.command("info")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--top", default=5, show_default=True, type=click.IntRange(min=1),
              help="Rate share of the top N clients.")
@click.option("--clients", "show_clients", is_flag=True, help="Also print one row per client.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(path: str, top: int, show_clients: bool, as_json: bool) -> None:
    """Summarise the pool at PATH (servelab's format, or a ServeGen folder).

    Clients, span, rate share of the top clients, CV and length ranges, and missing parts.
    """
    if as_json:
        # the JSON document carries the pool's warnings under "warnings" (nothing else is printed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)  # servelab's warnings, as the CLI handler shows them
            warnings.simplefilter("always", RuntimeWarning)
            p = _load(path)
        messages = [str(w.message) for w in caught]
    else:
        p = _load(path)  # every warning reaches the user through the CLI-wide handler (servelab.cli)
        messages = []
    summary = p.info(top=top)
    from servelab.fitting.pool_shrinkage import shrinkage_summary  # issue 17
    from servelab.generator.extend import churn_summary, coupling_summary  # issue 17

    summary["churn"] = churn_summary(p)
    summary["coupling"] = coupling_summary(p)
    summary["length_shrinkage"] = shrinkage_summary(p)
    summary["warnings"] = messages
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    lo, hi = summary["span_s"]
    click.echo(f"pool            {path}")
    click.echo(f"clients         {summary['clients']}")
    click.echo(f"span            {lo:g} s .. {hi:g} s ({(hi - lo) / 86400:.2f} days)")
    click.echo(f"windows         arrivals {summary['window_s']:g} s, data {summary['data_window_s']:g} s")
    click.echo(f"fields          {', '.join(summary['fields']) or 'none'}")
    click.echo(f"mean total rate {summary['mean_total_rate']:.4g} req/s")
    click.echo(f"top {top} share     {summary[f'top{top}_rate_share']:.1%} of the rate")
    fams = ", ".join(f"{k} {v}" for k, v in summary["families"].items())
    click.echo(f"active windows  {summary['active_windows']} ({fams})")
    cv = summary["cv_range"]
    if cv[0] is not None:
        click.echo(f"CV range        {cv[0]:.3g} .. {cv[1]:.3g}")
    for field, (a, b) in summary["mean_field_range"].items():
        if a is not None:
            click.echo(f"mean {field:<15} {a:.4g} .. {b:.4g} across clients and data windows")
    missing = summary["clients_without_data"]
    click.echo(f"without data    {len(missing)} client(s){': ' + ', '.join(missing[:20]) if missing else ''}")
    no_arr = summary["clients_without_arrivals"]
    if no_arr:
        click.echo(f"without arrivals {len(no_arr)} client(s): {', '.join(no_arr[:20])}")
    click.echo(f"conversations   {summary['conversation_clients']} client(s) with conversation parameters")
    churn = summary["churn"]
    click.echo("churn           " + (churn if isinstance(churn, str) else (
        f"{churn['new_clients_per_day']} new clients/day, mean lifetime {churn['mean_lifetime_days']} days "
        f"({churn['arrived']} arrived, {churn['departed']} departed of {churn['clients']}; {churn['source']})")))
    if not isinstance(churn, str):
        mix = churn["lifetime_mixture"]
        one = "one exponential (a Gamma-mixed law was not kept over it)"
        click.echo("lifetimes       " + (one if isinstance(mix, str) else (
            f"Lomax (Gamma-mixed hazards) alpha {mix['alpha']:.3g}, scale {mix['beta_days']:.3g} days, kept over one "
            f"exponential at p {mix['p_value']:.3g}; P(leave within 7 days): new client "
            f"{mix['p_leave_within_7_days']['newborn']:.1%}, present 7 days "
            f"{mix['p_leave_within_7_days']['present_7_days']:.1%}")))
        click.echo("arrival trend   " + _arrival_trend_line(churn["arrival_trend"]))
    click.echo(f"coupling        {summary['coupling']}")
    shrink = summary["length_shrinkage"]
    click.echo("shrinkage       " + (shrink if isinstance(shrink, str) else "; ".join(
        f"{f}: k {v['k']:.3g}" + (f" (alike-clients test p {v['p_value']:.2g})" if v.get("p_value") is not None else "")
        + f", own-PMF weight median {v['median_weight']:.3g} over {v['clients']} clients" for f, v in shrink.items())))
    if show_clients:
        with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=160):
            click.echo(p.summary())


@pool.command("import-servegen")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="servelab pool folder to write.")
@click.option("--missing-data", type=click.Choice(["keep", "drop", "error"]), default="keep", show_default=True,
              help="Clients whose dataset file is missing: keep arrival-only, drop, or fail.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def import_servegen(source: str, output: str, missing_data: str, overwrite: bool) -> None:
    """Convert the ServeGen pool folder SOURCE into a servelab pool."""
    from servelab.generator import PoolFormatError, PoolNotFoundError, read_servegen

    try:  # a MissingDatasetWarning reaches the user through the CLI-wide handler (servelab.cli)
        p = read_servegen(source, missing_data=missing_data)
    except (PoolFormatError, PoolNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    _save(lambda: p.save(output, overwrite=overwrite), output)
    click.echo(f"wrote {output}: {p.n_clients} clients, span {p.span[0]:g}..{p.span[1]:g} s")


@pool.command("export-servegen")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="ServeGen pool folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def export_servegen(path: str, output: str, overwrite: bool) -> None:
    """Write the pool at PATH in ServeGen's format (chunk-<id>-trace.csv / -dataset.json)."""
    p = _load(path)
    _save(lambda: p.to_servegen(output, overwrite=overwrite), output)
    click.echo(f"wrote {output}: {p.n_clients} clients")

"""``servelab validate``: fit on the past of a trace, generate its future, score against what happened.

A thin layer over :func:`servelab.generator.validation.validate` (issue 17): prints the metrics
table (``compare``'s metric names) of the real later part, servelab's per-client workload and the
naive baseline, and with ``-o DIR`` writes ``validate.json``, ``validate_splits.csv``,
``validate_spread.csv``, ``validate_draws.csv`` (per metric over the draws), ``validate_counts.csv``
and the figure ``validate.png``.
"""
from __future__ import annotations

import click

__all__ = ["validate"]


def _split(store, text: str) -> float:
    """``--split``: a fraction in (0, 1), seconds on the trace's clock, or an ISO date-time."""
    import datetime as dt
    import math

    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not math.isfinite(value) or value <= 0:
            raise click.BadParameter(f"must be a fraction in (0, 1), seconds > 0 or an ISO date-time; got {text!r}",
                                     param_hint="--split")
        return value
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"must be a fraction in (0, 1), seconds > 0 or an ISO date-time; got {text!r}",
                                 param_hint="--split") from None
    origin = store.origin
    if origin is None:
        raise click.BadParameter(f"a date-time needs a store with a wall-clock origin; this store has none "
                                 f"(give seconds instead); got {text!r}", param_hint="--split")
    if when.tzinfo is None and origin.tzinfo is not None:
        when = when.replace(tzinfo=origin.tzinfo)
    return (when - origin).total_seconds()


@click.command("validate")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("--split", "split_text", required=True,
              help="Where to split: a fraction of the time span in (0, 1) (0.5: first half of the time), "
                   "seconds on the trace's clock, or an ISO date-time.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every draw.")
@click.option("--rolling", type=click.IntRange(min=1), default=None,
              help="Cut the time after the split into K test folds, each predicted from everything before it.")
@click.option("--window", "window_s", type=float, default=None,
              help="Window of the window metrics, seconds (default: picked from each real later part).")
@click.option("--pool-window", default=None,
              help="Arrival window of the fitted pools (default: 10m, or the longest of 5m, 2m, 1m, 30s, 10s that "
                   "leaves 4 windows before the split on a short trace).")
@click.option("--max-requests", type=click.IntRange(min=1), default=None,
              help="Above this many requests, validate on a seeded sample of whole clients of at most this many.")
@click.option("--draws", type=click.IntRange(min=1), default=None,
              help="Seeded draws per generator (values: their means; per metric a paired test over draws). "
                   "Default 5 on a store of at most 500,000 requests (or --max-requests), 1 above, so that "
                   "validate stays within about 3 minutes on a loaded machine (5 draws: 80-150 CPU-s per million requests).")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Write validate.json, tables (CSV) and the figure to this folder.")
def validate(store_path, split_text, seed, rolling, window_s, pool_window, max_requests, draws, output) -> None:
    """Fit a pool on STORE before the split, generate after it, and score servelab and naive.

    Both generators follow the total rate the pool forecasts past the split (a damped trend x a
    daily pattern, each kept only when a test finds it before the split; when the part before the
    split is too short to test a trend (< 4 whole days), times the churn model's expected volume
    path), never the real later rate; naive draws its request data from the mix before the split.
    Metrics are `servelab compare`'s; the reference column holds the real later part's own values (0 for distances);
    noise_floor is a distance between the two halves of the real later part (alternate windows):
    below it a metric cannot tell a generator from the real part.

    With several draws (--draws; default 5 up to 500,000 requests) each generator is drawn that many
    times with seeds derived from --seed: the servelab and naive columns are the draws' means, and
    per metric the expected score over draws (distance to the real later part: |value - reference|,
    or the distance) decides the verdict by one-sided Wilcoxon signed-rank tests paired by draw at
    5% (servelab / naive / tie); validate.json keeps each draw's values under "draws".
    """
    import json
    import math
    from collections.abc import Mapping
    from pathlib import Path

    import polars as pl

    from servelab.analysis.store import open_store
    from servelab.fitting.pool_settings import PoolFitSettings
    from servelab.generator.validation import DRAWS_MAX_REQUESTS, default_draws, draw_seeds, pool_window_for
    from servelab.generator.validation import validate as run

    if window_s is not None and not (math.isfinite(window_s) and window_s > 0):
        raise click.BadParameter(f"must be a finite number of seconds > 0; got {window_s!r}", param_hint="--window")
    store = open_store(store_path)
    split = _split(store, split_text)
    n = store.n_requests if max_requests is None else min(store.n_requests, max_requests)
    draws_rule = "given"
    if draws is None:
        draws = default_draws(n)
        draws_rule = f"default: {n:,} requests {'<=' if n <= DRAWS_MAX_REQUESTS else '>'} {DRAWS_MAX_REQUESTS:,}"
    if pool_window is None:
        span = store.manifest.get("span_s") or {}
        if span.get("first") is not None and span.get("last") is not None:
            pool_window, pool_rule = pool_window_for(split, float(span["first"]), float(span["last"]),
                                                     rolling=rolling or 1)
        else:  # an old manifest without the span
            pool_window, pool_rule = "10m", "default (the store's manifest gives no span)"
    else:
        pool_rule = "given"
    result = run(store, split=split, seed=seed, rolling=rolling, window_s=window_s,
                 settings=PoolFitSettings(window_s=pool_window), max_requests=max_requests, draws=draws)
    doc = result.to_json()
    doc["pool_window"] = {"window_s": PoolFitSettings(window_s=pool_window).window_s, "rule": pool_rule}
    click.echo(f"store  {store_path}")
    click.echo(f"pool   arrival window {PoolFitSettings(window_s=pool_window).window_s:g} s ({pool_rule})")
    click.echo(f"rate   {result.rate_assumption}")
    click.echo(f"draws  {draws} per generator ({draws_rule}; seeds {', '.join(map(str, draw_seeds(seed, draws)))})"
               + ("; values are the draws' means, verdict by a paired test over draws at 5%" if draws > 1 else ""))
    if result.bounded_sample:
        b = result.bounded_sample
        click.echo(f"sample {b['clients']:,} of {b['clients_total']:,} clients (whole, seeded), {b['requests']:,} of "
                   f"{b['requests_total']:,} requests (--max-requests {b['bound']:,})")
    for s in result.splits:
        c = s.clients
        turnover = (f"; clients later {c['later']}, seen before {c['seen_before']}, generated {c['generated']} "
                    f"({c['generated_new']} new)" if c else "")
        click.echo(f"split  {s.split_s:g} s .. {s.end_s:g} s, window {s.window_s:g} s ({s.window_rule}){turnover}")
        forecast = s.extension.get("forecast")
        if isinstance(forecast, Mapping) and forecast.get("limits"):
            click.echo("forecast " + "; ".join(forecast["limits"]))
        path = s.extension.get("churn_volume_path")
        if isinstance(path, Mapping):  # too short a span to test a trend: the churn model's expected volume
            click.echo(f"volume forecast x the churn model's expected volume path (first window {path['first']:.3f}, "
                       f"mean {path['mean']:.3f}, last {path['last']:.3f})")
        if s.shape_test is not None:
            click.echo(f"shape  {s.shape_test.text()}")
        comp = s.rate_components
        if comp and all(math.isfinite(comp[c]["dispersion"]) for c in comp):
            click.echo("rates  hour-of-day profile CV | dispersion about it (Poisson 1), at the window above: "
                       + ", ".join(f"{c} {comp[c]['profile_cv']:.3f} | {comp[c]['dispersion']:.2f}" for c in comp))
    table = result.table() if len(result.splits) == 1 else result.spread()
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=4, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=220):
        if draws > 1:
            dt = result.draws_table()
            click.echo(str(dt.select(*(["split_s"] if len(result.splits) > 1 else []), "metric", "kind", "reference",
                                     "servelab_mean", "servelab_sd", "naive_mean", "naive_sd", "servelab_score",
                                     "naive_score", "servelab_wins", "draws", "p_servelab", "p_naive", "verdict")))
            won = dt.group_by("verdict").len().sort("verdict")
            click.echo("verdicts " + ", ".join(f"{v} {k}" for v, k in won.iter_rows()) + f" (of {dt.height})")
        elif len(result.splits) == 1:
            click.echo(str(table.select("metric", "kind", "reference", "servelab", "naive", "noise_floor")))
        if len(result.splits) > 1:
            click.echo(str(table.select("metric", "kind", "reference_mean", "servelab_mean", "servelab_sd",
                                        "naive_mean", "naive_sd", "servelab_wins", "splits")))
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "validate.json").write_text(json.dumps(doc, indent=2))
        result.table().write_csv(out / "validate_splits.csv")
        result.spread().write_csv(out / "validate_spread.csv")
        result.draws_table().write_csv(out / "validate_draws.csv")
        counts = pl.concat([s.counts.with_columns(pl.lit(s.split_s).alias("split_s")) for s in result.splits])
        counts.write_csv(out / "validate_counts.csv")
        from servelab.figures.style import save_figure
        from servelab.figures.validation import fig_validation

        fig = fig_validation([{"label": f"split at {s.split_s:g} s (window {s.window_s:g} s)", "counts": s.counts,
                               "metrics": s.metrics} for s in result.splits])
        save_figure(fig, out / "validate.png")
        click.echo(f"wrote {out / 'validate.json'} and tables, figure")

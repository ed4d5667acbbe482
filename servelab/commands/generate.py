"""``servelab generate``: a workload from a client pool (per-client composition or the naive baseline).

A thin layer over :func:`servelab.generator.generate.generate`,
:func:`servelab.generator.naive.naive_generate` and :func:`servelab.generator.exports.export_workload`.
"""
from __future__ import annotations

import json
import time
import warnings

import click

__all__ = ["generate"]

_FORMATS = ("parquet", "csv", "burstgpt", "mooncake", "jsonl", "store")


def _rate_option(rate: str | None, rate_file: str | None):
    from servelab.generator.generate import read_rate_file, resolve_rate

    if (rate is None) == (rate_file is None):
        raise click.UsageError("give exactly one of --rate R (req/s, or 'pool' / 'pool*K') and --rate-file F")
    if rate_file is not None:
        return read_rate_file(rate_file)
    text = rate.strip().lower()
    if text.startswith("pool"):
        from servelab.generator.generate import pool_rate

        scale = text[4:].lstrip("*x ") or "1"
        try:
            return pool_rate(float(scale))
        except ValueError:
            raise click.BadParameter(f"--rate pool*K needs a number K; got {rate!r}") from None
    try:
        return resolve_rate(float(text))
    except ValueError:
        raise click.BadParameter(f"--rate must be a number of req/s or 'pool' / 'pool*K'; got {rate!r}") from None


@click.command("generate")
@click.argument("pool_path", metavar="POOL", type=click.Path(exists=True, file_okay=False))
@click.option("--rate", help="Total rate: req/s, or 'pool' (the pool's own total) / 'pool*K' (scaled by K).")
@click.option("--rate-file", type=click.Path(exists=True, dir_okay=False),
              help="CSV with time_s,rate points (seconds since start, req/s), interpolated linearly.")
@click.option("--duration", required=True, type=float, help="Seconds to generate.")
@click.option("--start", type=float, default=None, help="Start in the pool's time line (s); default its start.")
@click.option("--clients", type=int, default=None, help="Draw N synthetic clients by rate ranking (default all).")
@click.option("--seed", required=True, type=int, help="Seed of every random draw.")
@click.option("--naive", is_flag=True, help="The naive baseline: one Gamma process, aggregate data.")
@click.option("--cv", type=float, default=None, help="With --naive: the Gamma CV (default: the pool's aggregate CV).")
@click.option("--no-conversations", is_flag=True, help="Ignore the pool's conversation parameters.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Output file (or store folder).")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="parquet", show_default=True,
              help="Canonical parquet/csv, BurstGPT CSV, Mooncake JSONL, per-request JSONL, or a trace store.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def generate(pool_path, rate, rate_file, duration, start, clients, seed, naive, cv, no_conversations, output, fmt,
             overwrite) -> None:
    """Generate a workload from the client pool at POOL and write it to OUTPUT."""
    from pathlib import Path

    from servelab.generator.exceptions import (
        ExportFormatError,
        GenerationError,
        GenerationWarning,
    )
    from servelab.generator.pool import ClientPool

    schedule = _rate_option(rate, rate_file)
    out = Path(output)
    if out.exists() and not overwrite:
        raise click.ClickException(f"{output!r} already exists; pass --overwrite to replace it")
    if clients is not None and naive:
        raise click.UsageError("--clients has no meaning with --naive (one aggregate process)")
    if cv is not None and not naive:
        raise click.UsageError("--cv only applies to --naive")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenerationWarning)
        try:
            pool = ClientPool.load(pool_path)
            if naive:
                from servelab.generator.naive import naive_generate

                frame = naive_generate(pool, schedule, duration, start=start, cv=cv, seed=seed)
            else:
                from servelab.generator.generate import generate as gen

                frame = gen(pool, schedule, duration, start=start, clients=clients, seed=seed,
                            conversations=not no_conversations)
        except (GenerationError, ValueError) as err:
            raise click.ClickException(str(err)) from None
    t1 = time.perf_counter()
    try:
        if fmt == "store":
            from servelab.analysis.store import write_store

            write_store(frame, out, source=str(pool_path), fmt="generated", overwrite=overwrite,
                        extra={"generator": {"pool": str(pool_path), "rate": schedule.describe(),
                                             "duration_s": duration, "start": start, "clients": clients,
                                             "seed": seed, "naive": naive}})
        else:
            from servelab.generator.exports import export_workload

            export_workload(frame, out, fmt=fmt)
    except ExportFormatError as err:
        raise click.ClickException(str(err)) from None
    for w in caught:
        if issubclass(w.category, GenerationWarning):
            click.echo(f"warning: {w.message}", err=True)
    rate_achieved = frame.height / duration
    click.echo(json.dumps({
        "output": str(out), "format": fmt, "requests": frame.height,
        "clients": frame["client_id"].n_unique() if "client_id" in frame.columns else None,
        "mean_rate_rps": round(rate_achieved, 4), "target": schedule.describe(), "naive": naive,
        "generate_s": round(t1 - t0, 3), "write_s": round(time.perf_counter() - t1, 3),
    }))

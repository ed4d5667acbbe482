"""``servelab generate``: a workload from a client pool (per-client composition or the naive baseline).

A thin layer over :func:`servelab.generator.generate.generate`,
:func:`servelab.generator.naive.naive_generate` and :func:`servelab.generator.exports.export_workload`.
"""
from __future__ import annotations

import json
import time

import click

from servelab.cli import check_request_budget, max_requests_option

__all__ = ["generate"]

#: every export format of :data:`servelab.generator.exports.EXPORT_FORMATS` plus ``store`` (a test
#: keeps the two in step; spelled out here so that ``--help`` does not import the generator)
_FORMATS = ("parquet", "csv", "burstgpt", "mooncake", "jsonl", "aiperf", "vllm", "sglang", "guidellm", "bailian",
            "store")


def _positive_number(text: str) -> float | None:
    """``text`` as a finite number > 0, else None."""
    import math

    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) and x > 0 else None


def _rate_option(rate: str | None, rate_file: str | None):
    from servelab.generator.generate import constant_rate, pool_rate, read_rate_file

    if (rate is None) == (rate_file is None):
        raise click.UsageError("give exactly one of --rate R (req/s, or 'pool' / 'pool*K') and --rate-file F")
    if rate_file is not None:
        return read_rate_file(rate_file)
    text = rate.strip().lower()
    if text.startswith("pool"):
        scale = _positive_number(text[4:].lstrip("*x ") or "1")
        if scale is None:
            raise click.BadParameter(f"--rate pool*K needs a finite number K > 0; got {rate!r}")
        return pool_rate(scale)
    value = _positive_number(text)
    if value is None:
        raise click.BadParameter(f"--rate must be a number of req/s, finite and > 0, or 'pool' / 'pool*K' with K "
                                 f"a finite number > 0; got {rate!r}")
    return constant_rate(value)


def _positive_seconds(ctx, param, value):  # noqa: ARG001 - click's callback signature
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a finite number of seconds > 0; got {value!r}")
    return value


def _finite_or_none(ctx, param, value):  # noqa: ARG001 - click's callback signature
    import math

    if value is not None and math.isnan(value):
        raise click.BadParameter(f"must be a number of seconds in the pool's span; got {value!r}")
    return value


@click.command("generate")
@click.argument("pool_path", metavar="POOL", type=click.Path(exists=True, file_okay=False))
@click.option("--rate", help="Total rate: req/s, or 'pool' (the pool's own total) / 'pool*K' (scaled by K).")
@click.option("--rate-file", type=click.Path(exists=True, dir_okay=False),
              help="CSV with time_s,rate points (seconds since start, req/s), interpolated linearly.")
@click.option("--duration", required=True, type=float, callback=_positive_seconds, help="Seconds to generate.")
@click.option("--start", type=float, default=None, callback=_finite_or_none,
              help="Start in the pool's time line (s); default its start.")
@click.option("--clients", type=int, default=None, help="Draw N synthetic clients by rate ranking (default all).")
@click.option("--seed", required=True, type=click.IntRange(min=0), help="Seed of every random draw.")
@click.option("--naive", is_flag=True, help="The naive baseline: one Gamma process, aggregate data.")
@click.option("--cv", type=float, default=None, help="With --naive: the Gamma CV (default: the pool's aggregate CV).")
@click.option("--no-conversations", is_flag=True, help="Ignore the pool's conversation parameters.")
@click.option("--clock", type=float, default=None, callback=_positive_seconds,
              help="Floor every timestamp to this logging clock step (s) from the start, like a clocked trace.")
@max_requests_option
@click.option("-o", "--output", required=True, type=click.Path(), help="Output file (or store folder).")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="parquet", show_default=True,
              help="Canonical parquet/csv, BurstGPT CSV, Mooncake JSONL, per-request JSONL, the inputs of AIPerf (multi-turn), vLLM bench, SGLang bench_serving or guidellm, or a trace store.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--chunk-s", type=float, default=600.0, show_default=True, callback=_positive_seconds,
              help="Seconds of workload generated and written at a time (memory follows it; the output does not).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (it is shown only on a terminal anyway).")
@click.option("--streams", type=click.Choice(["unit", "client"]), default=None,
              help="Random streams: 'unit' (default) one per time unit over all clients; 'client' each client "
                   "from its own stream (seed from --seed and the client id): the rows --shards writes, on "
                   "one machine. Needs --rate pool.")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="Per-client streams in N client groups, written as Parquet under OUTPUT/day=YYYY-MM-DD/ "
                   "(the same set of rows as --streams client).")
@click.option("--spark-master", default=None, metavar="URL",
              help="With --shards: run the N groups as Spark tasks on this master (local[2], spark://host:7077); "
                   "needs servelab[spark].")
def generate(pool_path, rate, rate_file, duration, start, clients, seed, naive, cv, no_conversations, clock,
             max_requests, output, fmt, overwrite, chunk_s, quiet, streams, shards, spark_master) -> None:
    """Generate a workload from the client pool at POOL and write it to OUTPUT.

    Parquet, CSV and JSONL are written chunk by chunk as they are generated (--chunk-s), in
    memory bounded by a chunk; the other formats hold the whole workload. With --streams client
    or --shards N each client is drawn from its own stream (servelab.generator.sharded), so one
    machine, N shards and a Spark cluster write the same set of rows for the same seed.
    """
    from pathlib import Path

    from servelab.generator.exceptions import ExportFormatError, GenerationError, RequestBudgetError
    from servelab.generator.pool import ClientPool

    schedule = _rate_option(rate, rate_file)
    out = Path(output)
    if out.exists() and not overwrite:
        raise click.ClickException(f"{output!r} already exists; pass --overwrite to replace it")
    if clients is not None and naive:
        raise click.UsageError("--clients has no meaning with --naive (one aggregate process)")
    if cv is not None and not naive:
        raise click.UsageError("--cv only applies to --naive")
    by_client = _check_streams(streams, shards, spark_master, schedule, naive=naive, clients=clients, clock=clock,
                               fmt=fmt)
    t0 = time.perf_counter()
    if by_client:
        try:
            summary = _by_client(ClientPool.load(pool_path), duration, out, start=start, seed=seed,
                                 conversations=not no_conversations, max_requests=max_requests, fmt=fmt,
                                 shards=shards, spark_master=spark_master, pool_path=pool_path, overwrite=overwrite)
        except RequestBudgetError as err:
            check_request_budget(err.expected, max_requests=max_requests)
            raise
        except (GenerationError, ExportFormatError, ValueError) as err:
            raise click.ClickException(str(err)) from None
        click.echo(json.dumps({
            "output": str(out), "format": fmt, "requests": summary["requests"], "clients": summary["clients"],
            "mean_rate_rps": round(summary["requests"] / duration, 4), "target": schedule.describe(), "naive": False,
            "streams": "client", "shards": shards, "spark_master": spark_master,
            "elapsed_s": round(time.perf_counter() - t0, 3),
        }))
        return
    if naive:
        options = dict(start=start, cv=cv, seed=seed, clock=clock, max_requests=max_requests)
    else:
        options = dict(start=start, clients=clients, seed=seed, conversations=not no_conversations, clock=clock,
                       max_requests=max_requests)
    # every warning (GenerationWarning, a ServeGen pool's MissingDatasetWarning, ...) reaches the
    # user through the CLI-wide handler (servelab.cli)
    bar = None
    try:
        pool = ClientPool.load(pool_path)
        if fmt == "store":
            summary = _to_store(pool, schedule, duration, out, naive=naive, options=options, pool_path=pool_path,
                                overwrite=overwrite, clients=clients)
        else:
            from servelab.generator.writers import generate_to

            bar = _progress_bar(duration, quiet)
            summary = generate_to(out, pool, schedule, duration, fmt=fmt, chunk_s=chunk_s, naive=naive,
                                  progress=bar.update if bar is not None else None, **options)
    except RequestBudgetError as err:
        check_request_budget(err.expected, max_requests=max_requests)  # the CLI's message (--max-requests)
        raise
    except (GenerationError, ExportFormatError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    finally:
        if bar is not None:
            bar.close()
    click.echo(json.dumps({
        "output": str(out), "format": fmt, "requests": summary.requests, "clients": summary.clients,
        "mean_rate_rps": round(summary.requests / duration, 4), "target": schedule.describe(), "naive": naive,
        "streamed": summary.streamed, "chunks": summary.chunks,
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }))


def _check_streams(streams, shards, spark_master, schedule, *, naive, clients, clock, fmt) -> bool:
    """Whether the workload is drawn per client (``--streams client`` or ``--shards``); refuses the
    options that do not go with it."""
    if spark_master is not None and shards is None:
        raise click.UsageError("--spark-master runs the client groups of --shards N: give --shards")
    if shards is not None and streams == "unit":
        raise click.UsageError("--shards draws each client from its own stream: drop --streams unit "
                               "(or give --streams client)")
    if streams != "client" and shards is None:
        return False
    flag = "--shards" if shards is not None else "--streams client"
    if naive or clients is not None or clock is not None:
        bad = "--naive" if naive else "--clients" if clients is not None else "--clock"
        raise click.UsageError(f"{flag} draws the pool's own clients at their pool rates; got {bad}")
    if schedule.kind != "pool" or schedule.value != 1.0:
        raise click.UsageError(f"{flag} draws each client at its pool rate: give --rate pool; got "
                               f"{schedule.describe()!r}")
    if shards is not None and fmt != "parquet":
        raise click.UsageError(f"--shards writes a folder of Parquet partitioned by day; got --format {fmt}")
    return True


def _by_client(pool, duration, out, *, start, seed, conversations, max_requests, fmt, shards, spark_master,
               pool_path, overwrite) -> dict:
    """The per-client workload (:mod:`servelab.generator.sharded`): one frame written in ``fmt``, or
    ``shards`` client groups written under ``out`` (locally or as Spark tasks)."""
    import shutil

    from servelab.generator import sharded

    if overwrite and out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    options = dict(seed=seed, start=start, conversations=conversations, max_requests=max_requests)
    if shards is not None and spark_master is not None:
        info = sharded.spark_generate(pool, duration, output=out, master=spark_master, n_tasks=shards, **options)
        return {"requests": sharded.read_sharded(out).height, "clients": info["clients"]}
    if shards is not None:
        return sharded.write_sharded(pool, duration, output=out, n_shards=shards, **options)
    frame = sharded.generate_by_client(pool, duration, **options)
    if fmt == "store":
        from servelab.analysis.store import write_store

        write_store(frame, out, source=str(pool_path), fmt="generated", overwrite=overwrite,
                    extra={"generator": {"pool": str(pool_path), "rate": "pool", "duration_s": duration,
                                         "start": start, "seed": seed, "streams": "client"}})
    else:
        from servelab.generator.exports import export_workload

        export_workload(frame, out, fmt=fmt)
    return {"requests": frame.height, "clients": frame["client_id"].n_unique()}


def _to_store(pool, schedule, duration, out, *, naive, options, pool_path, overwrite, clients):
    """Generate in memory and write a trace store (the store writer takes a whole frame)."""
    from servelab.analysis.store import write_store
    from servelab.generator.writers import WriteSummary

    if naive:
        from servelab.generator.naive import naive_generate

        frame = naive_generate(pool, schedule, duration, **options)
    else:
        from servelab.generator.generate import generate as gen

        frame = gen(pool, schedule, duration, **options)
    write_store(frame, out, source=str(pool_path), fmt="generated", overwrite=overwrite,
                extra={"generator": {"pool": str(pool_path), "rate": schedule.describe(),
                                     "duration_s": duration, "start": options.get("start"), "clients": clients,
                                     "seed": options.get("seed"), "naive": naive, "clock_s": options.get("clock")}})
    return WriteSummary(path=out, fmt="store", requests=frame.height, clients=frame["client_id"].n_unique(),
                        chunks=1, streamed=False)


class _Bar:
    """A tqdm bar over seconds of workload, fed by :func:`~servelab.generator.writers.generate_to`."""

    def __init__(self, duration: float):
        import sys

        from tqdm import tqdm

        self._bar = tqdm(total=round(duration, 3), unit="s", unit_scale=True, file=sys.stderr, leave=False,
                         desc="generate", dynamic_ncols=True)
        self._requests = 0

    def update(self, requests: int, done_s: float) -> None:
        self._requests += requests
        self._bar.update(round(done_s, 3) - self._bar.n)
        self._bar.set_postfix(requests=f"{self._requests:,}", refresh=False)

    def close(self) -> None:
        self._bar.close()


def _progress_bar(duration: float, quiet: bool) -> _Bar | None:
    """A progress bar on stderr when it is a terminal and not ``--quiet``, else None."""
    import sys

    if quiet or not sys.stderr.isatty():
        return None
    return _Bar(duration)

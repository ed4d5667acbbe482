"""``servelab prefixes STORE [-o DIR] [--block-size N] [--capacities C,C,...] [--reference C] [--figures]``.

Prefix reuse of the store's prompt blocks with the prefixes area
(:data:`servelab.reports.areas.PREFIXES`): infinite-cache hit rates (blocks and tokens, overall,
per window, per client), the LRU hit-rate curve, reuse distances, where the reuse comes from,
shared vs unique tokens per request, and the findings with their bootstrap intervals. With ``-o``
every table is written as Parquet and CSV, the findings as ``findings.{parquet,csv,json}``, the
whole result as ``prefixes.json`` and (``--figures``) the area's figures as PNG. This module only
parses options, calls the library and prints.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import click

from servelab.commands.linking import link_options
from servelab.commands.output import emit

__all__ = ["prefixes", "parse_capacities"]


def parse_capacities(text: str | None) -> list[int] | None:
    """``"1,8,64"`` -> ``[1, 8, 64]`` (sorted, distinct); None stays None.

    Raises
    ------
    click.BadParameter
        If an entry is not a whole number >= 1.
    """
    if text is None:
        return None
    out = set()
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise click.BadParameter(f"capacities are whole numbers of blocks >= 1, comma separated; got {part!r}",
                                     param_hint="--capacities") from None
        if not math.isfinite(value) or value < 1 or value != int(value):
            raise click.BadParameter(f"capacities are whole numbers of blocks >= 1, comma separated; got {part!r}",
                                     param_hint="--capacities")
        out.add(int(value))
    return sorted(out)


@click.command("prefixes")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default=None,
              help="Write every table as Parquet and CSV, findings and prefixes.json into this folder.")
@click.option("--block-size", type=click.IntRange(min=1), default=512, show_default=True,
              help="Tokens per prompt block (Mooncake / Bailian hash_ids: 512).")
@click.option("--capacities", default=None, metavar="C,C,...",
              help="LRU capacities (blocks) of the hit-rate curve, comma separated (default: powers of two).")
@click.option("--reference", type=click.IntRange(min=1), default=None,
              help="Reference LRU capacity (blocks) of the capacity finding (default: 10% of the distinct blocks).")
@click.option("--window", default="1h", show_default=True, help="Window of the per-window tables.")
@click.option("--no-sources", "no_sources", is_flag=True,
              help="Skip the reuse sources (and the conversation linking they need).")
@click.option("--figures", "with_figures", is_flag=True, help="With -o, also write the figures as PNG.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--rows", type=click.IntRange(min=1), default=10, show_default=True, help="Rows printed per table.")
@click.option("--exact/--sampled", "exact", default=None,
              help="Exact analysis (every block in memory) or sampled (exact counts, LRU curve from a sample, no "
                   "sources). Default: exact up to 30 M prompt blocks, sampled above.")
@link_options
def prefixes(store_path: str, outdir: str | None, block_size: int, capacities: str | None, reference: int | None,
             window: str, no_sources: bool, with_figures: bool, seed: int, rows: int, exact: bool | None,
             linking) -> None:
    """Prefix reuse of STORE: what a KV (prefix) cache would save, and where the reuse comes from."""
    import numpy as np

    from servelab.analysis.arrivals import parse_window
    from servelab.analysis.store import open_store
    from servelab.reports.areas import PREFIXES

    try:
        window_s = parse_window(window)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--window") from None
    caps = parse_capacities(capacities)
    store = open_store(store_path)
    ev = PREFIXES.measure(store, seed=seed, block_size=block_size, window_s=window_s,
                          capacities=None if caps is None else np.asarray(caps, dtype=np.int64), reference=reference,
                          sources=not no_sources, linking=linking, exact=exact)
    a = ev.analysis
    if a is not None:
        r = a.reuse
        click.echo(f"{r.n_requests:,} requests, {r.n_blocks:,} blocks of {r.block_size} tokens "
                   f"({a.n_distinct_blocks:,} distinct): an infinite prefix cache serves {r.block_hit_rate:.1%} of "
                   f"blocks and {r.token_hit_rate:.1%} of prompt tokens ({a.infinite.low:.1%}-{a.infinite.high:.1%}); "
                   f"an LRU cache of {a.reference_capacity:,} blocks {a.at_reference.value:.1%}")
    figures = PREFIXES.figures(ev) if (with_figures and outdir) else {}
    emit(PREFIXES.detail_tables(ev), PREFIXES.findings(ev), PREFIXES.notes(ev), outdir=outdir, rows=rows,
         figures=figures)
    if outdir:
        summary = {"applicable": a is not None, "reason": ev.reason, **(a.to_dict() if a is not None else {})}
        path = Path(outdir) / "prefixes.json"
        path.write_text(json.dumps(_clean(summary), indent=2))
        click.echo(f"wrote {path}")


def _clean(value):
    """JSON-ready: NaN and infinities -> None, numpy scalars -> Python ones, recursively."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

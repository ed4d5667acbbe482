"""``servelab conversations STORE [--rule auto|conversation_id|parent_id|prefix_blocks] [-o OUTDIR]``.

Links the store's requests into conversations (explicit ids, parent links, or inferred from
prompt block hashes) with the conversations area (:data:`servelab.reports.areas.CONVERSATIONS`),
says how many were linked and by which rule, and prints the turn distribution, BurstGPT's interval
statistics per number of requests, the ITT family comparison, the upsampling experiment (ServeGen
Fig. 16) and the findings (ServeGen F10, BurstGPT §3.2). With ``-o`` every table is written as
Parquet and CSV plus ``findings.json`` (the per-request links and per-conversation tables too,
with ``--links``; the area's figures as PNG with ``--figures``: the same figures the report
draws). This module only parses options, calls the library and prints.
"""
from __future__ import annotations

import math

import click

from servelab.commands.linking import link_options
from servelab.commands.output import emit

__all__ = ["conversations"]


@click.command("conversations")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
@click.option("--rule", type=click.Choice(["auto", "conversation_id", "parent_id", "prefix_blocks"]), default="auto",
              show_default=True, help="Link information to use (auto: the first the trace carries).")
@click.option("--window", default="10m", show_default=True, help="Window of the upsampling CV comparison.")
@click.option("--delta", "deltas", type=float, multiple=True,
              help="Long-interval threshold in seconds (repeatable; default 60, 300, 1800).")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default=None,
              help="Write every table as Parquet and CSV, and findings.json, into this folder.")
@click.option("--links", "with_links", is_flag=True, help="With -o, also write the per-request links and "
              "per-conversation tables.")
@click.option("--figures", "with_figures", is_flag=True, help="With -o, also write the figures as PNG.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the fit subsamples.")
@click.option("--rows", type=click.IntRange(min=1), default=10, show_default=True, help="Rows printed per table.")
@link_options
def conversations(store_path: str, rule: str, window: str, deltas: tuple[float, ...], outdir: str | None,
                  with_links: bool, with_figures: bool, seed: int, rows: int, linking) -> None:
    """Multi-turn conversations of STORE: links, turns, inter-turn times, upsampling, findings."""
    from servelab.analysis.arrivals import parse_window
    from servelab.analysis.conversations import DEFAULT_LONG_DELTAS_S, link_conversations
    from servelab.analysis.exceptions import NotApplicableError
    from servelab.analysis.store import open_store
    from servelab.reports.areas import CONVERSATIONS

    try:
        window_s = parse_window(window)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--window") from None
    if any(not (math.isfinite(d) and d > 0) for d in deltas):
        raise click.BadParameter(f"thresholds must be finite positive seconds; got {deltas}", param_hint="--delta")
    store = open_store(store_path)
    draw = bool(with_figures and outdir)
    # Fig. 14 reads the whole trace's arrivals once more: measured only when it will be drawn
    ev = CONVERSATIONS.measure(store, seed=seed, rule=rule, window_s=window_s,
                               deltas_s=tuple(deltas) or DEFAULT_LONG_DELTAS_S, aggregate=draw,
                               linking=linking)
    tables = dict(CONVERSATIONS.detail_tables(ev))
    s = ev.summary
    if s is None:
        notes = [*ev.notes, f"conversation analysis not applicable: {ev.reason}"]
    else:
        notes = list(CONVERSATIONS.notes(ev))
        click.echo(f"rule {s.rule}: {s.n_linked:,} of {s.n_requests:,} requests ({s.linked_share:.1%}) in "
                   f"{s.n_multi_turn:,} multi-turn conversations; {s.n_with_parent:,} linked to an earlier turn; "
                   f"dangling {s.n_dangling}, on cycles {s.n_cycle}, out of order {s.n_out_of_order}, "
                   f"branching {s.n_branching}")
        if with_links and outdir:
            try:  # per-request tables: written, never kept in the evidence
                conv = link_conversations(store, rule=rule, **linking.as_kwargs())
            except NotApplicableError:  # pragma: no cover - the evidence above already linked
                conv = None
            if conv is not None:
                tables["links"] = conv.links
                tables["conversations"] = conv.conversations
    figures = CONVERSATIONS.figures(ev) if draw else {}
    emit(tables, CONVERSATIONS.findings(ev), notes, outdir=outdir, rows=rows, figures=figures)

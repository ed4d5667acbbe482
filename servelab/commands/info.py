"""``servelab info STORE``: a summary of a trace store (rows, span, logging clock, models,
services, clients, canonical columns present, rejected rows by reason).

A thin layer over :func:`servelab.analysis.store.open_store` and one SQL query; it prints and
computes nothing a notebook could not.
"""
from __future__ import annotations

import click

__all__ = ["ingest_summary", "info"]


def ingest_summary(store) -> dict:
    """The numbers ``servelab info`` prints, as a dict (for tests and notebooks)."""
    from servelab.analysis.schema import CANONICAL_COLUMNS
    from servelab.commands.ingest import clock_text

    cols = store.columns
    parts = ["count(*) AS n", "min(timestamp) AS t0", "max(timestamp) AS t1"]
    for c in ("client_id", "model", "service", "conversation_id"):
        if c in cols:
            parts.append(f"count(DISTINCT {c}) AS n_{c}")
    row = store.query(f"SELECT {', '.join(parts)} FROM requests").to_dicts()[0]
    out = {
        "requests": int(row["n"]),
        "first_s": row["t0"],
        "last_s": row["t1"],
        "span_s": (row["t1"] - row["t0"]) if row["n"] else 0.0,
        "columns_present": [c for c in CANONICAL_COLUMNS if c in cols],
        "columns_absent": [c for c in CANONICAL_COLUMNS if c not in cols],
        "rejected": dict(store.manifest["rows"].get("rejected") or {}),
        "duplicates": store.manifest["rows"].get("duplicates"),
        "unsorted": store.manifest["rows"].get("unsorted"),
        "origin": store.origin.isoformat() if store.origin is not None else None,
        "timezone": store.timezone,
        "format": store.manifest.get("format"),
        "clock_s": store.manifest.get("clock_s"),
        "clock": clock_text(store.manifest) if store.manifest.get("clock") else store.clock.describe(),
        "source_clocks_s": [m.get("clock_s") for m in store.manifest.get("sources", ()) if "clock_s" in m],
    }
    for c in ("client_id", "model", "service", "conversation_id"):
        if c in cols:
            out[f"n_{c}"] = int(row[f"n_{c}"])
    for c in ("model", "service"):
        if c in cols:
            top = store.query(
                f"SELECT {c} AS v, count(*) AS n FROM requests GROUP BY 1 ORDER BY n DESC, v LIMIT 10"
            ).to_dicts()
            out[f"{c}s"] = {str(r["v"]): int(r["n"]) for r in top}
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@click.command("info")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, file_okay=False))
def info(store_path: str) -> None:
    """Print a summary of the trace store STORE."""
    from servelab.analysis.exceptions import StoreNotFoundError, TraceFormatError
    from servelab.analysis.store import open_store

    try:
        store = open_store(store_path)
    except (StoreNotFoundError, TraceFormatError) as err:
        raise click.ClickException(str(err)) from None
    s = ingest_summary(store)
    origin = f"{s['origin']} ({s['timezone']})" if s["origin"] else "unknown (the source gives no wall-clock time)"
    lines = [
        f"store:     {store.path} (format {s['format']})",
        f"requests:  {s['requests']:,}",
        f"span:      {_duration(s['span_s'])} ({s['span_s']:,.1f} s, timestamps {s['first_s']:,.3f} .. {s['last_s']:,.3f} s)",
        f"origin:    {origin}",
        f"clock:     {s['clock']}" + ("" if store.manifest.get("clock") else " (detected now: not in the manifest)"),
    ]
    distinct = sorted({c for c in s["source_clocks_s"] if c is not None})
    if len(s["source_clocks_s"]) > 1 and len(distinct) > 1:
        lines.append("           per source: " + ", ".join(f"{c:.6g} s" for c in s["source_clocks_s"] if c is not None))
    for c, label in (("model", "models"), ("service", "services")):
        if f"{c}s" in s:
            shown = ", ".join(f"{k} {v:,}" for k, v in s[f"{c}s"].items())
            lines.append(f"{label + ':':11s}{s[f'n_{c}']} ({shown})")
        else:
            lines.append(f"{label + ':':11s}not in this trace")
    lines.append(f"clients:   {s['n_client_id']:,}" if "n_client_id" in s else "clients:   not in this trace")
    if "n_conversation_id" in s:
        lines.append(f"conversations: {s['n_conversation_id']:,}")
    lines.append(f"columns:   {', '.join(s['columns_present'])}")
    lines.append(f"absent:    {', '.join(s['columns_absent']) or 'none'}")
    rejected = s["rejected"]
    lines.append(
        "rejected:  " + (", ".join(f"{k} {v:,}" for k, v in rejected.items()) if rejected else "none")
    )
    if s["duplicates"] is not None:
        lines.append(f"duplicates: {s['duplicates']:,} (kept); unsorted rows: {s['unsorted']:,} (sorted)")
    click.echo("\n".join(lines))

"""The manifest of a new store: rows read / stored / rejected per source and reason, duplicates,
unsorted rows, span, wall-clock origin and the logging clock (per source and for the store:
``clock_s`` and the details of :meth:`servelab.analysis.clock.Clock.to_json`), in the shape :func:`~servelab.analysis.store.build_manifest`
writes. Only assembles numbers the ingest paths counted; reads nothing.
"""
from __future__ import annotations

import datetime as dt

from collections.abc import Iterable, Mapping

from servelab.analysis.clock import Clock
from servelab.analysis.exceptions import EmptyTraceError
from servelab.analysis.ingest.outcome import PathOutcome, SourceOutcome
from servelab.analysis.ingest.plan import IngestPlan
from servelab.analysis.store import build_manifest

__all__ = ["ingest_manifest", "clock_entry", "nothing_stored", "total_rejected", "wall_clock"]


def total_rejected(per_source_rejected: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Rejected rows per reason, summed over sources, sorted by reason."""
    total: dict[str, int] = {}
    for rejected in per_source_rejected:
        for reason, n in rejected.items():
            total[reason] = total.get(reason, 0) + n
    return dict(sorted(total.items()))


def nothing_stored(per_source_rejected: Iterable[Mapping[str, int]]) -> EmptyTraceError:
    """The error for an ingest whose every row was rejected, with the reasons."""
    total = total_rejected(per_source_rejected)
    return EmptyTraceError(
        f"every row was rejected ({', '.join(f'{k}: {v}' for k, v in total.items())}); "
        "nothing to store. Check the format and the column map"
    )


def clock_entry(clock: Clock | None) -> dict:
    """``clock_s`` and ``clock`` manifest entries (strict JSON; null without timestamps)."""
    if clock is None:
        return {"clock_s": None, "clock": None}
    return {"clock_s": clock.step_s, "clock": clock.to_json()}


def ingest_manifest(described, outcome: PathOutcome, plan: IngestPlan, fmt, sniffed) -> dict:
    """The manifest: per-source and total rows read / stored / rejected by reason, and the clocks."""
    sources_meta = []
    for i, s in enumerate(described):
        e = outcome.sources.get(i, SourceOutcome(stored=0))
        rejected = dict(e.rejected)
        meta = {
            "path": str(s.path), "sha256": None, "format": fmt, "kind": s.kind, "sniffed": sniffed,
            "columns": list(s.columns), "rows_read": e.stored + sum(rejected.values()),
            "rows_stored": e.stored, "rows_rejected": rejected, "unsorted": e.unsorted,
            **clock_entry(e.clock),
        }
        if s.empty:
            meta["empty"] = True
        sources_meta.append(meta)
    total_stored = outcome.stored
    rejected_total = total_rejected(e.rejected for e in outcome.sources.values())
    rows = {
        "read": total_stored + sum(rejected_total.values()),
        "stored": total_stored,
        "rejected": rejected_total,
        "duplicates": outcome.duplicates,
        "unsorted": outcome.unsorted,
    }
    columns, span, origin, zone, across = outcome.columns, outcome.span, outcome.origin, outcome.zone, outcome.across
    manifest = build_manifest(
        fmt=fmt,
        sources=sources_meta,
        columns=["request_id", "timestamp", *columns],
        rows=rows,
        span=span,
        origin=origin,
        timezone=zone,
        extra={"ingest": {
            "sniffed": sniffed,
            "origin_note": plan.time.origin_note,
            "notes": list(plan.notes),
            "duplicates": "rows equal in every stored column to another row (by 64-bit hash), kept",
            "unsorted": "rows earlier than the previous row of their source; the store is sorted"
                        + (" (sources also overlap in time)" if across else ""),
            "rejected_rows": "rejected.parquet: source, row (1-based line of the file, header = line 1; "
                             "Parquet: 1-based row; for CSV rows rejected by a value check the line is "
                             "counted from data rows, so it is off after blank lines or multi-line "
                             "records), reason, raw values as JSON",
            "clock": "logging step of the timestamps, detected from the lattice of their gaps "
                     "(servelab.analysis.clock), or given by the user (given: user; the detected one is kept "
                     "under detected); per source from its own rows (sorted, or in file order with "
                     "absolute differences when the single-pass ingest read them unsorted), for the store "
                     "from the sorted store",
        }},
    )
    manifest.update(clock_entry(outcome.clock))
    manifest["lengths"] = plan.lengths.to_json()
    if plan.value_maps:
        manifest["extra"]["ingest"]["value_maps"] = {c: dict(m) for c, m in plan.value_maps.items()}
    return manifest


def wall_clock(epoch_s: float, zone: str) -> dt.datetime:
    """The instant ``epoch_s`` (seconds since 1970 UTC) as a datetime in ``zone``."""
    from zoneinfo import ZoneInfo

    return dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc).astimezone(ZoneInfo(zone))

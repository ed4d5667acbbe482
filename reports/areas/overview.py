"""The trace-overview area: what the trace is and which analyses its columns allow.

It reads the store's manifest (source, origin, rows read / stored / rejected by reason) and runs
two small SQL aggregates (span, distinct clients, failure rate). It checks no paper finding and
draws no figure: it tells the reader what the other sections could and could not look at, and why.
It must never read the requests into Python.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import polars as pl

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding
from servelab.analysis.store import TraceStore, fetch_polars
from servelab.reports.areas.base import with_registered_figures

__all__ = ["ANALYSES", "OVERVIEW", "AnalysisNeed", "OverviewArea", "OverviewEvidence", "analyses_table",
           "engine_note", "format_duration", "rejected_table"]


@dataclass(frozen=True)
class AnalysisNeed:
    """One family of analyses and the columns (or manifest facts) it needs.

    Parameters
    ----------
    name : str
        What the analysis is, in a few words.
    findings : str
        The papers' findings and figures it checks.
    columns : tuple of str
        Canonical columns that must all be present.
    any_of : tuple of str
        Alternative columns of which at least one must be present (empty: no such condition).
    needs_origin : bool
        True when the analysis needs the wall-clock time of ``timestamp = 0`` (hour of day,
        day of week).
    """

    name: str
    findings: str
    columns: tuple[str, ...] = ("timestamp",)
    any_of: tuple[str, ...] = ()
    needs_origin: bool = False


#: what each area of the report needs; the overview says which are enabled on this trace
ANALYSES: tuple[AnalysisNeed, ...] = (
    AnalysisNeed("arrival burstiness and families", "ServeGen F1, Fig. 1; BurstGPT Fig. 6"),
    AnalysisNeed("shifting rate and CV", "ServeGen F2, Fig. 2"),
    AnalysisNeed("daily and weekly periodicity", "BurstGPT Fig. 2-5", needs_origin=True),
    AnalysisNeed("conversation vs API arrivals", "BurstGPT Fig. 3-5", columns=("timestamp", "service")),
    AnalysisNeed("input / output length distributions", "ServeGen F3-4, Fig. 3-4; BurstGPT Fig. 7-8, 10",
                 columns=("input_tokens", "output_tokens")),
    AnalysisNeed("reasoning lengths", "ServeGen F9, Fig. 13", columns=("output_tokens", "reason_tokens")),
    AnalysisNeed("multimodal inputs", "ServeGen F6-7, Fig. 7-9",
                 any_of=("image_tokens", "audio_tokens", "video_tokens")),
    AnalysisNeed("client decomposition", "ServeGen F5, F8, F11, Fig. 6, 12, 17", columns=("timestamp", "client_id")),
    AnalysisNeed("multi-turn conversations", "ServeGen F10, Fig. 14-15; BurstGPT Fig. 9",
                 any_of=("conversation_id", "parent_id", "prefix_blocks")),
    AnalysisNeed("failure rates", "BurstGPT Fig. 11", columns=("timestamp", "failed")),
    AnalysisNeed("latency", "BurstGPT (elapsed time)", columns=("timestamp", "latency_s")),
)


@dataclass(frozen=True)
class OverviewEvidence:
    """What the overview read: manifest facts and SQL aggregates (no request rows).

    Parameters
    ----------
    headline : Mapping[str, scalar]
        ``requests``, ``span_s``, ``span``, ``clients``, ``start`` (wall clock), ``source``,
        ``format``, ``rejected_rows`` and, when the trace has ``failed``, ``failure_rate``.
    rows, columns, analyses : polars.DataFrame
        Rows read / stored / rejected by reason; canonical columns present and absent; which
        analyses the columns enable, and why not.
    notes : tuple of str
    budget : Budget
    """

    headline: Mapping[str, Any]
    rows: pl.DataFrame
    columns: pl.DataFrame
    analyses: pl.DataFrame
    notes: tuple[str, ...] = ()
    budget: Budget = Budget.full()

    def __post_init__(self) -> None:
        object.__setattr__(self, "headline", MappingProxyType(dict(self.headline)))
        object.__setattr__(self, "notes", tuple(self.notes))


@with_registered_figures
class OverviewArea:
    """The trace overview: what the trace is and which analyses its columns allow. No findings,
    no figures."""

    id = "overview"
    title = "Trace overview"

    #: the aggregates can run on ``--engine spark`` (:mod:`servelab.analysis.engines`)
    runs_on_engine = True

    def measure(self, source: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0, engine: str = "duckdb",
                spark_master: str | None = None) -> OverviewEvidence:
        """Manifest facts and two SQL aggregates of ``source``.

        ``budget`` and ``seed`` are accepted for the common signature; the overview reads
        aggregates only, so it neither subsamples nor draws. ``engine`` (``"duckdb"`` or
        ``"spark"``, with ``spark_master``) is where the aggregates run.
        """
        store = source
        manifest = store.manifest
        stats = _aggregates(store, engine=engine, spark_master=spark_master)
        rows = manifest.get("rows") or {}
        rejected = dict(rows.get("rejected") or {})
        n_rejected = int(sum(int(v) for v in rejected.values()))
        origin = store.origin
        span_s = stats["span_s"]
        sources = [s.get("path", "?") for s in manifest.get("sources", [])]

        headline: dict[str, object] = {
            "requests": int(stats["requests"]),
            "span_s": span_s,
            "span": format_duration(span_s),
            "clients": stats["clients"] if store.has("client_id") else "n/a (no client_id column)",
            "start": (_format_wall_clock(origin, stats["first"]) if origin is not None
                      else "unknown (no wall-clock origin)"),
            "source": ", ".join(_short_path(p) for p in sources) or "?",
            "format": str(manifest.get("format", "?")),
            "rejected_rows": n_rejected,
        }
        if "failure_rate" in stats:
            headline["failure_rate"] = stats["failure_rate"]

        notes = []
        if origin is None:
            notes.append("The trace has no wall-clock origin: hour-of-day and day-of-week analyses are not applicable.")
        if rows.get("duplicates"):
            notes.append(f"{rows['duplicates']:,} exact duplicate rows were kept at ingest.")
        if rows.get("unsorted"):
            notes.append(f"{rows['unsorted']:,} rows arrived out of timestamp order and were sorted at ingest.")
        if not budget.is_full:
            notes.append(f"{budget.label} mode: not subsampled (SQL aggregates over every request)")
        if engine != "duckdb":
            notes.append(engine_note(engine, spark_master))
        return OverviewEvidence(headline=headline, rows=rejected_table(manifest), columns=_columns_table(store),
                                analyses=analyses_table(store), notes=tuple(notes), budget=budget)

    def findings(self, evidence: OverviewEvidence) -> tuple[Finding, ...]:
        """None: the overview checks no paper finding."""
        return ()

    def tables(self, evidence: OverviewEvidence) -> dict[str, pl.DataFrame]:
        """``rows``, ``columns`` and ``analyses``."""
        return {"rows": evidence.rows, "columns": evidence.columns, "analyses": evidence.analyses}

    def detail_tables(self, evidence: OverviewEvidence) -> dict[str, pl.DataFrame]:
        """The same three tables."""
        return self.tables(evidence)

    def headline(self, evidence: OverviewEvidence) -> Mapping[str, Any]:
        """The trace's size, span, clients, start, source, format, rejected rows, failure rate."""
        return evidence.headline

    def notes(self, evidence: OverviewEvidence) -> tuple[str, ...]:
        return evidence.notes


#: the overview area
OVERVIEW = OverviewArea()


def format_duration(seconds: float | None) -> str:
    """``3412.5`` -> ``"56 min 52 s"``; days and hours for longer spans; ``"n/a"`` for None."""
    if seconds is None:
        return "n/a"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def rejected_table(manifest: Mapping) -> pl.DataFrame:
    """Rows read, stored, and rejected per reason, from the manifest."""
    rows = manifest.get("rows") or {}
    entries = [("read", rows.get("read")), ("stored", rows.get("stored"))]
    rejected = dict(rows.get("rejected") or {})
    if rejected:
        entries += [(f"rejected: {reason}", count) for reason, count in sorted(rejected.items())]
    else:
        entries.append(("rejected", 0))
    for key in ("duplicates", "unsorted"):
        if rows.get(key) is not None:
            entries.append((f"{key} (kept)", rows[key]))
    return pl.DataFrame(
        {"rows": [k for k, _ in entries], "count": [None if v is None else int(v) for _, v in entries]},
        schema={"rows": pl.String, "count": pl.Int64},
    )


def analyses_table(store: TraceStore) -> pl.DataFrame:
    """One row per analysis family: enabled or not on this trace, and why not."""
    names, findings, enabled, why = [], [], [], []
    for need in ANALYSES:
        missing = [c for c in need.columns if not store.has(c)]
        reasons = []
        if missing:
            reasons.append("no " + ", ".join(missing) + " column" + ("s" if len(missing) > 1 else ""))
        if need.any_of and not any(store.has(c) for c in need.any_of):
            reasons.append("none of " + ", ".join(need.any_of))
        if need.needs_origin and store.origin is None:
            reasons.append("no wall-clock origin in the manifest")
        names.append(need.name)
        findings.append(need.findings)
        enabled.append("yes" if not reasons else "no")
        why.append("; ".join(reasons))
    return pl.DataFrame({"analysis": names, "checks": findings, "enabled": enabled, "why not": why})


def _columns_table(store: TraceStore) -> pl.DataFrame:
    from servelab.analysis.schema import CANONICAL_COLUMNS

    present = [c for c in CANONICAL_COLUMNS if store.has(c)]
    absent = [c for c in CANONICAL_COLUMNS if not store.has(c)]
    return pl.DataFrame({"present": [", ".join(present)], "absent": [", ".join(absent)]})


def engine_note(engine: str, spark_master: str | None) -> str:
    """The note of a section whose SQL aggregates ran on ``engine`` (not DuckDB in this process)."""
    from servelab.analysis.engines import check_master

    where = f" (master {check_master(spark_master)})" if engine == "spark" else ""
    return f"SQL aggregates ran on engine {engine}{where}; everything else in this section ran locally."


def _aggregates(store: TraceStore, *, engine: str = "duckdb", spark_master: str | None = None) -> dict:
    parts = ["count(*) AS requests", "min(timestamp) AS first", "max(timestamp) AS last"]
    if store.has("client_id"):
        parts.append("count(DISTINCT client_id) AS clients")
    if store.has("failed"):
        parts.append("avg(CASE WHEN failed THEN 1.0 ELSE 0.0 END) AS failure_rate")
    if engine != "duckdb":
        from servelab.analysis.aggregates import aggregate_source

        with aggregate_source(store, engine=engine, spark_master=spark_master) as src:
            row = src.engine.frame(f"SELECT {', '.join(parts)} FROM {src.source}").row(0, named=True)
    else:
        with contextlib.closing(store.connect()) as con:
            row = fetch_polars(con, f"SELECT {', '.join(parts)} FROM requests").row(0, named=True)
    out = dict(row)
    out["span_s"] = None if row["first"] is None else float(row["last"] - row["first"])
    return out


def _format_wall_clock(origin: dt.datetime, first: float | None) -> str:
    when = origin + dt.timedelta(seconds=float(first or 0.0))
    return when.isoformat(sep=" ", timespec="seconds")


def _short_path(path: str) -> str:
    parts = str(path).replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else parts[0]

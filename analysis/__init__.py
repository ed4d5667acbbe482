"""Ingest raw request logs into a trace store and characterize them with SQL.

Everything a notebook needs is importable from here, e.g.
``from servelab.analysis import open_store, window_stats, decompose_clients``:

- infrastructure: :func:`ingest`, :class:`TraceStore` / :func:`open_store` / :func:`write_store`,
  in-memory traces (:func:`as_source` / :func:`frame_source`: a polars or Arrow frame every
  analysis reads like a store),
  the canonical schema (:data:`CANONICAL_COLUMNS`, :data:`SCHEMA_VERSION`), :class:`Finding`, and
  the typed errors;
- arrivals (:mod:`~servelab.analysis.arrivals`): gaps, rate and CV per window, shifts;
- bursts and failures (:mod:`~servelab.analysis.bursts`, :mod:`~servelab.analysis.failures`);
- periodicity (:mod:`~servelab.analysis.periodicity`): binned load, hour-of-day and day-of-week
  profiles, seasonal strength (the function ``periodicity`` itself shares its module's name:
  import it from :mod:`servelab.analysis.periodicity`);
- lengths, reasoning and multimodal tokens (:mod:`~servelab.analysis.lengths`,
  :mod:`~servelab.analysis.reasoning`, :mod:`~servelab.analysis.multimodal`);
- clients (:mod:`~servelab.analysis.clients`) and conversations
  (:mod:`~servelab.analysis.conversations`, :mod:`~servelab.analysis.upsampling`);
- fidelity of a generated workload against a reference (:mod:`~servelab.analysis.fidelity`;
  its ``window_stats`` is a different definition from the arrivals one exported here, and its
  ``fidelity`` function shares the module's name: import both from the module).

The analyses are loaded on first use (PEP 562 ``__getattr__``), so ``import servelab.analysis``
costs what the infrastructure costs; ``__all__`` lists every exported name.

Analysis never imports :mod:`servelab.fitting`, :mod:`servelab.generator`,
:mod:`servelab.figures`, :mod:`servelab.reports`, the CLI or matplotlib (tests/test_layers.py): it
reads the store through DuckDB and returns polars DataFrames and frozen records.
"""
from __future__ import annotations

import importlib
from typing import Any

from servelab.analysis.exceptions import (
    ColumnMapError,
    EmptyTraceError,
    MissingColumnError,
    NotApplicableError,
    StoreExistsError,
    StoreNotFoundError,
    TraceFormatError,
)
from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding, FindingList, Verdict, findings_table, not_applicable
from servelab.analysis.schema import CANONICAL_COLUMNS, SCHEMA_VERSION
from servelab.analysis.store import FrameSource, TraceStore, as_source, frame_source, open_store, write_store
from servelab.analysis.ingest import StoreLockedError, StoreTargetError, ingest

_INFRASTRUCTURE = [
    "CANONICAL_COLUMNS",
    "SCHEMA_VERSION",
    "TraceStore",
    "FrameSource",
    "as_source",
    "frame_source",
    "open_store",
    "write_store",
    "ingest",
    "Budget",
    "Finding",
    "FindingList",
    "Verdict",
    "findings_table",
    "not_applicable",
    "TraceFormatError",
    "MissingColumnError",
    "EmptyTraceError",
    "ColumnMapError",
    "StoreExistsError",
    "StoreTargetError",
    "StoreLockedError",
    "StoreNotFoundError",
    "NotApplicableError",
]

#: module (under servelab.analysis) -> the analyses it exports here, loaded on first access
_ANALYSES: dict[str, tuple[str, ...]] = {
    "arrivals": ("ArrivalFrame", "arrival_frame", "inter_arrival_gaps", "gap_array", "gap_summary",
                 "window_stats", "shift_summary", "parse_window"),
    "bursts": ("burst_counts", "burst_ratio_histogram", "poisson_burst_share"),
    "failures": ("failure_rates", "failure_rate_over_time", "failure_rate_spread", "wilson_interval", "Interval"),
    "periodicity": ("PeriodicityResult", "TraceClock", "trace_clock", "binned_load", "hourly_counts",
                    "daily_counts", "hour_of_day_profile", "day_of_week_profile", "weekday_weekend",
                    "seasonal_strength", "null_strength"),
    "lengths": ("Period", "LengthShift", "length_counts", "length_quantiles", "length_pmf", "length_sample",
                "io_bins", "io_correlation", "pair_correlation", "response_histograms", "hourly_lengths",
                "length_shifts"),
    "reasoning": ("reasoning_counts", "reason_summary", "reason_answer_correlation", "reason_ratio_pmf",
                  "reason_ratios", "client_reason_ratios"),
    "multimodal": ("modalities", "tokens_per_item", "items_per_request", "MultimodalShare", "multimodal_share",
                   "text_multimodal_correlation", "modality_load", "LoadIndependence", "load_independence", "per_item_shift"),
    "clients": ("ClientDecomposition", "decompose_clients", "client_ranking", "client_summary",
                "client_window_stats", "aggregate_window_stats", "client_stability", "stability_overview",
                "mix_attribution", "rate_variance_shares", "top_clients_for_share"),
    "conversations": ("Conversations", "LinkSummary", "LinkOptions", "link_conversations", "available_link_rules",
                      "ParentLinks", "links_from_parents", "infer_parents_from_blocks", "conversation_table",
                      "turn_distribution", "itt_values", "interval_stats_by_turns"),
    "upsampling": ("UpsamplingResult", "upsample_multiturn", "upsampling_burstiness", "window_cv"),
    "fidelity": ("FidelityResult", "compare", "energy_distance", "load_trace"),
    "clock": ("Clock", "detect_clock", "store_clock"),
    "shared_prefixes": ("CommonPrefixRule", "SharedPrefixes", "find_shared_prefixes"),
    "prefix_reuse": ("PrefixReuse", "reuse_from_blocks", "lru_hit_curve", "stack_distances"),
    "prefix_analysis": ("PrefixAnalysis", "analyse_prefixes"),
    "window_rates": ("CoveredSpan", "covered_span", "exposure", "window_rate", "window_cv", "window_index", "full_enough"),
}

_LAZY = {name: module for module, names in _ANALYSES.items() for name in names}

__all__ = [*_INFRASTRUCTURE, *_LAZY]


def __getattr__(name: str) -> Any:
    """Load an exported analysis on first access (keeps ``import servelab.analysis`` light)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

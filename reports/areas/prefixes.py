"""The prefixes area: how prompts share KV-cache blocks and what a prefix cache would save (issue 15).

:meth:`PrefixesArea.measure` runs :func:`servelab.reports.findings.prefixes.measure_prefixes` once
(:func:`servelab.analysis.prefix_analysis.analyse_prefixes`: infinite-cache and LRU hit rates,
reuse distances, reuse sources, shared vs unique tokens, savings with bootstrap intervals); the
other methods arrange its small tables, findings and figures. A trace without ``prefix_blocks``
gives not-applicable findings that say why; nothing here raises for missing columns.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding
from servelab.analysis.prefix_reuse import DEFAULT_BLOCK_SIZE
from servelab.analysis.store import TraceStore
from servelab.reports.findings.prefixes import PrefixEvidence, measure_prefixes, prefix_findings
from servelab.reports.areas.base import with_registered_figures

__all__ = ["PREFIXES", "PrefixesArea", "summary_table"]


def summary_table(evidence: PrefixEvidence) -> pl.DataFrame:
    """One row: sizes, infinite-cache hit rates, the reference capacity's saving and their intervals."""
    a = evidence.analysis
    if a is None:
        return pl.DataFrame()
    r = a.reuse
    return pl.DataFrame([{
        "block_size": r.block_size, "requests": r.n_requests, "blocks": r.n_blocks, "tokens": r.n_tokens,
        "distinct_blocks": a.n_distinct_blocks, "block_hit_rate": r.block_hit_rate, "token_hit_rate": r.token_hit_rate,
        "token_hit_low": a.infinite.low, "token_hit_high": a.infinite.high,
        "reference_capacity_blocks": a.reference_capacity, "reference_token_hit_rate": a.at_reference.value,
        "reference_low": a.at_reference.low, "reference_high": a.at_reference.high,
        "kept_share": a.kept.value, "kept_low": a.kept.low, "kept_high": a.kept.high,
        "shared_token_share": a.sharing.shared_share, "interval_clusters": a.infinite.clusters,
        "n_clusters": a.infinite.n_clusters}])


@with_registered_figures
class PrefixesArea:
    """Prefix reuse: hit rates, LRU capacity curve, reuse distances and sources (module docstring)."""

    id = "prefixes"
    title = "Prefix reuse: what a KV (prefix) cache would save"

    def measure(self, source: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0,
                block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                capacities: np.ndarray | None = None, reference: int | None = None, sources: bool = True,
                linking=None, exact: bool | None = None) -> PrefixEvidence:
        """Measure prefix reuse of ``source`` once.

        Parameters
        ----------
        source : TraceStore
        budget : Budget
            ``n_boot`` bootstrap resamples of the intervals.
        seed : int
            Seed of the bootstrap.
        block_size : int
            Tokens per block (512 in Mooncake and Bailian traces).
        window_s : float
            Window of the per-window tables and of the sources-over-time figure.
        capacities : numpy.ndarray of int, optional
            LRU capacities of the curve (default: powers of two).
        reference : int, optional
            Reference LRU capacity (default: 10% of the distinct blocks).
        sources : bool
            Classify hits by source (links the conversations).
        linking : LinkOptions, optional
            Conversation linking and the common-prefix rule.
        exact : bool, optional
            Exact or sampled analysis (None: by the budget's ``prefix_exact_max_blocks``).
        """
        return measure_prefixes(source, budget=budget, seed=seed, block_size=block_size, window_s=window_s,
                                capacities=capacities, reference=reference, sources=sources, linking=linking,
                                exact=exact)

    def findings(self, evidence: PrefixEvidence) -> tuple[Finding, ...]:
        """``prefixes.reuse`` and ``prefixes.capacity``."""
        return tuple(prefix_findings(evidence))

    def tables(self, evidence: PrefixEvidence) -> dict[str, pl.DataFrame]:
        """Summary, LRU curve, reuse sources, shared-token quantiles, reuse distances."""
        a = evidence.analysis
        if a is None:
            return {}
        tables = {"summary": summary_table(evidence), "lru_curve": a.reuse.lru}
        if a.sources is not None:
            tables["reuse_sources"] = a.sources.table
        tables["shared_tokens"] = a.sharing.quantiles
        tables["reuse_distances"] = a.reuse.reuse_distances
        return tables

    def detail_tables(self, evidence: PrefixEvidence) -> dict[str, pl.DataFrame]:
        """Every table: the report's, plus per window, per client, sources per window and the
        shared-share histogram."""
        a = evidence.analysis
        if a is None:
            return {}
        tables = self.tables(evidence)
        tables["by_window"] = a.reuse.by_window
        if a.reuse.by_client is not None:
            tables["by_client"] = a.reuse.by_client
        if a.sources is not None:
            tables["sources_by_window"] = a.sources.by_window
        tables["shared_share_histogram"] = a.sharing.histogram
        return tables

    def headline(self, evidence: PrefixEvidence) -> dict[str, Any]:
        """Infinite-cache token hit rate and the reference cache's saving."""
        a = evidence.analysis
        if a is None:
            return {}
        return {"prefix cache: infinite-cache token hit rate": a.reuse.token_hit_rate,
                f"prefix cache: token hit rate of an LRU cache of {a.reference_capacity:,} blocks": a.at_reference.value}

    def notes(self, evidence: PrefixEvidence) -> tuple[str, ...]:
        """What was measured and how, or why nothing was."""
        a = evidence.analysis
        if a is None:
            return (f"prefix reuse not measured: {evidence.reason}",)
        notes = [*evidence.notes, *a.notes,
                 f"blocks of {a.reuse.block_size} tokens (a request's last block holds the rest of its prompt when "
                 "input_tokens is known); LRU stack distances with each request's blocks accessed last to first"]
        if a.sources is not None:
            notes.append(f"reuse sources: system = within a common prefix held by 2+ clients (or clients unknown), "
                         f"template = within a common prefix of one client, conversation = held by an earlier turn, "
                         f"other = the rest; common prefixes: {a.sources.rule}")
        else:
            notes.append("reuse sources not measured ('prefixes.sources' not drawn)")
        notes.append("offline optimum (Belady) not computed: the infinite cache is the upper bound shown")
        return tuple(notes)


#: the prefixes area
PREFIXES = PrefixesArea()

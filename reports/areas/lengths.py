"""The request-data area: lengths, their fits and shifts, reasoning and multimodal inputs
(ServeGen F3, F4, F6, F7, F9, F11; BurstGPT §3.3).

:meth:`LengthsArea.measure` runs :func:`~servelab.reports.findings.lengths.measure_lengths`,
:func:`~servelab.reports.findings.reasoning.measure_reasoning` and
:func:`~servelab.reports.findings.multimodal.measure_multimodal` once each (plus the response
histograms of BurstGPT Fig. 10) and keeps them in one :class:`RequestDataEvidence`; the other
methods arrange it. A trace without lengths, reasoning or modality columns gets not-applicable
findings with the reason; nothing here raises for that.

When a budget caps ``max_requests`` (quick mode: 10^6) and the trace has more requests, the area
is measured on a sample of about that many requests, each kept by a seeded hash of its
``request_id`` (:func:`servelab.reports.sampling.hash_sample_condition`): its statistics are
per-request distributions, means, correlations and fits, which such a sample estimates without
bias; counts are then the sample's, and the notes say so.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from servelab.analysis.budget import Budget
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding
from servelab.analysis.lengths import response_histograms
from servelab.analysis.store import TraceStore, fetch_polars
from servelab.reports.areas.base import count_text, with_registered_figures
from servelab.reports.findings.lengths import LengthEvidence, family_headline, length_findings, measure_lengths
from servelab.reports.findings.multimodal import MultimodalEvidence, measure_multimodal, multimodal_findings
from servelab.reports.findings.reasoning import ReasoningEvidence, measure_reasoning, reasoning_findings

__all__ = ["LENGTHS", "LengthsArea", "RequestDataEvidence"]

_REPORT_LENGTH_TABLES = ("counts", "quantiles", "input_fits", "output_fits", "io_correlation", "period_means")


@dataclass(frozen=True)
class RequestDataEvidence:
    """The request-data evidence of one trace (small tables and results, no request rows).

    Parameters
    ----------
    lengths : LengthEvidence
    reasoning : ReasoningEvidence
    multimodal : MultimodalEvidence
    response_histograms : polars.DataFrame or None
        BurstGPT Fig. 10's histograms (per model when the trace has several); None with
        ``response_histograms_reason`` saying why.
    response_histograms_reason : str
    sample_note : str or None
        How the trace was subsampled under the budget (None: every request).
    budget : Budget
    length_unit : str
        What the length columns count, from the store's manifest
        (:func:`servelab.analysis.ingest.length_unit`): ``"tokens"``, ``"characters"`` or
        ``"tokens (from characters / F)"``.
    """

    lengths: LengthEvidence
    reasoning: ReasoningEvidence
    multimodal: MultimodalEvidence
    response_histograms: pl.DataFrame | None = None
    response_histograms_reason: str = ""
    sample_note: str | None = None
    budget: Budget = field(default_factory=Budget.full)
    length_unit: str = "tokens"


@with_registered_figures
class LengthsArea:
    """Request data: lengths, reasoning and multimodal inputs (see the module docstring)."""

    id = "lengths"
    title = "Request data: lengths, reasoning and multimodal inputs"

    def measure(self, source: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0,
                by: str | None = None) -> RequestDataEvidence:
        """Lengths, fits, shifts, reasoning and multimodal analyses of ``source``.

        Parameters
        ----------
        source : TraceStore
        budget : Budget
            Length fits on at most ``max_fit_n`` values, bimodality on ``max_bimodality_n``; above
            ``max_requests`` requests a seeded hash sample (see the module docstring).
        seed : int
            Seed of every subsample.
        by : {None, "model", "service", "client", "period"}
            Extra grouping of the quantile and correlation tables (``servelab lengths --by``).
        """
        store = source
        if budget.max_requests is not None and store.n_requests > budget.max_requests:
            from servelab.reports.sampling import hash_sample_condition, temporary_subset

            fraction = budget.max_requests / store.n_requests
            with temporary_subset(store, hash_sample_condition("request_id", fraction, seed),
                                  description=f"{budget.label} lengths sample, {fraction:.2%} of requests, "
                                              f"seed {seed}") as sub:
                note = (f"{budget.label} mode: measured on {sub.n_requests:,} of {store.n_requests:,} requests, each "
                        f"kept with probability {fraction:.2%} by a seeded hash of its request id (seed {seed}); "
                        "distributions, means, correlations and fits are estimated from that sample, counts are "
                        "the sample's")
                evidence = _measure(sub, budget=budget, seed=seed, by=by, sample_note=note)
        else:
            evidence = _measure(store, budget=budget, seed=seed, by=by, sample_note=None)
        from servelab.analysis.ingest.units import length_unit

        return replace(evidence, length_unit=length_unit(store.manifest).label)

    def findings(self, evidence: RequestDataEvidence) -> tuple[Finding, ...]:
        """Length (ServeGen F3, F4; BurstGPT), reasoning (F9, F11) and multimodal (F6, F7) findings."""
        return (*length_findings(evidence.lengths), *reasoning_findings(evidence.reasoning),
                *multimodal_findings(evidence.multimodal))

    def tables(self, evidence: RequestDataEvidence) -> dict[str, pl.DataFrame]:
        """Counts, quantiles, fits, correlation, period means; reasoning and multimodal summaries."""
        t, r, m = evidence.lengths.tables, evidence.reasoning.tables, evidence.multimodal.tables
        tables = {name: t[name] for name in _REPORT_LENGTH_TABLES if name in t}
        for src, dst in (("summary", "reasoning_summary"), ("reason_answer_correlation", "reason_answer_correlation"),
                         ("clients", "reasoning_clients")):
            if src in r:
                tables[dst] = r[src]
        for name in ("tokens_per_item", "text_mm_correlation", "per_item_shift"):
            if name in m:
                tables[name] = m[name]
        return tables

    def detail_tables(self, evidence: RequestDataEvidence) -> dict[str, pl.DataFrame]:
        """Every length table, and the reasoning and multimodal ones prefixed ``reasoning_`` /
        ``multimodal_``."""
        return {**evidence.lengths.tables,
                **{f"reasoning_{k}": v for k, v in evidence.reasoning.tables.items()},
                **{f"multimodal_{k}": v for k, v in evidence.multimodal.tables.items()}}

    def headline(self, evidence: RequestDataEvidence) -> dict[str, Any]:
        """Best length families, input/output Spearman, shifts across periods, bimodal reason ratio."""
        ev, t = evidence.lengths, evidence.lengths.tables
        headline = {} if evidence.length_unit == "tokens" else {"length unit": evidence.length_unit}
        for key in ("input", "output"):
            text = family_headline(ev, key)
            if text is not None:
                headline[f"best {key}-length family"] = text
        if "io_correlation" in t and t["io_correlation"].height:
            headline["input/output Spearman"] = t["io_correlation"]["spearman"][0]
        if ev.shift is not None and ev.shift.table.height >= 2:
            headline["input mean max/min across periods"] = ev.shift.input_ratio
            headline["output mean max/min across periods"] = ev.shift.output_ratio
        if evidence.reasoning.ratio_bimodality is not None:
            headline["reason ratio bimodal"] = evidence.reasoning.ratio_bimodality.decision.value
        return headline

    def notes(self, evidence: RequestDataEvidence) -> tuple[str, ...]:
        """The sample, the measurement's notes, figures not drawn and why, analyses not
        applicable and why, the budget."""
        ev, rev, mev = evidence.lengths, evidence.reasoning, evidence.multimodal
        notes = ([evidence.sample_note] if evidence.sample_note else []) + list(ev.notes) + list(rev.notes)
        if evidence.length_unit != "tokens":
            notes.insert(0, f"lengths are in {evidence.length_unit} (the store's manifest): every length table, fit "
                            "and figure of this area counts that unit")
        if evidence.response_histograms is None:
            notes.append(f"burstgpt.fig10 not drawn: {evidence.response_histograms_reason}")
        mods = _modalities(evidence)
        if len(mods) < 2:
            notes.append("servegen.fig8 (omni-modal load) not drawn: it needs tokens of two or more modalities "
                         "(image, audio, video); " + (f"this trace carries only {mods[0]} tokens" if mods else
                                                      "this trace has no modality tokens"))
        notes += [f"not applicable: {k}: {v}" for k, v in {**ev.skipped, **rev.skipped, **mev.skipped}.items()]
        b = evidence.budget
        if not b.is_full:
            notes.append(f"{b.label} mode: length fits on at most {count_text(b.max_fit_n)} values, bimodality on "
                         f"{count_text(b.max_bimodality_n)}")
        return tuple(notes)


class _OneConnection:
    """A trace store whose queries share one DuckDB connection (each query a cursor of it).

    The section's analyses open a connection per query (about ten; ~30 ms of CPU and a cold
    Parquet metadata cache each); this gives them cursors of one connection instead, whose
    ``requests`` view they all see. Everything else is the store's. Only a :class:`TraceStore`
    (its view is in the catalog, which cursors share; an in-memory source registers its table
    on each connection, which a cursor does not see).
    """

    def __init__(self, store: TraceStore, con) -> None:
        self._store, self._con = store, con

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def connect(self, *, threads: int | None = None, memory_limit: str | None = None):
        """A cursor of the shared connection (a new connection when given its own settings)."""
        if threads is not None or memory_limit is not None:
            return self._store.connect(threads=threads, memory_limit=memory_limit)
        return self._con.cursor()

    def query(self, sql: str, parameters: list | dict | None = None) -> pl.DataFrame:
        """:meth:`TraceStore.query` on a cursor of the shared connection."""
        with contextlib.closing(self.connect()) as con:
            return fetch_polars(con, sql, parameters)


@contextlib.contextmanager
def _one_connection(store: TraceStore) -> Iterator[TraceStore]:
    if type(store) is not TraceStore:
        yield store
        return
    with contextlib.closing(store.connect()) as con:
        yield _OneConnection(store, con)


def _measure(store: TraceStore, *, budget: Budget, seed: int, by: str | None,
             sample_note: str | None) -> RequestDataEvidence:
    with _one_connection(store) as shared:
        return _measure_on(shared, budget=budget, seed=seed, by=by, sample_note=sample_note)


def _measure_on(store: TraceStore, *, budget: Budget, seed: int, by: str | None,
                sample_note: str | None) -> RequestDataEvidence:
    hist, why = None, ""
    try:  # BurstGPT Fig. 10: per model when the trace has several
        hist = response_histograms(store, by="model" if store.has("model") else None)
    except NotApplicableError as err:
        why = err.reason
    return RequestDataEvidence(
        lengths=measure_lengths(store, by=by, seed=seed, budget=budget),
        reasoning=measure_reasoning(store, seed=seed, budget=budget),
        multimodal=measure_multimodal(store, seed=seed),
        response_histograms=hist, response_histograms_reason=why, sample_note=sample_note, budget=budget)


def _modalities(evidence: RequestDataEvidence) -> list[str]:
    from servelab.figures.lengths import evidence_modalities

    return evidence_modalities(evidence)


#: the request-data area (``servelab lengths``)
LENGTHS = LengthsArea()

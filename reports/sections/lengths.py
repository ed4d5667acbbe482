"""The report's request-data section: lengths, their fits and shifts, reasoning and multimodal inputs.

:func:`build_section` runs :func:`~servelab.reports.findings.lengths.measure_lengths`,
:func:`~servelab.reports.findings.reasoning.measure_reasoning` and
:func:`~servelab.reports.findings.multimodal.measure_multimodal` once each, turns the evidence into
findings (ServeGen F3, F4, F6, F7, F9, F11; BurstGPT §3.3), draws the figures whose tables exist
and returns a :class:`~servelab.reports.section.Section`. A trace without lengths, reasoning or
modality columns gets not-applicable findings with the reason; this never raises for that.
"""
from __future__ import annotations

import polars as pl

from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.lengths import response_histograms
from servelab.analysis.store import TraceStore
from servelab.figures import lengths as F
from servelab.reports.findings.lengths import length_findings, measure_lengths
from servelab.reports.findings.multimodal import measure_multimodal, multimodal_findings
from servelab.reports.findings.reasoning import measure_reasoning, reasoning_findings
from servelab.reports.section import Section

__all__ = ["QUICK_MAX_REQUESTS", "build_section"]

#: in quick mode a trace with more requests is measured on a seeded hash sample of about this many
QUICK_MAX_REQUESTS = 1_000_000



def build_section(store: TraceStore, *, quick: bool = False, seed: int = 0) -> Section:
    """The request-data section of ``store``.

    Parameters
    ----------
    store : TraceStore
    quick : bool
        Fit lengths on at most 10^5 values (instead of 10^6) and test bimodality on 2*10^4.
    seed : int
        Seed of every subsample.

    Notes
    -----
    In quick mode a trace of more than :data:`QUICK_MAX_REQUESTS` requests is measured on a
    sample of about that many requests, each kept by a seeded hash of its ``request_id``
    (:func:`servelab.reports.sampling.hash_sample_condition`): the statistics of this section are
    per-request distributions, means, correlations and fits, which such a sample estimates
    without bias; counts are then the sample's. The section's notes say so.
    """
    if quick and store.n_requests > QUICK_MAX_REQUESTS:
        from servelab.reports.sampling import hash_sample_condition, temporary_subset

        fraction = QUICK_MAX_REQUESTS / store.n_requests
        with temporary_subset(store, hash_sample_condition("request_id", fraction, seed),
                              description=f"quick lengths sample, {fraction:.2%} of requests, seed {seed}") as sub:
            note = (f"quick mode: measured on {sub.n_requests:,} of {store.n_requests:,} requests, each kept with "
                    f"probability {fraction:.2%} by a seeded hash of its request id (seed {seed}); distributions, "
                    "means, correlations and fits are estimated from that sample, counts are the sample's")
            return _build(sub, quick=True, seed=seed, first_note=note)
    return _build(store, quick=quick, seed=seed, first_note=None)


def _build(store: TraceStore, *, quick: bool, seed: int, first_note: str | None) -> Section:
    ev = measure_lengths(store, seed=seed, quick=quick)
    rev = measure_reasoning(store, seed=seed, quick=quick)
    mev = measure_multimodal(store, seed=seed)
    findings = [*length_findings(ev), *reasoning_findings(rev), *multimodal_findings(mev)]
    t = ev.tables
    figures = {}
    if "input_pmf" in t or "output_pmf" in t:
        figures["servegen.fig3"] = F.length_distributions(t.get("input_pmf"), t.get("output_pmf"),
                                                          input_curves=t.get("input_curves"),
                                                          output_curves=t.get("output_curves"))
        figures["burstgpt.fig7"] = F.burstgpt_histograms(t.get("input_pmf"), t.get("output_pmf"),
                                                         input_curves=t.get("input_curves"),
                                                         output_curves=t.get("output_curves"))
    if "hourly" in t and t["hourly"].height >= 2:
        figures["servegen.fig3cd"] = F.length_shift(t["hourly"])
    if "io_bins" in t and t["io_bins"].height:
        figures["servegen.fig4"] = F.io_relation(t["io_bins"], by_period=t.get("io_bins_by_period"))
        if "io_correlation" in t:
            figures["burstgpt.fig8"] = F.linear_relation(t["io_bins"], t["io_correlation"])
    fig_notes = []
    try:  # BurstGPT Fig. 10: per model when the trace has several
        figures["burstgpt.fig10"] = F.response_per_request_bin(
            response_histograms(store, by="model" if store.has("model") else None))
    except NotApplicableError as err:
        fig_notes.append(f"burstgpt.fig10 not drawn: {err.reason}")
    if "summary" in rev.tables and "ratio_pmf" in rev.tables:
        figures["servegen.fig13"] = F.reasoning_lengths(rev.tables["summary"], rev.tables["ratio_pmf"],
                                                        ratio_pmf_by_client=rev.tables.get("ratio_pmf_by_client"))
    if "load" in mev.tables:
        figures["servegen.fig7"] = F.multimodal_load(mev.tables["load"], mev.tables.get("items_per_request"))
    mods = F.modality_columns(mev.tables["load"]) if "load" in mev.tables else []
    if len(mods) >= 2:  # ServeGen Fig. 8: Fig. 7's analysis on an omni-modal trace
        figures["servegen.fig8"] = F.omni_load(mev.tables["load"], mev.tables.get("items_per_request"))
    else:
        fig_notes.append("servegen.fig8 (omni-modal load) not drawn: it needs tokens of two or more modalities "
                         "(image, audio, video); " + (f"this trace carries only {mods[0]} tokens" if mods else
                                                      "this trace has no modality tokens"))
    if "share_histogram" in mev.tables:
        figures["servegen.fig9"] = F.multimodal_share(mev.tables["share_histogram"])
    tables: dict[str, pl.DataFrame] = {name: t[name] for name in ("counts", "quantiles", "input_fits", "output_fits",
                                                                  "io_correlation", "period_means") if name in t}
    for src, dst in (("summary", "reasoning_summary"), ("reason_answer_correlation", "reason_answer_correlation"),
                     ("clients", "reasoning_clients")):
        if src in rev.tables:
            tables[dst] = rev.tables[src]
    for name in ("tokens_per_item", "text_mm_correlation", "per_item_shift"):
        if name in mev.tables:
            tables[name] = mev.tables[name]
    headline = {}
    if ev.input_fits is not None:
        headline["best input-length family"] = ev.input_fits.best
    if ev.output_fits is not None:
        headline["best output-length family"] = ev.output_fits.best
    if "io_correlation" in t and t["io_correlation"].height:
        headline["input/output Spearman"] = t["io_correlation"]["spearman"][0]
    if ev.shift is not None and ev.shift.table.height >= 2:
        headline["input mean max/min across periods"] = ev.shift.input_ratio
        headline["output mean max/min across periods"] = ev.shift.output_ratio
    if rev.ratio_bimodality is not None:
        headline["reason ratio bimodal"] = rev.ratio_bimodality.bimodal
    notes = ([first_note] if first_note else []) + list(ev.notes) + fig_notes
    notes += [f"not applicable: {k}: {v}" for k, v in {**ev.skipped, **rev.skipped, **mev.skipped}.items()]
    if quick:
        notes.append("quick mode: length fits on at most 10^5 values, bimodality on 2*10^4")
    return Section(id="lengths", title="Request data: lengths, reasoning and multimodal inputs", findings=findings,
                   tables=tables, figures=figures, headline=headline, notes=notes)

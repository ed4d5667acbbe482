"""The report's conversation section: ServeGen Finding 10 (Fig. 14-16) and BurstGPT's
conversation patterns (KDD'25 §3.2, Fig. 9).

It runs :func:`servelab.reports.findings.conversations.collect_conversation_evidence` once, plus
the aggregate window statistics and the inter-arrival fit of ServeGen Fig. 14, and arranges the
small tables, findings and figures. A trace without link information gives not-applicable
findings that say why; it never raises for missing columns.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from servelab.analysis.arrivals import gap_array, window_stats
from servelab.analysis.store import TraceStore
from servelab.figures.conversations import (
    burstgpt_fig9,
    servegen_fig14,
    servegen_fig15,
    servegen_fig16,
)
from servelab.fitting.compare import compare_families, density_curves
from servelab.fitting.exceptions import InsufficientDataError
from servelab.reports.findings.conversations import (
    collect_conversation_evidence,
    conversation_findings,
)
from servelab.reports.section import Section

__all__ = ["build_section", "log_histogram"]

TITLE = "Conversations: turns, inter-turn times, and what they do to burstiness"


def log_histogram(x: np.ndarray, *, bins: int = 60) -> pl.DataFrame:
    """Log-spaced density histogram (``left_s, right_s, density``) of the positive values of ``x``."""
    x = np.asarray(x, dtype=float)
    x = x[x > 0]
    if x.size < 2 or x.min() == x.max():
        return pl.DataFrame(schema={"left_s": pl.Float64, "right_s": pl.Float64, "density": pl.Float64})
    edges = np.geomspace(x.min(), x.max(), bins + 1)
    counts, _ = np.histogram(x, bins=edges)
    return pl.DataFrame({"left_s": edges[:-1], "right_s": edges[1:], "density": counts / (x.size * np.diff(edges))})


def build_section(store: TraceStore, *, quick: bool = False, seed: int = 0) -> Section:
    """Conversation section (``quick`` fits at most 20,000 gaps and ITTs instead of 200,000)."""
    fit_n = 20_000 if quick else 200_000
    ev = collect_conversation_evidence(store, seed=seed, max_fit_n=fit_n)
    findings = conversation_findings(store, evidence=ev)
    notes = list(ev.notes)
    if ev.summary is None:
        notes.append(f"conversation analysis skipped: {ev.reason}")
        return Section(id="conversations", title=TITLE, findings=findings, notes=tuple(notes))
    s = ev.summary
    tables = {"links": pl.DataFrame([{k: v for k, v in s.to_dict().items() if k != "notes"}]),
              "turns": ev.turns, "intervals_by_requests": ev.intervals}
    figures = {}
    if ev.itt_fit is not None:
        tables["itt_fits"] = ev.itt_fit.table()
    if s.n_multi_turn:
        itt_dens = None
        if ev.itt_fit is not None and ev.itt_histogram is not None and ev.itt_histogram.height:
            hi = float(ev.itt_histogram["bin_hi"].max())
            itt_dens = density_curves(ev.itt_fit, np.linspace(hi / 400, hi, 200))
        figures["servegen.fig15"] = servegen_fig15(ev.turns, ev.itt_histogram, itt_dens)
        figures["burstgpt.fig9"] = burstgpt_fig9(ev.intervals)
        windows = window_stats(store, window=600.0)
        gaps = gap_array(store)
        hist = log_histogram(gaps)
        dens = None
        try:
            comp = compare_families(gaps[gaps > 0], max_n=fit_n, seed=seed)
            tables["gap_fits"] = comp.table()
            if hist.height:
                dens = density_curves(comp, np.geomspace(hist["left_s"].min(), hist["right_s"].max(), 200))
        except (InsufficientDataError, ValueError) as err:
            notes.append(f"no inter-arrival fit for Fig. 14: {err}")
        figures["servegen.fig14"] = servegen_fig14(windows, hist, dens)
    if ev.upsampling is not None:
        u = ev.upsampling
        tables["upsampling"] = pl.DataFrame({
            "workload": ["original", "naive upsampling", "ITT upsampling"],
            "requests": [u.n_original, u.n_naive, u.n_itt],
            "median_cv": [u.median_cv_original, u.median_cv_naive, u.median_cv_itt]})
        figures["servegen.fig16"] = servegen_fig16(u.windows)
    headline = {"link rule": s.rule, "requests in multi-turn conversations": s.n_linked,
                "multi-turn conversations": s.n_multi_turn}
    return Section(id="conversations", title=TITLE, findings=findings, tables=tables, figures=figures,
                   headline=headline, notes=tuple(notes))

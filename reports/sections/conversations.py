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
from servelab.analysis.arrivals import arrival_frame, gap_array, window_stats
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

__all__ = ["QUICK_MAX_REQUESTS", "build_section", "log_histogram", "quick_span", "quick_subset"]

TITLE = "Conversations: turns, inter-turn times, and what they do to burstiness"

#: in quick mode a trace with more requests is analysed on a contiguous span of about this many
QUICK_MAX_REQUESTS = 1_000_000
_DAY_S = 86_400.0


def log_histogram(x: np.ndarray, *, bins: int = 60) -> pl.DataFrame:
    """Log-spaced density histogram (``left_s, right_s, density``) of the positive values of ``x``."""
    x = np.asarray(x, dtype=float)
    x = x[x > 0]
    if x.size < 2 or x.min() == x.max():
        return pl.DataFrame(schema={"left_s": pl.Float64, "right_s": pl.Float64, "density": pl.Float64})
    edges = np.geomspace(x.min(), x.max(), bins + 1)
    counts, _ = np.histogram(x, bins=edges)
    return pl.DataFrame({"left_s": edges[:-1], "right_s": edges[1:], "density": counts / (x.size * np.diff(edges))})


def quick_span(store: TraceStore, *, max_requests: int | None = None) -> tuple[float, float] | None:
    """A contiguous span of about ``max_requests`` requests (None: the whole trace is that small).

    The trace's first ``span * max_requests / n`` seconds, widened to one whole day when the
    trace covers at least two days (one full daily cycle) and cut to whole days above that. Quick
    mode uses it for traces linked by ``parent_id`` or ``prefix_blocks``, whose conversations are
    only known after linking every request (so they cannot be sampled by key first).
    ``max_requests`` defaults to :data:`QUICK_MAX_REQUESTS`.
    """
    max_requests = QUICK_MAX_REQUESTS if max_requests is None else max_requests
    n = store.n_requests
    if n <= max_requests:
        return None
    t0, t1 = store.query("SELECT min(timestamp) AS t0, max(timestamp) AS t1 FROM requests").row(0)
    total = float(t1 - t0)
    length = total * max_requests / n
    if total >= 2 * _DAY_S:
        length = max(_DAY_S, np.floor(length / _DAY_S) * _DAY_S)
    if not (0 < length < total):
        return None
    return float(t0), float(t0) + float(length)


def quick_subset(store: TraceStore, *, seed: int = 0,
                 max_requests: int | None = None) -> tuple[str, dict, str] | None:
    """What quick mode keeps of a big trace: ``(SQL condition, parameters, description)`` or None.

    None when the trace has at most ``max_requests`` requests or no link information. With
    ``conversation_id`` links: whole conversations (and single requests without an id) kept by
    a seeded hash of their key, a share ``max_requests / n`` of them
    (:func:`servelab.reports.sampling.hash_sample_condition`), so every kept conversation keeps
    all its turns and turn counts, ITTs and the multi-turn share are unbiased. Otherwise the
    contiguous span of :func:`quick_span`. ``max_requests`` defaults to :data:`QUICK_MAX_REQUESTS`.
    """
    from servelab.analysis.conversations import available_link_rules
    from servelab.reports.sampling import hash_bucket_sql, hash_cut

    max_requests = QUICK_MAX_REQUESTS if max_requests is None else max_requests
    n = store.n_requests
    if n <= max_requests:
        return None
    rules = available_link_rules(store)
    if not rules:
        return None
    if rules[0] == "conversation_id":
        fraction = max_requests / n
        # a conversation by its id, a request without one by its request id (no string building)
        bucket = (f"CASE WHEN conversation_id IS NULL THEN {hash_bucket_sql('request_id', seed)} "
                  f"ELSE {hash_bucket_sql('conversation_id', seed)} END")
        what = (f"a seeded hash sample (seed {seed}) of {fraction:.1%} of the conversations, each with all its turns, "
                "and of the requests without a conversation id")
        return f"({bucket}) < {hash_cut(fraction)}", {}, what
    span = quick_span(store, max_requests=max_requests)
    if span is None:
        return None
    a, b = span
    what = (f"the trace's first {_duration(b - a)} ({a:.0f}-{b:.0f} s), a contiguous span (conversations linked by "
            f"{rules[0]} cannot be sampled before linking); conversations cut at its edges count as censored")
    return "timestamp >= $a AND timestamp < $b", {"a": a, "b": b}, what


def build_section(store: TraceStore, *, quick: bool = False, seed: int = 0) -> Section:
    """Conversation section.

    ``quick``: ITTs and gaps are fitted on at most 20,000 values instead of 200,000, and a trace
    of more than :data:`QUICK_MAX_REQUESTS` requests is linked, described, fitted and upsampled on
    the subset of :func:`quick_subset` (Fig. 14's aggregate windows and gaps stay on the whole
    trace), as the section's notes say.
    """
    chosen = quick_subset(store, seed=seed) if quick else None
    if chosen is None:
        return _build(store, store, quick=quick, seed=seed, quick_note=None)
    from servelab.reports.sampling import temporary_subset

    condition, params, what = chosen
    with temporary_subset(store, condition, parameters=params, description="quick conversations: " + what) as sub:
        note = (f"quick mode: conversations are linked and described on {sub.n_requests:,} of {store.n_requests:,} "
                f"requests: {what}. Counts below are the sample's. The Fig. 16 upsampling experiment runs on the "
                "sample too: fewer arrivals per window pull its window CVs (original, naive, ITT) towards 1 compared "
                "with the full trace. Fig. 14 (aggregate rate, CV and gaps) uses the whole trace.")
        return _build(sub, store, quick=True, seed=seed, quick_note=note)


def _duration(seconds: float) -> str:
    if seconds >= _DAY_S and seconds % _DAY_S == 0:
        days = int(seconds // _DAY_S)
        return f"{days} day" + ("s" if days > 1 else "")
    return f"{seconds / 3600:.1f} h"


def _build(store: TraceStore, whole: TraceStore, *, quick: bool, seed: int, quick_note: str | None) -> Section:
    """The section from the conversations of ``store`` and the aggregate arrivals of ``whole``."""
    fit_n = 20_000 if quick else 200_000
    ev = collect_conversation_evidence(store, seed=seed, max_fit_n=fit_n)
    findings = conversation_findings(store, evidence=ev)
    notes = list(ev.notes)
    if quick_note:
        notes.insert(0, quick_note)
    if quick:
        notes.append(f"quick mode: inter-turn-time and Fig. 14 gap families fitted on a seeded subsample of at most "
                     f"{fit_n:,} values (full mode: 200,000)")
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
        frame = arrival_frame(whole)  # read once for both the windows and the gaps
        windows = window_stats(whole, window=600.0, frame=frame)
        gaps = gap_array(whole, frame=frame)
        del frame
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
    suffix = " (quick-mode sample)" if quick_note else ""
    headline = {"link rule": s.rule, "requests in multi-turn conversations" + suffix: s.n_linked,
                "multi-turn conversations" + suffix: s.n_multi_turn,
                "share of requests in multi-turn conversations" + suffix: s.linked_share}
    return Section(id="conversations", title=TITLE, findings=findings, tables=tables, figures=figures,
                   headline=headline, notes=tuple(notes))

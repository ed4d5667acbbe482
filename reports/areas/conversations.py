"""The conversations area: ServeGen Finding 10 (Fig. 14-16) and BurstGPT's conversation patterns
(KDD'25 §3.2, Fig. 9).

:meth:`ConversationsArea.measure` runs
:func:`servelab.reports.findings.conversations.measure_conversations` once, plus (``aggregate=True``)
the whole trace's window statistics and inter-arrival fit of ServeGen Fig. 14, and keeps them in the
:class:`~servelab.reports.findings.conversations.ConversationEvidence`; the other methods arrange
its small tables, findings and figures. A trace without link information gives not-applicable
findings that say why; nothing here raises for missing columns.

When the trace has more requests than the budget's ``max_conversation_requests`` (full mode:
None, every request; quick 10^6; or ``max_requests`` when smaller), the conversations are linked, described,
fitted and upsampled on the subset of :func:`quick_subset` (in full mode always its leading span,
which keeps the request rate per window; Fig. 14's aggregate windows and gaps
stay on the whole trace in full mode, on the budget's leading span above ``max_requests``), as the
notes say. A trace linked by ``conversation_id`` is linked in DuckDB SQL
(:func:`servelab.analysis.conversations_sql.link_multi_turn`): only its multi-turn requests and the
trace's arrival times come back to Python; the ``parent_id`` and ``prefix_blocks`` rules hold every
request of the subset in memory while linking. Fig. 14 works from the arrival times too (its
windows are Fig. 16's original workload's when both use the same clock), never from the arrival
frames of :func:`servelab.analysis.arrivals.arrival_frame`: the area does not share them, so the
report releases them before this section. Fig. 16's workloads, the ITT description and Fig. 14's
gap fits run in threads (the same results). Measured on the synthetic 10 M-row store
(``report --section conversations``, interleaved with 917bae7 under the bench lock, load about 4,
JSON identical but timings): 8.2 -> 6.8 s wall, 11.5 -> 8.8 CPU-s, peak 1,435 -> 1,584 MB (two
Fig. 16 workloads in memory at once). In the full 10 M report (load 11-14) the section stayed
below the peak the clients section set with the arrival frames (2,590 MB; 2,825 MB before, quiet
machine).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from servelab.analysis.clock import resolve_clock
from servelab.analysis.budget import Budget
from servelab.analysis.conversations import DEFAULT_LONG_DELTAS_S, LinkOptions
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding
from servelab.analysis.shared_prefixes import SharedPrefixes, find_shared_prefixes
from servelab.analysis.store import TraceStore
from servelab.analysis.upsampling import UpsamplingResult, window_cv
from servelab.fitting.compare import compare_families, density_curves
from servelab.fitting.exceptions import InsufficientDataError
from servelab.reports.findings.conversations import (
    ConversationEvidence,
    arrival_times,
    conversation_findings,
    measure_conversations,
)
from servelab.reports.areas.base import with_registered_figures

__all__ = ["CONVERSATIONS", "REPORT_PREFIX_ROWS", "ConversationsArea", "log_histogram", "quick_span", "quick_subset",
           "top_shared_prefixes"]

_DAY_S = 86_400.0
#: window of Fig. 14's aggregate rate and CV
_AGGREGATE_WINDOW_S = 600.0
#: rows of the common-prefix table the report shows (``servelab conversations -o`` writes it whole)
REPORT_PREFIX_ROWS = 10


def top_shared_prefixes(table: pl.DataFrame, *, rows: int = REPORT_PREFIX_ROWS) -> pl.DataFrame:
    """The ``rows`` common prefixes most requests start with (ties: shorter first, then earlier).

    ``table`` is :attr:`servelab.analysis.shared_prefixes.SharedPrefixes.table`.
    """
    return table.sort(["n_requests", "length_blocks", "first_request_id"],
                      descending=[True, False, False]).head(rows)


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
    ``max_requests`` defaults to :meth:`Budget.quick`'s.
    """
    max_requests = Budget.quick().max_requests if max_requests is None else max_requests
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


def quick_subset(store: TraceStore, *, seed: int = 0, max_requests: int | None = None,
                 span_only: bool = False) -> tuple[str, dict, str] | None:
    """What quick mode keeps of a big trace: ``(SQL condition, parameters, description)`` or None.

    None when the trace has at most ``max_requests`` requests or no link information. With
    ``conversation_id`` links: whole conversations (and single requests without an id) kept by
    a seeded hash of their key, a share ``max_requests / n`` of them
    (:func:`servelab.reports.sampling.hash_sample_condition`), so every kept conversation keeps
    all its turns and turn counts, ITTs and the multi-turn share are unbiased. Otherwise the
    contiguous span of :func:`quick_span`. ``max_requests`` defaults to :meth:`Budget.quick`'s.
    ``span_only`` takes the span whatever the links: it keeps the trace's request rate, which the
    Fig. 16 window CVs depend on (a hash sample of conversations thins every window).
    """
    from servelab.analysis.conversations import available_link_rules
    from servelab.reports.sampling import hash_bucket_sql, hash_cut

    max_requests = Budget.quick().max_requests if max_requests is None else max_requests
    n = store.n_requests
    if n <= max_requests:
        return None
    rules = available_link_rules(store)
    if not rules:
        return None
    if rules[0] == "conversation_id" and not span_only:
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
    why = ("it keeps the trace's request rate, on which the Fig. 16 window CVs depend" if span_only else
           f"conversations linked by {rules[0]} cannot be sampled before linking")
    what = (f"the trace's first {_duration(b - a)} ({a:.0f}-{b:.0f} s), a contiguous span ({why}); conversations cut "
            "at its edges count as censored")
    return "timestamp >= $a AND timestamp < $b", {"a": a, "b": b}, what


def _duration(seconds: float) -> str:
    if seconds >= _DAY_S and seconds % _DAY_S == 0:
        days = int(seconds // _DAY_S)
        return f"{days} day" + ("s" if days > 1 else "")
    return f"{seconds / 3600:.1f} h"


@with_registered_figures
class ConversationsArea:
    """Multi-turn conversations: links, turns, inter-turn times, upsampling (see the module docstring)."""

    id = "conversations"
    # no ``shares_arrival_frames``: Fig. 14 and 16 work from the arrival times alone, so the report
    # releases the arrival frames of arrivals and clients before this section (at 10 M rows the
    # section ran on top of them and made the report's peak)
    title = "Conversations: turns, inter-turn times, and what they do to burstiness"

    def measure(self, source: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0, rule: str = "auto",
                window_s: float = 600.0, deltas_s: tuple[float, ...] = DEFAULT_LONG_DELTAS_S,
                aggregate: bool = True, linking: LinkOptions | None = None) -> ConversationEvidence:
        """Link, describe, fit and upsample the conversations of ``source`` once.

        Parameters
        ----------
        source : TraceStore
        budget : Budget
            Inter-turn times and Fig. 14's gaps fitted on at most ``max_itt_fit_n`` values; above
            ``max_conversation_requests`` (or ``max_requests`` when smaller) requests the subset of
            :func:`quick_subset`.
        seed : int
            Seed of the fit subsamples and of the subset.
        rule : {"auto", "conversation_id", "parent_id", "prefix_blocks"}
            Link information to use (auto: the first the trace carries).
        window_s : float
            Window of the upsampling CV comparison.
        deltas_s : tuple of float
            Long-interval thresholds of BurstGPT Fig. 9's table.
        aggregate : bool
            Also measure ServeGen Fig. 14 on the whole trace (10-minute rate and CV, gaps and
            their family fits); only with multi-turn conversations.
        linking : LinkOptions, optional
            How links are inferred from prompt block hashes (shared-prefix, clock and latency
            checks); default :class:`~servelab.analysis.conversations.LinkOptions()`.
        """
        options = {"rule": rule, "window_s": window_s, "deltas_s": tuple(deltas_s), "aggregate": aggregate,
                   "linking": linking}
        caps = [c for c in (budget.max_conversation_requests, budget.max_requests) if c is not None]
        cap = min(caps) if caps else None
        # without max_requests: a leading span, which keeps the request rate per window that the
        # Fig. 16 CVs and F10's sign tests depend on (a hash sample thins it; on a 10 M-row
        # synthetic trace both turned F10 around, hence no bound in the full budget)
        chosen = (quick_subset(source, seed=seed, max_requests=cap, span_only=budget.max_requests is None)
                  if cap is not None else None)
        if chosen is None:
            return _measure(source, source, budget=budget, seed=seed, sample_note=None, **options)
        from servelab.reports.sampling import temporary_subset

        condition, params, what = chosen
        # a hash sample (conversation ids, quick mode) thins every window: Fig. 16 and F10 then run on
        # the leading span instead (benchmarks/bench_conversation_bound.py: on simulated bursty traces
        # the 10 % hash sample turned F10 to "holds" in 4/4 seeds, the span in 0/4)
        span = (quick_subset(source, seed=seed, max_requests=cap, span_only=True)
                if budget.max_requests is not None else None)
        if span is not None and span[0] == condition:  # the subset is that span already
            span = None
        fig16 = ("The Fig. 16 upsampling experiment runs on the sample too: fewer arrivals per window pull its "
                 "window CVs (original, naive, ITT) towards 1 compared with the full trace." if span is None else
                 f"The Fig. 16 upsampling experiment and F10 run on {span[2]} instead: a hash sample thins every "
                 "window, and fewer arrivals per window pull the window CVs (original, naive, ITT) towards 1.")
        with temporary_subset(source, condition, parameters=params,
                              description=f"{budget.label} conversations: " + what) as sub:
            note = (f"{budget.label} mode: conversations are linked and described on {sub.n_requests:,} of "
                    f"{source.n_requests:,} requests (bound {cap:,}): {what}. Counts below are the sample's. " + fig16
                    + " Fig. 14 (aggregate rate, CV and gaps) uses the whole trace"
                    + (" or the budget's leading span (below)." if budget.max_requests else "."))
            ev = _measure(sub, source, budget=budget, seed=seed, sample_note=note, **options)
        if span is None or ev.summary is None or not ev.summary.n_multi_turn:
            return ev
        with temporary_subset(source, span[0], parameters=span[1],
                              description=f"{budget.label} conversations, Fig. 16: " + span[2]) as part:
            return _upsampling_on(part, ev, window_s=window_s)

    def findings(self, evidence: ConversationEvidence) -> tuple[Finding, ...]:
        """ServeGen F10 and BurstGPT §3.2."""
        return tuple(conversation_findings(evidence))

    def tables(self, evidence: ConversationEvidence) -> dict[str, pl.DataFrame]:
        """Link summary (with the links each check rejected), turns, intervals per number of
        requests, the common prefixes most requests start with (top :data:`REPORT_PREFIX_ROWS`),
        ITT and gap fits, upsampling."""
        ev = evidence
        if ev.summary is None:
            return {}
        tables = {"links": _link_table(ev), "turns": ev.turns, "intervals_by_requests": ev.intervals}
        if ev.shared_prefixes is not None:
            tables["shared_prefixes"] = top_shared_prefixes(ev.shared_prefixes.table)
        if ev.itt_fit is not None:
            tables["itt_fits"] = ev.itt_fit.table()
        if ev.gap_fits is not None:
            tables["gap_fits"] = ev.gap_fits
        if ev.upsampling is not None:
            u = ev.upsampling
            tables["upsampling"] = pl.DataFrame({
                "workload": ["original", "naive upsampling", "ITT upsampling"],
                "requests": [u.n_original, u.n_naive, u.n_itt],
                "median_cv": [u.median_cv_original, u.median_cv_naive, u.median_cv_itt]})
        return tables

    def detail_tables(self, evidence: ConversationEvidence) -> dict[str, pl.DataFrame]:
        """Link summary, turns, intervals per number of requests, every common prefix, ITT and
        duration quantiles, ITT fits, upsampling windows."""
        ev = evidence
        if ev.summary is None:
            return {}
        tables = {"link_summary": _link_table(ev), "turns": ev.turns, "intervals_by_requests": ev.intervals}
        if ev.shared_prefixes is not None:
            tables["shared_prefixes"] = ev.shared_prefixes.table
        if ev.itt_quantiles is not None:
            tables["itt_quantiles"] = ev.itt_quantiles
        if ev.durations is not None:
            tables["duration_quantiles"] = ev.durations
        if ev.itt_fit is not None:
            tables["itt_fits"] = ev.itt_fit.table()
        if ev.upsampling is not None:
            tables["upsampling_windows"] = ev.upsampling.windows
        return tables

    def headline(self, evidence: ConversationEvidence) -> dict[str, Any]:
        """Link rule, requests in and number of multi-turn conversations, their share of requests."""
        s = evidence.summary
        if s is None:
            return {}
        suffix = f" ({evidence.budget.label}-mode sample)" if evidence.sample_note else ""
        return {"link rule": s.rule, "requests in multi-turn conversations" + suffix: s.n_linked,
                "multi-turn conversations" + suffix: s.n_multi_turn,
                "share of requests in multi-turn conversations" + suffix: s.linked_share}

    def notes(self, evidence: ConversationEvidence) -> tuple[str, ...]:
        """The subset, the measurement's notes, the budget, why the analysis was skipped, Fig. 14's fit."""
        ev = evidence
        notes = ([ev.sample_note] if ev.sample_note else []) + list(ev.notes)
        b, full = ev.budget, Budget.full()
        if not b.is_full:
            notes.append(f"{b.label} mode: inter-turn-time and Fig. 14 gap families fitted on a seeded subsample of "
                         f"at most {b.max_itt_fit_n:,} values (full mode: {full.max_itt_fit_n:,})")
        if ev.summary is None:
            notes.append(f"conversation analysis skipped: {ev.reason}")
        if ev.aggregate_note:
            notes.append(ev.aggregate_note)
        if ev.shared_prefixes is not None:
            sp = ev.shared_prefixes
            notes.append(f"common block prefixes (system prompts, templates; {sp.rule.describe()}): "
                         f"{sp.table.height:,}, and {sp.n_starting_common:,} of {sp.n_requests:,} requests "
                         f"({sp.starting_common_share:.1%}) start with one"
                         + ("; a prefix-block link must share more than them"
                            if ev.summary is not None and ev.summary.rule == "prefix_blocks" else ""))
        return tuple(notes)


def _link_table(ev: ConversationEvidence) -> pl.DataFrame:
    return pl.DataFrame([{k: v for k, v in ev.summary.to_dict().items() if k != "notes"}])


def _measure(store: TraceStore, whole: TraceStore, *, budget: Budget, seed: int, sample_note: str | None, rule: str,
             window_s: float, deltas_s: tuple[float, ...], aggregate: bool,
             linking: LinkOptions | None) -> ConversationEvidence:
    """The evidence from the conversations of ``store`` and the aggregate arrivals of ``whole``."""
    from servelab.reports.sampling import budget_span, leading_span

    # the arrival times, read once: Fig. 16 of a trace linked by conversation_id and Fig. 14 use them
    times = arrival_times(store)
    # Fig. 14's gap histogram and fits need only the times: when they are this store's, they run in a
    # thread while the conversations are linked and upsampled (dropped if there is no multi-turn one)
    same = store is whole and leading_span(whole, budget.max_requests) is None
    early = aggregate and same and any(store.has(c) for c in ("conversation_id", "parent_id", "prefix_blocks"))
    with ThreadPoolExecutor(max_workers=1) as pool:
        gap_part = pool.submit(_gap_fits, times, budget=budget, seed=seed) if early else None
        ev = measure_conversations(store, rule=rule, window_s=window_s, deltas_s=deltas_s, seed=seed, budget=budget,
                                   linking=linking, timestamps=times)
        multi = aggregate and ev.summary is not None and ev.summary.n_multi_turn
        if gap_part is not None and not multi:
            gap_part.cancel()
        gaps_done = gap_part.result() if gap_part is not None and multi else None
    extra: dict[str, Any] = {"sample_note": sample_note, "shared_prefixes": _shared_prefixes(store, linking)}
    if ev.itt_fit is not None and ev.itt_histogram is not None and ev.itt_histogram.height:
        hi = float(ev.itt_histogram["bin_hi"].max())
        extra["itt_densities"] = density_curves(ev.itt_fit, np.linspace(hi / 400, hi, 200))
    if multi:
        # the aggregate arrivals of Fig. 14 on the budget's leading span above max_requests (a 100 M-row
        # store's whole arrival frame took 8 GB), from its arrival times (no arrival frame)
        with budget_span(whole, budget.max_requests, label=budget.label) as (span, span_note):
            span_times = times if span is store else arrival_times(span)
            extra["aggregate_windows"] = _aggregate_windows(span, span_times, ev.upsampling if span is store else None,
                                                            window_s=window_s)
            if gaps_done is None:
                gaps_done = _gap_fits(span_times, budget=budget, seed=seed)
            del span_times
        if span_note is not None:
            extra["aggregate_note"] = "aggregate arrivals (Fig. 14): " + span_note
        extra.update({k: v for k, v in gaps_done.items() if k != "error"})
        if "error" in gaps_done:
            extra["aggregate_note"] = "; ".join(filter(None, (extra.get("aggregate_note"), gaps_done["error"])))
    del times
    return dataclasses.replace(ev, **extra)


def _gap_fits(times: np.ndarray, *, budget: Budget, seed: int) -> dict[str, Any]:
    """Fig. 14's ``gap_histogram``, ``gap_fits``, ``gap_densities`` of the arrival ``times`` (logged
    gaps, ties kept: the fit censors them), or ``error`` saying why the fit failed."""
    gaps = np.diff(np.sort(times, kind="stable"))
    hist = log_histogram(gaps)
    out: dict[str, Any] = {"gap_histogram": hist}
    try:
        comp = compare_families(gaps[gaps > 0], max_n=budget.max_itt_fit_n, seed=seed)
        out["gap_fits"] = comp.table()
        if hist.height:
            out["gap_densities"] = density_curves(comp, np.geomspace(hist["left_s"].min(), hist["right_s"].max(), 200))
    except (InsufficientDataError, ValueError) as err:
        out["error"] = f"no inter-arrival fit for Fig. 14: {err}"
    return out


def _upsampling_on(store: TraceStore, ev: ConversationEvidence, *, window_s: float) -> ConversationEvidence:
    """``ev`` with Fig. 16's upsampling measured on ``store`` (a span linked by ``conversation_id``)."""
    from servelab.analysis.conversations_sql import link_multi_turn
    from servelab.analysis.upsampling import upsampling_burstiness

    notes = [n for n in ev.notes if not n.startswith("upsampling not run")]
    try:
        conv = link_multi_turn(store)
        up = upsampling_burstiness(conv.links, window_s=window_s, timestamps=arrival_times(store))
    except (NotApplicableError, ValueError) as err:
        up = None
        notes.append(f"upsampling not run: {err}")
    return dataclasses.replace(ev, upsampling=up, notes=tuple(notes))


def _aggregate_windows(store: TraceStore, times: np.ndarray, upsampling: UpsamplingResult | None, *,
                       window_s: float) -> pl.DataFrame:
    """Fig. 14's ``window, window_start_s, rate_rps, cv`` per 10-minute window of ``times`` (the
    arrivals of ``store``), on the store's clock with the jitter seed 0 of
    :func:`~servelab.analysis.arrivals.arrival_frame`.

    :func:`~servelab.analysis.upsampling.window_cv` (equal to ``window_stats`` on the arrival frame
    up to rounding: tests/analysis/test_upsampling_window_cv.py). When ``upsampling`` (Fig. 16 of
    the same store, or None) measured at ``window_s`` equal to Fig. 14's window and the store
    records no clock (so that both detect it from the same times), its original workload's windows
    are this table: taken, not computed again.
    """
    cols = ["window", "window_start_s", "rate_rps", "cv"]
    recorded = store.manifest.get("clock")
    if (upsampling is not None and window_s == _AGGREGATE_WINDOW_S
            and not (isinstance(recorded, Mapping) and "step_s" in recorded)):
        return upsampling.windows.select("window", "window_start_s", pl.col("rate_original").alias("rate_rps"),
                                         pl.col("cv_original").alias("cv"))
    ordered = np.sort(times, kind="stable")
    clock = resolve_clock("auto", store, timestamps=ordered)
    return window_cv(ordered, window_s=_AGGREGATE_WINDOW_S, clock=clock, seed=0).select(cols)


def _shared_prefixes(store: TraceStore, linking: LinkOptions | None) -> SharedPrefixes | None:
    """The common prefixes by the linking's rule (None: no prefix blocks, or the rule is off)."""
    opts = linking or LinkOptions()
    if not store.has("prefix_blocks") or (opts.common_min_continuations is None and opts.common_min_clients is None):
        return None
    try:
        return find_shared_prefixes(store, min_continuations=opts.common_min_continuations,
                                    min_clients=opts.common_min_clients)
    except NotApplicableError:  # every prefix_blocks list empty
        return None


#: the conversations area
CONVERSATIONS = ConversationsArea()

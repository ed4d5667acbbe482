"""Conversation findings: ServeGen Finding 10 (multi-turn conversations make arrivals less bursty;
§5.2, Fig. 14-16) and BurstGPT's conversation patterns (KDD'25 §3.2, Fig. 9).

:func:`measure_conversations` links the trace's requests once
(:func:`servelab.analysis.conversations.link_conversations`), computes the per-conversation
tables, fits the inter-turn times with the family registry
(:func:`servelab.fitting.compare.compare_families`), runs the upsampling experiment
(:func:`servelab.analysis.upsampling.upsampling_burstiness`) and keeps small tables only. The
builders turn that into :class:`Finding` records; a trace without link information gets
not-applicable findings that say why. This module never imports matplotlib.
"""
from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats
from servelab.analysis.conversations import (
    DEFAULT_LONG_DELTAS_S,
    LinkSummary,
    interval_stats_by_turns,
    itt_values,
    LinkOptions,
    choose_link_rule,
    link_conversations,
    turn_distribution,
)
from servelab.analysis.conversations_sql import link_multi_turn
from servelab.analysis.budget import Budget
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding, FindingList, Verdict, not_applicable
from servelab.analysis.shared_prefixes import SharedPrefixes
from servelab.analysis.store import TraceStore
from servelab.analysis.upsampling import UpsamplingResult, upsampling_burstiness
from servelab.fitting.compare import FamilyComparison, compare_families
from servelab.fitting.proportion_tests import proportion_test
from servelab.fitting.verdicts import combine

__all__ = [
    "CALM_CV",
    "PAPER_WINDOW_SHARE",
    "UPSAMPLING_MARGIN",
    "ConversationEvidence",
    "arrival_times",
    "burstgpt_conversations",
    "measure_conversations",
    "conversation_findings",
    "servegen_f10",
]

#: this area's findings, in order (each finding function registers itself: ``@FINDINGS.register``)
FINDINGS = FindingList()

#: "close to or even less than 1": a median window CV at or below this is not bursty
CALM_CV = 1.2
#: the ITT-upsampled workload must be this much (relative) less bursty than the naive one
UPSAMPLING_MARGIN = 0.05
#: share of windows at the paper's effect for F10's two sign tests (ServeGen Fig. 16: the ITT-upsampled workload is
#: calmer than the naive one, and deepseek-r1's CV near or below 1, over essentially the whole day; 0.8 is "clearly most")
PAPER_WINDOW_SHARE = 0.8
#: BurstGPT Fig. 9 rows need at least this many conversations to enter the trend correlations
MIN_CONVERSATIONS_PER_ROW = 5

_F10 = ("servegen.F10", ("Request arrival in reasoning workloads is impacted by the reoccurring pattern of "
                        "multi-turn conversations and appears less bursty."), "ServeGen (2025), Finding 10, §5.2, Fig. 14-16")
_B = ("burstgpt.conversations", ("Over 35% of conversations end with one request and their count declines "
                                 "exponentially with the number of requests (median 2, 75% with four or fewer); the "
                                 "number of long intervals grows with the number of requests."),
      "BurstGPT (KDD'25), §3.2, Fig. 9")


@dataclass(frozen=True)
class ConversationEvidence:
    """Conversation tables of one trace (small summaries only).

    Attributes
    ----------
    summary : LinkSummary or None
        None when no link information exists (``reason`` says why).
    turns : polars.DataFrame or None
        :func:`~servelab.analysis.conversations.turn_distribution`.
    intervals : polars.DataFrame or None
        :func:`~servelab.analysis.conversations.interval_stats_by_turns` (BurstGPT Fig. 9).
    itt_quantiles : polars.DataFrame or None
        ``q``, ``itt_s`` at a grid of quantiles (for plotting the ITT distribution).
    itt_histogram : polars.DataFrame or None
        ``bin_lo``, ``bin_hi``, ``density`` of ITTs up to their 95th percentile (Fig. 15b).
    durations : polars.DataFrame or None
        ``q``, ``duration_s``, ``turns`` at a grid of quantiles over multi-turn conversations.
    itt_fit : FamilyComparison or None
        The ITT family comparison.
    upsampling : UpsamplingResult or None
        Fig. 16.
    reason : str
    notes : tuple of str
    budget : Budget
        The budget it was measured under.
    aggregate_windows, gap_histogram, gap_fits, gap_densities : polars.DataFrame or None
        ServeGen Fig. 14 on the whole trace (10-minute window rate and CV, log-binned gap
        histogram, the gap family comparison table and its fitted densities); filled by the
        conversations area (:mod:`servelab.reports.areas.conversations`), None otherwise.
    sample_note : str or None
        How the conversations area subsampled the trace under its budget (None: every request).
    aggregate_note : str or None
        Why the Fig. 14 gap fit failed, when it did.
    shared_prefixes : SharedPrefixes or None
        The common block prefixes (system prompts, templates) of the linked requests, by the
        linking's :class:`~servelab.analysis.shared_prefixes.CommonPrefixRule`; filled by the
        conversations area when the trace has ``prefix_blocks`` and the rule is on, None otherwise.
    itt_densities : polars.DataFrame or None
        The fitted ITT families' densities over the histogram's range (Fig. 15b's curves); filled
        by the conversations area, None otherwise.
    """

    summary: LinkSummary | None
    turns: pl.DataFrame | None = None
    intervals: pl.DataFrame | None = None
    itt_quantiles: pl.DataFrame | None = None
    itt_histogram: pl.DataFrame | None = None
    durations: pl.DataFrame | None = None
    itt_fit: FamilyComparison | None = None
    upsampling: UpsamplingResult | None = None
    reason: str = ""
    notes: tuple[str, ...] = field(default=())
    budget: Budget = Budget.full()
    aggregate_windows: pl.DataFrame | None = None
    gap_histogram: pl.DataFrame | None = None
    gap_fits: pl.DataFrame | None = None
    gap_densities: pl.DataFrame | None = None
    sample_note: str | None = None
    aggregate_note: str | None = None
    shared_prefixes: SharedPrefixes | None = None
    itt_densities: pl.DataFrame | None = None


def measure_conversations(store: TraceStore, *, rule: str = "auto", window_s: float = 600.0,
                          deltas_s: tuple[float, ...] = DEFAULT_LONG_DELTAS_S, seed: int = 0,
                          budget: Budget = Budget.full(), max_fit_n: int | None = None,
                          linking: LinkOptions | None = None,
                          timestamps: np.ndarray | None = None) -> ConversationEvidence:
    """Link, describe, fit and upsample once. Never raises for a trace without links.

    The inter-turn times are fitted on at most ``max_fit_n`` values (default: the budget's
    ``max_itt_fit_n``, 200,000 full, 20,000 quick). ``linking`` sets how links are inferred from
    prompt block hashes (default :class:`~servelab.analysis.conversations.LinkOptions()`).
    ``timestamps`` are the store's arrival times when the caller has read them already
    (:func:`arrival_times`; a trace linked by ``conversation_id`` needs them for Fig. 16).
    """
    max_fit_n = budget.max_itt_fit_n if max_fit_n is None else max_fit_n
    options = linking or LinkOptions()
    try:
        if choose_link_rule(store, rule) == "conversation_id":
            # linked in SQL; only the multi-turn requests come back (the same tables, summary and
            # upsampling: tests/analysis/test_conversations_sql.py), plus the trace's arrival times
            conv = link_multi_turn(store)
            turns = conv.turns
            if timestamps is None:
                timestamps = arrival_times(store)
        else:
            timestamps = None  # Fig. 16 takes the times of the links, which hold every request
            conv = link_conversations(store, rule=rule, **options.as_kwargs())
            turns = turn_distribution(conv.conversations)
    except NotApplicableError as err:
        return ConversationEvidence(summary=None, reason=err.reason, budget=budget)
    notes: list[str] = list(conv.summary.notes)
    # Fig. 16 (the largest part: three re-timed workloads of the trace's size) in a thread while the
    # inter-turn times are described and fitted here; the same results as one after the other
    with ThreadPoolExecutor(max_workers=1) as pool:
        upsampled = (pool.submit(upsampling_burstiness, conv.links, window_s=window_s, timestamps=timestamps)
                     if conv.summary.n_multi_turn else None)
        qs, hist, fit, durations, intervals = _describe(conv, deltas_s=deltas_s, max_fit_n=max_fit_n, seed=seed,
                                                             notes=notes)
        up = None
        if upsampled is not None:
            try:
                up = upsampled.result()
            except (NotApplicableError, ValueError) as err:
                notes.append(f"upsampling not run: {err}")
    return ConversationEvidence(summary=conv.summary, turns=turns, intervals=intervals, itt_quantiles=qs,
                                itt_histogram=hist, durations=durations, itt_fit=fit, upsampling=up, notes=tuple(notes),
                                budget=budget)


def _describe(conv, *, deltas_s: tuple[float, ...], max_fit_n: int, seed: int, notes: list[str]) -> tuple:
    """ITT quantiles and histogram, the ITT fit, duration quantiles and BurstGPT Fig. 9's intervals
    of the linked conversations ``conv`` (a note about the fit goes to ``notes``)."""
    itt = itt_values(conv.links)
    intervals = interval_stats_by_turns(conv.links, conv.conversations, deltas_s=deltas_s)
    qs = hist = fit = durations = None
    multi = conv.conversations.filter(pl.col("turns") >= 2)
    if multi.height:
        grid = np.linspace(0, 1, 21)
        durations = pl.DataFrame({"q": grid, "duration_s": np.quantile(multi["duration_s"].to_numpy(), grid),
                                  "turns": np.quantile(multi["turns"].to_numpy().astype(float), grid)})
    if itt.size:
        grid = np.linspace(0, 1, 101)
        qs = pl.DataFrame({"q": grid, "itt_s": np.quantile(itt, grid)})
        top = np.quantile(itt, 0.95)
        edges = np.linspace(0.0, max(top, 1e-9), 51)
        dens, _ = np.histogram(itt[itt <= top], bins=edges, density=True)
        hist = pl.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:], "density": dens})
        positive = itt[itt > 0]
        if positive.size >= 20:
            fit = compare_families(positive, max_n=max_fit_n, seed=seed)
            notes.append(f"ITT fits on {positive.size} positive ITTs ({itt.size - positive.size} zero ITTs left out)")
    return qs, hist, fit, durations, intervals


def arrival_times(store: TraceStore) -> np.ndarray:
    """The store's arrival times (s) in stored order, through DuckDB (already loaded: reading the
    Parquet file with pyarrow first imported pyarrow.parquet, 0.4 CPU-s)."""
    with contextlib.closing(store.connect()) as con:
        return np.asarray(con.execute("SELECT timestamp FROM requests").fetchnumpy()["timestamp"], dtype=float)


def _fin(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


@FINDINGS.register
def servegen_f10(ev: ConversationEvidence) -> Finding:
    """ServeGen Finding 10.

    Rule (calibrated): applies when the trace has multi-turn conversations. Two sign tests over
    the upsampling experiment's windows (:func:`~servelab.fitting.proportion_tests.proportion_test`,
    exact binomial, power at :data:`PAPER_WINDOW_SHARE` of the windows):

    * *conversations matter* -- null: in at most half the windows does the ITT-upsampled workload
      have a CV at least :data:`UPSAMPLING_MARGIN` (relative) below the naive one (keeping
      inter-turn times makes no systematic difference);
    * *less bursty* -- null: at most half the trace's windows have CV <= :data:`CALM_CV` (the
      median window CV is above it).

    Holds when both hold, does not hold when one does not hold with power, inconclusive otherwise.
    The median CVs are reported, never decide. The paper's claim is about reasoning workloads; it
    is checked on any trace with conversations.
    """
    figs = ("servegen.fig14", "servegen.fig15", "servegen.fig16")
    if ev.summary is None:
        return not_applicable(*_F10, reason=f"conversations cannot be formed: {ev.reason}", figures=figs)
    s = ev.summary
    if s.n_multi_turn == 0:
        return not_applicable(*_F10, reason=f"no multi-turn conversation found by rule {s.rule!r}", figures=figs)
    if ev.upsampling is None:
        why = "; ".join(n for n in ev.notes if n.startswith("upsampling")) or "upsampling could not run"
        return not_applicable(*_F10, reason=f"{s.n_multi_turn} multi-turn conversation(s), but {why}", figures=figs)
    u = ev.upsampling
    measured = {
        "rule": s.rule, "requests": s.n_requests, "multi_turn_requests": s.n_linked,
        "multi_turn_share": s.linked_share, "conversations": s.n_multi_turn,
        "mean_turns": s.n_linked / s.n_multi_turn,
        "median_itt_s": _fin(float(ev.itt_quantiles.filter(pl.col("q") == 0.5)["itt_s"][0])) if ev.itt_quantiles is not None else None,
        "itt_best_family": ev.itt_fit.best if ev.itt_fit else None,
        "itt_clearly_best": (ev.itt_fit.clearly_best or "none") if ev.itt_fit else None,
        "upsampling_factor": u.factor, "window_s": u.window_s,
        "median_cv_original": _fin(u.median_cv_original), "median_cv_naive": _fin(u.median_cv_naive),
        "median_cv_itt": _fin(u.median_cv_itt),
        "dangling": s.n_dangling, "cycles": s.n_cycle, "out_of_order": s.n_out_of_order,
    }
    cv_o, cv_n, cv_i = u.median_cv_original, u.median_cv_naive, u.median_cv_itt
    if not all(math.isfinite(x) for x in (cv_o, cv_n, cv_i)):
        return Finding(id=_F10[0], statement=_F10[1], source=_F10[2], verdict=Verdict.INCONCLUSIVE, measured=measured,
                       reason=f"too few requests per {u.window_s:g}-s window for a CV in one of the workloads", figures=figs)
    w = u.windows
    pair = w.filter(pl.col("cv_naive").is_not_null() & pl.col("cv_itt").is_not_null()
                    & pl.col("cv_naive").is_finite() & pl.col("cv_itt").is_finite())
    calmer = int((pair["cv_itt"] <= (1 - UPSAMPLING_MARGIN) * pair["cv_naive"]).sum())
    orig = w.filter(pl.col("cv_original").is_not_null() & pl.col("cv_original").is_finite())
    calm_n = int((orig["cv_original"] <= CALM_CV).sum())
    reason = (f"{s.n_linked} of {s.n_requests} requests ({s.linked_share:.1%}) are in {s.n_multi_turn} multi-turn "
              f"conversations (rule {s.rule}); median window CV: original {cv_o:.2f}, naive upsampling {cv_n:.2f}, "
              f"ITT upsampling {cv_i:.2f}")
    if pair.height == 0 or orig.height == 0:
        return Finding(id=_F10[0], statement=_F10[1], source=_F10[2], verdict=Verdict.INCONCLUSIVE, measured=measured,
                       reason=reason + "; no window has a CV in every workload", figures=figs)
    tests = (proportion_test(calmer, pair.height, threshold=0.5, paper_share=PAPER_WINDOW_SHARE,
                             what=f"{u.window_s:g}-s windows where keeping the inter-turn times gives a CV at least "
                                  f"{UPSAMPLING_MARGIN:.0%} below naive upsampling"),
             proportion_test(calm_n, orig.height, threshold=0.5, paper_share=PAPER_WINDOW_SHARE,
                             what=f"{u.window_s:g}-s windows of the trace with CV <= {CALM_CV:g}"))
    verdict, text = combine(tests, parts=["conversations calm arrivals", "less bursty"])
    measured.update({"windows_compared": pair.height, "windows_itt_calmer": calmer,
                     "windows_with_cv": orig.height, "windows_calm": calm_n,
                     "itt_calmer_p_value": tests[0].p_value, "calm_p_value": tests[1].p_value})
    reason = (f"{text} (holds when both hold: sign tests over windows, exact binomial, each at level "
              f"{tests[0].level:g}); " + "; ".join(
                  f"{name} [{t.decision.value}]: null = {t.null}; {t.reason}"
                  for name, t in zip(("conversations calm arrivals", "less bursty"), tests)) + "; " + reason)
    return Finding(id=_F10[0], statement=_F10[1], source=_F10[2], verdict=verdict, measured=measured, reason=reason,
                   figures=figs, tests=tests)


@FINDINGS.register
def burstgpt_conversations(ev: ConversationEvidence) -> Finding:
    """BurstGPT KDD'25 §3.2.

    Rule (calibrated, :func:`~servelab.fitting.proportion_tests.proportion_test`, exact binomial):
    the paper's numbers decide: more than 35 % of conversations have one request, more than half
    have at most 2 (median <= 2) and more than 75 % at most 4 (75th percentile <= 4). Holds when
    all three hold, does not hold when one does not hold with power, inconclusive otherwise. The
    Spearman rho of the turn distribution and of the long intervals per conversation are reported
    beside the verdict and do not decide: the expected long intervals per conversation grow as
    (n - 1) p whatever the inter-request law, so that part is near-tautological and is not tested.
    """
    if ev.summary is None:
        return not_applicable(*_B, reason=f"conversations cannot be formed: {ev.reason}", figures=("burstgpt.fig9",))
    s = ev.summary
    if s.n_multi_turn == 0:
        return not_applicable(*_B, reason=f"no multi-turn conversation found by rule {s.rule!r}", figures=("burstgpt.fig9",))
    t = ev.turns
    counts = np.repeat(t["turns"].to_numpy(), t["conversations"].to_numpy())
    rows = ev.intervals.filter(pl.col("conversations") >= MIN_CONVERSATIONS_PER_ROW)
    rho_count = _spearman(t["turns"].to_numpy(), t["conversations"].to_numpy())
    rho_long = _spearman(rows["turns"].to_numpy(), rows["long_gt_iqr"].to_numpy()) if rows.height >= 3 else None
    rho_mean = _spearman(rows["turns"].to_numpy(), rows["mean_itt_s"].to_numpy()) if rows.height >= 3 else None
    measured = {
        "rule": s.rule, "conversations": s.n_conversations, "single_request_share": float(np.mean(counts == 1)),
        "median_requests": float(np.median(counts)), "p75_requests": float(np.quantile(counts, 0.75)),
        "spearman_count_vs_requests": rho_count, "spearman_long_iqr_vs_requests": rho_long,
        "spearman_mean_itt_vs_requests": rho_mean, "rows_used": rows.height,
        "iqr_upper_s": float(ev.intervals["iqr_upper_s"][0]) if ev.intervals.height else None,
    }
    n = int(counts.size)
    tests = tuple(proportion_test(int(np.sum(counts <= k)), n, threshold=thr, paper_share=paper, what=what)
                  for k, thr, paper, what, _ in _SHARE_CLAIMS)
    verdict, combined = combine(tests, parts=[c[4] for c in _SHARE_CLAIMS])
    measured["share_le_2_requests"] = float(np.mean(counts <= 2))
    measured["share_le_4_requests"] = float(np.mean(counts <= 4))
    reason = (f"{combined} (holds when all three hold); "
              + "; ".join(f"{c[4]} [{t.decision.value}]: null = {t.null}; {t.statistic} = {t.value:.4g}, {t.reason}"
                          for c, t in zip(_SHARE_CLAIMS, tests))
              + f"; {measured['single_request_share']:.0%} of conversations have one request; median "
              f"{measured['median_requests']:g}, 75th percentile {measured['p75_requests']:g} requests (paper: 2 and 4); "
              f"not tested (reported only): Spearman rho of conversations vs requests {_txt(rho_count)}, of long "
              f"intervals (> IQR bound) vs requests {_txt(rho_long)} (near-tautological: expected long intervals grow "
              f"as (n - 1) p whatever the interval law), of mean interval vs requests {_txt(rho_mean)}")
    return Finding(id=_B[0], statement=_B[1], source=_B[2], verdict=verdict, measured=measured, reason=reason,
                   figures=("burstgpt.fig9",), tests=tests)


#: BurstGPT §3.2's counting claims: (at most k requests, threshold share, share at which power is
#: computed, units, part name). The paper says "over 35 %" single-request conversations, median 2
#: and 75 % with four or fewer; the power shares are 10 points beyond each threshold.
_SHARE_CLAIMS = (
    (1, 0.35, 0.45, "conversations with one request", "over 35% single-request"),
    (2, 0.5, 0.6, "conversations with at most 2 requests", "median <= 2"),
    (4, 0.75, 0.85, "conversations with at most 4 requests", "75th percentile <= 4"),
)


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.all(y[ok] == y[ok][0]) or np.all(x[ok] == x[ok][0]):
        return None
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def _txt(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.2f}"


def conversation_findings(evidence: ConversationEvidence) -> list[Finding]:
    """ServeGen Finding 10 and BurstGPT §3.2 (not applicable, with reasons, where they do not apply)."""
    return FINDINGS(evidence)

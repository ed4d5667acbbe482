"""Arrival findings: ServeGen Finding 1 (bursty, no single best process), Finding 2 (rate and CV
shift across windows) and BurstGPT's Gamma-per-window shift (KDD'25 Fig. 6).

:func:`measure_arrivals` runs the analyses and fits once (gap summary, windowed rate and
CV, the family comparison overall, per 20-minute window and per group, Gamma per window) and keeps
the small tables in a frozen :class:`ArrivalEvidence`; the finding builders turn that into
:class:`~servelab.analysis.findings.Finding` records with the measured numbers and the rule that
gives the verdict. Builders never raise for a trace that lacks what they need: they return a
not-applicable finding with the reason. This module never imports matplotlib.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import polars as pl

from servelab.analysis.arrivals import (
    arrival_frame,
    frame_gaps,
    gap_array,
    gap_summary,
    inter_arrival_gaps,
    parse_window,
    resolve_group,
    shift_summary,
    window_stats,
)
from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding, Verdict, not_applicable
from servelab.analysis.store import TraceStore
from servelab.fitting.compare import FamilyComparison, compare_by_group, compare_families, density_curves
from servelab.fitting.exceptions import InsufficientDataError
from servelab.fitting.windows import gamma_per_window

__all__ = [
    "ArrivalEvidence",
    "measure_arrivals",
    "servegen_f1",
    "servegen_f2",
    "burstgpt_gamma_shift",
    "arrival_findings",
    "RATE_SHIFT_RATIO",
    "CV_SHIFT_RATIO",
    "GAMMA_SHIFT_RATIO",
    "MIN_WINDOW_GAPS",
]

#: max/min rate across windows at or above which the rate "shifts" (ServeGen F2)
RATE_SHIFT_RATIO = 2.0
#: max/min CV across windows at or above which burstiness "shifts" (ServeGen F2)
CV_SHIFT_RATIO = 1.5
#: max/min of the Gamma alpha or beta across windows at or above which they "shift" (BurstGPT Fig. 6)
GAMMA_SHIFT_RATIO = 2.0
#: a window's CV or Gamma fit counts only with at least this many gaps
MIN_WINDOW_GAPS = 20

_F1 = ("servegen.F1", "The short-term arrival of LLM requests is often bursty (CV > 1), exhibiting complex patterns "
       "beyond any single stochastic process.", "ServeGen (2025), Finding 1, Fig. 1")
_F2 = ("servegen.F2", "The arrival of LLM serving requests shows a diverse shifting pattern in terms of rate and "
       "burstiness (CV), calling for adaptive system design.", "ServeGen (2025), Finding 2, Fig. 2")
_G = ("burstgpt.gamma_shift", "Short-term burstiness is unstable: the Gamma shape alpha and rate beta fitted to the "
      "inter-arrival times of every 20-minute window vary sharply over the day.",
      "BurstGPT (KDD'25), Section 3.1, Fig. 6")


@dataclass(frozen=True)
class ArrivalEvidence:
    """The arrival tables of one trace (small summaries only, no per-request data).

    Parameters
    ----------
    by : str or None
        Grouping column of the per-group tables.
    window_s, gamma_window_s : float
        Window of the rate / CV table (ServeGen Fig. 2: 300 s) and of the Gamma and per-window
        family tables (BurstGPT Fig. 6 and ServeGen Fig. 1: 1200 s).
    tables : Mapping[str, polars.DataFrame]
        ``gap_summary``, ``windows``, ``shifts``, ``gamma_windows``, ``family_comparison``,
        ``window_families`` and, with ``by``, ``group_summary``, ``group_windows``,
        ``group_shifts``, ``group_families``; ``gap_histogram`` and ``family_densities`` for
        ServeGen Fig. 1. Absent tables were not computable (see ``notes``).
    comparison : FamilyComparison or None
        The whole-trace family comparison.
    gamma_by : str or None
        Grouping of ``gamma_windows`` (``service`` when the trace has it, as in BurstGPT).
    notes : tuple of str
        What was subsampled, skipped or could not be computed, and why.
    budget : Budget
        The budget it was measured under.
    """

    by: str | None
    window_s: float
    gamma_window_s: float
    tables: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    comparison: FamilyComparison | None = None
    gamma_by: str | None = None
    notes: tuple[str, ...] = ()
    budget: Budget = Budget.full()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "notes", tuple(self.notes))

    def table(self, name: str) -> pl.DataFrame | None:
        return self.tables.get(name)


def _histogram(x: np.ndarray, bins: int = 60) -> pl.DataFrame:
    """Log-spaced density histogram of the positive values of ``x`` (for ServeGen Fig. 1)."""
    x = x[x > 0]
    if x.size < 2 or x.min() == x.max():
        return pl.DataFrame(schema={"left_s": pl.Float64, "right_s": pl.Float64, "density": pl.Float64})
    edges = np.geomspace(x.min(), x.max(), bins + 1)
    counts, _ = np.histogram(x, bins=edges)
    density = counts / (x.size * np.diff(edges))
    return pl.DataFrame({"left_s": edges[:-1], "right_s": edges[1:], "density": density})


def measure_arrivals(
    store: TraceStore,
    *,
    by: str | None = None,
    window: str | float = "5m",
    gamma_window: str | float = "20m",
    seed: int = 0,
    budget: Budget = Budget.full(),
    max_fit_n: int | None = None,
    gof: str | None = None,
    max_groups: int = 24,
) -> ArrivalEvidence:
    """Run the arrival analyses and fits on ``store`` once.

    Parameters
    ----------
    store : TraceStore
    by : {None, "model", "service", "client", "client_id"}
        Grouping for the per-group tables (skipped, with a note, when the trace lacks it).
    window, gamma_window : str or float
        Window lengths (see :func:`servelab.analysis.arrivals.parse_window`).
    seed : int
        Seed of every subsample, jitter and bootstrap.
    budget : Budget
        ``max_fit_n`` gaps for the whole-trace fit (full 10^6, quick 10^5), ``max_group_fit_n`` per
        window / group (5,000; 2,000) and ``n_boot`` bootstrap replicates (200; 99).
    max_fit_n : int, optional
        Override the budget's whole-trace fit subsample size.
    gof : {None, "auto", "bootstrap", "subsample"}
        Attach honest p-values to the whole-trace fits (see :mod:`servelab.fitting.gof`).
    max_groups : int
        Largest number of windows and of groups whose families are compared one by one.
    """
    window_s = parse_window(window)
    gamma_window_s = parse_window(gamma_window)
    notes: list[str] = []
    tables: dict[str, pl.DataFrame] = {}
    column = None
    if by is not None:
        try:
            column = resolve_group(store, by, analysis=f"arrivals by {by}")
        except Exception as err:  # NotApplicableError: the trace lacks the column
            if not hasattr(err, "reason"):
                raise
            notes.append(f"per-{by} tables skipped: {err.reason}")
    fit_n = max_fit_n if max_fit_n is not None else budget.max_fit_n
    per_n = budget.max_group_fit_n

    whole = arrival_frame(store)  # the store is read once per grouping
    tables["gap_summary"] = gap_summary(store, frame=whole)
    windows = window_stats(store, window=window_s, frame=whole)
    tables["windows"] = windows
    tables["shifts"] = shift_summary(windows, min_gaps=MIN_WINDOW_GAPS)

    grouped = arrival_frame(store, by=column) if column is not None else None
    gamma_by = "service" if store.has("service") else None
    gamma_frame = grouped if gamma_by == column else (arrival_frame(store, by=gamma_by) if gamma_by else whole)
    tables["gamma_windows"] = gamma_per_window(
        window_stats(store, window=gamma_window_s, by=gamma_by, frame=gamma_frame), method="mle")
    del gamma_frame

    comparison = None
    gaps = gap_array(store, frame=whole)
    try:
        comparison = compare_families(gaps, max_n=fit_n, seed=seed, gof=gof, n_boot=budget.n_boot)
    except (InsufficientDataError, ValueError) as err:
        notes.append(f"no family comparison for the whole trace: {err}")
    if comparison is not None:
        tables["family_comparison"] = comparison.table()
        hist = _histogram(gaps)
        tables["gap_histogram"] = hist
        if hist.height:
            grid = np.geomspace(hist["left_s"].min(), hist["right_s"].max(), 200)
            tables["family_densities"] = density_curves(comparison, grid)
        notes.extend(comparison.notes)

    # families per window of the trace (ServeGen Fig. 1 compares IATs within 20-minute windows)
    win_frame = frame_gaps(whole, window_s=gamma_window_s).select(pl.col("w").alias("window"), "gap")
    tables["window_families"] = compare_by_group(win_frame, "window", min_n=50, max_groups=max_groups,
                                                 max_n=per_n, seed=seed).sort("window")
    notes.append(f"families per {gamma_window_s / 60:g}-minute window and per group: the {max_groups} largest, "
                 f"each on a random subsample of at most {per_n} gaps (seed {seed})")
    del whole, win_frame

    if column is not None:
        group_summary = gap_summary(store, by=column, frame=grouped)
        tables["group_summary"] = group_summary
        group_windows = window_stats(store, window=window_s, by=column, frame=grouped)
        tables["group_windows"] = group_windows
        tables["group_shifts"] = shift_summary(group_windows, by=column, min_gaps=MIN_WINDOW_GAPS)
        top = group_summary.filter(pl.col("n_gaps") >= 50).head(max_groups)[column].to_list()
        if top:
            group_gaps = inter_arrival_gaps(store, by=column, groups=[g for g in top if g is not None], frame=grouped)
            tables["group_families"] = compare_by_group(group_gaps, column, value="gap_s", min_n=50,
                                                        max_groups=max_groups, max_n=per_n, seed=seed)
    return ArrivalEvidence(by=column, window_s=window_s, gamma_window_s=gamma_window_s, tables=tables,
                           comparison=comparison, gamma_by=gamma_by, notes=tuple(notes), budget=budget)


def _winner_counts(frame: pl.DataFrame | None) -> tuple[int, int, str]:
    """(groups ranked, distinct best families, "family:count, ..." text)."""
    if frame is None or frame.height == 0:
        return 0, 0, ""
    ranked = frame.filter(pl.col("best").is_not_null())
    counts = ranked.group_by("best").len().sort(["len", "best"], descending=[True, False])
    text = ", ".join(f"{b}:{n}" for b, n in counts.iter_rows())
    return ranked.height, counts.height, text


def servegen_f1(ev: ArrivalEvidence) -> Finding:
    """ServeGen Finding 1: bursty (CV > 1) and no single process best everywhere.

    Rule: *bursty* when the whole trace's gap CV exceeds 1 by more than twice its sampling error
    under Poisson arrivals (CV > 1 + 2/sqrt(n_gaps)); *beyond a single process* when no
    family is clearly best on the whole trace (:data:`servelab.fitting.compare.CLEARLY_BEST_RULE`)
    or different families win in different 20-minute windows or groups. Holds when both parts
    hold, does not hold when neither does, inconclusive otherwise.
    """
    summary = ev.table("gap_summary")
    cv = summary["cv"][0] if summary is not None and summary.height else None
    if cv is None or ev.comparison is None or not ev.comparison.results:
        why = "fewer than 3 requests, or all gaps zero: the gap CV is undefined" if cv is None else \
            "no arrival family could be fitted (" + "; ".join(ev.notes) + ")"
        return not_applicable(*_F1, reason=why, figures=("servegen.fig1",))
    comp = ev.comparison
    n_gaps = int(summary["n_gaps"][0])
    cv_threshold = 1.0 + 2.0 / math.sqrt(n_gaps)
    bursty = bool(cv > cv_threshold)
    n_win, n_win_best, win_text = _winner_counts(ev.table("window_families"))
    n_grp, n_grp_best, grp_text = _winner_counts(ev.table("group_families"))
    windows = ev.table("windows")
    ok = windows.filter((pl.col("n_gaps") >= MIN_WINDOW_GAPS) & pl.col("cv").is_not_null())
    share = float((ok["cv"] > 1).mean()) if ok.height else None
    beyond = comp.clearly_best is None or n_win_best > 1 or n_grp_best > 1
    measured = {
        "n_gaps": int(summary["n_gaps"][0]),
        "cv": float(cv),
        "bursty": bursty,
        "bursty_cv_threshold": cv_threshold,
        "zero_gap_fraction": summary["zero_gap_fraction"][0],
        "best_family": comp.best,
        "clearly_best": comp.clearly_best or "none",
        "delta_aic_runner_up": (comp.results[1].aic - comp.results[0].aic) if len(comp.results) > 1 else None,
        "clear_threshold": comp.threshold,
        "best_ks_distance": comp.results[0].ks_distance,
        "window_s": ev.window_s,
        "windows_with_cv": ok.height,
        "share_windows_cv_above_1": share,
        "median_window_cv": float(ok["cv"].median()) if ok.height else None,
        "family_window_s": ev.gamma_window_s,
        "windows_ranked": n_win,
        "window_winners": win_text,
        "groups_ranked": n_grp,
        "group_winners": grp_text,
    }
    parts = [
        f"gap CV {cv:.3g} {'>' if bursty else '<='} {cv_threshold:.3g} = 1 + 2/sqrt(n) (1 plus twice the CV's "
        f"sampling error under Poisson arrivals: {'bursty' if bursty else 'not bursty'})",
        comp.verdict,
    ]
    if n_win:
        parts.append(f"best family per {ev.gamma_window_s / 60:g}-min window: {win_text}")
    if n_grp:
        parts.append(f"best family per {ev.by}: {grp_text}")
    if bursty and beyond:
        verdict = Verdict.HOLDS
    elif not bursty and not beyond:
        verdict = Verdict.DOES_NOT_HOLD
    else:
        verdict = Verdict.INCONCLUSIVE
        parts.append("only one of the two parts holds (bursty; beyond a single process)")
    return Finding(id=_F1[0], statement=_F1[1], source=_F1[2], verdict=verdict, measured=measured,
                   reason="; ".join(parts), figures=("servegen.fig1",))


def servegen_f2(ev: ArrivalEvidence) -> Finding:
    """ServeGen Finding 2: rate and CV shift across windows.

    Rule: the rate shifts when max/min over active windows (at least half inside the trace) is
    >= :data:`RATE_SHIFT_RATIO` or idle windows occur; the CV shifts when max/min over windows
    with >= :data:`MIN_WINDOW_GAPS` gaps is >= :data:`CV_SHIFT_RATIO`. Holds when both shift,
    inconclusive when one does, does not hold when neither does; not applicable with fewer than 3
    qualifying windows.
    """
    shifts = ev.table("shifts")
    row = shifts.row(0, named=True) if shifts is not None and shifts.height else None
    if row is None or row["n_rate_windows"] < 3:
        got = 0 if row is None else row["n_rate_windows"]
        return not_applicable(*_F2, reason=(
            f"needs at least 3 active {ev.window_s / 60:g}-minute windows to compare; the trace has {got} "
            "(shorter than the windows, or too few requests)"), figures=("servegen.fig2",))
    rate_ratio = row["rate_max_over_min"]
    cv_ratio = row["cv_max_over_min"]
    rate_shift = bool(row["n_idle"] > 0 or (rate_ratio is not None and rate_ratio >= RATE_SHIFT_RATIO))
    cv_shift = bool(cv_ratio is not None and cv_ratio >= CV_SHIFT_RATIO)
    measured = {
        "window_s": ev.window_s,
        "n_windows": row["n_windows"],
        "n_idle_windows": row["n_idle"],
        "rate_min_rps": row["rate_min"],
        "rate_max_rps": row["rate_max"],
        "rate_max_over_min": rate_ratio,
        "rate_shifts": rate_shift,
        "cv_windows": row["n_cv_windows"],
        "cv_min": row["cv_min"],
        "cv_max": row["cv_max"],
        "cv_max_over_min": cv_ratio,
        "cv_shifts": cv_shift,
        "windows_cv_above_1": row["windows_cv_above_1"],
    }
    group_shifts = ev.table("group_shifts")
    reason = [
        f"rate max/min {_fmt(rate_ratio)} over {row['n_rate_windows']} windows ({row['n_idle']} idle; shift if >= "
        f"{RATE_SHIFT_RATIO:g} or any idle)",
        f"CV max/min {_fmt(cv_ratio)} over {row['n_cv_windows']} windows with >= {MIN_WINDOW_GAPS} gaps (shift if >= "
        f"{CV_SHIFT_RATIO:g})",
    ]
    if group_shifts is not None and group_shifts.height:
        ok = group_shifts.filter(pl.col("rate_max_over_min").is_not_null() | (pl.col("n_idle") > 0))
        n_rate = ok.filter((pl.col("rate_max_over_min") >= RATE_SHIFT_RATIO) | (pl.col("n_idle") > 0)).height
        ok_cv = group_shifts.filter(pl.col("cv_max_over_min").is_not_null())
        n_cv = ok_cv.filter(pl.col("cv_max_over_min") >= CV_SHIFT_RATIO).height
        measured.update({"groups": group_shifts.height, "groups_rate_shift": n_rate, "groups_cv_shift": n_cv,
                         "groups_cv_assessable": ok_cv.height})
        reason.append(f"per {ev.by}: rate shifts in {n_rate} of {group_shifts.height}, CV in {n_cv} of {ok_cv.height}")
    if rate_shift and cv_shift:
        verdict = Verdict.HOLDS
    elif rate_shift or cv_shift:
        verdict = Verdict.INCONCLUSIVE
        reason.append(f"only the {'rate' if rate_shift else 'CV'} shifts")
    else:
        verdict = Verdict.DOES_NOT_HOLD
    return Finding(id=_F2[0], statement=_F2[1], source=_F2[2], verdict=verdict, measured=measured,
                   reason="; ".join(reason), figures=("servegen.fig2",))


def burstgpt_gamma_shift(ev: ArrivalEvidence) -> Finding:
    """BurstGPT Fig. 6: Gamma alpha and beta per 20-minute window shift sharply.

    Rule: per series (each service when the trace has them, else the whole trace), over windows
    with >= :data:`MIN_WINDOW_GAPS` gaps and a converged fit, alpha or beta max/min >=
    :data:`GAMMA_SHIFT_RATIO` in some series -> holds; below in every series -> does not hold; not
    applicable with fewer than 3 such windows in every series.
    """
    gamma = ev.table("gamma_windows")
    if gamma is None:
        return not_applicable(*_G, reason="no windowed Gamma fits were computed", figures=("burstgpt.fig6",))
    ok = gamma.filter((pl.col("gamma_n") >= MIN_WINDOW_GAPS) & pl.col("gamma_converged"))
    keys = [ev.gamma_by] if ev.gamma_by else []
    aggs = [pl.len().alias("n"), pl.col("alpha").min().alias("a_min"), pl.col("alpha").max().alias("a_max"),
            pl.col("beta").min().alias("b_min"), pl.col("beta").max().alias("b_max"),
            pl.col("cv_gamma").median().alias("cv_med")]
    per = (ok.group_by(keys, maintain_order=True).agg(aggs) if keys else ok.select(aggs)).filter(pl.col("n") >= 3)
    if per.height == 0:
        return not_applicable(*_G, reason=(
            f"needs at least 3 {ev.gamma_window_s / 60:g}-minute windows with >= {MIN_WINDOW_GAPS} gaps in some "
            "series; the trace has fewer (too short or too sparse)"), figures=("burstgpt.fig6",))
    per = per.with_columns((pl.col("a_max") / pl.col("a_min")).alias("a_ratio"),
                           (pl.col("b_max") / pl.col("b_min")).alias("b_ratio"))
    measured: dict[str, float | int | str | bool | None] = {"window_s": ev.gamma_window_s, "method": "mle (positive gaps)"}
    reason = []
    shifted = False
    for r in per.iter_rows(named=True):
        name = str(r[ev.gamma_by]) if ev.gamma_by else "trace"
        measured.update({f"{name}.windows": r["n"], f"{name}.alpha_min": r["a_min"], f"{name}.alpha_max": r["a_max"],
                         f"{name}.alpha_max_over_min": r["a_ratio"], f"{name}.beta_max_over_min": r["b_ratio"],
                         f"{name}.median_cv_gamma": r["cv_med"]})
        shifted = shifted or r["a_ratio"] >= GAMMA_SHIFT_RATIO or r["b_ratio"] >= GAMMA_SHIFT_RATIO
        reason.append(f"{name}: alpha {r['a_min']:.3g}-{r['a_max']:.3g} (x{r['a_ratio']:.3g}), beta max/min "
                      f"x{r['b_ratio']:.3g} over {r['n']} windows")
    reason.append(f"shift if alpha or beta max/min >= {GAMMA_SHIFT_RATIO:g} in some series")
    return Finding(id=_G[0], statement=_G[1], source=_G[2], verdict=Verdict.HOLDS if shifted else Verdict.DOES_NOT_HOLD,
                   measured=measured, reason="; ".join(reason), figures=("burstgpt.fig6",))


def arrival_findings(evidence: ArrivalEvidence) -> list[Finding]:
    """All arrival findings of one trace."""
    return [servegen_f1(evidence), servegen_f2(evidence), burstgpt_gamma_shift(evidence)]


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "undefined"
    return f"{value:.3g}"

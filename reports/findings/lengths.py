"""Length findings: ServeGen Findings 3-4 (Fig. 3-4) and BurstGPT's request/response findings
(KDD'25 §3.3, Fig. 7-8, 10; preprint §III-C).

:func:`measure_lengths` runs the analyses and fits once on a store and keeps their small tables
and fit results in a :class:`LengthEvidence`; :func:`length_findings` turns the evidence into
:class:`~servelab.analysis.findings.Finding` records with measured numbers and a verdict, or
"not applicable" with the reason. Neither raises for a trace lacking columns.

Findings (ids) and the test behind each verdict (:mod:`servelab.fitting.verdicts`; every
finding carries its :class:`~servelab.fitting.verdicts.NullTest` records in ``tests``):

* ``servegen.F3.input`` -- input lengths follow a LogNormal body + Pareto tail mixture: the
  mixture's fit passes the project's one goodness-of-fit standard
  (:func:`~servelab.fitting.fit_standard.describes`, integer lengths). AIC only ranks families.
* ``servegen.F3.output`` -- output lengths are Exponential: the same standard on the Exponential.
* ``servegen.F3.correlation`` -- weak input/output correlation: both Pearson and Spearman are
  below 0.3 in absolute value by two one-sided Fisher-z tests
  (:func:`~servelab.fitting.correlation_tests.correlation_bound_test`).
* ``servegen.F4`` -- lengths shift over the day, input and output independently: a Welch F test
  of the period means (:func:`~servelab.fitting.mean_shift_tests.mean_shift_test`) for input and
  for output, each at level 0.025, over the periods the trace covers
  (:func:`servelab.analysis.lengths.trace_periods`); *independently* by
  :func:`~servelab.fitting.mean_shift_tests.ratio_shift_test` (null: the mean output is a fixed
  multiple of the mean input in every period; at level 0.025, as the delta method is slightly
  liberal with heavy-tailed lengths). Holds when both parts hold, does not hold when either does
  not hold with power.
* ``burstgpt.zipf_requests`` -- request lengths follow a Zipf law: the goodness-of-fit standard.
* ``burstgpt.bimodal_responses`` -- response lengths are bimodal:
  :func:`~servelab.fitting.modality.lattice_bimodality` (dip test on the integer lattice and
  separated modes, Ashman's D > 2).
* ``burstgpt.linear_relation`` -- response length grows linearly with request length: Pearson r
  above 0.5 by a one-sided Fisher-z test.

This module never imports matplotlib.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl

from servelab.analysis import lengths as L
from servelab.analysis.budget import Budget
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding, FindingList, Verdict, not_applicable
from servelab.analysis.store import TraceStore
from servelab.fitting.compare import FamilyComparison, density_curves
from servelab.fitting.correlation_tests import correlation_bound_test
from servelab.fitting.exceptions import FitWarning, InsufficientDataError
from servelab.fitting.fit_standard import describes, mean_note
from servelab.fitting.mean_shift_tests import mean_shift_test, ratio_shift_test
from servelab.fitting.mixtures import (
    INPUT_LENGTH_FAMILIES,
    OUTPUT_LENGTH_FAMILIES,
    compare_length_fits,
)
from servelab.fitting.modality import lattice_bimodality
from servelab.fitting.verdicts import DEFAULT_LEVEL, NullTest, combine, join_verdicts

__all__ = [
    "LengthEvidence",
    "measure_lengths",
    "family_headline",
    "length_findings",
    "WEAK_CORRELATION",
    "PAPER_WEAK_CORRELATION",
    "LINEAR_R_HOLDS",
    "PAPER_LINEAR_R",
]

#: this area's findings, in order (each finding function registers itself: ``@FINDINGS.register``)
FINDINGS = FindingList()

#: |correlation| below which input/output correlation is "weak" (ServeGen F3)
WEAK_CORRELATION = 0.3
#: the weak correlation the power of F3.correlation is computed at
PAPER_WEAK_CORRELATION = 0.1
#: Pearson r above which BurstGPT's linear relation holds
LINEAR_R_HOLDS = 0.5
#: the Pearson r the power of burstgpt.linear_relation is computed at
PAPER_LINEAR_R = 0.7

_SRC_F3 = "ServeGen (2025) §3.2, Finding 3, Fig. 3-4"
_SRC_F4 = "ServeGen (2025) §3.2, Finding 4, Fig. 3(c)-(d), 4"
_SRC_BG = "BurstGPT (KDD'25) §3.3, Fig. 7-8, 10; BurstGPT preprint (2024) §III-C"


@dataclass(frozen=True)
class LengthEvidence:
    """What :func:`measure_lengths` measured (small tables and results, never request rows).

    Parameters
    ----------
    tables : Mapping[str, polars.DataFrame]
        ``counts``, ``quantiles``, ``input_pmf``, ``output_pmf`` (log-binned), ``io_bins``,
        ``io_bins_by_period``, ``io_correlation``, ``period_means``, ``hourly``, ``input_fits``,
        ``output_fits``, ``input_curves``, ``output_curves`` (fitted densities on a grid), when
        they apply.
    input_fits, output_fits : FamilyComparison or None
        Family comparisons of non-failed input and output lengths.
    shift : LengthShift or None
        Mean lengths over the periods of the day the trace covers.
    output_bimodality : NullTest or None
        :func:`~servelab.fitting.modality.lattice_bimodality` of the output lengths (zeros dropped).
    fit_tests : Mapping[str, NullTest]
        The goodness-of-fit standard (:func:`~servelab.fitting.fit_standard.describes`) of
        ``input.<family>`` and ``output.<family>`` for the best family by AIC and the families
        the findings name (``lognormal_pareto``, ``zipf``; ``exponential``).
    skipped : Mapping[str, str]
        Analysis -> why it did not apply.
    notes : tuple of str
    """

    tables: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    input_fits: FamilyComparison | None = None
    output_fits: FamilyComparison | None = None
    shift: L.LengthShift | None = None
    output_bimodality: NullTest | None = None
    skipped: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    fit_tests: Mapping[str, NullTest] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "fit_tests", MappingProxyType(dict(self.fit_tests)))
        object.__setattr__(self, "skipped", MappingProxyType(dict(self.skipped)))
        object.__setattr__(self, "notes", tuple(self.notes))


def measure_lengths(store: TraceStore, *, by: str | None = None, seed: int = 0, budget: Budget = Budget.full(),
                    max_fit_n: int | None = None, periods=None) -> LengthEvidence:
    """Run the length analyses and fits on ``store`` once.

    Parameters
    ----------
    by : {None, "model", "service", "client", "period"}
        Extra grouping for the quantile and correlation tables.
    seed : int
        Seed of the fit subsample and the bimodality subsample.
    budget : Budget
        Fit on at most ``budget.max_fit_n`` lengths (full 1,000,000, quick 100,000).
    max_fit_n : int, optional
        Overrides the budget's fit sample size.
    periods : sequence of Period, optional
        Periods of the day for the shift, quantile and input/output tables; default: the
        periods the trace covers (:func:`servelab.analysis.lengths.trace_periods`).
    """
    tables: dict[str, pl.DataFrame] = {}
    skipped: dict[str, str] = {}
    notes: list[str] = []
    fit_n = max_fit_n if max_fit_n is not None else budget.max_fit_n

    def attempt(name, fn):
        try:
            return fn()
        except NotApplicableError as err:
            skipped[name] = err.reason
        except (InsufficientDataError, ValueError) as err:
            skipped[name] = str(err)
        return None

    counts = attempt("counts", lambda: L.length_counts(store))
    if counts is None:
        return LengthEvidence(skipped=skipped)
    if periods is None:
        periods = L.trace_periods(store)
    fit_tests: dict[str, NullTest] = {}
    tables["counts"] = counts
    if int(counts["n_failed"][0]):
        notes.append(f"{int(counts['n_failed'][0])} failed requests (output 0 or failed flag) excluded from length "
                     "statistics and fits")
    try:  # one scan for the quantiles, both PMFs and the fit samples' sizes (sufficient statistics)
        value_counts = L.length_value_counts(store)
    except NotApplicableError:
        value_counts = None

    def n_values(column: str) -> int | None:
        if value_counts is None:
            return None
        return int(value_counts.filter(pl.col("col") == column)["c"].sum())

    q = attempt("quantiles", lambda: L.length_quantiles(store, counts=value_counts))
    if q is not None:
        tables["quantiles"] = q
    if by is not None:
        qb = attempt(f"quantiles by {by}", lambda: L.length_quantiles(store, by=by, periods=periods))
        if qb is not None:
            tables[f"quantiles_by_{by}"] = qb
    input_fits = output_fits = None
    bim = None
    for col, key in (("input_tokens", "input"), ("output_tokens", "output")):
        if not store.has(col):
            skipped[f"{key} distribution"] = f"the trace has no {col!r} column"
            continue
        pmf = attempt(f"{key} PMF", lambda c=col: L.length_pmf(store, c, log_bins=40, counts=value_counts))
        if pmf is not None:
            tables[f"{key}_pmf"] = pmf
        x = attempt(f"{key} sample", lambda c=col: L.length_sample(store, c, max_n=fit_n, seed=seed, n=n_values(c)))
        if x is None:
            continue
        x = x[x > 0]  # zero-token prompts cannot be fitted by positive families; counted below
        families = INPUT_LENGTH_FAMILIES if key == "input" else OUTPUT_LENGTH_FAMILIES
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            comp = attempt(f"{key} fits", lambda: compare_length_fits(x, families=families, seed=seed))
        if comp is None:
            continue
        tables[f"{key}_fits"] = comp.table()
        top = float(np.max(x)) if x.size else 1.0
        # integer lengths: the discrete Zipf has mass only there (a non-integer grid drew no Zipf curve)
        grid = np.unique(np.round(np.geomspace(1.0, max(top, 2.0), 200)))
        tables[f"{key}_curves"] = density_curves(comp, grid)
        named = ("lognormal_pareto", "zipf") if key == "input" else ("exponential",)
        for fam in dict.fromkeys((comp.best, *named)):
            try:
                fit_tests[f"{key}.{fam}"] = describes(comp.result(fam), integer=fam != "zipf", seed=seed)
            except (KeyError, ValueError):
                pass
        if key == "input":
            input_fits = comp
        else:
            output_fits = comp
            bim = attempt("output bimodality", lambda: lattice_bimodality(
                x, max_n=budget.max_bimodality_n, seed=seed))
    if store.has("input_tokens", "output_tokens"):
        t = attempt("io_bins", lambda: L.io_bins(store, by="period", periods=periods, include_all=True))
        if t is not None:
            tables["io_bins"] = t.filter(pl.col("group") == "all")
            order = {p.name: i for i, p in enumerate(periods)}
            tables["io_bins_by_period"] = (t.filter(pl.col("group") != "all")
                                           .sort(pl.col("group").replace_strict(order, default=len(order)), "bin"))
        t = attempt("io_correlation", lambda: L.io_correlation(store, seed=seed))
        if t is not None:
            tables["io_correlation"] = t
        if by is not None:
            t = attempt(f"io_correlation by {by}", lambda: L.io_correlation(store, by=by, periods=periods, seed=seed))
            if t is not None:
                tables[f"io_correlation_by_{by}"] = t

    else:
        skipped["input/output relation"] = "the trace lacks input_tokens or output_tokens"
    shift = attempt("length shifts", lambda: L.length_shifts(store, periods=periods))
    if shift is not None:
        tables["period_means"] = shift.table
        notes.append(f"periods read on {shift.clock}")
        tables["hourly"] = shift.hourly
    return LengthEvidence(tables=tables, input_fits=input_fits, output_fits=output_fits, shift=shift,
                          output_bimodality=bim, skipped=skipped, notes=tuple(notes), fit_tests=fit_tests)


def family_headline(ev: LengthEvidence, key: str) -> str | None:
    """The best family by AIC of ``key`` ("input" or "output") for a headline, never bare: with its
    main parameter, whether it passes the fit standard, and an infinite mean when it has one."""
    comp = ev.input_fits if key == "input" else ev.output_fits
    if comp is None or not comp.results:
        return None
    best = comp.results[0]
    text = best.family
    test = ev.fit_tests.get(f"{key}.{best.family}")
    if test is not None:
        text += (" (passes the fit standard" if test.decision is Verdict.HOLDS else
                 " (fails the fit standard" if test.decision is Verdict.DOES_NOT_HOLD else
                 " (fit standard inconclusive") + f", KS D {test.value:.3g})"
    if mean_note(best):
        name, val = ("s", best.params.get("s")) if best.family == "zipf" else ("alpha", best.params.get("alpha"))
        text += f"; {name} = {val:.4g}: infinite mean"
    return text


def length_findings(ev: LengthEvidence) -> list[Finding]:
    """The length findings with verdicts (see the module docstring for the rules)."""
    return FINDINGS(ev)


# ----------------------------------------------------------------------------------------------


def _why(ev: LengthEvidence, *names: str) -> str:
    for n in names:
        if n in ev.skipped:
            return ev.skipped[n]
    return "the trace lacks the columns this finding needs"


def _fit_numbers(comp: FamilyComparison, family: str, prefix: str) -> dict[str, Any]:
    try:
        r = comp.result(family)
    except KeyError:
        return {f"{prefix}_fitted": False}
    best = comp.results[0].aic
    out: dict[str, Any] = {f"{prefix}_ks_d": r.ks_distance, f"{prefix}_delta_aic": r.aic - best}
    out.update({f"{prefix}_{k}": v for k, v in r.params.items()})
    return out


@FINDINGS.register
def _f3_input(ev: LengthEvidence) -> Finding:
    fid, stmt = "servegen.F3.input", "Input lengths are modelled by a mixture of a Log-normal body and a Pareto tail."
    figs = ("servegen.fig3",)
    comp = ev.input_fits
    if comp is None or not comp.results:
        return not_applicable(fid, stmt, _SRC_F3, _why(ev, "input fits", "input sample", "input distribution", "counts"), figs)
    m: dict[str, Any] = {"n": comp.n, "best_family": comp.best, "clearly_best": comp.clearly_best}
    m.update(_fit_numbers(comp, "lognormal_pareto", "mixture"))
    for fam in ("lognormal", "pareto", "exponential", "zipf"):
        try:
            r = comp.result(fam)
            m[f"{fam}_delta_aic"] = r.aic - comp.results[0].aic
            m[f"{fam}_ks_d"] = r.ks_distance
        except KeyError:
            pass
    test = ev.fit_tests.get("input.lognormal_pareto")
    if test is None:
        return Finding(fid, stmt, _SRC_F3, Verdict.INCONCLUSIVE, m,
                       "the LogNormal + Pareto mixture could not be fitted; " + comp.verdict, figs)
    m["mixture_describes"] = test.decision.value
    why = (f"{test.decision.value}: the mixture {'passes' if test.decision is Verdict.HOLDS else 'does not pass'} the "
           f"fit standard (null = {test.null}; {test.reason}; KS tolerance {test.practical_threshold:g}, level "
           f"{test.level:g}, {test.method}); AIC ranks the families but does not decide: {comp.verdict}")
    return Finding(fid, stmt, _SRC_F3, test.decision, m, why, figs, tests=(test,))


def _one_family(fid: str, stmt: str, src: str, figs: tuple[str, ...], ev: LengthEvidence, comp,
                sources: tuple[str, ...], family: str, label: str, params: dict[str, str], *,
                key: str, failed: str | None = None) -> Finding:
    """A finding that one family describes a sample: the goodness-of-fit standard decides.

    ``label`` names the family in the reason, ``params`` maps measured names to the family's
    parameter names; not applicable (with the reason, ``failed`` when the fit left none) when the
    sample was not fitted or the family failed.
    """
    if comp is None or not comp.results:
        return not_applicable(fid, stmt, src, _why(ev, *sources, "counts"), figs)
    try:
        r = comp.result(family)
    except KeyError:
        return not_applicable(fid, stmt, src, comp.failed.get(family, failed or f"{label} could not be fitted"), figs)
    d = float(r.ks_distance)
    m = {"n": comp.n, **{name: r.params[p] for name, p in params.items()}, f"{family}_ks_d": d,
         f"{family}_delta_aic": r.aic - comp.results[0].aic, "best_family": comp.best}
    test = ev.fit_tests.get(f"{key}.{family}")
    if test is None:
        return Finding(fid, stmt, src, Verdict.INCONCLUSIVE, m, f"the fit standard could not be applied to the "
                       f"{label} fit; best by AIC: {comp.best}", figs)
    m[f"{family}_describes"] = test.decision.value
    why = (f"{test.decision.value}: the {label} fit {'passes' if test.decision is Verdict.HOLDS else 'does not pass'} "
           f"the fit standard (null = {test.null}; {test.reason}; KS tolerance {test.practical_threshold:g}, level "
           f"{test.level:g}, {test.method}); best by AIC: {comp.best}")
    return Finding(fid, stmt, src, test.decision, m, why, figs, tests=(test,))


@FINDINGS.register
def _f3_output(ev: LengthEvidence) -> Finding:
    fid, stmt = "servegen.F3.output", "Output lengths follow an Exponential distribution (memoryless)."
    figs = ("servegen.fig3",)
    return _one_family(fid, stmt, _SRC_F3, figs, ev, ev.output_fits, ("output fits", "output sample", "output distribution"),
                       "exponential", "Exponential", {"exponential_mean": "scale"}, key="output",
                       failed="the Exponential could not be fitted")


def _corr_row(ev: LengthEvidence) -> dict[str, Any] | None:
    t = ev.tables.get("io_correlation")
    if t is None or t.height == 0:
        return None
    return t.row(0, named=True)


@FINDINGS.register
def _f3_correlation(ev: LengthEvidence) -> Finding:
    fid, stmt = "servegen.F3.correlation", "The correlation between input and output lengths is weak."
    figs = ("servegen.fig4",)
    row = _corr_row(ev)
    if row is None:
        return not_applicable(fid, stmt, _SRC_F3, _why(ev, "io_correlation", "input/output relation", "counts"), figs)
    p, s = row["pearson"], row["spearman"]
    m = {"n": row["n"], "pearson": p, "spearman": s, "spearman_n": row["spearman_n"]}
    if p is None or s is None or not (math.isfinite(p) and math.isfinite(s)):
        return Finding(fid, stmt, _SRC_F3, Verdict.INCONCLUSIVE, m, "a length column is constant: correlation undefined", figs)
    try:
        tests = (correlation_bound_test(p, int(row["n"]), bound=WEAK_CORRELATION, claim="weak",
                                        paper_value=PAPER_WEAK_CORRELATION, kind="pearson", label="Pearson r"),
                 correlation_bound_test(s, int(row["spearman_n"]), bound=WEAK_CORRELATION, claim="weak",
                                        paper_value=PAPER_WEAK_CORRELATION, kind="spearman", label="Spearman rho"))
    except ValueError as err:
        return Finding(fid, stmt, _SRC_F3, Verdict.INCONCLUSIVE, m, f"the correlation tests could not run: {err}", figs)
    v, text = combine(tests, parts=["Pearson", "Spearman"])
    why = f"{text} (holds when both are weak); " + _tests_text(tests, ["Pearson", "Spearman"])
    return Finding(fid, stmt, _SRC_F3, v, m, why, figs, tests=tests)


@FINDINGS.register
def _f4(ev: LengthEvidence) -> Finding:
    fid = "servegen.F4"
    stmt = "Input and output length distributions shift over time, and independently of each other."
    figs = ("servegen.fig3cd", "servegen.fig4")
    sh = ev.shift
    if sh is None:
        return not_applicable(fid, stmt, _SRC_F4, _why(ev, "length shifts", "counts"), figs)
    if sh.table.height < 2:
        return not_applicable(fid, stmt, _SRC_F4,
                              f"only {sh.table.height} of the periods holds requests ({sh.clock}); a shift needs two", figs)
    m = {"periods": sh.table.height, "period_names": ", ".join(sh.table["period"].to_list()),
         "input_max_min_ratio": sh.input_ratio, "output_max_min_ratio": sh.output_ratio,
         "input_change_first_to_last": sh.input_change, "output_change_first_to_last": sh.output_change,
         "same_direction_share": sh.same_direction_share, "hourly_mean_correlation": sh.hourly_correlation}
    t = sh.table.filter((pl.col("n") >= 2) & (pl.col("std_input") > 0) & (pl.col("std_output") > 0)
                        & (pl.col("mean_input") > 0) & (pl.col("mean_output") > 0))
    level = DEFAULT_LEVEL / 2
    tests = (mean_shift_test(t["n"], t["mean_input"], t["std_input"], label="input length", level=level),
             mean_shift_test(t["n"], t["mean_output"], t["std_output"], label="output length", level=level))
    decisions = [x.decision for x in tests]
    shift = join_verdicts(decisions, rule="any")
    why = (f"lengths shift: {shift.value} (input: {decisions[0].value}, output: {decisions[1].value}; each at level "
           f"{level:g}); " + _tests_text(tests, ["input", "output"]))
    row = _corr_row(ev)
    rho = row["pearson"] if row is not None else None
    if rho is None or not math.isfinite(rho):
        indep = None
        why += "; independence not tested (no input/output correlation for the delta-method errors)"
    else:
        # at half the level: with heavy-tailed lengths and a few thousand requests per period the delta-method
        # test is slightly liberal (6.7 % size at a nominal 5 % over 600 simulated nulls, 4.3 % at 2.5 %)
        indep = ratio_shift_test(t["n"], t["mean_input"], t["std_input"], t["mean_output"], t["std_output"],
                                 correlation=float(rho), level=level)
        tests += (indep,)
        m["output_input_ratio_max_min"] = indep.effect_value
        m["independence_p_value"] = indep.p_value
        why += (f"; independently: {indep.decision.value}; " + _tests_text([indep], ["independently"]))
    # independence not tested: inconclusive (so "does not hold" only when the lengths do not shift)
    v = join_verdicts((shift, Verdict.INCONCLUSIVE if indep is None else indep.decision), rule="all")
    why += (f"; holds when the lengths shift and the output/input ratio shifts too (intersection-union: each part "
            f"at its own level), does not hold when either part does not hold with power; periods {m['period_names']} "
            f"({sh.clock}); input and output means move in the same direction in {sh.same_direction_share:.0%} of "
            "period pairs (descriptive)")
    return Finding(fid, stmt, _SRC_F4, v, m, why, figs, tests=tests)


@FINDINGS.register
def _zipf(ev: LengthEvidence) -> Finding:
    fid, stmt = "burstgpt.zipf_requests", "Request lengths follow a Zipf distribution."
    figs = ("burstgpt.fig7",)
    return _one_family(fid, stmt, _SRC_BG, figs, ev, ev.input_fits, ("input fits", "input sample", "input distribution"),
                       "zipf", "Zipf", {"zipf_s": "s", "zipf_x_min": "x_min"}, key="input")


@FINDINGS.register
def _bimodal(ev: LengthEvidence) -> Finding:
    fid, stmt = "burstgpt.bimodal_responses", "Response lengths have a bimodal distribution (ChatGPT)."
    figs = ("burstgpt.fig7",)
    b = ev.output_bimodality
    if b is None:
        return not_applicable(fid, stmt, _SRC_BG, _why(ev, "output bimodality", "output fits", "output sample",
                                                        "output distribution", "counts"), figs)
    m = {"n": b.n, "dip": b.value, "dip_p_value": b.p_value, "ashman_d": b.effect_value}
    why = f"{b.decision.value}: " + _tests_text([b], ["bimodality of output lengths"])
    return Finding(fid, stmt, _SRC_BG, b.decision, m, why, figs, tests=(b,))


@FINDINGS.register
def _linear(ev: LengthEvidence) -> Finding:
    fid, stmt = "burstgpt.linear_relation", "Response length grows linearly with request length (ChatGPT)."
    figs = ("burstgpt.fig8", "burstgpt.fig10")
    row = _corr_row(ev)
    if row is None:
        return not_applicable(fid, stmt, _SRC_BG, _why(ev, "io_correlation", "input/output relation", "counts"), figs)
    p, slope, r2 = row["pearson"], row["slope"], row["r2"]
    m = {"n": row["n"], "slope": slope, "intercept": row["intercept"], "r2": r2, "pearson": p}
    if p is None or slope is None or not math.isfinite(p):
        return Finding(fid, stmt, _SRC_BG, Verdict.INCONCLUSIVE, m, "a length column is constant: the line is undefined", figs)
    try:
        test = correlation_bound_test(p, int(row["n"]), bound=LINEAR_R_HOLDS, claim="above", paper_value=PAPER_LINEAR_R,
                                      kind="pearson", label="Pearson r")
    except ValueError as err:
        return Finding(fid, stmt, _SRC_BG, Verdict.INCONCLUSIVE, m, f"the correlation test could not run: {err}", figs)
    why = (f"{test.decision.value}: OLS slope {slope:.3g} tokens/token, R^2 {r2:.3g}; "
           + _tests_text([test], ["linear relation"]))
    return Finding(fid, stmt, _SRC_BG, test.decision, m, why, figs, tests=(test,))


def _tests_text(tests, parts) -> str:
    """Each part's test in words: decision, null, statistic and the reason (p, level, power, threshold)."""
    return "; ".join(f"{name} [{t.decision.value}]: null = {t.null}; {t.statistic} = {t.value:.4g}, {t.reason}"
                     for name, t in zip(parts, tests))

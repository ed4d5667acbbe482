"""Length findings: ServeGen Findings 3-4 (Fig. 3-4) and BurstGPT's request/response findings
(KDD'25 §3.3, Fig. 7-8, 10; preprint §III-C).

:func:`measure_lengths` runs the analyses and fits once on a store and keeps their small tables
and fit results in a :class:`LengthEvidence`; :func:`length_findings` turns the evidence into
:class:`~servelab.analysis.findings.Finding` records with measured numbers and a verdict, or
"not applicable" with the reason. Neither raises for a trace lacking columns.

Findings (ids) and the rule behind each verdict:

* ``servegen.F3.input`` -- input lengths follow a LogNormal body + Pareto tail mixture: holds
  when ``lognormal_pareto`` has the lowest AIC among LogNormal, Pareto, Exponential, Zipf and the
  mixture and its KS D is within ``1/sqrt(n)`` of the smallest D (the project's one
  "clearly best" rule, :mod:`servelab.fitting.compare`); does not hold when another family is
  clearly best; inconclusive when no family is.
* ``servegen.F3.output`` -- output lengths are Exponential: holds when the Exponential fit's KS D
  is at most :data:`EXPONENTIAL_D_HOLDS` + 1/sqrt(n), does not hold above
  :data:`EXPONENTIAL_D_FAILS` + 1/sqrt(n) (the sampling noise of D keeps small traces honest).
* ``servegen.F3.correlation`` -- weak input/output correlation: holds when both |Pearson| and
  |Spearman| are below :data:`WEAK_CORRELATION`.
* ``servegen.F4`` -- lengths shift over the day, input and output independently: holds when the
  max/min ratio of the period means exceeds :data:`SHIFT_RATIO_HOLDS` for input or output and the
  two do not move in the same direction in every pair of periods.
* ``burstgpt.zipf_requests`` -- request lengths follow a Zipf law: the same KS-distance rule as
  the Exponential output.
* ``burstgpt.bimodal_responses`` -- response lengths are bimodal: two Gaussians on ln(output)
  beat one by BIC (> 10) and the dip test rejects unimodality (p < 0.05).
* ``burstgpt.linear_relation`` -- response length grows linearly with request length: holds when
  Pearson r >= :data:`LINEAR_R_HOLDS` with a positive slope, does not hold below
  :data:`WEAK_CORRELATION`.

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
from servelab.analysis.findings import Finding, Verdict, not_applicable
from servelab.analysis.store import TraceStore
from servelab.fitting.compare import FamilyComparison, density_curves
from servelab.fitting.exceptions import FitWarning, InsufficientDataError
from servelab.fitting.mixtures import (
    INPUT_LENGTH_FAMILIES,
    OUTPUT_LENGTH_FAMILIES,
    Bimodality,
    bimodality,
    compare_length_fits,
)

__all__ = [
    "LengthEvidence",
    "measure_lengths",
    "length_findings",
    "EXPONENTIAL_D_HOLDS",
    "EXPONENTIAL_D_FAILS",
    "WEAK_CORRELATION",
    "LINEAR_R_HOLDS",
    "SHIFT_RATIO_HOLDS",
]

#: KS distance at or below which a single family "fits well"
EXPONENTIAL_D_HOLDS = 0.05
#: KS distance above which it clearly does not
EXPONENTIAL_D_FAILS = 0.10
#: |correlation| below which input/output correlation is "weak"
WEAK_CORRELATION = 0.3
#: Pearson r from which BurstGPT's linear relation holds
LINEAR_R_HOLDS = 0.5
#: max/min ratio of period means above which lengths "shift"
SHIFT_RATIO_HOLDS = 1.05

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
    output_bimodality : Bimodality or None
        Bimodality of ln(output tokens).
    skipped : Mapping[str, str]
        Analysis -> why it did not apply.
    notes : tuple of str
    """

    tables: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    input_fits: FamilyComparison | None = None
    output_fits: FamilyComparison | None = None
    shift: L.LengthShift | None = None
    output_bimodality: Bimodality | None = None
    skipped: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "skipped", MappingProxyType(dict(self.skipped)))
        object.__setattr__(self, "notes", tuple(self.notes))


def measure_lengths(store: TraceStore, *, by: str | None = None, seed: int = 0, budget: Budget = Budget.full(),
                    max_fit_n: int | None = None, periods=L.DEFAULT_PERIODS) -> LengthEvidence:
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
    tables["counts"] = counts
    if int(counts["n_failed"][0]):
        notes.append(f"{int(counts['n_failed'][0])} failed requests (output 0 or failed flag) excluded from length "
                     "statistics and fits")
    q = attempt("quantiles", lambda: L.length_quantiles(store))
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
        pmf = attempt(f"{key} PMF", lambda c=col: L.length_pmf(store, c, log_bins=40))
        if pmf is not None:
            tables[f"{key}_pmf"] = pmf
        x = attempt(f"{key} sample", lambda c=col: L.length_sample(store, c, max_n=fit_n, seed=seed))
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
        if key == "input":
            input_fits = comp
        else:
            output_fits = comp
            if x.size >= 10:
                bim = attempt("output bimodality", lambda: bimodality(np.log(x), seed=seed))
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
                          output_bimodality=bim, skipped=skipped, notes=tuple(notes))


def length_findings(ev: LengthEvidence) -> list[Finding]:
    """The length findings with verdicts (see the module docstring for the rules)."""
    return [_f3_input(ev), _f3_output(ev), _f3_correlation(ev), _f4(ev), _zipf(ev), _bimodal(ev), _linear(ev)]


# ----------------------------------------------------------------------------------------------


def _why(ev: LengthEvidence, *names: str) -> str:
    for n in names:
        if n in ev.skipped:
            return ev.skipped[n]
    return "the trace lacks the columns this finding needs"


def _d_verdict(d: float, n: int, name: str) -> tuple[Verdict, str]:
    """"Fits well" by KS distance, with the sampling noise 1/sqrt(n) added to both thresholds."""
    noise = 1.0 / math.sqrt(max(n, 1))
    hold, fail = EXPONENTIAL_D_HOLDS + noise, EXPONENTIAL_D_FAILS + noise
    if d <= hold:
        return Verdict.HOLDS, f"{name} KS D {d:.3g} <= {hold:.3g} ({EXPONENTIAL_D_HOLDS} + noise 1/sqrt(n))"
    if d > fail:
        return Verdict.DOES_NOT_HOLD, f"{name} KS D {d:.3g} > {fail:.3g} ({EXPONENTIAL_D_FAILS} + noise 1/sqrt(n))"
    return Verdict.INCONCLUSIVE, f"{name} KS D {d:.3g} between {hold:.3g} and {fail:.3g}"


def _fit_numbers(comp: FamilyComparison, family: str, prefix: str) -> dict[str, Any]:
    try:
        r = comp.result(family)
    except KeyError:
        return {f"{prefix}_fitted": False}
    best = comp.results[0].aic
    out: dict[str, Any] = {f"{prefix}_ks_d": r.ks_distance, f"{prefix}_delta_aic": r.aic - best}
    out.update({f"{prefix}_{k}": v for k, v in r.params.items()})
    return out


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
    if comp.clearly_best == "lognormal_pareto":
        v = Verdict.HOLDS
    elif comp.clearly_best is not None:
        v = Verdict.DOES_NOT_HOLD  # another family is clearly better
    else:
        v = Verdict.INCONCLUSIVE  # no family is clearly best (small samples, close fits)
    return Finding(fid, stmt, _SRC_F3, v, m, comp.verdict, figs)


def _one_family(fid: str, stmt: str, src: str, figs: tuple[str, ...], ev: LengthEvidence, comp,
                sources: tuple[str, ...], family: str, label: str, params: dict[str, str], *,
                failed: str | None = None) -> Finding:
    """A finding that one family describes a sample: its KS distance against the noise threshold.

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
    v, why = _d_verdict(d, comp.n, label)
    return Finding(fid, stmt, src, v, m, f"{why}; best by AIC: {comp.best}", figs)


def _f3_output(ev: LengthEvidence) -> Finding:
    fid, stmt = "servegen.F3.output", "Output lengths follow an Exponential distribution (memoryless)."
    figs = ("servegen.fig3",)
    return _one_family(fid, stmt, _SRC_F3, figs, ev, ev.output_fits, ("output fits", "output sample", "output distribution"),
                       "exponential", "Exponential", {"exponential_mean": "scale"},
                       failed="the Exponential could not be fitted")


def _corr_row(ev: LengthEvidence) -> dict[str, Any] | None:
    t = ev.tables.get("io_correlation")
    if t is None or t.height == 0:
        return None
    return t.row(0, named=True)


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
    weak = abs(p) < WEAK_CORRELATION and abs(s) < WEAK_CORRELATION
    v = Verdict.HOLDS if weak else Verdict.DOES_NOT_HOLD
    return Finding(fid, stmt, _SRC_F3, v, m,
                   f"|Pearson| = {abs(p):.3g}, |Spearman| = {abs(s):.3g} ({'both' if weak else 'not both'} < {WEAK_CORRELATION})",
                   figs)


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
    m = {"periods": sh.table.height, "input_max_min_ratio": sh.input_ratio, "output_max_min_ratio": sh.output_ratio,
         "input_change_first_to_last": sh.input_change, "output_change_first_to_last": sh.output_change,
         "same_direction_share": sh.same_direction_share, "hourly_mean_correlation": sh.hourly_correlation}
    shifts = max(sh.input_ratio, sh.output_ratio) > SHIFT_RATIO_HOLDS
    independent = not sh.together
    if shifts and independent:
        v = Verdict.HOLDS
    elif not shifts:
        v = Verdict.DOES_NOT_HOLD
    else:
        v = Verdict.INCONCLUSIVE
    why = (f"max/min of period means: input {sh.input_ratio:.3g}, output {sh.output_ratio:.3g} "
           f"({'>' if shifts else '<='} {SHIFT_RATIO_HOLDS}); input and output move in the same direction in "
           f"{sh.same_direction_share:.0%} of period pairs")
    if shifts and not independent:
        why += " (they move together, not independently)"
    return Finding(fid, stmt, _SRC_F4, v, m, why, figs)


def _zipf(ev: LengthEvidence) -> Finding:
    fid, stmt = "burstgpt.zipf_requests", "Request lengths follow a Zipf distribution."
    figs = ("burstgpt.fig7",)
    return _one_family(fid, stmt, _SRC_BG, figs, ev, ev.input_fits, ("input fits", "input sample", "input distribution"),
                       "zipf", "Zipf", {"zipf_s": "s", "zipf_x_min": "x_min"})


def _bimodal(ev: LengthEvidence) -> Finding:
    fid, stmt = "burstgpt.bimodal_responses", "Response lengths have a bimodal distribution (ChatGPT)."
    figs = ("burstgpt.fig7",)
    b = ev.output_bimodality
    if b is None:
        return not_applicable(fid, stmt, _SRC_BG, _why(ev, "output bimodality", "output fits", "output sample",
                                                        "output distribution", "counts"), figs)
    m = {"n": b.n, "delta_bic_two_vs_one": b.delta_bic, "dip": b.dip, "dip_p_value": b.dip_p_value,
         "ashman_d": b.ashman_d, "mode1_tokens": math.exp(b.mixture["mu1"]), "mode2_tokens": math.exp(b.mixture["mu2"]),
         "mode1_weight": b.mixture["weight"]}
    v = Verdict.HOLDS if b.bimodal else Verdict.DOES_NOT_HOLD
    return Finding(fid, stmt, _SRC_BG, v, m,
                   f"on ln(output): two components vs one delta-BIC {b.delta_bic:.3g}, dip test p = {b.dip_p_value:.3g}"
                   + ("; ".join([""] + list(b.notes)) if b.notes else ""), figs)


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
    if p >= LINEAR_R_HOLDS and slope > 0:
        v = Verdict.HOLDS
    elif abs(p) < WEAK_CORRELATION:
        v = Verdict.DOES_NOT_HOLD
    else:
        v = Verdict.INCONCLUSIVE
    return Finding(fid, stmt, _SRC_BG, v, m, f"OLS slope {slope:.3g} tokens/token, R^2 {r2:.3g}, Pearson {p:.3g} "
                   f"(holds from {LINEAR_R_HOLDS})", figs)

"""Reasoning findings: ServeGen Finding 9 (§5.1, Fig. 13) and the data half of Finding 11 (§5.3,
Fig. 17c).

:func:`measure_reasoning` runs :mod:`servelab.analysis.reasoning` once (plus the calibrated
bimodality test :func:`~servelab.fitting.modality.lattice_bimodality` on the whole trace's and the
top clients' reason ratios) and keeps a :class:`ReasoningEvidence`; :func:`reasoning_findings`
returns:

* ``servegen.F9.longer`` -- reasoning makes outputs longer and more variable: holds when mean
  reason tokens exceed mean answer tokens and the output CV exceeds the answer CV (not yet a
  calibrated test);
* ``servegen.F9.correlation`` -- reason and answer lengths correlate more strongly than input and
  output: :func:`~servelab.fitting.correlation_tests.correlation_difference_test` on the two
  Spearman correlations (Fisher z, a practical margin);
* ``servegen.F9.bimodal`` -- the per-request reason ratio is bimodal (dip test on the original
  scale and separated modes, Ashman's D > 2);
* ``servegen.F11.bimodal_clients`` -- top clients show the bimodal ratio too: holds when at least
  half of the top clients (>= :data:`MIN_CLIENT_N` requests) whose test could tell are bimodal
  (clients whose test is inconclusive are not counted).

Not applicable, with the reason, on traces without ``reason_tokens``. Never imports matplotlib.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl

from servelab.analysis import reasoning as R
from servelab.analysis.budget import Budget
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding, FindingList, Verdict, not_applicable
from servelab.analysis.lengths import io_correlation
from servelab.analysis.store import TraceStore
from servelab.fitting.exceptions import InsufficientDataError
from servelab.fitting.correlation_tests import correlation_difference_test
from servelab.fitting.modality import lattice_bimodality
from servelab.fitting.verdicts import NullTest

__all__ = ["ReasoningEvidence", "measure_reasoning", "reasoning_findings", "MIN_CLIENT_N", "TOP_CLIENTS"]

#: this area's findings, in order (each finding function registers itself: ``@FINDINGS.register``)
FINDINGS = FindingList()

#: fewest requests a client needs for its own bimodality test
MIN_CLIENT_N = 500
#: clients tested for Finding 11
TOP_CLIENTS = 5

_SRC9 = "ServeGen (2025) §5.1, Finding 9, Fig. 13"
_SRC11 = "ServeGen (2025) §5.3, Finding 11, Fig. 17(c)"


@dataclass(frozen=True)
class ReasoningEvidence:
    """Tables and results of :func:`measure_reasoning` (no request rows).

    ``tables``: ``counts``, ``summary``, ``reason_answer_correlation``, ``io_correlation``,
    ``ratio_pmf``, ``ratio_pmf_by_client``, ``clients`` (with per-client bimodality columns).
    """

    tables: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    ratio_bimodality: NullTest | None = None
    skipped: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "skipped", MappingProxyType(dict(self.skipped)))
        object.__setattr__(self, "notes", tuple(self.notes))


def measure_reasoning(store: TraceStore, *, seed: int = 0, budget: Budget = Budget.full()) -> ReasoningEvidence:
    """Run the reasoning analyses once; never raises for a trace without ``reason_tokens``.

    The bimodality tests read at most ``budget.max_bimodality_n`` ratios (full 50,000, quick 20,000).
    """
    try:
        counts = R.reasoning_counts(store)
    except NotApplicableError as err:
        return ReasoningEvidence(skipped={"reasoning": err.reason})
    tables: dict[str, pl.DataFrame] = {"counts": counts}
    skipped: dict[str, str] = {}
    if int(counts["n_used"][0]) == 0:
        return ReasoningEvidence(tables=tables, skipped={"reasoning": "no non-failed request has reason_tokens"})
    tables["summary"] = R.reason_summary(store)
    tables["reason_answer_correlation"] = R.reason_answer_correlation(store, seed=seed)
    if store.has("input_tokens"):
        tables["io_correlation"] = io_correlation(store, seed=seed)
    tables["ratio_pmf"] = R.reason_ratio_pmf(store)
    max_n = budget.max_bimodality_n
    bim = None
    try:
        bim = lattice_bimodality(R.reason_ratios(store, max_n=max_n, seed=seed), lattice=None, log=False,
                                 max_n=max_n, seed=seed)
    except (InsufficientDataError, NotApplicableError) as err:
        skipped["ratio bimodality"] = str(getattr(err, "reason", err))
    if store.has("client_id"):
        clients = R.client_reason_ratios(store, top=TOP_CLIENTS, min_n=MIN_CLIENT_N)
        rows = []
        for cid in clients["client_id"].to_list():
            try:
                b = lattice_bimodality(R.reason_ratios(store, max_n=max_n, seed=seed, client=cid), lattice=None,
                                       log=False, max_n=max_n, seed=seed)
                rows.append({"client_id": cid, "bimodal": b.decision.value == "holds", "decision": b.decision.value,
                             "dip": b.value, "dip_p_value": b.p_value, "ashman_d": b.effect_value, "power": b.power})
            except (InsufficientDataError, NotApplicableError):
                rows.append({"client_id": cid, "bimodal": None, "decision": "inconclusive", "dip": None,
                             "dip_p_value": None, "ashman_d": None, "power": None})
        schema = {"client_id": pl.String, "bimodal": pl.Boolean, "decision": pl.String, "dip": pl.Float64,
                  "dip_p_value": pl.Float64, "ashman_d": pl.Float64, "power": pl.Float64}
        tables["clients"] = clients.join(pl.DataFrame(rows, schema=schema), on="client_id", how="left") if rows else clients
        tables["ratio_pmf_by_client"] = R.reason_ratio_pmf(store, by="client", top=TOP_CLIENTS)
    else:
        skipped["clients"] = "the trace has no 'client_id' column"
    return ReasoningEvidence(tables=tables, ratio_bimodality=bim, skipped=skipped)


def reasoning_findings(ev: ReasoningEvidence) -> list[Finding]:
    """Findings 9 and 11 (data part) with verdicts; see the module docstring."""
    return FINDINGS(ev)


def _why(ev: ReasoningEvidence, *names: str) -> str:
    for n in (*names, "reasoning"):
        if n in ev.skipped:
            return ev.skipped[n]
    return "the trace has no 'reason_tokens' column"


def _stat(ev: ReasoningEvidence, column: str, stat: str) -> float:
    t = ev.tables["summary"].filter(pl.col("column") == column)
    return float(t[stat][0]) if t.height and t[stat][0] is not None else float("nan")


@FINDINGS.register
def _longer(ev: ReasoningEvidence) -> Finding:
    fid = "servegen.F9.longer"
    stmt = "Reasoning workloads have longer and more variable outputs, because of the reason tokens."
    figs = ("servegen.fig13",)
    if "summary" not in ev.tables:
        return not_applicable(fid, stmt, _SRC9, _why(ev), figs)
    m = {"mean_reason": _stat(ev, "reason_tokens", "mean"), "mean_answer": _stat(ev, "answer_tokens", "mean"),
         "mean_output": _stat(ev, "output_tokens", "mean"), "cv_output": _stat(ev, "output_tokens", "cv"),
         "cv_answer": _stat(ev, "answer_tokens", "cv"), "cv_reason": _stat(ev, "reason_tokens", "cv")}
    ok = m["mean_reason"] > m["mean_answer"] and m["cv_output"] > m["cv_answer"]
    longer_only = m["mean_reason"] > m["mean_answer"]
    v = Verdict.HOLDS if ok else (Verdict.INCONCLUSIVE if longer_only else Verdict.DOES_NOT_HOLD)
    return Finding(fid, stmt, _SRC9, v, m, f"mean reason {m['mean_reason']:.4g} vs answer {m['mean_answer']:.4g} tokens; "
                   f"output CV {m['cv_output']:.3g} vs answer CV {m['cv_answer']:.3g}", figs)


@FINDINGS.register
def _correlation(ev: ReasoningEvidence) -> Finding:
    fid = "servegen.F9.correlation"
    stmt = "Reason and answer lengths correlate more strongly (positively) than input and output lengths."
    figs = ("servegen.fig13",)
    t = ev.tables.get("reason_answer_correlation")
    if t is None or t.height == 0:
        return not_applicable(fid, stmt, _SRC9, _why(ev), figs)
    ra = t.row(0, named=True)
    m: dict[str, Any] = {"spearman_reason_answer": ra["spearman"], "pearson_reason_answer": ra["pearson"]}
    io = ev.tables.get("io_correlation")
    if io is None or io.height == 0:
        return Finding(fid, stmt, _SRC9, Verdict.INCONCLUSIVE, m, "no input_tokens to compare with", figs)
    m["spearman_input_output"] = io["spearman"][0]
    s_ra, s_io = m["spearman_reason_answer"], m["spearman_input_output"]
    if s_ra is None or s_io is None or not (math.isfinite(s_ra) and math.isfinite(s_io)):
        return Finding(fid, stmt, _SRC9, Verdict.INCONCLUSIVE, m, "a correlation is undefined (constant column)", figs)
    try:
        test = correlation_difference_test(s_ra, int(ra["spearman_n"]), s_io, int(io["spearman_n"][0]),
                                           labels=("reason/answer", "input/output"))
    except ValueError as err:
        return Finding(fid, stmt, _SRC9, Verdict.INCONCLUSIVE, m, f"the correlation test could not run: {err}", figs)
    m["difference_p_value"] = test.p_value
    return Finding(fid, stmt, _SRC9, test.decision, m,
                   f"{test.decision.value}: Spearman reason/answer {s_ra:.3g} vs input/output {s_io:.3g}; null = "
                   f"{test.null}; {test.statistic} = {test.value:.4g}, {test.reason}", figs, tests=(test,))


@FINDINGS.register
def _bimodal(ev: ReasoningEvidence) -> Finding:
    fid = "servegen.F9.bimodal"
    stmt = "The per-request reason ratio (reason / output tokens) has a bimodal distribution."
    figs = ("servegen.fig13",)
    b = ev.ratio_bimodality
    if b is None:
        return not_applicable(fid, stmt, _SRC9, _why(ev, "ratio bimodality"), figs)
    m = {"n": b.n, "dip": b.value, "dip_p_value": b.p_value, "ashman_d": b.effect_value}
    return Finding(fid, stmt, _SRC9, b.decision, m, f"{b.decision.value}: null = {b.null}; {b.statistic} = "
                   f"{b.value:.4g}, {b.reason}", figs, tests=(b,))


@FINDINGS.register
def _clients(ev: ReasoningEvidence) -> Finding:
    fid = "servegen.F11.bimodal_clients"
    stmt = "Clients of reasoning workloads show the bimodal reason-ratio pattern individually."
    figs = ("servegen.fig13",)
    t = ev.tables.get("clients")
    if t is None:
        return not_applicable(fid, stmt, _SRC11, _why(ev, "clients"), figs)
    tested = t.filter(pl.col("bimodal").is_not_null()) if "bimodal" in t.columns else t.clear()
    if tested.height == 0:
        return not_applicable(fid, stmt, _SRC11, f"no client has {MIN_CLIENT_N} or more reasoning requests", figs)
    decidable = tested.filter(pl.col("decision") != "inconclusive")
    k = int(decidable["bimodal"].sum())
    m = {"clients_tested": tested.height, "clients_decidable": decidable.height, "clients_bimodal": k,
         "share_bimodal": k / decidable.height if decidable.height else None}
    why = (f"{k} of the {decidable.height} top clients (>= {MIN_CLIENT_N} requests) whose test could tell have a "
           f"bimodal reason ratio (lattice_bimodality per client: dip test at level 0.05 and Ashman's D > 2; "
           f"{tested.height - decidable.height} of {tested.height} inconclusive, not counted); holds when at least half do")
    if decidable.height == 0:
        return Finding(fid, stmt, _SRC11, Verdict.INCONCLUSIVE, m, why, figs)
    v = Verdict.HOLDS if k * 2 >= decidable.height else Verdict.DOES_NOT_HOLD
    return Finding(fid, stmt, _SRC11, v, m, why, figs)

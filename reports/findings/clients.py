"""Client findings: ServeGen Finding 5 (skewed, heterogeneous clients whose rate fluctuations
explain the workload's shifts), Finding 8 (multimodal top clients are diverse and explain the
multimodal load) and Finding 11 (reasoning clients: less skewed, less bursty, bimodal reason
ratio).

:func:`measure_clients` runs the decomposition once
(:func:`servelab.analysis.clients.decompose_clients`) and, for reasoning traces, the bimodality
test of the top clients' per-request reason ratios (:func:`servelab.fitting.mixtures.bimodality`),
and keeps small tables only. The builders turn that into :class:`Finding` records with the
measured numbers and the rule behind each verdict; for a trace without client ids they return
not-applicable findings saying so. This module never imports matplotlib.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from servelab.analysis.clients import (
    ClientDecomposition,
    decompose_clients,
    stability_overview,
)
from servelab.analysis.budget import Budget
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding, Verdict, not_applicable
from servelab.analysis.store import TraceStore
from servelab.fitting.exceptions import InsufficientDataError
from servelab.fitting.proportion_tests import proportion_test

__all__ = [
    "EXPLAINED_R2",
    "HETEROGENEITY_SD",
    "NOISE_LIMIT",
    "PAPER_CALM_SHARE",
    "SKEW_CLIENT_SHARE",
    "ClientEvidence",
    "client_findings",
    "measure_clients",
    "servegen_f5",
    "servegen_f8",
    "servegen_f11",
]

#: skewed: the top clients carrying 90 % of requests are at most this share of all clients
SKEW_CLIENT_SHARE = 0.2
#: "largely explains": the mix recomposition reproduces at least this share of the variance
EXPLAINED_R2 = 0.5
#: heterogeneous: clients' mean log10 values spread by at least this (a factor of ~1.26)
HETEROGENEITY_SD = 0.1
#: a statistic "shifts" only if the window means' sampling noise is below this share of their variance
NOISE_LIMIT = 0.5
#: share of clients with a typical CV <= 1 at which F11's "not bursty" test has its power (ServeGen
#: Fig. 17: most reasoning clients have CV below 1; the paper gives no number, 0.7 is "clearly most")
PAPER_CALM_SHARE = 0.7
#: top clients examined one by one (figures, bimodality)
TOP_CLIENTS = 5

_F5 = ("servegen.F5", ("Real-world workloads consist of heterogeneous clients with skewed arrival rates. The top "
                      "clients and their rate fluctuations largely explain the shifting workload patterns."),
       "ServeGen (2025), Finding 5, §3.3, Fig. 6")
_F8 = ("servegen.F8", ("Top clients in multimodal workloads exhibit diverse behaviors, and characterizing them "
                      "helps explain the overall workload patterns."), "ServeGen (2025), Finding 8, §4.3, Fig. 12")
_F11 = ("servegen.F11", ("Clients in reasoning workloads exhibit less skewed rates and less bursty arrivals, while "
                        "also showing the bimodal pattern in terms of data distributions."), "ServeGen (2025), Finding 11, §5.3, Fig. 17")


@dataclass(frozen=True)
class ClientEvidence:
    """Client tables of one trace (small summaries only).

    Attributes
    ----------
    decomposition : ClientDecomposition or None
        None when the decomposition does not apply (``reason`` says why).
    stability : polars.DataFrame or None
        :func:`servelab.analysis.clients.stability_overview` over the top clients.
    top_ids : tuple of str
        The :data:`TOP_CLIENTS` largest clients.
    reason_bimodality : polars.DataFrame or None
        Per top client with reasoning data: ``client_id``, ``n``, ``dip_p_value``, ``delta_bic``,
        ``bimodal``.
    reason_histograms : polars.DataFrame or None
        Per top client, the histogram of per-request reason ratios (``client_id``, ``bin_lo``,
        ``bin_hi``, ``density``) for ServeGen Fig. 17c.
    reason : str
        Why the decomposition does not apply (empty when it does).
    notes : tuple of str
    reasoning_tested : bool
        True when the trace has the client, reason and output columns the bimodality test reads.
    budget : Budget
        The budget it was measured under.
    min_requests : int
        Fewest requests of a window whose CV and lengths count for stability.
    """

    decomposition: ClientDecomposition | None
    stability: pl.DataFrame | None = None
    top_ids: tuple[str, ...] = ()
    reason_bimodality: pl.DataFrame | None = None
    reason_histograms: pl.DataFrame | None = None
    reason: str = ""
    notes: tuple[str, ...] = field(default=())
    reasoning_tested: bool = False
    budget: Budget = Budget.full()
    min_requests: int = 10


def measure_clients(store: TraceStore, *, window_s: float = 600.0, min_requests: int = 10,
                    seed: int = 0, budget: Budget = Budget.full(), max_reason_n: int | None = None,
                    length_quantiles: bool = True) -> ClientEvidence:
    """Run the client decomposition (and the reasoning bimodality tests) once.

    Never raises for a trace without client ids: the evidence then carries the reason.
    ``length_quantiles`` is passed to :func:`~servelab.analysis.clients.decompose_clients`.
    The bimodality test of each top client reads at most ``max_reason_n`` ratios (default: the
    budget's ``max_reason_n``: 20,000 full, 5,000 quick).
    """
    max_reason_n = budget.max_reason_n if max_reason_n is None else max_reason_n
    tested = store.has("client_id", "reason_tokens", "output_tokens")
    try:
        dec = decompose_clients(store, window_s=window_s, min_requests=min_requests,
                                length_quantiles=length_quantiles)
    except NotApplicableError as err:
        return ClientEvidence(decomposition=None, reason=err.reason, reasoning_tested=tested, budget=budget,
                              min_requests=min_requests)
    top = tuple(dec.ranking.head(TOP_CLIENTS)["client_id"].to_list())
    stab = stability_overview(dec.stability, dec.ranking, top=min(dec.top90, 10))
    bimod = hist = None
    notes: list[str] = []
    if tested:
        bimod, hist, more = _reason_per_top_client(store, top, seed=seed, max_n=max_reason_n)
        notes += more
    return ClientEvidence(decomposition=dec, stability=stab, top_ids=top, reason_bimodality=bimod,
                          reason_histograms=hist, notes=tuple(notes), reasoning_tested=tested,
                          budget=budget, min_requests=min_requests)


def _reason_per_top_client(store: TraceStore, top: tuple[str, ...], *, seed: int, max_n: int):
    from servelab.fitting.mixtures import bimodality

    ids = ", ".join("'" + c.replace("'", "''") + "'" for c in top)
    # a seeded sample of at most max_n ratios per top client, drawn in SQL
    sample = store.query(
        f"SELECT client_id, reason_tokens::DOUBLE / output_tokens AS ratio FROM ("
        f"  SELECT *, row_number() OVER (PARTITION BY client_id ORDER BY hash(request_id + {int(seed)})) AS k_"
        f"  FROM requests WHERE client_id IN ({ids}) AND output_tokens > 0 AND reason_tokens IS NOT NULL"
        f") WHERE k_ <= {int(max_n)}")
    rows, hists, notes = [], [], []
    edges = np.linspace(0.0, 1.0, 41)
    for cid in top:  # a handful of top clients, not a loop over requests
        x = sample.filter(pl.col("client_id") == cid)["ratio"].to_numpy()
        if x.size == 0:
            continue
        dens, _ = np.histogram(np.clip(x, 0, 1), bins=edges, density=True)
        hists.append(pl.DataFrame({"client_id": [cid] * dens.size, "bin_lo": edges[:-1], "bin_hi": edges[1:], "density": dens}))
        try:
            b = bimodality(x, seed=seed)
        except InsufficientDataError as err:
            notes.append(f"client {cid}: bimodality not tested ({err})")
            continue
        rows.append({"client_id": cid, "n": b.n, "dip_p_value": b.dip_p_value, "delta_bic": b.delta_bic,
                     "bimodal": b.bimodal})
    schema = {"client_id": pl.String, "n": pl.Int64, "dip_p_value": pl.Float64, "delta_bic": pl.Float64, "bimodal": pl.Boolean}
    return (pl.DataFrame(rows, schema=schema), pl.concat(hists) if hists else None, notes)


def _attr(dec: ClientDecomposition, statistic: str) -> dict | None:
    rows = dec.attribution.filter(pl.col("statistic") == statistic)
    return rows.row(0, named=True) if rows.height else None


def _between_sd(dec: ClientDecomposition, statistic: str) -> float | None:
    rows = dec.stability.filter((pl.col("statistic") == statistic) & pl.col("between_sd").is_not_null())
    return float(rows["between_sd"][0]) if rows.height else None


def _fin(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def servegen_f5(ev: ClientEvidence) -> Finding:
    """ServeGen Finding 5.

    Rule: *skewed* when the clients carrying 90 % of requests are at most
    :data:`SKEW_CLIENT_SHARE` of all clients (needs at least 10 clients); *explained* when the
    clients carrying 90 % of requests account for at least :data:`EXPLAINED_R2` of the
    aggregate rate's variance across windows, and the mix-only recomposition reproduces at
    least that share of the across-window variance of every mean length that shifts beyond its
    sampling noise (noise share < :data:`NOISE_LIMIT`). Holds when both, does not hold when
    neither, inconclusive otherwise. Heterogeneity (between-client spread of CV and lengths)
    and the top clients' stability are reported beside the verdict.
    """
    if ev.decomposition is None:
        return not_applicable(*_F5, reason=f"client decomposition needs client ids: {ev.reason}", figures=("servegen.fig6",))
    d = ev.decomposition
    rate = _attr(d, "rate")
    measured: dict = {
        "clients": d.n_clients, "top_clients_50pct": d.top50, "top_clients_90pct": d.top90,
        "top90_client_share": d.top90 / d.n_clients, "rows_without_client": d.null_client_rows,
        "window_s": d.window_s, "windows": rate["windows"] if rate else 0,
        "rate_variance_share_top90": _fin(rate["r2_mix_levels"]) if rate else None,
    }
    shifting, explained = [], []
    for stat in ("mean_input", "mean_output", "cv"):
        a = _attr(d, stat)
        if a is None:
            continue
        measured[f"{stat}_mix_r2"] = _fin(a["r2_mix_levels"])
        measured[f"{stat}_behaviour_r2"] = _fin(a["r2_behaviour_levels"])
        measured[f"{stat}_mix_r2_changes"] = _fin(a["r2_mix_changes"])
        if stat != "cv":
            measured[f"{stat}_noise_share"] = _fin(a["noise_share"])
            if a["noise_share"] is not None and math.isfinite(a["noise_share"]) and a["noise_share"] < NOISE_LIMIT:
                shifting.append(stat)
                explained.append(bool(a["r2_mix_levels"] >= EXPLAINED_R2))
    for stat in ("cv", "mean_input", "mean_output"):
        measured[f"between_client_sd_log10_{stat}"] = _between_sd(d, stat)
    if ev.stability is not None:
        for row in ev.stability.iter_rows(named=True):
            measured[f"top_stability_ratio_{row['statistic']}"] = _fin(row["median_ratio_top"])
    skew_known = d.n_clients >= 10
    skewed = skew_known and d.top90 / d.n_clients <= SKEW_CLIENT_SHARE
    rate_share = measured["rate_variance_share_top90"]
    rate_ok = rate_share is not None and rate_share >= EXPLAINED_R2
    explain = rate_ok and all(explained)
    parts = [
        f"{d.top90} of {d.n_clients} clients carry 90 % of requests ({d.top50} carry 50 %)",
        f"they account for {rate_share:.0%} of the aggregate rate's variance across {d.window_s:g}-s windows"
        if rate_share is not None else "the aggregate rate does not vary across windows",
    ]
    if shifting:
        parts.append("client-mix-only recomposition explains " + ", ".join(
            f"{measured[f'{s}_mix_r2']:.0%} of the {s.replace('_', ' ')} shift" for s in shifting))
    else:
        parts.append("no mean length shifts beyond its sampling noise, so only the rate part is judged")
    if not skew_known:
        verdict = Verdict.INCONCLUSIVE
        parts.append("fewer than 10 clients: skew cannot be judged")
    elif skewed and explain:
        verdict = Verdict.HOLDS
    elif not skewed and not explain:
        verdict = Verdict.DOES_NOT_HOLD
    else:
        verdict = Verdict.INCONCLUSIVE
        parts.append(f"only one part holds (skewed: {skewed}; mix explains the shifts: {explain})")
    return Finding(id=_F5[0], statement=_F5[1], source=_F5[2], verdict=verdict, measured=measured,
                   reason="; ".join(parts), figures=("servegen.fig6",))


def servegen_f8(ev: ClientEvidence) -> Finding:
    """ServeGen Finding 8.

    Rule: applies when the trace has multimodal token columns. *Diverse* when the top clients'
    mean multimodal share of the input spans at least 0.3, or the between-client spread of its
    log10 is at least :data:`HETEROGENEITY_SD`; *explains* when the client-mix recomposition
    reproduces at least :data:`EXPLAINED_R2` of the across-window variance of the multimodal
    share. Holds when both, does not hold when neither, inconclusive otherwise.
    """
    if ev.decomposition is None:
        return not_applicable(*_F8, reason=f"client decomposition needs client ids: {ev.reason}", figures=("servegen.fig12",))
    d = ev.decomposition
    if "mean_mm_ratio" not in d.window_stats.columns:
        return not_applicable(*_F8, reason="the trace has no multimodal token columns (image/audio/video_tokens "
                              "with input_tokens)", figures=("servegen.fig12",))
    top = d.summary.filter(pl.col("client_id").is_in(list(ev.top_ids)) & pl.col("mean_mm_ratio").is_not_null())
    spread = float(top["mean_mm_ratio"].max() - top["mean_mm_ratio"].min()) if top.height >= 2 else None
    sd = _between_sd(d, "mean_mm_ratio")
    a = _attr(d, "mean_mm_ratio")
    r2 = _fin(a["r2_mix_levels"]) if a else None
    measured = {"clients": d.n_clients, "top_clients": top.height, "top_mm_share_range": spread,
                "between_client_sd_log10_mm_share": sd, "mm_share_mix_r2": r2,
                "mm_share_behaviour_r2": _fin(a["r2_behaviour_levels"]) if a else None}
    diverse = (spread is not None and spread >= 0.3) or (sd is not None and sd >= HETEROGENEITY_SD)
    explains = r2 is not None and r2 >= EXPLAINED_R2
    reason = (f"top clients' mean multimodal share of the input spans {spread if spread is not None else float('nan'):.2f}; "
              f"the client-mix recomposition explains {r2 if r2 is not None else float('nan'):.0%} of its shift across windows")
    verdict = Verdict.HOLDS if diverse and explains else Verdict.DOES_NOT_HOLD if not diverse and not explains \
        else Verdict.INCONCLUSIVE
    return Finding(id=_F8[0], statement=_F8[1], source=_F8[2], verdict=verdict, measured=measured, reason=reason,
                   figures=("servegen.fig12",))


def _gini(counts: np.ndarray) -> float:
    x = np.sort(np.asarray(counts, dtype=float))
    n = x.size
    if n == 0 or x.sum() == 0:
        return float("nan")
    return float(1 - 2 * np.sum(np.cumsum(x) / x.sum()) / n + 1 / n)


def servegen_f11(ev: ClientEvidence) -> Finding:
    """ServeGen Finding 11.

    Rule: applies when the trace has reasoning tokens. *Less bursty*: an exact binomial test
    (:func:`~servelab.fitting.proportion_tests.proportion_test`) that more than half of the
    clients with a measurable CV (a window with at least ``min_requests`` requests) have a
    typical CV <= 1 (power at :data:`PAPER_CALM_SHARE`); *bimodal* when most tested top clients'
    per-request reason ratios are bimodal (dip test and two-Gaussian BIC,
    :func:`servelab.fitting.mixtures.bimodality`; not yet calibrated). Holds when both, does not
    hold when neither, inconclusive otherwise. "Less skewed" needs a
    comparison between workloads: the share of top clients and the Gini coefficient of request
    counts are reported for that (ServeGen: 10 of 25,913 clients carry half of deepseek-r1).
    """
    if ev.decomposition is None:
        return not_applicable(*_F11, reason=f"client decomposition needs client ids: {ev.reason}", figures=("servegen.fig17",))
    d = ev.decomposition
    if ev.reason_bimodality is None:
        return not_applicable(*_F11, reason="the trace has no reason_tokens column (not a reasoning workload)",
                              figures=("servegen.fig17",))
    cvs = d.summary["cv"].drop_nulls()
    share_calm = float((cvs <= 1).mean()) if cvs.len() else None
    calm_test = proportion_test(int((cvs <= 1).sum()), int(cvs.len()), threshold=0.5, paper_share=PAPER_CALM_SHARE,
                                what="clients with a typical CV <= 1") if cvs.len() else None
    b = ev.reason_bimodality
    n_bimodal = int(b["bimodal"].sum()) if b.height else 0
    measured = {
        "clients": d.n_clients, "top_clients_50pct": d.top50, "top_clients_90pct": d.top90,
        "gini_requests": _gini(d.ranking["requests"].to_numpy()),
        "clients_with_cv": cvs.len(), "share_clients_cv_le_1": share_calm,
        "top_clients_tested": b.height, "top_clients_bimodal": n_bimodal,
    }
    calm = calm_test.decision if calm_test is not None else Verdict.INCONCLUSIVE
    bimodal = b.height > 0 and n_bimodal * 2 > b.height
    measured["calm_p_value"] = calm_test.p_value if calm_test is not None else None
    calm_text = (f"not bursty [{calm.value}]: null = {calm_test.null}; {calm_test.statistic} = {calm_test.value:.4g}, "
                 f"{calm_test.reason}") if calm_test is not None else "not bursty: no client has a measurable CV"
    reason = (f"{share_calm if share_calm is not None else float('nan'):.0%} of {cvs.len()} clients have a typical CV <= 1; "
              f"{calm_text}; {n_bimodal} of {b.height} top clients have a bimodal reason ratio; "
              f"{d.top50} of {d.n_clients} clients carry half of the requests")
    if calm is Verdict.HOLDS and bimodal:
        verdict = Verdict.HOLDS
    elif calm is Verdict.DOES_NOT_HOLD and not bimodal:
        verdict = Verdict.DOES_NOT_HOLD
    else:
        verdict = Verdict.INCONCLUSIVE
    return Finding(id=_F11[0], statement=_F11[1], source=_F11[2], verdict=verdict, measured=measured, reason=reason,
                   figures=("servegen.fig17",), tests=(calm_test,) if calm_test is not None else ())


def client_findings(evidence: ClientEvidence) -> list[Finding]:
    """Findings 5, 8 and 11 (not applicable, with reasons, where they do not apply)."""
    return [servegen_f5(evidence), servegen_f8(evidence), servegen_f11(evidence)]

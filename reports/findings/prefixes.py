"""Prefix-reuse findings (issue 15): how much of the prompt load a prefix (KV) cache saves.

:func:`measure_prefixes` runs :func:`servelab.analysis.prefix_analysis.analyse_prefixes` once and
keeps its small tables and numbers in a :class:`PrefixEvidence`. No paper states a prefix-reuse
number, so the findings are servelab's own claims, each decided against a stated standard by
its seeded cluster-bootstrap interval (not by a bare number):

``prefixes.reuse``
    Prompts share enough to matter: an infinite prefix cache serves more than
    :data:`MATERIAL_SAVING` of the prompt tokens. Null: the token hit rate is at most that.
``prefixes.capacity``
    A cache much smaller than the working set keeps most of that saving: an LRU cache of the
    reference capacity (10% of the trace's distinct blocks by default) keeps more than
    :data:`KEPT_SHARE` of the infinite cache's saving. Null: it keeps at most that share.

Decision (the same for both): **holds** when the whole interval lies above the standard,
**does not hold** when it lies wholly below, **inconclusive** when it straddles it or could not
be computed (fewer than 20 clusters). A trace without ``prefix_blocks`` gets not-applicable
findings that say why. This module never imports matplotlib.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from servelab.analysis.budget import Budget
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding, FindingList, Verdict, not_applicable
from servelab.analysis.prefix_analysis import PrefixAnalysis, analyse_prefixes
from servelab.analysis.prefix_reuse import DEFAULT_BLOCK_SIZE
from servelab.analysis.prefix_savings import SavingEstimate
from servelab.analysis.store import TraceStore
from servelab.fitting.verdicts import NullTest

__all__ = [
    "KEPT_SHARE",
    "MATERIAL_SAVING",
    "PrefixEvidence",
    "capacity_finding",
    "interval_test",
    "measure_prefixes",
    "prefix_findings",
    "reuse_finding",
]

#: this area's findings, in order (each finding function registers itself: ``@FINDINGS.register``)
FINDINGS = FindingList()

#: servelab's practical standard: a cache that saves at most this share of prompt tokens does not matter
MATERIAL_SAVING = 0.10
#: "most of the saving": the reference LRU cache must keep more than this share of it
KEPT_SHARE = 0.5

_SOURCE = "servelab standard (issue 15: prefix reuse); no paper states a prefix-reuse figure"
_REUSE = ("prefixes.reuse", f"Prompts share prefixes: an infinite prefix cache serves more than {MATERIAL_SAVING:.0%} "
          "of the prompt tokens.")
_CAPACITY = ("prefixes.capacity", "An LRU prefix cache much smaller than the working set keeps most of the reuse: "
             f"a cache of the reference capacity keeps more than {KEPT_SHARE:.0%} of an infinite cache's saving.")
_FIGURES = ("prefixes.hit_rate", "prefixes.sources")


@dataclass(frozen=True)
class PrefixEvidence:
    """What the prefixes area measured.

    Attributes
    ----------
    analysis : PrefixAnalysis or None
        None when the trace has no prefix blocks (``reason`` says why).
    reason : str
    budget : Budget
    window_s : float
        Window of the per-window tables (s).
    notes : tuple of str
    """

    analysis: PrefixAnalysis | None
    reason: str = ""
    budget: Budget = Budget.full()
    window_s: float = 3600.0
    notes: tuple[str, ...] = ()


def measure_prefixes(store: TraceStore, *, budget: Budget = Budget.full(), seed: int = 0,
                     block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                     capacities: np.ndarray | None = None, reference: int | None = None, sources: bool = True,
                     linking=None, exact: bool | None = None) -> PrefixEvidence:
    """Run the prefix analysis once (``budget.n_boot`` bootstrap resamples, ``seed``).

    Above ``budget.max_requests`` requests (quick mode) the reuse sources are skipped: they link
    the conversations, the costliest step; every other number is still the whole trace's.
    ``exact`` (None: exact up to ``budget.prefix_exact_max_blocks`` prompt blocks, sampled above
    with ``budget.prefix_sample_blocks``; see
    :func:`~servelab.analysis.prefix_analysis.analyse_prefixes`).
    """
    skipped = ()
    if sources and budget.max_requests is not None and store.n_requests > budget.max_requests:
        sources = False
        skipped = (f"{budget.label} mode: reuse sources skipped ({store.n_requests:,} requests, more than "
                   f"{budget.max_requests:,}; they link the conversations)",)
    try:
        res = analyse_prefixes(store, block_size=block_size, window_s=window_s, capacities=capacities,
                               reference=reference, sources=sources, linking=linking, n_boot=budget.n_boot, seed=seed,
                               exact=exact, exact_max_blocks=budget.prefix_exact_max_blocks,
                               sample_blocks=budget.prefix_sample_blocks)
    except NotApplicableError as err:
        return PrefixEvidence(analysis=None, reason=str(err), budget=budget, window_s=window_s)
    if res.sources is None and res.notes and res.notes[0].startswith("sampled analysis"):
        notes = skipped + (f"intervals: {res.infinite.method}; infinite-cache counts are the whole trace's, the LRU "
                           "curve and the reference capacity's saving come from a sample (see the notes below)",)
    else:
        notes = skipped + (f"the whole trace is analysed in every mode (a sample would change the cache's contents); "
                           f"intervals: {res.infinite.method}, with each block's cache outcome measured once on the "
                           "whole trace",)
    return PrefixEvidence(analysis=res, budget=budget, window_s=window_s, notes=notes)


def interval_test(est: SavingEstimate, *, threshold: float, null: str, statistic: str) -> NullTest:
    """Decide ``est > threshold`` by its bootstrap interval (see the module docstring)."""
    if math.isnan(est.low) or math.isnan(est.high):
        decision, reason = Verdict.INCONCLUSIVE, f"no interval: {est.n_clusters} {est.clusters}(s), fewer than 20"
    elif est.low > threshold:
        decision, reason = Verdict.HOLDS, (f"the {est.level:.0%} interval [{est.low:.3f}, {est.high:.3f}] lies above "
                                           f"{threshold:g}")
    elif est.high < threshold:
        decision, reason = Verdict.DOES_NOT_HOLD, (f"the {est.level:.0%} interval [{est.low:.3f}, {est.high:.3f}] "
                                                   f"lies below {threshold:g}")
    else:
        decision, reason = Verdict.INCONCLUSIVE, (f"the {est.level:.0%} interval [{est.low:.3f}, {est.high:.3f}] "
                                                  f"contains {threshold:g}")
    return NullTest(null=null, statistic=statistic, value=est.value, p_value=None, level=1 - est.level,
                    effect=statistic, effect_value=est.value, practical_threshold=threshold,
                    paper_effect=threshold, power=None, minimum_detectable_effect=None,
                    alternative="no paper effect: servelab's stated standard", method=est.method,
                    n=est.n_clusters, decision=decision, reason=reason, interval_low=est.low,
                    interval_high=est.high)


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1%}"


@FINDINGS.register
def reuse_finding(ev: PrefixEvidence) -> Finding:
    """``prefixes.reuse``: the infinite-cache token saving against :data:`MATERIAL_SAVING`."""
    id_, statement = _REUSE
    if ev.analysis is None:
        return not_applicable(id_, statement, _SOURCE, ev.reason, _FIGURES)
    a = ev.analysis
    est = a.infinite
    test = interval_test(est, threshold=MATERIAL_SAVING, statistic="infinite-cache token hit rate",
                         null=f"an infinite prefix cache serves at most {MATERIAL_SAVING:.0%} of the prompt tokens")
    measured = {"token_hit_rate": est.value, "interval_low": est.low, "interval_high": est.high,
                "block_hit_rate": a.reuse.block_hit_rate, "shared_token_share": a.sharing.shared_share,
                "clusters": est.clusters, "n_clusters": est.n_clusters}
    text = f"an infinite cache serves {_pct(est.value)} of prompt tokens ({_pct(est.low)}-{_pct(est.high)}, {est.method})"
    if a.sources is not None:
        shares = dict(zip(a.sources.table["source"], a.sources.table["token_share"]))
        measured.update({f"{k}_token_share": float(v) for k, v in shares.items()})
        text += "; from " + ", ".join(f"{k} {_pct(float(v))}" for k, v in shares.items())
    return Finding(id=id_, statement=statement, source=_SOURCE, verdict=test.decision, measured=measured,
                   reason=f"{test.decision.value}: {text}; {test.reason}", figures=_FIGURES, tests=(test,))


@FINDINGS.register
def capacity_finding(ev: PrefixEvidence) -> Finding:
    """``prefixes.capacity``: the share of the saving the reference LRU cache keeps, against :data:`KEPT_SHARE`."""
    id_, statement = _CAPACITY
    if ev.analysis is None:
        return not_applicable(id_, statement, _SOURCE, ev.reason, _FIGURES[:1])
    a = ev.analysis
    if a.reuse.hit_blocks == 0:
        return not_applicable(id_, statement, _SOURCE, "no block is ever reused: there is no saving to keep",
                              _FIGURES[:1])
    cap, kept, at = a.reference_capacity, a.kept, a.at_reference
    test = interval_test(kept, threshold=KEPT_SHARE, statistic="share of the infinite saving kept",
                         null=f"an LRU cache of {cap:,} blocks keeps at most {KEPT_SHARE:.0%} of the infinite cache's "
                              "saving")
    measured = {"reference_capacity_blocks": cap, "distinct_blocks": a.n_distinct_blocks,
                "token_hit_rate_at_reference": at.value, "hit_interval_low": at.low, "hit_interval_high": at.high,
                "kept_share": kept.value, "kept_interval_low": kept.low, "kept_interval_high": kept.high}
    text = (f"an LRU cache of {cap:,} blocks ({cap / a.n_distinct_blocks:.0%} of the {a.n_distinct_blocks:,} distinct "
            f"blocks) would save {_pct(at.value)} of prompt tokens ({_pct(at.low)}-{_pct(at.high)}), "
            f"{_pct(kept.value)} of the infinite cache's saving ({_pct(kept.low)}-{_pct(kept.high)})")
    return Finding(id=id_, statement=statement, source=_SOURCE, verdict=test.decision, measured=measured,
                   reason=f"{test.decision.value}: {text}; {test.reason}", figures=_FIGURES[:1], tests=(test,))


def prefix_findings(evidence: PrefixEvidence) -> list[Finding]:
    """The area's findings, in order."""
    return FINDINGS(evidence)

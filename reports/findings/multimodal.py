"""Multimodal findings: ServeGen Findings 6 and 7 (§4.1-4.2, Fig. 7 and 9).

:func:`measure_multimodal` runs :mod:`servelab.analysis.multimodal` once and keeps a
:class:`MultimodalEvidence`; :func:`multimodal_findings` returns:

* ``servegen.F6`` -- multimodal data distributions shift irregularly and independently, so the
  load differs across modalities: holds when the mean tokens per item of some modality varies
  across periods by more than :data:`ITEM_SHIFT_HOLDS` (max/min) or the per-window load of a
  modality correlates with the text load by less than :data:`INDEPENDENT_CORR` (Pearson);
* ``servegen.F7`` -- requests are heterogeneous, with diverse multimodal shares of their input:
  holds when the histogram of the per-request multimodal share (20 bins) has normalised entropy
  at least :data:`FLAT_ENTROPY_HOLDS` (a flat, diverse breakdown as in Fig. 9).

Not applicable, with the reason, on traces without modality columns. Never imports matplotlib.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl

from servelab.analysis import multimodal as M
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.findings import Finding, FindingList, Verdict, not_applicable
from servelab.analysis.store import TraceStore

__all__ = ["MultimodalEvidence", "measure_multimodal", "multimodal_findings", "ITEM_SHIFT_HOLDS",
           "INDEPENDENT_CORR", "FLAT_ENTROPY_HOLDS"]

#: this area's findings, in order (each finding function registers itself: ``@FINDINGS.register``)
FINDINGS = FindingList()

#: max/min of a modality's mean tokens per item across periods that counts as a shift (paper: 19 %)
ITEM_SHIFT_HOLDS = 1.1
#: Pearson correlation of text and modality load below which they move independently
INDEPENDENT_CORR = 0.5
#: normalised entropy of the share histogram from which the breakdown is "flat"
FLAT_ENTROPY_HOLDS = 0.8

_SRC6 = "ServeGen (2025) §4.1, Finding 6, Fig. 7"
_SRC7 = "ServeGen (2025) §4.2, Finding 7, Fig. 9"


@dataclass(frozen=True)
class MultimodalEvidence:
    """Tables and numbers of :func:`measure_multimodal` (no request rows).

    ``tables``: ``tokens_per_item``, ``items_per_request``, ``share_histogram``,
    ``text_mm_correlation``, ``load``, ``per_item_shift``; ``numbers``: share flatness and load
    independence scalars.
    """

    tables: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    numbers: Mapping[str, Any] = field(default_factory=dict)
    skipped: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "numbers", MappingProxyType(dict(self.numbers)))
        object.__setattr__(self, "skipped", MappingProxyType(dict(self.skipped)))


def measure_multimodal(store: TraceStore, *, seed: int = 0, window_s: float = 600.0) -> MultimodalEvidence:
    """Run the multimodal analyses once; never raises for a trace without modality columns."""
    tables: dict[str, pl.DataFrame] = {}
    numbers: dict[str, Any] = {}
    skipped: dict[str, str] = {}

    def attempt(name, fn):
        try:
            return fn()
        except NotApplicableError as err:
            skipped[name] = err.reason
        except ValueError as err:
            skipped[name] = str(err)
        return None

    for name, fn in (("tokens_per_item", lambda: M.tokens_per_item(store)),
                     ("items_per_request", lambda: M.items_per_request(store)),
                     ("text_mm_correlation", lambda: M.text_multimodal_correlation(store, seed=seed)),
                     ("load", lambda: M.modality_load(store, window_s=window_s)),
                     ("per_item_shift", lambda: M.per_item_shift(store))):
        t = attempt(name, fn)
        if t is not None:
            tables[name] = t
    share = attempt("share", lambda: M.multimodal_share(store))
    if share is not None:
        tables["share_histogram"] = share.histogram
        numbers.update({f"share_{k}": v for k, v in share.to_dict().items()})
    if "load" in tables:
        numbers.update(M.load_independence(tables["load"]).to_dict())
    return MultimodalEvidence(tables=tables, numbers=numbers, skipped=skipped)


def multimodal_findings(ev: MultimodalEvidence) -> list[Finding]:
    """Findings 6 and 7 with verdicts; see the module docstring."""
    return FINDINGS(ev)


@FINDINGS.register
def _f6(ev: MultimodalEvidence) -> Finding:
    fid = "servegen.F6"
    stmt = "Multimodal data distributions shift irregularly and independently, so load varies across modalities."
    figs = ("servegen.fig7", "servegen.fig8")
    shift = ev.tables.get("per_item_shift")
    if shift is None and "load" not in ev.tables:
        return not_applicable(fid, stmt, _SRC6, ev.skipped.get("per_item_shift") or ev.skipped.get("load")
                              or "the trace has no modality columns", figs)
    m: dict[str, Any] = {}
    shifting = []
    if shift is not None and shift.height:
        for mod, part in shift.group_by("modality", maintain_order=True):
            if part.height >= 2:
                r = float(part["max_min_ratio"][0])
                m[f"{mod[0]}_per_item_max_min"] = r
                if r > ITEM_SHIFT_HOLDS:
                    shifting.append(mod[0])
    independent = []
    for k, v in ev.numbers.items():
        if k.startswith("corr_text_") and isinstance(v, float) and math.isfinite(v):
            m[k] = v
            if v < INDEPENDENT_CORR:
                independent.append(k.removeprefix("corr_text_"))
        if k.startswith("cv_") and isinstance(v, float) and math.isfinite(v):
            m[f"load_{k}"] = v
    if not m:
        return not_applicable(fid, stmt, _SRC6, "no modality carries items in two periods or load in two windows", figs)
    v = Verdict.HOLDS if (shifting or independent) else Verdict.DOES_NOT_HOLD
    why = (f"tokens per item shift by > {ITEM_SHIFT_HOLDS} (max/min across periods) for: {shifting or 'none'}; "
           f"load independent of text (r < {INDEPENDENT_CORR}) for: {independent or 'none'}")
    return Finding(fid, stmt, _SRC6, v, m, why, figs)


@FINDINGS.register
def _f7(ev: MultimodalEvidence) -> Finding:
    fid = "servegen.F7"
    stmt = "Multimodal requests are heterogeneous, with diverse ratios of multimodal input per request."
    figs = ("servegen.fig9",)
    if "share_histogram" not in ev.tables:
        return not_applicable(fid, stmt, _SRC7, ev.skipped.get("share", "the trace has no modality columns"), figs)
    m = {k: ev.numbers[k] for k in ("share_n", "share_mean", "share_p10", "share_p50", "share_p90",
                                     "share_normalised_entropy", "share_ks_uniform", "share_share_text_heavy",
                                     "share_share_mm_heavy") if k in ev.numbers}
    h = m["share_normalised_entropy"]
    v = Verdict.HOLDS if h >= FLAT_ENTROPY_HOLDS else Verdict.DOES_NOT_HOLD
    return Finding(fid, stmt, _SRC7, v, m, f"normalised entropy of the 20-bin share histogram {h:.3g} "
                   f"(flat from {FLAT_ENTROPY_HOLDS}); shares from p10 {m['share_p10']:.3g} to p90 {m['share_p90']:.3g}", figs)

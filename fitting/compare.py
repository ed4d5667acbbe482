"""Rank distribution families on one sample (ServeGen Fig. 1d), and say when none is clearly best.

:func:`compare_families` subsamples very large samples (seeded, kept in arrival order, stated in
the notes), handles ties (:mod:`servelab.fitting.ties`), fits every family by maximum likelihood, optionally attaches
honest p-values (:mod:`servelab.fitting.gof`), and returns a frozen :class:`FamilyComparison`
whose :meth:`~FamilyComparison.table` ranks the families by AIC.

The rule for "clearly best" (:data:`CLEARLY_BEST_RULE`): the AIC-best family is clearly best when
every other family's delta-AIC is at least ``max(10, 2 per 1000 observations)`` *and* its KS
distance D is within the sampling noise ``1/sqrt(n)`` of the smallest D. The first part is the
usual "delta-AIC > 10 means essentially no support" scaled so that at n = 10^6 a misfit of a
thousandth of a nat per observation does not count as a clear win; the second asks that the two
criteria (likelihood, CDF distance) agree. Otherwise the verdict is "no family is clearly best".

:func:`compare_by_group` runs the comparison per group (client, window, ...) and returns one row
per group. Nothing here reads a store or plots.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl

from servelab.fitting.exceptions import InsufficientDataError
from servelab.fitting.families import ARRIVAL_FAMILIES, get_family
from servelab.fitting.fit import fit_family
from servelab.fitting.gof import goodness_of_fit
from servelab.fitting.result import FitResult, fits_table
from servelab.fitting.ties import prepare_sample

__all__ = [
    "FamilyComparison",
    "compare_families",
    "compare_by_group",
    "density_curves",
    "CLEARLY_BEST_RULE",
    "DELTA_AIC_MIN",
    "DELTA_AIC_PER_1000",
]

#: delta-AIC floor for a clear winner
DELTA_AIC_MIN = 10.0
#: delta-AIC per 1000 observations for a clear winner
DELTA_AIC_PER_1000 = 2.0

CLEARLY_BEST_RULE = (
    f"the AIC-best family is clearly best when every other family has delta-AIC >= max({DELTA_AIC_MIN:g}, "
    f"{DELTA_AIC_PER_1000:g} per 1000 observations) and its KS D is within 1/sqrt(n) of the smallest D"
)


@dataclass(frozen=True)
class FamilyComparison:
    """Families fitted to one sample, ranked by AIC.

    Parameters
    ----------
    results : tuple of FitResult
        One per family that could be fitted, best (lowest AIC) first.
    n : int
        Sample size the fits used (after tie handling and subsampling).
    n_input : int
        Size of the sample given.
    best : str or None
        AIC-best family (None when no family could be fitted).
    clearly_best : str or None
        ``best`` when it satisfies :data:`CLEARLY_BEST_RULE`, else None.
    verdict : str
        One sentence: which family is clearly best, or "no family is clearly best" and why.
    rule : str
        The rule used (:data:`CLEARLY_BEST_RULE`).
    failed : Mapping[str, str]
        Families that could not be fitted, with the error message.
    notes : tuple of str
        What was done to the sample (ties, subsampling).
    """

    results: tuple[FitResult, ...]
    n: int
    n_input: int
    best: str | None
    clearly_best: str | None
    verdict: str
    rule: str = CLEARLY_BEST_RULE
    failed: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(self.results))
        object.__setattr__(self, "failed", MappingProxyType(dict(self.failed)))
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def threshold(self) -> float:
        """Delta-AIC a runner-up must reach for the best family to be clearly best."""
        return clear_threshold(self.n)

    @property
    def ks_noise(self) -> float:
        """KS sampling noise ``1/sqrt(n)`` used by the rule."""
        return 1.0 / math.sqrt(self.n) if self.n else float("nan")

    def result(self, family: str) -> FitResult:
        """The fit of one family."""
        for r in self.results:
            if r.family == family:
                return r
        raise KeyError(f"family {family!r} was not fitted; fitted: {[r.family for r in self.results]}")

    def table(self) -> pl.DataFrame:
        """One row per family, ranked by AIC: params, log-likelihood, AIC, BIC, delta-AIC (also per
        1000 observations), delta-BIC (to the lowest BIC), KS D, p-value and its method."""
        # the per-family columns come from fits_table (one builder); the ranking columns are added here
        best_aic = self.results[0].aic if self.results else float("nan")
        best_bic = min((r.bic for r in self.results), default=float("nan"))
        return fits_table(self.results).with_columns(
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
            delta_aic=pl.col("aic") - best_aic,
            delta_aic_per_1000=(pl.col("aic") - best_aic) * 1000.0 / pl.col("n"),
            delta_bic=pl.col("bic") - best_bic,
            clearly_best=pl.col("family") == (self.clearly_best or ""),
        ).select(
            "rank", "family", "params", "n", "log_likelihood", "aic", "bic", "delta_aic",
            "delta_aic_per_1000", "delta_bic", "ks_distance", "p_value", "p_value_method", "converged",
            "clearly_best",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "results": [r.to_dict() for r in self.results],
            "n": self.n,
            "n_input": self.n_input,
            "best": self.best,
            "clearly_best": self.clearly_best,
            "verdict": self.verdict,
            "rule": self.rule,
            "failed": dict(self.failed),
            "notes": list(self.notes),
        }


def clear_threshold(n: int) -> float:
    """Delta-AIC needed for a clear win at sample size ``n``."""
    return max(DELTA_AIC_MIN, DELTA_AIC_PER_1000 * n / 1000.0)


def _verdict(results: Sequence[FitResult], n: int) -> tuple[str | None, str | None, str]:
    if not results:
        return None, None, "no family could be fitted"
    best = results[0]
    if len(results) == 1:
        return best.family, None, f"only {best.family} could be fitted; nothing to compare it with"
    runner = results[1]
    delta = runner.aic - best.aic
    threshold = clear_threshold(n)
    d_values = [r.ks_distance for r in results if r.ks_distance is not None]
    d_min = min(d_values) if d_values else float("nan")
    noise = 1.0 / math.sqrt(n)
    d_best = best.ks_distance if best.ks_distance is not None else float("nan")
    if delta < threshold:
        return best.family, None, (
            f"no family is clearly best: {best.family} has the lowest AIC but {runner.family} is only "
            f"{delta:.3g} behind (a clear win needs >= {threshold:.3g})"
        )
    if not d_best - d_min <= noise:
        d_winner = min(results, key=lambda r: r.ks_distance if r.ks_distance is not None else float("inf"))
        return best.family, None, (
            f"no family is clearly best: {best.family} has the lowest AIC (runner-up {runner.family} "
            f"{delta:.3g} behind) but {d_winner.family} has the smaller KS D ({d_min:.3g} vs {d_best:.3g}, "
            f"noise {noise:.3g})"
        )
    return best.family, best.family, (
        f"{best.family} is clearly best: runner-up {runner.family} is {delta:.3g} AIC behind "
        f"(>= {threshold:.3g}) and its KS D {d_best:.3g} is within {noise:.3g} of the smallest"
    )


def compare_families(
    x,
    *,
    families: Sequence[str] = ARRIVAL_FAMILIES,
    ties: str = "auto",
    resolution: float | None = None,
    max_n: int | None = 1_000_000,
    gof: str | None = None,
    n_boot: int = 200,
    gof_max_n: int = 2000,
    seed: int = 0,
) -> FamilyComparison:
    """Fit each of ``families`` to ``x`` and rank them by AIC.

    Parameters
    ----------
    x : array-like
        Non-negative sample in arrival order (inter-arrival gaps, seconds).
    families : sequence of str
        Registered family names.
    ties : {"auto", "jitter", "drop", "keep"}
        Tie handling (:func:`servelab.fitting.ties.prepare_sample`).
    resolution : float, optional
        Known timestamp resolution for jittering; detected when omitted.
    max_n : int or None
        Fit on a seeded random subsample of this many values when the sample is larger (stated in
        the notes); None fits everything.
    gof : {None, "auto", "bootstrap", "subsample"}
        Attach an honest p-value to each fit (:func:`servelab.fitting.gof.goodness_of_fit`);
        ``"auto"`` bootstraps up to ``10 * gof_max_n`` values and uses the subsample test above.
        A family whose p-value cannot be computed keeps its fit, with a note.
    n_boot, gof_max_n : int
        Bootstrap replicates and largest sample the p-value is computed on.
    seed : int
        Seed of the jitter, the subsample and the bootstrap.

    Raises
    ------
    ValueError
        If ``families`` is empty, ``ties`` or ``gof`` unknown, or ``max_n`` < 2.
    InsufficientDataError
        If fewer than 2 values remain after tie handling.
    """
    if not families:
        raise ValueError("families must name at least one registered family; got an empty sequence")
    fams = [get_family(f) for f in families]
    if gof not in (None, "auto", "bootstrap", "subsample"):
        raise ValueError(f"gof must be None, 'auto', 'bootstrap' or 'subsample'; got {gof!r}")
    if max_n is not None and (not isinstance(max_n, (int, np.integer)) or max_n < 2):
        raise ValueError(f"max_n must be None or an integer >= 2; got {max_n!r}")
    raw = np.asarray(x, dtype=float).ravel()
    n_input = raw.size
    notes: list[str] = []
    rng = np.random.default_rng(seed)
    # handle ties on the whole sample first, then subsample the prepared values: the jitter rebuilds
    # arrival times from consecutive gaps, so a subsample taken before it would break the tick
    # structure (a 3-s clocked Poisson trace, 5,000 of 20,000 gaps: Gamma a = 0.71 instead of 1)
    prepared = prepare_sample(raw, method=ties, seed=seed, resolution=resolution)
    values = prepared.values
    if max_n is not None and values.size > max_n:
        values = values[np.sort(rng.choice(values.size, size=max_n, replace=False))]
        notes.append(f"fitted on a random subsample of {max_n} of {prepared.values.size} values after tie handling "
                     f"({n_input} input values; seed {seed})")
    notes = [*prepared.notes, *notes]
    if values.size < 2:
        raise InsufficientDataError(
            f"compare_families needs at least 2 values after tie handling ({prepared.method}); got {values.size}"
        )
    values = np.sort(values)  # once here, so that each family's KS distance sorts a sorted array
    results: list[FitResult] = []
    failed: dict[str, str] = {}
    method = gof
    if gof == "auto":
        method = "bootstrap" if values.size <= 10 * gof_max_n else "subsample"
    for fam in fams:
        try:
            r = fit_family(values, fam, notes=tuple(notes))
        except (InsufficientDataError, ValueError) as err:
            failed[fam.name] = str(err)
            continue
        if method is not None:
            try:
                r = goodness_of_fit(values, fam, method=method, n_boot=n_boot, max_n=gof_max_n, seed=seed, fit=r)
            except (InsufficientDataError, ValueError) as err:
                r = dataclasses.replace(r, notes=(*r.notes, f"no p-value: {err}"))
        results.append(r)
    results.sort(key=lambda r: (not math.isfinite(r.aic), r.aic))
    best, clearly, verdict = _verdict(results, values.size)
    return FamilyComparison(results=tuple(results), n=int(values.size), n_input=int(n_input), best=best,
                            clearly_best=clearly, verdict=verdict, failed=failed, notes=tuple(notes))


def compare_by_group(
    frame: pl.DataFrame,
    group: str,
    *,
    value: str = "gap",
    families: Sequence[str] = ARRIVAL_FAMILIES,
    min_n: int = 50,
    max_groups: int = 50,
    max_n: int = 20_000,
    ties: str = "auto",
    seed: int = 0,
) -> pl.DataFrame:
    """Compare families within each group of ``frame`` (e.g. per client or per window).

    The ``max_groups`` largest groups with at least ``min_n`` values are compared (each on a
    seeded subsample of at most ``max_n`` values); the loop is over groups, never over values.

    Returns
    -------
    polars.DataFrame
        ``group, n, cv, best, runner_up, delta_aic_runner_up, threshold, best_ks_distance,
        clearly_best (str or null), verdict``, largest groups first.

    Raises
    ------
    ValueError
        If ``group`` or ``value`` is not a column of ``frame``.
    """
    for col in (group, value):
        if col not in frame.columns:
            raise ValueError(f"column {col!r} not in frame; columns: {frame.columns}")
    counts = (
        frame.filter(pl.col(value).is_not_null())
        .group_by(group)
        .len()
        .filter(pl.col("len") >= min_n)
        .sort(["len", group], descending=[True, False])
        .head(max_groups)
    )
    schema = {
        group: frame.schema[group], "n": pl.Int64, "cv": pl.Float64, "best": pl.String, "runner_up": pl.String,
        "delta_aic_runner_up": pl.Float64, "threshold": pl.Float64, "best_ks_distance": pl.Float64,
        "clearly_best": pl.String, "verdict": pl.String,
    }
    if counts.height == 0:
        return pl.DataFrame(schema=schema)
    keep = frame.filter(pl.col(value).is_not_null()).join(counts.select(group), on=group, how="semi")
    rows = []
    for key, part in keep.group_by(group, maintain_order=True):
        x = part[value].to_numpy()
        mean = float(np.mean(x))
        cv = float(np.std(x) / mean) if mean > 0 else None
        try:
            comp = compare_families(x, families=families, ties=ties, max_n=max_n, seed=seed)
        except (InsufficientDataError, ValueError) as err:
            rows.append({group: key[0], "n": x.size, "cv": cv, "best": None, "runner_up": None,
                         "delta_aic_runner_up": None, "threshold": None, "best_ks_distance": None,
                         "clearly_best": None, "verdict": f"not fitted: {err}"})
            continue
        res = comp.results
        rows.append({
            group: key[0], "n": x.size, "cv": cv, "best": comp.best,
            "runner_up": res[1].family if len(res) > 1 else None,
            "delta_aic_runner_up": res[1].aic - res[0].aic if len(res) > 1 else None,
            "threshold": comp.threshold, "best_ks_distance": res[0].ks_distance if res else None,
            "clearly_best": comp.clearly_best, "verdict": comp.verdict,
        })
    return pl.DataFrame(rows, schema=schema).sort(["n", group], descending=[True, False])


def density_curves(comparison: FamilyComparison, grid) -> pl.DataFrame:
    """Fitted densities on ``grid`` for plotting: columns ``family, x, pdf`` (no data kept)."""
    grid = np.asarray(grid, dtype=float)
    parts = []
    for r in comparison.results:
        fam = get_family(r.family)
        pdf = np.exp(fam.logpdf(grid, r.params))
        parts.append(pl.DataFrame({"family": [r.family] * grid.size, "x": grid, "pdf": pdf}))
    if not parts:
        return pl.DataFrame(schema={"family": pl.String, "x": pl.Float64, "pdf": pl.Float64})
    return pl.concat(parts)

"""Compare a fitted client pool with the pool its trace was sampled from (the pool round trip).

This module compares two pools' tables; it fits, samples and writes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from servelab.analysis.window_rates import exposure
from servelab.fitting.pool_arrivals import family_cv, param_columns

__all__ = ["PoolComparison", "compare_pools"]


@dataclass(frozen=True)
class PoolComparison:
    """A fitted pool against its reference, client by client (see :func:`compare_pools`).

    Parameters
    ----------
    rate : polars.DataFrame
        Per client and window: the reference count ``lam`` (rate times exposure), the fitted count
        ``n`` and ``z = (n - lam) / sqrt(lam)`` (Poisson).
    cv : polars.DataFrame
        Windows with at least ``min_count_cv`` requests: the reference's recorded CV (``cv_ref``),
        the CV its family and parameters imply (``cv_family_ref``; a sampler reproduces this one),
        the fitted CV and the relative differences ``rel_diff`` (to the recorded) and
        ``rel_diff_family``.
    family : polars.DataFrame
        Windows with at least ``min_count_family`` requests: both families, the CVs their
        parameters imply (``cv_family_ref``, ``cv_family_fit``) and both pools' named parameters
        (``a_ref``, ``a_fit``, ``c_ref``, ..., ``scale_fit``).
    data : polars.DataFrame
        Per client, data window and field with at least ``min_requests_ks`` fitted requests, the KS
        distance between the two PMFs (CDFs compared on the union of values; ``reason_ratio``
        values first rounded to ``ratio_resolution``).
    """

    rate: pl.DataFrame
    cv: pl.DataFrame
    family: pl.DataFrame
    data: pl.DataFrame


def _with_family_cv(arrivals: pl.DataFrame, suffix: str) -> pl.DataFrame:
    params = {p: arrivals[p].cast(pl.Float64).fill_null(np.nan).to_numpy() for p in param_columns()
              if p in arrivals.columns}
    implied = family_cv(arrivals["family"].to_numpy(), params)
    return arrivals.with_columns(pl.Series(f"cv_family_{suffix}", implied).fill_nan(None))


def compare_pools(reference, fitted, *, min_count_cv: int = 1000, min_count_family: int = 1000,
                  min_requests_ks: int = 200, ratio_resolution: float = 0.01) -> PoolComparison:
    """Compare a fitted pool with the pool its trace was sampled from, client by client.

    Counts are rates times the exposure of each window in the fitted pool (its covered span, from
    its provenance; the whole window when not recorded), by the definition of
    :mod:`servelab.analysis.window_rates`.

    Returns
    -------
    PoolComparison
    """
    ref = _with_family_cv(reference.arrivals, "ref").select(
        "client_id", "window_start", pl.col("rate").alias("rate_ref"), pl.col("cv").alias("cv_ref"),
        pl.col("family").alias("family_ref"), "cv_family_ref")
    fit = _with_family_cv(fitted.arrivals, "fit").select(
        "client_id", "window_start", pl.col("rate").alias("rate_fit"), pl.col("cv").alias("cv_fit"),
        pl.col("family").alias("family_fit"), "cv_family_fit")
    w = reference.window_s
    covered = (fitted.provenance.get("arrivals") or {}).get("covered_s")
    starts = ref["window_start"].to_numpy()
    exp_s = exposure(starts, w, tuple(covered)) if covered else np.full(starts.size, w)
    both = ref.with_columns(pl.Series("exposure_s", np.where(exp_s > 0, exp_s, w))).join(
        fit, on=["client_id", "window_start"], how="left").with_columns(
        pl.col("rate_fit").fill_null(0.0)).with_columns(
        (pl.col("rate_ref") * pl.col("exposure_s")).alias("lam"),
        (pl.col("rate_fit") * pl.col("exposure_s")).round().alias("n"))
    rate = both.filter(pl.col("lam") > 0).with_columns(((pl.col("n") - pl.col("lam")) / pl.col("lam").sqrt()).alias("z"))
    cv = both.filter((pl.col("n") >= min_count_cv) & pl.col("cv_fit").is_not_null() & (pl.col("cv_ref") > 0)).with_columns(
        ((pl.col("cv_fit") - pl.col("cv_ref")) / pl.col("cv_ref")).alias("rel_diff"),
        ((pl.col("cv_fit") - pl.col("cv_family_ref")) / pl.col("cv_family_ref")).alias("rel_diff_family"))
    keys = ["client_id", "window_start"]
    params = [p for p in param_columns() if p in reference.arrivals.columns and p in fitted.arrivals.columns]
    named = (reference.arrivals.select(*keys, *[pl.col(p).alias(f"{p}_ref") for p in params])
             .join(fitted.arrivals.select(*keys, *[pl.col(p).alias(f"{p}_fit") for p in params]), on=keys, how="left"))
    family = (both.filter((pl.col("n") >= min_count_family) & pl.col("family_ref").is_not_null())
              .join(named, on=keys, how="left")
              .select(*keys, "n", "cv_ref", "cv_family_ref", "family_ref", "family_fit", "cv_family_fit",
                      *[f"{p}_{side}" for p in params for side in ("ref", "fit")]))
    # data: KS between PMFs on the union of support points
    dw = reference.data_window_s
    counts = (fitted.arrivals.with_columns(((pl.col("window_start") / dw).floor() * dw).alias("dws"))
              .group_by("client_id", "dws").agg((pl.col("rate") * pl.col("window_s")).sum().round().alias("n_requests"))
              .rename({"dws": "window_start"}))
    keys = ["client_id", "window_start", "field"]
    # ratios are compared at ratio_resolution: a trace stores reason tokens as integers, so a ratio
    # is only known to 1/output_tokens, coarser than ServeGen's 1/501 grid for short outputs
    coarse = pl.when(pl.col("field") == "reason_ratio").then(
        (pl.col("value") / ratio_resolution).round() * ratio_resolution).otherwise(pl.col("value"))

    def table(pool, name):
        return (pool.data.with_columns(coarse.alias("value")).group_by(keys + ["value"])
                .agg(pl.col("probability").sum().alias(name)))

    a = table(reference, "p_ref")
    b = table(fitted, "p_fit")
    common = a.select(keys).unique().join(b.select(keys).unique(), on=keys)
    u = (pl.concat([a.join(common, on=keys).select(*keys, "value"), b.join(common, on=keys).select(*keys, "value")])
         .unique().join(a, on=keys + ["value"], how="left").join(b, on=keys + ["value"], how="left")
         .with_columns(pl.col("p_ref").fill_null(0.0), pl.col("p_fit").fill_null(0.0)).sort(keys + ["value"]))
    data = (u.with_columns((pl.col("p_ref").cum_sum().over(keys) - pl.col("p_fit").cum_sum().over(keys)).abs().alias("d"))
            .group_by(keys).agg(pl.col("d").max().alias("ks"))
            .join(counts, on=["client_id", "window_start"], how="left")
            .filter(pl.col("n_requests") >= min_requests_ks).sort(keys))
    return PoolComparison(rate=rate, cv=cv, family=family, data=data)

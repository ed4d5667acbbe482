"""Reason and answer lengths of reasoning-model requests (ServeGen 2025 sec. 5.1, Findings 9 and 11).

Needs ``reason_tokens`` and ``output_tokens`` (answer = output - reason). Measures, as DuckDB SQL:

- reason, answer and output length statistics per group (:func:`reason_summary`);
- the reason/answer correlation (:func:`reason_answer_correlation`, Pearson and Spearman);
- the per-request reason ratio ``reason / output`` as a PMF on ServeGen's 501-point grid
  (:func:`reason_ratio_pmf`), a deterministic sample of it for bimodality tests
  (:func:`reason_ratios`), and per-client summaries (:func:`client_reason_ratios`).

Failed requests (output 0 or ``failed``) and rows without ``reason_tokens`` are excluded and
counted. The bimodality test itself (mixtures, BIC, dip test) is fitting's job
(:func:`servelab.fitting.mixtures.bimodality`); this module never imports fitting, figures or
matplotlib.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.lengths import (
    DEFAULT_PERIODS,
    DEFAULT_QUANTILES,
    Period,
    group_expression,
    grouped_count_stats,
    pair_correlation,
    valid_length_filter,
)
from servelab.analysis.store import TraceStore

__all__ = [
    "REASONING_COLUMNS",
    "RATIO_GRID_POINTS",
    "reasoning_filter",
    "reasoning_counts",
    "reason_summary",
    "reason_answer_correlation",
    "reason_ratio_pmf",
    "reason_ratios",
    "client_reason_ratios",
]

REASONING_COLUMNS = ("reason_tokens", "output_tokens")
#: ServeGen's reason-ratio PMFs have 501 points on [0, 1] (step 1/500)
RATIO_GRID_POINTS = 501

_ANSWER = "(output_tokens - reason_tokens)"
_RATIO = "(reason_tokens::DOUBLE / output_tokens)"


def _require(store: TraceStore, analysis: str) -> None:
    store.require(*REASONING_COLUMNS, analysis=analysis)


def reasoning_filter(store: TraceStore) -> str:
    """SQL predicate of the requests reasoning statistics use: not failed, reason known and
    within ``[0, output]``."""
    return (f"{valid_length_filter(store, 'output_tokens')} AND reason_tokens IS NOT NULL "
            "AND reason_tokens >= 0 AND reason_tokens <= output_tokens AND output_tokens > 0")


def reasoning_counts(store: TraceStore) -> pl.DataFrame:
    """One row: ``n_requests, n_used, n_failed_or_null`` (left out: failed, no reason_tokens) and
    ``n_inconsistent`` (reason > output or negative, left out too)."""
    _require(store, "reasoning statistics")
    cond = reasoning_filter(store)
    return store.query(
        f"SELECT count(*) AS n_requests, count_if({cond}) AS n_used, "
        f"count_if(NOT coalesce({valid_length_filter(store, 'output_tokens')} AND reason_tokens IS NOT NULL, false)) AS n_failed_or_null, "
        f"count_if(reason_tokens < 0 OR reason_tokens > output_tokens) AS n_inconsistent FROM requests"
    ).with_columns(pl.all().cast(pl.Int64))


def reason_summary(store: TraceStore, *, by: str | None = None, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                   periods: Sequence[Period] = DEFAULT_PERIODS) -> pl.DataFrame:
    """Moments and quantiles of ``reason``, ``answer``, ``output`` tokens and the ``reason_ratio``.

    Returns
    -------
    polars.DataFrame
        ``group, column, n, mean, std, cv, min, p.., max`` with column in
        ``reason_tokens, answer_tokens, output_tokens, reason_ratio`` (ratio on the 501-point grid).

    Raises
    ------
    NotApplicableError
        If the trace lacks ``reason_tokens`` or ``output_tokens``.
    """
    _require(store, "reason/answer lengths")
    key = group_expression(store, by, periods=periods, analysis="reason/answer lengths")
    cond = reasoning_filter(store)
    exprs = {"reason_tokens": "reason_tokens::DOUBLE", "answer_tokens": f"{_ANSWER}::DOUBLE",
             "output_tokens": "output_tokens::DOUBLE",
             "reason_ratio": f"round({_RATIO} * {RATIO_GRID_POINTS - 1}) / {RATIO_GRID_POINTS - 1}.0"}
    parts = [f"SELECT {key} AS g, '{name}' AS col, {e} AS v, count(*) AS c FROM requests WHERE {cond} GROUP BY g, v"
             for name, e in exprs.items()]
    counts = store.query(" UNION ALL ".join(parts)).filter(pl.col("g").is_not_null())
    order = {name: i for i, name in enumerate(exprs)}
    table = grouped_count_stats(counts, ["g", "col"], quantiles).rename({"g": "group", "col": "column"})
    return table.sort([pl.col("group"), pl.col("column").replace_strict(order, return_dtype=pl.Int64)])


def reason_answer_correlation(store: TraceStore, *, by: str | None = None,
                              periods: Sequence[Period] = DEFAULT_PERIODS, seed: int = 0) -> pl.DataFrame:
    """Pearson and Spearman correlation of reason and answer tokens (and the line of answer on reason).

    Same columns as :func:`servelab.analysis.lengths.io_correlation` (x = reason, y = answer).
    """
    _require(store, "reason/answer correlation")
    key = group_expression(store, by, periods=periods, analysis="reason/answer correlation")
    return pair_correlation(store, "reason_tokens", _ANSWER, where=reasoning_filter(store), key=key, seed=seed)


def reason_ratio_pmf(store: TraceStore, *, by: str | None = None, periods: Sequence[Period] = DEFAULT_PERIODS,
                     top: int = 10) -> pl.DataFrame:
    """PMF of the per-request reason ratio on ServeGen's 501-point grid of [0, 1].

    With ``by="client"`` only the ``top`` clients by request count are listed.

    Returns
    -------
    polars.DataFrame
        ``group, ratio, count, probability``.
    """
    _require(store, "reason-ratio PMF")
    key = group_expression(store, by, periods=periods, analysis="reason-ratio PMF")
    step = RATIO_GRID_POINTS - 1
    table = store.query(
        f"SELECT {key} AS \"group\", round({_RATIO} * {step}) / {step}.0 AS ratio, count(*) AS count "
        f"FROM requests WHERE {reasoning_filter(store)} GROUP BY ALL"
    ).filter(pl.col("group").is_not_null())
    if by == "client":
        keep = table.group_by("group").agg(pl.col("count").sum()).sort(["count", "group"], descending=[True, False]).head(top)
        table = table.filter(pl.col("group").is_in(keep["group"].implode()))
    return table.with_columns((pl.col("count") / pl.col("count").sum().over("group")).alias("probability")).sort(
        "group", "ratio")


def reason_ratios(store: TraceStore, *, max_n: int | None = 200_000, seed: int = 0, client: str | None = None) -> np.ndarray:
    """Per-request reason ratios (``reason / output``) as a numpy array, for bimodality tests.

    Above ``max_n`` requests a deterministic hash subsample of about ``max_n`` is returned (same
    store and seed, same values). ``client`` restricts to one client.

    Raises
    ------
    NotApplicableError
        If the trace lacks the columns or no request qualifies.
    """
    _require(store, "reason ratios")
    cond = reasoning_filter(store)
    params = None
    if client is not None:
        store.require("client_id", analysis="per-client reason ratios")
        cond += " AND client_id = $client"
        params = {"client": client}
    with contextlib.closing(store.connect()) as con:
        n = con.sql(f"SELECT count(*) FROM requests WHERE {cond}", params=params).fetchall()[0][0]
        if n == 0:
            raise NotApplicableError("reason ratios", reason="no non-failed request has reason_tokens"
                                     + (f" for client {client!r}" if client is not None else ""))
        pick = ""
        if max_n is not None and n > max_n and store.has("request_id"):
            pick = f" AND (hash(request_id, {int(seed)}) % 1000000007) < {int(max_n / n * 1000000007)}"
        order = " ORDER BY request_id" if store.has("request_id") else ""
        arr = con.sql(f"SELECT {_RATIO} AS r FROM requests WHERE {cond}{pick}{order}", params=params).fetchnumpy()["r"]
    return np.asarray(arr, dtype=float)


def client_reason_ratios(store: TraceStore, *, top: int = 10, min_n: int = 50) -> pl.DataFrame:
    """Per-client reason and answer lengths and reason ratio, the ``top`` clients by requests.

    Returns
    -------
    polars.DataFrame
        ``client_id, n, share_of_requests, mean_reason, mean_answer, mean_ratio, std_ratio,
        share_ratio_above_half`` for clients with at least ``min_n`` qualifying requests.
    """
    _require(store, "per-client reason ratios")
    store.require("client_id", analysis="per-client reason ratios")
    cond = reasoning_filter(store)
    return store.query(
        f"SELECT client_id, count(*) AS n, count(*) / sum(count(*)) OVER () AS share_of_requests, "
        f"avg(reason_tokens) AS mean_reason, avg({_ANSWER}) AS mean_answer, avg({_RATIO}) AS mean_ratio, "
        f"stddev_pop({_RATIO}) AS std_ratio, avg(CASE WHEN {_RATIO} > 0.5 THEN 1.0 ELSE 0.0 END) AS share_ratio_above_half "
        f"FROM requests WHERE {cond} GROUP BY client_id QUALIFY count(*) >= {int(min_n)} "
        f"ORDER BY n DESC, client_id LIMIT {int(top)}"
    )

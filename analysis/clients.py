r"""Client decomposition: who sends the traffic, how each client behaves per window, and how much
of the aggregate's shifting is explained by the client mix (ServeGen Findings 5, 8, 11).

Everything here is DuckDB SQL over the store (window functions and group-bys), numpy ``bincount``
over the arrival frame's integer (client, window) cells (the per-window lengths without quantiles),
plus small polars joins over the per-client-per-window table; there is no Python loop over clients
or requests.

What is computed
----------------
- :func:`client_ranking`: clients ranked by requests and by tokens, with cumulative shares;
  :func:`top_clients_for_share` reads off how many top clients carry 50 % / 90 % of requests.
- :func:`client_window_stats`: per client and window (default 600 s, ServeGen's pool grid): count,
  rate, CV of inter-arrival gaps, mean / p50 / p95 input and output lengths, and the mean
  per-request reasoning share (``reason_tokens / output_tokens``) and multimodal shares
  (``image_tokens / input_tokens`` ...) where the trace has those columns.
  :func:`aggregate_window_stats` is the same over all requests.
- :func:`client_summary`: one row per client (share, overall rate, typical CV, mean lengths), the
  table behind the CDFs of ServeGen Fig. 6 / 12 / 17.
- :func:`client_stability`: per client and statistic, the spread of the statistic across windows
  relative to the spread between clients (on a log scale, so it is unit-free):

  .. math:: S_{c,s} = \frac{\operatorname{sd}_w \log x_{c,w,s}}{\operatorname{sd}_c \overline{\log x_{c,s}}}

  :math:`S \ll 1` means the client is stable in statistic ``s`` compared with how different
  clients are from each other.
- :func:`mix_attribution`: the aggregate per window recomposed from per-client statistics with
  (a) actual client rates but each client's behaviour frozen at its trace-wide value ("mix"),
  (b) client shares frozen but actual per-window behaviour ("behaviour"), and (c) both actual
  ("full"). The share of the aggregate's across-window variance (and of its window-to-window
  changes) that each recomposition reproduces is Finding 5's number. Mean lengths recompose
  exactly (a rate-weighted mean). The CV of a superposition does not; it is recomposed through
  the index of dispersion of counts, which adds over independent clients
  (:math:`\mathrm{IDC} = \sum_c \lambda_c \mathrm{CV}_c^2 / \sum_c \lambda_c`, the asymptotic
  IDC of a renewal process being :math:`\mathrm{CV}^2`), and compared by squared correlation.
  The aggregate rate is a sum, so its variance is split exactly into per-client covariance
  shares, :math:`\operatorname{cov}(r_c, R) / \operatorname{var}(R)`.

This module must not import fitting, generator, figures or matplotlib, and must not hold raw
requests in its results.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl
from servelab.analysis.arrivals import _dense_cell_keys, arrival_frame, window_stats
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.store import TraceStore, fetch_polars

__all__ = [
    "DEFAULT_WINDOW_S",
    "MODALITY_COLUMNS",
    "ClientDecomposition",
    "aggregate_window_stats",
    "client_ranking",
    "client_stability",
    "client_summary",
    "client_window_stats",
    "decompose_clients",
    "mix_attribution",
    "rate_variance_shares",
    "stability_overview",
    "top_clients_for_share",
]

#: ServeGen's client pools use 600 s arrival windows
DEFAULT_WINDOW_S = 600.0

#: input-modality token columns whose per-request share of the input is reported
MODALITY_COLUMNS = ("text_tokens", "image_tokens", "audio_tokens", "video_tokens")

_ANALYSIS = "client decomposition"

_ARRIVAL_COLUMNS = ("window", "window_start_s", "exposure_s", "n_requests", "rate_rps", "n_gaps", "mean_gap_s", "cv")
_ARRIVAL_COLUMNS_CLIENT = ("client_id", *_ARRIVAL_COLUMNS)


# --------------------------------------------------------------------------------------------
# SQL builders
# --------------------------------------------------------------------------------------------
def _check_window(window_s: float) -> float:
    try:
        value = float(window_s)
    except (TypeError, ValueError):
        raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"window_s must be a positive, finite number of seconds; got {window_s!r}")
    return value


def _length_selects(columns: tuple[str, ...], *, quantiles: bool = True) -> tuple[str, tuple[str, ...]]:
    """Aggregate expressions for the length columns the store has (``quantiles``: p50 and p95 too)."""
    parts: list[str] = []
    needed: list[str] = []
    for col, short in (("input_tokens", "input"), ("output_tokens", "output")):
        if col in columns:
            needed.append(col)
            parts.append(
                f', sum("{col}")::DOUBLE AS sum_{short}, avg("{col}") AS mean_{short}, '
                f'var_samp("{col}") AS var_{short}'
                + (f', quantile_cont("{col}", 0.5) AS p50_{short}, quantile_cont("{col}", 0.95) AS p95_{short}'
                   if quantiles else '')
            )
    if "reason_tokens" in columns and "output_tokens" in columns:
        needed.append("reason_tokens")
        parts.append(', avg(CASE WHEN output_tokens > 0 THEN reason_tokens::DOUBLE / output_tokens END) AS mean_reason_ratio')
    if "input_tokens" in columns:
        present = [c for c in MODALITY_COLUMNS if c in columns and c != "text_tokens"]
        for col in present:
            needed.append(col)
            short = col.removesuffix("_tokens")
            parts.append(
                f', avg(CASE WHEN input_tokens > 0 THEN "{col}"::DOUBLE / input_tokens END) AS mean_{short}_ratio'
            )
        if present:
            total = " + ".join(f'coalesce("{c}", 0)' for c in present)
            parts.append(f", avg(CASE WHEN input_tokens > 0 THEN ({total})::DOUBLE / input_tokens END) AS mean_mm_ratio")
    return "".join(parts), tuple(dict.fromkeys(needed))


def _span(con: duckdb.DuckDBPyConnection, where: str = "") -> tuple[float, float]:
    first, last = con.sql(f"SELECT min(timestamp), max(timestamp) FROM requests {where}").fetchall()[0]
    return float(first), float(last)


def _connect(store: TraceStore) -> contextlib.closing:
    return contextlib.closing(store.connect())


# --------------------------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------------------------
def client_ranking(store: TraceStore) -> pl.DataFrame:
    """Clients ranked by request count (and by tokens where lengths exist).

    Returns
    -------
    polars.DataFrame
        One row per client, sorted by requests (descending, ties by id): ``client_id``,
        ``requests``, ``request_share``, ``cum_request_share``, ``rank_requests`` (1 = top), and
        when the store has lengths ``tokens`` (input + output), ``token_share``,
        ``rank_tokens``, ``cum_token_share`` (cumulative in token-rank order). Rows with no
        ``client_id`` are left out (their number is the ``null_client_rows`` attribute of
        :class:`ClientDecomposition`).

    Raises
    ------
    NotApplicableError
        If the store has no ``client_id`` column or no row with a client id.
    """
    store.require("client_id", analysis=_ANALYSIS)
    token_terms = [f'coalesce("{c}", 0)' for c in ("input_tokens", "output_tokens") if c in store.columns]
    tokens = f", sum({' + '.join(token_terms)})::DOUBLE AS tokens" if token_terms else ""
    sql = f"""
WITH c AS (
  SELECT client_id, count(*) AS requests{tokens}
  FROM requests WHERE client_id IS NOT NULL GROUP BY client_id
)
SELECT *,
  requests / sum(requests) OVER () AS request_share,
  row_number() OVER (ORDER BY requests DESC, client_id) AS rank_requests,
  sum(requests) OVER (ORDER BY requests DESC, client_id ROWS UNBOUNDED PRECEDING)
      / sum(requests) OVER () AS cum_request_share
  {", tokens / nullif(sum(tokens) OVER (), 0) AS token_share,"
   " row_number() OVER (ORDER BY tokens DESC, client_id) AS rank_tokens,"
   " sum(tokens) OVER (ORDER BY tokens DESC, client_id ROWS UNBOUNDED PRECEDING)"
   " / nullif(sum(tokens) OVER (), 0) AS cum_token_share" if tokens else ""}
FROM c
ORDER BY rank_requests
"""
    with _connect(store) as con:
        frame = fetch_polars(con, sql)
    if frame.height == 0:
        raise NotApplicableError(_ANALYSIS, reason="every row's client_id is empty")
    return frame


def top_clients_for_share(ranking: pl.DataFrame, share: float, *, by: str = "requests") -> int:
    """The smallest number of top clients whose combined share reaches ``share``.

    Parameters
    ----------
    ranking : polars.DataFrame
        From :func:`client_ranking`.
    share : float
        Target share in (0, 1], e.g. 0.5 or 0.9.
    by : {"requests", "tokens"}
        Rank by request count or by tokens.
    """
    if not (0 < share <= 1):
        raise ValueError(f"share must be in (0, 1]; got {share!r}")
    if by not in ("requests", "tokens"):
        raise ValueError(f"by must be 'requests' or 'tokens'; got {by!r}")
    cum = f"cum_{by[:-1]}_share"
    if cum not in ranking.columns:
        raise NotApplicableError(f"ranking by {by}", reason=f"the ranking has no {cum!r} column (no token counts)")
    values = np.sort(ranking[cum].drop_nulls().to_numpy())
    # tolerate the float round-off of a cumulative sum that should reach 1 exactly
    return int(min(np.searchsorted(values, share - 1e-12, side="left") + 1, values.size))


# --------------------------------------------------------------------------------------------
# Per client, per window
# --------------------------------------------------------------------------------------------
def _length_stats(store: TraceStore, *, window_s: float, by_client: bool, quantiles: bool = True) -> pl.DataFrame | None:
    """Length statistics per (client,) window: one group-by pass, no window function."""
    extra, _ = _length_selects(store.columns, quantiles=quantiles)
    if not extra:
        return None
    key = "client_id, " if by_client else ""
    where = "WHERE client_id IS NOT NULL" if by_client else ""
    sql = (f'SELECT {key}CAST(floor(timestamp / CAST({window_s!r} AS DOUBLE)) AS BIGINT) AS "window"{extra} '
           f'FROM requests {where} GROUP BY ALL')
    with _connect(store) as con:
        return fetch_polars(con, sql).with_columns(pl.col("window").cast(pl.Int64))


def _sums(key: np.ndarray, x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: the count of non-null (non-NaN) ``x``, their sum, and the rows (``key``, ``x``) that count."""
    ok = ~np.isnan(x)
    k, v = (key, x) if ok.all() else (key[ok], x[ok])
    return np.bincount(k, minlength=size), np.bincount(k, weights=v, minlength=size), k, v


@dataclass(frozen=True)
class _LengthCells:
    """Working data: per (group, window) cell of an arrival frame, the sufficient statistics of the
    length columns (``n``, sum, squared deviations from the cell mean: ``moments[short]``) and of
    the ratio columns (``n``, sum of the ratios: ``ratios[name]``), in the SQL's column order."""

    groups: pl.Series
    group: np.ndarray
    window: np.ndarray
    n_rows: np.ndarray
    grouped: bool
    moments: dict
    ratios: dict


def _length_cells(store: TraceStore, frame, *, window_s: float) -> _LengthCells | None:
    """The cells of :func:`_length_stats` (without quantiles) by numpy ``bincount`` over the cells of
    an arrival frame (rows without a client id are a group of their own, nulls last).

    No row is looped over: the length columns are read once, put in the frame's arrival order and
    summed per cell over the frame's integer cell index (:func:`_dense_cell_keys`). At 10 M rows and
    2,000 clients this replaces two DuckDB scans (~4 s wall: a string-keyed hash aggregate per
    client and window, another per window). None when the store has no length column, the dense
    grid is too large or the frame carries no row order (the caller then runs the SQL)."""
    _, needed = _length_selects(store.columns, quantiles=False)
    if not needed or "order" not in frame.work:
        return None
    got = _dense_cell_keys(frame, float(window_s))
    if got is None:
        return None
    groups, key, n_win, w0 = got
    data = store.to_polars(["request_id", *needed])
    if not data["request_id"].is_sorted():
        data = data.sort("request_id")
    order = frame.work["order"]

    def column(name: str) -> np.ndarray:  # float64 in the frame's row order, NaN for null (read once: dropped)
        x = data.drop_in_place(name).cast(pl.Float64).to_numpy()
        return x[order] if order is not None else x

    counts = np.bincount(key, minlength=groups.len() * n_win)
    active = np.flatnonzero(counts)
    n_rows = counts[active]
    del counts
    compact = np.full(groups.len() * n_win, -1, dtype=np.intp)
    compact[active] = np.arange(active.size, dtype=np.intp)
    np.take(compact, key, out=key, mode="clip")  # each row's active cell, in place (intp, as bincount takes it)
    del compact
    size = active.size
    moments: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    values: dict[str, np.ndarray] = {}  # the denominators the ratios below need, kept only for them
    keep = {"output_tokens"} if "reason_tokens" in needed else set()
    keep |= {"input_tokens"} if any(c in needed for c in MODALITY_COLUMNS) else set()
    for col, short in (("input_tokens", "input"), ("output_tokens", "output")):
        if col not in needed:
            continue
        x = column(col)
        n, total, k, v = _sums(key, x, size)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / n
        dev = mean[k]
        np.subtract(v, dev, out=dev)
        dev *= dev
        moments[short] = (n, total, np.bincount(k, weights=dev, minlength=size))
        del dev, k, v
        if col in keep:
            values[col] = x
        del x
    ratios: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def ratio(name: str, num: np.ndarray, den: np.ndarray) -> None:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, num / den, np.nan)
        ratios[name] = _sums(key, r, size)[:2]

    if "reason_tokens" in needed:
        ratio("mean_reason_ratio", column("reason_tokens"), values["output_tokens"])
    present = [c for c in MODALITY_COLUMNS if c in needed]
    if present:
        den = values["input_tokens"]
        mm = np.zeros(den.size)
        for col in present:
            x = column(col)
            ratio(f"mean_{col.removesuffix('_tokens')}_ratio", x, den)
            mm += np.nan_to_num(x, nan=0.0)
        ratio("mean_mm_ratio", mm, den)
    del data, values, key
    return _LengthCells(groups=groups, group=active // n_win, window=(active % n_win + w0).astype(np.int64),
                        n_rows=n_rows, grouped=frame.column is not None, moments=moments, ratios=ratios)


def _ranking_from_cells(cells: _LengthCells) -> tuple[pl.DataFrame, int]:
    """:func:`client_ranking`'s table and the rows without a client id from the per-client length cells
    (no pass over the requests): requests and tokens per client are sums of the cells' row counts and
    length sums (``coalesce(input, 0) + coalesce(output, 0)`` as the SQL sums them: integers, exact in
    float64 below :math:`2^{53}`), ranked and accumulated in the SQL's orders (ties by client id)."""
    m = cells.groups.len()
    requests = np.bincount(cells.group, weights=cells.n_rows, minlength=m).astype(np.int64)
    named = ~cells.groups.is_null().to_numpy()
    null_rows = int(requests[~named].sum())
    frame = pl.DataFrame({"client_id": cells.groups, "requests": requests})
    if cells.moments:
        per_cell = sum(np.nan_to_num(total, nan=0.0) for _, total, _ in cells.moments.values())
        frame = frame.with_columns(pl.Series("tokens", np.bincount(cells.group, weights=per_cell, minlength=m)))
    frame = frame.filter(pl.Series(named))
    if frame.height == 0:
        raise NotApplicableError(_ANALYSIS, reason="every row's client_id is empty")

    def ranked(by: str, prefix: str) -> pl.DataFrame:
        # true division in numpy, as SQL divides (polars may multiply by the reciprocal: 1 ulp off)
        ordered = frame.select("client_id", by).sort([by, "client_id"], descending=[True, False])
        x = ordered.get_column(by).to_numpy()
        total = x.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            share, cum = x / total, np.cumsum(x) / total
        return ordered.select("client_id").with_columns(
            pl.Series(f"{prefix}_share", share), pl.Series(f"rank_{by}", np.arange(1, x.size + 1, dtype=np.int64)),
            pl.Series(f"cum_{prefix}_share", cum)).with_columns(pl.col(f"{prefix}_share", f"cum_{prefix}_share").fill_nan(None))

    by_requests = ranked("requests", "request")
    frame = frame.join(by_requests, on="client_id", how="left").sort("rank_requests")
    if cells.moments:
        by_tokens = ranked("tokens", "token").select("client_id", "token_share", "rank_tokens", "cum_token_share")
        frame = frame.join(by_tokens, on="client_id", how="left", maintain_order="left")
    return frame, null_rows


def _length_table(cells: _LengthCells, *, by_client: bool) -> pl.DataFrame:
    """:func:`_length_stats`' table from the cells: per (client, window) (rows without a client id
    left out), or per window pooled over the cells (counts and sums add; squared deviations pool as
    :math:`M_2 = \\sum_i M_{2,i} + \\sum_i n_i (\\bar x_i - \\bar x)^2`). Sums of integers are exact in
    float64 below :math:`2^{53}`, so ``sum_`` and ``mean_`` equal DuckDB's; ``var_`` (sample) and
    the ratio means differ from DuckDB's by floating-point summation order only (< 1e-13 relative
    on the 1 M-row store)."""
    if by_client:
        index, size = np.arange(cells.window.size), cells.window.size
        keys = {"client_id": cells.groups.gather(cells.group), "window": cells.window}
    else:
        first = int(cells.window.min()) if cells.window.size else 0
        index = cells.window - first
        size = int(index.max()) + 1 if index.size else 0
        present = np.zeros(size, dtype=bool)
        present[index] = True
        keys = {"window": np.flatnonzero(present).astype(np.int64) + first}

    def add(x: np.ndarray) -> np.ndarray:
        return x if by_client else np.bincount(index, weights=x, minlength=size)[present]

    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for short, (n, total, m2) in cells.moments.items():
            n_all, s_all = add(n.astype(np.float64)), add(total)
            mean = s_all / n_all
            if not by_client:  # pool the cells' squared deviations around the window's mean
                cell_mean = total / n
                spread = np.where(n > 0, n * (cell_mean - mean[np.cumsum(present)[index] - 1]) ** 2, 0.0)
                m2 = add(m2 + spread)
            out[f"sum_{short}"] = np.where(n_all > 0, s_all, np.nan)
            out[f"mean_{short}"] = np.where(n_all > 0, mean, np.nan)
            out[f"var_{short}"] = np.where(n_all > 1, m2 / (n_all - 1), np.nan)
        for name, (n, total) in cells.ratios.items():
            n_all, s_all = add(n.astype(np.float64)), add(total)
            out[name] = np.where(n_all > 0, s_all / n_all, np.nan)
    frame = pl.DataFrame({**keys, **out}).with_columns(pl.col(list(out)).fill_nan(None))
    if by_client and cells.grouped:
        frame = frame.filter(pl.col("client_id").is_not_null())
    return frame


def client_window_stats(store: TraceStore, *, window_s: float = DEFAULT_WINDOW_S,
                        length_quantiles: bool = True) -> pl.DataFrame:
    """Per client and window: count, rate, CV of gaps, length statistics and shares.

    Rate and CV come from :func:`servelab.analysis.arrivals.window_stats` (one definition of
    gaps, exposure and CV for the whole project: gaps within the window, population standard
    deviation over the mean, NULL with fewer than two gaps); lengths from one group-by.

    Parameters
    ----------
    store : TraceStore
        Needs ``client_id``; lengths and modality columns are used when present.
    window_s : float
        Window length in seconds (anchored at ``timestamp = 0``).
    length_quantiles : bool
        Include the exact per-window ``p50_`` and ``p95_`` lengths (False leaves them out: on a
        10 M-row trace they cost most of the length group-by, and no summary uses them).

    Returns
    -------
    polars.DataFrame
        ``client_id``, ``window``, ``window_start_s``, ``exposure_s``, ``n_requests``,
        ``rate_rps``, ``n_gaps``, ``mean_gap_s``, ``cv``, and where available
        ``mean_/p50_/p95_/var_/sum_input``, the same for ``output``, ``mean_reason_ratio``,
        ``mean_<modality>_ratio``, ``mean_mm_ratio``. Windows in which a client sends nothing
        are absent (rate 0).
    """
    return _client_windows(store, window_s=window_s, length_quantiles=length_quantiles)[0]


def _client_windows(store: TraceStore, *, window_s: float, length_quantiles: bool
                    ) -> tuple[pl.DataFrame, _LengthCells | None, tuple[float, float]]:
    """:func:`client_window_stats`, its length cells (None: computed in SQL), from which
    :func:`aggregate_window_stats`' lengths pool without another pass, and the trace's first and last
    timestamp."""
    store.require("client_id", analysis=_ANALYSIS)
    window_s = _check_window(window_s)
    frame = arrival_frame(store, by="client_id")
    arrivals = window_stats(store, window_s=window_s, by="client_id", fill_idle=False, frame=frame)
    arrivals = arrivals.filter(pl.col("client_id").is_not_null()).select(_ARRIVAL_COLUMNS_CLIENT)
    if arrivals.height == 0:
        raise NotApplicableError(_ANALYSIS, reason="every row's client_id is empty")
    cells = None if length_quantiles else _length_cells(store, frame, window_s=window_s)
    span = (frame.t0, frame.t1)
    del frame
    lengths = (_length_table(cells, by_client=True) if cells is not None
               else _length_stats(store, window_s=window_s, by_client=True, quantiles=length_quantiles))
    if lengths is None:
        return arrivals.sort("client_id", "window"), cells, span
    keys = ["client_id", "window"]
    if lengths.height == arrivals.height and lengths.select(keys).equals(arrivals.select(keys)):
        # the same cells in the same order (both by the frame's sorted client codes, then window):
        # side by side, without a join and a sort over the client-window rows (~1 s at 10 M rows)
        return arrivals.hstack(lengths.drop(keys)), cells, span
    return arrivals.join(lengths, on=keys, how="left").sort(keys), cells, span


def aggregate_window_stats(store: TraceStore, *, window_s: float = DEFAULT_WINDOW_S,
                           length_quantiles: bool = True) -> pl.DataFrame:
    """The same statistics as :func:`client_window_stats` over all requests, one row per window.

    Every window of the trace span is present (idle windows with ``n_requests = 0`` and NULL
    statistics), so that rate series have no holes. ``length_quantiles`` as in
    :func:`client_window_stats`.
    """
    return _aggregate_windows(store, window_s=window_s, length_quantiles=length_quantiles)


def _aggregate_windows(store: TraceStore, *, window_s: float, length_quantiles: bool,
                       cells: _LengthCells | None = None) -> pl.DataFrame:
    """:func:`aggregate_window_stats`, its lengths pooled from ``cells`` (the per-client length cells
    of the same windows, every row included) when given."""
    window_s = _check_window(window_s)
    frame = arrival_frame(store)
    arrivals = window_stats(store, window_s=window_s, by=None, fill_idle=True, frame=frame).select(_ARRIVAL_COLUMNS)
    if cells is None and not length_quantiles:
        cells = _length_cells(store, frame, window_s=window_s)
    del frame
    lengths = (_length_table(cells, by_client=False) if cells is not None
               else _length_stats(store, window_s=window_s, by_client=False, quantiles=length_quantiles))
    if lengths is not None:
        arrivals = arrivals.join(lengths, on="window", how="left")
    return arrivals.sort("window")


# --------------------------------------------------------------------------------------------
# Per client summaries, stability
# --------------------------------------------------------------------------------------------
_STAT_COLUMNS = ("rate_rps", "cv", "mean_input", "mean_output")


def _mean_columns(frame: pl.DataFrame) -> list[str]:
    """Per-request means of lengths and shares (not the gap mean, which is an arrival statistic)."""
    return [c for c in frame.columns if c.startswith("mean_") and c != "mean_gap_s"]


def client_summary(window_stats: pl.DataFrame, *, span_s: float | None = None, min_requests: int = 10) -> pl.DataFrame:
    """One row per client: the values whose distributions across clients ServeGen plots as CDFs.

    Parameters
    ----------
    window_stats : polars.DataFrame
        From :func:`client_window_stats`.
    span_s : float, optional
        Trace span used for the overall rate; default: the summed exposure of all windows.
    min_requests : int
        A window's CV counts towards the client's typical CV only if it holds at least this many
        requests (few-request CVs are noise).

    Returns
    -------
    polars.DataFrame
        ``client_id``, ``requests``, ``request_share``, ``rate`` (requests / span),
        ``active_windows``, ``cv`` (median CV over windows with at least ``min_requests``;
        NULL if none), ``cv_windows``, and request-weighted ``mean_input``, ``mean_output``,
        ``mean_reason_ratio``, ``mean_<modality>_ratio`` where present. Sorted by requests.
    """
    if span_s is None:
        span_s = float(window_stats.unique("window").select(pl.col("exposure_s").sum()).item())
    weighted = _mean_columns(window_stats)
    aggs = [
        pl.col("n_requests").sum().alias("requests"),
        pl.len().alias("active_windows"),
        pl.col("cv").filter((pl.col("n_requests") >= min_requests) & pl.col("cv").is_not_null()).median().alias("cv"),
        pl.col("cv").filter((pl.col("n_requests") >= min_requests) & pl.col("cv").is_not_null()).len().alias("cv_windows"),
    ]
    for col in weighted:
        ok = pl.col(col).is_not_null()
        aggs.append(((pl.col(col) * pl.col("n_requests")).filter(ok).sum() / pl.col("n_requests").filter(ok).sum()).alias(col))
    out = window_stats.group_by("client_id").agg(aggs)
    total = out["requests"].sum()
    return out.with_columns(
        request_share=pl.col("requests") / total,
        rate=pl.col("requests") / span_s,
    ).sort(["requests", "client_id"], descending=[True, False])


def client_stability(window_stats: pl.DataFrame, *, min_requests: int = 10,
                     statistics: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Per client and statistic: spread across windows relative to the spread between clients.

    Only windows with at least ``min_requests`` requests and a defined, positive value enter;
    values are compared on a log scale (rates, CVs and lengths span decades).

    Returns
    -------
    polars.DataFrame
        Long format: ``client_id``, ``statistic``, ``n_windows``, ``within_sd`` (sd over windows
        of log10 value), ``between_sd`` (sd across clients of their mean log10 value, same for
        every client), ``stability_ratio`` = within / between (NULL with fewer than 2 windows).
    """
    if min_requests < 1:
        raise ValueError(f"min_requests must be >= 1; got {min_requests!r}")
    stats = statistics or tuple(c for c in (*_STAT_COLUMNS, "mean_reason_ratio", "mean_mm_ratio") if c in window_stats.columns)
    missing = [s for s in stats if s not in window_stats.columns]
    if missing:
        raise ValueError(f"statistics {missing} are not columns of window_stats; available: {window_stats.columns}")
    long = (
        window_stats.filter(pl.col("n_requests") >= min_requests)
        .select("client_id", *stats)
        .unpivot(index="client_id", on=list(stats), variable_name="statistic", value_name="value")
        .filter(pl.col("value").is_not_null() & (pl.col("value") > 0))
        .with_columns(logv=pl.col("value").log10())
    )
    per_client = long.group_by("client_id", "statistic").agg(
        n_windows=pl.len(), within_sd=pl.col("logv").std(), mean_log=pl.col("logv").mean())
    between = per_client.filter(pl.col("n_windows") >= 2).group_by("statistic").agg(between_sd=pl.col("mean_log").std())
    return (
        per_client.join(between, on="statistic", how="left")
        .with_columns(stability_ratio=pl.when(pl.col("n_windows") >= 2).then(pl.col("within_sd") / pl.col("between_sd")))
        .drop("mean_log")
        .sort("client_id", "statistic")
    )


def stability_overview(stability: pl.DataFrame, ranking: pl.DataFrame, *, top: int) -> pl.DataFrame:
    """Median stability ratio per statistic over the ``top`` clients (by requests) and over all."""
    top_ids = ranking.filter(pl.col("rank_requests") <= top).select("client_id")
    ok = stability.filter(pl.col("stability_ratio").is_not_null())
    all_ = ok.group_by("statistic").agg(median_ratio_all=pl.col("stability_ratio").median(), clients_all=pl.len())
    tops = ok.join(top_ids, on="client_id").group_by("statistic").agg(
        median_ratio_top=pl.col("stability_ratio").median(), clients_top=pl.len())
    return all_.join(tops, on="statistic", how="left").sort("statistic")


# --------------------------------------------------------------------------------------------
# Attribution of the aggregate's shifts to the client mix
# --------------------------------------------------------------------------------------------
def rate_variance_shares(window_stats: pl.DataFrame, aggregate: pl.DataFrame, *, min_exposure: float = 0.5) -> pl.DataFrame:
    """Each client's exact share of the variance of the aggregate rate across windows.

    .. math:: \\frac{\\operatorname{cov}_w(r_{c,w}, R_w)}{\\operatorname{var}_w(R_w)}, \\quad \\sum_c = 1

    Windows covering less than ``min_exposure`` of their length are left out.

    Returns
    -------
    polars.DataFrame
        ``client_id``, ``rate_variance_share`` (may be negative for a client moving against the
        aggregate). Empty when the aggregate rate does not vary.
    """
    full = aggregate.select("window", "rate_rps", "exposure_s")
    wlen = float(full["exposure_s"].max())
    full = full.filter(pl.col("exposure_s") >= min_exposure * wlen)
    mean_r = full["rate_rps"].mean()
    ss = float(((full["rate_rps"] - mean_r) ** 2).sum())
    if not ss > 0:
        return pl.DataFrame(schema={"client_id": pl.String, "rate_variance_share": pl.Float64})
    dev = full.select("window", dev=pl.col("rate_rps") - mean_r)
    # cov(r_c, R) * W = sum_w r_cw (R_w - mean R): windows without the client contribute 0
    return (
        window_stats.select("client_id", "window", "rate_rps").join(dev, on="window")
        .group_by("client_id").agg(rate_variance_share=(pl.col("rate_rps") * pl.col("dev")).sum() / ss)
        .sort("rate_variance_share", descending=True)
    )


def _r2(actual: np.ndarray, model: np.ndarray) -> float:
    ok = np.isfinite(actual) & np.isfinite(model)
    a, m = actual[ok], model[ok]
    if a.size < 3:
        return float("nan")
    sst = float(np.sum((a - a.mean()) ** 2))
    return float("nan") if sst <= 0 else 1.0 - float(np.sum((a - m) ** 2)) / sst


def _corr2(actual: np.ndarray, model: np.ndarray) -> float:
    ok = np.isfinite(actual) & np.isfinite(model)
    a, m = actual[ok], model[ok]
    if a.size < 3 or np.std(a) == 0 or np.std(m) == 0:
        return float("nan")
    return float(np.corrcoef(a, m)[0, 1] ** 2)


def _diff(x: np.ndarray) -> np.ndarray:
    return x[1:] - x[:-1]


def mix_attribution(window_stats: pl.DataFrame, aggregate: pl.DataFrame, *, min_requests: int = 10,
                    min_exposure: float = 0.5, top: int | None = None) -> pl.DataFrame:
    """How much of the aggregate's across-window shifting the client mix explains.

    For each statistic (``cv``, ``mean_input``, ``mean_output`` and the ratio columns present)
    the aggregate per window is recomposed from per-client statistics three ways (see the module
    docstring): ``mix`` (actual client rates, client behaviour frozen at its trace-wide value),
    ``behaviour`` (client shares frozen, actual behaviour), ``full`` (both actual). For each,
    the share of the aggregate's variance it reproduces, on levels and on window-to-window
    changes. Mean statistics recompose exactly, so their score is :math:`R^2 = 1 - SSE/SST`;
    the CV recomposes through the index of dispersion, so its score is the squared
    correlation.

    For ``rate``, the row gives the share of the aggregate rate's variance carried by the
    ``top`` clients (exact covariance decomposition; ``top`` defaults to the clients carrying
    90 % of requests), in ``r2_mix_levels``.

    Parameters
    ----------
    window_stats, aggregate : polars.DataFrame
        From :func:`client_window_stats` and :func:`aggregate_window_stats` (same window).
    min_requests : int
        Windows of the aggregate with fewer requests are left out; a client's CV counts only
        from windows with at least this many requests (else the client is taken as Poisson,
        CV 1, in the recomposition).
    min_exposure : float
        Windows covering less than this fraction of their length are left out.

    Returns
    -------
    polars.DataFrame
        One row per statistic: ``statistic``, ``windows``, ``score`` ("R2" or "corr2"),
        ``r2_mix_levels``, ``r2_behaviour_levels``, ``r2_full_levels``, the same for
        ``_changes``, ``noise_share`` (for means: expected sampling variance of the window
        mean over the aggregate's variance; near 1 means there is no shift to explain).
    """
    wlen = float(aggregate["exposure_s"].max())
    agg = aggregate.filter((pl.col("exposure_s") >= min_exposure * wlen) & (pl.col("n_requests") >= min_requests)).sort("window")
    ws = window_stats.join(agg.select("window"), on="window", how="semi")
    share = ws.group_by("client_id").agg(total=pl.col("n_requests").sum())
    share = share.with_columns(pi=pl.col("total") / pl.col("total").sum())
    rows = []

    means = _mean_columns(ws)
    for col in means:
        if col not in agg.columns:
            continue
        ok = pl.col(col).is_not_null()
        frozen = ws.filter(ok).group_by("client_id").agg(
            frozen=(pl.col(col) * pl.col("n_requests")).sum() / pl.col("n_requests").sum())
        t = ws.filter(ok).join(frozen, on="client_id").join(share.select("client_id", "pi"), on="client_id")
        per_w = t.group_by("window").agg(
            mix=(pl.col("n_requests") * pl.col("frozen")).sum() / pl.col("n_requests").sum(),
            behaviour=(pl.col("pi") * pl.col(col)).sum() / pl.col("pi").sum(),
            full=(pl.col("n_requests") * pl.col(col)).sum() / pl.col("n_requests").sum(),
        )
        j = agg.select("window", "n_requests", pl.col(col).alias("actual"),
                       *([pl.col(f"var_{col[5:]}").alias("var")] if f"var_{col[5:]}" in agg.columns else [])
                       ).join(per_w, on="window", how="inner").sort("window").drop_nulls("actual")
        rows.append(_scores(col, j, score="R2"))

    if "cv" in ws.columns:
        cv_ok = (pl.col("n_requests") >= min_requests) & pl.col("cv").is_not_null()
        frozen = ws.filter(cv_ok).group_by("client_id").agg(frozen=pl.col("cv").median())
        t = ws.join(frozen, on="client_id", how="left").join(share.select("client_id", "pi"), on="client_id").with_columns(
            frozen=pl.col("frozen").fill_null(1.0),
            now=pl.when(cv_ok).then(pl.col("cv")).otherwise(pl.col("frozen")).fill_null(1.0),
        )
        per_w = t.group_by("window").agg(
            mix=((pl.col("n_requests") * pl.col("frozen") ** 2).sum() / pl.col("n_requests").sum()).sqrt(),
            behaviour=((pl.col("pi") * pl.col("now") ** 2).sum() / pl.col("pi").sum()).sqrt(),
            full=((pl.col("n_requests") * pl.col("now") ** 2).sum() / pl.col("n_requests").sum()).sqrt(),
        )
        j = agg.select("window", "n_requests", pl.col("cv").alias("actual")).join(per_w, on="window").sort("window").drop_nulls("actual")
        rows.append(_scores("cv", j, score="corr2"))

    shares = rate_variance_shares(window_stats, aggregate, min_exposure=min_exposure)
    if top is None:
        cum = share.sort("total", descending=True).with_columns(c=pl.col("pi").cum_sum())
        top = int(min((cum["c"] < 0.9 - 1e-12).sum() + 1, cum.height))
    top_ids = share.sort(["total", "client_id"], descending=[True, False]).head(top).select("client_id")
    # a sum of covariance shares can pass 1 when the other clients co-vary negatively with the top
    # ones; it is reported as a share of the variance, so it is clipped to [0, 1]
    top_share = float(np.clip(shares.join(top_ids, on="client_id")["rate_variance_share"].sum(), 0.0, 1.0)) \
        if shares.height else float("nan")
    nan = float("nan")
    rows.append({"statistic": "rate", "windows": agg.height, "score": f"variance share of top {top}",
                 "r2_mix_levels": top_share, "r2_behaviour_levels": nan, "r2_full_levels": 1.0 if shares.height else nan,
                 "r2_mix_changes": nan, "r2_behaviour_changes": nan, "r2_full_changes": nan, "noise_share": nan})
    return pl.DataFrame(rows, schema={
        "statistic": pl.String, "windows": pl.Int64, "score": pl.String,
        "r2_mix_levels": pl.Float64, "r2_behaviour_levels": pl.Float64, "r2_full_levels": pl.Float64,
        "r2_mix_changes": pl.Float64, "r2_behaviour_changes": pl.Float64, "r2_full_changes": pl.Float64,
        "noise_share": pl.Float64,
    })


def _scores(statistic: str, j: pl.DataFrame, *, score: str) -> dict:
    f = _r2 if score == "R2" else _corr2
    a = j["actual"].to_numpy().astype(float)
    out = {"statistic": statistic, "windows": j.height, "score": score}
    for kind in ("mix", "behaviour", "full"):
        m = j[kind].to_numpy().astype(float)
        out[f"r2_{kind}_levels"] = f(a, m)
        out[f"r2_{kind}_changes"] = f(_diff(a), _diff(m)) if a.size > 3 else float("nan")
    noise = float("nan")
    if "var" in j.columns and a.size >= 3:
        var_a = float(np.var(a, ddof=1))
        expected = float(np.nanmean(j["var"].to_numpy().astype(float) / j["n_requests"].to_numpy().astype(float)))
        noise = expected / var_a if var_a > 0 else float("inf")
    out["noise_share"] = noise
    return out


# --------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientDecomposition:
    """The client decomposition of one trace: small tables only, no requests.

    Attributes
    ----------
    window_s : float
        Window length used.
    n_clients, null_client_rows : int
        Clients seen; rows without a client id (left out).
    top50, top90 : int
        Number of top clients (by requests) carrying 50 % and 90 % of requests.
    ranking, window_stats, aggregate, summary, stability, attribution : polars.DataFrame
        The tables of :func:`client_ranking`, :func:`client_window_stats`,
        :func:`aggregate_window_stats`, :func:`client_summary`, :func:`client_stability`,
        :func:`mix_attribution`.
    """

    window_s: float
    n_clients: int
    null_client_rows: int
    top50: int
    top90: int
    ranking: pl.DataFrame
    window_stats: pl.DataFrame
    aggregate: pl.DataFrame
    summary: pl.DataFrame
    stability: pl.DataFrame
    attribution: pl.DataFrame


def decompose_clients(store: TraceStore, *, window_s: float = DEFAULT_WINDOW_S, min_requests: int = 10,
                      length_quantiles: bool = True) -> ClientDecomposition:
    """Run the whole client decomposition on ``store``.

    ``length_quantiles=False`` leaves the per-window ``p50_`` / ``p95_`` length columns out of
    ``window_stats`` and ``aggregate`` (no other table uses them; see :func:`client_window_stats`).

    Raises
    ------
    NotApplicableError
        If the store has no ``client_id`` column or no row with a client id.
    """
    # the aggregate's lengths pool from the per-client cells (every row, no second pass over them), and
    # the ranking, the rows without a client id and the span come from them and the frame, when the cells
    # were made (else the SQL of client_ranking and two scans)
    window_stats, cells, (first, last) = _client_windows(store, window_s=window_s, length_quantiles=length_quantiles)
    aggregate = _aggregate_windows(store, window_s=window_s, length_quantiles=length_quantiles, cells=cells)
    if cells is not None and cells.moments:
        ranking, null_rows = _ranking_from_cells(cells)
    else:
        ranking = client_ranking(store)
        with _connect(store) as con:
            null_rows = int(con.sql("SELECT count(*) FROM requests WHERE client_id IS NULL").fetchall()[0][0])
            first, last = _span(con)
    del cells
    span = max(last - first, 0.0) or window_s
    summary = client_summary(window_stats, span_s=span, min_requests=min_requests)
    stability = client_stability(window_stats, min_requests=min_requests)
    top90 = top_clients_for_share(ranking, 0.9)
    attribution = mix_attribution(window_stats, aggregate, min_requests=min_requests, top=top90)
    return ClientDecomposition(
        window_s=float(window_s), n_clients=ranking.height, null_client_rows=null_rows,
        top50=top_clients_for_share(ranking, 0.5), top90=top90, ranking=ranking,
        window_stats=window_stats, aggregate=aggregate, summary=summary, stability=stability,
        attribution=attribution,
    )

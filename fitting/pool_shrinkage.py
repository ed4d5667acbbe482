r"""Shrinkage of sparse clients' length PMFs toward the pool's mix (issue 17: fidelity out of sample).

A client seen a few times has an empirical PMF of those few values. Generated as it is, the
client repeats them; on a trace whose clients mostly send 1-6 requests (the issue's
real 23-day trace: 4,244 clients, 26,798 requests), the generated later half carries that
sampling noise and its length distributions end further from the real later half than naive's
pooled mix (input KS 0.039 vs 0.017 on the sparse synthetic store).

The model is the empirical-Bayes one of a Dirichlet-multinomial: the lengths of client :math:`c`
follow proportions :math:`\pi_c \sim \mathrm{Dirichlet}(k\, m)` over length bins, with :math:`m`
the mean of the clients' PMFs, each weighted by its precision :math:`n_c (k + 1) / (n_c + k)`
(its requests when the clients are alike; at most :math:`k + 1` when they differ, so a few big
clients do not make the center of a long tail that differs from them; fitted in three rounds of
center and :math:`k`), and
:math:`k` the prior strength (how alike the clients are: :math:`k \to \infty` when a client's
lengths are everyone's, small when clients differ). :math:`k` is fitted per field by maximum
marginal likelihood over the clients,

.. math::
   \ell(k) = \sum_c \Big[\ln\Gamma(k) - \ln\Gamma(n_c + k)
             + \sum_b \big(\ln\Gamma(x_{cb} + k m_{-c,b}) - \ln\Gamma(k m_{-c,b})\big)\Big],

on ``n_bins`` bins at the quantiles of the field's pooled distribution, moved to the PMFs' log-bin
boundaries (:math:`x_{cb}`: the client's requests in bin :math:`b` over the fitted span;
:math:`m_{-c}` leaves the client out, with a hundredth of an average client's weight per bin, so
a client alone in a bin does not make the likelihood infinite). A client of one request carries
no information on :math:`k` (its term is
:math:`\ln m_{-c,b}`), nor does a pool of one client.

The posterior mean of a client's proportions is :math:`\lambda\,\hat p_c + (1 - \lambda)\,m` with
:math:`\lambda = n_c / (n_c + k)`. Past the fitted span (an extension: ``generate --rate pool``
beyond it, ``validate``), where a sparse client's few values are a poor forecast of its next ones,
the generator draws a request of the client from its own PMF of the data window with probability
:math:`\lambda` and from :math:`m` otherwise (the clients' PMFs over the fitted span weighted by
:math:`\lambda \propto n_c (k + 1) / (n_c + k)`, :func:`shrinkage_centers`, kept in the pool's
provenance), and a first turn of such a request from the pooled first-turn PMF
(:mod:`servelab.generator.request_data`, :func:`servelab.generator.conversations.draw_increments`);
inside the fitted span a client's PMFs are what it sent, as before. One weight per client and
field, kept in the ``clients`` table's ``data_own_weight`` column as JSON ``{field: lambda}``, so
that selections, clips and the extension's new clients (the client their length laws come from)
carry it.

Homogeneity (:math:`k = \infty`: every client draws from the mean) is tested against the
Dirichlet-multinomial by the likelihood ratio, referred to :math:`\chi^2_1`. The asymptotic null
is the boundary mixture :math:`\tfrac12\chi^2_0 + \tfrac12\chi^2_1` (Self and Liang 1987), but on
sparse pools it rejected too often: 400 simulated pools of 300 alike clients of 1-12 requests
(log-normal lengths) gave 1.75% at 0.01 and 7.5% at 0.05 under the mixture, 0.75% and 3.75%
under :math:`\chi^2_1`; two types of clients (log-medians 4 and 7) were found in 20 of 20 at
:math:`k` about 14 (tests/fitting/test_pool_shrinkage.py). The center is estimated, not known: a
pool of alike clients with a few big ones (3,000 requests against 1-13) can read as different
(one of three simulated seeds at p 7e-5, :math:`k` 2,700), which leaves its sparse clients at
:math:`\lambda` below 0.002 and its big ones, alike anyway, at about 0.5. The test is reported; the fitted
:math:`k` is used either way (an empirical-Bayes estimate, not a verdict). Everything runs on
the value counts the data PMFs are built from (no request rows) with numpy and scipy.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["SHRINKAGE_BINS", "OWN_WEIGHT_COLUMN", "K_MAX", "ShrinkageFit", "decode_own_weights", "dm_loglik",
           "fit_shrinkage", "own_weights", "shrinkage_centers", "shrinkage_summary"]

#: bins of the pooled distribution the prior strength is fitted on
SHRINKAGE_BINS = 16
#: the clients-table column holding ``{field: lambda}`` (JSON)
OWN_WEIGHT_COLUMN = "data_own_weight"
#: the largest prior strength fitted: the clients are alike (lambda 0.01 for a client of 10^5
#: requests; where they are alike it does not matter which PMF a request comes from). Larger values
#: lose the likelihood's precision (ln Gamma(k) ~ k ln k in double precision)
K_MAX = 1e7
_K_MIN = 1e-3
#: prior mass per bin in the leave-one-out mean (in average clients' weights)
_BETA = 0.01
#: rounds of (center, k): the center's weights depend on k
_ROUNDS = 3


@dataclass(frozen=True)
class ShrinkageFit:
    """The fitted prior strength of one field.

    Attributes
    ----------
    field : str
    k : float
        Prior strength (pseudo-requests); :data:`K_MAX` when the clients are alike, 0 for a pool
        of one client (nothing to shrink toward: weight 1).
    n_clients : int
        Clients with the field.
    n_informative : int
        Of those, clients of two requests or more (the ones that inform :math:`k`).
    lr : float
        Likelihood ratio statistic against homogeneity (:math:`k = \\infty`).
    p_value : float
        Its p-value under :math:`\\chi^2_1` (conservative; see the module docstring; NaN without
        informative clients).
    """

    field: str
    k: float
    n_clients: int
    n_informative: int
    lr: float
    p_value: float

    def describe(self) -> dict:
        return {"k": self.k, "clients": self.n_clients, "informative_clients": self.n_informative,
                "lr_vs_alike": self.lr, "p_value": None if math.isnan(self.p_value) else self.p_value,
                "null": "every client draws from the clients' mean PMF (k infinite); LR against chi2_1"}


def _bin_edges(v: np.ndarray, n: np.ndarray, n_bins: int, log_bins: tuple[float, float] | None) -> np.ndarray:
    """Inner edges at the weighted quantiles ``1/n_bins .. (n_bins-1)/n_bins`` of ``v`` (distinct).

    With ``log_bins = (exact_below, bin_ratio)`` (token fields: their counts are the PMFs' log
    bins, each represented by its client's mean) an edge at or above ``exact_below`` moves to the
    nearest log-bin boundary ``exact_below * bin_ratio**j``: an edge inside a log bin would put a
    client's whole bin (one mean) on one side and another client's exact values on both, a
    difference between clients that is only the binning (alike simulated clients of 3,000
    requests read as different at p 1e-22)."""
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(n[order]) / n.sum()
    q = np.arange(1, n_bins) / n_bins
    edges = v[order][np.minimum(np.searchsorted(cum, q, side="left"), v.size - 1)]
    if log_bins is not None:
        lo, ratio = log_bins
        high = edges >= lo
        j = np.round(np.log(edges[high] / lo) / np.log(ratio))
        edges[high] = lo * ratio ** j
    return np.unique(edges)


def dm_loglik(k: float, x: np.ndarray, m: np.ndarray, n: np.ndarray) -> float:
    """Dirichlet-multinomial log-likelihood of prior strength ``k``, less the multinomial
    coefficients (which do not depend on ``k``).

    Parameters
    ----------
    k : float
        Prior strength.
    x, m : numpy.ndarray
        The nonzero counts of every (client, bin) and the prior mean of that bin for that client.
    n : numpy.ndarray
        Every client's total count.
    """
    from scipy import special  # here: the generator imports this module's names without scipy

    return float(np.sum(special.gammaln(k) - special.gammaln(n + k))
                 + np.sum(special.gammaln(x + k * m) - special.gammaln(k * m)))


def _field_fit(part: pl.DataFrame, field: str, n_bins: int, log_bins: tuple[float, float] | None
               ) -> tuple[ShrinkageFit, pl.DataFrame]:
    """The fit of one field from its counts ``c, d, v, n``; and the clients' ``c, n`` (requests)."""
    from scipy import optimize, stats

    v = part["v"].to_numpy().astype(float)
    n = part["n"].to_numpy().astype(float)
    b = np.searchsorted(_bin_edges(v, n, n_bins, log_bins), v, side="right")
    x = (pl.DataFrame({"c": part["c"].to_numpy(), "b": b, "x": n})
         .group_by("c", "b").agg(pl.col("x").sum()).sort("c", "b"))
    clients = x.group_by("c").agg(pl.col("x").sum().alias("n")).sort("c")
    n_b = int(b.max()) + 1 if b.size else 1
    if clients.height < 2:  # one client: nothing to shrink toward (k 0: its own PMFs, weight 1)
        return ShrinkageFit(field, 0.0, int(clients.height), 0, 0.0, float("nan")), clients
    j = x.join(clients.rename({"n": "nc"}), on="c").with_columns((pl.col("x") / pl.col("nc")).alias("share"))
    xs = j["x"].to_numpy()
    share = j["share"].to_numpy()
    b_of = j["b"].to_numpy()
    nc = clients["n"].to_numpy().astype(float)
    nc_row = j["nc"].to_numpy().astype(float)
    informative = int((nc >= 2).sum())
    if informative == 0:
        return ShrinkageFit(field, K_MAX, int(clients.height), 0, 0.0, float("nan")), clients
    k_hat, ll_hat, ll_inf = K_MAX, 0.0, 0.0
    for _ in range(_ROUNDS):  # the center's weights follow k: a few rounds, never a loop over requests
        # leave-one-out weighted mean of the other clients' PMFs, weight n (k + 1) / (n + k): the
        # precision of a client's PMF as an estimate of the mean (requests when the clients are
        # alike; at most k + 1 each when they differ, so a few big clients do not make the
        # center), with _BETA of an average client's weight per bin
        w = nc * (k_hat + 1.0) / (nc + k_hat)
        w_row = nc_row * (k_hat + 1.0) / (nc_row + k_hat)
        s_b = np.bincount(b_of, weights=w_row * share, minlength=n_b)
        beta = _BETA * float(w.sum()) / w.size
        m = (s_b[b_of] - w_row * share + beta) / (float(w.sum()) - w_row + beta * n_b)
        # the multinomial limit (k infinite): sum x ln m, less the multinomial coefficient both share
        ll_inf = float(np.sum(xs * np.log(m)))
        res = optimize.minimize_scalar(lambda lk: -dm_loglik(math.exp(lk), xs, m, nc),
                                       bounds=(math.log(_K_MIN), math.log(K_MAX)), method="bounded",
                                       options={"xatol": 1e-4})
        k_hat, ll_hat = math.exp(res.x), -float(res.fun)
        if ll_hat <= ll_inf:  # the boundary: the clients are alike
            k_hat, ll_hat = K_MAX, ll_inf
    lr = max(2.0 * (ll_hat - ll_inf), 0.0)
    p = float(stats.chi2.sf(lr, 1)) if lr > 0 else 1.0
    return ShrinkageFit(field, min(k_hat, K_MAX), int(clients.height), informative, lr, p), clients


def fit_shrinkage(counts: pl.DataFrame, fields: Sequence[str], *, n_bins: int = SHRINKAGE_BINS,
                  log_bins: tuple[float, float] | None = None, log_fields: Sequence[str] = ()
                  ) -> tuple[dict[str, ShrinkageFit], pl.DataFrame]:
    """Prior strength per field, and each client's own-PMF weight, from the data PMFs' value counts.

    Parameters
    ----------
    counts : polars.DataFrame
        ``c`` (pool client index), ``d`` (data window index), ``field``, ``v`` (value, binned as
        the PMFs), ``n`` (requests).
    fields : sequence of str
        Fields to fit (others in ``counts`` are left out).
    n_bins : int
        Quantile bins of each field's pooled distribution.
    log_bins : (float, float), optional
        ``(exact_below, bin_ratio)`` of the PMFs' log bins (:mod:`servelab.fitting.pool_data`):
        the fields in ``log_fields`` (token fields, binned so) get edges on their boundaries.
    log_fields : sequence of str
        The fields whose counts are log-binned.

    Returns
    -------
    (dict, polars.DataFrame)
        :class:`ShrinkageFit` by field; and ``c, field, weight`` (:math:`\\lambda = n_c / (n_c + k)`,
        :math:`n_c` the client's requests with the field), one row per client and fitted field.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2; got {n_bins!r}")
    fits: dict[str, ShrinkageFit] = {}
    parts = []
    for field in fields:  # a loop over fields
        part = counts.filter(pl.col("field") == field)
        if part.height == 0:
            continue
        fit, per_client = _field_fit(part, field, n_bins,
                                     log_bins if field in set(log_fields) else None)  # c, n per client
        fits[field] = fit
        parts.append(per_client.select(pl.col("c").cast(pl.Int64), pl.lit(field).alias("field"),
                                  (pl.col("n") / (pl.col("n") + fit.k)).alias("weight")))
    weights = pl.concat(parts) if parts else pl.DataFrame(schema={"c": pl.Int64, "field": pl.String,
                                                                  "weight": pl.Float64})
    return fits, weights


def own_weights(weights: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """``client_id, data_own_weight`` (JSON ``{field: lambda}``) from :func:`fit_shrinkage`'s weights;
    clients without data get null (no shrinkage)."""
    by_client: dict[int, dict[str, float]] = {}
    for c, field, w in weights.sort("c", "field").iter_rows():  # one row per client and field, not per request
        by_client.setdefault(int(c), {})[field] = float(w)
    return pl.DataFrame({"client_id": list(names),
                         OWN_WEIGHT_COLUMN: [json.dumps(by_client[i], sort_keys=True) if i in by_client else None
                                             for i in range(len(names))]},
                        schema={"client_id": pl.String, OWN_WEIGHT_COLUMN: pl.String})


def decode_own_weights(column: pl.Series) -> pl.Series:
    """The :data:`OWN_WEIGHT_COLUMN` JSON decoded: a struct with one float field per length field
    (null where a client has no weight for it). Every row's keys are read (a field first seen past
    polars' default 100-row schema sample made the decode fail)."""
    return column.str.json_decode(infer_schema_length=None)


def shrinkage_summary(pool) -> dict | str:
    """``pool info``'s line: per field the fitted ``k`` and test (from the pool's provenance, when
    it records the fit) and the median and range of the clients' weights; a sentence when the pool
    has no weights."""
    clients = pool.clients
    if OWN_WEIGHT_COLUMN not in clients.columns or clients[OWN_WEIGHT_COLUMN].is_null().all():
        return "none (every client draws from its own PMFs)"
    fitted = (getattr(pool, "provenance", None) or {}).get("length_shrinkage")
    fitted = fitted if isinstance(fitted, dict) else {}
    weights = decode_own_weights(clients[OWN_WEIGHT_COLUMN].drop_nulls())
    out = {}
    for field in sorted(weights.struct.fields):
        w = weights.struct.field(field).cast(pl.Float64).drop_nulls()
        fit = fitted.get(field) if isinstance(fitted.get(field), dict) else {}
        out[field] = {"k": fit.get("k", float("nan")), "p_value": fit.get("p_value"), "clients": int(w.len()),
                      "median_weight": float(w.median()), "min_weight": float(w.min()), "max_weight": float(w.max())}
    return out


#: the center's masses as integer counts for the PMF binning (exact sums, the same bytes every run)
_CENTER_SCALE = 1e9
#: how much finer than the pool's PMFs the center is binned
_CENTER_FINER = 5


def shrinkage_centers(counts: pl.DataFrame, weights: pl.DataFrame, kinds: dict[str, str], *, exact_below: int,
                      bin_ratio: float, spike_share: float, max_bin_mass: float,
                      spread_points: int = 1) -> dict[str, dict[str, list]]:
    """Per field, the center of the shrinkage: the clients' PMFs over the fitted span mixed by their
    weights :math:`\\lambda` (proportional to their precision :math:`n (k + 1) / (n + k)`), binned
    by the pool's rules (:mod:`servelab.fitting.pool_data`) at a fifth of its log-bin step: ``{"value": [...], "probability":
    [...]}``, kept in the pool's provenance so that the generator need not rebuild it from every
    client's rows (and so that a selection, a clip or an extension keeps the fitted center).

    Parameters
    ----------
    counts : polars.DataFrame
        ``c, d, field, v, n`` as for :func:`fit_shrinkage`.
    weights : polars.DataFrame
        ``c, field, weight`` from :func:`fit_shrinkage`.
    kinds : dict
        ``field -> "tokens" | "grid"``.
    exact_below, bin_ratio, spike_share, max_bin_mass, spread_points
        The pool's PMF binning; the center's bins of several values are spread over them as the
        PMFs' are (:func:`~servelab.fitting.pool_data.spread_bins`).
    """
    from servelab.fitting.ordered_sums import grouped_sums
    from servelab.fitting.pool_data import _bin, spread_bins

    out = {}
    for field, kind in kinds.items():  # a loop over fields
        part = counts.filter(pl.col("field") == field).select(pl.col("c").cast(pl.Int64), pl.col("v").cast(pl.Float64),
                                                               pl.col("n").cast(pl.Float64))
        w = weights.filter(pl.col("field") == field).select("c", "weight")
        if part.height == 0 or w.height == 0:
            continue
        per_client = grouped_sums(part, ["c"], total="n")
        rows = (part.join(per_client, on="c").join(w, on="c")
                .with_columns((pl.col("n") / pl.col("total") * pl.col("weight")).alias("m")))
        mass = grouped_sums(rows, ["v"], m="m")  # in row order: the same bytes every run
        if mass.height == 0 or float(mass["m"].sum()) <= 0:
            continue
        ints = mass.select(pl.lit(0, pl.Int64).alias("c"), pl.lit(0, pl.Int64).alias("d"), "v",
                           (pl.col("m") / pl.col("m").sum() * _CENTER_SCALE).round().cast(pl.Int64).alias("n"))
        # binned finer than a client's PMF (a fifth of the log-bin step, a tenth of the largest bin
        # mass): the center is many clients' mix, whose CDF the pool's binning would move by up to
        # max_bin_mass (sparse synthetic store: output_ks 0.0122 unbinned, 0.0159 at the pool's
        # binning); about a thousand rows a field
        binned = _bin(ints.filter(pl.col("n") > 0), kind, exact_below=exact_below,
                      bin_ratio=1.0 + (bin_ratio - 1.0) / _CENTER_FINER, max_bin_mass=max_bin_mass / (2 * _CENTER_FINER),
                      spike_share=spike_share)
        binned = spread_bins(binned, points=spread_points, keys=("c", "d")).sort("v")
        total = float(binned["n"].sum())
        out[field] = {"value": binned["v"].cast(pl.Float64).to_list(),
                      "probability": (binned["n"].cast(pl.Float64) / total).to_list()}
    return out

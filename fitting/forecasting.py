"""Load forecasting, as in BurstGPT section 5.4 (Fig. 17-18): requests per bin and mean tokens
per request, predicted from lags, rolling statistics and calendar features.

BurstGPT predicts, for each time bin, the request count and the mean number of request tokens
per request from (i) the load of the previous 3 bins, (ii) statistics (mean, variance, ...) of the
load over a rolling window of up to 60 minutes, and (iii) the hour of day and the day of week, with
a gradient-boosted tree model (XGBoost), and reports NMAE and NMSE on held-out data for 1-minute
and 10-minute bins (1 min: NMAE 0.73, NMSE 0.48 for requests; 10 min is easier, NMSE 58% lower).

Here the regressor is scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingRegressor`
(seeded; it handles the missing values of idle bins natively). The held-out set is the *tail*
of the series (the last ``test_fraction`` of bins): forecasting is judged on the future, never on
shuffled bins. The paper does not define its error measures; this module uses the usual ones,

.. math::

    \\mathrm{NMAE} = \\frac{\\sum_t |y_t - \\hat y_t|}{\\sum_t |y_t|}, \\qquad
    \\mathrm{NMSE} = \\frac{\\sum_t (y_t - \\hat y_t)^2}{\\sum_t (y_t - \\bar y)^2},

over the test bins (``ȳ`` the test mean: NMSE = 1 is no better than knowing the test mean).
Two naive forecasts score the same bins, so that the numbers mean something: *last value*
(``ŷ_t = y_{t-1}``) and *seasonal naive* (``ŷ_t = y_{t-1 day}``, when a day of history precedes
the tail).

Every feature of bin ``t`` uses only bins before ``t``. Per-bin series come from
:func:`servelab.analysis.periodicity.binned_load` (DuckDB SQL). Results hold scalar scores and the
per-bin predictions of the test tail (aggregates, for Fig. 17-18), never request rows. This module
never plots.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import polars as pl
from servelab.analysis.periodicity import DAY_S, binned_load
from servelab.analysis.store import TraceStore
from servelab.fitting.exceptions import InsufficientDataError

__all__ = [
    "FORECAST_TARGETS",
    "MIN_TEST_BINS",
    "MIN_TRAIN_BINS",
    "ForecastResult",
    "LoadForecaster",
    "forecast_load",
    "load_series",
    "nmae",
    "nmse",
    "series_from_bins",
]

#: what can be forecast: requests per bin, mean tokens per request in the bin
FORECAST_TARGETS = ("requests", "mean_tokens")
#: least training rows (bins with a defined target) a forecast is fitted on
MIN_TRAIN_BINS = 30
#: least test rows a score is computed on
MIN_TEST_BINS = 10


def nmae(y, y_hat) -> float:
    """Normalised mean absolute error ``sum|y - ŷ| / sum|y|`` (NaN when ``sum|y| = 0``)."""
    y, y_hat = np.asarray(y, dtype=float), np.asarray(y_hat, dtype=float)
    denom = np.sum(np.abs(y))
    return float(np.sum(np.abs(y - y_hat)) / denom) if denom > 0 else float("nan")


def nmse(y, y_hat) -> float:
    """Normalised mean squared error ``sum (y - ŷ)^2 / sum (y - ȳ)^2`` (NaN when ``y`` is constant)."""
    y, y_hat = np.asarray(y, dtype=float), np.asarray(y_hat, dtype=float)
    denom = np.sum((y - y.mean()) ** 2) if y.size else 0.0
    return float(np.sum((y - y_hat) ** 2) / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class ForecastResult:
    """Scores of one load forecast on the held-out tail.

    Parameters
    ----------
    target : str
        ``"requests"`` (per bin) or ``"mean_tokens"`` (per request in the bin).
    window_s : float
        Bin length.
    n_bins, n_train, n_test : int
        Bins in the series; rows (bins with a defined target) trained and scored on.
    nmae, nmse : float
        Scores of the model on the test rows (NaN when undefined, see :func:`nmae`, :func:`nmse`).
    baselines : Mapping[str, Mapping[str, float]]
        Naive forecasts scored on the same rows: name -> ``{"nmae": ..., "nmse": ...}``.
    features : tuple of str
        Feature names, in model order.
    seed : int
        ``random_state`` of the regressor.
    clock : str
        Basis of the calendar features (see :class:`servelab.analysis.periodicity.TraceClock`).
    token_column : str or None
        Token column behind ``mean_tokens``.
    notes : tuple of str
        What was done (split, rolling window, skipped baselines and why).
    predictions : polars.DataFrame
        Test tail, one row per scored bin: ``start_s``, ``actual``, ``predicted`` and one column per
        baseline (per-bin aggregates for plotting; not part of :meth:`summary`).
    """

    target: str
    window_s: float
    n_bins: int
    n_train: int
    n_test: int
    nmae: float
    nmse: float
    baselines: Mapping[str, Mapping[str, float]]
    features: tuple[str, ...]
    seed: int
    clock: str
    token_column: str | None = None
    notes: tuple[str, ...] = ()
    predictions: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "baselines", MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in self.baselines.items()}))
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def best_baseline(self) -> tuple[str, float] | None:
        """Name and NMSE of the best-scoring naive forecast (None if none was scored)."""
        scored = [(k, v["nmse"]) for k, v in self.baselines.items() if math.isfinite(v["nmse"])]
        return min(scored, key=lambda kv: kv[1]) if scored else None

    @property
    def beats_baselines(self) -> bool | None:
        """True when the model's NMSE is below every naive forecast's (None if undefined)."""
        best = self.best_baseline
        if best is None or not math.isfinite(self.nmse):
            return None
        return bool(self.nmse < best[1])

    def summary(self) -> pl.DataFrame:
        """One row per method (the model, then each baseline): target, bin, n_test, NMAE, NMSE."""
        rows = [{"method": "HistGradientBoosting", "nmae": self.nmae, "nmse": self.nmse}]
        rows += [{"method": k, "nmae": v["nmae"], "nmse": v["nmse"]} for k, v in self.baselines.items()]
        return pl.DataFrame(rows, schema={"method": pl.String, "nmae": pl.Float64, "nmse": pl.Float64}).select(
            pl.lit(self.target).alias("target"), pl.lit(self.window_s).alias("bin_s"),
            pl.lit(self.n_test, pl.Int64).alias("n_test"), "method", "nmae", "nmse",
        )


def load_series(
    store: TraceStore,
    *,
    window_s: float,
    token_column: str | None = "input_tokens",
    where: str | None = None,
) -> pl.DataFrame:
    """Per-bin load of a store: ``requests`` and ``mean_tokens`` with calendar columns.

    ``mean_tokens`` is the mean of ``token_column`` over the bin's requests that have it (null in
    idle bins); it is absent when ``token_column`` is None or the store lacks it.
    """
    tokens = token_column if token_column and store.has(token_column) else None
    return series_from_bins(binned_load(store, window_s=window_s, tokens=tokens, where=where))


def series_from_bins(frame: pl.DataFrame) -> pl.DataFrame:
    """A forecastable series from a one-group :func:`binned_load` (or ``rebin``) table:
    ``count`` becomes ``requests``; ``mean_tokens`` = ``tokens / token_requests`` when present."""
    frame = frame.rename({"count": "requests"})
    if "tokens" in frame.columns:
        frame = frame.with_columns(
            mean_tokens=pl.when(pl.col("token_requests") > 0).then(pl.col("tokens") / pl.col("token_requests"))
        )
    return frame


class LoadForecaster:
    """Forecast per-bin load from its past (BurstGPT 5.4). Settings only; :meth:`fit` returns a
    frozen :class:`ForecastResult`.

    Parameters
    ----------
    window_s : float
        Bin length (60 and 600 in the paper).
    target : {"requests", "mean_tokens"}
        What to predict.
    lags : int
        Previous bins used as features (3 in the paper).
    rolling_s : float
        Length of the rolling window of the mean / std / min / max features (60 min in the paper;
        at least 2 bins).
    test_fraction : float
        Share of the series, at its end, held out for scoring (0 < f < 1).
    season_s : float
        Period of the seasonal-naive baseline (one day).
    calendar : bool
        Add hour of day and day of week (local clock) as features.
    seed : int
        ``random_state`` of the regressor.
    max_iter, learning_rate : int, float
        Boosting settings of :class:`~sklearn.ensemble.HistGradientBoostingRegressor`.
    token_column : str
        Token column behind ``mean_tokens`` (request tokens, as in the paper's Fig. 17).
    threads : int or None
        OpenMP threads of the regressor (None: scikit-learn's default, all cores). One by default:
        the series are small (10^3-10^4 bins) and on a shared, loaded machine OpenMP's spinning
        threads made a 2-thread fit 3-6 times *slower* than a 1-thread one.
    """

    def __init__(self, *, window_s: float = 60.0, target: str = "requests", lags: int = 3, rolling_s: float = 3600.0,
                 test_fraction: float = 0.2, season_s: float = DAY_S, calendar: bool = True, seed: int = 0,
                 max_iter: int = 100, learning_rate: float = 0.1, token_column: str = "input_tokens",
                 threads: int | None = 1) -> None:
        self.window_s = window_s
        self.target = target
        self.lags = lags
        self.rolling_s = rolling_s
        self.test_fraction = test_fraction
        self.season_s = season_s
        self.calendar = calendar
        self.seed = seed
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.token_column = token_column
        self.threads = threads

    def _validate(self) -> None:
        if self.target not in FORECAST_TARGETS:
            raise ValueError(f"target must be one of {FORECAST_TARGETS}; got {self.target!r}")
        if not (isinstance(self.window_s, (int, float)) and math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(f"window_s must be a positive number of seconds; got {self.window_s!r}")
        if int(self.lags) != self.lags or self.lags < 1:
            raise ValueError(f"lags must be an integer >= 1; got {self.lags!r}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1); got {self.test_fraction!r}")
        if not self.rolling_s > 0:
            raise ValueError(f"rolling_s must be positive; got {self.rolling_s!r}")

    def fit(self, store: TraceStore, *, where: str | None = None) -> ForecastResult:
        """Count the store's load per bin (SQL) and forecast it; see :meth:`fit_series`.

        Raises
        ------
        NotApplicableError
            If ``target="mean_tokens"`` and the store lacks the token column.
        InsufficientDataError
            If there are too few bins to train and score.
        """
        self._validate()
        if self.target == "mean_tokens":
            store.require(self.token_column, analysis="mean-tokens forecasting")
        series = load_series(store, window_s=self.window_s, token_column=self.token_column, where=where)
        return self.fit_series(series)

    def fit_series(self, series: pl.DataFrame) -> ForecastResult:
        """Forecast a per-bin series (columns ``start_s``, the target, and optionally ``hour``,
        ``weekday``, ``clock``), consecutive bins of ``window_s`` in time order.

        Raises
        ------
        ValueError
            If a setting is invalid or the series lacks the target column.
        InsufficientDataError
            If fewer than ``MIN_TRAIN_BINS`` training rows or ``MIN_TEST_BINS`` test rows have a
            defined target.
        """
        from sklearn.ensemble import HistGradientBoostingRegressor

        self._validate()
        if self.target not in series.columns:
            raise ValueError(f"series must have a {self.target!r} column; columns found: {series.columns}")
        series = series.sort("start_s")
        n_bins = series.height
        y = series[self.target].cast(pl.Float64).to_numpy()  # NaN where the target is undefined
        window = max(2, round(self.rolling_s / self.window_s))
        X, names = self._features(series, y, window)
        n_test_bins = math.ceil(self.test_fraction * n_bins)
        split = n_bins - n_test_bins
        defined = np.isfinite(y)
        train = defined.copy()
        train[split:] = False
        train[0] = False  # no history at all
        test = defined.copy()
        test[:split] = False
        n_train, n_test = int(train.sum()), int(test.sum())
        if n_train < MIN_TRAIN_BINS or n_test < MIN_TEST_BINS:
            raise InsufficientDataError(
                f"forecasting {self.target} at window_s={self.window_s:g} needs at least {MIN_TRAIN_BINS} training and "
                f"{MIN_TEST_BINS} test bins with a defined target; got {n_train} and {n_test} "
                f"({n_bins} bins of {self.window_s:g} s, last {self.test_fraction:.0%} held out)"
            )
        model = HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate, early_stopping=False, random_state=self.seed,
        )
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads, user_api="openmp"):
            model.fit(X[train], y[train])
            pred = model.predict(X[test])
        if self.target == "requests":
            pred = np.maximum(pred, 0.0)
        truth = y[test]
        notes = [
            f"chronological split: last {n_test_bins} of {n_bins} bins held out ({self.test_fraction:.0%})",
            f"features: {self.lags} lags, rolling mean/std/min/max over the previous {window} bins"
            + (", hour of day and day of week" if self.calendar and "hour" in names else ""),
            (f"HistGradientBoostingRegressor(max_iter={self.max_iter}, learning_rate={self.learning_rate}, "
             f"random_state={self.seed})"),
        ]
        baselines, columns = self._baselines(y, test, split, train, notes)
        clock = series["clock"][0] if "clock" in series.columns and n_bins else "relative to trace start"
        if self.calendar and clock == "relative to trace start":
            notes.append("calendar features are relative to the trace start (origin unknown)")
        predictions = pl.DataFrame({
            "start_s": series["start_s"].to_numpy()[test], "actual": truth, "predicted": pred,
            **{name: col for name, col in columns.items()},
        })
        return ForecastResult(
            target=self.target, window_s=float(self.window_s), n_bins=n_bins, n_train=n_train, n_test=n_test,
            nmae=nmae(truth, pred), nmse=nmse(truth, pred), baselines=baselines, features=tuple(names),
            seed=self.seed, clock=clock, token_column=self.token_column if self.target == "mean_tokens" else None,
            notes=tuple(notes), predictions=predictions,
        )

    def _features(self, series: pl.DataFrame, y: np.ndarray, window: int) -> tuple[np.ndarray, list[str]]:
        past = pl.Series("y", y).fill_nan(None).shift(1)
        cols = {f"lag_{k}": past.shift(k - 1) for k in range(1, self.lags + 1)}
        cols["roll_mean"] = past.rolling_mean(window, min_samples=1)
        cols["roll_std"] = past.rolling_std(window, min_samples=2)
        cols["roll_min"] = past.rolling_min(window, min_samples=1)
        cols["roll_max"] = past.rolling_max(window, min_samples=1)
        if self.calendar:
            for name in ("hour", "weekday"):
                if name in series.columns:
                    cols[name] = series[name].cast(pl.Float64)
        frame = pl.DataFrame(cols)
        return frame.to_numpy().astype(float), list(cols)

    def _baselines(self, y: np.ndarray, test: np.ndarray, split: int, train: np.ndarray,
                   notes: list[str]) -> tuple[dict, dict]:
        truth = y[test]
        fallback = float(np.nanmean(y[train]))
        last = pl.Series(y).fill_nan(None).shift(1).forward_fill().fill_null(fallback).to_numpy()
        baselines = {"last value": {"nmae": nmae(truth, last[test]), "nmse": nmse(truth, last[test])}}
        columns = {"last_value": last[test]}
        season = self.season_s / self.window_s
        if float(season).is_integer() and split >= int(season):
            season = int(season)
            lagged = np.concatenate([np.full(season, np.nan), y[:-season]])
            filled = np.where(np.isfinite(lagged), lagged, last)
            baselines["seasonal naive"] = {"nmae": nmae(truth, filled[test]), "nmse": nmse(truth, filled[test])}
            columns["seasonal_naive"] = filled[test]
            notes.append(f"seasonal naive: value {self.season_s:g} s earlier (last value where that bin was idle)")
        else:
            notes.append(
                f"seasonal naive baseline skipped: needs {self.season_s:g} s of history before the test tail"
                f" ({split} bins of {self.window_s:g} s available)"
            )
        return baselines, columns


def forecast_load(store: TraceStore, *, window_s: float = 60.0, target: str = "requests", seed: int = 0,
                  where: str | None = None, **settings) -> ForecastResult:
    """``LoadForecaster(window_s=..., target=..., seed=..., **settings).fit(store, where=where)``."""
    return LoadForecaster(window_s=window_s, target=target, seed=seed, **settings).fit(store, where=where)

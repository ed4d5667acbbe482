"""The frozen :class:`FitResult` that every fit returns and the client pool stores.

A result holds estimates and summary numbers only, never the data it was fitted on.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl

__all__ = ["FitResult", "fits_table"]


@dataclass(frozen=True)
class FitResult:
    """A fitted distribution.

    Parameters
    ----------
    family : str
        Registry name of the family (e.g. ``"gamma"``; see :mod:`servelab.fitting.families`).
    params : Mapping[str, float]
        Named parameters, scipy's names (``{"a": 0.7, "scale": 2.0}`` for Gamma); ``loc`` is
        fixed at 0 for positive data and therefore not listed.
    n : int
        Sample size the fit used.
    log_likelihood, aic, bic : float
        Maximised log-likelihood and the information criteria (``k`` = number of free params).
    ks_distance : float or None
        Kolmogorov-Smirnov distance D between the sample and the fitted CDF (the effect size;
        meaningful at any n).
    p_value : float or None
        An honest goodness-of-fit p-value, or None. Never the naive KS p-value against
        parameters fitted on the same data.
    p_value_method : str or None
        How :attr:`p_value` was obtained, e.g. ``"parametric bootstrap (B=200, KS D)"`` or
        ``"KS on a random subsample of 2000 (params from the full sample)"``.
    converged : bool
        Whether the optimiser reported convergence.
    notes : tuple of str
        What was done to the data before fitting (ties jittered, zeros dropped, subsampling).
    """

    family: str
    params: Mapping[str, float]
    n: int
    log_likelihood: float
    aic: float
    bic: float
    ks_distance: float | None = None
    p_value: float | None = None
    p_value_method: str | None = None
    converged: bool = True
    notes: tuple[str, ...] = ()
    n_params: int = field(default=-1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType({k: float(v) for k, v in self.params.items()}))
        object.__setattr__(self, "notes", tuple(self.notes))
        if self.n_params < 0:
            object.__setattr__(self, "n_params", len(self.params))
        if (self.p_value is None) != (self.p_value_method is None):
            raise ValueError("p_value and p_value_method go together: give both or neither")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (non-finite floats become None)."""
        return {
            "family": self.family,
            "params": {k: _finite_or_none(v) for k, v in self.params.items()},
            "n": self.n,
            "n_params": self.n_params,
            "log_likelihood": _finite_or_none(self.log_likelihood),
            "aic": _finite_or_none(self.aic),
            "bic": _finite_or_none(self.bic),
            "ks_distance": _finite_or_none(self.ks_distance),
            "p_value": _finite_or_none(self.p_value),
            "p_value_method": self.p_value_method,
            "converged": self.converged,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FitResult":
        nan = float("nan")
        return cls(
            family=data["family"],
            params={k: (nan if v is None else v) for k, v in data["params"].items()},
            n=int(data["n"]),
            n_params=int(data.get("n_params", -1)),
            log_likelihood=_none_to_nan(data.get("log_likelihood")),
            aic=_none_to_nan(data.get("aic")),
            bic=_none_to_nan(data.get("bic")),
            ks_distance=data.get("ks_distance"),
            p_value=data.get("p_value"),
            p_value_method=data.get("p_value_method"),
            converged=bool(data.get("converged", True)),
            notes=tuple(data.get("notes", ())),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FitResult":
        return cls.from_dict(json.loads(text))


def fits_table(results) -> pl.DataFrame:
    """One row per result: family, params as ``k=v`` text, n, log-likelihood, AIC, BIC, D, p."""
    rows = [
        {
            "family": r.family,
            "params": ", ".join(f"{k}={v:.4g}" for k, v in r.params.items()),
            "n": r.n,
            "log_likelihood": r.log_likelihood,
            "aic": r.aic,
            "bic": r.bic,
            "ks_distance": r.ks_distance,
            "p_value": r.p_value,
            "p_value_method": r.p_value_method,
            "converged": r.converged,
        }
        for r in results
    ]
    return pl.DataFrame(rows, schema={
        "family": pl.String, "params": pl.String, "n": pl.Int64, "log_likelihood": pl.Float64,
        "aic": pl.Float64, "bic": pl.Float64, "ks_distance": pl.Float64, "p_value": pl.Float64,
        "p_value_method": pl.String, "converged": pl.Boolean,
    })


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _none_to_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)

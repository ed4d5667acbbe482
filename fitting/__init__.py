"""Distribution families, fits, goodness of fit, mixtures, client decomposition, pool fitting.

Fitting may read :mod:`servelab.analysis` tables; it never imports figures or matplotlib.
"""
# length families register themselves in the one registry on import (pareto, zipf, lognormal_pareto,
# lognormal_mixture, normal_mixture, normal), so that get_family finds them wherever a FitResult is read
from servelab.fitting import heavy_tail, mixtures
from servelab.fitting.compare import (
    FamilyComparison,
    compare_by_group,
    compare_families,
)
from servelab.fitting.exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    FitWarning,
    InsufficientDataError,
    UnknownFamilyError,
)
from servelab.fitting.families import (
    ARRIVAL_FAMILIES,
    Family,
    family_names,
    get_family,
    register_family,
)
from servelab.fitting.fit import fit_family, ks_distance
from servelab.fitting.forecasting import ForecastResult, forecast_load
from servelab.fitting.gof import goodness_of_fit
from servelab.fitting.mixtures import Bimodality, bimodality, compare_length_fits
from servelab.fitting.pool_fit import compare_pools, fit_pool
from servelab.fitting.result import FitResult, fits_table
from servelab.fitting.ties import detect_resolution, prepare_sample
from servelab.fitting.windows import gamma_per_window

__all__ = [
    "fit_pool",
    "compare_pools",
    "forecast_load",
    "ForecastResult",
    "Bimodality",
    "bimodality",
    "compare_length_fits",
    "FamilyComparison",
    "compare_families",
    "compare_by_group",
    "goodness_of_fit",
    "detect_resolution",
    "prepare_sample",
    "gamma_per_window",
    "FitResult",
    "fits_table",
    "Family",
    "ARRIVAL_FAMILIES",
    "family_names",
    "get_family",
    "register_family",
    "fit_family",
    "ks_distance",
    "FitWarning",
    "ConvergenceWarning",
    "ConvergenceError",
    "InsufficientDataError",
    "UnknownFamilyError",
]

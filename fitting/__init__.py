"""Distribution families, fits, goodness of fit, family comparison, length mixtures, load
forecasting and pool fitting.

Exported here, by group (``__all__`` lists them in this order):

- results and families: :class:`FitResult`, :func:`fits_table`, :class:`Family`, the family
  registry (:func:`get_family`, :func:`register_family`, :func:`family_names`) and
  :data:`ARRIVAL_FAMILIES`;
- one sample: :func:`prepare_sample` / :func:`detect_resolution` (ties and timestamp resolution),
  :func:`fit_family`, :func:`ks_distance`;
- goodness of fit: :func:`goodness_of_fit` (an honest p-value on a :class:`FitResult`),
  :func:`bootstrap_ks`;
- comparing families: :func:`compare_families`, :func:`compare_by_group`, :func:`density_curves`;
- lengths: :func:`compare_length_fits`, :func:`bimodality`, :func:`explore_scipy_families`
  (needs the optional extra ``servelab[explore]``);
- arrivals per window: :func:`gamma_per_window`;
- load forecasting: :func:`forecast_load`, :class:`LoadForecaster`;
- pool fitting: :func:`fit_pool`, :func:`compare_pools`;
- verdicts: :class:`NullTest` and :func:`decide` / :func:`combine` (a decision against a named null
  at a stated level, with its power), the tests that feed them (:func:`rate_shift_test`,
  :func:`burstiness_test`, :func:`gamma_shape_shift_test`, :func:`describes`,
  :func:`lattice_bimodality`, :func:`correlation_difference_test`, ...);
- warnings and errors.

Client decomposition and conversations are characterization, not fitting: they live in
:mod:`servelab.analysis` (``decompose_clients``, ``link_conversations``).

The client pool's data model lives here too (:mod:`~servelab.fitting.pool`, ``pool_format``,
``pool_checks``, ``servegen_format``; their old ``servelab.generator.*`` paths still import, see
``servelab.generator.MOVED_MODULES``), so that ``fit_pool`` builds a ``ClientPool`` without
importing the layer above. Fitting reads :mod:`servelab.analysis` tables; it never imports the
generator, figures, reports, the CLI or matplotlib
(tests/test_layers.py).
"""
from typing import TYPE_CHECKING

from servelab._lazy import lazy_exports

# every name below is imported on first access (servelab._lazy), so that importing one fitting
# module (e.g. the arrival families a generator draws from) does not import scipy.optimize,
# statsmodels or scikit-learn; heavy_tail and mixtures are imported before the first name resolves
__getattr__, __dir__ = lazy_exports(__name__, __file__, eager=("servelab.fitting.heavy_tail", "servelab.fitting.mixtures"))

if TYPE_CHECKING:
    # length families register themselves in the one registry on import (pareto, zipf, lognormal_pareto,
    # lognormal_mixture, normal_mixture, normal), so that get_family finds them wherever a FitResult is read
    from servelab.fitting import heavy_tail, mixtures
    from servelab.fitting.compare import (
        FamilyComparison,
        compare_by_group,
        compare_families,
        density_curves,
    )
    from servelab.fitting.exceptions import (
        ConvergenceError,
        ConvergenceWarning,
        FitWarning,
        InsufficientDataError,
        UnknownFamilyError,
    )
    from servelab.fitting.families import (
        ArrivalFamily,
        SegmentFits,
        arrival_family_names,
        arrival_param_names,
        get_arrival_family,
        ARRIVAL_FAMILIES,
        Family,
        ParamFit,
        family_names,
        get_family,
        register_family,
    )
    from servelab.fitting.fit import fit_family, ks_distance
    from servelab.fitting.forecasting import ForecastResult, LoadForecaster, forecast_load
    from servelab.fitting.gof import BootstrapKS, bootstrap_ks, goodness_of_fit
    from servelab.fitting.mixtures import Bimodality, bimodality, compare_length_fits, explore_scipy_families
    from servelab.fitting.pool_fit import compare_pools, fit_pool
    from servelab.fitting.pool_compare import PoolComparison
    from servelab.fitting.pool_settings import SETTING_ALIASES, PoolFitSettings
    from servelab.fitting.result import FitResult, fits_table
    from servelab.fitting.ties import PreparedSample, Resolution, detect_resolution, prepare_sample
    from servelab.fitting.windows import gamma_per_window
    from servelab.fitting.correlation_tests import correlation_bound_test, correlation_difference_test
    from servelab.fitting.fit_standard import KS_TOLERANCE, KSCritical, describes, infinite_mean, ks_critical_value, mean_note
    from servelab.fitting.mean_shift_tests import mean_shift_test
    from servelab.fitting.modality import lattice_bimodality
    from servelab.fitting.proportion_tests import proportion_test
    from servelab.fitting.rate_tests import (
        Dispersion,
        WindowCounts,
        block_counts,
        blocks_from_windows,
        burstiness_test,
        pooled_gap_dispersion,
        rate_shift_test,
        rate_shift_tests,
        rate_shift_tests_sparse,
        window_counts,
        within_block_dispersion,
    )
    from servelab.fitting.shape_tests import gamma_shape_shift_test
    from servelab.fitting.verdicts import DECISION_RULE, Decision, NullTest, combine, decide

__all__ = [
    # results and families
    "FitResult",
    "fits_table",
    "Family",
    "ParamFit",
    "ARRIVAL_FAMILIES",
    "family_names",
    "ArrivalFamily",
    "SegmentFits",
    "get_arrival_family",
    "arrival_family_names",
    "arrival_param_names",
    "get_family",
    "register_family",
    # one sample: ties, fit, distance
    "Resolution",
    "PreparedSample",
    "detect_resolution",
    "prepare_sample",
    "fit_family",
    "ks_distance",
    # goodness of fit
    "goodness_of_fit",
    "bootstrap_ks",
    "BootstrapKS",
    # comparing families
    "FamilyComparison",
    "compare_families",
    "compare_by_group",
    "density_curves",
    # lengths
    "compare_length_fits",
    "Bimodality",
    "bimodality",
    "explore_scipy_families",
    # arrivals per window
    "gamma_per_window",
    # load forecasting
    "ForecastResult",
    "LoadForecaster",
    "forecast_load",
    # pool fitting
    "PoolFitSettings",
    "SETTING_ALIASES",
    "PoolComparison",
    "fit_pool",
    "compare_pools",
    # verdicts: a decision against a named null at a stated level, with its power (issue 13)
    "NullTest",
    "Decision",
    "decide",
    "combine",
    "DECISION_RULE",
    "rate_shift_test",
    "rate_shift_tests",
    "rate_shift_tests_sparse",
    "burstiness_test",
    "within_block_dispersion",
    "Dispersion",
    "blocks_from_windows",
    "pooled_gap_dispersion",
    "window_counts",
    "WindowCounts",
    "block_counts",
    "gamma_shape_shift_test",
    "describes",
    "ks_critical_value",
    "KSCritical",
    "infinite_mean",
    "mean_note",
    "KS_TOLERANCE",
    "lattice_bimodality",
    "correlation_difference_test",
    "correlation_bound_test",
    "mean_shift_test",
    "proportion_test",
    # warnings and errors
    "FitWarning",
    "ConvergenceWarning",
    "ConvergenceError",
    "InsufficientDataError",
    "UnknownFamilyError",
]

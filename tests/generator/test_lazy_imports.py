"""A short ``servelab generate`` from a servelab pool imports neither scipy, statsmodels, sklearn,
matplotlib, DuckDB, pyarrow nor pandas (issue 16 item 5); the lazy package exports resolve to the
same objects. Three pools: a plain one, one with fitted conversations (turns, ITTs, first-turn
inputs and increments: the pool-wide input PMFs are built), and the shipped ServeGen sample.

Checked in a fresh interpreter (pytest itself has imported everything); the positive control runs
the same probe after using a name that needs scipy.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _genpools import make_pool, to_client_pool

HEAVY = ("scipy", "statsmodels", "sklearn", "matplotlib", "duckdb", "seaborn", "pyarrow", "pandas")
_PROBE = r"""
import json, sys
from servelab.cli import main
try:
    main(sys.argv[1:-1])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
if sys.argv[-1] == "control":
    import servelab.fitting
    servelab.fitting.fit_family
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))
""" % (HEAVY,)


def _heavy_after_generate(pool_dir: Path, out: Path, mode: str) -> list[str]:
    args = ["generate", str(pool_dir), "--rate", "5", "--duration", "600", "--seed", "1", "-o", str(out),
            "--overwrite", "--quiet", mode]
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.splitlines()[0])["requests"] > 0
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_generate_from_a_servelab_pool_imports_no_heavy_library(tmp_path):
    pmf = {"input_tokens": ([10, 100], [0.5, 0.5]), "output_tokens": ([5], [1.0])}
    pool = to_client_pool(make_pool({"a": [2.0] * 2, "b": [1.0] * 2}, pmfs={"a": pmf, "b": pmf},
                                    families={"b": "weibull"}, cvs={"b": 0.7}))
    pool.save(tmp_path / "pool")
    assert _heavy_after_generate(tmp_path / "pool", tmp_path / "w.parquet", "plain") == []
    # positive control: a fitting name that needs scipy does load it in the same probe
    assert "scipy" in _heavy_after_generate(tmp_path / "pool", tmp_path / "w2.parquet", "control")


def _conversation_pool():
    """Two clients over three data windows with fitted conversations (turns, ITTs, first-turn
    inputs of single- and multi-turn conversations, follow-up increments)."""
    pmf = {"input_tokens": ([10, 100, 400], [0.3, 0.5, 0.2]), "output_tokens": ([5, 50], [0.5, 0.5])}
    rows = []
    for cid in ("a", "b"):
        for q, values, probs in (("turns", [1, 2, 3], [0.5, 0.3, 0.2]), ("itt_s", [5.0, 30.0], [0.5, 0.5]),
                                 ("input_increment", [20, 50], [0.5, 0.5]), ("first_input", [100, 200], [0.5, 0.5]),
                                 ("first_input_multi", [150], [1.0])):
            rows += [(cid, q, float(v), p) for v, p in zip(values, probs)]
    conv = pl.DataFrame(rows, schema=["client_id", "quantity", "value", "probability"], orient="row")
    return to_client_pool(make_pool({"a": [2.0] * 80, "b": [1.0] * 80}, pmfs={"a": pmf, "b": pmf},
                                    conversations=conv))


def test_generate_from_a_fitted_conversation_pool_or_a_servegen_sample_imports_no_heavy_library(tmp_path, raw_traces):
    pool = _conversation_pool()
    pool.save(tmp_path / "conv")
    assert _heavy_after_generate(tmp_path / "conv", tmp_path / "c.parquet", "plain") == []
    # the conversation path ran: follow-ups, and first turns drawn from the first-turn PMFs
    out = pl.read_parquet(tmp_path / "c.parquet")
    assert out["turn"].max() >= 2 and out.filter(pl.col("turn") == 1)["input_tokens"].is_in([100, 150, 200]).all()
    sample = raw_traces / "servegen" / "m-small"
    assert _heavy_after_generate(sample, tmp_path / "s.parquet", "plain") == []
    assert "scipy" in _heavy_after_generate(sample, tmp_path / "s2.parquet", "control")


def test_lazy_exports_are_the_modules_objects():
    import servelab.fitting as fitting
    import servelab.generator as generator
    from servelab.fitting.pool_fit import fit_pool
    from servelab.generator import generate as generate_module_function
    from servelab.generator.writers import generate_to

    importlib.import_module("servelab.generator.generate")  # the sub-module does not shadow the function
    generate_module = sys.modules["servelab.generator.generate"]
    assert generator.generate is generate_module.generate is generate_module_function
    assert generator.generate_to is generate_to and fitting.fit_pool is fit_pool
    assert {"generate", "generate_to", "ClientPool"} <= set(dir(generator))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        generator.nope  # noqa: B018


def test_length_families_register_on_a_registry_miss():
    from servelab.fitting.families import family_names, get_family

    assert get_family("pareto").name == "pareto" and "lognormal_mixture" in family_names()


def test_numpy_log_gamma_and_weibull_cv_match_scipy():
    from servelab.fitting.families import _gammaln, _weibull_cv

    x = np.r_[np.geomspace(1e-3, 0.5, 200), np.linspace(0.5, 30, 500), np.geomspace(30, 1e8, 200)]
    ref = special.gammaln(x)
    np.testing.assert_allclose(_gammaln(x), ref, rtol=1e-13, atol=1e-14)
    assert np.isnan(_gammaln(np.array([0.0, -2.0, np.nan]))).all() and _gammaln(np.inf) == np.inf
    # the Weibull CV: scipy's form where the two log-Gamma terms do not cancel (c <= 1000), the
    # leading term of the series, sqrt(zeta(2)) / c, far beyond it
    c = np.geomspace(0.05, 1000, 400)
    cv_ref = np.sqrt(np.expm1(special.gammaln(1 + 2 / c) - 2 * special.gammaln(1 + 1 / c)))
    np.testing.assert_allclose(_weibull_cv(c), cv_ref, rtol=1e-8)
    np.testing.assert_allclose(_weibull_cv(np.array([1e7])), np.pi / np.sqrt(6) / 1e7, rtol=1e-6)

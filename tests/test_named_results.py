"""Issue 19 item 7: the public API returns named results, never bare tuples or dicts.

Walks ``__all__`` of ``servelab.analysis``, ``servelab.fitting`` and ``servelab.generator``: every
exported function, and every public method of an exported class, whose return annotation is a
bare ``tuple`` / ``dict``, a fixed-length ``tuple[A, B]`` or a ``dict[..., Any]`` fails. A
NamedTuple (unpacks like the tuple it replaces) or a frozen dataclass is the fix. Allowed:
``tuple[X, ...]`` (a sequence of like things, e.g. names), ``dict[str, ndarray]`` (parameters by
name, the project's convention), and serialisers (``to_dict`` / ``to_json`` / ``as_kwargs``),
which exist to return plain JSON-ready dicts.
"""
from __future__ import annotations

import importlib
import inspect
import re

import pytest

PACKAGES = ("servelab.analysis", "servelab.fitting", "servelab.generator")
SERIALISERS = {"to_dict", "to_json", "as_kwargs"}
#: qualified name -> why it may return a bare container (delete the entry when it is fixed)
ALLOWED = {
    "ClientPool.info": "the JSON document `servelab pool info` prints and writes; its keys follow the pool's columns",
}

_BARE = re.compile(r"^(typing\.)?(tuple|Tuple|dict|Dict)$")
_DICT_ANY = re.compile(r"^(typing\.)?(dict|Dict)\[.*\bAny\]$")
_TUPLE = re.compile(r"^(typing\.)?(tuple|Tuple)\[(.*)\]$")


def is_bare(annotation: str) -> bool:
    """True for a return annotation that names no field: see the module docstring."""
    a = annotation.strip().strip("'\"")
    if _BARE.match(a) or _DICT_ANY.match(a):
        return True
    m = _TUPLE.match(a)
    return bool(m) and not m.group(3).replace(" ", "").endswith(",...")


def _exported_callables():
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{package}.{name}", name, obj
            elif inspect.isclass(obj) and obj.__module__.startswith("servelab."):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and not attr.startswith("_") and attr not in SERIALISERS:
                        yield f"{package}.{name}.{attr}", f"{name}.{attr}", member


def _return_annotation(fn) -> str | None:
    ann = fn.__annotations__.get("return")
    if ann is None:
        return None
    return ann if isinstance(ann, str) else (ann.__name__ if isinstance(ann, type) else str(ann))


def test_no_public_function_returns_a_bare_tuple_or_dict():
    bare = {}
    for where, short, fn in _exported_callables():
        ann = _return_annotation(fn)
        if ann is not None and is_bare(ann) and short not in ALLOWED:
            bare[where] = ann
    assert not bare, f"return a NamedTuple or a frozen dataclass instead: {bare}"


def test_allowed_entries_are_still_needed():
    seen = {short: _return_annotation(fn) for _, short, fn in _exported_callables()}
    stale = [k for k in ALLOWED if k not in seen or not is_bare(seen[k] or "")]
    assert not stale, f"fixed or gone: delete from ALLOWED: {stale}"


@pytest.mark.parametrize("annotation,bare", [
    ("tuple[float, float]", True), ("tuple", True), ("dict", True), ("dict[str, Any]", True),
    ("tuple[str, ...]", False), ("dict[str, np.ndarray]", False), ("KSCritical", False),
    ("tuple[Verdict, str]", True), ("pl.DataFrame", False),
])
def test_the_rule_itself(annotation, bare):
    assert is_bare(annotation) is bare


def test_named_results_unpack_like_the_tuples_they_replace():
    import numpy as np
    import polars as pl

    from servelab.analysis.failures import wilson_interval
    from servelab.analysis.window_rates import covered_span
    from servelab.fitting.rate_tests import window_counts, within_block_dispersion

    lo, hi = covered_span(5.0, 10.0, (0.0, 8.0))
    assert (lo, hi) == (0.0, 10.0) and covered_span(5.0, 10.0).end == 10.0
    counts, exposures = window_counts(np.array([0.5, 1.5, 1.7, 2.2]), window_s=1.0, t0=0.0, t1=2.5)
    np.testing.assert_array_equal(counts, [1, 2, 1])
    np.testing.assert_allclose(exposures, [1.0, 1.0, 0.5])
    d = within_block_dispersion(np.array([[2, 0], [1, 1]]))
    # by hand: block 1 has mean 1, sum((x - 1)^2 / 1) = 2; block 2: 0; df = 2 blocks x (2 - 1) = 2
    assert (d.index, d.df) == (1.0, 2) and tuple(d) == (1.0, 2)
    from statsmodels.stats.proportion import proportion_confint

    frame = pl.DataFrame({"k": [5], "n": [100]})
    interval = wilson_interval(pl.col("k"), pl.col("n"))
    low, high = frame.select(interval.lo.alias("lo"), interval.hi.alias("hi")).row(0)
    assert (low, high) == pytest.approx(proportion_confint(5, 100, alpha=0.05, method="wilson"), rel=1e-3)

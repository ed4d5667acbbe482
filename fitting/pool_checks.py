"""Range checks of a client pool's parameters, run when a pool is imported or loaded.

A pool file is input like any other: a ServeGen folder or a servelab pool may carry negative,
NaN, infinite or absurd (1e300) rates, CVs, family parameters or probabilities, and the generator
would then fail far from the cause (numpy's "repeats may not contain negative values") or, worse,
quietly treat a client as idle. :func:`check_pool_tables` refuses such a pool with a
:class:`~servelab.fitting.exceptions.PoolFormatError` naming the source, the client, the window
and the field, the rule and the value.

Rules (:data:`POOL_BOUNDS` states the bounds)
---------------------------------------------
``arrivals``
    ``window_start`` finite; ``rate`` finite, ``>= 0`` and ``<= max_rate_rps``; ``cv`` null (an
    active window with fewer than 2 gaps) or finite, ``>= 0`` and ``<= max_cv``; a window with a family has every parameter of that family
    (:attr:`~servelab.fitting.families.ArrivalFamily.param_names`) present, finite, ``> 0`` and
    ``<= max_param``. Idle windows (rate 0, no family) carry no parameters.
``data``
    ``value`` finite with ``|value| <= max_value``; ``probability`` finite and in ``[0, 1]``; the
    probabilities of each (client, window, field) sum to 1 within ``probability_sum_tolerance``.
``conversation_pmfs``
    ``value`` and ``probability`` as for ``data``, per (client, quantity).

The checks are polars queries, a few scans per table whatever its size (a bad row is looked up
only when a rule fails); a lazily loaded pool stays lazy apart from the aggregate queries. This module reads no files and draws nothing.
"""
from __future__ import annotations

from types import MappingProxyType

import polars as pl

from servelab.fitting.families import get_arrival_family
from servelab.fitting.exceptions import PoolFormatError

__all__ = ["POOL_BOUNDS", "CHECKS_VERSION", "check_pool_tables", "check_arrivals", "check_pmfs"]

#: bumped whenever a rule changes: a pool file certified by other checks is checked again on reading
CHECKS_VERSION = 1

#: bounds of the checks: absurd values beyond them are refused, not generated from
POOL_BOUNDS = MappingProxyType({
    "max_rate_rps": 1e9,        # per client and window; ServeGen's busiest client is below 300 req/s
    "max_cv": 1e6,              # a Gamma shape of 1e-12
    "max_param": 1e15,          # family shapes and scales (fitted Gamma shapes reach 2e7 on clocked traces)
    "max_value": 1e15,          # request-data values (token counts, ratios) and conversation quantities
    "probability_sum_tolerance": 1e-4,  # float32-stored fitted PMFs of thousands of values sum within ~1e-5
})


def _first_bad(lf: pl.LazyFrame, bad: pl.Expr, columns: list[str]) -> dict | None:
    rows = lf.filter(bad.fill_null(False)).select(columns).head(1).collect()
    return rows.row(0, named=True) if rows.height else None


def _where(source: str, row: dict, window_key: str = "window_start") -> str:
    where = f"pool {source}: client {row['client_id']!r}"
    if window_key in row:
        where += f" window {row[window_key]:g}"
    return where


def _flags(lf: pl.LazyFrame, rules: dict[str, pl.Expr]) -> dict[str, bool]:
    """Which rules have a bad row: one scan for all of them (rows are looked up only when one has)."""
    if not rules:
        return {}
    row = lf.select([cond.fill_null(False).any().alias(name) for name, cond in rules.items()]).collect()
    return {name: bool(row[name][0]) for name in rules}


def check_arrivals(arrivals: pl.LazyFrame | pl.DataFrame, *, source: str) -> None:
    """Refuse an arrivals table with a value outside :data:`POOL_BOUNDS` (module docstring).

    Two scans of the table whatever its size (the value rules, then the family parameters); a bad
    row is looked up only when a rule fails.

    Raises
    ------
    PoolFormatError
        Naming ``source``, the client, the window, the field and the value.
    """
    lf = arrivals.lazy()
    b = POOL_BOUNDS
    base = ["client_id", "window_start"]
    rules = {"window_start": ~pl.col("window_start").is_finite()}
    bounds = {"rate": b["max_rate_rps"], "cv": b["max_cv"]}
    for field, upper in bounds.items():
        x = pl.col(field)
        # a null CV is an active window with fewer than 2 gaps (undefined); a null rate is refused
        missing = x.is_null() if field == "rate" else pl.lit(False)
        rules[field] = missing | ~x.is_finite() | (x < 0) | (x > upper)
    first = lf.select([cond.fill_null(False).any().alias(name) for name, cond in rules.items()]
                      + [pl.col("family").drop_nulls().unique().sort().implode().alias("_families")]).collect()
    if first["window_start"][0]:
        finite = _first_bad(lf, rules["window_start"], base)
        raise PoolFormatError(f"pool {source}: client {finite['client_id']!r} field 'window_start' must be finite; "
                              f"got {finite['window_start']!r}")
    for field, upper in bounds.items():
        if first[field][0]:
            row = _first_bad(lf, rules[field], [*base, field])
            raise PoolFormatError(f"{_where(source, row)} field {field!r} must be a finite number in "
                                  f"[0, {upper:g}]; got {row[field]!r}")
    families = first["_families"][0].to_list()
    params = {}
    for name in families:  # a handful of families
        try:
            family = get_arrival_family(name)
        except (KeyError, ValueError) as err:
            row = _first_bad(lf, pl.col("family") == name, base)
            raise PoolFormatError(f"{_where(source, row)} field 'family': {err}") from None
        for param in family.param_names:
            x = pl.col(param)
            params[(name, param)] = (pl.col("family") == name) & (x.is_null() | ~x.is_finite() | (x <= 0)
                                                                  | (x > b["max_param"]))
    flags = _flags(lf, {f"{n}:{p}": cond for (n, p), cond in params.items()})
    for (name, param), cond in params.items():
        if flags[f"{name}:{param}"]:
            family = get_arrival_family(name)
            row = _first_bad(lf, cond, [*base, param])
            role = "shape" if param in family.shape_names else "scale"
            raise PoolFormatError(f"{_where(source, row)} field {param!r} (the {role} parameter of family "
                                  f"{name!r}) must be a finite number in (0, {b['max_param']:g}]; "
                                  f"got {row[param]!r}")


def check_pmfs(pmfs: pl.LazyFrame | pl.DataFrame, *, source: str, keys: tuple[str, ...]) -> None:
    """Refuse long-format PMFs with a bad value or probability, or probabilities not summing to 1.

    One scan for the value rules and one hashed group-by for the sums (a 64-bit hash of the keys;
    the failing PMF is then looked up by its keys); a bad row is looked up only when a rule fails.

    Parameters
    ----------
    pmfs : polars frame
        ``client_id``, the other ``keys``, ``value`` and ``probability`` columns.
    source : str
        How the pool is named in messages.
    keys : tuple of str
        Columns that identify one PMF (e.g. ``("client_id", "window_start", "field")``).

    Raises
    ------
    PoolFormatError
        Naming ``source``, the client, the window (when a key) and the field.
    """
    lf = pmfs.lazy()
    b = POOL_BOUNDS
    cols = list(keys)
    field = next(k for k in keys if k not in ("client_id", "window_start"))

    def where(row: dict) -> str:
        return f"{_where(source, row)} field {row[field]!r}"

    v, p = pl.col("value"), pl.col("probability")
    rules = {"value": v.is_null() | ~v.is_finite() | (v.abs() > b["max_value"]),
             "probability": p.is_null() | ~p.is_finite() | (p < 0) | (p > 1)}
    flags = _flags(lf, rules)
    if flags["value"]:
        row = _first_bad(lf, rules["value"], [*cols, "value"])
        raise PoolFormatError(f"{where(row)}: values must be finite numbers within +-{b['max_value']:g}; "
                              f"got {row['value']!r}")
    if flags["probability"]:
        row = _first_bad(lf, rules["probability"], [*cols, "probability"])
        raise PoolFormatError(f"{where(row)}: probabilities must be finite numbers in [0, 1]; "
                              f"got {row['probability']!r}")
    tol = b["probability_sum_tolerance"]
    key = pl.struct(cols).hash().alias("_pmf")
    bad = (lf.group_by(key).agg(p.sum().alias("total")).filter((pl.col("total") - 1).abs() > tol)
           .head(1).collect())
    if bad.height:
        # the failing PMF by its keys (the hash only found it); its exact sum from those rows
        rows = lf.filter(key == bad["_pmf"][0])
        sums = rows.group_by(cols).agg(p.sum().alias("total"))
        row = _first_bad(sums, (pl.col("total") - 1).abs() > tol, [*cols, "total"])
        if row is None:  # two PMFs sharing a 64-bit hash: their joint sum failed, not one of them
            row = _first_bad(lf.group_by(cols).agg(p.sum().alias("total")), (pl.col("total") - 1).abs() > tol,
                             [*cols, "total"])
        if row is not None:
            raise PoolFormatError(f"{where(row)}: probabilities must sum to 1 (within {tol:g}); "
                                  f"they sum to {row['total']!r}")


def check_pool_tables(pool, *, source: str) -> None:
    """Check a pool's arrivals, data and conversation PMFs (see the module docstring).

    Parameters
    ----------
    pool : ClientPool
        The pool to check (its lazy tables are queried, not collected whole).
    source : str
        How the pool is named in messages (its path).

    Raises
    ------
    PoolFormatError
        At the first bad value, naming the client, the window and the field.
    """
    check_arrivals(pool.lazy("arrivals"), source=source)
    check_pmfs(pool.lazy("data"), source=source, keys=("client_id", "window_start", "field"))
    check_pmfs(pool.lazy("conversation_pmfs"), source=source, keys=("client_id", "quantity"))

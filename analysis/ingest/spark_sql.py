"""The DuckDB ingest's typed-row SQL in Spark SQL: the same checks and reject reasons, translated.

The value checks and reject reasons of an ingest live in one place,
:func:`servelab.analysis.ingest.reading.typed_rows_sql` (DuckDB's dialect). The Spark ingest
(:mod:`.spark_ingest`) runs that same SQL, translated by sqlglot
(:func:`servelab.analysis.engines.translate_to_spark`) plus the rewrites below for what sqlglot
leaves as DuckDB functions Spark does not have:

================================  ==============================================================
DuckDB                            Spark
================================  ==============================================================
``isinf(x)``                      ``abs(x) = CAST('Infinity' AS DOUBLE)``
``epoch_us(ts)``                  ``unix_micros(ts)``
``isfinite(TRY_CAST(s AS TS))``   ``NOT lower(trim(s)) IN ('infinity', '+infinity', '-infinity')``
                                  (Spark has no infinite timestamps; these are DuckDB's spellings)
``json_object(k, v, ...)``        ``to_json(named_struct(k, v, ...))`` keeping null fields
``TRY_CAST(s AS BIGINT[])``       ``from_json(s, 'array<bigint>')``; a list with a fraction is read
                                  as ``array<double>`` rounded, as DuckDB's cast rounds it (the
                                  ``non_integer_`` check then rejects it, as in DuckDB)
``TRY_CAST(s AS DOUBLE[])``       ``from_json(s, 'array<double>')``
``len(list)``                     ``size(list)``
``TRY_STRPTIME(s, fmt)``          ``to_timestamp(s, java_fmt)`` (NULL on failure: ANSI off)
================================  ==============================================================

Known differences (the rows they touch are rare; the tests compare the shipped samples and a
malformed-input fixture): Spark's string-to-double cast also accepts a trailing ``d`` / ``f``
(``"10d"``); its boolean cast accepts ``y`` / ``n``. This module builds SQL text only; it reads no data.
"""
from __future__ import annotations

from collections.abc import Mapping

from servelab.analysis.engines import translate_to_spark
from servelab.analysis.ingest.plan import IngestPlan
from servelab.analysis.ingest.reading import typed_rows_sql

__all__ = ["spark_typed_rows_sql", "SPARK_REWRITES"]

#: DuckDB functions sqlglot leaves untranslated -> what this module writes instead (docs, tests)
SPARK_REWRITES = ("isinf", "epoch_us", "isfinite", "json_object", "TRY_CAST(... AS BIGINT[])",
                  "TRY_CAST(... AS DOUBLE[])", "len(list)", "try_strptime")

_INFINITE_TIMESTAMPS = "('infinity', '+infinity', '-infinity')"


def _parse(sql: str):
    import sqlglot

    return sqlglot.parse_one(sql, read="spark")


def _is_list_type(node, element: str) -> bool:
    from sqlglot import exp

    to = node.args.get("to")
    return (isinstance(to, exp.DataType) and to.this == exp.DataType.Type.ARRAY and to.expressions
            and to.expressions[0].this == exp.DataType.Type[element])


def _rewrite(node):
    """One sqlglot node in Spark's terms (see the module docstring's table)."""
    from sqlglot import exp

    if isinstance(node, exp.IsInf):
        return _parse(f"ABS({node.this.sql('spark')}) = CAST('Infinity' AS DOUBLE)")
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        args = [a.sql("spark") for a in node.expressions]
        if name == "epoch_us" and len(args) == 1:
            return _parse(f"UNIX_MICROS({args[0]})")
        if name == "isfinite" and len(args) == 1 and isinstance(node.expressions[0], exp.TryCast):
            text = node.expressions[0].this.sql("spark")
            return _parse(f"(NOT LOWER(TRIM({text})) IN {_INFINITE_TIMESTAMPS})")
        if name == "try_strptime" and len(args) == 2:
            import sqlglot

            # DuckDB's STRPTIME is sqlglot's StrToTime, whose Spark form converts the format
            duck = ", ".join(a.sql("duckdb") for a in node.expressions)
            return sqlglot.parse_one(f"STRPTIME({duck})", read="duckdb")
    if isinstance(node, exp.JSONObject):
        pairs = []
        for kv in node.expressions:
            pairs += [kv.this.copy(), kv.expression.copy()]
        # built as nodes, not parsed: Spark's parser turns NAMED_STRUCT into STRUCT(v AS name),
        # which breaks on names with spaces or keywords
        keep_nulls = _parse("MAP('ignoreNullFields', 'false')")
        return exp.Anonymous(this="TO_JSON", expressions=[exp.Anonymous(this="NAMED_STRUCT", expressions=pairs),
                                                          keep_nulls])
    if isinstance(node, exp.TryCast) and _is_list_type(node, "BIGINT"):
        s = node.this.sql("spark")
        # an integer list parses as array<bigint>; one with a fraction only as array<double>, which
        # DuckDB's BIGINT[] cast rounds (the non_integer_ check rejects it, as in DuckDB)
        return _parse(f"COALESCE(FROM_JSON({s}, 'array<bigint>'), "
                      f"TRANSFORM(FROM_JSON({s}, 'array<double>'), x -> CAST(ROUND(x) AS BIGINT)))")
    if isinstance(node, exp.TryCast) and _is_list_type(node, "DOUBLE"):
        return _parse(f"FROM_JSON({node.this.sql('spark')}, 'array<double>')")
    return node


# _rewrite runs twice: sqlglot's transform does not descend into a node it replaced, so a DuckDB
# function inside another one (TRY_STRPTIME inside EPOCH_US) is rewritten on the second pass


def _sizes(node):
    """``len(list_filter(...))`` -> ``size(filter(...))``: a second pass, as sqlglot does not descend
    into a node a transform replaced (the filter's list is rewritten in the first)."""
    from sqlglot import exp

    if isinstance(node, exp.Length) and isinstance(node.this, (exp.ArrayFilter, exp.Filter)):
        return _parse(f"SIZE({node.this.sql('spark')})")
    return node


def spark_typed_rows_sql(plan: IngestPlan, view: str, raw_json: str, index: int,
                         native: Mapping[str, str]) -> str:
    """:func:`~servelab.analysis.ingest.reading.typed_rows_sql` of ``plan`` over Spark view
    ``view``, in Spark SQL.

    ``view`` has the source's columns (strings, or DOUBLE for the ``native`` ones), ``_line`` and
    ``_bad`` (a reason for a line the reader could not split, else NULL); ``raw_json`` is the
    DuckDB SQL of a row's raw values as JSON (translated like the rest).
    """
    sql = typed_rows_sql(plan, f"SELECT * FROM {view}", raw_json, index, native)
    return translate_to_spark(sql, transforms=(_rewrite, _rewrite, _sizes))

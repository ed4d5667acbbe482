"""Any CSV / JSONL / Parquet log plus a small TOML column map (the ``generic`` format).

A platform team points servelab at its private logs by writing which source column holds what::

    [source]
    kind = "csv"                 # csv | jsonl | parquet (default: from the file extension)
    delimiter = ","              # CSV only (default: sniffed from the header)

    [time]
    column = "created_at"
    format = "%Y-%m-%d %H:%M:%S" # a date-time: strptime format, or "auto" for ISO-like text
    timezone = "Europe/Berlin"   # zone of naive date-times (default "UTC")
    # or a number instead of a date-time:
    # unit = "ms"                # s | ms | us | ns
    # epoch = true               # Unix epoch times (default false: time since the trace start)

    [columns]                    # canonical column = source column
    client_id = "api_key"
    model = "model"
    input_tokens = "prompt_tokens"
    output_tokens = "completion_tokens"
    reason_tokens = "reasoning_tokens"

    [constants]                  # canonical column = one value for every row
    service = "api"

    [lengths]                    # what the *_tokens columns count (default: tokens)
    unit = "characters"          # tokens | characters
    chars_per_token = 4.0        # optional: characters -> tokens (stored as tokens, and said so)

A mapped column may carry a **value map**, a table instead of a column name: a boolean column
lists the source values meaning true and false, a string column maps source values to stored
ones; any other non-empty value rejects the row (reason ``unmapped_<column>``)::

    failed = {column = "predict_status", true = ["FAILED"], false = ["SUCCEED"]}
    service = {column = "route", values = {chat = "conversation", completion = "api"}}

**Length units.** Without ``[lengths]`` the ``*_tokens`` columns count tokens. With
``unit = "characters"`` they are stored as the source gives them, characters, and the manifest
says so (``lengths``; :func:`servelab.analysis.ingest.units.length_unit` reads it so that tables
and figures label them "characters"); with ``chars_per_token`` as well they are converted to
tokens (``round(characters / chars_per_token)``) and the manifest records the conversion.

Every canonical column except ``request_id`` and ``timestamp`` may be mapped (see
:mod:`servelab.analysis.schema`). Token / item counts and ``turn`` are checked as non-negative
integers, ``latency_s`` as non-negative seconds, ``failed`` as a boolean, ``prefix_blocks`` as a
list of integers; ``input_tokens`` / ``output_tokens`` must be present on every row, other mapped
columns may be empty (stored as NULL). The map is parsed with the standard library's
``tomllib``. This module validates the map and builds a plan; it reads no data.
"""
from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from servelab.analysis.exceptions import ColumnMapError
from servelab.analysis.ingest.plan import Field, IngestPlan, TimeSpec, ident, sql_str
from servelab.analysis.ingest.units import LENGTH_COLUMNS, LENGTH_UNITS, LengthUnit
from servelab.analysis.schema import CANONICAL_COLUMNS, TOKEN_COLUMNS

__all__ = ["NAME", "ColumnMap", "load_column_map", "plan", "matches", "TIME_UNITS", "LENGTH_UNITS"]

NAME = "generic"

#: seconds per unit of a numeric time column
TIME_UNITS = MappingProxyType({"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9})


_SECTIONS = {"source", "time", "columns", "constants", "lengths"}
_LENGTH_KEYS = {"unit", "chars_per_token"}
_BOOL_MAP_KEYS = {"column", "true", "false"}
_STRING_MAP_KEYS = {"column", "values"}
_SOURCE_KEYS = {"kind", "delimiter"}
_TIME_KEYS = {"column", "format", "timezone", "unit", "epoch"}
_MAPPABLE = tuple(c for c in CANONICAL_COLUMNS if c not in ("request_id", "timestamp"))
_REQUIRED_COUNTS = ("input_tokens", "output_tokens")


@dataclass(frozen=True)
class ColumnMap:
    """A validated column map (see the module docstring for the TOML layout).

    Parameters
    ----------
    time_column : str
        Source column holding the request time.
    time_format : str or None
        strptime format (``"auto"``: DuckDB's ISO-like parsing) when the time is a date-time;
        None when it is a number.
    time_unit : str
        Unit of a numeric time (``s``, ``ms``, ``us``, ``ns``).
    epoch : bool
        Numeric times are Unix epoch times.
    timezone : str or None
        Zone of naive date-times / of the epoch's wall clock.
    columns : Mapping
        Canonical column -> source column.
    constants : Mapping
        Canonical column -> constant value.
    kind, delimiter : str or None
        Source file kind and CSV delimiter, when given.
    value_maps : Mapping
        Canonical column -> tuple of (source value, stored value text) pairs; a non-empty source
        value not listed rejects the row (``unmapped_<column>``). Boolean columns store
        ``"true"`` / ``"false"``.
    length_unit : str
        What the ``*_tokens`` columns of the source count: ``tokens`` or ``characters``.
    chars_per_token : float or None
        With ``characters``: convert to tokens by dividing by this (stored as tokens).
    """

    time_column: str
    time_format: str | None = None
    time_unit: str = "s"
    epoch: bool = False
    timezone: str | None = None
    columns: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    constants: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    kind: str | None = None
    delimiter: str | None = None
    value_maps: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=lambda: MappingProxyType({}))
    length_unit: str = "tokens"
    chars_per_token: float | None = None

    def source_columns(self) -> tuple[str, ...]:
        """Source columns the map names (time first)."""
        return (self.time_column, *self.columns.values())


def _check_keys(where: str, got: Mapping, allowed: set[str] | tuple[str, ...]) -> None:
    unknown = sorted(set(got) - set(allowed))
    if unknown:
        raise ColumnMapError(
            f"column map {where} has unknown key(s) {unknown}; allowed: {sorted(allowed)}"
        )


def load_column_map(column_map) -> ColumnMap:
    """Read and validate a column map from a TOML file path, a TOML string's dict, or a ColumnMap.

    Parameters
    ----------
    column_map : path-like, Mapping or ColumnMap
        A ``.toml`` file, the dict ``tomllib`` would give for it, or an already built map.

    Raises
    ------
    ColumnMapError
        If the file is not valid TOML, a section or key is unknown, the time is ambiguous, or a
        value has the wrong type.
    """
    if isinstance(column_map, ColumnMap):
        return column_map
    if isinstance(column_map, (str, os.PathLike)):
        path = Path(column_map)
        if not path.is_file():
            raise ColumnMapError(f"column map file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ColumnMapError(f"column map {str(path)!r} is not valid TOML: {err}") from None
    elif isinstance(column_map, Mapping):
        data = dict(column_map)
    else:
        raise ColumnMapError(
            f"column_map must be a TOML file path, a mapping or a ColumnMap; got {type(column_map).__name__}"
        )
    _check_keys("top level", data, _SECTIONS)
    for section in _SECTIONS:
        if section in data and not isinstance(data[section], Mapping):
            raise ColumnMapError(f"column map [{section}] must be a table; got {data[section]!r}")
    time = dict(data.get("time") or {})
    if "column" not in time:
        raise ColumnMapError("column map needs [time] column = \"<source column holding the request time>\"")
    _check_keys("[time]", time, _TIME_KEYS)
    if "format" in time and ("unit" in time or "epoch" in time):
        raise ColumnMapError(
            "column map [time] gives both a date-time format and a numeric unit/epoch; give "
            "format = \"...\" for date-times or unit = \"s|ms|us|ns\" for numbers, not both"
        )
    unit = time.get("unit", "s")
    if unit not in TIME_UNITS:
        raise ColumnMapError(f"column map [time] unit must be one of {list(TIME_UNITS)}; got {unit!r}")
    epoch = time.get("epoch", False)
    if not isinstance(epoch, bool):
        raise ColumnMapError(f"column map [time] epoch must be true or false; got {epoch!r}")
    zone = time.get("timezone")
    if zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ColumnMapError(f"column map [time] timezone {zone!r} is not an IANA zone (e.g. 'Europe/Berlin')") from None
    columns = dict(data.get("columns") or {})
    constants = dict(data.get("constants") or {})
    _check_keys("[columns]", columns, _MAPPABLE)
    _check_keys("[constants]", constants, _MAPPABLE)
    value_maps = {}
    for name, value in list(columns.items()):
        if isinstance(value, Mapping):
            columns[name], value_maps[name] = _value_map(name, value)
        elif not isinstance(value, str) or not value:
            raise ColumnMapError(f"column map [columns] {name} must name a source column; got {value!r}")
    both = sorted(set(columns) & set(constants))
    if both:
        raise ColumnMapError(f"column map gives {both} both in [columns] and [constants]; give each once")
    for name, value in constants.items():
        if isinstance(value, (dict, list)) or value is None:
            raise ColumnMapError(f"column map [constants] {name} must be a single value; got {value!r}")
    source = dict(data.get("source") or {})
    _check_keys("[source]", source, _SOURCE_KEYS)
    length_unit, chars_per_token = _lengths(dict(data.get("lengths") or {}))
    return ColumnMap(
        time_column=str(time["column"]),
        time_format=time.get("format"),
        time_unit=unit,
        epoch=epoch,
        timezone=zone,
        columns=MappingProxyType(columns),
        constants=MappingProxyType(constants),
        kind=source.get("kind"),
        delimiter=source.get("delimiter"),
        value_maps=MappingProxyType(value_maps),
        length_unit=length_unit,
        chars_per_token=chars_per_token,
    )


def _value_map(name: str, spec: Mapping) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(source column, (source value, stored text) pairs) of a ``[columns]`` value map."""
    where = f"column map [columns] {name}"
    kind = _kind_of(name)
    if kind not in ("bool", "string"):
        raise ColumnMapError(f"{where}: value maps are for boolean and text columns (e.g. failed, service); "
                             f"{name!r} is a {kind} column; got {dict(spec)!r}")
    _check_keys(where, spec, _BOOL_MAP_KEYS if kind == "bool" else _STRING_MAP_KEYS)
    column = spec.get("column")
    if not isinstance(column, str) or not column:
        raise ColumnMapError(f"{where} needs column = \"<source column>\"; got {column!r}")
    pairs: list[tuple[str, str]] = []
    if kind == "bool":
        for flag in ("true", "false"):
            got = spec.get(flag, [])
            if isinstance(got, str):
                got = [got]
            if not isinstance(got, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in got):
                raise ColumnMapError(f"{where} {flag} must be a list of source values (text or integers); got {got!r}")
            pairs += [(str(v).strip(), flag) for v in got]
        if not pairs:
            raise ColumnMapError(f"{where} lists no values: give true = [...] and/or false = [...]")
    else:
        values = spec.get("values")
        if not isinstance(values, Mapping) or not values:
            raise ColumnMapError(f"{where} needs values = {{source = \"stored\", ...}}; got {values!r}")
        for src, dst in values.items():
            if not isinstance(dst, str) or not dst.strip():
                raise ColumnMapError(f"{where} values.{src} must be a non-empty text; got {dst!r}")
            pairs.append((str(src).strip(), dst.strip()))
    sources = [a for a, _ in pairs]
    twice = sorted({a for a in sources if sources.count(a) > 1})
    if twice:
        raise ColumnMapError(f"{where} lists source value(s) {twice} more than once")
    return column, tuple(pairs)


def _lengths(lengths: dict) -> tuple[str, float | None]:
    """``[lengths]``: the unit of the ``*_tokens`` columns and an optional chars-per-token factor."""
    _check_keys("[lengths]", lengths, _LENGTH_KEYS)
    unit = lengths.get("unit", "tokens")
    if unit not in LENGTH_UNITS:
        raise ColumnMapError(f"column map [lengths] unit must be one of {list(LENGTH_UNITS)}; got {unit!r}")
    factor = lengths.get("chars_per_token")
    if factor is not None:
        if unit != "characters":
            raise ColumnMapError(f"column map [lengths] chars_per_token converts characters: give unit = "
                                 f"\"characters\" with it; got unit {unit!r}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
            raise ColumnMapError(f"column map [lengths] chars_per_token must be a positive number; got {factor!r}")
        factor = float(factor)
    return unit, factor


def matches(kind: str, columns: tuple[str, ...]) -> bool:
    """The generic format is never sniffed: it is chosen by giving a column map."""
    return False


def _kind_of(canonical: str) -> str:
    if canonical in TOKEN_COLUMNS or canonical == "turn":
        return "count"
    if canonical == "latency_s":
        return "seconds"
    if canonical == "failed":
        return "bool"
    if canonical == "prefix_blocks":
        return "list"
    return "string"


def check_columns(cmap: ColumnMap, columns: tuple[str, ...], *, source: str) -> None:
    """Raise :class:`ColumnMapError` if the map names a column ``source`` lacks."""
    missing = [c for c in cmap.source_columns() if c not in columns]
    if missing:
        raise ColumnMapError(
            f"column map names column(s) {missing} that {source} does not have; columns found: "
            f"{', '.join(repr(c) for c in columns) or 'none'}"
        )


def plan(columns: tuple[str, ...], column_map=None) -> IngestPlan:
    """The ingest plan for a source with ``columns`` under ``column_map``.

    Raises
    ------
    ColumnMapError
        If no column map is given.
    """
    if column_map is None:
        raise ColumnMapError("format 'generic' needs a column map (column_map=... / --column-map FILE.toml)")
    cmap = load_column_map(column_map)
    fields = []
    for canonical, src in cmap.columns.items():
        kind = _kind_of(canonical)
        raw = ident(src) if kind != "string" else f"trim({ident(src)})"
        values = cmap.value_maps.get(canonical, ())
        per = cmap.chars_per_token if canonical in LENGTH_COLUMNS else None
        fields.append(Field(canonical, raw, kind, required=canonical in _REQUIRED_COUNTS,
                            column=src if kind != "string" and not values else None,
                            values=values, strict_values=bool(values), divide_by=per))
    for canonical, value in cmap.constants.items():
        kind = _kind_of(canonical)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        fields.append(Field(canonical, sql_str(text), kind, required=False))
    if cmap.time_format is not None:
        time = TimeSpec(
            raw=ident(cmap.time_column),
            column=cmap.time_column,
            kind="datetime",
            datetime_format=None if cmap.time_format == "auto" else cmap.time_format,
            timezone=cmap.timezone or "UTC",
            origin_note=f"origin = first {cmap.time_column!r} date-time; zone "
            f"{cmap.timezone or 'UTC'}" + ("" if cmap.timezone else " (default: the map gives no timezone)"),
        )
    else:
        time = TimeSpec(
            raw=ident(cmap.time_column),
            column=cmap.time_column,
            kind="number",
            scale=TIME_UNITS[cmap.time_unit],
            epoch=cmap.epoch,
            timezone=(cmap.timezone or "UTC") if cmap.epoch else None,
            origin_note=(
                f"origin = first {cmap.time_column!r} Unix epoch time"
                if cmap.epoch
                else f"{cmap.time_column!r} is {cmap.time_unit} since the trace start: origin unknown (None)"
            ),
        )
    notes = [f"column map: {dict(cmap.columns)}"]
    notes += [f"value map {c}: " + ", ".join(f"{a!r} -> {b}" for a, b in pairs) + "; other values rejected (unmapped_"
              f"{c})" for c, pairs in cmap.value_maps.items()]
    if cmap.length_unit == "characters":
        notes.append("lengths (*_tokens columns) count characters" + (
            f", converted to tokens at {cmap.chars_per_token!r} characters per token" if cmap.chars_per_token
            else ", stored as characters"))
    return IngestPlan(fmt=NAME, time=time, fields=tuple(fields), notes=tuple(notes),
                      lengths=LengthUnit(source_unit=cmap.length_unit, chars_per_token=cmap.chars_per_token),
                      value_maps=MappingProxyType({c: {"column": cmap.columns[c], "map": dict(p)}
                                                   for c, p in cmap.value_maps.items()}))

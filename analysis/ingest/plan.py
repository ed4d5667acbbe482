"""What an ingest adapter produces: a declarative plan from raw columns to canonical ones.

An adapter (one module per source format) looks at a source's raw column names and returns an
:class:`IngestPlan`: how to read the time, which SQL expression over the raw (VARCHAR) columns
gives each canonical column and how that value is checked, and which canonical columns are
derived from others. :mod:`servelab.analysis.ingest.reading` turns the plan into
DuckDB SQL. This module holds records and small SQL helpers only; it reads no data.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from servelab.analysis.ingest.units import LengthUnit

__all__ = ["Field", "TimeSpec", "IngestPlan", "FIELD_KINDS", "ident", "sql_str"]

#: how a field's raw text is checked and converted
#: - ``count``: non-negative integer (token / item counts, turn); rejects non-numeric, NaN,
#:   negative and non-integer values
#: - ``seconds``: non-negative float (latency)
#: - ``string``: trimmed text, empty -> NULL
#: - ``bool``: true/false/1/0/t/f/yes/no
#: - ``list``: a list of integers (``[1, 2, 3]``), e.g. prefix block hashes
FIELD_KINDS = ("count", "seconds", "string", "bool", "list")


def ident(name: str) -> str:
    """Quote ``name`` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_str(value: object) -> str:
    """Quote ``value`` (str or path) as a SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Field:
    """One canonical column read from the source.

    Parameters
    ----------
    canonical : str
        Canonical column name (see :mod:`servelab.analysis.schema`).
    raw : str
        SQL expression over the raw VARCHAR columns giving this column's text. String values are
        trimmed by the core (once in the emptiness check, once when written), so ``raw`` need not
        trim; value mappings go in ``values``, not in ``raw`` (every check that reads the field
        evaluates ``raw`` again).
    kind : str
        One of :data:`FIELD_KINDS`.
    required : bool
        A missing (NULL or empty) value rejects the row (reason ``missing_<canonical>``);
        otherwise it is stored as NULL.
    column : str or None
        The one source column ``raw`` reads as is, when it does: a CSV reader may then parse it
        natively (typed, with DuckDB's own reject table for values that do not parse).
    values : tuple of (str, str)
        For ``kind="string"`` or ``"bool"``: ``(from, to)`` pairs mapping the trimmed text to the
        stored value (a bool's ``to`` is ``"true"`` / ``"false"``); others are stored as they
        are, or with ``strict_values`` rejected (``unmapped_<canonical>``). Applied when the column is written, not in the checks,
        so that a mapping costs one evaluation per row: as part of ``raw`` it was evaluated again
        by every check that reads the field (2.8 s of a 10 M-row BurstGPT ingest).
    strict_values : bool
        A non-empty value not in ``values`` rejects the row (``unmapped_<canonical>``): a column
        map's value map.
    divide_by : float or None
        For ``kind="count"``: the stored value is ``round(value / divide_by)`` after the checks
        (characters converted to tokens).
    """

    canonical: str
    raw: str
    kind: str
    required: bool = True
    column: str | None = None
    values: tuple[tuple[str, str], ...] = ()
    strict_values: bool = False
    divide_by: float | None = None

    @classmethod
    def of(cls, canonical: str, column: str, kind: str, *, required: bool = True) -> "Field":
        """A field reading source ``column`` as is."""
        return cls(canonical, ident(column), kind, required=required, column=column)

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"Field.kind must be one of {FIELD_KINDS}; got {self.kind!r}")
        if self.values and self.kind not in ("string", "bool"):
            raise ValueError(f"Field.values maps strings and booleans only; got kind {self.kind!r} for {self.canonical!r}")
        if self.kind == "bool" and any(b not in ("true", "false") for _, b in self.values):
            raise ValueError(f"Field.values of a bool maps to 'true' / 'false'; got {self.values!r}")
        if self.strict_values and not self.values:
            raise ValueError(f"Field.strict_values needs values; got none for {self.canonical!r}")
        if self.divide_by is not None and (self.kind != "count" or not self.divide_by > 0):
            raise ValueError(f"Field.divide_by is a positive factor of a count; got {self.divide_by!r} "
                             f"for {self.kind} {self.canonical!r}")


@dataclass(frozen=True)
class TimeSpec:
    """How the request time is read.

    Parameters
    ----------
    raw : str
        SQL expression over the raw columns giving the time's text.
    kind : str
        ``"number"`` (a number of ``unit`` since the trace start, or since the Unix epoch when
        ``epoch``) or ``"datetime"`` (a wall-clock date-time).
    scale : float
        Seconds per unit for numbers (1 for s, 1e-3 for ms, ...).
    epoch : bool
        Numbers are Unix epoch times: the store is rebased to its first request, whose
        wall-clock time goes to the manifest.
    datetime_format : str or None
        ``strptime`` format of date-times; None lets DuckDB parse ISO-like text (7 fractional
        digits included).
    timezone : str or None
        IANA zone of naive date-times (and of epoch numbers' wall clock); None means UTC.
    origin_note : str
        Says, in the manifest, where the origin comes from or why it is unknown.
    column : str or None
        The source column ``raw`` reads as is (lets a CSV reader parse it natively).
    """

    raw: str
    kind: str = "number"
    scale: float = 1.0
    epoch: bool = False
    datetime_format: str | None = None
    timezone: str | None = None
    origin_note: str = ""
    column: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("number", "datetime"):
            raise ValueError(f"TimeSpec.kind must be 'number' or 'datetime'; got {self.kind!r}")
        if not (self.scale > 0):
            raise ValueError(f"TimeSpec.scale must be > 0; got {self.scale!r}")

    @property
    def absolute(self) -> bool:
        """True when times are wall-clock (the store is rebased to the first request)."""
        return self.kind == "datetime" or self.epoch


@dataclass(frozen=True)
class IngestPlan:
    """Everything the core needs to turn one source into canonical rows.

    Parameters
    ----------
    fmt : str
        Format name (``burstgpt``, ``azure``, ...).
    time : TimeSpec
        The request time.
    fields : tuple of Field
        Canonical columns read from raw ones.
    derived : Mapping
        Canonical column -> SQL over already typed canonical columns (e.g. BurstGPT's
        ``failed`` = ``output_tokens = 0``).
    notes : tuple of str
        Decisions worth recording in the manifest (e.g. what ``type`` maps to).
    link_conversations : bool
        ``conversation_id`` holds each request's own id and ``parent_id`` its parent's; the
        core replaces ``conversation_id`` by the id of the conversation's first request,
        following the links over the whole trace (Bailian).
    lengths : LengthUnit
        What the length columns count (tokens unless a column map says characters).
    value_maps : Mapping
        Canonical column -> ``{"column": source column, "map": {source value: stored}}``, for
        the manifest.
    """

    fmt: str
    time: TimeSpec
    fields: tuple[Field, ...]
    derived: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    notes: tuple[str, ...] = ()
    link_conversations: bool = False
    lengths: LengthUnit = field(default_factory=LengthUnit)
    value_maps: Mapping[str, Mapping] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def columns(self) -> tuple[str, ...]:
        """Canonical columns this plan yields (besides ``request_id`` and ``timestamp``)."""
        return tuple(f.canonical for f in self.fields) + tuple(self.derived)

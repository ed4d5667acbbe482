"""Errors raised by :mod:`servelab.analysis`.

Every class subclasses the built-in that a caller would naturally catch, and every message
names the argument, what was allowed, and what came in.
"""
from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "TraceFormatError",
    "MissingColumnError",
    "EmptyTraceError",
    "ColumnMapError",
    "StoreExistsError",
    "StoreNotFoundError",
    "NotApplicableError",
]


class TraceFormatError(ValueError):
    """A raw trace cannot be read as the format it was given as."""


class MissingColumnError(TraceFormatError):
    """A raw trace lacks a column its format requires."""

    def __init__(self, column: str, *, found: Iterable[str], source: str = "", fmt: str = ""):
        self.column = column
        self.found = tuple(found)
        where = f" in {source}" if source else ""
        as_fmt = f" (format {fmt!r})" if fmt else ""
        super().__init__(
            f"required column {column!r} is missing{where}{as_fmt}; columns found: "
            f"{', '.join(repr(c) for c in self.found) or 'none'}"
        )


class EmptyTraceError(TraceFormatError):
    """A trace holds no rows (or no valid rows) at all."""


class ColumnMapError(ValueError):
    """A generic-format column map is malformed or names a column the source lacks."""


class StoreExistsError(FileExistsError):
    """The target of an ingest already holds a store and ``overwrite`` was not given."""


class StoreNotFoundError(FileNotFoundError):
    """A path does not hold a trace store (no ``manifest.json``)."""


class NotApplicableError(ValueError):
    """An analysis needs columns (or data) that this trace does not have.

    Analyses raise it; reports and the CLI turn it into a "not applicable" verdict with
    :attr:`reason`.
    """

    def __init__(self, analysis: str, *, missing: Iterable[str] = (), reason: str = ""):
        self.analysis = analysis
        self.missing = tuple(missing)
        if not reason:
            reason = f"the trace has no {', '.join(repr(c) for c in self.missing)} column" + (
                "s" if len(self.missing) > 1 else ""
            )
        self.reason = reason
        super().__init__(f"{analysis} is not applicable: {reason}")

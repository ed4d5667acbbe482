"""Errors and warnings raised by :mod:`servelab.generator`.

Every class subclasses the built-in a caller would naturally catch; messages name the argument,
what was allowed and what came in. Other generator modules add their classes here.
"""
from __future__ import annotations

# the pool's errors live with the pool's data model in fitting (issue 19); the same classes, re-exported
from servelab.fitting.exceptions import (
    MissingDatasetWarning,
    PoolExistsError,
    PoolFormatError,
    PoolNotFoundError,
    PoolSpanError,
    PoolWarning,
)

__all__ = [
    "PoolFormatError",
    "PoolNotFoundError",
    "PoolExistsError",
    "PoolSpanError",
    "MissingDatasetWarning",
    "PoolWarning",
    "GenerationError",
    "GenerationWarning",
    "RequestBudgetError",
    "ExportFormatError",
]


class GenerationError(ValueError):
    """Arguments of a workload generation (rate, duration, start, clients) are invalid."""


class RequestBudgetError(GenerationError):
    """A workload is estimated above ``max_requests`` (refused before anything is allocated).

    Attributes
    ----------
    expected : float
        The estimated number of requests (the target rate integrated over the duration).
    max_requests : int
        The limit it exceeds.
    """

    def __init__(self, message: str, *, expected: float, max_requests: int):
        super().__init__(message)
        self.expected = expected
        self.max_requests = max_requests


class GenerationWarning(UserWarning):
    """A generated workload departs from what was asked (e.g. no active client in a window)."""


class ExportFormatError(ValueError):
    """A workload cannot be exported in the requested format (unknown format, missing columns)."""

"""Errors and warnings raised by :mod:`servelab.fitting`."""
from __future__ import annotations

__all__ = ["FitWarning", "ConvergenceWarning", "ConvergenceError", "InsufficientDataError", "UnknownFamilyError",
           "PoolFormatError", "PoolNotFoundError", "PoolExistsError", "PoolSpanError", "PoolWarning",
           "MissingDatasetWarning"]


class FitWarning(UserWarning):
    """A numerical doubt about a fit (never printed, always a typed warning)."""


class ConvergenceWarning(FitWarning):
    """An optimiser did not converge; the result says ``converged=False``."""


class ConvergenceError(RuntimeError):
    """An optimiser failed so badly that no estimate can be returned."""


class InsufficientDataError(ValueError):
    """A sample is too small (or degenerate) for the requested family."""


class UnknownFamilyError(KeyError):
    """A family name is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


# ---- the client pool's data model (fitting/pool*.py; re-exported by servelab.generator.exceptions)

class PoolFormatError(ValueError):
    """A pool folder (servelab's or ServeGen's) cannot be read as the format it claims to be."""


class PoolNotFoundError(FileNotFoundError):
    """A path does not hold a client pool."""


class PoolExistsError(FileExistsError):
    """The target of a pool write exists and ``overwrite`` was not given."""


class PoolSpanError(ValueError):
    """A requested time span lies outside the pool's span or is empty."""


class PoolWarning(UserWarning):
    """Something about a pool the caller should know (never printed; always this typed warning)."""


class MissingDatasetWarning(PoolWarning):
    """A ServeGen client has a trace file but no dataset file (kept arrival-only or dropped)."""

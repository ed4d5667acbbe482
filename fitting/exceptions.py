"""Errors and warnings raised by :mod:`servelab.fitting`."""
from __future__ import annotations

__all__ = ["FitWarning", "ConvergenceWarning", "ConvergenceError", "InsufficientDataError", "UnknownFamilyError"]


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

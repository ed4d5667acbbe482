"""The :class:`Finding`: one claim of a paper, checked on one trace.

A finding carries the paper's statement, the numbers measured on this trace, a verdict and the
ids of the figures that show it. It is a plain frozen record: the code that measures lives with
the analyses (and in :mod:`servelab.reports.findings`), the code that renders lives in
:mod:`servelab.reports`.
"""
from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl

__all__ = ["Verdict", "Finding", "FindingList", "findings_table", "not_applicable"]


class Verdict(str, enum.Enum):
    """What the measured numbers say about a paper's claim on this trace."""

    HOLDS = "holds"
    DOES_NOT_HOLD = "does not hold"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not applicable"


Measured = Mapping[str, float | int | str | bool | None]


@dataclass(frozen=True)
class Finding:
    """One paper finding checked on one trace.

    Parameters
    ----------
    id : str
        Stable id, ``<paper>.<label>``, e.g. ``"servegen.F1"`` or ``"burstgpt.periodicity"``.
    statement : str
        The paper's claim, in one sentence.
    source : str
        Where the claim is made, e.g. ``"ServeGen (2025), Finding 1, Fig. 1"``.
    verdict : Verdict
        Holds, does not hold, inconclusive, or not applicable.
    measured : Mapping
        The numbers measured on this trace, by name (scalars only: no raw data).
    reason : str
        Why the verdict follows from the numbers (or why the finding does not apply).
    figures : tuple of str
        Figure ids (see :mod:`servelab.figures`) that show the evidence.
    tests : tuple of Mapping, optional
        The calibrated tests behind the verdict (a
        :class:`servelab.fitting.verdicts.NullTest` or anything with a ``to_dict()`` returning
        scalars, or such a mapping): null, statistic, p-value, level, practical threshold, power
        or minimum detectable effect, method and decision. Stored as read-only mappings of
        scalars; written to JSON under ``"tests"`` when present. Default: none.
    """

    id: str
    statement: str
    source: str
    verdict: Verdict
    measured: Measured = field(default_factory=dict)
    reason: str = ""
    figures: tuple[str, ...] = ()
    tests: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))
        object.__setattr__(self, "tests", tuple(_test_mapping(t) for t in self.tests))
        object.__setattr__(self, "measured", MappingProxyType(dict(self.measured)))
        object.__setattr__(self, "figures", tuple(self.figures))
        bad = {k: type(v).__name__ for k, v in self.measured.items() if not isinstance(v, (int, float, str, bool, type(None)))}
        if bad:
            raise TypeError(f"Finding.measured holds scalars only; got non-scalar values for {bad}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN and infinities become None)."""
        return {
            "id": self.id,
            "statement": self.statement,
            "source": self.source,
            "verdict": self.verdict.value,
            "measured": {k: _json_scalar(v) for k, v in self.measured.items()},
            "reason": self.reason,
            "figures": list(self.figures),
            **({"tests": [{k: _json_scalar(v) for k, v in t.items()} for t in self.tests]} if self.tests else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Finding":
        return cls(
            id=data["id"],
            statement=data["statement"],
            source=data["source"],
            verdict=Verdict(data["verdict"]),
            measured=data.get("measured", {}),
            reason=data.get("reason", ""),
            figures=tuple(data.get("figures", ())),
            tests=tuple(data.get("tests", ())),
        )


def not_applicable(id: str, statement: str, source: str, reason: str, figures: Iterable[str] = ()) -> Finding:
    """A finding that cannot be checked on this trace, with the reason."""
    return Finding(id=id, statement=statement, source=source, verdict=Verdict.NOT_APPLICABLE,
                   reason=reason, figures=tuple(figures))


class FindingList:
    """The findings of one area, in order, filled by decorating each finding function.

    A findings module makes one (``FINDINGS = FindingList()``) and decorates each function
    ``evidence -> Finding`` with ``@FINDINGS.register``; calling the list on an evidence object
    runs them in definition order. Adding a finding is then one function in one module (and its
    test): no list of findings to edit elsewhere.
    """

    def __init__(self) -> None:
        self._functions: list[Callable[[Any], Finding]] = []

    def register(self, function: Callable[[Any], Finding]) -> Callable[[Any], Finding]:
        """Append ``function`` (a re-import registering the same function again replaces it)."""
        self._functions = [f for f in self._functions if f.__qualname__ != function.__qualname__] + [function]
        return function

    @property
    def functions(self) -> tuple[Callable[[Any], Finding], ...]:
        """The registered finding functions, in order."""
        return tuple(self._functions)

    def __call__(self, evidence: Any) -> list[Finding]:
        return [f(evidence) for f in self._functions]


def findings_table(findings: Iterable[Finding]) -> pl.DataFrame:
    """One row per finding: id, verdict, reason, and the measured numbers as ``k=v`` text."""
    rows = [
        {
            "id": f.id,
            "verdict": f.verdict.value,
            "measured": ", ".join(f"{k}={_fmt(v)}" for k, v in f.measured.items()),
            "reason": f.reason,
        }
        for f in findings
    ]
    return pl.DataFrame(rows, schema={"id": pl.String, "verdict": pl.String, "measured": pl.String, "reason": pl.String})


def _test_mapping(test: Any) -> Mapping[str, Any]:
    """A test record as a read-only mapping of scalars (from a mapping or an object's ``to_dict()``)."""
    if not isinstance(test, Mapping):
        to_dict = getattr(test, "to_dict", None)
        if to_dict is None:
            raise TypeError(f"Finding.tests holds mappings or objects with to_dict(); got {type(test).__name__}")
        test = to_dict()
    bad = {k: type(v).__name__ for k, v in test.items() if not isinstance(v, (int, float, str, bool, type(None)))}
    if bad:
        raise TypeError(f"Finding.tests holds scalars only; got non-scalar values for {bad}")
    return MappingProxyType(dict(test))


def _json_scalar(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

"""What the length columns of a store count: tokens, or characters (as a column map may say).

A column map's ``[lengths]`` section (:mod:`.generic`) says whether the source's ``*_tokens``
columns count tokens or characters, with an optional chars-per-token factor that converts
characters to tokens. Ingest records it in ``manifest.json`` (``lengths``); :func:`length_unit`
reads it back, so that tables and figures of lengths can say "characters" when that is what a
store holds. Stores without the entry (every format but ``generic`` with ``[lengths]``, and
stores written before it) hold tokens. Reads no data.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from servelab.analysis.schema import TOKEN_COLUMNS

__all__ = ["LengthUnit", "length_unit", "LENGTH_COLUMNS", "LENGTH_UNITS"]

#: the columns whose unit ``[lengths]`` sets: the ``*_tokens`` counts (item counts are items)
LENGTH_COLUMNS = tuple(c for c in TOKEN_COLUMNS if c.endswith("_tokens"))

#: units a source's lengths may count
LENGTH_UNITS = ("tokens", "characters")


@dataclass(frozen=True)
class LengthUnit:
    """The unit of a store's length columns (see the module docstring).

    Parameters
    ----------
    source_unit : {"tokens", "characters"}
        What the source's length columns count.
    chars_per_token : float or None
        Characters were converted to tokens by dividing by this (rounded to integers); None when
        nothing was converted.
    """

    source_unit: str = "tokens"
    chars_per_token: float | None = None

    def __post_init__(self) -> None:
        if self.source_unit not in LENGTH_UNITS:
            raise ValueError(f"source_unit must be one of {LENGTH_UNITS}; got {self.source_unit!r}")
        if self.chars_per_token is not None:
            if self.source_unit != "characters":
                raise ValueError(f"chars_per_token converts characters; got source_unit {self.source_unit!r}")
            if isinstance(self.chars_per_token, bool) or not (
                    isinstance(self.chars_per_token, (int, float)) and math.isfinite(self.chars_per_token)
                    and self.chars_per_token > 0):
                raise ValueError(f"chars_per_token must be a positive number; got {self.chars_per_token!r}")

    @property
    def unit(self) -> str:
        """What the stored length columns count: ``tokens`` or ``characters``."""
        return "tokens" if self.source_unit == "tokens" or self.chars_per_token else "characters"

    @property
    def label(self) -> str:
        """A label for tables and figures: ``tokens``, ``characters``, or
        ``tokens (from characters / 4.0)`` when converted."""
        if self.chars_per_token:
            return f"tokens (from characters / {self.chars_per_token:g})"
        return self.unit

    @property
    def converted(self) -> bool:
        """Characters were converted to tokens."""
        return self.chars_per_token is not None

    def to_json(self) -> dict:
        """The manifest's ``lengths`` entry."""
        return {"unit": self.unit, "source_unit": self.source_unit, "chars_per_token": self.chars_per_token,
                "label": self.label, "columns": [c for c in LENGTH_COLUMNS]}


def length_unit(manifest: Mapping) -> LengthUnit:
    """The :class:`LengthUnit` of a store, from its manifest (``store.manifest``).

    A store without a ``lengths`` entry holds tokens. This is the read-only hook for the
    lengths tables and figures: ``length_unit(store.manifest).label``.
    """
    entry = manifest.get("lengths") if isinstance(manifest, Mapping) else None
    if not entry:
        return LengthUnit()
    return LengthUnit(source_unit=entry.get("source_unit", entry.get("unit", "tokens")),
                      chars_per_token=entry.get("chars_per_token"))

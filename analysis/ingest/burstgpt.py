"""BurstGPT CSV (Azure OpenAI GPT, KDD'25): the 6-column v1 and the 8-column schema.

Columns are read by name, never by position: ``Timestamp`` (s from the trace start; later files
do not start at 0, and the values are kept as given), ``Model``, ``Request tokens``,
``Response tokens``, ``Log Type``, and in the newer release ``Session ID`` and ``Elapsed time``.
``Total tokens`` is not stored (it is input + output).

Mapping: ``Response tokens = 0`` -> ``failed``; ``Log Type`` ``Conversation log`` / ``API log``
-> ``service`` ``conversation`` / ``api`` (other values are lower-cased and kept);
``Session ID`` -> ``conversation_id``; ``Elapsed time`` -> ``latency_s``; ``Model`` -> ``model``.
The trace publishes no wall-clock origin, so the store's origin is unknown (None).
This module only builds a plan; the core reads the data.
"""
from __future__ import annotations

from types import MappingProxyType

from servelab.analysis.ingest.plan import Field, IngestPlan, TimeSpec, ident

__all__ = ["NAME", "KIND", "REQUIRED", "OPTIONAL", "matches", "plan"]

NAME = "burstgpt"
KIND = "csv"
REQUIRED = ("Timestamp", "Model", "Request tokens", "Response tokens", "Log Type")
OPTIONAL = ("Session ID", "Elapsed time", "Total tokens")


def matches(kind: str, columns: tuple[str, ...]) -> bool:
    """True when a source with these columns looks like BurstGPT."""
    return kind == KIND and set(REQUIRED) <= set(columns)


def plan(columns: tuple[str, ...], column_map=None) -> IngestPlan:
    """The ingest plan for a BurstGPT CSV with header ``columns``."""
    fields = [
        # raw columns as they are: the core trims once in the emptiness check and once when writing
        # (a trim() inside raw was re-evaluated by every check and by the output projection)
        Field.of("model", "Model", "string"),
        Field("service", f"lower({ident('Log Type')})", "string",
              values=(("conversation log", "conversation"), ("api log", "api"))),
        Field.of("input_tokens", "Request tokens", "count"),
        Field.of("output_tokens", "Response tokens", "count"),
    ]
    if "Session ID" in columns:
        fields.append(Field.of("conversation_id", "Session ID", "string", required=False))
    if "Elapsed time" in columns:
        fields.append(Field.of("latency_s", "Elapsed time", "seconds", required=False))
    return IngestPlan(
        fmt=NAME,
        time=TimeSpec(
            raw=ident("Timestamp"), column="Timestamp",
            kind="number",
            origin_note="BurstGPT publishes seconds from the trace start without a wall-clock origin: "
            "origin unknown (None); hour-of-day analyses do not apply",
        ),
        fields=tuple(fields),
        derived=MappingProxyType({"failed": "output_tokens = 0"}),
        notes=("failed = (Response tokens = 0)", "service from Log Type: 'Conversation log' -> conversation, "
               "'API log' -> api"),
    )

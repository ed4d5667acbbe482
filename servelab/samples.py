"""Paths to the real sample traces shipped in ``raw_traces/`` (see raw_traces/README.md)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["RAW_TRACES", "sample_path", "DEFAULT_SAMPLE"]

#: the repository's raw_traces/ folder (servelab is installed editable from its checkout)
RAW_TRACES = Path(__file__).resolve().parents[1] / "raw_traces"

#: the default trace of `servelab report`: Azure LLM inference 2023, code service, one hour
DEFAULT_SAMPLE = "azure_2023/AzureLLMInferenceTrace_code.csv"


def sample_path(name: str = DEFAULT_SAMPLE) -> Path:
    """Absolute path of a shipped sample, e.g. ``sample_path("mooncake/synthetic_trace.jsonl")``.

    Raises
    ------
    FileNotFoundError
        If the sample is not there (servelab installed from a wheel rather than its checkout).
    """
    path = RAW_TRACES / name
    if not path.is_file():
        raise FileNotFoundError(
            f"shipped sample {name!r} not found at {path}; install servelab from its checkout "
            "(`pip install -e .`) or pass a trace path explicitly"
        )
    return path

"""servelab: characterize LLM-serving request logs, fit client pools, generate workloads.

The library lives in the sub-packages (one direction of imports, top to bottom):

- :mod:`servelab.analysis`  ingest raw logs into a trace store; SQL characterization queries
                            (arrivals, lengths, clients, conversations, periodicity, ...)
- :mod:`servelab.fitting`   distribution families, fits, goodness of fit, mixtures, pool fitting
- :mod:`servelab.generator` the client pool and workload generation
- :mod:`servelab.figures`   one plotting function per figure
- :mod:`servelab.reports`   findings and the characterization report

This package itself only holds the version and the command-line interface (``servelab.cli``).
"""
__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata on first access (the lookup scans the
    installed distributions: a short command that never shows the version does not pay for it)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("servelab")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value

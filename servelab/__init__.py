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
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("servelab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

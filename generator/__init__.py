"""The client pool (servelab's format; ServeGen's read and written) and workload generation.

The generator reads pools and writes workloads as polars DataFrames in the canonical schema; it
never imports figures or matplotlib.
"""
from servelab.generator.exceptions import (
    MissingDatasetWarning,
    PoolExistsError,
    PoolFormatError,
    PoolNotFoundError,
    PoolSpanError,
    PoolWarning,
)
from servelab.generator.pool import ClientPool
from servelab.generator.sampling import sample_requests
from servelab.generator.servegen_format import read_servegen, write_servegen

__all__: list[str] = [
    "ClientPool",
    "sample_requests",
    "read_servegen",
    "write_servegen",
    "PoolFormatError",
    "PoolNotFoundError",
    "PoolExistsError",
    "PoolSpanError",
    "PoolWarning",
    "MissingDatasetWarning",
]

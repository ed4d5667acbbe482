"""The client pool (servelab's format; ServeGen's read and written) and workload generation.

The generator reads pools and writes workloads as polars DataFrames in the canonical schema; it
never imports figures or matplotlib.
"""
from typing import TYPE_CHECKING

from servelab._lazy import lazy_exports

# every name below is imported on first access (servelab._lazy): ``servelab generate`` imports the
# modules it runs, not every format and sampler
__getattr__, __dir__ = lazy_exports(__name__, __file__)

if TYPE_CHECKING:
    from servelab.generator.exceptions import (
        ExportFormatError,
        GenerationError,
        GenerationWarning,
        MissingDatasetWarning,
        PoolExistsError,
        PoolFormatError,
        PoolNotFoundError,
        PoolSpanError,
        PoolWarning,
        RequestBudgetError,
    )
    from servelab.generator.exports import EXPORT_FORMATS, export_workload, mooncake_hash_ids
    from servelab.generator.generate import (
        DEFAULT_MAX_REQUESTS,
        RateSchedule,
        check_request_budget,
        clock_times,
        constant_rate,
        generate,
        generate_chunks,
        pool_rate,
        rate_table,
        read_rate_file,
    )
    from servelab.generator.naive import aggregate_cv, naive_generate
    from servelab.generator.pool import ClientPool
    from servelab.generator.pool_checks import POOL_BOUNDS, check_pool_tables
    from servelab.generator.prefixes import PrefixModel, PrefixState, assign_prefix_blocks, prefix_model
    from servelab.generator.sampling import sample_requests
    from servelab.generator.servegen_format import read_servegen, write_servegen
    from servelab.generator.writers import generate_to

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
    "generate",
    "generate_chunks",
    "generate_to",
    "naive_generate",
    "aggregate_cv",
    "RateSchedule",
    "constant_rate",
    "rate_table",
    "pool_rate",
    "read_rate_file",
    "clock_times",
    "check_request_budget",
    "DEFAULT_MAX_REQUESTS",
    "RequestBudgetError",
    "POOL_BOUNDS",
    "check_pool_tables",
    "export_workload",
    "mooncake_hash_ids",
    "EXPORT_FORMATS",
    "GenerationError",
    "GenerationWarning",
    "ExportFormatError",
]

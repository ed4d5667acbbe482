"""The client pool (servelab's format; ServeGen's read and written) and workload generation.

The generator reads pools and writes workloads as polars DataFrames in the canonical schema; it
never imports figures or matplotlib.
"""
import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING

from servelab._lazy import lazy_exports

#: old module path -> where the module lives now. The pool's data model (ClientPool, its folder
#: format and checks, ServeGen's format) moved from the generator into fitting (issue 19), so that
#: fit_pool builds a pool without importing the layer above it. The old paths keep working: a
#: finder on ``sys.meta_path`` answers an import of an old path with the moved module itself (the
#: same module object, so classes, ``isinstance`` and monkeypatching agree under both names).
MOVED_MODULES: dict[str, str] = {
    "servelab.generator.pool": "servelab.fitting.pool",
    "servelab.generator.pool_format": "servelab.fitting.pool_format",
    "servelab.generator.pool_checks": "servelab.fitting.pool_checks",
    "servelab.generator.servegen_format": "servelab.fitting.servegen_format",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old path of :data:`MOVED_MODULES` as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module) -> None:
        """Nothing to run: the moved module ran when it was imported at its new path."""


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())

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
    from servelab.fitting.pool import ClientPool
    from servelab.fitting.pool_checks import POOL_BOUNDS, check_pool_tables
    from servelab.generator.prefixes import PrefixModel, PrefixState, assign_prefix_blocks, prefix_model
    from servelab.generator.sampling import sample_requests
    from servelab.fitting.servegen_format import read_servegen, write_servegen
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

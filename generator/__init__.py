"""The client pool (servelab's format; ServeGen's read and written) and workload generation.

The generator reads pools and writes workloads as polars DataFrames in the canonical schema; it
never imports figures or matplotlib.
"""
__all__: list[str] = []

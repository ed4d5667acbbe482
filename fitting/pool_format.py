"""servelab's own on-disk client-pool format: a folder with a JSON manifest and Parquet tables.

Layout (format version 3). Versions 1 and 2 are still read: version 1's ``arrivals`` held one
``shape`` column meaning Gamma ``a`` or Weibull ``c`` by family (converted to named parameter
columns); versions 1 and 2 held a row for every (client, window) of the span, idle ones as
placeholders of rate 0 and cv 0, which are dropped on reading. Version 3's ``arrivals`` is sparse:
only active (client, window) cells, a missing cell is idle (rate 0), and ``cv`` is null in an
active window with fewer than 2 gaps::

    POOL/
      manifest.json            format, format_version, servelab_version, created_at, window_s,
                               data_window_s, span_s, fields, n_clients, tables {name: file, rows},
                               provenance (source and its sha256, settings, ServeGen details)
      clients.parquet          the tables of :class:`~servelab.fitting.pool.ClientPool`
                               (a Float64 column whose values are all float32-exact is stored as
                               Float32, else one of integers as Int64, losslessly; readers get
                               Float64 back),
      arrivals.parquet         same names and columns (zstd-compressed, row groups of 64k rows;
      data.parquet             arrivals sorted by client and window, data by window and client,
                               so that they compress well and a period's windows read fast)
      data_fits.parquet
      conversations.parquet
      conversation_pmfs.parquet
      prefixes.parquet         the prefix model (:mod:`servelab.fitting.pool_prefixes`), written
                               only when the pool has one; a pool without it loads with an empty
                               table (no format version change: the table is optional)
      churn.parquet            client churn (absent from older pools: read as an empty table)
      coupling.parquet         load-length coupling (likewise)

The manifest's optional ``checked`` entry (``checks_version``, ``bounds``, ``sha256`` per table
file) says that these very files passed :func:`~servelab.generator.pool_checks.check_pool_tables`
when written: a reader whose checks version and bounds are the same and whose hashes of the files
match skips the range checks (hashing a few MB costs milliseconds; the checks, a scan of every
table). Any other pool, or a file changed since, is checked on reading.

Reading is lazy (``polars.scan_parquet``): :func:`read_pool` opens the manifest (and hashes the
table files when it has a ``checked`` entry). Writing is
atomic (a failed write leaves nothing behind). This module converts formats only.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

import servelab
from servelab.fitting.exceptions import (
    PoolExistsError,
    PoolFormatError,
    PoolNotFoundError,
)
from servelab.fitting.pool import ClientPool
from servelab.fitting.pool_checks import CHECKS_VERSION, POOL_BOUNDS, check_pool_tables


__all__ = ["read_pool", "write_pool", "is_servelab_pool", "FORMAT_NAME", "FORMAT_VERSION", "READ_VERSIONS", "TABLES"]

FORMAT_NAME = "servelab-pool"
#: bumped whenever a table gains a required column or a column changes meaning
FORMAT_VERSION = 3
#: versions this servelab reads (1: arrivals ``shape``, converted on reading; 1 and 2: dense
#: arrivals whose idle placeholders are dropped on reading; 3: sparse arrivals)
READ_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.json"
#: table name -> sort order on disk
TABLES = {
    "clients": None,
    "arrivals": ("client_id", "window_start"),
    # by window first: a generation period's data windows are a few row groups (min/max statistics
    # prune the rest on reading); readers never rely on the stored order
    "data": ("window_start", "client_id", "field", "value"),
    "data_fits": ("client_id", "window_start", "field"),
    "conversations": ("client_id",),
    "conversation_pmfs": ("client_id", "quantity", "value"),
    "prefixes": ("client_id", "kind", "group", "min_blocks", "value"),
    "churn": ("client_id",),  # issue 17; absent from older pools, read as empty
    "coupling": ("client_id", "field"),  # issue 17; absent from older pools, read as empty
}
#: rows per Parquet row group (the unit the window filters of a lazy read skip by statistics)
ROW_GROUP_ROWS = 65_536
#: tables written only when they have rows (pools without them read as before)
OPTIONAL_TABLES = ("prefixes",)


def is_servelab_pool(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a ``manifest.json`` naming servelab's pool format."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("format") == FORMAT_NAME
    except ValueError:
        return False


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _narrow_floats(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Store a Float64 column in a narrower exact type when every value allows it (lossless).

    All values float32-exact (fitted pools keep their estimates at float32 precision; token counts
    below 2**24): Float32. Otherwise all values integers: Int64. Imported ServeGen probabilities
    and parameters are neither and stay Float64. Readers cast back to Float64.
    """
    floats = [c for c, t in lf.collect_schema().items() if t == pl.Float64]
    if not floats:
        return lf
    checks = []
    for c in floats:
        x = pl.col(c)
        checks.append(((x.round() == x) & (x.abs() < 2.0**53) | x.is_null()).all().alias(f"int_{c}"))
        checks.append(((x.cast(pl.Float32).cast(pl.Float64) == x) | x.is_null()).all().alias(f"f32_{c}"))
    ok = lf.select(checks).collect().row(0, named=True)
    casts = []
    for c in floats:
        if ok[f"f32_{c}"]:
            casts.append(pl.col(c).cast(pl.Float32))
        elif ok[f"int_{c}"]:
            casts.append(pl.col(c).cast(pl.Int64))
    return lf.with_columns(casts) if casts else lf


def write_pool(pool: ClientPool, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``pool`` to the folder ``path`` in servelab's format and return the path.

    Raises
    ------
    PoolExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    from servelab.analysis.store import atomic_store_dir  # DuckDB: only when writing

    with atomic_store_dir(path, overwrite=overwrite, exists_error=PoolExistsError) as tmp:
        tables = {}
        for name, order in TABLES.items():
            lf = pool.lazy(name)
            if name in OPTIONAL_TABLES and lf.select(pl.len()).collect().item() == 0:
                continue
            if order:
                lf = lf.sort(list(order), maintain_order=True)
            lf = _narrow_floats(lf)
            file = f"{name}.parquet"
            lf.sink_parquet(tmp / file, compression="zstd", compression_level=9, statistics=True,
                            row_group_size=ROW_GROUP_ROWS)
            rows = pl.scan_parquet(tmp / file).select(pl.len()).collect().item()
            tables[name] = {"file": file, "rows": int(rows)}
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "servelab_version": servelab.__version__,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "window_s": pool.window_s,
            "data_window_s": pool.data_window_s,
            "span_s": list(pool.span),
            "fields": list(pool.fields),
            "n_clients": tables["clients"]["rows"],
            "tables": tables,
            "provenance": _plain(pool.provenance),
        }
        checked = _checked_entry(tmp, tables, pool)
        if checked is not None:
            manifest["checked"] = checked
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return path


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checks_stamp(folder: Path, tables: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``checked`` entry certifies: the checks' version and bounds, and each table file's sha256."""
    return {"checks_version": CHECKS_VERSION, "bounds": dict(POOL_BOUNDS),
            "sha256": {name: _sha256(folder / entry["file"]) for name, entry in sorted(tables.items())}}


def _checked_entry(folder: Path, tables: Mapping[str, Any], pool: ClientPool) -> dict[str, Any] | None:
    """The manifest's ``checked`` entry when the written tables pass the range checks, else None.

    The checks run on the files just written (what a reader will read). A pool that fails them is
    still written (the checks refuse it on reading, naming the bad value), without the entry.
    """
    written = {name: pl.scan_parquet(folder / entry["file"]) for name, entry in tables.items()}
    try:
        check_pool_tables(ClientPool(**written, window_s=pool.window_s, data_window_s=pool.data_window_s,
                                     span=tuple(pool.span), fields=pool.fields), source="(being written)")
    except PoolFormatError:
        return None
    return _checks_stamp(folder, tables)


def _is_checked(path: Path, manifest: Mapping[str, Any]) -> bool:
    """True when the manifest's ``checked`` entry matches these checks and the table files as they are."""
    checked = manifest.get("checked")
    if not isinstance(checked, Mapping):
        return False
    tables = {name: entry for name, entry in manifest["tables"].items() if name in TABLES}
    try:
        return checked == _checks_stamp(path, tables)
    except OSError:
        return False


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed manifest of the pool at ``path`` (checked for format and version)."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise PoolNotFoundError(f"{str(path)!r} is not a servelab pool (no {MANIFEST}); create one with "
                                "`servelab fit-pool STORE -o POOL` or `servelab pool import-servegen`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as err:
        raise PoolFormatError(f"{str(manifest_path)!r} is not valid JSON: {err}") from None
    if manifest.get("format") != FORMAT_NAME:
        raise PoolFormatError(f"{str(manifest_path)!r} has format {manifest.get('format')!r}; expected {FORMAT_NAME!r}")
    if manifest.get("format_version") not in READ_VERSIONS:
        raise PoolFormatError(f"pool {str(path)!r} has format_version {manifest.get('format_version')!r}; "
                              f"this servelab reads format_version {' or '.join(map(str, READ_VERSIONS))}")
    return manifest


def read_pool(path: str | os.PathLike) -> ClientPool:
    """Open the servelab pool at ``path`` lazily (tables are scanned, not read).

    Raises
    ------
    PoolNotFoundError
        If ``path`` has no ``manifest.json``.
    PoolFormatError
        If the manifest names another format or version, a table file is missing, or a value
        is out of range (:func:`~servelab.fitting.pool_checks.check_pool_tables`; the checks
        are aggregate queries, the tables stay lazy).
    """
    path = Path(path)
    manifest = read_manifest(path)
    tables = {}
    for name in TABLES:
        entry = manifest["tables"].get(name)
        if entry is None:
            tables[name] = None
            continue
        file = path / entry["file"]
        if not file.is_file():
            raise PoolFormatError(f"pool {str(path)!r} lacks its table file {entry['file']!r}")
        tables[name] = pl.scan_parquet(file)
    provenance = dict(manifest.get("provenance") or {})
    provenance.setdefault("pool_path", str(path))
    pool = ClientPool(**tables, window_s=float(manifest["window_s"]), data_window_s=float(manifest["data_window_s"]),
                      span=tuple(manifest["span_s"]), fields=manifest["fields"], provenance=provenance)
    if not _is_checked(path, manifest):  # the range checks, unless passed by these very files
        check_pool_tables(pool, source=repr(str(path)))
    return pool

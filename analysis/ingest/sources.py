"""Finding source files and looking at their first lines: globs, file kind, column names.

Nothing here reads a whole file: the header of a CSV, the keys of the first JSON object of a
JSONL file, or the schema of a Parquet file is all that sniffing and column checks need.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import duckdb

from servelab.analysis.exceptions import EmptyTraceError, TraceFormatError

__all__ = ["Source", "resolve_sources", "describe_source", "FILE_KINDS", "COMPRESSIONS", "compression_of",
           "UnsupportedCompressionError", "DEFAULT_MAX_LINE_BYTES"]

FILE_KINDS = ("csv", "jsonl", "parquet")

#: the longest line (a CSV row or a JSONL object, in bytes) ingest reads by default: 64 MiB, room for
#: JSONL rows with long hash_ids lists and CSV fields of megabytes (DuckDB's own default is 2 MB);
#: a longer line is one rejected row (``line_too_long``) whose raw value keeps the line's first
#: 10,000 characters (all DuckDB's reject table holds). Set per ingest with ``max_line_bytes``.
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024

#: compressed text sources DuckDB reads natively: file suffix -> compression name
COMPRESSIONS = MappingProxyType({".gz": "gzip", ".zst": "zstd"})

#: compressions servelab refuses by name: suffix -> (name, how to decompress FILE)
_REFUSED = {
    ".bz2": ("bzip2", "bunzip2 -k FILE"),
    ".xz": ("xz", "unxz -k FILE"),
    ".lzma": ("lzma", "unlzma -k FILE"),
    ".lz4": ("lz4", "lz4 -d FILE"),
    ".zip": ("zip", "unzip FILE"),
    ".7z": ("7z", "7z x FILE"),
    ".rar": ("rar", "unrar x FILE"),
    ".tar": ("tar", "tar -xf FILE"),
    ".tgz": ("tar + gzip", "tar -xzf FILE"),
    ".br": ("brotli", "brotli -d FILE"),
    ".z": ("compress", "uncompress FILE"),
    ".gzip": ("gzip under a name DuckDB does not recognise", "mv FILE FILE.gz (or gunzip -k FILE)"),
    ".zstd": ("zstd under a name DuckDB does not recognise", "mv FILE FILE.zst (or zstd -d FILE)"),
}

#: magic bytes of compressed files: prefix -> compression name (a compressed file without its suffix)
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)


class UnsupportedCompressionError(TraceFormatError):
    """A source is compressed in a way DuckDB does not read (bzip2, xz, zip, 7z, ...)."""

_EXT_KIND = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Source:
    """One source file and what its first lines say.

    Parameters
    ----------
    path : Path
        The file.
    kind : str
        ``csv``, ``jsonl`` or ``parquet``.
    columns : tuple of str
        CSV header, keys of the first JSON object, or Parquet column names.
    delimiter : str
        CSV delimiter (``,`` unless sniffed otherwise).
    empty : bool
        The file holds no data row (zero bytes, a header only, or blank lines only).
    types : tuple of str
        Parquet: the DuckDB type of each column (``BIGINT``, ``DOUBLE``, ``VARCHAR``, ...);
        empty for text files, whose values are text.
    max_line_bytes : int
        The longest line (CSV row or JSONL object) read; a longer one is one rejected row
        (``line_too_long``). See :data:`DEFAULT_MAX_LINE_BYTES`.
    fixed_dialect : bool
        CSV: read with a fixed dialect (the sniffed delimiter, ``"`` quotes, the header's columns)
        and ``max_line_bytes``, instead of DuckDB's sniffer: set on the retry after the sniffer
        or the default line limit failed on the file.
    """

    path: Path
    kind: str
    columns: tuple[str, ...]
    delimiter: str = ","
    empty: bool = False
    types: tuple[str, ...] = ()
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    fixed_dialect: bool = False

    @property
    def compression(self) -> str | None:
        """``gzip``, ``zstd`` or None (from the file's suffix)."""
        return COMPRESSIONS.get(self.path.suffix.lower())


def resolve_sources(sources) -> list[Path]:
    """Expand ``sources`` (a path, a glob, or a list of them) into existing files, in order.

    Raises
    ------
    FileNotFoundError
        If a path does not exist or a glob matches nothing.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths: list[Path] = []
    for item in sources:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise FileNotFoundError(f"source glob {text!r} matches no file")
            paths.extend(Path(m) for m in matches if Path(m).is_file())
        else:
            path = Path(text)
            if not path.is_file():
                raise FileNotFoundError(f"source {text!r} does not exist (or is not a file)")
            paths.append(path)
    if not paths:
        raise FileNotFoundError(f"no source files given (sources={list(map(str, sources))!r})")
    return paths


def compression_of(path: Path) -> str | None:
    """The compression of ``path`` from its suffix: ``gzip``, ``zstd`` or None (plain).

    Raises
    ------
    UnsupportedCompressionError
        The suffix names a compression DuckDB does not read (``.bz2``, ``.xz``, ``.zip``, ``.7z``,
        ...), or a plain-named file starts with a compressed file's magic bytes; the message
        says how to decompress it.
    """
    suffix = path.suffix.lower()
    if suffix in COMPRESSIONS:
        return COMPRESSIONS[suffix]
    if suffix in _REFUSED:
        name, how = _REFUSED[suffix]
        raise UnsupportedCompressionError(
            f"{path} is compressed with {name}, which servelab does not read (it reads plain, gzip "
            f"(.gz) and zstd (.zst) files); decompress it first: {how.replace('FILE', str(path))}"
        )
    with open(path, "rb") as fh:
        head = fh.read(8)
    for magic, name in _MAGIC:
        if head.startswith(magic) and (name != "bzip2" or head[3:4] in b"123456789"):
            hint = {"gzip": ".gz", "zstd": ".zst"}.get(name)
            fix = (f"rename it to end in {hint} so that it is decompressed" if hint
                   else "decompress it first (servelab reads plain, gzip (.gz) and zstd (.zst) files)")
            raise UnsupportedCompressionError(
                f"{path} is a {name}-compressed file without a {name} suffix; {fix}"
            )
    return None


def _kind_of(path: Path, hint: str | None) -> str:
    compression = compression_of(path)
    if hint is not None:
        if hint not in FILE_KINDS:
            raise TraceFormatError(f"file kind must be one of {FILE_KINDS}; got {hint!r}")
        return hint
    suffixes = [s.lower() for s in path.suffixes]
    if compression is not None:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXT_KIND:
        return _EXT_KIND[suffixes[-1]]
    # unknown extension: look at the first byte
    with _open_text(path) as fh:
        head = fh.read(4096).lstrip()
    return "jsonl" if head.startswith("{") else "csv"


def _open_text(path: Path) -> io.TextIOBase:
    """The start of a text source, decoded (gzip by Python, zstd by DuckDB: its first lines only)."""
    compression = compression_of(path)
    if compression == "gzip":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace", newline="")
    if compression == "zstd":
        return io.StringIO(_zstd_head(path))
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


#: lines of a zstd source decompressed (by DuckDB) to describe it
_ZSTD_HEAD_LINES = 2 * 1000 + 2


def _zstd_head(path: Path) -> str:
    """The first lines of a zstd-compressed text file (Python 3.11 has no zstd; DuckDB does)."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT line FROM read_csv('{str(path).replace(chr(39), chr(39) * 2)}', columns = {{'line': 'VARCHAR'}}, "
            "header = false, delim = '\x01', quote = '', escape = '', auto_detect = false, "
            "compression = 'zstd', ignore_errors = true, strict_mode = false, max_line_size = 67108864, buffer_size = 134217728) "
            f"LIMIT {_ZSTD_HEAD_LINES}"
        ).fetchall()
    except duckdb.Error as err:
        raise TraceFormatError(f"{path} is not a readable zstd file: {err}") from None
    finally:
        con.close()
    text = "\n".join("" if r[0] is None else r[0] for r in rows)
    return text.removeprefix("\ufeff") + ("\n" if rows else "")


def describe_source(path: Path, *, kind: str | None = None, delimiter: str | None = None,
                    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Source:
    """Read just enough of ``path`` to know its kind and column names.

    Raises
    ------
    TraceFormatError
        If the file cannot be read as its kind.
    """
    return dataclasses.replace(_describe(path, kind=kind, delimiter=delimiter), max_line_bytes=max_line_bytes)


def _describe(path: Path, *, kind: str | None, delimiter: str | None) -> Source:
    kind = _kind_of(path, kind)
    if path.stat().st_size == 0:
        return Source(path=path, kind=kind, columns=(), empty=True)
    if kind == "parquet":
        try:
            con = duckdb.connect()
            try:
                rel = con.sql(f"SELECT * FROM read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')")
                columns = tuple(rel.columns)
                types = tuple(str(t) for t in rel.types)
                n = con.execute(
                    f"SELECT count(*) FROM read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')"
                ).fetchone()[0]
            finally:
                con.close()
        except duckdb.Error as err:
            raise TraceFormatError(f"{path} is not a readable Parquet file: {err}") from None
        return Source(path=path, kind=kind, columns=columns, empty=n == 0, types=types)
    with _open_text(path) as fh:
        if kind == "jsonl":
            return _describe_jsonl(path, fh)
        header = fh.readline()
        while header and not header.strip():
            header = fh.readline()
        if not header.strip():
            return Source(path=path, kind=kind, columns=(), empty=True)
        if delimiter is None:
            try:
                delimiter = csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
        columns = tuple(next(csv.reader([header.rstrip("\r\n")], delimiter=delimiter)))
        has_row = any(line.strip() for line in _take(fh, 1000))
        return Source(path=path, kind=kind, columns=columns, delimiter=delimiter, empty=not has_row)


#: how many non-blank JSONL lines are looked at for one that is a JSON object (its keys name the columns)
_SNIFF_LINES = 1000


def _describe_jsonl(path: Path, fh) -> Source:
    """The columns of a JSONL file: the keys of its first line that is a JSON object.

    Lines before it that are not JSON objects (broken JSON, an array, bytes that are not
    UTF-8, decoded here as U+FFFD) do not decide the columns; the readers reject them as rows
    like any other bad line. Raises when none of the first ``_SNIFF_LINES`` non-blank lines is
    a JSON object, naming the first line's problem.
    """
    first_problem = None
    seen = 0
    for line in fh:
        if not line.strip():
            continue
        seen += 1
        if seen > _SNIFF_LINES:
            break
        if "\ufffd" in line:
            problem = "it is not UTF-8"
        else:
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                problem = f"it is not a JSON object ({err.msg})"
            else:
                if isinstance(value, dict):
                    return Source(path=path, kind="jsonl", columns=tuple(value))
                problem = f"it is a JSON {type(value).__name__}, not an object"
        if first_problem is None:
            first_problem = problem
    if first_problem is None:
        return Source(path=path, kind="jsonl", columns=(), empty=True)
    raise TraceFormatError(
        f"{path}: none of the first {min(seen, _SNIFF_LINES)} non-blank lines is a JSON object (the first: "
        f"{first_problem}); a JSONL trace has one JSON object per line"
    )


def _take(fh, n: int):
    for i, line in enumerate(fh):
        if i >= n:
            return
        yield line


def require_nonempty(sources: list[Source]) -> None:
    """Raise :class:`EmptyTraceError` when every source is empty."""
    if all(s.empty for s in sources):
        names = ", ".join(str(s.path) for s in sources)
        raise EmptyTraceError(f"no data rows in {names}: the file is empty or holds a header only")

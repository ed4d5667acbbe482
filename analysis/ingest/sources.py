"""Finding source files and looking at their first lines: globs, file kind, column names.

Nothing here reads a whole file: the header of a CSV, the keys of the first JSON object of a
JSONL file, or the schema of a Parquet file is all that sniffing and column checks need.
"""
from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from servelab.analysis.exceptions import EmptyTraceError, TraceFormatError

__all__ = ["Source", "resolve_sources", "describe_source", "FILE_KINDS"]

FILE_KINDS = ("csv", "jsonl", "parquet")

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
    """

    path: Path
    kind: str
    columns: tuple[str, ...]
    delimiter: str = ","
    empty: bool = False
    types: tuple[str, ...] = ()


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


def _kind_of(path: Path, hint: str | None) -> str:
    if hint is not None:
        if hint not in FILE_KINDS:
            raise TraceFormatError(f"file kind must be one of {FILE_KINDS}; got {hint!r}")
        return hint
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXT_KIND:
        return _EXT_KIND[suffixes[-1]]
    # unknown extension: look at the first byte
    with _open_text(path) as fh:
        head = fh.read(4096).lstrip()
    return "jsonl" if head.startswith("{") else "csv"


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def describe_source(path: Path, *, kind: str | None = None, delimiter: str | None = None) -> Source:
    """Read just enough of ``path`` to know its kind and column names.

    Raises
    ------
    TraceFormatError
        If the file cannot be read as its kind.
    """
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

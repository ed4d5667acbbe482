"""Read and write ServeGen's published client-pool format, losslessly.

A ServeGen pool is a folder with one ``chunk-<id>`` pair per client (see
../shared/data/README.md):

- ``chunk-<id>-trace.csv``: no header, one row per 600 s window,
  ``window_start_s, rate_rps, cv, family, shape, scale`` with ``family`` ``Gamma`` or
  ``Weibull`` (scipy ``gamma(a=shape, scale=scale)``, ``weibull_min(c=shape, scale=scale)``: the
  ``servegen_name`` of the arrival families, whose one shape parameter ``shape`` is);
  an idle window is written ``t,0,0,,0,0``.
- ``chunk-<id>-dataset.json``: ``{window_start_s: {field: "<python dict literal {value: p}>"}}``
  on a 6 h grid; ``"{}"`` marks an idle window. Dict strings are parsed with
  :func:`ast.literal_eval` (never ``eval``).

Import keeps every number as the float64 it denotes, and records the field order and whether a
field's values were written as ints or floats, so that :func:`write_servegen` reproduces the files
byte for byte (numbers are written with Python's shortest round-trip ``repr``, as ServeGen's were).
A client whose dataset file is missing is reported with a :class:`MissingDatasetWarning` and kept
arrival-only or dropped (``missing_data``), never skipped silently.

This module converts formats only; it computes no statistics and draws no random numbers.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from servelab.fitting.exceptions import MissingDatasetWarning, PoolExistsError, PoolFormatError, PoolNotFoundError, PoolWarning
from servelab.fitting.families import arrival_family_names, get_arrival_family
from servelab.fitting.pool import DATA_SCHEMA, ClientPool
from servelab.fitting.pool_checks import check_pool_tables
from servelab.fitting.pool_shrinkage import OWN_WEIGHT_COLUMN

__all__ = ["read_servegen", "write_servegen", "is_servegen_pool", "SERVEGEN_FAMILIES", "servegen_families"]



def servegen_families() -> dict[str, str]:
    """ServeGen family name -> registry name, from the arrival families' ``servegen_name``."""
    out = {}
    for name in arrival_family_names():
        sg = get_arrival_family(name).servegen_name
        if sg is not None:
            out[sg] = name
    return out


#: ServeGen family name -> registry name (the families registered at import)
SERVEGEN_FAMILIES = servegen_families()
_CHUNK = re.compile(r"^chunk-(?P<id>.+)-(?P<kind>trace\.csv|dataset\.json)$")
_MISSING_CHOICES = ("keep", "drop", "error")


def _chunks(path: Path) -> dict[str, dict[str, Path]]:
    found: dict[str, dict[str, Path]] = {}
    for entry in os.scandir(path):
        m = _CHUNK.match(entry.name)
        if m:
            found.setdefault(m["id"], {})[m["kind"].split(".")[0]] = Path(entry.path)
    return found


def is_servegen_pool(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding at least one ``chunk-<id>-trace.csv``."""
    path = Path(path)
    return path.is_dir() and any(v.get("trace") for v in _chunks(path).values())


def _id_key(client_id: str):
    return (0, int(client_id), "") if client_id.isdigit() else (1, 0, client_id)


def _grid_step(starts: np.ndarray, default: float, what: str, where: Path) -> float:
    u = np.unique(starts)
    if u.size < 2:
        return default
    steps = np.unique(np.diff(u))
    if steps.size != 1:
        raise PoolFormatError(f"{what} windows in {str(where)!r} are not on one grid; steps found: {steps[:5].tolist()}")
    return float(steps[0])


def read_servegen(path: str | os.PathLike, *, missing_data: str = "keep") -> ClientPool:
    """Import a ServeGen pool folder as a :class:`ClientPool`.

    Parameters
    ----------
    path : path-like
        Folder with ``chunk-<id>-trace.csv`` / ``chunk-<id>-dataset.json`` files.
    missing_data : {"keep", "drop", "error"}
        What to do with a client whose dataset file is missing: keep it with arrivals only
        (``has_data`` false, a note saying so), drop it, or raise. Either way a
        :class:`MissingDatasetWarning` names the clients.

    Raises
    ------
    PoolNotFoundError
        If ``path`` has no ``chunk-<id>-trace.csv`` file.
    PoolFormatError
        If a file is malformed, a value is out of range (negative, non-finite or absurd rates,
        CVs or family parameters; probabilities outside [0, 1] or not summing to 1; see
        :mod:`~servelab.fitting.pool_checks`), or ``missing_data="error"`` and a dataset file
        is missing.
    """
    if missing_data not in _MISSING_CHOICES:
        raise ValueError(f"missing_data must be one of {_MISSING_CHOICES}; got {missing_data!r}")
    path = Path(path)
    if not path.is_dir():
        raise PoolNotFoundError(f"ServeGen pool folder {str(path)!r} does not exist")
    chunks = _chunks(path)
    if not any(v.get("trace") for v in chunks.values()):
        raise PoolNotFoundError(f"{str(path)!r} holds no chunk-<id>-trace.csv file; not a ServeGen pool")
    ids = sorted(chunks, key=_id_key)
    no_data = [i for i in ids if "dataset" not in chunks[i]]
    no_trace = [i for i in ids if "trace" not in chunks[i]]
    if no_data:
        action = {"keep": "kept with arrival data only", "drop": "dropped", "error": "an error"}[missing_data]
        msg = (f"ServeGen pool {str(path)!r}: {len(no_data)} client(s) have no dataset file "
               f"(chunk-<id>-dataset.json): ids {no_data}; {action} (missing_data={missing_data!r})")
        if missing_data == "error":
            raise PoolFormatError(msg)
        warnings.warn(msg, MissingDatasetWarning, stacklevel=2)
        if missing_data == "drop":
            ids = [i for i in ids if i not in no_data]

    arrivals = _read_traces([(i, chunks[i]["trace"]) for i in ids if "trace" in chunks[i]])
    data, field_order, value_types = _read_datasets([(i, chunks[i]["dataset"]) for i in ids if "dataset" in chunks[i]])

    window_s = _grid_step(arrivals["window_start"].to_numpy(), 600.0, "trace", path)
    data_window_s = _grid_step(data["window_start"].unique().to_numpy(), 21600.0, "dataset", path) if data.height else 21600.0
    # ServeGen's single shape column is the family's one shape parameter (Gamma a, Weibull c): the
    # pool turns it into the column of that name (servelab.fitting.pool.named_arrival_params)
    arrivals = arrivals.with_columns(pl.lit(window_s).alias("window_s")).select(
        "client_id", "window_start", "window_s", "rate", "cv", "family", "shape", "scale")
    data = data.with_columns(pl.lit(data_window_s).alias("window_s")).select(list(DATA_SCHEMA))

    notes = []
    for i in ids:
        parts = []
        if i in no_data:
            parts.append("ServeGen dataset file missing: arrivals only")
        if i in no_trace:
            parts.append("ServeGen trace file missing: data only")
        notes.append("; ".join(parts))
    clients = pl.DataFrame({
        "client_id": ids,
        "has_arrivals": [i not in no_trace for i in ids],
        "has_data": [i not in no_data for i in ids],
        "note": notes,
    })
    starts = arrivals["window_start"]
    span = (float(starts.min()), float(starts.max()) + window_s) if starts.len() else (0.0, 0.0)
    if data.height:
        span = (min(span[0], float(data["window_start"].min())), max(span[1], float(data["window_start"].max()) + data_window_s))
    provenance = {
        "source": {"format": "servegen", "path": str(path)},
        "servegen": {
            "field_order": field_order,
            "line_terminator": _line_terminator(chunks, ids),
            "value_types": value_types,
            "missing_datasets": no_data,
            "missing_traces": no_trace,
            "dropped_clients": no_data if missing_data == "drop" else [],
        },
    }
    pool = ClientPool(clients=clients, arrivals=arrivals, data=data, window_s=window_s,
                      data_window_s=data_window_s, span=span, fields=field_order, provenance=provenance)
    check_pool_tables(pool, source=repr(str(path)))
    return pool


def _line_terminator(chunks, ids) -> str:
    for i in ids:
        f = chunks[i].get("trace")
        if f is not None:
            head = f.read_bytes()[:4096]
            return "\r\n" if b"\r\n" in head else "\n"
    return "\r\n"


def _read_traces(files: list[tuple[str, Path]]) -> pl.DataFrame:
    if not files:
        return pl.DataFrame(schema={"client_id": pl.String, "window_start": pl.Float64, "rate": pl.Float64,
                                    "cv": pl.Float64, "family": pl.String, "shape": pl.Float64, "scale": pl.Float64})
    schema = {"window_start": pl.Float64, "rate": pl.Float64, "cv": pl.Float64, "family": pl.String,
              "shape": pl.Float64, "scale": pl.Float64}
    frames = []
    for cid, f in files:
        try:
            t = pl.read_csv(f, has_header=False, new_columns=list(schema), schema=schema)
        except Exception as err:  # polars raises several types; name the file
            raise PoolFormatError(f"cannot read ServeGen trace {str(f)!r} as 6 columns "
                                  f"window_start_s,rate_rps,cv,family,shape,scale: {err}") from None
        frames.append(t.with_columns(pl.lit(cid).alias("client_id")))
    t = pl.concat(frames)
    names = servegen_families()
    bad = t.filter(pl.col("family").is_not_null() & ~pl.col("family").is_in(list(names)))
    if bad.height:
        raise PoolFormatError(f"ServeGen trace family must be one of {list(names)} or empty; "
                              f"got {bad['family'].unique().to_list()[:5]} (client {bad['client_id'][0]!r})")
    idle = pl.col("family").is_null()
    return t.select(
        "client_id", "window_start", "rate", "cv",
        pl.col("family").replace_strict(names, default=None).alias("family"),
        pl.when(idle).then(None).otherwise(pl.col("shape")).alias("shape"),
        pl.when(idle).then(None).otherwise(pl.col("scale")).alias("scale"),
    )


def _read_datasets(files: list[tuple[str, Path]]):
    cids, starts, fields, values, probs = [], [], [], [], []
    field_order: list[str] = []
    value_types: dict[str, str] = {}
    for cid, f in files:
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError) as err:
            raise PoolFormatError(f"cannot read ServeGen dataset {str(f)!r} as JSON: {err}") from None
        if not isinstance(doc, dict):
            raise PoolFormatError(f"ServeGen dataset {str(f)!r} must be a JSON object of windows; got {type(doc).__name__}")
        for wkey, entry in doc.items():
            if not isinstance(entry, dict):
                raise PoolFormatError(f"ServeGen dataset {str(f)!r} window {wkey}: expected an object of fields; "
                                      f"got {type(entry).__name__}")
            try:
                ws = float(wkey)
            except ValueError:
                raise PoolFormatError(f"ServeGen dataset {str(f)!r}: window key {wkey!r} is not a number") from None
            for field, text in entry.items():
                if field not in field_order:
                    field_order.append(field)
                keys, probs_ = _parse_pmf(text, f, wkey, field)
                if not keys:
                    continue
                kind = "float" if any(isinstance(k, float) for k in keys) else "int"
                if value_types.get(field) not in (None, kind):
                    kind = "float"
                value_types[field] = kind
                n = len(keys)
                cids.extend([cid] * n)
                starts.extend([ws] * n)
                fields.extend([field] * n)
                values.extend(keys)
                probs.extend(probs_)
    data = pl.DataFrame({
        "client_id": pl.Series(cids, dtype=pl.String),
        "window_start": np.asarray(starts, dtype=np.float64),
        "field": pl.Series(fields, dtype=pl.String),
        "value": np.asarray(values, dtype=np.float64),
        "probability": np.asarray(probs, dtype=np.float64),
    })
    return data, field_order, value_types


def _parse_pmf(text: str, f: Path, wkey: str, field: str) -> tuple[list, list]:
    """Keys and probabilities of one ``"{value: p, ...}"`` string.

    Numeric-only dicts (all of ServeGen's) take a fast path: the same tokens read as a JSON array,
    which yields the identical ints and correctly rounded floats; anything else is parsed with
    :func:`ast.literal_eval` (never ``eval``) and must be a dict of numbers.
    """
    if not isinstance(text, str):
        raise PoolFormatError(f"ServeGen dataset {str(f)!r} window {wkey} field {field!r}: expected a string "
                              f"holding a python dict literal {{value: probability}}; got {type(text).__name__} "
                              f"{text!r:.60}")
    text = text.strip()
    if text.startswith("{") and text.endswith("}") and "'" not in text and '"' not in text:
        try:
            flat = json.loads("[" + text[1:-1].replace(":", ",") + "]")
        except ValueError:
            flat = None
        if (flat is not None and len(flat) % 2 == 0 and text.count(":") == len(flat) // 2
                and text.count(",") == max(len(flat) // 2 - 1, 0) and all(type(x) in (int, float) for x in flat)):
            return flat[0::2], flat[1::2]
    try:
        pmf = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise PoolFormatError(f"ServeGen dataset {str(f)!r} window {wkey} field {field!r}: "
                              f"not a python dict literal ({err})") from None
    if not isinstance(pmf, dict) or not all(
            type(k) in (int, float) and type(v) in (int, float) for k, v in pmf.items()):
        raise PoolFormatError(f"ServeGen dataset {str(f)!r} window {wkey} field {field!r}: "
                              f"expected a python dict literal of numbers {{value: probability}}; got {text[:60]!r}")
    return list(pmf), list(pmf.values())


def _num(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def write_servegen(pool: ClientPool, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Export ``pool`` in ServeGen's format (one ``chunk-<id>`` pair per client).

    Every arrival window of the pool's grid over its span is written (missing ones as idle rows),
    and every data window of the data grid (empty ones as ``"{}"``). A family without a ServeGen
    name is written as the ``Gamma`` with its mean and CV (exponential: exactly ``Gamma`` with
    ``a = 1``). A client without data gets no dataset
    file, as in ServeGen's own pools. Client ids must be usable in file names.

    Raises
    ------
    PoolExistsError
        If ``path`` exists and ``overwrite`` is false.
    PoolFormatError
        If a client id cannot be a file name, or a window with requests has no usable parameters.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise PoolExistsError(f"{str(path)!r} already exists; pass overwrite=True to replace it")
    bad = [c for c in pool.client_ids if not c or "/" in c or c != c.strip() or c in (".", "..")]
    if bad:
        raise PoolFormatError(f"client ids {bad[:5]} cannot be used in chunk-<id> file names")
    if pool.lazy("prefixes").select(pl.len()).collect().item():  # issue 15: ServeGen has no prefix model
        warnings.warn(f"ServeGen's format has no prefix model: the pool's 'prefixes' table (shared system prompts, "
                      f"templates, reuse, conversation history) is dropped from {str(path)!r}", PoolWarning, stacklevel=2)
    if OWN_WEIGHT_COLUMN in pool.clients.columns and pool.clients[OWN_WEIGHT_COLUMN].is_not_null().any():
        warnings.warn(f"ServeGen's format has no length shrinkage: the clients' {OWN_WEIGHT_COLUMN!r} weights are "
                      f"dropped from {str(path)!r}, so generation from it draws every request from its client's own "
                      "PMFs (servelab.fitting.pool_shrinkage)", PoolWarning, stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        _write_traces(pool, tmp)
        _write_datasets(pool, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def _grid(start: float, end: float, step: float) -> np.ndarray:
    n = int(round((end - start) / step))
    return start + step * np.arange(max(n, 0), dtype=np.float64)


def _servegen_arrivals(arr: pl.DataFrame) -> pl.DataFrame:
    """Arrivals as ServeGen states them: ``sg_family``, ``sg_shape``, ``sg_scale`` per row.

    A family with a ServeGen name keeps its one shape and its scale; any other (exponential, ...)
    becomes the Gamma with the same mean and CV (exponential: exactly Gamma with a = 1). A window
    with requests but no family gets the Gamma with its CV and rate. Idle windows get nulls.
    """
    n = arr.height
    fam = arr["family"].to_numpy()
    sg_family = np.full(n, None, dtype=object)
    sg_shape = np.full(n, np.nan)
    sg_scale = np.full(n, np.nan)
    gamma = get_arrival_family(servegen_families()["Gamma"])
    for name in sorted(set(fam[fam != None].tolist())):  # noqa: E711 - loop over families, not rows
        family = get_arrival_family(name)
        rows = fam == name
        params = {p: arr[p].cast(pl.Float64).fill_null(np.nan).to_numpy()[rows] for p in family.param_names}
        if family.servegen_name is not None:
            sg_family[rows] = family.servegen_name
            sg_shape[rows] = params[family.shape_names[0]]
            sg_scale[rows] = params["scale"]
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            a = gamma.shapes_from_cv(np.broadcast_to(family.cv(params), int(rows.sum())))["a"]
            sg_family[rows] = gamma.servegen_name
            sg_shape[rows] = a
            sg_scale[rows] = family.mean(params) / a
    # requests but no fitted family (few gaps): the Gamma with the stated CV and rate
    rate = arr["rate"].fill_null(0.0).to_numpy()
    cv = arr["cv"].fill_null(0.0).to_numpy()
    none = (fam == None) & (rate != 0)  # noqa: E711
    a = np.where(cv != 0, 1.0 / np.where(cv != 0, cv * cv, 1.0), 1.0)
    sg_family[none] = gamma.servegen_name
    sg_shape[none] = a[none]
    sg_scale[none] = 1.0 / (rate[none] * a[none])
    return arr.with_columns(pl.Series("sg_family", sg_family.tolist(), dtype=pl.String),
                            pl.Series("sg_shape", sg_shape), pl.Series("sg_scale", sg_scale))


def _write_traces(pool: ClientPool, folder: Path) -> None:
    lo, hi = pool.span
    grid = pl.DataFrame({"window_start": _grid(lo, hi, pool.window_s)})
    arr = _servegen_arrivals(pool.arrivals).select("client_id", "window_start", "rate", "cv", "sg_family",
                                                    "sg_shape", "sg_scale")
    # ServeGen wrote its CSVs with Python's csv module: "\r\n" line ends
    eol = (pool.provenance.get("servegen", {}) or {}).get("line_terminator", "\r\n")
    with_arrivals = pool.clients.filter(pl.col("has_arrivals"))["client_id"].to_list()
    parts = arr.partition_by("client_id", as_dict=True)
    empty = arr.clear().drop("client_id")
    for cid in with_arrivals:
        t = parts.get((cid,))
        t = grid.join(t.drop("client_id") if t is not None else empty, on="window_start", how="left",
                      maintain_order="left")
        lines = []
        for ws, rate, cv, fam, shape, scale in zip(*(t[c].to_list() for c in (
                "window_start", "rate", "cv", "sg_family", "sg_shape", "sg_scale"))):
            w = _num(ws)
            if fam is None:
                lines.append(f"{w},0,0,,0,0")
                continue
            if not (shape is not None and math.isfinite(shape) and scale is not None and math.isfinite(scale)):
                raise PoolFormatError(f"client {cid!r} window {w}: family {fam!r} has no usable parameters "
                                      f"(shape {shape!r}, scale {scale!r})")
            if cv is None:  # an active window with < 2 gaps: the CV of the Gamma written for it
                cv = 1.0 / math.sqrt(shape)
            lines.append(f"{w},{float(rate)!r},{float(cv)!r},{fam},{float(shape)!r},{float(scale)!r}")
        with open(folder / f"chunk-{cid}-trace.csv", "w", newline="") as fh:
            fh.write(eol.join(lines) + eol)


def _write_datasets(pool: ClientPool, folder: Path) -> None:
    sg = pool.provenance.get("servegen", {}) or {}
    fields = list(sg.get("field_order") or pool.fields)
    value_types = dict(sg.get("value_types") or {})
    lo, hi = pool.span
    starts = _grid(lo, hi, pool.data_window_s)
    data = pool.data.sort("client_id", "window_start", "field", "value")
    parts = data.partition_by("client_id", as_dict=True)
    for cid in pool.clients.filter(pl.col("has_data"))["client_id"].to_list():
        t = parts.get((cid,))
        texts: dict[tuple[float, str], str] = {}
        if t is not None:
            for (ws, field), g in t.group_by("window_start", "field"):
                g = g.sort("value")
                as_int = value_types.get(field, "float" if field == "reason_ratio" else "int") == "int"
                vals = g["value"].to_list()
                probs = g["probability"].to_list()
                if as_int:
                    body = ", ".join(f"{int(v)!r}: {p!r}" for v, p in zip(vals, probs))
                else:
                    body = ", ".join(f"{v!r}: {p!r}" for v, p in zip(vals, probs))
                texts[(ws, field)] = "{" + body + "}"
        doc = {_num(ws): {f: texts.get((ws, f), "{}") for f in fields} for ws in starts.tolist()}
        (folder / f"chunk-{cid}-dataset.json").write_text(json.dumps(doc, indent=2))

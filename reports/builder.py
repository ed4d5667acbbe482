"""Build the characterization report: one section per area, one HTML page plus report.json.

:func:`build_report` opens a store (or ingests a raw trace into a temporary one), builds the
:class:`~servelab.reports.areas.Section` of every area of :data:`servelab.reports.areas.AREAS`
(measure once, then findings, tables, figures, headline, notes; see
:func:`servelab.reports.areas.build_section`), renders their figures, and writes one
self-contained HTML file (see :mod:`servelab.reports.html`) and ``<output>.json`` holding the same
findings. A section that raises does not sink the report: it is shown as failed, with its error,
and a :class:`SectionFailedWarning` is issued.

This module assembles; it measures nothing itself (the areas do) and never plots (the figure
modules do). It is the only place that turns matplotlib Figures into bytes for the page.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import importlib
import io
import json
import math
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from servelab import __version__
from servelab.analysis.budget import Budget
from servelab.analysis.exceptions import StoreNotFoundError
from servelab.analysis.findings import Finding, Verdict
from servelab.analysis.store import MANIFEST_NAME, TraceStore, duckdb_settings, open_store
from servelab.reports.areas import AREAS, Area, get_area
from servelab.reports.areas.base import Section, section_from_evidence
from servelab.reports.html import EmbeddedImage, render_html

__all__ = [
    "DUCKDB_MEMORY_LIMIT",
    "PARALLEL_AREAS",
    "ReportResult",
    "SECTION_WORKER_MIN_REQUESTS",
    "FIGURE_WORKERS",
    "SectionOutcome",
    "SectionFailedWarning",
    "build_report",
    "run_sections",
    "open_or_ingest",
    "encode_figure",
    "report_document",
]

#: figures are rendered at this many pixels per CSS pixel (sharp on high-density screens)
_PIXEL_RATIO = 2
_CSS_DPI = 96
#: figures are sized for paper (7-8 pt text); on screen they are shown this much larger
DISPLAY_SCALE = 1.25
#: DuckDB buffer cap for every connection the sections open (DuckDB's default is 80 % of RAM);
#: with polars and numpy frames beside it the report of a 10 M-row store stays well under 4 GB
DUCKDB_MEMORY_LIMIT = "2GB"
#: areas the report builds in one worker process, in this order, while this process builds
#: the others (:func:`build_report` with ``section_worker=True``): self-contained (they share no
#: arrival frame), and modest in memory (DuckDB aggregates, bounded samples, bounded periods).
#: The heaviest sections (arrivals, clients, conversations: they share arrival frames) stay here.
PARALLEL_AREAS = ("periodicity", "lengths", "generation", "validation")
#: ``section_worker="auto"`` starts the section worker for stores of at least this many requests
#: (below it the worker's own start, about a second of CPU to import servelab, outweighs the gain)
SECTION_WORKER_MIN_REQUESTS = 2_000_000
#: ``figure_worker="auto"`` forks the figure worker for traces of at least this many requests.
#: Below it the report's memory is the binding limit, not its time (issue 16: a sparse 4,244-client
#: 3-week trace of 26,798 requests under 1 GB): there the worker held 140 MB of its own (the
#: report's processes 1,006 MB, its own process 866 MB) to overlap 4.9 CPU-s of encoding 24 figures
#: with the sections. Against main (worker always) in one run (bench_report --before main, load 3-5):
#: that trace 857 MB vs 1,012 MB, wall 0.87x, CPU 0.90x; the shipped sample 440 vs 522 MB, wall 0.95x,
#: CPU 1.01x. Not tuned: the shipped samples and that trace are below it, the 1 M-row store above
FIGURE_WORKER_MIN_REQUESTS = 200_000
#: a raw trace file's requests are estimated before it is ingested as its size over this many
#: bytes (the shipped Azure CSV has 36 bytes a row, a BurstGPT CSV about 50, Mooncake JSONL 285)
_BYTES_PER_ROW_AT_LEAST = 32
#: processes that encode the sections' figures (:class:`_FigureEncoder`). Two would encode the
#: figures of the last sections (which no section is left to overlap) on both cores; not measured
#: on a quiet machine yet, so one
FIGURE_WORKERS = 1


class SectionFailedWarning(RuntimeWarning):
    """A report section raised; the report was still written, with the section marked failed."""


@dataclass(frozen=True)
class SectionOutcome:
    """What one area gave the report.

    Parameters
    ----------
    id, title : str
        The section's id and heading.
    status : str
        ``"ok"`` or ``"error"``.
    section : Section or None
        The built section (None when it failed).
    error : str or None
        ``"ExceptionType: message"`` plus the traceback's last frames, when it failed.
    elapsed_s : float
        Wall time of measuring and arranging the area.
    cpu_s : float
        CPU time (user + system, every thread) of the process that built it, over the same span.
    peak_rss_mb : float or None
        The building process's peak resident memory (its high-water mark) when the section was
        done, in MB: a section that raised it shows the report's peak so far (None where the
        platform does not report it).
    """

    id: str
    title: str
    status: str
    section: Section | None = field(default=None, repr=False)
    error: str | None = None
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float | None = None


@dataclass(frozen=True)
class ReportResult:
    """The written report.

    Parameters
    ----------
    html_path, json_path : Path
        The two files written.
    findings : tuple of Finding
        Every finding of every section, in report order.
    sections : tuple of (id, status) pairs
        Each section and whether it was built (``"ok"``) or failed (``"error"``).
    errors : Mapping[str, str]
        Section id -> error text, for the failed sections.
    notes : tuple of str
        Report-level notes (quick mode, ingest, figures that could not be rendered).
    elapsed_s : float
        Wall time of the whole build.
    built : Mapping[str, Section]
        The sections that were built, by id (their findings, small tables, figures, headline), for
        a notebook to walk through without building them again.
    images : Mapping[str, EmbeddedImage]
        Figure id -> the PNG embedded in the page.
    """

    html_path: Path
    json_path: Path
    findings: tuple[Finding, ...]
    sections: tuple[tuple[str, str], ...]
    errors: Mapping[str, str]
    notes: tuple[str, ...]
    elapsed_s: float
    built: Mapping[str, Section] = field(default_factory=dict, repr=False)
    images: Mapping[str, EmbeddedImage] = field(default_factory=dict, repr=False)

    def section(self, id: str) -> Section:
        """The built section ``id`` (e.g. ``"arrivals"``).

        Raises
        ------
        KeyError
            If no section of that id was built (not asked for, or it failed: see :attr:`errors`).
        """
        try:
            return self.built[id]
        except KeyError:
            why = f" (it failed: {self.errors[id].splitlines()[0]})" if id in self.errors else ""
            raise KeyError(f"section {id!r} was not built{why}; built: {sorted(self.built)}") from None

    def verdict_counts(self) -> dict[str, int]:
        """Number of findings per verdict (every verdict listed, zeros included)."""
        counts = {v.value: 0 for v in Verdict}
        for finding in self.findings:
            counts[finding.verdict.value] += 1
        return counts


def build_report(
    store_or_trace: TraceStore | str | os.PathLike | None = None,
    *,
    output: str | os.PathLike = "report.html",
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    fmt: str = "auto",
    column_map: Any = None,
    sections: tuple[str | Area, ...] | None = None,
    budget: Budget | None = None,
    figure_worker: bool | str = "auto",
    section_worker: bool | str = "auto",
    figures_dir: str | os.PathLike | None = None,
    figure_formats: tuple[str, ...] = ("svg",),
    area_options: Mapping[str, Mapping[str, Any]] | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> ReportResult:
    """Characterize a trace and write the report.

    Parameters
    ----------
    store_or_trace : TraceStore, path or None
        An opened store, a store folder, or a raw trace file (ingested into a temporary store
        with ``fmt``). None: the shipped sample (:func:`servelab.samples.sample_path`).
    output : path-like
        The HTML file to write; the JSON goes beside it with the suffix ``.json``.
    quick : bool
        Shorthand for ``budget=Budget.quick()``: the areas subsample their fits (for very large
        traces); each section says how.
    seed : int
        Seed handed to every section (the same seed gives the same report).
    progress : bool
        Show a progress bar over sections when standard error is a terminal.
    fmt : str
        Ingest format of a raw trace (``"auto"`` sniffs it).
    column_map : path-like or Mapping, optional
        Column map of a raw trace in the ``generic`` format (see :mod:`servelab.analysis.ingest`).
    sections : tuple of (str or Area), optional
        Areas to run, in order, by id or as objects (default: all of
        :data:`servelab.reports.areas.AREAS`).
    budget : Budget, optional
        Sample sizes of every area (default :meth:`Budget.full`, or :meth:`Budget.quick` with
        ``quick``).
    figure_worker : bool or "auto"
        Encode each section's figures in forked worker processes (:data:`FIGURE_WORKERS`) while
        the next section is built (the PNG bytes are the same as encoding them here; where
        ``fork`` is not available, or with False, they are encoded in this process after the
        sections). ``"auto"`` (the default) forks the worker for traces of at least
        :data:`FIGURE_WORKER_MIN_REQUESTS` requests (a store's count; a raw trace file's
        estimated from its size), where the overlap shortens the report; a smaller trace's
        figures are encoded here, which keeps the worker's memory out of the report's.
    section_worker : bool or "auto"
        Build the sections of :data:`PARALLEL_AREAS` in one worker process (a fresh Python
        process, started before the first section) while this process builds the others (2 cores
        work at once; every section computes what it computes in this process, with the same
        seed). With another engine than DuckDB, a store without a folder, or False, every section
        is built here, in order. ``"auto"`` (the default) uses the worker for stores of at least
        :data:`SECTION_WORKER_MIN_REQUESTS` requests on a machine with 2 or more cores: the full
        report of the 10 M-row synthetic store took 56.5 s with it against 65.5 s without (one
        interleaved pair, load 3-5; the main process alone used 63 CPU-s in 65 s without it), while
        on a shared machine (load 7-11) a 1 M-row report took 1.08x the wall time and 1.14x the CPU
        time with it (the worker imports servelab again). The worker's peak memory (817 MB at
        10 M) comes beside this process'.
    figures_dir : path-like, optional
        Also save every drawn figure here as ``<figure id>.<format>`` (e.g.
        ``servegen.fig1.svg``), for papers and slides; the page itself always embeds PNGs.
    figure_formats : tuple of {"png", "svg", "pdf"}
        Formats written to ``figures_dir`` (default SVG).
    area_options : Mapping, optional
        Area id -> keyword options of that area's ``measure`` (e.g.
        ``{"conversations": {"linking": LinkOptions(min_shared_blocks=2)}}``).
    engine : {"duckdb", "spark"}
        Where the sections that aggregate in SQL run it (those whose area has
        ``runs_on_engine``: overview, generation); the others run locally and say so in their
        notes (see :func:`run_sections`).
    spark_master : str, optional
        Spark master URL for engine ``spark`` (``local[2]`` by default, ``spark://host:7077``,
        ``sc://host:15002``).

    Returns
    -------
    ReportResult

    Raises
    ------
    StoreNotFoundError, TraceFormatError, FileNotFoundError
        When the trace cannot be opened or ingested (nothing is written then).
    ValueError
        If a figure format is not one of png, svg, pdf, both ``quick`` and ``budget`` are given, or
        ``section_worker`` or ``figure_worker`` is not True, False or ``"auto"``.
    KeyError
        If a section id names no area (the message lists the known ones).
    """
    from servelab.figures.style import SAVE_FORMATS

    figure_formats = (figure_formats,) if isinstance(figure_formats, str) else tuple(figure_formats)
    bad = [f for f in figure_formats if f not in SAVE_FORMATS]
    if bad or not figure_formats:
        raise ValueError(f"figure_formats must be a non-empty subset of {SAVE_FORMATS}; got {figure_formats!r}")
    if budget is not None and quick:
        raise ValueError(f"give quick=True or a budget, not both; got quick=True and budget={budget!r}")
    budget = budget if budget is not None else (Budget.quick() if quick else Budget.full())
    _check_engine_choice(engine, spark_master)
    areas = _resolve_areas(sections)
    started = time.perf_counter()
    output = Path(output)
    json_path = output.with_suffix(".json")
    notes: list[str] = []
    show = progress and _is_terminal(sys.stderr)
    if section_worker not in (True, False, "auto"):
        raise ValueError(f"section_worker must be True, False or 'auto'; got {section_worker!r}")
    if figure_worker not in (True, False, "auto"):
        raise ValueError(f"figure_worker must be True, False or 'auto'; got {figure_worker!r}")
    if figure_worker == "auto":
        figure_worker = _requests_hint(store_or_trace) >= FIGURE_WORKER_MIN_REQUESTS
    parallel = section_worker if engine == "duckdb" and any(a.id in PARALLEL_AREAS for a in areas) else False
    with _SectionWorker(worker=parallel) as worker, _FigureEncoder(worker=figure_worker) as encoder, \
            duckdb_settings(memory_limit=DUCKDB_MEMORY_LIMIT), \
            open_or_ingest(store_or_trace, fmt=fmt, column_map=column_map, notes=notes, progress=show) as (store, source):
        outcomes = run_sections(store, budget=budget, seed=seed, progress=progress, areas=areas, notes=notes,
                                area_options=area_options, engine=engine, spark_master=spark_master,
                                on_done=encoder.submit, section_worker=worker)
        images, figure_meta = _render_figures(outcomes, notes, encoder=encoder)
        if not budget.is_full:
            notes.append(f"{budget.label.capitalize()} mode: sections subsample the data they fit; each section's "
                         "notes say how much.")
        document = report_document(
            store, source, outcomes, figure_meta, notes=notes, budget=budget, seed=seed,
            elapsed_s=time.perf_counter() - started,
        )
    if figures_dir is not None:
        _save_figures(outcomes, Path(figures_dir), figure_formats, document["notes"])
    page = render_html(document, images)
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(json_path, json.dumps(document, indent=2, default=_json_default, allow_nan=False) + "\n")
    _write_atomic(output, page)
    findings = tuple(f for o in outcomes if o.section is not None for f in o.section.findings)
    return ReportResult(
        html_path=output,
        json_path=json_path,
        findings=findings,
        sections=tuple((o.id, o.status) for o in outcomes),
        errors=MappingProxyType({o.id: o.error or "" for o in outcomes if o.status == "error"}),
        notes=tuple(document["notes"]),
        elapsed_s=time.perf_counter() - started,
        built=MappingProxyType({o.id: o.section for o in outcomes if o.section is not None}),
        images=MappingProxyType(images),
    )


@contextlib.contextmanager
def open_or_ingest(
    store_or_trace: TraceStore | str | os.PathLike | None,
    *,
    fmt: str = "auto",
    column_map: Any = None,
    notes: list[str] | None = None,
    progress: bool | None = None,
) -> Iterator[tuple[TraceStore, str]]:
    """Yield ``(store, source description)``; a raw trace is ingested into a temporary store.

    The temporary store is deleted when the block ends.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    StoreNotFoundError
        If ``fmt`` is ``"store"`` and the folder has no manifest.
    """
    notes = notes if notes is not None else []
    if isinstance(store_or_trace, TraceStore):
        yield store_or_trace, _describe_store(store_or_trace)
        return
    if store_or_trace is None:
        from servelab.samples import sample_path

        path = sample_path()
    else:
        path = Path(store_or_trace)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        store = open_store(path)
        yield store, str(path)
        return
    if not path.exists() and not any(ch in str(path) for ch in "*?["):
        raise FileNotFoundError(f"store_or_trace: {str(path)!r} does not exist; give a trace store folder or a raw "
                                "trace file (CSV, JSONL, Parquet)")
    if path.is_dir():
        raise StoreNotFoundError(f"store_or_trace: {str(path)!r} is a folder without {MANIFEST_NAME}, so not a trace "
                                 "store; give a store made by `servelab ingest` or a raw trace file")
    with tempfile.TemporaryDirectory(prefix="servelab-report-") as tmp:
        store = _ingest(path, Path(tmp) / "store", fmt=fmt, column_map=column_map, progress=progress)
        notes.append(f"Ingested {path.name} (format {store.manifest.get('format', fmt)!s}) into a temporary store; "
                     f"run `servelab ingest` once to keep a store and report on it faster.")
        yield store, str(path)


def _requests_hint(store_or_trace: TraceStore | str | os.PathLike | None) -> int:
    """The requests of the report's trace as known before it is opened (:func:`build_report`
    forks its figure worker first): a store's count from its manifest; a raw trace file's size over
    :data:`_BYTES_PER_ROW_AT_LEAST` (an overestimate); 0 when neither can be read."""
    try:
        if isinstance(store_or_trace, TraceStore):
            return int(store_or_trace.n_requests)
        if store_or_trace is None:
            from servelab.samples import sample_path

            path = sample_path()
        else:
            path = Path(store_or_trace)
        if path.is_dir() and (path / MANIFEST_NAME).is_file():
            return int(json.loads((path / MANIFEST_NAME).read_text())["rows"]["stored"])
        if path.is_file():
            return path.stat().st_size // _BYTES_PER_ROW_AT_LEAST
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return 0


def _resolve_areas(sections: tuple[str | Area, ...] | None) -> tuple[Area, ...]:
    if sections is None:
        return AREAS
    if isinstance(sections, (str, Area)):
        sections = (sections,)
    return tuple(get_area(s) if isinstance(s, str) else s for s in sections)


def run_sections(
    store: TraceStore,
    *,
    budget: Budget | None = None,
    seed: int = 0,
    progress: bool = True,
    areas: tuple[str | Area, ...] | None = None,
    notes: list[str] | None = None,
    on_done: Callable[[SectionOutcome], None] | None = None,
    area_options: Mapping[str, Mapping[str, Any]] | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
    section_worker: _SectionWorker | None = None,
) -> list[SectionOutcome]:
    """Build the section of every area (default :data:`~servelab.reports.areas.AREAS`); a failing
    one becomes a ``status="error"`` outcome.

    ``on_done`` is called with each outcome as soon as its section is built (the report uses it
    to start encoding that section's figures). ``notes`` is accepted for the report's notes list
    (areas add nothing to it today).

    ``engine`` other than ``"duckdb"`` (with ``spark_master``) goes to the ``measure`` of every
    area with ``runs_on_engine``; every other section runs locally and gets a note saying so.

    ``section_worker`` (made by :func:`build_report`) builds the areas of :data:`PARALLEL_AREAS`
    in its own process, started before the first section; their outcomes take their place in
    report order. Areas that read arrival frames share them (``shares_arrival_frames``, see
    :func:`servelab.analysis.arrivals.shared_arrival_frames`).

    Raises
    ------
    KeyError
        If an id in ``areas`` names no area.
    """
    from tqdm.auto import tqdm

    budget = Budget.full() if budget is None else budget
    _check_engine_choice(engine, spark_master)
    chosen = _resolve_areas(areas)
    outcomes: list[SectionOutcome] = []
    remote: dict[str, str] = {}
    if section_worker is not None and engine == "duckdb":
        remote = section_worker.start([(a.id, store, budget, seed, dict((area_options or {}).get(a.id, {})))
                                       for a in chosen if a.id in PARALLEL_AREAS and a is get_area(a.id)])
    show = progress and _is_terminal(sys.stderr)
    bar = tqdm(chosen, desc="report", unit="section", disable=not show, leave=False, file=sys.stderr)
    # the arrival frames (requests in arrival order with their predecessors) are read and sorted once
    # for every area that declares ``shares_arrival_frames`` and released after the last of them
    frames = contextlib.ExitStack()
    last_sharing = max((i for i, a in enumerate(chosen) if getattr(a, "shares_arrival_frames", False)), default=-1)
    if last_sharing >= 0:
        from servelab.analysis.arrivals import shared_arrival_frames
        from servelab.reports.sampling import shared_budget_spans

        # one leading-span subset per report for the areas measuring Budget.max_requests' span,
        # deleted after the frames read from it (the stack closes in reverse)
        frames.enter_context(shared_budget_spans())
        frames.enter_context(shared_arrival_frames())
    try:
        for i, area in enumerate(bar):
            bar.set_postfix_str(area.id)
            options = dict((area_options or {}).get(area.id, {}))
            local = engine != "duckdb" and not getattr(area, "runs_on_engine", False)
            if engine != "duckdb" and not local:
                options.update(engine=engine, spark_master=spark_master)
            outcome = (section_worker.result(remote[area.id], area) if area.id in remote else None) or \
                _run_one(area, store, budget=budget, seed=seed, options=options)
            if local and outcome.section is not None:
                note = (f"Ran locally (DuckDB and polars in this process): this section does not aggregate on "
                        f"engine {engine}.")
                outcome = dataclasses.replace(outcome, section=dataclasses.replace(
                    outcome.section, notes=(*outcome.section.notes, note)))
            outcomes.append(outcome)
            if i == last_sharing:
                frames.close()
            if on_done is not None:
                on_done(outcomes[-1])
    finally:
        frames.close()
    bar.close()
    return outcomes


def _check_engine_choice(engine: str, spark_master: str | None) -> None:
    from servelab.analysis.engines import check_engine, check_master

    check_engine(engine)
    if spark_master is not None:
        if engine != "spark":
            raise ValueError(f"spark_master is for engine 'spark'; got spark_master={spark_master!r} with engine "
                             f"{engine!r}")
        check_master(spark_master)


def _run_one(area: Area, store: TraceStore, *, budget: Budget, seed: int,
             options: Mapping[str, Any] | None = None) -> SectionOutcome:
    started, cpu = time.perf_counter(), time.process_time()
    try:
        section = section_from_evidence(area, area.measure(store, budget=budget, seed=seed, **(options or {})))
    except Exception as err:  # noqa: BLE001 - a failing section must not sink the report
        frames = traceback.format_exception(err)
        text = f"{type(err).__name__}: {err}\n" + "".join(frames[-4:])
        warnings.warn(f"report section {area.id!r} failed ({type(err).__name__}: {err}); the report marks it failed",
                      SectionFailedWarning, stacklevel=3)
        return SectionOutcome(id=area.id, title=area.title, status="error", error=text,
                              elapsed_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu,
                              peak_rss_mb=_peak_rss_mb())
    return SectionOutcome(id=area.id, title=area.title, status="ok", section=section,
                          elapsed_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu,
                          peak_rss_mb=_peak_rss_mb())


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory so far in MB (None without the ``resource`` module)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _read_only(mapping: dict) -> MappingProxyType:
    """A read-only view of ``mapping`` (how a pickled section's mappings are restored)."""
    return MappingProxyType(mapping)


def _pickled_outcome(outcome: SectionOutcome) -> bytes:
    """``outcome`` pickled, its read-only mappings (sections, findings) as plain dicts restored as
    read-only mappings by :func:`_read_only`."""
    import copyreg
    import pickle

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[MappingProxyType] = lambda m: (_read_only, (dict(m),))
    pickler.dump(outcome)
    return buffer.getvalue()


def _section_worker_main(parent: int | None = None) -> None:
    """The section worker process (:class:`_SectionWorker`): read the jobs (pickled) from standard
    input, build each section in order and write its outcome to the job's file (atomically).

    It exits as soon as it is no longer the child of ``parent`` (the report's process id; default
    its parent at start): a report process that is killed (SIGTERM) cannot stop its worker, which
    kept building its sections without it (seen at 10 M rows)."""
    import pickle
    import threading

    parent = os.getppid() if parent is None else int(parent)

    def exit_when_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=exit_when_orphaned, daemon=True, name="servelab-orphan-watch").start()
    jobs = pickle.load(sys.stdin.buffer)
    warnings.simplefilter("ignore", SectionFailedWarning)  # the parent warns for a failed section
    for area_id, store_path, budget, seed, options, memory_limit, target in jobs:
        with duckdb_settings(memory_limit=memory_limit):
            outcome = _run_one(get_area(area_id), open_store(store_path), budget=budget, seed=seed, options=options)
        Path(target + ".tmp").write_bytes(_pickled_outcome(outcome))
        os.replace(target + ".tmp", target)


class _SectionWorker:
    """Builds sections in one worker process while this process builds the others.

    The worker is a fresh Python process (``python -c``, the same interpreter and import path),
    not a fork: a process forked after polars or DuckDB started their thread pools can hang in
    them. It imports servelab itself (about a second of CPU, beside this process's work), takes the
    jobs of :meth:`start` and builds them in order; each outcome comes back through a file.
    A section the worker cannot deliver (it failed to start or died) is built in this process
    when its turn comes, so the report has the same sections either way.
    """

    def __init__(self, *, worker: bool | str = True) -> None:
        if worker not in (True, False, "auto"):
            raise ValueError(f"section_worker must be True, False or 'auto'; got {worker!r}")
        self._enabled = worker
        self._proc = None
        self._tmp = None

    def __enter__(self) -> _SectionWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def start(self, jobs: list[tuple[str, TraceStore, Budget, int, Mapping[str, Any]]]) -> dict[str, str]:
        """Start building ``jobs`` ((area id, store, budget, seed, options), in order); area id ->
        the handle :meth:`result` takes (empty without a worker or for a store without a folder)."""
        import pickle
        import subprocess

        from servelab.analysis.store import duckdb_config

        if not self._enabled or self._proc is not None:
            return {}
        jobs = [j for j in jobs if isinstance(j[1], TraceStore) and j[1].path is not None]
        if self._enabled == "auto":
            jobs = [j for j in jobs if (os.cpu_count() or 1) >= 2 and j[1].n_requests >= SECTION_WORKER_MIN_REQUESTS]
        if not jobs:
            return {}
        self._tmp = tempfile.TemporaryDirectory(prefix="servelab-sections-")
        limit = duckdb_config().get("memory_limit") or DUCKDB_MEMORY_LIMIT
        payload = [(area_id, str(store.path), budget, seed, dict(options), limit,
                    str(Path(self._tmp.name) / f"{i}.pkl")) for i, (area_id, store, budget, seed, options) in enumerate(jobs)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        try:
            data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc = subprocess.Popen(
                [sys.executable, "-c", "from servelab.reports.builder import _section_worker_main; "
                                 f"_section_worker_main(parent={os.getpid()})"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            self._proc.stdin.write(data)
            self._proc.stdin.close()
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
            return {}
        return {job[0]: job[-1] for job in payload}

    def result(self, handle: str, area: Area) -> SectionOutcome | None:
        """The outcome the worker built (None when it cannot deliver it: build it here)."""
        import pickle

        target = Path(handle)
        while not target.exists():
            if self._proc is None or self._proc.poll() is not None:
                if not target.exists():
                    return None
                break
            time.sleep(0.05)
        try:
            outcome = pickle.loads(target.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
            return None
        if outcome.status == "error":
            warnings.warn(f"report section {area.id!r} failed ({outcome.error.splitlines()[0]}); the report marks it "
                          "failed", SectionFailedWarning, stacklevel=3)
        return outcome


def encode_figure(fig: Any) -> EmbeddedImage:
    """A matplotlib Figure as a base64 PNG for the page (rendered at 96 x 2 dpi, shown 1.25x larger).

    Raises
    ------
    TypeError
        If ``fig`` has no ``savefig`` (is not a matplotlib Figure).
    """
    if not hasattr(fig, "savefig"):
        raise TypeError(f"figure must be a matplotlib Figure; got {type(fig).__name__}")
    from servelab.figures.style import layout_caches, paper_style

    buffer = io.BytesIO()
    with paper_style(), layout_caches(fig):
        fig.savefig(buffer, format="png", dpi=_CSS_DPI * _PIXEL_RATIO, bbox_inches="tight")
    data = buffer.getvalue()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return EmbeddedImage(
        mime="image/png",
        base64=base64.b64encode(data).decode("ascii"),
        width_px=max(1, round(width * DISPLAY_SCALE / _PIXEL_RATIO)),
        height_px=max(1, round(height * DISPLAY_SCALE / _PIXEL_RATIO)),
    )


def _encode_pickled(blob: bytes) -> EmbeddedImage:
    """Worker side of :class:`_FigureEncoder`: unpickle a Figure and encode it."""
    import pickle

    return encode_figure(pickle.loads(blob))


class _FigureEncoder:
    """Encodes figures in forked worker processes (:data:`FIGURE_WORKERS`), overlapping the next section's work.

    Figures are pickled here and encoded there by :func:`encode_figure`, so the bytes are the
    same as in-process encoding. The worker is forked when the encoder is made (before any
    section has started DuckDB or polars threads). Anything that cannot go through the worker
    (no ``fork``, a figure that does not pickle, a broken worker) is encoded in this process.
    """

    def __init__(self, *, worker: bool = True) -> None:
        import multiprocessing

        self._futures: dict[tuple[str, str], Any] = {}
        self._pool = None
        if worker and "fork" in multiprocessing.get_all_start_methods():
            from concurrent.futures import ProcessPoolExecutor

            import servelab.figures.style  # noqa: F401 - matplotlib and seaborn loaded once, before the fork

            workers = max(1, min(FIGURE_WORKERS, os.cpu_count() or 1))
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
            # fork the workers now, while this process runs no other threads (a fork pool starts all its
            # processes at the first submit)
            self._pool.submit(int).result()

    def __enter__(self) -> _FigureEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, outcome: SectionOutcome) -> None:
        """Start encoding the figures of a built section (no-op without a worker)."""
        if self._pool is None or outcome.section is None:
            return
        import pickle

        for fig_id, fig in outcome.section.figures.items():
            try:
                blob = pickle.dumps(fig)
            except Exception:  # noqa: BLE001 - such a figure is encoded in this process
                continue
            try:
                self._futures[(outcome.id, fig_id)] = self._pool.submit(_encode_pickled, blob)
            except RuntimeError:  # the pool broke or shut down: encode the rest here
                self._pool = None
                return

    def result(self, section_id: str, fig_id: str, fig: Any) -> EmbeddedImage:
        """The encoded figure: from the worker when it was sent there, else encoded here."""
        future = self._futures.pop((section_id, fig_id), None)
        if future is not None:
            from concurrent.futures.process import BrokenProcessPool

            try:
                return future.result()
            except BrokenProcessPool:
                pass
        return encode_figure(fig)


def _render_figures(outcomes: list[SectionOutcome], notes: list[str],
                    encoder: _FigureEncoder | None = None) -> tuple[dict, dict]:
    """Encode every section figure (or collect what ``encoder`` encoded); a figure that fails to
    render is dropped with a note."""
    from servelab.figures.registry import figure_specs

    try:
        specs = figure_specs()
    except Exception as err:  # noqa: BLE001 - an area module that fails to import must not sink the report
        notes.append(f"The figure registry could not load every figure module ({type(err).__name__}: {err}); "
                     "captions may lack titles.")
        from servelab.figures import registry

        specs = dict(registry._FIGURES)
    images: dict[str, EmbeddedImage] = {}
    meta: dict[str, list[dict]] = {}
    for outcome in outcomes:
        if outcome.section is None:
            continue
        entries = []
        for fig_id, fig in outcome.section.figures.items():
            try:
                images[fig_id] = encoder.result(outcome.id, fig_id, fig) if encoder is not None else encode_figure(fig)
            except Exception as err:  # noqa: BLE001
                notes.append(f"Figure {fig_id} of section {outcome.id} could not be rendered: "
                             f"{type(err).__name__}: {err}")
                continue
            spec = specs.get(fig_id)
            entries.append({
                "id": fig_id,
                "title": spec.title if spec else fig_id,
                "paper_figure": spec.paper_figure if spec else "",
            })
        meta[outcome.id] = entries
    return images, meta


def _save_figures(outcomes: list[SectionOutcome], folder: Path, formats: tuple[str, ...], notes: list[str]) -> None:
    """Save every drawn figure as ``folder/<figure id>.<format>``; a figure that fails is a note."""
    from servelab.figures.style import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    for outcome in outcomes:
        if outcome.section is None:
            continue
        for fig_id, fig in outcome.section.figures.items():
            try:
                save_figure(fig, folder / f"{fig_id}.{formats[0]}", formats=formats)
            except Exception as err:  # noqa: BLE001 - one figure must not sink the report
                notes.append(f"Figure {fig_id} could not be saved to {folder}: {type(err).__name__}: {err}")


def report_document(
    store: TraceStore,
    source: str,
    outcomes: list[SectionOutcome],
    figure_meta: Mapping[str, list[dict]],
    *,
    notes: list[str],
    budget: Budget,
    seed: int,
    elapsed_s: float,
) -> dict[str, Any]:
    """The report as a JSON-ready dictionary (what ``report.json`` holds and the page shows)."""
    findings: list[dict] = []
    sections: list[dict] = []
    headline: dict[str, dict] = {}
    trace: dict[str, Any] = {}
    for outcome in outcomes:
        section = outcome.section
        entry: dict[str, Any] = {
            "id": outcome.id,
            "title": outcome.title,
            "status": outcome.status,
            "error": outcome.error,
            "elapsed_s": round(outcome.elapsed_s, 3),
            "cpu_s": round(outcome.cpu_s, 3),
            "peak_rss_mb": round(outcome.peak_rss_mb, 1) if outcome.peak_rss_mb is not None else None,
            "notes": list(section.notes) if section else [],
            "headline": {k: _scalar(v) for k, v in section.headline.items()} if section else {},
            "findings": [f.id for f in section.findings] if section else [],
            "figures": list(figure_meta.get(outcome.id, [])),
            "tables": {name: _table_dict(t) for name, t in section.tables.items()} if section else {},
        }
        sections.append(entry)
        if section is None:
            continue
        # checked findings first, then the not-applicable ones (the order the page shows them in)
        ordered = sorted(section.findings, key=lambda f: f.verdict is Verdict.NOT_APPLICABLE)
        entry["findings"] = [f.id for f in ordered]
        for finding in ordered:
            record = finding.to_dict()
            record["section"] = outcome.id
            findings.append(record)
            if finding.verdict is Verdict.NOT_APPLICABLE and not finding.reason.strip():
                notes.append(f"Finding {finding.id} ({outcome.id}) is not applicable but its section gave no reason.")
        if outcome.id == "overview":
            trace = dict(entry["headline"])
        elif entry["headline"]:
            headline[outcome.id] = {"_title": outcome.title, **entry["headline"]}
    if not trace:
        trace = {"requests": store.n_requests}
    counts = {v.value: 0 for v in Verdict}
    for record in findings:
        counts[record["verdict"]] += 1
    return {
        "servelab_version": __version__,
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "source_name": Path(source).name or source,
        "store_format": store.manifest.get("format"),
        "quick": not budget.is_full,
        "budget": dataclasses.asdict(budget),
        "seed": int(seed),
        "elapsed_s": round(elapsed_s, 3),
        "summary": {"trace": trace, "headline": headline, "verdicts": counts},
        "sections": sections,
        "findings": findings,
        "notes": list(notes),
    }


def _table_dict(frame: Any) -> dict[str, Any]:
    """A small polars table as ``{"columns": [...], "rows": [[...], ...]}`` with JSON scalars."""
    columns = list(frame.columns)
    rows = [[_scalar(v) for v in row] for row in frame.iter_rows()]
    return {"columns": columns, "rows": rows}


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:  # numpy scalars
        import numpy as np

        if isinstance(value, np.generic):
            return _scalar(value.item())
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _json_default(value: Any) -> Any:
    return _scalar(value)


def _describe_store(store: TraceStore) -> str:
    return str(store.path)


def _ingest(path: Path, out: Path, *, fmt: str, column_map: Any = None, progress: bool | None = None) -> TraceStore:
    """Ingest ``path`` into a new store at ``out`` with :mod:`servelab.analysis.ingest`."""
    try:
        ingest_module = importlib.import_module("servelab.analysis.ingest")
    except ImportError as err:  # pragma: no cover - only before the ingest layer exists
        raise ImportError(
            f"cannot ingest {str(path)!r}: servelab.analysis.ingest is not available ({err}); "
            "give an existing trace store instead"
        ) from err
    return ingest_module.ingest([str(path)], fmt=fmt, output=out, column_map=column_map, progress=progress)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)

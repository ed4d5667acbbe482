"""Engine choice on the command line (issue 21): ``--engine`` / ``--spark-master`` on fit-pool and report.

The pool of ``fit-pool --engine spark`` must equal the pool of ``--engine duckdb`` (same seed) on
every shipped sample: the three raw traces of ``raw_traces/`` and a workload generated from the
shipped ServeGen pool (``raw_traces/servegen/m-small``: a pool, not a trace, so it is generated
once, seeded, and stored). Keys and counts exactly, floats within 1e-9 relative (see
``test_engines._assert_same_pool``). Spark runs in local mode; the tests are marked ``spark`` and
skip without pyspark and Java. The error paths need no Spark.
"""
from __future__ import annotations

import warnings

import pytest
from click.testing import CliRunner

from servelab.analysis.engines import check_master
from servelab.cli import main
from servelab.samples import RAW_TRACES


SAMPLES = {
    "burstgpt": RAW_TRACES / "burstgpt" / "BurstGPT_1_head54.csv",
    "azure": RAW_TRACES / "azure_2023" / "AzureLLMInferenceTrace_code.csv",
    "mooncake": RAW_TRACES / "mooncake" / "synthetic_trace.jsonl",
    "servegen": RAW_TRACES / "servegen" / "m-small",
}


def _store(name: str, tmp_path, shipped: dict):
    """The store of shipped sample ``name`` (``shipped``: the session's ingested raw traces; ServeGen:
    20 minutes generated from the pool, seed 11)."""
    from servelab.analysis.store import write_store

    if name != "servegen":
        return shipped[name]
    from servelab.generator import MissingDatasetWarning, read_servegen
    from servelab.generator.generate import generate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDatasetWarning)
        pool = read_servegen(SAMPLES[name])
    frame = generate(pool, "pool", 1200.0, seed=11, conversations=False)
    return write_store(frame, tmp_path / name)


def test_master_urls():
    for url in ("local", "local[2]", "local[*]", "local[4,2]", "spark://127.0.0.1:7077", "sc://localhost:15002",
                "yarn", "k8s://https://host:6443"):
        assert check_master(url) == url
    assert check_master(None) == "local[2]"
    for bad in ("", "local[0]", "local[x]", "http://host:7077", "spark://", 7077):
        with pytest.raises(ValueError, match=r"master must be a Spark master URL \(.*\); got "):
            check_master(bad)


def test_report_engine_errors(tmp_path):
    out = tmp_path / "r.html"
    sample = str(SAMPLES["burstgpt"])
    result = CliRunner().invoke(main, ["report", sample, "-o", str(out), "--engine", "postgres"])
    assert result.exit_code == 2 and "'postgres' is not one of 'duckdb', 'spark'" in result.output
    result = CliRunner().invoke(main, ["report", sample, "-o", str(out), "--spark-master", "local[2]"])
    assert result.exit_code == 1 and "spark_master is for engine 'spark'" in result.output
    result = CliRunner().invoke(main, ["report", sample, "-o", str(out), "--engine", "spark",
                                       "--spark-master", "http://x"])
    assert result.exit_code == 1 and "master must be a Spark master URL" in result.output
    assert not out.exists()


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_fit_pool_cli_same_pool_on_every_sample(tmp_path, sample, spark_local, shipped_stores):
    from servelab.generator.pool import ClientPool
    from test_engines import _assert_same_pool, _pool_frames

    store = _store(sample, tmp_path, shipped_stores)
    pools = []
    for k, extra in enumerate((("--engine", "duckdb"), ("--engine", "spark", "--spark-master", "local[2]"))):
        out = tmp_path / f"pool{k}"
        result = CliRunner().invoke(main, ["fit-pool", str(store.path), "-o", str(out), "--seed", "5",
                                           "--window", "5m", "--data-window", "1h", *extra])
        assert result.exit_code == 0, result.output
        pools.append(_pool_frames(ClientPool.load(out)))
    duck, spark = pools
    assert duck["arrivals"].height > 0  # not vacuous: active windows were fitted
    _assert_same_pool(sample, duck, spark)
    if sample == "mooncake":  # inferred conversations and prefix blocks (the request -> client frame on the engine)
        assert duck["prefixes"].height > 0
        # and the arrival model itself identical to the last bit (counts, rates, CVs, families)
        assert duck["arrivals"].equals(spark["arrivals"]) and duck["data"].equals(spark["data"])


@pytest.mark.spark
@pytest.mark.slow
def test_report_on_spark_same_numbers_and_says_where_each_section_ran(tmp_path, spark_local, monkeypatch):
    import servelab.fitting.pool_fit as pool_fit
    from servelab.analysis.store import write_store
    from servelab.analysis.budget import Budget
    from servelab.reports.builder import build_report, run_sections
    from test_engines import _assert_same, _assert_same_pool, _pool_frames, _synthetic_frame

    # the synthetic store of test_engines: 2 h, clients, conversations and tokens (the shipped traces
    # have no client ids, so their generation section is not applicable)
    store = write_store(_synthetic_frame(), tmp_path / "synthetic")
    # the generation section's pools (a stable and a variable period, each fitted on the report's
    # engine) are recorded: fit_pool on either engine must give the same pool (same seed)
    pools: dict[str, list[dict]] = {"duckdb": [], "spark": []}
    real_fit = pool_fit.fit_pool

    def recording_fit(source, *args, engine="duckdb", **kwargs):
        pool = real_fit(source, *args, engine=engine, **kwargs)
        frames = _pool_frames(pool)  # the period's temporary store is in another folder on each run
        frames["provenance"]["source"] = {k: v for k, v in frames["provenance"]["source"].items() if k != "path"}
        pools[engine].append(frames)
        return pool

    monkeypatch.setattr(pool_fit, "fit_pool", recording_fit)
    sections = ("overview", "clients", "generation")
    # DuckDB's sections are measured without drawing figures or writing a page (run_sections, which
    # build_report runs; 2.1 against 5.4 CPU-s here): the report on Spark is the real command path
    duck = {o.id: o for o in run_sections(store, budget=Budget.quick(), seed=2, progress=False, areas=sections)}
    spark = build_report(store, output=tmp_path / "s.html", engine="spark", spark_master="local[2]", quick=True,
                         seed=2, progress=False, figure_worker=False, sections=sections)
    assert spark.html_path.is_file() and spark.html_path.stat().st_size > 0
    assert len(pools["duckdb"]) == len(pools["spark"]) == 2
    for k, (d_pool, s_pool) in enumerate(zip(pools["duckdb"], pools["spark"])):
        _assert_same_pool(f"generation period {k}", d_pool, s_pool)
        # not vacuous: fitted arrivals and lengths, and conversations (their SQL on Spark too)
        assert d_pool["arrivals"].height > 0 and d_pool["data_fits"].height > 0
        assert d_pool["conversations"].height > 0
    assert {k: o.status for k, o in duck.items()} == dict(spark.sections) == {
        "overview": "ok", "clients": "ok", "generation": "ok"}
    d, s = {k: o.section for k, o in duck.items()}, spark.built
    assert dict(d["overview"].headline) == dict(s["overview"].headline)
    assert s["overview"].headline["requests"] == 6000 and s["overview"].headline["clients"] == 4
    tables = d["generation"].tables
    assert tables.keys() == s["generation"].tables.keys() and tables  # the stable and variable periods' compare tables
    for name, table in tables.items():  # the same pools give the same generated workloads and distances
        _assert_same(f"generation.{name}", table, s["generation"].tables[name])
    assert any("ran on engine spark (master local[2])" in n for n in s["overview"].notes)
    assert any("pool fits' aggregation SQL ran on engine spark" in n for n in s["generation"].notes)
    assert any(n.startswith("Ran locally") for n in s["clients"].notes)
    assert not any("engine" in n for sec in d.values() for n in sec.notes)

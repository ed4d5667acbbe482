"""Every command with bad arguments: no traceback, one line naming the bad option or file (issue 18, item 6).

Each case runs ``servelab`` through click's runner (exceptions caught) on inputs built in a
temporary folder (a small store, the shipped ServeGen pool ``raw_traces/servegen/m-small``, broken
copies of a small ServeGen pool, bad rate files) and is checked twice:

- :func:`test_no_traceback`: the run ends in ``SystemExit`` (never another exception), prints no
  traceback, and a failure is either click's usage format (exit 2, ``Usage:`` and ``Error:``) or the
  CLI-wide handler's one line ``servelab <command>: error: ...`` (exit 1). Every case must pass.
- :func:`test_names_the_bad_input`: the run fails (exit code != 0), is not an "unexpected error",
  and its output matches the case's pattern, which names the bad option, value or file. Cases
  whose message is unhelpful today because validation is missing in a module another engineer
  owns are ``xfail(strict=True)`` with the exact message seen: once that validation lands they
  XPASS, the strict mark fails, and the mark is removed.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner, Result

from servelab.analysis.store import write_store
from servelab.cli import main
from servelab.samples import RAW_TRACES

AZURE = RAW_TRACES / "azure_2023/AzureLLMInferenceTrace_code.csv"
M_SMALL = RAW_TRACES / "servegen/m-small"

RATE_FILES = {
    "negative": "time_s,rate\n0,1\n60,-2\n",
    "nan": "time_s,rate\n0,nan\n60,1\n",
    "header_only": "time_s,rate\n",
    "text": "time_s,rate\n0,fast\n60,slow\n",
    "duplicate_times": "time_s,rate\n0,1\n0,2\n60,1\n",
    "all_zero": "time_s,rate\n0,0\n60,0\n",
    "no_rate_column": "a,b\n0,1\n",
    "empty": "",
}

#: ServeGen pools of one client and three 600 s windows; the middle window (or the PMF) is broken
BROKEN_POOLS = {
    "ok": {},
    "negative_rate": {"rate": "-1"},
    "nan_rate": {"rate": "nan"},
    "infinite_rate": {"rate": "inf"},
    "negative_cv": {"cv": "-2"},
    "negative_shape": {"shape": "-1"},
    "negative_probability": {"pmf": "{10: -0.5, 20: 1.5}"},
    "probabilities_sum_to_0_4": {"pmf": "{10: 0.2, 20: 0.2}"},
    "non_string_pmf": {"pmf": 5},
    "unreadable_trace": {"trace": "garbage\n\x00\x01"},
    "broken_json": {"dataset": "{not json"},
}


def _servegen_pool(path: Path, *, rate="1.0", cv="1.0", shape="1.0", pmf="{10: 0.5, 20: 0.5}", trace=None,
                   dataset=None) -> Path:
    path.mkdir()
    rows = [f"0,1.0,1.0,Gamma,1.0,1.0", f"600,{rate},{cv},Gamma,{shape},1.0", "1200,1.0,1.0,Gamma,1.0,1.0"]
    (path / "chunk-0-trace.csv").write_text(trace if trace is not None else "\n".join(rows) + "\n")
    data = {"0": {"input_tokens": pmf, "output_tokens": "{5: 1.0}"}}
    (path / "chunk-0-dataset.json").write_text(dataset if dataset is not None else json.dumps(data))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Paths of every input the cases name, as strings (``{name}`` placeholders of the cases)."""
    root = tmp_path_factory.mktemp("bad_arguments")
    rng = np.random.default_rng(18)
    n = 400
    store = root / "store"
    write_store(pl.DataFrame({
        "timestamp": np.cumsum(rng.exponential(1.0, n)),
        "client_id": rng.choice(["a", "b", "c"], n),
        "input_tokens": rng.integers(1, 500, n),
        "output_tokens": rng.integers(1, 300, n),
    }), store)
    paths = {"store": store, "pool": M_SMALL, "azure": AZURE, "missing": root / "does_not_exist",
             "file": root / "a_file.txt", "empty": root / "empty_folder", "nonstore": root / "not_a_store",
             "out": root / "out", "garbage": root / "garbage.csv", "bad_toml": root / "bad.toml",
             "empty_toml": root / "empty.toml"}
    paths["file"].write_text("x\n")
    paths["empty"].mkdir()
    paths["nonstore"].mkdir()
    (paths["nonstore"] / "notes.txt").write_text("hello")
    paths["out"].mkdir()
    paths["garbage"].write_bytes(bytes(range(256)) * 40)
    paths["bad_toml"].write_text("this is = = not toml [")
    paths["empty_toml"].write_text("")
    for name, text in RATE_FILES.items():
        paths[f"rate_{name}"] = root / f"rate_{name}.csv"
        paths[f"rate_{name}"].write_text(text)
    for name, edit in BROKEN_POOLS.items():
        paths[f"sg_{name}"] = _servegen_pool(root / f"servegen_{name}", **edit)
    return {k: str(v) for k, v in paths.items()}


@dataclass(frozen=True)
class Case:
    """One bad command line: ``args`` and ``names`` hold ``{input}`` placeholders (paths regex-escaped in ``names``)."""

    id: str
    args: tuple[str, ...]
    names: str
    xfail: str | None = None

    @property
    def command(self) -> str:
        return " ".join(self.args[:2]) if self.args[0] == "pool" else self.args[0]


def _c(id_: str, args: str, names: str, xfail: str | None = None) -> Case:
    return Case(id_, tuple(args.split("|")), names, xfail)


GEN = "generate|{pool}|--duration|60|--seed|1|-o|{out}/w.parquet"
GEN_RATE1 = GEN + "|--rate|1"
PATH_KINDS = {
    "missing": ("{missing}", r"{missing}.*does not exist|does not exist.*{missing}"),
    "file": ("{file}", r"{file}"),
    "empty_folder": ("{empty}", r"{empty}.*not a (trace store|servelab pool|ServeGen pool)|"
                                r"{empty}.*neither a servelab pool|{empty}.*no chunk-"),
    "non_store_folder": ("{nonstore}", r"{nonstore}.*not a (trace store|servelab pool|ServeGen pool)|"
                                       r"{nonstore}.*neither a servelab pool|{nonstore}.*no chunk-"),
}
STORE_COMMANDS = {
    "info": "info|{p}",
    "arrivals": "arrivals|{p}",
    "lengths": "lengths|{p}",
    "clients": "clients|{p}",
    "conversations": "conversations|{p}",
    "prefixes": "prefixes|{p}",
    "validate": "validate|{p}|--split|0.5",
    "fit-pool": "fit-pool|{p}|-o|{out}/fitted",
    "report": "report|{p}|-o|{out}/report.html",
    "compare-reference": "compare|{p}|{store}",
    "compare-candidate": "compare|{store}|{p}",
}
POOL_COMMANDS = {
    "generate": "generate|{p}|--rate|1|--duration|60|--seed|1|-o|{out}/w.parquet",
    "pool-info": "pool|info|{p}",
    "pool-import-servegen": "pool|import-servegen|{p}|-o|{out}/imported",
    "pool-export-servegen": "pool|export-servegen|{p}|-o|{out}/exported",
}
REPORT_FILE_RE = r"(no data rows in|cannot tell the format of) {file}"  # a text file given where a store goes


def _path_cases() -> list[Case]:
    cases = []
    for table in (STORE_COMMANDS, POOL_COMMANDS):
        for command, template in table.items():
            for kind, (path, names) in PATH_KINDS.items():
                if kind == "file" and command in ("report", "compare-reference", "compare-candidate"):
                    names = REPORT_FILE_RE if command == "report" else r"{file}.*neither a trace store"
                cases.append(_c(f"{command}-{kind}", template.replace("{p}", path), names))
    return cases



CASES: list[Case] = [
    *_path_cases(),
    # ingest: sources and column maps
    _c("ingest-source-missing", "ingest|{missing}|-o|{out}/im", r"{missing}.*does not exist"),
    _c("ingest-source-is-a-folder", "ingest|{empty}|-o|{out}/ie", r"{empty}.*not a file"),
    _c("ingest-binary-garbage", "ingest|{garbage}|-o|{out}/ig", r"cannot tell the format of {garbage}"),
    _c("ingest-text-file", "ingest|{file}|-o|{out}/it", r"no data rows in {file}"),
    _c("ingest-output-is-a-file", "ingest|{azure}|-o|{file}", r"{file}.*already exists"),
    _c("ingest-output-under-a-file", "ingest|{azure}|-o|{file}/store", r"{file}"),
    _c("ingest-column-map-not-toml", "ingest|{azure}|--column-map|{bad_toml}|-o|{out}/ct", r"{bad_toml}.*not valid TOML"),
    _c("ingest-column-map-empty", "ingest|{azure}|--column-map|{empty_toml}|-o|{out}/ce",
       r"column map needs \[time\]"),
    _c("ingest-column-map-missing", "ingest|{azure}|--column-map|{missing}|-o|{out}/cm",
       r"--column-map.*{missing}.*does not exist"),
    _c("ingest-unknown-format", "ingest|{azure}|-o|{out}/uf|--format|xml", r"--format.*'xml' is not one of"),
    # windows
    *[_c(f"{cmd}-window-{label}", f"{cmd}|{{store}}|--window|{value}", rf"--window.*{re.escape(value)}")
      for cmd in ("arrivals", "clients", "conversations")
      for label, value in (("words", "5 fortnights"), ("negative", "-5m"), ("zero", "0"), ("nan", "nan"))],
    _c("fit-pool-window-words", "fit-pool|{store}|-o|{out}/fw|--window|5 fortnights", r"window.*'5 fortnights'"),
    _c("fit-pool-data-window-words", "fit-pool|{store}|-o|{out}/fdw|--data-window|5 fortnights",
       r"data.window.*'5 fortnights'"),
    _c("fit-pool-data-window-zero", "fit-pool|{store}|-o|{out}/fdz|--data-window|0", r"data.window.*'0'"),
    *[_c(f"compare-window-{label}", f"compare|{{store}}|{{store}}|--window|{value}", rf"window.*{value}")
      for label, value in (("zero", "0"), ("negative", "-1"), ("nan", "nan"))],
    # generate: numbers
    _c("generate-rate-zero", GEN + "|--rate|0", r"--rate.*(> ?0|positive)"),
    _c("generate-rate-negative", GEN + "|--rate|-1", r"--rate.*(> ?0|positive)"),
    _c("generate-rate-nan", GEN + "|--rate|nan", r"--rate.*(finite|> ?0|positive)"),
    _c("generate-rate-inf", GEN + "|--rate|inf", r"--rate.*(finite|> ?0|positive)"),
    _c("generate-rate-1e12", GEN + "|--rate|1e12", r"--max-requests"),
    _c("generate-rate-text", GEN + "|--rate|fast", r"--rate.*'fast'"),
    _c("generate-rate-pool-negative-scale", GEN + "|--rate|pool*-1", r"--rate.*(> ?0|positive)"),
    _c("generate-rate-and-rate-file", GEN_RATE1 + "|--rate-file|{rate_all_zero}", r"exactly one of --rate"),
    *[_c(f"generate-duration-{label}", GEN_RATE1.replace("--duration|60", f"--duration|{value}"),
         rf"duration.*{value}") for label, value in (("negative", "-5"), ("zero", "0"), ("nan", "nan"), ("inf", "inf"))],
    _c("generate-duration-text", GEN_RATE1.replace("--duration|60", "--duration|abc"), r"--duration.*'abc'"),
    _c("generate-start-nan", GEN_RATE1 + "|--start|nan", r"start.*nan"),
    _c("generate-start-inf", GEN_RATE1 + "|--start|inf", r"start=inf"),
    _c("generate-start-before-pool", GEN_RATE1 + "|--start|-1e9", r"start=-1e\+09.*outside the pool's span"),
    _c("generate-seed-negative", GEN_RATE1.replace("--seed|1", "--seed|-1"), r"seed.*-1"),
    _c("generate-clients-zero", GEN_RATE1 + "|--clients|0", r"clients.*got 0"),
    _c("generate-clients-negative", GEN_RATE1 + "|--clients|-3", r"clients.*got -3"),
    _c("generate-naive-cv-negative", GEN_RATE1 + "|--naive|--cv|-1", r"cv.*-1"),
    _c("generate-naive-cv-nan", GEN_RATE1 + "|--naive|--cv|nan", r"cv.*nan"),
    _c("generate-unknown-format", GEN_RATE1 + "|--format|xml", r"--format.*'xml' is not one of"),
    _c("generate-output-under-a-file", GEN_RATE1.replace("{out}/w.parquet", "{file}/w.parquet"), r"{file}"),
    # generate: rate files
    _c("generate-rate-file-negative", GEN + "|--rate-file|{rate_negative}", r"{rate_negative}|--rate-file"),
    _c("generate-rate-file-nan", GEN + "|--rate-file|{rate_nan}", r"{rate_nan}|--rate-file"),
    _c("generate-rate-file-header-only", GEN + "|--rate-file|{rate_header_only}", r"{rate_header_only}|--rate-file"),
    _c("generate-rate-file-text", GEN + "|--rate-file|{rate_text}", r"{rate_text}|--rate-file"),
    _c("generate-rate-file-duplicate-times", GEN + "|--rate-file|{rate_duplicate_times}",
       r"{rate_duplicate_times}|--rate-file"),
    _c("generate-rate-file-all-zero", GEN + "|--rate-file|{rate_all_zero}", r"{rate_all_zero}|--rate-file"),
    _c("generate-rate-file-no-rate-column", GEN + "|--rate-file|{rate_no_rate_column}",
       r"{rate_no_rate_column}.*needs a time column"),
    _c("generate-rate-file-empty", GEN + "|--rate-file|{rate_empty}", r"cannot read rate file '{rate_empty}'"),
    _c("generate-rate-file-missing", GEN + "|--rate-file|{missing}", r"--rate-file.*{missing}.*does not exist"),
    # report
    _c("report-unknown-section", "report|{store}|--section|bogus|-o|{out}/r.html",
       r"--section.*unknown section\(s\) \['bogus'\]"),
    _c("report-unknown-format", "report|{azure}|--format|xml|-o|{out}/r.html", r"--format.*'xml' is not one of"),
    _c("report-unknown-figure-format", "report|{store}|--figure-format|bmp|-o|{out}/r.html",
       r"--figure-format.*'bmp' is not one of"),
    _c("report-output-is-a-folder", "report|{store}|-o|{empty}", r"--output.*{empty}.*is a directory"),
    _c("report-output-under-a-file", "report|{store}|--section|overview|-o|{file}/r.html", r"{file}"),
    _c("report-binary-garbage", "report|{garbage}|-o|{out}/rg.html", r"cannot tell the format of {garbage}"),
    _c("report-column-map-not-toml", "report|{azure}|--format|generic|--column-map|{bad_toml}|-o|{out}/rt.html",
       r"{bad_toml}.*not valid TOML"),
    _c("report-seed-negative", "report|{store}|--seed|-1|-o|{out}/r.html", r"--seed.*-1"),
    # per-area commands: options
    *[_c(f"{cmd}-seed-negative", f"{cmd}|{{store}}|--seed|-1", r"--seed.*-1")
      for cmd in ("arrivals", "lengths", "clients", "conversations")],
    *[_c(f"{cmd}-rows-zero", f"{cmd}|{{store}}|--rows|0", r"--rows.*0")
      for cmd in ("arrivals", "lengths", "clients", "conversations")],
    *[_c(f"{cmd}-output-is-a-file", f"{cmd}|{{store}}|-o|{{file}}", r"--output.*{file}.*is a file")
      for cmd in ("arrivals", "lengths", "clients", "conversations")],
    _c("arrivals-output-under-a-file", "arrivals|{store}|-o|{file}/tables", r"{file}/tables"),
    _c("arrivals-unknown-by", "arrivals|{store}|--by|colour", r"--by.*'colour' is not one of"),
    _c("lengths-unknown-by", "lengths|{store}|--by|colour", r"--by.*'colour' is not one of"),
    _c("clients-min-requests-zero", "clients|{store}|--min-requests|0", r"--min-requests.*got 0"),
    _c("conversations-delta-negative", "conversations|{store}|--delta|-5", r"--delta.*-5"),
    _c("conversations-delta-nan", "conversations|{store}|--delta|nan", r"--delta.*nan"),
    _c("conversations-delta-inf", "conversations|{store}|--delta|inf", r"--delta.*finite.*inf"),
    _c("conversations-unknown-rule", "conversations|{store}|--rule|telepathy", r"--rule.*'telepathy' is not one of"),
    # validate
    _c("validate-split-zero", "validate|{store}|--split|0", r"--split.*0"),
    _c("validate-split-one", "validate|{store}|--split|1.0", r"split 1\.0"),
    _c("validate-split-words", "validate|{store}|--split|half", r"--split.*half"),
    _c("validate-split-nan", "validate|{store}|--split|nan", r"--split.*nan"),
    _c("validate-rolling-zero", "validate|{store}|--split|0.5|--rolling|0", r"--rolling.*0"),
    _c("validate-window-negative", "validate|{store}|--split|0.5|--window|-5", r"--window.*-5"),
    _c("validate-pool-window-words", "validate|{store}|--split|0.5|--pool-window|soon", r"--pool-window.*soon|soon"),
    _c("validate-seed-negative", "validate|{store}|--split|0.5|--seed|-1", r"--seed.*-1"),
    # prefixes
    _c("prefixes-block-size-zero", "prefixes|{store}|--block-size|0", r"--block-size.*0"),
    _c("prefixes-block-size-text", "prefixes|{store}|--block-size|big", r"--block-size.*'big'"),
    _c("prefixes-capacities-zero", "prefixes|{store}|--capacities|0,4", r"--capacities.*'0'"),
    _c("prefixes-capacities-text", "prefixes|{store}|--capacities|4,lots", r"--capacities.*'lots'"),
    _c("prefixes-capacities-fraction", "prefixes|{store}|--capacities|2.5", r"--capacities.*'2.5'"),
    _c("prefixes-reference-zero", "prefixes|{store}|--reference|0", r"--reference.*0"),
    _c("prefixes-window-words", "prefixes|{store}|--window|5 fortnights", r"--window.*5 fortnights"),
    _c("prefixes-seed-negative", "prefixes|{store}|--seed|-1", r"--seed.*-1"),
    _c("prefixes-rows-zero", "prefixes|{store}|--rows|0", r"--rows.*0"),
    _c("prefixes-output-is-a-file", "prefixes|{store}|-o|{file}", r"--output.*{file}.*is a file"),
    # fit-pool, compare, pool: options and outputs
    _c("fit-pool-unknown-family", "fit-pool|{store}|-o|{out}/ff|--families|bogus", r"families.*'bogus'"),
    _c("fit-pool-min-requests-zero", "fit-pool|{store}|-o|{out}/fm|--min-requests|0", r"--min-requests.*0"),
    _c("fit-pool-output-is-a-file", "fit-pool|{store}|-o|{file}", r"{file}.*already exists"),
    _c("compare-too-many-names", "compare|{store}|{store}|--names|a,b,c", r"names.*\['a', 'b', 'c'\]"),
    _c("compare-seed-negative", "compare|{store}|{store}|--seed|-1", r"seed.*-1"),
    _c("pool-info-top-negative", "pool|info|{pool}|--top|-1", r"--top.*-1"),
    _c("pool-import-servegen-output-is-a-file", "pool|import-servegen|{pool}|-o|{file}", r"{file}.*already exists"),
    _c("pool-export-servegen-output-is-a-file", "pool|export-servegen|{pool}|-o|{file}", r"{file}.*already exists"),
    _c("pool-import-servegen-unknown-missing-data", "pool|import-servegen|{pool}|-o|{out}/pm|--missing-data|guess",
       r"--missing-data.*'guess' is not one of"),
    # broken ServeGen pools
    _c("pool-import-servegen-unreadable-trace", "pool|import-servegen|{sg_unreadable_trace}|-o|{out}/sgu",
       r"{sg_unreadable_trace}/chunk-0-trace.csv"),
    _c("pool-import-servegen-broken-json", "pool|import-servegen|{sg_broken_json}|-o|{out}/sgj",
       r"{sg_broken_json}/chunk-0-dataset.json.*JSON"),
    _c("generate-unreadable-trace", "generate|{sg_unreadable_trace}|--rate|1|--duration|60|--seed|1|-o|{out}/u.parquet",
       r"{sg_unreadable_trace}/chunk-0-trace.csv"),
    *[_c(f"pool-import-servegen-{name}", f"pool|import-servegen|{{sg_{name}}}|-o|{{out}}/sg_{name}",
         rf"client '?0'?.*{field}|{field}.*client '?0'?")
      for name, field in (("negative_rate", "rate"), ("nan_rate", "rate"), ("infinite_rate", "rate"),
                          ("negative_cv", "cv"), ("negative_shape", "shape"),
                          ("negative_probability", "input_tokens"), ("probabilities_sum_to_0_4", "input_tokens"))],
    _c("pool-import-servegen-non_string_pmf", "pool|import-servegen|{sg_non_string_pmf}|-o|{out}/sgn",
       r"input_tokens"),
    _c("generate-non_string_pmf", "generate|{sg_non_string_pmf}|--rate|1|--duration|60|--seed|1|-o|{out}/n.parquet",
       r"input_tokens"),
    _c("generate-negative_rate", "generate|{sg_negative_rate}|--rate|1|--duration|1500|--seed|1|-o|{out}/nr.parquet",
       r"rate.*-1|client '?0'?"),
    # the command line itself
    _c("unknown-command", "frobnicate", r"No such command 'frobnicate'"),
    _c("unknown-option", "info|{store}|--bogus", r"No such option.*--bogus"),
    _c("missing-required-option", "fit-pool|{store}", r"Missing option '-o' / '--output'"),
]


_RESULTS: dict[str, Result] = {}


def _fill(text: str, inputs: dict[str, str], *, regex: bool) -> str:
    return text.format(**({k: re.escape(v) for k, v in inputs.items()} if regex else inputs))


def _run(case: Case, inputs: dict[str, str]) -> Result:
    """The runner's result of ``case`` (each command line runs once per session)."""
    if case.id not in _RESULTS:
        args = [_fill(a, inputs, regex=False) for a in case.args]
        _RESULTS[case.id] = CliRunner().invoke(main, args, catch_exceptions=True)
    return _RESULTS[case.id]


def test_the_unbroken_servegen_pool_imports(inputs, tmp_path):
    # positive control of the broken pools: the same folder without the edit imports cleanly
    result = CliRunner().invoke(main, ["pool", "import-servegen", inputs["sg_ok"], "-o", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert ": 1 clients, span 0.." in result.output and "warning" not in result.output


def test_cases_are_distinct_and_many():
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.args for c in CASES}) == len(CASES)
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_no_traceback(case: Case, inputs):
    result = _run(case, inputs)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.output}")
    assert "Traceback" not in result.output, result.output
    if result.exit_code == 2:  # click's usage errors keep click's format
        assert "Usage:" in result.stderr and "Error:" in result.stderr, result.output
    elif result.exit_code != 0:
        assert result.exit_code == 1, result.output
        last = result.stderr.strip().splitlines()[-1]
        assert re.fullmatch(rf"servelab {re.escape(case.command)}: (error|unexpected error): \S.*", last), last
        if last.startswith(f"servelab {case.command}: unexpected error"):
            assert last.endswith("; run with --debug for the traceback"), last


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=c.xfail))
                                  if c.xfail else c for c in CASES], ids=lambda c: c.id)
def test_names_the_bad_input(case: Case, inputs):
    result = _run(case, inputs)
    assert result.exit_code != 0, result.output
    assert "unexpected error" not in result.output, result.output
    pattern = _fill(case.names, inputs, regex=True)
    assert re.search(pattern, result.output, flags=re.DOTALL), f"{pattern!r} not in:\n{result.output}"

"""generate's input guards and its logging clock (issue 18 items 4 and 6; issue 14 item 2).

- rate files: every bad file is one :class:`GenerationError` naming the file and the row;
- the workload-size guard: :meth:`RateSchedule.expected_requests` against closed forms, and
  ``generate`` / ``naive_generate`` refusing above ``max_requests`` before allocating;
- ``clock``: timestamps on multiples of the step, the count per step bucket unchanged;
- warnings of ``generate``, ``pool import-servegen``, ``pool info`` and ``fit_pool`` reach the user.
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _genpools import make_pool
from servelab.cli import DEFAULT_MAX_REQUESTS as CLI_DEFAULT_MAX_REQUESTS
from servelab.cli import expected_requests as cli_expected_requests
from servelab.cli import main
from servelab.generator.exceptions import GenerationError, RequestBudgetError
from servelab.generator.generate import (
    DEFAULT_MAX_REQUESTS,
    check_request_budget,
    clock_times,
    constant_rate,
    generate,
    pool_rate,
    rate_table,
    read_rate_file,
)
from servelab.generator.naive import naive_generate

PMFS = {"input_tokens": ([10, 100], [0.5, 0.5]), "output_tokens": ([5, 50], [0.5, 0.5])}


def _pool(rates, **kw):
    return make_pool(rates, pmfs={c: PMFS for c in rates}, **kw)


# ---------------------------------------------------------------------------------------------- rate files
@pytest.mark.parametrize("text, pattern", [
    ("time_s,rate\n0,1\n60,-2\n", r"row 2: rate must be a finite number of req/s >= 0; got -2.0"),
    ("time_s,rate\n0,nan\n60,1\n", r"row 1: rate must be a finite number of req/s >= 0; got nan"),
    ("time_s,rate\n0,1\n60,inf\n", r"row 2: rate must be .*; got inf"),
    ("time_s,rate\n", r"has a header but no rows"),
    ("time_s,rate\n0,fast\n60,slow\n", r"row 1: rate must be a number; got 'fast'"),
    ("time_s,rate\n0,1\nsoon,2\n", r"row 2: time_s must be a number; got 'soon'"),
    ("time_s,rate\n0,1\n,2\n", r"row 2: time_s must be a number; got None"),
    ("time_s,rate\n0,1\ninf,2\n", r"row 2: time_s must be finite; got inf"),
    ("time_s,rate\n0,1\n0,2\n60,1\n", r"rows 1 and 2: the same time_s 0.0 appears twice"),
    ("time_s,rate\n60,1\n0,2\n60,3\n", r"rows 1 and 3: the same time_s 60.0 appears twice"),
    ("time_s,rate\n0,0\n60,0\n", r": every rate is 0; nothing to generate"),
])
def test_a_bad_rate_file_names_the_file_and_the_row(tmp_path, text, pattern):
    path = tmp_path / "rates.csv"
    path.write_text(text)
    with pytest.raises(GenerationError, match=rf"rate file '{path}'.*" + pattern):
        read_rate_file(path)


def test_unsorted_rate_files_are_sorted_and_spaces_are_allowed(tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text("Time_s, rate\n60, 2\n0, 1\n")
    assert read_rate_file(path) == rate_table([0, 60], [1, 2])


def test_a_rate_table_names_its_bad_point():
    with pytest.raises(GenerationError, match=r"rate table point 1: rate must be a finite number >= 0; got -1.0"):
        rate_table([0, 1], [1, -1])
    with pytest.raises(GenerationError, match=r"point 2 \(time 1.0\) follows time 1.0"):
        rate_table([0, 1, 1], [1, 1, 1])


# ---------------------------------------------------------------------------------------------- budget
@pytest.mark.parametrize("schedule, duration, closed_form", [
    (constant_rate(2.5), 3600, 9000.0),
    (rate_table([0, 100], [0, 10]), 200, 0.5 * 100 * 10 + 100 * 10),
    (rate_table([10, 20], [2, 4]), 30, 2 * 10 + 3 * 10 + 4 * 10),
    (rate_table([0], [7]), 10, 70.0),
])
def test_expected_requests_is_the_integral_of_the_target(schedule, duration, closed_form):
    assert schedule.expected_requests(duration) == pytest.approx(closed_form, rel=1e-12)
    assert cli_expected_requests(schedule, duration) == schedule.expected_requests(duration)  # the thin wrapper


def test_expected_requests_of_the_pool_integrates_its_windows():
    # a: 1 then 2 req/s, b: 3 then idle (600 s windows); from 300 s for 600 s:
    # a 1 x 300 + 2 x 300 = 900, b 3 x 300 = 900; pool*2 -> 3600
    pool = _pool({"a": [1.0, 2.0], "b": [3.0, 0.0]})
    assert pool_rate(2.0).expected_requests(600, pool, start=300) == pytest.approx(3600.0, rel=1e-12)
    assert pool_rate(1.0).expected_requests(1200, pool) == pytest.approx(600 + 1200 + 1800, rel=1e-12)
    with pytest.raises(GenerationError, match="needs the pool"):
        pool_rate(1.0).expected_requests(600)
    with pytest.raises(GenerationError, match="duration must be a finite number of seconds > 0; got nan"):
        constant_rate(1.0).expected_requests(float("nan"))


def test_the_default_budget_is_the_clis():
    assert DEFAULT_MAX_REQUESTS == CLI_DEFAULT_MAX_REQUESTS == 50_000_000


def test_check_request_budget_refuses_above_the_limit_only():
    assert check_request_budget(constant_rate(10), 100, max_requests=1000) == 1000.0
    with pytest.raises(RequestBudgetError, match=r"about 1e\+03 requests .* more than max_requests=999") as info:
        check_request_budget(constant_rate(10), 100, max_requests=999)
    assert info.value.expected == 1000.0 and info.value.max_requests == 999
    assert np.isnan(check_request_budget(constant_rate(1e300), 1e300, max_requests=None))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(GenerationError, match="max_requests must be a positive integer or None"):
            check_request_budget(constant_rate(1), 1, max_requests=bad)


@pytest.mark.parametrize("generator", [generate, naive_generate])
def test_generation_refuses_a_huge_workload_before_allocating(generator):
    pool = _pool({"a": [1.0] * 2})
    t0 = time.perf_counter()
    with pytest.raises(RequestBudgetError, match=r"about 6e\+13 requests .* more than max_requests=50,000,000"):
        generator(pool, 1e12, 60, seed=0)
    assert time.perf_counter() - t0 < 5  # refused, not attempted
    with pytest.raises(RequestBudgetError, match=r"about 7.2e\+03 requests .* more than max_requests=7,199"):
        generator(pool, 6.0, 1200, seed=0, max_requests=7199)
    if generator is generate:  # the pool's own total: 1 req/s x 1200 s x 3
        with pytest.raises(RequestBudgetError, match=r"about 3.6e\+03 requests"):
            generator(pool, pool_rate(3.0), 1200, seed=0, max_requests=3599)
    # at the limit: generated (the count is random around the estimate)
    df = generator(pool, 2.0, 600, seed=0, max_requests=1200)
    assert abs(df.height - 1200) < 5 * np.sqrt(1200)


def test_start_nan_is_refused():
    pool = _pool({"a": [1.0] * 2})
    for generator in (generate, naive_generate):
        with pytest.raises(GenerationError, match="start must be a number of seconds in the pool's span; got nan"):
            generator(pool, 1.0, 60, start=float("nan"), seed=0)


# ---------------------------------------------------------------------------------------------- clock
def test_clock_times_floor_to_the_step():
    t = np.array([0.0, 2.999, 3.0, 3.001, 8.9, 9.0])
    assert clock_times(t, 3.0).tolist() == [0.0, 0.0, 3.0, 3.0, 6.0, 9.0]
    for bad in (0, -3.0, float("nan"), float("inf"), True):
        with pytest.raises(GenerationError, match="clock must be a finite number of seconds > 0"):
            clock_times(t, bad)


@pytest.mark.parametrize("step", [1.0, 3.0, 0.25])
def test_generate_on_a_clock_keeps_the_count_per_tick(step):
    pool = _pool({"a": [2.0] * 2, "b": [0.5] * 2}, cvs={"a": 3.0})
    exact = generate(pool, "pool", 1200, seed=7)
    clocked = generate(pool, "pool", 1200, seed=7, clock=step)
    t, c = exact["timestamp"].to_numpy(), clocked["timestamp"].to_numpy()
    assert c.size == t.size > 1500
    k = c / step
    assert np.array_equal(k, np.round(k))  # multiples of the step, exactly
    assert np.all((c <= t) & (t - c < step))  # each request at the last tick before it
    assert np.array_equal(np.bincount((t // step).astype(int)), np.bincount(k.astype(int)))
    assert clocked.drop("timestamp").equals(exact.drop("timestamp"))  # same draws, same order
    assert np.mean(np.diff(c) == 0) > np.mean(np.diff(t) == 0)  # ties appear, as in a clocked trace


def test_naive_generate_on_a_clock():
    pool = _pool({"a": [2.0] * 2})
    exact = naive_generate(pool, 2.0, 600, cv=1.5, seed=3)
    clocked = naive_generate(pool, 2.0, 600, cv=1.5, seed=3, clock=3.0)
    t, c = exact["timestamp"].to_numpy(), clocked["timestamp"].to_numpy()
    assert np.array_equal(np.bincount((t // 3).astype(int)), np.bincount((c / 3).astype(int)))
    assert np.array_equal(c, np.floor(t / 3) * 3)


# ---------------------------------------------------------------------------------------------- the CLI
def _saved_pool(tmp_path) -> str:
    from _genpools import to_client_pool

    path = tmp_path / "pool"
    to_client_pool(_pool({"a": [2.0] * 2})).save(path)
    return str(path)


def test_cli_generate_clock_and_max_requests(tmp_path):
    pool = _saved_pool(tmp_path)
    runner = CliRunner()
    base = ["generate", pool, "--rate", "10", "--duration", "100", "--seed", "1"]
    result = runner.invoke(main, [*base, "--max-requests", "999", "-o", str(tmp_path / "a.parquet")])
    assert result.exit_code == 1 and result.stderr == (
        "servelab generate: error: the workload would hold about 1e+03 requests (rate x duration), more than "
        "--max-requests 999 (about 0.00015 GB to generate); lower --rate or --duration, or raise --max-requests\n")
    result = runner.invoke(main, [*base, "--max-requests", "1000", "--clock", "3", "-o", str(tmp_path / "b.parquet")])
    assert result.exit_code == 0, result.output
    ts = pl.read_parquet(tmp_path / "b.parquet")["timestamp"].to_numpy()
    assert np.array_equal(ts / 3, np.round(ts / 3)) and abs(ts.size - 1000) < 5 * np.sqrt(1000)
    result = runner.invoke(main, [*base, "--clock", "0", "-o", str(tmp_path / "c.parquet")])
    assert result.exit_code == 2 and "Invalid value for '--clock': must be a finite number of seconds > 0" in result.stderr


def test_warnings_of_import_and_info_reach_the_user(raw_traces, tmp_path):
    m_small = str(raw_traces / "servegen" / "m-small")
    runner = CliRunner()
    result = runner.invoke(main, ["pool", "import-servegen", m_small, "-o", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1 and warned[0].startswith("servelab pool import-servegen: warning: ServeGen pool")
    assert "ids ['1']" in warned[0]
    result = runner.invoke(main, ["pool", "info", m_small])
    assert result.exit_code == 0 and "servelab pool info: warning: ServeGen pool" in result.stderr
    result = runner.invoke(main, ["pool", "info", m_small, "--json"])
    assert result.exit_code == 0 and result.stderr == ""  # the JSON document carries it
    doc = json.loads(result.stdout)
    assert len(doc["warnings"]) == 1 and "1 client(s) have no dataset file" in doc["warnings"][0]


def test_a_warning_of_conversation_linking_reaches_the_caller_of_fit_pool(raw_traces, tmp_path, monkeypatch):
    # the pool fit no longer silences link_conversations: a warning issued there reaches its caller
    from servelab.analysis import conversations
    from servelab.analysis.store import open_store
    from servelab.fitting.pool_fit import fit_pool

    result = CliRunner().invoke(main, ["ingest", str(raw_traces / "mooncake" / "synthetic_trace.jsonl"),
                                       "-o", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    original = conversations.link_conversations

    def warning_link(*args, **kwargs):
        warnings.warn("a linking caveat", UserWarning, stacklevel=2)
        return original(*args, **kwargs)

    monkeypatch.setattr(conversations, "link_conversations", warning_link)
    with pytest.warns(UserWarning, match="a linking caveat"):
        pool = fit_pool(open_store(tmp_path / "s"))
    assert pool.conversations.height == 1  # the positive control: the links were still fitted

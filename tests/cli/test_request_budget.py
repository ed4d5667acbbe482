"""The workload-size guard of generating commands: ``expected_requests`` and ``check_request_budget``.

``--rate 1e12`` once asked numpy for hundreds of TiB; the guard estimates the request count as the
integral of the target rate over the duration and refuses it above ``--max-requests`` before
anything is allocated. Estimates are checked against closed forms of piecewise-linear rates.
"""
from __future__ import annotations

import sys
import types

import click
import pytest
from click.testing import CliRunner

from servelab import cli
from servelab.cli import (
    DEFAULT_MAX_REQUESTS,
    WorkloadTooLargeError,
    check_request_budget,
    expected_requests,
    main,
    max_requests_option,
)
from servelab.generator.generate import constant_rate, pool_rate, rate_table


def test_constant_rate_is_rate_times_duration():
    assert expected_requests(constant_rate(1e12), 60.0) == 6e13
    assert expected_requests(constant_rate(2.5), 3600.0) == 9000.0


@pytest.mark.parametrize("times, rates, duration, closed_form", [
    ((0, 100), (0, 10), 200, 0.5 * 100 * 10 + 100 * 10),      # ramp, then held flat beyond the last point
    ((0, 100), (0, 10), 50, 0.5 * 50 * 5),                    # cut inside the ramp
    ((10, 20), (2, 4), 30, 2 * 10 + (2 + 4) / 2 * 10 + 4 * 10),  # held flat before the first point too
    ((0, 60, 120), (5, 5, 5), 90, 5 * 90),                    # a flat table is a constant
    ((0,), (7,), 10, 70),                                     # one point
])
def test_rate_table_is_the_exact_integral_of_its_interpolation(times, rates, duration, closed_form):
    assert expected_requests(rate_table(times, rates), duration) == pytest.approx(closed_form, rel=1e-12)


def test_pool_rate_needs_the_pools_total():
    assert expected_requests(pool_rate(2.0), 100.0, pool_total_rate=3.5) == pytest.approx(700.0)
    with pytest.raises(ValueError, match="needs pool_total_rate"):
        expected_requests(pool_rate(2.0), 100.0)


@pytest.mark.parametrize("duration", [0.0, -5.0, float("nan"), float("inf")])
def test_duration_must_be_finite_and_positive(duration):
    with pytest.raises(ValueError, match="duration_s must be a finite number of seconds > 0"):
        expected_requests(constant_rate(1.0), duration)


def test_check_refuses_above_the_limit_and_non_finite_estimates():
    check_request_budget(1000.0, max_requests=1000)  # at the limit: allowed
    with pytest.raises(WorkloadTooLargeError, match=r"about 1e\+03 requests .* more than --max-requests 999 "):
        check_request_budget(1000.0001, max_requests=999)
    with pytest.raises(WorkloadTooLargeError, match=r"about 6e\+13 requests \(rate x duration\), more than "
                                                   r"--max-requests 50,000,000 \(about 7.5 GB"):
        check_request_budget(expected_requests(constant_rate(1e12), 60.0), max_requests=DEFAULT_MAX_REQUESTS)
    with pytest.raises(WorkloadTooLargeError, match="about nan requests"):
        check_request_budget(float("nan"), max_requests=10)


@pytest.fixture
def gen_command(monkeypatch):
    """A command wired as ``servelab generate`` should be: estimate, check, then generate."""
    @click.command("gen")
    @click.option("--rate", type=float, required=True)
    @click.option("--duration", type=float, required=True)
    @max_requests_option
    def gen(rate: float, duration: float, max_requests: int) -> None:
        check_request_budget(expected_requests(constant_rate(rate), duration), max_requests=max_requests)
        click.echo("generated")

    module = types.ModuleType("_servelab_fake_gen")
    module.gen = gen
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "gen", f"{module.__name__}:gen")


def test_the_cli_refuses_in_one_line_and_max_requests_overrides(gen_command):
    runner = CliRunner()
    result = runner.invoke(main, ["gen", "--rate", "1e12", "--duration", "60"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("servelab gen: error: the workload would hold about 6e+13 requests (rate x duration), "
                             "more than --max-requests 50,000,000 (about 7.5 GB to generate); lower --rate or "
                             "--duration, or raise --max-requests\n")
    result = runner.invoke(main, ["gen", "--rate", "10", "--duration", "100", "--max-requests", "999"])
    assert result.exit_code == 1 and "about 1e+03 requests" in result.stderr
    result = runner.invoke(main, ["gen", "--rate", "10", "--duration", "100", "--max-requests", "1000"])
    assert result.exit_code == 0 and result.stdout == "generated\n"
    result = runner.invoke(main, ["gen", "--rate", "10", "--duration", "100", "--max-requests", "0"])
    assert result.exit_code == 2 and "Invalid value for '--max-requests'" in result.stderr

"""Tests of servelab.analysis.periodicity: clock, binned counts, profiles, periodicity measure."""
import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from servelab.analysis import NotApplicableError, write_store
from servelab.analysis import periodicity as P

HK = ZoneInfo("Asia/Hong_Kong")


def _arrivals(rng, rate_per_hour: np.ndarray) -> np.ndarray:
    """Piecewise-constant-rate Poisson arrivals, one rate per hour (seconds since origin)."""
    n = rng.poisson(rate_per_hour)
    starts = np.repeat(np.arange(rate_per_hour.size) * 3600.0, n)
    return starts + rng.uniform(0, 3600, n.sum())


def _diurnal_and_poisson(rng, days: int):
    hours = np.arange(days * 24)
    diurnal = 40 * (1 + 0.8 * np.sin(2 * np.pi * (hours - 9) / 24))
    flat = np.full(hours.size, 40.0)
    a, b = _arrivals(rng, diurnal), _arrivals(rng, flat)
    return pl.DataFrame({
        "timestamp": np.concatenate([a, b]),
        "service": ["conversation"] * a.size + ["api"] * b.size,
    })


def test_binned_load_matches_numpy_histogram_and_fills_idle_bins(tmp_path, rng):
    ts = np.concatenate([rng.uniform(0, 600, 50), rng.uniform(1800, 2400, 30)])  # idle 600..1800
    svc = rng.choice(["a", "b"], ts.size)
    store = write_store(pl.DataFrame({"timestamp": ts, "service": svc}), tmp_path / "s")
    got = P.binned_load(store, window_s=300, by="service")
    first, last = ts.min(), ts.max()
    edges = np.arange(np.floor(first / 300) * 300, np.floor(last / 300) * 300 + 301, 300)
    for name in ("a", "b"):
        ref, _ = np.histogram(ts[svc == name], bins=edges)
        part = got.filter(pl.col("service") == name).sort("bin")
        assert part["count"].to_list() == ref.tolist()
        assert part["start_s"].to_list() == edges[:-1].tolist()
    assert got.filter(pl.col("count") == 0).height > 0  # idle bins are there, as zeros
    assert set(got["clock"]) == {"relative to trace start"}


def test_local_clock_hours_follow_the_origin_zone(tmp_path):
    # origin 2023-11-06 00:30 Hong Kong (a Monday); a request at +2 h is at 02:30 local
    origin = dt.datetime(2023, 11, 6, 0, 30, tzinfo=HK)
    store = write_store(pl.DataFrame({"timestamp": [0.0, 7200.0, 6 * 86400.0]}), tmp_path / "s",
                        origin=origin, timezone="Asia/Hong_Kong")
    hourly = P.hourly_counts(store)
    assert hourly["start_s"][0] == -1800.0  # bins start on local whole hours
    hit = hourly.filter(pl.col("count") > 0)
    assert hit["hour"].to_list() == [0, 2, 0]
    assert hit["weekday"].to_list() == [0, 0, 6]  # Monday, Monday, Sunday
    assert hit["is_weekend"].to_list() == [False, False, True]
    assert set(hourly["clock"]) == {"local"}


def test_dst_change_keeps_local_hours(tmp_path):
    # New York falls back on 2023-11-05 at 02:00 local; 25 local hours that day
    ny = ZoneInfo("America/New_York")
    origin = dt.datetime(2023, 11, 4, 0, 0, tzinfo=ny)
    ts = np.arange(0, 3 * 86400 + 3600, 1800.0)
    store = write_store(pl.DataFrame({"timestamp": ts}), tmp_path / "s", origin=origin, timezone="America/New_York")
    daily = P.daily_counts(P.hourly_counts(store))
    by_date = {str(d): h for d, h in zip(daily["date"], daily["hours"])}
    assert by_date["2023-11-05"] == 25
    assert daily.filter(pl.col("date") == dt.date(2023, 11, 5))["complete"][0]
    # 2023-11-06 local midnight is 3 days + 1 h after the origin (the extra hour of the 5th)
    hourly = P.hourly_counts(store)
    first_of_6th = hourly.filter(pl.col("date") == dt.date(2023, 11, 6)).sort("bin")
    assert first_of_6th["start_s"][0] == (24 + 25) * 3600.0
    assert first_of_6th["hour"][0] == 0


def test_unknown_origin_is_flagged_and_weekdays_are_not_guessed(tmp_path, rng):
    store = write_store(_diurnal_and_poisson(rng, 8), tmp_path / "s")
    hourly = P.hourly_counts(store, by="service")
    assert set(hourly["clock"]) == {"relative to trace start"}
    assert hourly["is_weekend"].null_count() == hourly.height
    ww = P.weekday_weekend(P.daily_counts(hourly))
    assert ww["ratio"].null_count() == ww.height
    assert ww["reason"].str.contains("origin").all()
    prof = P.hour_of_day_profile(hourly)
    assert set(prof["day_type"]) == {"all"}  # no weekday/weekend split without a calendar


def test_profiles_and_weekday_weekend_against_direct_computation(tmp_path, rng):
    # two weeks from Monday 00:00 local; weekend rate is half the weekday rate
    days = 14
    hours = np.arange(days * 24)
    weekend = ((hours // 24) % 7) >= 5
    rate = np.where(weekend, 20.0, 40.0)
    ts = _arrivals(rng, rate)
    origin = dt.datetime(2023, 11, 6, 0, 0, tzinfo=HK)
    store = write_store(pl.DataFrame({"timestamp": ts}), tmp_path / "s", origin=origin, timezone="Asia/Hong_Kong")
    hourly = P.hourly_counts(store)
    daily = P.daily_counts(hourly)
    per_day = np.bincount((ts // 86400).astype(int), minlength=days)
    assert daily.sort("day_index")["count"].to_list()[:days] == per_day.tolist()
    ww = P.weekday_weekend(daily)
    is_we = (np.arange(days) % 7) >= 5
    complete = daily.sort("day_index")["complete"].to_numpy()[:days]
    assert ww["weekday_mean"][0] == pytest.approx(per_day[~is_we & complete].mean())
    assert ww["weekend_mean"][0] == pytest.approx(per_day[is_we & complete].mean())
    # expected ratio 2; daily totals ~ 960 vs 480 (Poisson sd ~31, 22), 4 weekend days: +-0.15 is > 4 sd
    assert ww["ratio"][0] == pytest.approx(2.0, abs=0.15)
    hod = P.hour_of_day_profile(hourly).filter(pl.col("day_type") == "all").sort("hour")
    per_hour = np.bincount(np.floor(ts / 3600).astype(int), minlength=days * 24).reshape(days, 24)
    np.testing.assert_allclose(hod["mean"].to_numpy(), per_hour.mean(axis=0))
    np.testing.assert_allclose(hod["median"].to_numpy(), np.median(per_hour, axis=0))
    dow = P.day_of_week_profile(daily).sort("weekday")
    np.testing.assert_allclose(dow["mean"].to_numpy(), per_day.reshape(2, 7).mean(axis=0))


def test_periodicity_separates_diurnal_from_poisson(tmp_path, rng):
    # 14 days of hourly counts at 40/h: the diurnal series has amplitude 0.8 (32/h), far above the
    # Poisson noise (sd ~6.3/h). White noise of this length reaches an MSTL daily strength of
    # ~0.25-0.3 (the null floor), so the flat series' excess strength stays near 0 and its lag-24 ACF
    # within ~3/sqrt(336) = 0.16; the diurnal series' excess is > 0.9 and ACF > 0.8.
    store = write_store(_diurnal_and_poisson(rng, 14), tmp_path / "s")
    res = P.periodicity(store, by="service")
    t = res.table
    conv = t.filter((pl.col("group") == "conversation") & (pl.col("period") == "daily")).row(0, named=True)
    api = t.filter((pl.col("group") == "api") & (pl.col("period") == "daily")).row(0, named=True)
    assert conv["periodic"] is True and api["periodic"] is False
    assert conv["strength_excess"] > 0.9 and conv["acf"] > 0.8
    assert api["strength_excess"] < 0.2 and abs(api["acf"]) < 3 / np.sqrt(api["n_bins"])
    assert conv["strength_excess"] - api["strength_excess"] > 0.7
    # 14 days is fewer than 3 weekly cycles: weekly is not applicable, with the reason
    weekly = t.filter(pl.col("period") == "weekly")
    assert not weekly["applicable"].any()
    assert weekly["reason"].str.contains("at least 3 cycles").all()
    assert res.is_periodic("api", "weekly") is None


def test_periodicity_not_applicable_on_a_short_trace(tmp_path, rng):
    store = write_store(pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 3600, 500))}), tmp_path / "s")
    t = P.periodicity(store).table
    assert not t["applicable"].any()
    span_min = (store.manifest["span_s"]["last"] - store.manifest["span_s"]["first"]) / 60
    assert t.filter(pl.col("period") == "daily")["reason"][0] == (
        f"the trace spans {span_min:.1f} min; a daily period needs at least 3 cycles (3.0 days)")


def test_periodicity_constant_counts_are_not_applicable(tmp_path):
    ts = np.arange(0, 4 * 86400, 60.0)  # one request a minute, 60 per hour, exactly
    store = write_store(pl.DataFrame({"timestamp": ts}), tmp_path / "s")
    row = P.periodicity(store).table.filter(pl.col("period") == "daily").row(0, named=True)
    assert row["applicable"] is False and "constant" in row["reason"]


def test_seasonal_strength_definition():
    rng = np.random.default_rng(0)
    s, r = np.sin(np.linspace(0, 20, 500)), rng.normal(0, 0.1, 500)
    assert P.seasonal_strength(s, r) == pytest.approx(1 - np.var(r) / np.var(s + r))
    assert P.seasonal_strength(np.zeros(5), rng.normal(size=5)) == 0.0
    assert np.isnan(P.seasonal_strength(np.zeros(3), np.zeros(3)))


def test_bad_arguments(tmp_path, rng):
    store = write_store(pl.DataFrame({"timestamp": rng.uniform(0, 100, 10)}), tmp_path / "s")
    with pytest.raises(ValueError, match="window_s must be a positive number"):
        P.binned_load(store, window_s=0)
    with pytest.raises(ValueError, match="whole multiples"):
        P.periodicity(store, window_s=3600, periods_s=(5000,))
    with pytest.raises(NotApplicableError, match="no 'service' column"):
        P.periodicity(store, by="service")
    with pytest.raises(TypeError, match="by must be a column name"):
        P.normalize_by([1, 2])


def test_rebin_equals_a_direct_scan_at_the_coarse_bin(tmp_path, rng):
    # origin at 00:30 local: the minute grid and the 5-min / hourly grids all start on local clock
    # edges, and summing minutes must give exactly what a direct scan at the coarse bin gives
    frame = _diurnal_and_poisson(rng, 2)
    store = write_store(frame, tmp_path / "s", origin=dt.datetime(2023, 11, 6, 0, 30, tzinfo=HK),
                        timezone="Asia/Hong_Kong")
    clock = P.trace_clock(store)
    fine = P.binned_load(store, window_s=60, by="service", clock=clock)
    cols = ["group", "bin", "start_s", "count", "hour", "weekday"]
    for to in (300, 600, 3600):
        coarse = P.rebin(fine, from_s=60, to_s=to, by="service", clock=clock)
        assert coarse.select(cols).equals(P.binned_load(store, window_s=to, by="service").select(cols))
    whole = P.rebin(fine, from_s=60, to_s=3600, clock=clock)
    assert whole.select("bin", "count").equals(P.binned_load(store, window_s=3600).select("bin", "count"))
    with pytest.raises(ValueError, match="whole multiple of from_s=60"):
        P.rebin(fine, from_s=60, to_s=90, clock=clock)

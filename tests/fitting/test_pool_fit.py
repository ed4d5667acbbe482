"""fit_pool: window rates / CVs / families, PMFs, residual client, conversations, and a round trip
through ServeGen's published pools (sample -> fit -> compare client by client)."""
from __future__ import annotations


import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from scipy import stats

from servelab.analysis.store import write_store
from servelab.cli import main
from servelab.fitting.families import get_family
from servelab.fitting.pool_fit import (
    RESIDUAL_ID,
    compare_pools,
    fit_arrival_windows,
    fit_pool,
    weibull_mle_segments,
)
from servelab.generator import ClientPool, read_servegen, sample_requests


def _renewal(rng, dist, n, start=0.0):
    return start + np.cumsum(dist.rvs(size=n, random_state=rng))


@pytest.fixture
def mixed_store(tmp_path, rng):
    """Client A: Gamma(CV 2) gaps; B: Weibull(c = 0.5); C: exponential; d1..d3: 5 requests each."""
    parts = []
    a = _renewal(rng, stats.gamma(0.25, scale=0.4), 9000)  # mean gap 0.1 s
    b = _renewal(rng, stats.weibull_min(0.5, scale=0.05), 9000)
    c = _renewal(rng, stats.expon(scale=0.2), 5000)
    for cid, t in (("A", a), ("B", b), ("C", c)):
        parts.append(pl.DataFrame({"timestamp": t, "client_id": cid}))
    for k in range(3):
        parts.append(pl.DataFrame({"timestamp": rng.uniform(0, 1200, 5), "client_id": f"d{k}"}))
    parts.append(pl.DataFrame({"timestamp": rng.uniform(0, 1200, 4), "client_id": [None] * 4},
                              schema={"timestamp": pl.Float64, "client_id": pl.String}))
    frame = pl.concat(parts).filter(pl.col("timestamp") < 1800)
    n = frame.height
    frame = frame.with_columns(
        pl.Series("input_tokens", np.where(rng.random(n) < 0.5, rng.integers(1, 50, n),
                                           np.exp(rng.normal(8, 1.5, n)).astype(np.int64) + 1)),
        pl.Series("output_tokens", rng.integers(1, 300, n)),
    )
    return write_store(frame, tmp_path / "store"), frame


def test_rates_cvs_and_residual_match_numpy(mixed_store):
    store, frame = mixed_store
    pool = fit_pool(store, window_s="10m", min_requests=10)
    assert set(pool.client_ids) == {"A", "B", "C", RESIDUAL_ID}
    note = pool.clients.filter(pl.col("client_id") == RESIDUAL_ID)["note"][0]
    assert "3 client(s) below min_requests=10" in note and "4 request(s) without client id" in note
    # the pool's total rate per window times the window's covered seconds (its part inside
    # [first, last] request) equals the trace's count: the first and last windows are partial
    t = frame["timestamp"].to_numpy()
    counts = np.bincount(np.floor(t / 600).astype(int))
    starts = 600.0 * np.arange(counts.size)
    covered = np.minimum(starts + 600, t.max()) - np.maximum(starts, t.min())
    assert covered[0] < 600 and covered[-1] < 600
    total = pool.total_rate().sort("window_start")
    np.testing.assert_allclose(total["rate"].to_numpy() * covered, counts, rtol=1e-12, atol=1e-9)
    # CV of client A's gaps inside window 1, numpy reference (both requests in the window)
    ta = np.sort(frame.filter(pl.col("client_id") == "A")["timestamp"].to_numpy())
    inw = ta[(ta >= 600) & (ta < 1200)]
    g = np.diff(inw)
    row = pool.arrivals.filter((pl.col("client_id") == "A") & (pl.col("window_start") == 600.0))
    assert row["cv"][0] == pytest.approx(g.std() / g.mean(), rel=1e-7)  # stored at float32 precision
    assert row["rate"][0] == pytest.approx(inw.size / covered[1], rel=1e-12)


def test_families_are_told_apart_and_match_reference_fits(mixed_store):
    store, frame = mixed_store
    # clock="none": timestamps as given, so the fits use exactly the positive gaps the references
    # below use (the trace has 4 float-precision ties; by default they are jittered, see
    # test_float_ties_are_censored_within_the_smallest_gap)
    pool = fit_pool(store, window_s="10m", max_fit_gaps=100_000, clock="none")
    fams = pool.arrivals.filter(pl.col("rate") > 0)
    # windows with thousands of gaps: the generating family wins
    for cid, fam in (("A", "gamma"), ("B", "weibull")):
        got = fams.filter((pl.col("client_id") == cid) & (pl.col("rate") * 600 > 1000))["family"].to_list()
        assert got and all(f == fam for f in got), (cid, got)
    # exponential data: Exponential is nested in both (shape 1), so AIC picks it, or a 2-param
    # family whose shape is 1 within sampling error (~3 / sqrt(n) for n ~ 3000 gaps)
    c = fams.filter((pl.col("client_id") == "C") & (pl.col("rate") * 600 > 1000))
    assert c.height >= 2  # 5000 requests at 5/s: windows 0 and 1 full, window 2 partial
    shape = np.where(c["family"] == "weibull", c["c"], c["a"])
    assert all(f == "exponential" or abs(sh - 1) < 0.06 for f, sh in zip(c["family"], shape))
    # parameters equal the registry's single-sample MLE on the same gaps
    tb = np.sort(frame.filter(pl.col("client_id") == "B")["timestamp"].to_numpy())
    g = np.diff(tb[tb < 600])
    ref, _ = get_family("weibull").fit_params(g[g > 0])
    row = fams.filter((pl.col("client_id") == "B") & (pl.col("window_start") == 0.0))
    assert row["c"][0] == pytest.approx(ref["c"], rel=1e-6) and row["a"][0] is None
    assert row["scale"][0] == pytest.approx(ref["scale"], rel=1e-6)
    ta = np.sort(frame.filter(pl.col("client_id") == "A")["timestamp"].to_numpy())
    g = np.diff(ta[ta < 600])
    a, _, scale = stats.gamma.fit(g[g > 0], floc=0)
    row = fams.filter((pl.col("client_id") == "A") & (pl.col("window_start") == 0.0))
    assert row["a"][0] == pytest.approx(a, rel=1e-3)
    assert row["scale"][0] == pytest.approx(scale, rel=1e-3)


def test_float_ties_are_censored_within_the_smallest_gap(mixed_store):
    # Gamma(a = 0.25) gaps below float precision collapse to exact ties (4 here); with no clock on
    # the timestamps they are spread within the smallest positive gap, never dropped
    store, frame = mixed_store
    t = np.sort(frame["timestamp"].to_numpy())
    gaps = np.diff(t)
    assert int((gaps == 0).sum()) > 0
    pool = fit_pool(store, window_s="10m", max_fit_gaps=100_000)
    info = pool.provenance["arrivals"]
    assert info["clock_s"] == pytest.approx(gaps[gaps > 0].min()) and "smallest positive gap" in info["clock_source"]
    row = pool.arrivals.filter((pl.col("client_id") == "A") & (pl.col("window_start") == 0.0))
    # ~5,000 gaps: the MLE of a = 0.25 has sd ~ a * 1.4 / sqrt(n) ~ 0.005
    assert row["family"][0] == "gamma" and row["a"][0] == pytest.approx(0.25, abs=4 * 0.005)


def test_weibull_segments_and_subsampling(rng):
    xs = [stats.weibull_min.rvs(c, scale=3.0, size=4000, random_state=rng) for c in (0.3, 1.0, 2.5)]
    seg = np.repeat(np.arange(3), 4000)
    c, scale, conv = weibull_mle_segments(np.concatenate(xs), seg, 3)
    assert conv.all()
    for k, x in enumerate(xs):
        ref = stats.weibull_min.fit(x, floc=0)
        assert c[k] == pytest.approx(ref[0], rel=1e-4) and scale[k] == pytest.approx(ref[2], rel=1e-4)
    out = fit_arrival_windows(np.concatenate(xs), seg, 3, max_fit_gaps=1000)
    assert out.n_fit.tolist() == [1000, 1000, 1000]
    with pytest.raises(ValueError, match="families must be a non-empty subset"):
        fit_arrival_windows(xs[0], np.zeros(4000, int), 1, families=("pareto",))


def test_pmfs_exact_below_cutoff_and_binned_above(mixed_store):
    store, frame = mixed_store
    pool = fit_pool(store, data_window_s="6h", min_data_windows=0, exact_below=128, bin_ratio=1.05)  # one window
    x = frame.filter(pl.col("client_id") == "A")["input_tokens"].to_numpy()
    pmf = pool.data.filter((pl.col("client_id") == "A") & (pl.col("field") == "input_tokens")).sort("value")
    v, p = pmf["value"].to_numpy(), pmf["probability"].to_numpy()
    small = v < 128
    uniq, cnt = np.unique(x[x < 128], return_counts=True)
    np.testing.assert_array_equal(v[small], uniq)
    np.testing.assert_allclose(p[small], cnt / x.size, rtol=1e-7)  # float32 precision
    assert p.sum() == pytest.approx(1.0)
    # log bins above: far fewer rows than distinct values, CDF within one bin's mass of the raw one
    assert (~small).sum() < np.unique(x[x >= 128]).size / 3
    grid = np.sort(x)
    ecdf = np.searchsorted(grid, v, side="right") / x.size
    assert np.max(np.abs(np.cumsum(p) - ecdf)) < 0.05
    # log-normal fits stored as FitResult JSON
    from servelab.fitting.result import FitResult

    fit = FitResult.from_json(pool.data_fits.filter((pl.col("client_id") == "A") & (pl.col("field") == "input_tokens"))["fit"][0])
    lx = np.log(x[x > 0])
    assert fit.family == "lognormal" and fit.params["s"] == pytest.approx(lx.std(), rel=1e-9)


def test_conversations_from_ids(tmp_path, rng):
    n = 3000
    conv = rng.integers(0, 1000, n).astype(str)
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 3600, n)), "client_id": np.where(rng.random(n) < 0.5, "x", "y"),
                          "conversation_id": conv})
    # conversations owned by the client of their first request; keep one client per conversation
    frame = frame.with_columns(pl.col("client_id").first().over("conversation_id"))
    store = write_store(frame, tmp_path / "s")
    pool = fit_pool(store, window_censoring=False)  # counts as seen (the window correction: test_pool_censoring)
    turns = frame.group_by("conversation_id", "client_id").len()
    for cid in ("x", "y"):
        row = pool.conversations.filter(pl.col("client_id") == cid)
        mine = turns.filter(pl.col("client_id") == cid)["len"].to_numpy()
        assert row["n_conversations"][0] == mine.size
        assert row["turns_mean"][0] == pytest.approx(mine.mean())
        assert row["multi_turn_share"][0] == pytest.approx(mine[mine >= 2].sum() / mine.sum())
        pm = pool.conversation_pmfs.filter((pl.col("client_id") == cid) & (pl.col("quantity") == "turns"))
        assert pm["probability"].sum() == pytest.approx(1.0)
    itt = frame.sort("timestamp").with_columns(pl.col("timestamp").diff().over("conversation_id").alias("itt"))
    ref = itt.filter(pl.col("client_id") == "x")["itt"].drop_nulls().mean()
    assert pool.conversations.filter(pl.col("client_id") == "x")["itt_mean_s"][0] == pytest.approx(ref)


def test_settings_are_checked(mixed_store):
    store, _ = mixed_store
    with pytest.raises(ValueError, match="min_requests must be an integer >= 1"):
        fit_pool(store, min_requests=0)
    with pytest.raises(ValueError, match="window must be"):
        fit_pool(store, window_s="ten minutes")
    with pytest.raises(ValueError, match="bin_ratio must be > 1"):
        fit_pool(store, bin_ratio=1.0)


def test_settings_object_is_frozen_checked_and_recorded(mixed_store):
    import dataclasses

    from servelab.fitting.pool_fit import PoolFitSettings

    store, _ = mixed_store
    settings = PoolFitSettings(window_s="5m", min_requests=10, families=("gamma",), clock="none")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.window_s = 60.0
    pool = fit_pool(store, settings=settings, conversations=False)
    recorded = pool.provenance["settings"]
    assert recorded["window_s"] == 300.0 and recorded["min_requests"] == 10 and recorded["families"] == ["gamma"]
    assert recorded["clock"] == "none" and pool.window_s == 300.0
    assert set(pool.arrivals["family"].drop_nulls().unique()) == {"gamma"}
    # keywords override the object's fields
    assert fit_pool(store, settings=settings, window_s="10m", conversations=False).window_s == 600.0
    with pytest.raises(TypeError, match=r"unknown settings \['windw'\]"):
        fit_pool(store, windw="5m")
    with pytest.raises(ValueError, match="families must be a non-empty subset of the arrival families"):
        PoolFitSettings(families=("pareto",))
    with pytest.raises(ValueError, match="clock must be 'auto', 'none' or a step in seconds > 0; got -3"):
        PoolFitSettings(clock=-3)
    with pytest.raises(ValueError, match=r"need integers 2 <= min_fit_gaps <= max_fit_gaps; got 1, 5000"):
        PoolFitSettings(min_fit_gaps=1)


def test_fit_pool_command(mixed_store, tmp_path):
    store, _ = mixed_store
    res = CliRunner().invoke(main, ["fit-pool", str(store.path), "-o", str(tmp_path / "pool"), "--min-requests", "10",
                                    "--servegen", str(tmp_path / "sg"), "--min-data-windows", "0"])
    assert res.exit_code == 0, res.output
    assert "4 clients" in res.output
    pool = ClientPool.load(tmp_path / "pool")
    assert pool.provenance["source"]["sha256"] and pool.provenance["settings"]["min_requests"] == 10
    # the short-trace rule is off: the 6-h window as set (the store spans less than 18 h)
    assert pool.data_window_s == 21600.0 and pool.provenance["settings"]["min_data_windows"] == 0
    assert (tmp_path / "sg" / "chunk-A-trace.csv").is_file()
    res = CliRunner().invoke(main, ["fit-pool", str(store.path), "-o", str(tmp_path / "pool")])
    assert res.exit_code != 0 and "already exists" in res.output


@pytest.mark.parametrize("name,start,duration,min_count", [("deepseek-r1", 32400.0, 4 * 3600.0, 2000),
                                                            ("mm-image", 43200.0, 2 * 3600.0, 400)])
def test_round_trip_through_servegen_pools(raw_traces, tmp_path, name, start, duration, min_count):
    ref = read_servegen(raw_traces / "servegen" / name).clip(start, start + duration)
    trace = sample_requests(ref, start=start, duration=duration, seed=11)
    store = write_store(trace.drop("request_id"), tmp_path / "s")
    fitted = fit_pool(store, span=(start, start + duration))
    cmp = compare_pools(ref, fitted, min_count_cv=min_count, min_count_family=2000, min_requests_ks=500)
    z = cmp.rate["z"].to_numpy()
    # counts are Poisson(rate * 600): |z| < 4 in every window (P(fail) ~ 1e-4 per window)
    assert np.all(np.abs(z) < 4.5) and abs(z.mean()) < 4 / np.sqrt(z.size) + 0.1
    cv = cmp.cv
    assert cv.height >= 5
    # the sampler draws the reference family, so the fitted CV is compared with the CV that family
    # implies (ServeGen's recorded CV can differ from it); for Weibull c ~ 0.3 with ~3,000 gaps the
    # sample CV's own relative error is ~20 %, hence the tolerance on the median
    assert cv["rel_diff_family"].abs().median() < 0.2
    ks = cmp.data
    assert ks.height > 0
    # KS between the pool PMF and one fitted from n draws: 1.63/sqrt(n) (1 %) plus the binning error
    bound = 1.63 / np.sqrt(ks["n_requests"].to_numpy()) + 0.02  # + max_bin_mass
    assert (ks["ks"].to_numpy() < bound).mean() >= 0.95
    # Gamma and Weibull of similar CV need thousands of gaps to be told apart: windows with >= 2000
    # requests whose CV is away from 1 (where both reduce to the exponential); deepseek-r1 has them
    fam = cmp.family.filter((pl.col("cv_family_ref") - 1).abs() > 0.3)
    if name == "mm-image":
        return
    assert fam.height >= 5
    assert (fam["family_ref"] == fam["family_fit"]).mean() >= 0.7
    same = fam.filter(pl.col("family_ref") == pl.col("family_fit"))
    # the family's one shape, by its name (Gamma a, Weibull c)
    shape_ref = np.where(same["family_ref"] == "weibull", same["c_ref"], same["a_ref"])
    shape_fit = np.where(same["family_ref"] == "weibull", same["c_fit"], same["a_fit"])
    rel = pl.Series(np.abs((shape_fit - shape_ref) / shape_ref))
    assert rel.median() < 0.1


def _dispersion(t: np.ndarray, lo: float, hi: float, width: float) -> float:
    counts = np.bincount(np.floor((t[(t >= lo) & (t < hi)] - lo) / width).astype(int),
                         minlength=int((hi - lo) // width))
    return float(counts.var() / counts.mean())


def test_poisson_on_a_3s_clock_gives_poisson_windows_and_regenerates_its_dispersion(tmp_path, rng):
    # A Poisson process (2 req/s, 2 h) logged on a 3-s clock: 80 % of gaps are 0 and every positive
    # gap is a multiple of 3 s. Jittered within the clock step, every window's fitted family must
    # imply CV within 10 % of 1 (~1,200 gaps a window: the CV's sd is ~0.03), and a workload
    # regenerated from the pool must have the trace's count dispersion per 30 s (Poisson: 1; 240
    # buckets, sd sqrt(2/239) ~ 0.09 each).
    from servelab.fitting.pool_fit import family_cv, param_columns
    from servelab.generator.generate import generate

    t = np.floor(np.cumsum(rng.exponential(0.5, 14_400)) / 3.0) * 3.0
    t = t[t < 7200]
    store = write_store(pl.DataFrame({"timestamp": t, "client_id": "a"}), tmp_path / "s")
    trace_disp = _dispersion(t, 0, 7200, 30.0)
    assert trace_disp == pytest.approx(1.0, abs=5 * np.sqrt(2 / 239))

    def implied(pool):
        arr = pool.arrivals.filter(pl.col("rate") > 0)
        params = {p: arr[p].fill_null(np.nan).to_numpy() for p in param_columns()}
        return arr, family_cv(arr["family"].to_numpy(), params)

    pool = fit_pool(store, window_s="10m", conversations=False)
    assert pool.provenance["arrivals"]["clock_s"] == pytest.approx(3.0)
    arr, cv_family = implied(pool)
    assert arr.height == 12 and arr["family"].null_count() == 0
    assert np.all(np.abs(cv_family - 1) < 0.1), cv_family
    assert np.all(np.abs(arr["cv"].to_numpy() - 1) < 0.1)
    # the shapes agree with the measured CVs within sampling error (~0.03)
    assert np.all(np.abs(cv_family - arr["cv"].to_numpy()) < 0.1)
    gen = generate(pool, "pool", 7200, seed=3, conversations=False)
    assert _dispersion(gen["timestamp"].to_numpy(), 0, 7200, 30.0) == pytest.approx(
        trace_disp, abs=5 * np.sqrt(2 / 239) * np.sqrt(2))

    # positive control: timestamps taken as exact (clock="none") fit the positive gaps, all 3 s
    # apart: shapes of a near-regular process, and a regenerated workload far less dispersed
    naive = fit_pool(store, window_s="10m", conversations=False, clock="none")
    _, cv_naive = implied(naive)
    assert np.all(cv_naive < 0.5)
    gen = generate(naive, "pool", 7200, seed=3, conversations=False)
    assert _dispersion(gen["timestamp"].to_numpy(), 0, 7200, 30.0) < 0.5


def test_partial_last_window_rate_and_pool_generation(tmp_path, rng):
    # a 58-minute trace at 4.12 req/s: the last 10-minute window holds 8 minutes of requests and its
    # rate is their count over 8 minutes (it used to be over 10: 3.44 req/s), so generating from
    # the pool reproduces the last window's count
    from servelab.generator.generate import generate

    t = np.sort(rng.uniform(0, 3480, int(4.12 * 3480)))
    store = write_store(pl.DataFrame({"timestamp": t, "client_id": "a"}), tmp_path / "s")
    pool = fit_pool(store, window_s="10m", conversations=False)
    last = pool.arrivals.filter(pl.col("window_start") == 3000.0)["rate"][0]
    n_last = int(np.sum(t >= 3000))
    assert last == pytest.approx(n_last / (t.max() - 3000), rel=1e-12)
    assert last == pytest.approx(4.12, abs=4 * np.sqrt(4.12 * 480) / 480)
    gen = generate(pool, "pool", 3480, seed=5, conversations=False)["timestamp"].to_numpy()
    got = int(np.sum(gen >= 3000))
    assert abs(got - n_last) < 5 * np.sqrt(n_last)  # two Poisson-like counts of ~2,000

"""Benchmark and target checks of ``servelab validate`` (issue 17).

0. **Forecast rule** (``--parts forecast``): the total-rate forecast of
   :mod:`servelab.fitting.pool_forecast` on simulated series of known truth, 40 seeds each: fit on
   week 1 (10-min windows, Poisson counts at 0.05 req/s times a daily sine of amplitude 0.5, a
   log-normal day effect of sd 0.03 and AR(1) window noise of sd 0.1, phi 0.9), forecast week 2.
   Scenarios: stationary null, the null without a daily pattern, a linear trend of +8%/day, and a
   hump (+40% Gaussian bump of sd 1.5 days at day 3.5, flat again by week 2). Printed per scenario:
   trends kept, daily patterns kept, week-2 counts within 15%, the median and worst count error.
0b. **Churn rules** (``--parts churn``): :func:`servelab.fitting.pool_churn.churn_table` /
   :func:`~servelab.fitting.pool_churn.churn_model` on simulated client populations of known
   turnover (:func:`simulate_churn_arrivals`), ``--calibration-seeds`` seeds (default 40) each, 7 days
   of 600-s windows (the week a pool is fitted on). Clients send Poisson requests at a rate drawn
   log-uniformly in [1 per 2 days, 0.1 req/s] times a daily cycle (amplitude 0.6), optionally times a
   log-normal window multiplier (bursty). Nulls (no churn: 100 clients present all week): Poisson,
   bursty (window sd 1), no daily cycle; positive controls: an initial population plus new clients
   at lambda per day with exponential lifetimes of mean L days. Printed: per side (arrival,
   departure) the false flags among clients that did not arrive after the grace / depart before
   span end - grace, overall and among clients under 1e-5 req/s, the power among those that did;
   the fitted new-client rate and mean lifetime (median, 10-90% over seeds) and how often their
   95% intervals hold the truth.
0c. **The V1 verdict** (``--parts v1``): the report's validation area (finding ``servelab.V1``: the
   shape test of :func:`servelab.generator.validation.shape_test` at level 0.05 and the count
   within 15%) on simulated request traces of known truth (:func:`simulate_trace`: 3 days, 30
   clients, ~52,000 requests, split at half), ``--calibration-seeds`` seeds (default 20) per
   scenario of :data:`V1_SCENARIOS`: how often V1 holds, how often the shape test rejects its
   null, how often the earlier rule (closer than naive beyond the real half's half-vs-half
   distance on every compare distance) would have held, the median p-value and the mean
   advantage per shape metric (+: servelab better, in RMS units over the 20 blocks).
   Measured (20 seeds each, seeds 0-19): **null** (identical Poisson clients, no daily cycle:
   naive's one Poisson process is the truth): V1 0/20, shape test 0/20 (95% interval of the false
   "holds" rate 0-17%), median p 0.51; the earlier rule held 6/20 there. **Positive control**
   (heterogeneous bursty clients: own rates, window multipliers of sd 0.1-1, own length laws):
   V1 8/20 = **power 40%** (95% interval 19-64%), median p 0.077, median count error -6.4%
   (worst -9.5%); advantages: window rate +0.47, (rate, input) +0.39, (rate, output) +0.42,
   lengths -0.04 / -0.05 (a stationary mix: no length advantage to find). The earlier rule
   held 6/20. The first version of the shape test (every block scored against one whole
   candidate sample) rejected in 5/20 null traces: the blocks shared that sample's noise.
   **Volume shift** (x1.5 after the split), 10 seeds: V1 0/10 (count -37.6% median), the shape test
   (volume removed) rejects 1/10 (advantages +0.37 / +0.25 / +0.27 on the window metrics).
   After the extension's mend (2026-12-03 afternoon, ``--parts v1 --v1-scenarios 1,3,4
   --calibration-seeds 6``, 133.0 s under the lock): scenario 1 (identical Poisson clients with
   a daily cycle; either verdict is right) V1 2/6, shape test 2/6, median p 0.161, count -6.1%;
   scenario 3 (burst sd up to 2) V1 2/6, median p 0.165, count -7.7%; scenario 4 (churn 5/day,
   2-day lives, ~23.7k requests) V1 0/6 with the shape test rejecting 2/6 (median p 0.563): the
   count fails (median +10.6%, worst +45.6%). Advantages: the window metrics +0.22 to +0.45 in
   every scenario, the lengths -0.24 to +0.01 (the simulated clients' length laws are
   stationary: per-client modelling has nothing to add there). Six seeds a scenario: power not
   measured to better than +-40 points.
   **Scenario 4's count, found (2026-12-03 evening)**: the simulated population starts at 20
   clients and settles at 5/day x 2 days = 10 (``N(t) = 10 + 10 e^{-t/2}``): it shrinks by ~10%
   from the split to the later half's mean, but a forecast fitted on 1.5 days keeps no trend
   (trends are tested on >= 4 days) and the extension only split the forecast total between
   survivors and new clients. Now the forecast without a kept trend is multiplied by the churn
   model's expected volume path (:func:`servelab.generator.extend.expected_volume_path`); same
   command (with the censored templates' back-to-back repetition too): V1 1/6 (before 0/6),
   shape test 1/6, median p 0.319, median count error **-3.3%** (before +10.6%), worst -42.9%
   (before +45.6%). Per seed, extension and generation alone (the volume path only): -2.1 -4.7
   -14.5 +3.5 -42.8 +27.7% against +22.8 -8.2 -1.6 +25.6 -32.9 +45.6% before. What is left is
   the draw of a ~15-client population: in seed 4 the real later half sent 50% more than any
   level of the first half (forecast -32.9% before the mend).
0d. **The shape test's level where its null holds exactly** (``--parts aa``): two draws of one
   generator (servelab vs servelab of another seed; naive vs naive) tested against the real
   later part of simulated traces (:func:`aa_calibration`; scenarios 0 and 2 of
   :data:`V1_SCENARIOS`, ``--calibration-seeds`` seeds, default 40; ``--seed-offset`` to split the
   run into lock holds). Measured 2026-12-03: seeds 0-19 (integrator, before the extension's
   lifetime / length-mix mend): servelab-vs-servelab 2/20 and 2/20, naive-vs-naive 0/20 and 0/20;
   seeds 20-29 (after it; 365.7 s at load ~10): servelab 0/10 and 1/10, naive 0/10 and 1/10,
   median p 0.41 and 0.64; seeds 30-39 (120.1 s): servelab 0/10 and 0/10, naive 0/10 and 2/10.
   After the mend servelab 1/40, naive 3/40; over seeds 0-39 servelab 5/80 (6.25%, 95% CI
   2.1-14.0%; P(>= 5 | 80, 0.05) = 0.37), naive 3/80: not shown above 5%. 100 seeds a pair
   are not reached (the lock queue held 6-7 runs this session).
0e. **New clients' length laws** (``--parts newlengths``, :func:`new_client_lengths`): a churning
   population of two length types of known laws (:func:`simulate_typed_churn`: type A median
   input 60 at 0.01 req/s, type B 3000 at 0.0033 req/s, half the clients each, 20 + 20/day, 1-day
   lives, 4 days; fit 2, generate 2). Measured (seeds 0-9): 405 generated new clients, 0.748 of
   type A against the rule's 0.764 (the fitted half's request share; binomial sd 0.021, z -0.74);
   by request 0.765 generated vs 0.748 real: the request-level mix of new clients is recovered;
   every new client keeps one type. **Not reproduced: the pairing of rate and lengths** (real
   new type-A clients sent 2.7x as many requests as type B's over the later half, mean over
   seeds 498 vs 186; generated ones 1.2x, 240 vs 204: a new client's rate comes from a template
   drawn independently of its length laws), and part of the new clients' volume: per client,
   generated new clients sent 0.65 of the real ones' requests (231 vs 353, weighting the per-type
   means over seeds, 240 / 204 vs 498 / 186, by each side's type shares) when every template
   seen less than a day repeated once a day; a template still there at the span's end (it
   arrived late: censored) now repeats back to back, and they send 0.76 (268 vs 353; per type
   275 / 246; same command after the mend).
1. **Speed**: :func:`servelab.generator.validation.validate` with the split at half the time on a
   10 M-row, 2,000-client, 14-day synthetic store (benchmarks/synthetic_trace.py, cached under
   /work/bench_data/), target <= 3 min; prints the metrics table and the client turnover.
2. **Rolling splits**: the same store with ``--rolling K`` (default 3) folds after the split, on a
   seeded sample of whole clients of at most ``--rolling-max-requests`` (default 150,000; 0: every
   request); prints the rolling-split table (mean, sd, wins per metric).
   Measured 2026-12-03 under the lock (``--parts v1,speed,rolling,servegen``): validate on 10 M rows
   102.2 s wall, 126.8 CPU-s (load 1.5; before the shape test and the smooth naive, same session:
   112.6 s wall, 111.3 CPU-s at load 2.6: the shape test costs ~15 CPU-s at 5 M later rows);
   count +5.8%; shape test p 0.994 (servelab better in 4 of 20 blocks; on this synthetic store
   the smooth naive is closer on window_rate_ks, 0.072 vs 0.098). Rolling K=3 on 148,614
   requests of 85 whole clients: 32.6 s; shape test p 0.99, 0.93, 0.42.
   With ``--draws`` (2026-12-03 19:45, lock, ``--parts speed --rows 10000000``: the CLI's default,
   one draw above 1 M requests): validate **146.2 s wall** (target 180 s met), 122.7 CPU-s of
   the process, peak RSS 6.9 GB, load 4.8-6.4. **Count +30.0%** (servelab 6,462,524, naive
   6,451,979, real 4,971,465; 3/11 metrics): the forecast level (8.69 req/s, +5.8% on the real
   8.22) times the churn model's expected volume path (mean ~1.23: the model reads 187 new
   clients a day with 126-day lives and expects the population to grow). The path was applied
   whenever the forecast kept no trend; here a trend was tested on 7 whole days and not kept,
   and the path overrode that. **Found and changed (2026-12-03 evening, part 1b below)**: the
   synthetic store is not stationary -- ``synthetic_trace`` gives each small client a Beta(2, 1)
   share of the trace from a start uniform in what is left, so clients are born early (1 M
   store: 701 first seen on day 1, 66 on day 7, 4 on day 11) and leave late; the population
   rises through week 1 and falls through week 2 (per-day counts 49.9k -> 83.4k -> 48.2k). The
   churn model's arrivals are a Poisson process at week 1's *mean* rate (arrival times against
   uniform: KS p 4e-74), so it expected ~190 new clients a day where the split saw ~50 and
   falling, and departures are few before the split (long censored lives). The path is now
   applied only when the span is too short to test a trend
   (:func:`servelab.generator.extend.volume_path_applies`: ``RateForecast.curvature_p`` NaN).
   The 1 M-row store (same generator, 2,000 clients) with the default 5 draws (20:04, lock,
   ``--parts speed --rows 1000000``): **194.1 s wall** (load 10.5 -> 3.0), 148.2 CPU-s, peak RSS
   3.1 GB: above 3 minutes (the budget is stated for 10 M, where the default is one draw);
   count +24.6% (per draw +23.9% to +25.3%, naive +24.6% to +25.0%: the same volume path),
   expected score lower on 4/11, verdicts naive 5, tie 6. The cost of a draw follows the
   clients x windows more than the requests, so a request threshold is a rough proxy; a lower
   one (or draws in parallel) is left to measure.
   **Default lowered to 5 draws up to 500,000 requests** (2026-12-03 late; after the volume-path
   rule), ``servelab validate STORE --split 0.5 -o DIR`` under the lock, /usr/bin/time: 10 M rows
   (1 draw) **71.8 s wall**, 90.7 CPU-s (user 57.7 + sys 33.0), peak RSS 6.8 GB, load 1.1, count
   5,264,446 vs real 4,971,465 (**+5.9%**, naive +5.7%; before the rule +30.0%); 1 M rows (now 1
   draw) 20.3 s wall, 24.8 CPU-s, count 536,732 vs 504,281 (**+6.4%**, naive +6.0%); the same
   with ``--draws 5`` 67.3 s wall, 82.5 CPU-s (load 1.3; 194.1 s at load 10.5 above), count +6.1%
   (mean of draws), verdicts naive 3, tie 8; a 500,000-row store of the same generator
   (``synthetic_trace``, 2,000 clients, 14 days, seed 0; default 5 draws) 42.2 s wall, 51.1
   CPU-s, count **+33.5%**: there week 1's hump passed the forecast's curvature test (Mann-Kendall
   p 0.003, curvature p 0.038 >= 0.01), so a trend was kept and extrapolated (the volume path
   plays no part; part 1b's table gives the same count under both rules).
   **After the time-of-day rule of the extension** (2026-12-04 04:13-04:22, one lock hold, interleaved
   A/B of the three v17 files at 14eb967 (session start) and at f7f6b1c, ``servelab validate STORE
   --split 0.5 --pool-window 10m -o DIR``, /usr/bin/time, load 2.4-6.2): 1 M rows (1 draw), two
   rounds: base 26.8 / 29.0 s wall, 31.7 / 33.0 CPU-s; new 30.2 / 28.5 s, 34.2 / 32.4 CPU-s;
   window_rate_ks servelab 0.0953 -> **0.0538** (naive 0.0714 / 0.0713), count +6.4% -> +6.2%.
   10 M rows (1 draw): base 102.5 s wall, 127.5 CPU-s, 6.9 GB; new **98.6 s wall**, 119.6 CPU-s,
   6.5 GB (target 180 s met); window_rate_ks 0.0988 -> **0.0565** (naive 0.0717: the loss the
   closing note named is now a win), count +5.9% -> +5.8%; servelab closer on 10 of 11 (input_ks
   0.0046 vs 0.0037, noise floor 0.0011). The same 10 M run alone at 04:03 (load 4-8): 114.1 s wall,
   136.1 CPU-s. The extension's rows cost nothing measurable.
1b. **The churn volume path's rule** (``--parts volumepath``, :func:`part_volume_path`; ``--volume-path-rows``
   the synthetic stores, default 1 M and 10 M): per case the expected count past the split of
   the extension (servelab's, but for the arrivals' Poisson noise) and of naive's smooth total,
   under the old rule (path whenever the forecast keeps no trend) and the new one, against the
   real later count; with the forecast's tests and the churn model's numbers. Cases of known
   truth: a stationary population with churn (:func:`simulate_trace`, 14 days, 20 clients, 5 new
   a day, 4-day lives, split at 7 days; seeds 0-11), a stationary one without churn (seeds 0-1),
   V1 scenario 4 (1.5-day fit of a shrinking population; seeds 0-5), ServeGen m-small week 1 ->
   2 (the ``--servegen-shared --servegen-share 0.001`` log), the 1 M and 10 M stores. Measured
   2026-12-03 22:00-22:15 (niced; expected counts, old -> new ratio to the real count): synthetic
   1 M 1.247 -> **1.061**, 10 M 1.298 -> **1.058** (the rest: the forecast level on a hump the
   trend test refused, curvature p 0.003 / 0.0009); m-small 0.918 -> 0.899; V1 scenario 4
   unchanged (0.976 0.955 0.859 1.038 0.565 1.283: no trend testable on 1.5 days, the path kept);
   stationary without churn unchanged (path 1); stationary with churn median 0.946 -> 0.936,
   median absolute error 6.5% -> 7.0%, range 0.61-1.18 -> 0.66-1.07 (seed 8, 41 arrivals and 28
   departures seen in week 1 by chance: 1.178 -> 0.998), inside the population's own week-to-week
   variation (real week 2 over week 1 on those seeds: 0.96-1.45, median 1.04; 20 clients of
   log-uniform rates over a 20-fold range). The path adds nothing on a stationary
   population and extrapolates the churn model's misreading of a non-stationary one; what it
   was for (a span too short to test a trend, V1 scenario 4) keeps it.
2b. **Area** (``--parts area``): the report's validation area on the same store under the full
   and the quick budget (bounded samples of whole clients, 150,000 and 50,000 requests): CPU and
   wall seconds, the sample, the verdict.
3. **ServeGen's shipped pools** (``--servegen-pools``, default m-small and deepseek-r1: the slices
   in raw_traces, 5 clients each; ``--servegen-shared``: the full pools in ../shared/data/servegen,
   m-small 38 clients and 6 M requests at 1%): a log over the pool's span
   generated from it at ``--servegen-share`` (1%) of its rate (seeded), fitted on its first week
   and validated on the second (a pool shorter than two weeks: split at half its time). Target: servelab beats naive on every compare metric, request count within
   15% of the real week 2. Printed besides: the volume per day before and after the split with
   the 95% prediction interval of the later total that the earlier days' mean and spread allow
   (could the part before the split have told the later volume?), the gaps longer than a pool
   window on each side (outages), and the same split with the real later rate per 600-s window
   given to both generators (``validate(rate=...)``, an oracle of the volume: what is left is the
   shape given the volume).

   Measured (m-small slice at 0.5%, seed 0; at 1% the forecast part is the same: 8/11, -24.0%):
   forecast 8/11, count -24.7%. Week 1's whole days: mean 40,608, sd 2,247 (5.5%), Kendall tau
   0.07 (p 1.00, no trend); week 2: +33.5% on that mean, its first day +53.4%, its largest day
   +54.6% over week 1's largest. The 95% prediction interval of week 2's total from week 1 is
   +-8.2% around week 1's mean; the real total is 8.0 sd outside it: week 1 holds no sign of the
   rise, and no forecast fitted on it can reach the 15% target except by chance. Outages: week 1
   has 8 gaps > 600 s (longest 867 s), week 2 19 (longest 4,201 s; the pool's dominant client idle
   for up to 70 min): gap CV 9.02 in week 2, 5.10 without those gaps (servelab 5.92, naive 7.30):
   gap_cv is lost to outages week 1 never showed. Given the real volume (oracle): count -1.2%,
   servelab closer on 9/11 -- every distance and every shape value; naive is closer only on
   n_requests / mean_rate (+0.8% vs -1.2%, both on the given rate).
   **The full m-small pool** (``--servegen-shared --servegen-share 0.001``: all 38 clients, the
   smallest holds ~20 requests at 0.1%; 613,984 requests, 32 clients in week 2, 24 of them seen in
   week 1): count 299,785 vs real 334,010 (**-10.2%: the 15% target met**); week 1's days rise
   29.4k -> 47.7k (Kendall tau 0.87, p 0.02), week 2 +18.1% on week 1's mean, inside the 95%
   prediction interval (+-27%); servelab closer on 7/11 (window_rate_ks 0.105 vs 0.136,
   joint_input 0.256 vs 0.281) but not on the lengths: input_ks 0.186 vs 0.106, output_ks 0.228
   vs 0.086, joint_output 0.966 vs 0.443 -- shape test p 1.0 (rate +0.82, (rate, input) +0.89,
   (rate, output) -0.99, lengths -0.96 / -0.99): servelab's week-2 length mix (13 synthetic new
   clients on templates, survivors' last-day mix) is worse than naive's week-1 mix. Oracle volume:
   count -0.7%, 6/11, the same length losses, shape test p 1.0.
   Why, found by client (2026-12-03 afternoon): not the length laws of new clients but (a) one
   exponential lifetime of 16 days for every survivor retired clients 14, 27 and 12 (a third of
   week 2) in some seeds; (b) the time-of-day PMFs were unweighted means over 7 days, so client
   17's three quiet days (2,000 requests, longer outputs) weighed as much as its four busy ones
   (12,000), generated input KS against its own week 2 0.40; (c) a template seen 30 min (66
   requests) repeated back to back made one new client 7% of week 2 (real new clients: 1.5%).
   After the mend (Lomax lifetimes kept by a test, request-weighted PMF means, daily repetition
   of short templates, new clients' length laws from a request-weighted client draw), same
   command: count 299,401 (**-10.4%**), servelab closer on **10/11** (window_rate_ks 0.109 vs
   0.142, joint_input 0.240 vs 0.285, joint_output 0.360 vs 0.437, input_ks 0.094 vs 0.105,
   output_ks 0.060 vs 0.086); lost only rate_input_corr (0.091 vs naive 0.072, real -0.045);
   shape test p 9.5e-7 (20 of 20 blocks; +0.80 / +0.88 / +0.90 / +0.20 / +0.93). Oracle volume:
   9/11 (lost n_requests / mean_rate: -0.8% vs -0.5%, both on the given rate), p 1.9e-6.
   **Why rate_input_corr was lost (found 2026-12-03 evening)**: at compare's 30-s windows the real
   week 2's value, -0.045, is the windowing (+0.122 with the inputs permuted over all requests: a
   window mean of more draws of a skewed law is larger in the median) plus the client mix (-0.048
   with inputs permuted within each client), and that mix is client 14's presence (22% of week 2's
   requests, mean input 25: +0.131 without it; without any other of the five largest clients
   -0.129 to -0.053). In validate seed 0 the extension drew client 14's departure 5 hours into
   week 2 (its Lomax residual, given 7 days' presence, is that short with probability 0.2%; seed 0
   drew 4 departures of 22 survivors where about 1 is expected): servelab's workload lost the
   mix and came out at +0.091 (naive +0.072). With client 14 kept (validate seeds 1 and 2, same
   log and pool) servelab gives +0.015 and -0.026 against naive's +0.088 and +0.081 (real
   -0.045): closer. The model is not at fault on this evidence: it gives a client present all of
   week 1 a 4.9% chance of leaving within week 2, and of the 18 such clients 1 left (client 13;
   client 40, 44 requests in week 1, is silent on week 2's last day).
   A hazard that falls with the client's request rate (busy clients stay) was fitted and tested:
   not kept (rate exponent +0.88 under the Lomax, LR p 0.14; -0.09 under the exponential, p 0.61):
   week 1's 8 departures include clients of high rate over a short presence (client 0: 66
   requests in 30 min). ``--servegen-validate-seeds`` prints the spread over validate seeds.
   After the churn volume path and the censored templates' repetition (same log, validate seed
   0, the week-1 pool refitted identically): count 305,752 (**-8.5%**; naive 305,884: both follow
   the same total, so ``n_requests`` / ``mean_rate`` go to whichever draw lands nearer, here
   naive by 132 requests), window_rate_ks 0.096 vs 0.128, joint_input 0.213 vs 0.262,
   joint_output 0.342 vs 0.432, input_ks 0.095 vs 0.105, output_ks 0.060 vs 0.086,
   rate_input_corr +0.080 vs +0.066 (client 14 still departs in this seed): 8/11; shape test p
   4.8e-6 (19 of 20 blocks).
   **Five draws** (``validate(draws=5)``, the CLI's default at this size; 2026-12-03 19:28 under
   the lock, ``--parts servegen --servegen-pools m-small --servegen-shared --servegen-share 0.001
   --draws 5``, validate 74.1 s, process 84.4 s wall / 37.0 CPU-s, load 5.8-7.9): count 307,424
   (mean of the draws, **-8.0%**; per draw -7.7% to -8.5%, naive -8.1% to -8.4%); servelab's
   expected score (mean over draws of its distance to week 2) is lower than naive's on **11 of 11**
   metrics, and the paired test over the 5 draws (5 of 5 needed at 5%: p = 1/32) decides 8 for
   servelab -- gap_cv, window_rate_cv, rate_output_corr and the five distances (window_rate_ks
   0.093 vs 0.113, joint_input 0.191 vs 0.239, joint_output 0.266 vs 0.407, input_ks 0.078 vs
   0.105, output_ks 0.040 vs 0.086) -- and calls 3 a tie: n_requests and mean_rate (servelab
   closer in 4 of 5 draws, both on the same forecast total, -8.0% vs -8.2% on average) and
   rate_input_corr (4 of 5; -0.024 +- 0.059 vs naive +0.078 +- 0.007, real -0.045: servelab's
   spread is client 14's departure in some draws). No metric goes to naive. Seed 0's draw is the
   single-draw run above (-8.5%, 8/11): the multi-draw form removes that run's luck.
   **After the churn volume path's rule** (part 1b: no path on a span where a trend was tested;
   same command, 2026-12-03 22:20, niced at load ~10, validate 67.3 s): count 300,352 (mean of
   the draws, **-10.1%**; per draw -9.7% to -10.4%, naive -10.0% to -10.4%: target met); expected
   score lower on **11 of 11** metrics; paired test servelab 8 (gap_cv, window_rate_cv,
   rate_output_corr, the five distances: window_rate_ks 0.112 vs 0.127, joint_input 0.223 vs
   0.259, joint_output 0.283 vs 0.416, input_ks 0.079 vs 0.105, output_ks 0.041 vs 0.086), tie 3
   (n_requests and mean_rate: servelab closer in 3 of 5 draws, both on one forecast total;
   rate_input_corr 4 of 5, -0.016 +- 0.059 vs naive +0.085, real -0.045), naive 0. Shape test p
   1.9e-6 (19 of 20 blocks). The count lost 2.1 points to the rule (-8.0% before).
   deepseek-r1 slice (1 day, split at 12 h): forecast 3/11, count +281%. Before the split, 1.46-h
   blocks fall from 1,076 to 177 requests (Kendall tau -0.71); after it they are 1-522; 85% of
   the later requests come from two clients never seen before the split (client 13: 740 of 880).
   Within half a day a fall is not told from the daily cycle (trends are tested on >= 4 whole
   days) and an unseen client's volume and lengths are not in the data. With the oracle volume:
   count -13.0%, 6/11 (lost: the length metrics and rate-output correlation, i.e. client 13's
   lengths, drawn from a template of the seen clients).
4. **Real traces in ../shared/data**: the target asks for a real per-client trace split in half;
   none of the shared real traces carries client ids (Azure 2023 code: one hour, no ids; BurstGPT:
   54 rows; Mooncake: synthetic arrivals), so the check runs on the Azure trace as one client and
   says so.
5. **The target table** (2026-12-04, v17; not a part of this script: each store through the CLI,
   ``nice -n 19 servelab validate STORE --split 0.5 -o DIR``, default draws, then the counts and
   the metrics servelab loses read from validate.json: by the paired verdict with 5 draws, by
   ``|value - reference|`` with 1). The shared traces ingested with ``servelab ingest``; the
   ServeGen logs generated from the full pools in ../shared/data/servegen (seed 0; m-small at
   0.1% of its rate, 613,984 requests over 14 days; deepseek-r1 and mm-image at 1%, one day);
   "sparse 23 d" is /work/bench_data's 4,244-client synthetic store (the issue's real 23-day trace
   is not shipped). Before this session validate stopped on the three shared traces (10-min pool
   window on a one-hour trace: "shorter than 4 windows of 600 s"), and on the sparse store lost 7
   of 11 metrics (window_rate_ks 0.237 vs naive 0.049, input_ks 0.123 vs 0.016)::

     trace            pool  real later  servelab (ratio)    naive (ratio)       servelab loses
     Azure 2023 code  300 s      3,992    6,649 (+66.6%)     6,703 (+67.9%)    none (5 draws)
     BurstGPT head54  300 s         30       32 (+6.7%)         31 (+3.3%)     rate_input_corr
     Mooncake (Pois.) 120 s      2,198    2,005 (-8.8%)      2,042 (-7.1%)     window_rate_ks
     sparse 23 d      600 s     13,320   13,566 (+1.8%)     13,685 (+2.7%)     input_ks, output_ks
     SG m-small wk1>2 600 s    334,010  299,722 (-10.3%)   299,326 (-10.4%)   rate_input_corr (1 draw)
     SG deepseek-r1   600 s      6,699    5,897 (-12.0%)     5,859 (-12.5%)    none (5 draws)
     SG mm-image      600 s      4,431    4,221 (-4.7%)      4,168 (-5.9%)     none (5 draws)
     synthetic 1 M    600 s    504,281  535,450 (+6.2%)    534,660 (+6.0%)    n_requests, mean_rate,
                                                                               input_ks, output_ks (1 draw)

   Azure: the later half holds a near-outage (32 requests in one 5-min window, then a third of
   the first half's rate: 5-min counts 781 701 1116 1030 1199 | 913 881 870 577 32 363 356); the
   forecast level (the median of the five blocks before the split, 3.43 req/s) cannot see it, and
   with one client (no ids) there is no churn to model. Mooncake's arrivals are synthetic Poisson:
   naive's one Poisson process is the truth there. sparse 23 d: its lengths are drawn independently
   of the client (c00000 against the rest: input KS 0.015), so naive's pooled mix is the truth and
   per-client PMFs of clients seen 1-6 times (median 1 request) add their sampling noise
   (input_ks 0.039 vs 0.017, output_ks 0.036 vs 0.010); a shrinkage of sparse clients' PMFs
   towards the pool's mix is the next step. m-small's rate_input_corr is the known draw of client
   14's departure (part 3; 0 losses over 5 draws).

"Beats naive" per metric: for a distance, smaller; for a value, closer to the real later part's
value (``|value - reference|`` smaller).

Run large parts under the shared lock::

    flock /tmp/servelab-bench.lock .venv/bin/python benchmarks/bench_validate.py [--rolling 3]
        [--parts forecast,area,speed,rolling,servegen,real]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
# the shared data sit beside the main checkout (/work/main -> /work/shared) and two levels above a
# worktree (/work/wt/NAME -> /work/shared)
SHARED = next((p / "shared" / "data" for p in (REPO.parent, REPO.parent.parent) if (p / "shared" / "data").is_dir()),
              REPO.parent / "shared" / "data")
BENCH_DATA = Path("/work/bench_data")
DAY = 86400.0


def _print_tables(*tables: pl.DataFrame, precision: int, width: int, str_len: int | None = None) -> None:
    """Print polars tables whole: every row and column, floats at ``precision`` digits, no shape or
    type lines, lines up to ``width`` characters, strings up to ``str_len`` characters when given."""
    extra = {} if str_len is None else {"fmt_str_lengths": str_len}
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=precision, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=width, **extra):
        for table in tables:
            print(table)


def _store(rows: int, clients: int, days: int, seed: int):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic_trace import make_synthetic_store

    from servelab.analysis.store import open_store

    path = BENCH_DATA / f"store_rows{rows}_clients{clients}_days{days}_seed{seed}"
    if (path / "manifest.json").is_file():
        return open_store(path)
    BENCH_DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    make_synthetic_store(tmp, n_rows=rows, n_clients=clients, days=days, seed=seed, overwrite=True)
    tmp.rename(path)
    return open_store(path)


def _table(doc: dict) -> pl.DataFrame:
    from servelab.analysis.fidelity import METRICS

    rows = []
    for m, (kind, _) in METRICS.items():
        ref, ours, naive = doc["reference"][m], doc["servelab"][m], doc["naive"][m]
        if None in (ref, ours, naive):
            win = None
        else:
            win = abs(ours - ref) < abs(naive - ref)
        rows.append({"metric": m, "kind": kind, "reference": ref, "servelab": ours, "naive": naive,
                     "servelab_closer": win})
    return pl.DataFrame(rows)


def _show(title: str, result, seconds: float | None = None) -> dict:
    doc = result.to_json()
    t = _table(doc)
    print(f"\n== {title}" + (f" ({seconds:.1f} s)" if seconds is not None else ""))
    for s in doc["splits"]:
        print(f"split {s['split_s']:g} .. {s['end_s']:g} s, window {s['window_s']:g} s; clients {s['clients']}")
        ext = s["extension"]
        print(f"extension: survivors {ext['survivors']} ({ext['survivors_departing']} depart), new {ext['new_clients']}; "
              f"churn {json.dumps({k: ext['churn'][k] for k in ('new_clients_per_day', 'mean_lifetime_days')})}; "
              f"forecast {json.dumps(ext['forecast']) if isinstance(ext['forecast'], str) else json.dumps({k: ext['forecast'][k] for k in ('level_rps', 'slope_rps_per_day', 'trend_kept', 'backtest_nmae', 'seasonal_naive_nmae')})}")
    _print_tables(t, precision=4, width=200)
    for s in result.splits:
        if s.shape_test is not None:
            print(f"split {s.split_s:g}: {s.shape_test.text()}")
    if result.draws > 1:  # several draws: per metric the expected score over draws and the paired test
        dt = result.draws_table()
        print(f"{result.draws} draws per generator (seeds {doc['draws']['seeds']}); the table above holds the "
              f"draws' means; expected score = mean over draws of |value - reference| (or the distance):")
        _print_tables(dt.select("metric", "reference", "servelab_mean", "servelab_sd", "naive_mean", "naive_sd",
                                "servelab_score", "naive_score", "servelab_wins", "draws", "p_servelab", "p_naive",
                                "verdict"), precision=4, width=250)
        for d in result.splits[0].draws:
            n = d["servelab"]["n_requests"] / doc["reference"]["n_requests"] - 1
            print(f"draw seed {d['seed']}: count servelab {n:+.1%}, naive "
                  f"{d['naive']['n_requests'] / doc['reference']['n_requests'] - 1:+.1%}")
        closer = dt.filter(pl.col("servelab_score").is_not_null())
        wins = closer.filter(pl.col("servelab_score") < pl.col("naive_score"))["metric"].to_list()
        print(f"servelab's expected score lower on {len(wins)} of {closer.height} metrics (not on: "
              f"{closer.filter(pl.col('servelab_score') >= pl.col('naive_score'))['metric'].to_list()}); verdicts at "
              f"{doc['draws']['level']:g}: " + ", ".join(f"{v} {n}" for v, n in dt.group_by("verdict").len().sort("verdict").iter_rows()))
    beats = t.filter(pl.col("servelab_closer").is_not_null())
    n_ok = int(beats["servelab_closer"].sum())
    err = abs(doc["servelab"]["n_requests"] - doc["reference"]["n_requests"]) / doc["reference"]["n_requests"]
    print(f"servelab closer than naive on {n_ok} of {beats.height} metrics "
          f"(not on: {beats.filter(~pl.col('servelab_closer'))['metric'].to_list()}); "
          f"request count {doc['servelab']['n_requests']:.0f} vs real {doc['reference']['n_requests']:.0f} "
          f"({err:.1%}; target <= 15%: {'met' if err <= 0.15 else 'NOT met'})")
    return doc


FORECAST_SCENARIOS = ("null", "null, no daily pattern", "linear +8%/day", "hump +40%")


def _simulated_week(scenario: str, seed: int):
    """Window starts and Poisson counts of two weeks of a scenario (module docstring, part 0)."""
    import numpy as np
    from scipy.signal import lfilter

    W = 600.0
    rng = np.random.default_rng(seed)
    t = np.arange(0, 14 * DAY, W)
    d = t / DAY
    level = {"linear +8%/day": 1 + 0.08 * d, "hump +40%": 1 + 0.4 * np.exp(-(((d - 3.5) / 1.5) ** 2))}.get(
        scenario, np.ones_like(d))
    season = np.ones_like(d) if scenario == "null, no daily pattern" else 1 + 0.5 * np.sin(2 * np.pi * d)
    day = rng.normal(0.0, 0.03, 14)[d.astype(np.int64)]
    ar = lfilter([1.0], [1.0, -0.9], rng.normal(0.0, 0.1 * np.sqrt(1 - 0.81), t.size))  # AR(1), sd 0.1
    return t, rng.poisson(0.05 * level * season * np.exp(day + ar) * W)


def forecast_table(seeds: int = 40) -> pl.DataFrame:
    """Part 0: one row per scenario (module docstring)."""
    import numpy as np

    from servelab.fitting.pool_forecast import fit_rate_forecast

    W = 600.0
    rows = []
    for scenario in FORECAST_SCENARIOS:
        trend = daily = within = 0
        errs = []
        for seed in range(seeds):
            t, c = _simulated_week(scenario, seed)
            wk = t < 7 * DAY
            f = fit_rate_forecast(pl.DataFrame({"client_id": "x", "window_start": t[wk], "window_s": W,
                                                "rate": c[wk] / W}), (0.0, 7 * DAY))
            err = float(f.rate_at(t[~wk] + W / 2).sum() * W / c[~wk].sum() - 1)
            trend += f.slope != 0
            daily += f.period_s is not None
            within += abs(err) <= 0.15
            errs.append(err)
        rows.append({"scenario": scenario, "seeds": seeds, "trend_kept": trend, "daily_kept": daily,
                     "count_within_15pct": within, "median_count_error": float(np.median(errs)),
                     "worst_count_error": float(max(errs, key=abs))})
    return pl.DataFrame(rows)


def part_forecast(seeds: int = 40) -> None:
    t0 = time.perf_counter()
    table = forecast_table(seeds)
    print(f"\n== forecast rule on simulated series of known truth, {seeds} seeds each "
          f"({time.perf_counter() - t0:.1f} s): fit week 1, forecast week 2's count")
    _print_tables(table, precision=3, width=200)


def simulate_churn_arrivals(seed: int, *, days: float = 7.0, n_initial: int = 100, new_per_day: float = 0.0,
                            mean_life_days: float = math.inf, rate_range: tuple[float, float] = (1 / (2 * DAY), 0.1),
                            burst_sd: float = 0.0, diurnal: float = 0.6, window_s: float = 600.0,
                            life_alpha: float | None = None, arrival_slope_per_day: float = 0.0):
    """A pool's arrivals table of a client population of known turnover, and the truth.

    ``n_initial`` clients are present from the start (their lives are residual: exponential of
    mean ``mean_life_days`` from 0, memoryless), ``Poisson(new_per_day * days)`` arrive uniformly
    over the span with exponential lives. A client sends Poisson requests at its rate (log-uniform
    in ``rate_range``, req/s) times ``1 + diurnal * cos(2 pi (t / day - 14 / 24))``, times a
    log-normal window multiplier of sd ``burst_sd`` (mean 1) when > 0. A client-window is active
    (a row, rate = requests / window) when it holds a request, as in a fitted pool.

    With ``life_alpha``, lifetimes are heterogeneous: each client's hazard is Gamma of shape
    ``life_alpha`` and mean ``1 / mean_life_days`` per day (rate ``life_alpha * mean_life_days``
    days), its life exponential of that hazard: Lomax lifetimes of shape ``life_alpha`` and scale
    ``life_alpha * mean_life_days`` days (the exponential is ``life_alpha -> inf``).

    With ``arrival_slope_per_day`` = ``c``, the arrivals' intensity is log-linear, proportional to
    ``exp(c t / day)`` (still ``new_per_day`` a day on average over the span): births by inverse CDF.

    Returns
    -------
    (polars.DataFrame, polars.DataFrame, (float, float))
        The arrivals table (``client_id, window_start, window_s, rate``), the truth per client
        (``client_id, birth_s`` (-inf for initial clients), ``death_s, rate``) and the span.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    T = days * DAY
    K = int(round(T / window_s))
    n_new = int(rng.poisson(new_per_day * days))
    n = n_initial + n_new
    u = rng.uniform(0.0, T, n_new)
    if arrival_slope_per_day:
        c = arrival_slope_per_day / DAY
        u = np.log1p(u / T * np.expm1(c * T)) / c
    birth = np.r_[np.full(n_initial, -np.inf), np.sort(u)]
    life = rng.exponential(mean_life_days * DAY, n) if math.isfinite(mean_life_days) else np.full(n, np.inf)
    if life_alpha is not None and math.isfinite(mean_life_days):
        # a hazard per client, Gamma(alpha, rate alpha * L): the draw above is scaled by L / hazard
        hazard = rng.gamma(life_alpha, 1.0 / (life_alpha * mean_life_days * DAY), n)
        life = life / (mean_life_days * DAY) / hazard
    start = np.maximum(birth, 0.0)
    death = start + life
    rate = np.exp(rng.uniform(math.log(rate_range[0]), math.log(rate_range[1]), n))
    t0 = np.arange(K) * window_s
    cover = np.clip(np.minimum(death[:, None], t0 + window_s) - np.maximum(start[:, None], t0), 0.0, window_s)
    cycle = 1.0 + diurnal * np.cos(2 * np.pi * ((t0 + window_s / 2) / DAY - 14 / 24))
    mult = np.exp(rng.normal(-burst_sd ** 2 / 2, burst_sd, (n, K))) if burst_sd > 0 else 1.0
    counts = rng.poisson(rate[:, None] * cycle * mult * cover)
    ci, ki = np.nonzero(counts)
    ids = np.array([f"c{i:05d}" for i in range(n)], dtype=object)
    arrivals = pl.DataFrame({"client_id": pl.Series(ids[ci].tolist(), dtype=pl.String), "window_start": t0[ki],
                             "window_s": np.full(ci.size, window_s), "rate": counts[ci, ki] / window_s})
    truth = pl.DataFrame({"client_id": pl.Series(ids.tolist(), dtype=pl.String), "birth_s": birth,
                          "death_s": death, "rate": rate})
    return arrivals, truth, (0.0, T)


#: (name, simulate_churn_arrivals keywords, true new clients per day, true mean lifetime in days)
CHURN_SCENARIOS = (
    ("null: no churn, Poisson", {}, 0.0, math.inf),
    ("null: no churn, bursty (window sd 1)", {"burst_sd": 1.0}, 0.0, math.inf),
    ("null: no churn, no daily cycle", {"diurnal": 0.0}, 0.0, math.inf),
    ("churn: 30 + 10/day, life 3 d", {"n_initial": 30, "new_per_day": 10.0, "mean_life_days": 3.0}, 10.0, 3.0),
    ("churn: 10 + 5/day, life 1 d", {"n_initial": 10, "new_per_day": 5.0, "mean_life_days": 1.0}, 5.0, 1.0),
    ("churn: 100 + 2/day, life 7 d", {"n_initial": 100, "new_per_day": 2.0, "mean_life_days": 7.0}, 2.0, 7.0),
    ("mixed lives: 30 + 10/day, Lomax alpha 0.3, mean hazard 1/(3 d)",
     {"n_initial": 30, "new_per_day": 10.0, "mean_life_days": 3.0, "life_alpha": 0.3}, 10.0, math.inf),
    ("mixed lives: 60 + 3/day, Lomax alpha 0.3, mean hazard 1/(10 d)",
     {"n_initial": 60, "new_per_day": 3.0, "mean_life_days": 10.0, "life_alpha": 0.3}, 3.0, math.inf),
)
#: clients below this rate (req/s, under one request a day) are reported apart
SPARSE_RPS = 1e-5


def churn_calibration(seeds: int = 40) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Part 0b: ``(flags, estimates)``, one row per scenario of :data:`CHURN_SCENARIOS` (module docstring)."""
    import numpy as np

    from servelab.fitting.pool_churn import churn_model, churn_table

    flag_rows, est_rows = [], []
    for name, kw, lam, life in CHURN_SCENARIOS:
        parts, est = [], []
        for seed in range(seeds):
            arrivals, truth, span = simulate_churn_arrivals(seed, **kw)
            table = churn_table(arrivals, span)
            g = float(table["grace_s"][0])
            parts.append(truth.join(table.select("client_id", "arrived", "departed"), on="client_id", how="inner")
                         .with_columns(born=pl.col("birth_s") >= g, died=pl.col("death_s") < span[1] - g))
            m = churn_model(table, span, arrivals=arrivals)
            mix = m.lifetime_mixture
            est.append((m.arrival_rate * DAY, m.mean_lifetime_s / DAY,
                        m.arrival_rate_ci[0] * DAY <= lam <= m.arrival_rate_ci[1] * DAY,
                        m.mean_lifetime_ci[0] / DAY <= life <= m.mean_lifetime_ci[1] / DAY,
                        mix is not None, mix.alpha if mix else math.nan, mix.beta_s / DAY if mix else math.nan))
        d = pl.concat(parts)
        sparse = pl.col("rate") < SPARSE_RPS

        def rate(flag, truth_col, want, extra=None):
            sel = pl.col(truth_col) if want else ~pl.col(truth_col)
            if extra is not None:
                sel = sel & extra
            return pl.col(flag).filter(sel).mean()

        f = d.select(clients=pl.len(), sparse_clients=sparse.sum(),
                     false_arrival=rate("arrived", "born", False), false_arrival_sparse=rate("arrived", "born", False, sparse),
                     false_departure=rate("departed", "died", False),
                     false_departure_sparse=rate("departed", "died", False, sparse),
                     power_arrival=rate("arrived", "born", True), power_departure=rate("departed", "died", True))
        flag_rows.append(pl.DataFrame({"scenario": [name], "seeds": [seeds]}).hstack(f))
        a = np.array(est, dtype=float)
        est_rows.append({"scenario": name, "true_new_per_day": lam, "new_per_day_median": float(np.median(a[:, 0])),
                         "new_per_day_p10": float(np.quantile(a[:, 0], 0.1)),
                         "new_per_day_p90": float(np.quantile(a[:, 0], 0.9)), "new_per_day_ci_covers": float(a[:, 2].mean()),
                         "true_life_days": life, "life_days_median": float(np.median(a[:, 1])),
                         "life_ci_covers": float(a[:, 3].mean()), "mixture_kept": float(a[:, 4].mean()),
                         "alpha_median": float(np.nanmedian(a[:, 5])) if a[:, 4].any() else math.nan,
                         "beta_days_median": float(np.nanmedian(a[:, 6])) if a[:, 4].any() else math.nan})
    return pl.concat(flag_rows, how="vertical_relaxed"), pl.DataFrame(est_rows)


def part_churn(seeds: int = 40) -> None:
    t0 = time.perf_counter()
    flags, est = churn_calibration(seeds)
    print(f"\n== churn rules on simulated populations of known turnover, {seeds} seeds each "
          f"({time.perf_counter() - t0:.1f} s): 7 days of 600-s windows, grace one day or ln(100)/rate")
    _print_tables(flags, est, precision=4, width=250)


def simulate_trace(seed: int, *, days: float = 3.0, n_initial: int = 30, new_per_day: float = 0.0,
                   mean_life_days: float = math.inf, rate_range: tuple[float, float] = (0.001, 0.02),
                   heterogeneous: bool = True, burst_sd: float = 0.5, diurnal: float = 0.6,
                   shift: float = 1.0, window_s: float = 600.0, arrival_slope_per_day: float = 0.0,
                   initial_life_days: float | None = None, id_width: int = 4) -> pl.DataFrame:
    """Requests (``timestamp, client_id, input_tokens, output_tokens``) of a simulated per-client trace.

    Clients as in :func:`simulate_churn_arrivals` (initial ones, new ones at ``new_per_day`` with
    exponential lives); per window a client's count is Poisson of its rate times the daily cycle
    times a log-normal window multiplier (mean 1) of sd ``burst_sd`` -- with ``heterogeneous``
    each client's own sd, log-uniform in [0.1, 2 burst_sd] -- times ``shift`` in the second half
    of the span; times uniform inside the window. Lengths are log-normal per client: with
    ``heterogeneous`` medians log-uniform in [50, 5000] (input) and [20, 1000] (output) and
    sigmas uniform in [0.3, 1.2]; else every client has medians 500 / 150 and sigma 0.8 (and the
    same burstiness): per-client modelling then has nothing to find.

    With ``arrival_slope_per_day`` = ``c`` the new clients' births follow an intensity proportional
    to ``exp(c t / day)`` (inverse CDF; ``new_per_day`` a day on average over the span, as in
    :func:`simulate_churn_arrivals`); with ``initial_life_days`` the initial clients' lives are
    exponential of that mean instead of ``mean_life_days``. Client ids are ``c`` and the index on
    ``id_width`` digits.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    T = days * DAY
    K = int(round(T / window_s))
    n_new = int(rng.poisson(new_per_day * days))
    n = n_initial + n_new
    u = np.sort(rng.uniform(0.0, T, n_new))
    if arrival_slope_per_day:  # births by inverse CDF of an intensity proportional to exp(c t)
        c = arrival_slope_per_day / DAY
        u = np.log1p(u / T * np.expm1(c * T)) / c
    birth = np.r_[np.zeros(n_initial), u]
    life = rng.exponential(mean_life_days * DAY, n) if math.isfinite(mean_life_days) else np.full(n, np.inf)
    if initial_life_days is not None:
        life[:n_initial] = rng.exponential(initial_life_days * DAY, n_initial)
    death = birth + life
    rate = np.exp(rng.uniform(math.log(rate_range[0]), math.log(rate_range[1]), n))
    sd = (np.exp(rng.uniform(math.log(0.1), math.log(2 * burst_sd), n)) if heterogeneous
          else np.full(n, float(burst_sd)))
    t0 = np.arange(K) * window_s
    cover = np.clip(np.minimum(death[:, None], t0 + window_s) - np.maximum(birth[:, None], t0), 0.0, window_s)
    cycle = (1.0 + diurnal * np.cos(2 * np.pi * ((t0 + window_s / 2) / DAY - 14 / 24))) * np.where(t0 >= T / 2, shift, 1.0)
    mult = np.exp(rng.standard_normal((n, K)) * sd[:, None] - sd[:, None] ** 2 / 2)
    counts = rng.poisson(rate[:, None] * cycle * mult * cover)
    ci, ki = np.nonzero(counts)
    c = counts[ci, ki]
    cid = np.repeat(ci, c)
    ts = np.repeat(t0[ki], c) + rng.uniform(0.0, window_s, int(c.sum()))
    if heterogeneous:
        med_in, med_out = np.exp(rng.uniform(math.log(50), math.log(5000), n)), np.exp(rng.uniform(math.log(20), math.log(1000), n))
        s_in, s_out = rng.uniform(0.3, 1.2, n), rng.uniform(0.3, 1.2, n)
    else:
        med_in, med_out, s_in, s_out = np.full(n, 500.0), np.full(n, 150.0), np.full(n, 0.8), np.full(n, 0.8)
    inp = np.maximum(1, np.round(med_in[cid] * np.exp(s_in[cid] * rng.standard_normal(cid.size)))).astype(np.int64)
    out = np.maximum(1, np.round(med_out[cid] * np.exp(s_out[cid] * rng.standard_normal(cid.size)))).astype(np.int64)
    o = np.argsort(ts, kind="stable")
    ids = np.array([f"c{i:0{id_width}d}" for i in range(n)], dtype=object)
    return pl.DataFrame({"timestamp": ts[o], "client_id": pl.Series(ids[cid[o]].tolist(), dtype=pl.String),
                         "input_tokens": inp[o], "output_tokens": out[o]})


#: (name, simulate_trace keywords, what V1 should say)
V1_SCENARIOS = (
    ("null: identical Poisson clients, no daily cycle", {"heterogeneous": False, "burst_sd": 0.0, "diurnal": 0.0},
     "does not hold (naive's one Poisson process is the truth)"),
    ("identical Poisson clients, daily cycle", {"heterogeneous": False, "burst_sd": 0.0},
     "either (servelab copies the last day's cycle; the forecast keeps none on 1.5 days)"),
    ("positive: heterogeneous bursty clients", {}, "holds"),
    ("positive: heterogeneous, burst sd up to 2", {"burst_sd": 1.0}, "holds"),
    ("positive: heterogeneous, churn 5/day, life 2 d", {"n_initial": 20, "new_per_day": 5.0, "mean_life_days": 2.0},
     "holds"),
    ("volume shift: heterogeneous, x1.5 after the split", {"shift": 1.5}, "does not hold (count)"),
)


def v1_calibration(seeds: int = 20, scenarios=None, rate_scale: float = 1.0, seed_offset: int = 0) -> pl.DataFrame:
    """Part 0c: one row per scenario: how often V1 holds, how often the shape test rejects its null
    (and the earlier noise-floor rule held), the median p-value, the mean advantage per shape metric,
    the median count error and the CPU seconds per run."""
    import numpy as np

    from servelab.analysis.findings import Verdict
    from servelab.analysis.store import write_store
    from servelab.generator.validation import SHAPE_METRICS
    from servelab.reports.areas.validation import _DISTANCES, VALIDATION, v1_outcomes

    rows = []
    for name, kw, expect in (V1_SCENARIOS if scenarios is None else [V1_SCENARIOS[i] for i in scenarios]):
        held, shape, old, errs, secs, requests, ps = 0, 0, 0, [], [], [], []
        adv = {m: [] for m in SHAPE_METRICS}
        for seed in range(seed_offset, seed_offset + seeds):
            lo, hi = kw.get("rate_range", (0.001, 0.02))
            frame = simulate_trace(seed, **{**kw, "rate_range": (lo * rate_scale, hi * rate_scale)})
            with tempfile.TemporaryDirectory() as tmp:
                store = write_store(frame, Path(tmp) / "sim", source="bench_validate.simulate_trace", fmt="simulated")
                t0 = time.process_time()
                ev = VALIDATION.measure(store, seed=seed)
                (f,) = VALIDATION.findings(ev)
                secs.append(time.process_time() - t0)
            held += f.verdict is Verdict.HOLDS
            st = ev.shape_test
            shape += bool(st is not None and st.servelab_better)
            ps.append(st.p_value if st is not None else math.nan)
            for m in SHAPE_METRICS:
                adv[m].append(st.advantage.get(m, math.nan) if st is not None else math.nan)
            ref, ours, naive = (ev.metrics[c] for c in ("reference", "servelab", "naive"))
            errs.append(ours["n_requests"] / ref["n_requests"] - 1)
            requests.append(frame.height)
            lost, won, _ = v1_outcomes(ours, naive, ev.noise_floor, _DISTANCES)
            old += bool(won) and not lost and abs(errs[-1]) <= 0.15
        rows.append({"scenario": name, "expected": expect, "seeds": seeds, "v1_holds": held, "shape_rejects": shape,
                     "earlier_rule_holds": old, "median_p": float(np.nanmedian(ps)),
                     **{f"adv_{m}": float(np.nanmean(v)) for m, v in adv.items()},
                     "median_requests": float(np.median(requests)), "median_count_error": float(np.median(errs)),
                     "worst_count_error": float(max(errs, key=abs)), "cpu_s_per_run": float(np.mean(secs))})
    return pl.DataFrame(rows)


def aa_calibration(seeds: int = 40, scenarios=(0, 2), seed_offset: int = 0) -> pl.DataFrame:
    """Part 0d: the shape test's level where the null holds exactly (A/A): per simulated trace
    (:data:`V1_SCENARIOS`), fit before the split and extend as :func:`~servelab.generator.validation.validate`
    does, then test servelab's workload against a second servelab workload of another seed, and
    naive's against naive's, on the real later part. Both candidates of a test are draws of one
    generator, so they predict equally well and the test must reject in at most about ``level``
    of the runs. One row per scenario: rejections out of ``seeds`` per pair."""
    import numpy as np

    from servelab.analysis.fidelity import choose_window
    from servelab.analysis.store import write_store
    from servelab.fitting.pool_fit import fit_pool
    from servelab.fitting.pool_settings import PoolFitSettings
    from servelab.generator.extend import extend_pool
    from servelab.generator.generate import generate
    from servelab.generator.naive import naive_generate
    from servelab.generator.validation import _smooth_total, resolve_split, shape_test

    rows = []
    for i in scenarios:
        name, kw, _ = V1_SCENARIOS[i]
        rej = {"servelab_vs_servelab": 0, "naive_vs_naive": 0}
        ps = []
        for seed in range(seed_offset, seed_offset + seeds):
            frame = simulate_trace(seed, **kw)
            t = frame["timestamp"]
            split = resolve_split(0.5, float(t.min()), float(t.max()), PoolFitSettings().window_s)
            end = math.nextafter(float(t.max()), math.inf)
            dur = end - split
            real = frame.filter(t >= split).with_columns(pl.col("timestamp") - split)
            with tempfile.TemporaryDirectory() as tmp:
                pool = fit_pool(write_store(frame.filter(t < split), Path(tmp) / "before", source="aa", fmt="simulated"))
                ext, info = extend_pool(pool, end, seed=seed)
                w = choose_window(real).window_s
                rate = _smooth_total(info, None, split, dur, pool.window_s)
                for pair, draw in (("servelab_vs_servelab", lambda s: generate(ext, "pool", dur, start=split, seed=s,
                                                                                  max_requests=None)),
                                   ("naive_vs_naive", lambda s: naive_generate(ext, rate, dur, start=split, seed=s,
                                                                               max_requests=None,
                                                                               data_span=tuple(pool.span)))):
                    res = shape_test(real, draw(seed), draw(seed + 10_000), w, dur, seed=seed)
                    rej[pair] += res.servelab_better
                    ps.append(res.p_value)
        rows.append({"scenario": name, "seeds": f"{seed_offset}-{seed_offset + seeds - 1}", **rej,
                     "median_p": float(np.nanmedian(ps)),
                     "p_below_0.5": float(np.mean(np.array(ps) < 0.5))})
    return pl.DataFrame(rows)


#: the two length types of :func:`simulate_typed_churn`: (input median, output median), sigma 0.3 each
LENGTH_TYPES = {"A": (60.0, 20.0), "B": (3000.0, 400.0)}
#: an input below this is type A's (its median x e^{6.4 sigma}; type B's median x e^{-6.4 sigma}: P < 1e-10 each)
TYPE_CUT = 400.0


def simulate_typed_churn(seed: int, *, days: float = 4.0, n_initial: int = 20, new_per_day: float = 20.0,
                         mean_life_days: float = 1.0, rate_a: float = 0.01, rate_b: float = 0.0033,
                         p_a: float = 0.5, window_s: float = 600.0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Requests of a churning population of two length types of known laws, and the truth per client.

    ``n_initial`` clients from 0 and ``Poisson(new_per_day * days)`` born uniformly over the span, all
    with exponential lives of mean ``mean_life_days``; each is type A with probability ``p_a``
    (Poisson requests at ``rate_a`` req/s, log-normal lengths of :data:`LENGTH_TYPES` ``A``) or B
    (``rate_b``, lengths ``B``); sigma 0.3 on both fields. The types' inputs never overlap in
    practice (:data:`TYPE_CUT`), so a generated request's type is read off its input.

    Returns
    -------
    (polars.DataFrame, polars.DataFrame)
        The requests (``timestamp, client_id, input_tokens, output_tokens``) and the truth
        (``client_id, birth_s, death_s, type``).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    T = days * DAY
    n = n_initial + int(rng.poisson(new_per_day * days))
    birth = np.r_[np.zeros(n_initial), np.sort(rng.uniform(0.0, T, n - n_initial))]
    death = np.minimum(birth + rng.exponential(mean_life_days * DAY, n), T)
    is_a = rng.random(n) < p_a
    rate = np.where(is_a, rate_a, rate_b)
    counts = rng.poisson(rate * (death - birth))
    cid = np.repeat(np.arange(n), counts)
    ts = birth[cid] + rng.random(cid.size) * (death - birth)[cid]
    med_in = np.where(is_a, LENGTH_TYPES["A"][0], LENGTH_TYPES["B"][0])[cid]
    med_out = np.where(is_a, LENGTH_TYPES["A"][1], LENGTH_TYPES["B"][1])[cid]
    inp = np.maximum(1, np.round(med_in * np.exp(0.3 * rng.standard_normal(cid.size)))).astype(np.int64)
    out = np.maximum(1, np.round(med_out * np.exp(0.3 * rng.standard_normal(cid.size)))).astype(np.int64)
    o = np.argsort(ts, kind="stable")
    ids = np.array([f"c{i:04d}" for i in range(n)], dtype=object)
    frame = pl.DataFrame({"timestamp": ts[o], "client_id": pl.Series(ids[cid[o]].tolist(), dtype=pl.String),
                          "input_tokens": inp[o], "output_tokens": out[o]})
    truth = pl.DataFrame({"client_id": pl.Series(ids.tolist(), dtype=pl.String), "birth_s": birth, "death_s": death,
                          "type": np.where(is_a, "A", "B").tolist()})
    return frame, truth


def new_client_lengths(seed: int, **kw) -> dict:
    """Part 0e for one seed: fit a pool on the first half of :func:`simulate_typed_churn`, extend and
    generate the second half, and compare the new clients' length laws with the truth.

    Returns the fitted half's request share of type A (what the extension draws a new client's
    length laws by), per side (generated new clients ``new~*``; real clients born after the split)
    the clients and the share of them and of their requests of type A, the KS distance of the
    generated new clients' inputs of each type against that type's true log-normal, and the mean
    request rate of type-A and type-B new clients (the pairing of rate and lengths).
    """
    import numpy as np
    from scipy import stats

    from servelab.analysis.store import write_store
    from servelab.fitting.pool_fit import fit_pool
    from servelab.generator.extend import NEW_CLIENT_PREFIX, extend_pool, pool_churn
    from servelab.generator.generate import generate

    frame, truth = simulate_typed_churn(seed, **kw)
    T = float(truth["death_s"].max())
    split = math.floor(T / 2 / 600.0) * 600.0
    before = frame.filter(pl.col("timestamp") < split)
    with tempfile.TemporaryDirectory() as tmp:
        pool = fit_pool(write_store(before, Path(tmp) / "before", source="typed", fmt="simulated"), conversations=False)
    end = math.nextafter(float(frame["timestamp"].max()), math.inf)
    ext, info = extend_pool(pool, end, seed=seed)
    gen = generate(ext, "pool", end - split, start=split, seed=seed, conversations=False, max_requests=None)
    typed = pl.col("input_tokens") < TYPE_CUT
    share_a = float(before.select(typed.mean()).item())
    ours = gen.filter(pl.col("client_id").str.starts_with(NEW_CLIENT_PREFIX))
    born = truth.filter(pl.col("birth_s") >= split)["client_id"]
    real = frame.filter((pl.col("timestamp") >= split) & pl.col("client_id").is_in(born.implode()))
    out = {"seed": seed, "share_a_before": share_a}
    table, model = pool_churn(pool)
    tmpl = truth.filter(pl.col("client_id").is_in(list(model.templates)))
    out["templates"] = tmpl.height
    out["templates_a"] = float((tmpl["type"] == "A").mean()) if tmpl.height else math.nan
    for side, f in (("generated", ours), ("real", real)):
        per = f.group_by("client_id").agg(a=typed.mean(), n=pl.len(),
                                          span=pl.col("timestamp").max() - pl.col("timestamp").min())
        out[f"{side}_clients"] = per.height
        out[f"{side}_clients_a"] = float((per["a"] > 0.5).mean()) if per.height else math.nan
        out[f"{side}_requests_a"] = float(f.select(typed.mean()).item()) if f.height else math.nan
        for ty, sel in (("a", per["a"] > 0.5), ("b", per["a"] <= 0.5)):
            sub = per.filter(sel)
            out[f"{side}_mean_requests_{ty}"] = float(sub["n"].mean()) if sub.height else math.nan
    # each type's generated inputs against the same type's real later inputs (both rounded to
    # integers: against the continuous log-normal the rounding alone gives KS ~0.03 at median 60)
    later = frame.filter(pl.col("timestamp") >= split)
    for ty in LENGTH_TYPES:
        sel = typed if ty == "A" else ~typed
        x, y = ours.filter(sel)["input_tokens"].to_numpy(), later.filter(sel)["input_tokens"].to_numpy()
        out[f"ks_input_{ty.lower()}"] = float(stats.ks_2samp(x, y).statistic) if x.size and y.size else math.nan
        out[f"n_input_{ty.lower()}"] = int(x.size)
    out["mixed_clients"] = int(ours.group_by("client_id").agg(a=typed.mean()).filter(
        (pl.col("a") > 0) & (pl.col("a") < 1)).height)
    return out


def part_new_lengths(seeds: int = 10, seed_offset: int = 0) -> None:
    import numpy as np

    t0 = time.perf_counter()
    rows = [new_client_lengths(s) for s in range(seed_offset, seed_offset + seeds)]
    table = pl.DataFrame(rows)
    print(f"\n== new clients' length laws on simulated churn of known truth (simulate_typed_churn: 4 days, 20 + "
          f"20/day clients, 1-day lives, half type A (0.01 req/s, input median 60) half B (0.0033 req/s, 3000); "
          f"fit 2 days, generate 2), seeds {seed_offset}-{seed_offset + seeds - 1} ({time.perf_counter() - t0:.1f} s)")
    _print_tables(table, precision=3, width=300)
    n = table["generated_clients"].sum()
    expect = float((table["templates_a"] * table["generated_clients"]).sum() / n)
    got = float((table["generated_clients_a"] * table["generated_clients"]).sum() / n)
    sd = math.sqrt(expect * (1 - expect) / n)
    pair = {side: float(np.nanmean(table[f"{side}_mean_requests_a"]) / np.nanmean(table[f"{side}_mean_requests_b"]))
            for side in ("generated", "real")}
    print(f"generated new clients of type A: {got:.3f} of {n} (expected by the rule, the templates' share of type A "
          f"weighted as the generated clients: {expect:.3f}, binomial sd {sd:.3f}, z {(got - expect) / sd:+.2f}); real "
          f"new clients of type A by client {float(np.nanmean(table['real_clients_a'])):.3f}, by request "
          f"{float(np.nanmean(table['real_requests_a'])):.3f}; generated by request "
          f"{float(np.nanmean(table['generated_requests_a'])):.3f}; requests per type-A over type-B new client: "
          f"generated {pair['generated']:.2f}, real {pair['real']:.2f}")


def part_aa(seeds: int = 40, seed_offset: int = 0, scenarios=(0, 2)) -> None:
    t0 = time.perf_counter()
    table = aa_calibration(seeds, scenarios, seed_offset)
    print(f"\n== shape test's level, A/A (two draws of one generator), seeds {seed_offset}-{seed_offset + seeds - 1} "
          f"({time.perf_counter() - t0:.1f} s): rejections at level 0.05")
    _print_tables(table, precision=3, width=250, str_len=60)


def part_v1(seeds: int = 20, scenarios=None, rate_scale: float = 1.0, seed_offset: int = 0) -> None:
    t0 = time.perf_counter()
    table = v1_calibration(seeds, scenarios, rate_scale, seed_offset)
    print(f"\n== V1 verdict on simulated per-client traces of known truth, seeds {seed_offset}-{seed_offset + seeds - 1} "
          f"({time.perf_counter() - t0:.1f} s): 3 days, split at half; rates x{rate_scale:g}; shape test at level 0.05")
    _print_tables(table.select("scenario", "seeds", "v1_holds", "shape_rejects", "earlier_rule_holds", "median_p",
                               "median_requests", "median_count_error", "worst_count_error", "cpu_s_per_run"),
                  table.select("scenario", *[c for c in table.columns if c.startswith("adv_")]),
                  precision=3, width=250, str_len=60)


def part_speed(store, draws: int | None = None) -> None:
    from servelab.generator.validation import default_draws, validate

    draws = default_draws(store.n_requests) if draws is None else draws  # the CLI's default unless given
    t0, c0 = time.perf_counter(), time.process_time()
    res = validate(store, split=0.5, seed=0, draws=draws)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    _show(f"speed: validate on {store.n_requests:,} rows, split 0.5, {draws} draw(s): {dt:.1f} s wall, {cpu:.1f} s CPU of this "
          f"process (target <= 180 s: {'met' if dt <= 180 else 'NOT met'} on wall time; load average "
          f"{_load():.1f} on {_cores()} cores)", res)


def _load() -> float:
    import os

    return os.getloadavg()[0]


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def part_area(store) -> None:
    from servelab.analysis.budget import Budget
    from servelab.reports.areas import get_area

    area = get_area("validation")
    for budget in (Budget.full(), Budget.quick()):
        t0, c0 = time.perf_counter(), time.process_time()
        ev = area.measure(store, budget=budget, seed=0)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        (f,) = area.findings(ev)
        print(f"\n== area, {budget.label} budget (bound {ev.bound:,}): {cpu:.1f} s CPU, {dt:.1f} s wall "
              f"(load {_load():.1f}); bounded_sample {dict(ev.bounded_sample)}")
        print(f"{f.verdict.name}: {f.reason}")


def part_rolling(store, k: int, max_requests: int | None) -> None:
    from servelab.generator.validation import validate

    t0 = time.perf_counter()
    res = validate(store, split=0.5, seed=0, rolling=k, max_requests=max_requests)
    dt = time.perf_counter() - t0
    print(f"\n== rolling splits: K={k} folds after the split at 0.5 ({dt:.1f} s); "
          f"{'sample ' + str(dict(res.bounded_sample)) if res.bounded_sample else 'every request'}")
    sp = res.spread()
    _print_tables(sp.select("metric", "kind", "reference_mean", "reference_sd", "servelab_mean", "servelab_sd",
                            "naive_mean", "naive_sd", "servelab_wins", "splits"), precision=4, width=220)
    for s in res.splits:
        if s.shape_test is not None:
            print(f"fold {s.split_s:g} .. {s.end_s:g} s: {s.shape_test.text()}")


def part_servegen(seed: int, name: str = "m-small", share: float = 0.01, shared: bool = False,
                  validate_seeds: list[int] | None = None, draws: int = 1) -> None:
    from servelab.analysis.store import write_store
    from servelab.generator import MissingDatasetWarning, read_servegen
    from servelab.generator.generate import generate, pool_rate
    from servelab.generator.validation import validate

    places = [REPO / "raw_traces" / "servegen" / name]
    if shared:  # the full pools (m-small: 38 clients, 6 M requests at 1%) instead of the shipped slices
        places = [SHARED / "servegen" / "language" / name, SHARED / "servegen" / "reason" / name, *places]
    found = [p for p in places if p.is_dir()]
    if not found:
        print(f"\n== ServeGen {name}: not shipped here, skipped")
        return
    path = found[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDatasetWarning)
        pool = read_servegen(path, missing_data="drop")
    span = pool.span
    t0 = time.perf_counter()
    logs = generate(pool, pool_rate(share), span.end - span.start, seed=seed, conversations=False)
    print(f"\n== ServeGen {path}: {logs.height:,} requests over {(span.end - span.start) / DAY:g} days generated at "
          f"{share:.2%} of the pool's rate ({logs['client_id'].n_unique()} clients; {time.perf_counter() - t0:.1f} s); "
          f"fitted before the split, validated after it")
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(logs, Path(tmp) / "servegen_logs", source=str(path), fmt="generated")
        t0 = time.perf_counter()
        # a pool of two weeks: fit week 1, validate week 2; a shorter one (deepseek-r1's shipped
        # slice spans one day): split at half its time
        split, label = (7 * DAY, "week 1 -> week 2") if span.end - span.start >= 14 * DAY else (0.5, "first half -> second half")
        if validate_seeds:
            _corr_decomposition(logs, 7 * DAY if split == 7 * DAY else None)
            _validate_seeds(store, split, label, name, validate_seeds)
            return
        res = validate(store, split=split, seed=seed, draws=draws)
        _show(f"ServeGen {name}, {label}" + (f", {draws} draws" if draws > 1 else ""), res, time.perf_counter() - t0)
        (sp,) = res.splits
        _volume_information(logs, sp.split_s, sp.end_s, res.splits[0].extension)
        _outages(logs, sp.split_s, sp.end_s)
        if draws > 1:  # the oracle's point (the shape given the volume) is made with one draw
            return
        # the same split with the real later rate given (an oracle of the volume, per 600-s
        # window): what is left is the shape of the workload given its volume
        t0 = time.perf_counter()
        oracle = validate(store, split=split, seed=seed, rate=_oracle_rate(logs, sp.split_s, sp.end_s))
        _show(f"ServeGen {name}, {label}, ORACLE volume (the real later rate per 600-s window given to both)",
              oracle, time.perf_counter() - t0)


def _corr_decomposition(logs: pl.DataFrame, split_s: float | None, top: int = 5) -> None:
    """Where the real later part's ``rate_input_corr`` comes from, at the window compare picks:
    the whole part; its lengths permuted over all requests (what the windowing alone gives: a
    window's mean of more draws of a skewed law is larger in the median, so rate and mean length
    correlate positively without any coupling); permuted within each client (the client mix
    kept); and the part without each of its ``top`` largest clients (seeded permutations)."""
    import numpy as np

    from servelab.analysis.fidelity import _describe, choose_window, window_stats

    t = logs["timestamp"]
    if split_s is None:
        split_s = float(t.min()) + (float(t.max()) - float(t.min())) / 2
    real = logs.filter(t >= split_s).with_columns(pl.col("timestamp") - split_s)
    w = choose_window(real).window_s

    def corr(f: pl.DataFrame) -> float:
        return _describe(f, window_stats(f, window_s=w))["rate_input_corr"]

    rng = np.random.default_rng(0)
    shuffled = real.with_columns(_r=pl.Series(rng.random(real.height)))
    glob = shuffled.with_columns(pl.col("input_tokens").sort_by("_r"))
    within = shuffled.with_columns(pl.col("input_tokens").sort_by("_r").over("client_id"))
    parts = [f"whole {corr(real):+.3f}", f"inputs permuted over all requests {corr(glob):+.3f}",
             f"within each client {corr(within):+.3f}"]
    big = real.group_by("client_id").agg(pl.len(), pl.col("input_tokens").mean().alias("mean_input")).sort(
        "len", descending=True).head(top)
    for c, n, mi in big.iter_rows():
        parts.append(f"without client {c} ({n / real.height:.1%} of requests, mean input {mi:.0f}) "
                     f"{corr(real.filter(pl.col('client_id') != c)):+.3f}")
    print(f"real later part's rate_input_corr at {w:g}-s windows: " + "; ".join(parts))


def _validate_seeds(store, split, label: str, name: str, seeds: list[int]) -> None:
    """The same log validated with other seeds of the extension and the generators (the log is
    the one of ``--seed``): per seed the count error, the metrics servelab is closer on, and
    ``rate_input_corr`` (reference / servelab / naive) -- how much of a single run's outcome is the
    draw of the churn (which survivors depart, which new clients come)."""
    from servelab.generator.validation import validate

    wins = {}
    for vs in seeds:
        t0 = time.perf_counter()
        doc = validate(store, split=split, seed=vs).to_json()
        t = _table(doc).filter(pl.col("servelab_closer").is_not_null())
        ext = doc["splits"][0]["extension"]
        ref, ours, naive = (doc[c]["rate_input_corr"] for c in ("reference", "servelab", "naive"))
        for m, w in zip(t["metric"], t["servelab_closer"]):
            wins[m] = wins.get(m, 0) + bool(w)
        print(f"ServeGen {name}, {label}, validate seed {vs} ({time.perf_counter() - t0:.1f} s): count "
              f"{doc['servelab']['n_requests'] / doc['reference']['n_requests'] - 1:+.1%}; servelab closer on "
              f"{int(t['servelab_closer'].sum())}/{t.height} (not on {t.filter(~pl.col('servelab_closer'))['metric'].to_list()}); "
              f"rate_input_corr real {ref:+.3f} servelab {ours:+.3f} naive {naive:+.3f}; survivors {ext['survivors']} "
              f"({ext['survivors_departing']} depart), new {ext['new_clients']}", flush=True)
    print(f"servelab closer, of {len(seeds)} seeds: {wins}")


def _oracle_rate(frame: pl.DataFrame, split_s: float, end_s: float, window_s: float = 600.0):
    """The real rate past ``split_s`` per window of ``window_s``, as a function of time (an oracle)."""
    import numpy as np

    t = frame["timestamp"].to_numpy()
    t = t[(t >= split_s) & (t < end_s)]
    n = int(math.ceil((end_s - split_s) / window_s))
    counts = np.bincount(((t - split_s) // window_s).astype(np.int64), minlength=n)[:n] / window_s

    def rate(x):
        k = np.clip(((np.asarray(x, dtype=float) - split_s) // window_s).astype(np.int64), 0, n - 1)
        return counts[k]
    return rate


def _volume_information(frame: pl.DataFrame, split_s: float, end_s: float, extension) -> None:
    """Could the part before the split have told the later volume? Requests per block (a day, or an
    eighth of a span before the split shorter than two days; whole blocks only), the forecast's
    count, and the 95% prediction interval of the later total if blocks were independent draws
    from the earlier blocks' mean and spread (t interval: ``n2 mean1 +- t s1 sqrt(n2 + n2^2 / n1)``)."""
    import numpy as np
    from scipy import stats

    t = frame["timestamp"].to_numpy()
    first = float(t.min())
    block = DAY if split_s - first >= 2 * DAY else (split_s - first) / 8
    # blocks counted back from the split (before) and forward from it (after)
    kb = np.floor((split_s - t[t < split_s]) / block).astype(np.int64)
    nb = int(np.floor((split_s - first) / block))
    before = np.bincount(kb, minlength=nb)[:nb][::-1]
    na = int(np.floor((end_s - split_s) / block))
    after = np.bincount(np.floor((t[(t >= split_s)] - split_s) / block).astype(np.int64), minlength=na)[:na]
    m1, s1, n1, n2 = before.mean(), before.std(ddof=1), before.size, after.size
    half = stats.t.ppf(0.975, n1 - 1) * s1 * math.sqrt(n2 + n2 ** 2 / n1)
    real = int(after.sum())
    fc = extension["forecast"]
    level = fc["level_rps"] * block if isinstance(fc, dict) else float("nan")
    tau = stats.kendalltau(np.arange(n1), before)
    print(f"volume per block of {block / 3600:g} h: before the split {before.tolist()} (mean {m1:.0f}, sd {s1:.0f}, "
          f"Kendall tau {tau.statistic:.2f} p {tau.pvalue:.2f}); after {after.tolist()} (mean {after.mean():.0f}, "
          f"{after.mean() / m1 - 1:+.1%} on the earlier mean, first block {after[0] / m1 - 1:+.1%}, largest "
          f"{after.max() / before.max() - 1:+.1%} on the earlier largest); forecast level x block {level:.0f}")
    print(f"95% prediction interval of the later {n2} blocks' total from the earlier ones: "
          f"[{n2 * m1 - half:.0f}, {n2 * m1 + half:.0f}] (+-{half / (n2 * m1):.1%}); real {real} "
          f"({'inside' if abs(real - n2 * m1) <= half else 'OUTSIDE'}; {(real - n2 * m1) / half * 1.96:.1f} sd)")


def _outages(frame: pl.DataFrame, split_s: float, end_s: float, window_s: float = 600.0) -> None:
    """Gaps longer than a pool window before and after the split, and gap CV without them."""
    import numpy as np

    t = frame["timestamp"].to_numpy()
    for name, lo, hi in (("before", float(t.min()), split_s), ("after", split_s, end_s)):
        g = np.diff(t[(t >= lo) & (t < hi)])
        long = g > window_s
        print(f"{name} the split: {int(long.sum())} gaps > {window_s:g} s (longest {g.max():.0f} s); gap CV "
              f"{g.std() / g.mean():.2f}, without them {g[~long].std() / g[~long].mean():.2f}")


def _servegen_logs(name: str = "m-small", share: float = 0.001, seed: int = 0) -> pl.DataFrame:
    """The log :func:`part_servegen` validates with ``--servegen-shared``: the full pool at ``share``
    of its rate, over its span (seeded)."""
    from servelab.generator import MissingDatasetWarning, read_servegen
    from servelab.generator.generate import generate, pool_rate

    path = next(p for p in (SHARED / "servegen" / "language" / name, SHARED / "servegen" / "reason" / name,
                            REPO / "raw_traces" / "servegen" / name) if p.is_dir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDatasetWarning)
        pool = read_servegen(path, missing_data="drop")
    return generate(pool, pool_rate(share), pool.span.end - pool.span.start, seed=seed, conversations=False)


def volume_path_counts(name: str, frame: pl.DataFrame, split, seed: int = 0) -> list[dict]:
    """Part 1b, one case: the extension's expected count past the split (the sum of its rates x
    windows: servelab's count but for the arrivals' Poisson noise) and naive's (the integral of its
    smooth total), under the churn volume path's old rule (applied whenever the forecast keeps no
    trend) and the current one (:func:`servelab.generator.extend.volume_path_applies`), against
    the real later count; and the forecast's and churn model's numbers behind them."""
    import numpy as np
    from scipy import stats

    import servelab.generator.extend as extend
    from servelab.analysis.store import write_store
    from servelab.fitting.pool_fit import fit_pool
    from servelab.fitting.pool_settings import PoolFitSettings
    from servelab.generator.validation import _smooth_total, resolve_split

    t = frame["timestamp"]
    s0 = resolve_split(split, float(t.min()), float(t.max()), PoolFitSettings().window_s)
    end = math.nextafter(float(t.max()), math.inf)
    real = int((t >= s0).sum())
    rules = {"old: no trend kept": lambda f: f.slope == 0.0, "new: trend untestable": extend.volume_path_applies}
    current = extend.volume_path_applies
    rows, info = [], None
    with tempfile.TemporaryDirectory() as tmp:
        pool = fit_pool(write_store(frame.filter(t < s0), Path(tmp) / "before", source=name, fmt="simulated"))
        try:
            for label, rule in rules.items():
                extend.volume_path_applies = rule
                ext, info = extend.extend_pool(pool, end, seed=seed)
                later = ext.arrivals.filter(pl.col("window_start") >= s0)
                ours = float((later["rate"] * later["window_s"]).sum())
                tt, rr = _smooth_total(info, None, s0, end - s0, pool.window_s)
                naive = float(np.trapezoid(rr, tt))
                rows.append({"case": name, "rule": label, "real": real, "servelab": round(ours), "naive": round(naive),
                             "servelab_ratio": ours / real, "naive_ratio": naive / real,
                             "path_mean": float(np.mean(info.volume_path)) if info.volume_path else 1.0})
        finally:
            extend.volume_path_applies = current
        table, _ = extend.pool_churn(pool)
    f, m = info.forecast, info.churn
    lo, hi = pool.span
    g = float(table["grace_s"][0])
    arr = table.filter(pl.col("arrived"))["first_s"].to_numpy()
    ks = stats.kstest((arr - lo - g) / (hi - lo - g), "uniform").pvalue if arr.size >= 2 else math.nan
    print(f"[{name}] trend kept {f.slope != 0}, Mann-Kendall p {f.slope_p:.3g}, curvature p {f.curvature_p:.3g} "
          f"({f.n_blocks} blocks); churn: {m.n_arrived} arrived, {m.n_departed} departed, {m.arrival_rate * DAY:.1f} new "
          f"a day, mean life {m.mean_lifetime_s / DAY:.1f} d; arrival times against uniform KS p {ks:.3g}", flush=True)
    return rows


def part_volume_path(sizes=(1_000_000, 10_000_000), seeds: int = 12) -> None:
    """Part 1b (module docstring): the churn volume path's rule on cases of known truth."""
    from servelab.analysis.store import open_store
    from servelab.generator.validation import _read

    t0 = time.perf_counter()
    rows = []
    for seed in range(seeds):  # stationary with churn: 20 clients ~ 5 new a day x 4-day lives
        frame = simulate_trace(seed, days=14, n_initial=20, new_per_day=5.0, mean_life_days=4.0,
                               rate_range=(0.0005, 0.01))
        rows += volume_path_counts(f"stationary churn s{seed}", frame, 0.5, seed)
    for seed in range(2):
        rows += volume_path_counts(f"stationary no churn s{seed}", simulate_trace(seed, days=14, rate_range=(0.0005, 0.01)),
                                   0.5, seed)
    for seed in range(6):
        _, kw, _ = V1_SCENARIOS[4]
        rows += volume_path_counts(f"V1 scenario 4 s{seed}", simulate_trace(seed, **kw), 0.5, seed)
    rows += volume_path_counts("ServeGen m-small wk1->wk2", _servegen_logs(), 7 * DAY, 0)
    for n in sizes:
        rows += volume_path_counts(f"synthetic {n:,}", _read(_store(n, 2000, 14, 0)), 0.5, 0)
    print(f"\n== churn volume path, old rule vs new: expected counts past the split ({time.perf_counter() - t0:.1f} s)")
    _print_tables(pl.DataFrame(rows), precision=3, width=220)


def part_real(seed: int) -> None:
    from servelab.analysis.ingest import ingest
    from servelab.fitting.pool_settings import PoolFitSettings
    from servelab.generator.validation import validate

    csv = SHARED / "azure_2023" / "AzureLLMInferenceTrace_code.csv"
    print("\n== real traces: none in ../shared/data has client ids (Azure 2023 code: 1 h, no ids; BurstGPT: "
          "54 rows; Mooncake: synthetic arrivals): the per-client target cannot be checked here")
    if not csv.is_file():
        print("Azure 2023 trace absent: skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = ingest([csv], fmt="azure", output=Path(tmp) / "azure")
        t0 = time.perf_counter()
        res = validate(store, split=0.5, seed=seed, settings=PoolFitSettings(window_s="5m"))
        _show("Azure 2023 code trace (one client, 1 h), split in half, 5-min pool windows", res,
              time.perf_counter() - t0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--rolling", type=int, default=3)
    parser.add_argument("--rolling-max-requests", type=int, default=150_000)
    parser.add_argument("--servegen-pools", default="m-small,deepseek-r1")
    parser.add_argument("--servegen-share", type=float, default=0.01)
    parser.add_argument("--servegen-shared", action="store_true",
                        help="use the full pools in ../shared/data/servegen instead of raw_traces' slices")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--servegen-validate-seeds", default=None,
                        help="comma-separated seeds of validate on the ServeGen log of --seed (one line each, no "
                             "oracle): the spread of the outcome over the churn's draws")
    parser.add_argument("--v1-scenarios", default=None,
                        help="indices into V1_SCENARIOS, comma-separated, for the v1 part (default all) and the aa part (default 0,2)")
    parser.add_argument("--v1-rate-scale", type=float, default=1.0,
                        help="scale of the simulated clients' rates in the V1 calibration (0.2: ~10k requests a trace)")
    parser.add_argument("--calibration-seeds", type=int, default=None,
                        help="seeds per scenario of the churn (default 40) and V1 (default 20) calibrations")
    parser.add_argument("--draws", type=int, default=None,
                        help="draws per generator of validate in the speed part (default: the CLI's default for the "
                             "store's size) and the servegen part (default 1; with more, no oracle run)")
    parser.add_argument("--volume-path-rows", default="1000000,10000000",
                        help="synthetic store sizes of the volumepath part (comma-separated; empty: none)")
    parser.add_argument("--parts", default="forecast,area,speed,rolling,servegen,real")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="first seed of the aa and v1 calibrations (to split a long run into several lock holds)")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if "forecast" in parts:
        part_forecast()
    if "volumepath" in parts:
        part_volume_path(tuple(int(v) for v in args.volume_path_rows.split(",") if v))
    if "churn" in parts:
        part_churn(args.calibration_seeds or 40)
    scen = None if args.v1_scenarios is None else [int(i) for i in args.v1_scenarios.split(",")]
    if "newlengths" in parts:
        part_new_lengths(args.calibration_seeds or 10, args.seed_offset)
    if "aa" in parts:
        part_aa(args.calibration_seeds or 40, args.seed_offset, tuple(scen) if scen is not None else (0, 2))
    if "v1" in parts:
        part_v1(args.calibration_seeds or 20, scen, args.v1_rate_scale, args.seed_offset)
    if parts & {"speed", "rolling", "area"}:
        store = _store(args.rows, args.clients, args.days, 0)
        if "area" in parts:
            part_area(store)
        if "speed" in parts:
            part_speed(store, args.draws)
        if "rolling" in parts:
            part_rolling(store, args.rolling, args.rolling_max_requests or None)
    if "servegen" in parts:
        for name in args.servegen_pools.split(","):
            part_servegen(args.seed, name, args.servegen_share, args.servegen_shared,
                          [int(v) for v in args.servegen_validate_seeds.split(",")] if args.servegen_validate_seeds else None,
                          args.draws or 1)
    if "real" in parts:
        part_real(args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

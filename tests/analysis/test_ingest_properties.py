"""Property-based tests of ingest (issue 18 item 6), on every adapter: random valid rows plus random
corruptions (bad numbers, bad times, broken JSON, wrong column counts, bytes that are not UTF-8,
over-long lines, CRLF and lone CR line endings) -> ``read = stored + rejected``, every fault
rejected with its reason, and the stored rows equal the valid ones, computed independently in
:mod:`ingest_fuzz` from the values the rows were written with.

Derandomized (``derandomize=True``: the same cases on every run), no example database, no
deadline; 8 cases per adapter with 10-20 faults each: at least 75 distinct fault cases per adapter
(asserted), over 500 in all. The cost is one ingest per case (fixed costs of a DuckDB connection,
sniffing and the manifest), so 8 cases of 10-20 faults check as many faults as the 16 cases of
5-12 did before (issue 16: the suite's 10-minute budget) in half the ingests; every case still
holds at least 5 faults. ``benchmarks/bench_fuzz.py`` runs more cases (5-12 faults each).
"""
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_fuzz import ADAPTER_CASES, case_strategy, check_case  # noqa: E402

_EXAMPLES = 8
_FAULTS = (10, 20)  # per case (min, max)
_MIN_FAULTS = 75  # per adapter: 7 adapters x 75 = 525 >= 500


@pytest.mark.parametrize("adapter", sorted(ADAPTER_CASES))
def test_read_is_stored_plus_rejected_and_stored_rows_are_the_valid_ones(adapter):
    seen: dict[bytes, int] = {}

    @settings(max_examples=_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=case_strategy(adapter, min_faults=_FAULTS[0], max_faults=_FAULTS[1]))
    def run(case):
        check_case(case)
        seen[case.data] = len(case.faults)

    run()
    assert sum(seen.values()) >= _MIN_FAULTS, f"{adapter}: only {sum(seen.values())} distinct fault cases"

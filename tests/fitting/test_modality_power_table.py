"""The precomputed power of lattice_bimodality equals its simulation (fixed seed, so exactly)."""
from servelab.fitting.modality import _POWER_TABLE, _power, _simulate_power


def test_power_table_matches_the_simulation():
    for (n, level), power in _POWER_TABLE.items():
        assert _simulate_power(n, level) == power
        assert _power(n, level) == power


def test_power_off_the_table_is_simulated():
    assert (500, 0.05) not in _POWER_TABLE
    assert _power(500, 0.05) == _simulate_power(500, 0.05)
    assert 0.0 < _power(500, 0.05) < _power(2000, 0.05)  # power grows with n

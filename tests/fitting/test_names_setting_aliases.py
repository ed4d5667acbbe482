"""Issue 19 item 7: seconds carry ``_s`` in the Python API; the old setting keywords still work."""
import pytest

from servelab.fitting.pool_settings import SETTING_ALIASES, PoolFitSettings, resolve_setting_aliases


def test_new_names_hold_seconds():
    s = PoolFitSettings(window_s="5m", data_window_s=3600)
    assert (s.window_s, s.data_window_s) == (300.0, 3600.0)
    assert s.to_dict()["window_s"] == 300.0 and s.to_dict()["data_window_s"] == 3600.0
    assert "window" not in s.to_dict() and "data_window" not in s.to_dict()


@pytest.mark.parametrize("old,new", sorted(SETTING_ALIASES.items()))
def test_old_keywords_warn_and_give_the_same_settings(old, new):
    with pytest.warns(DeprecationWarning, match=rf"'{old}' is now '{new}'"):
        via_old = PoolFitSettings(**{old: "20m"})
    assert via_old == PoolFitSettings(**{new: "20m"})
    with pytest.warns(DeprecationWarning, match=rf"'{old}' is now '{new}'"):
        replaced = PoolFitSettings().replace(**{old: 60})
    assert getattr(replaced, new) == 60.0
    with pytest.warns(DeprecationWarning, match=f"{old} is now {new}"):
        assert getattr(via_old, old) == 1200.0


def test_old_and_new_keyword_together_is_an_error():
    with pytest.raises(TypeError, match=r"got both window= .* and window_s=; got '5m' and '10m'"):
        with pytest.warns(DeprecationWarning):
            resolve_setting_aliases({"window": "5m", "window_s": "10m"}, where="fit_pool")


def test_fit_pool_takes_the_old_keyword_with_a_warning():
    import numpy as np
    import polars as pl

    from servelab.fitting.pool_fit import fit_pool

    frame = pl.DataFrame({"timestamp": np.arange(200) * 3.0, "client_id": ["a"] * 200})
    with pytest.warns(DeprecationWarning, match="fit_pool\\(\\): the setting 'window' is now 'window_s'"):
        pool = fit_pool(frame, window="5m", clock="none", conversations=False)
    assert pool.window_s == 300.0 == pool.provenance["settings"]["window_s"]

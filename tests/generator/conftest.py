"""Fixtures shared by the pool tests: the shipped ServeGen m-small slice, imported once."""
import warnings

import pytest

from servelab.generator import MissingDatasetWarning, read_servegen


@pytest.fixture(scope="session")
def msmall(raw_traces):
    """ServeGen's m-small slice (its clients without a dataset file are kept arrival-only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDatasetWarning)
        return read_servegen(raw_traces / "servegen" / "m-small")

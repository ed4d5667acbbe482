"""Shared fixtures: a seeded ``rng``, the shipped samples, and ``../shared`` when present.

Test modules never import from this file (``from tests.conftest import ...``) or from each other:
``tests`` is not a package, so such imports only work from the repository root. A test module
that needs a path computes it from its own ``__file__`` (e.g. ``Path(__file__).resolve().parents[1]
/ "data"``) and the suite collects from any directory; tests/test_layers.py checks this.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servelab.samples import RAW_TRACES

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator: every statistical test is reproducible, never a seed per run."""
    return np.random.default_rng(20251123)


@pytest.fixture(scope="session")
def raw_traces() -> Path:
    return RAW_TRACES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip, saying so, when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"../shared/data not found at {path} (optional heavy check)")
    return path

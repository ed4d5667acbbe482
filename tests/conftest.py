"""Shared fixtures: a seeded ``rng``, the shipped samples, and ``../shared`` when present."""
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

"""Small hand-built pools in the agreed ClientPool layout, for the generator's tests.

They hold frames only (``clients``, ``arrivals``, ``data``, ``conversations``), so the generator's
tests do not depend on how a pool is read from disk.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

__all__ = ["FramePool", "make_pool"]


@dataclass
class FramePool:
    clients: pl.DataFrame
    arrivals: pl.DataFrame
    data: pl.DataFrame
    conversation_pmfs: pl.DataFrame | None = None
    conversations: pl.DataFrame | None = None
    window_s: float = 600.0
    data_window_s: float = 21600.0
    provenance: dict = field(default_factory=dict)

    @property
    def span(self) -> tuple[float, float]:
        a = self.arrivals
        return float(a["window_start"].min()), float((a["window_start"] + a["window_s"]).max())


def make_pool(rates, *, cvs=None, families=None, window_s=600.0, data_window_s=21600.0,
              pmfs=None, conversations=None) -> FramePool:
    """A pool from per-client rate rows.

    rates : dict client_id -> list of per-window rates (req/s)
    cvs : dict client_id -> CV (constant over windows); Gamma shape 1/CV^2 unless families says
    families : dict client_id -> "gamma" | "weibull" | "exponential" (shape from the CV for gamma;
        for weibull a shape must be given via cvs as ("weibull", c))
    pmfs : dict client_id -> {field: (values, probs)}, same in every data window
    conversations : a long frame [client_id, quantity, value, probability] or None
    """
    cvs = cvs or {}
    families = families or {}
    rows = []
    for cid, rs in rates.items():
        cv = cvs.get(cid, 1.0)
        fam = families.get(cid, "gamma")
        for w, r in enumerate(rs):
            if r <= 0:
                rows.append((cid, w * window_s, window_s, 0.0, 0.0, None, None, None))
                continue
            if fam == "gamma":
                a = 1.0 / cv**2
                rows.append((cid, w * window_s, window_s, float(r), float(cv), "gamma", a, 1.0 / (r * a)))
            elif fam == "exponential":
                rows.append((cid, w * window_s, window_s, float(r), 1.0, "exponential", None, 1.0 / r))
            else:
                c = cv  # weibull: the caller gives the shape c in cvs
                from scipy import special
                cvw = float(np.sqrt(special.gamma(1 + 2 / c) / special.gamma(1 + 1 / c) ** 2 - 1))
                rows.append((cid, w * window_s, window_s, float(r), cvw, "weibull", c, 1.0 / (r * special.gamma(1 + 1 / c))))
    arrivals = pl.DataFrame(rows, schema={"client_id": pl.String, "window_start": pl.Float64, "window_s": pl.Float64,
                                          "rate": pl.Float64, "cv": pl.Float64, "family": pl.String,
                                          "shape": pl.Float64, "scale": pl.Float64}, orient="row")
    span = max(len(r) for r in rates.values()) * window_s
    n_data = int(np.ceil(span / data_window_s))
    drows = []
    for cid, fields in (pmfs or {}).items():
        for d in range(n_data):
            for f, (vals, probs) in fields.items():
                for v, p in zip(vals, probs):
                    drows.append((cid, d * data_window_s, data_window_s, f, float(v), float(p)))
    data = pl.DataFrame(drows, schema={"client_id": pl.String, "window_start": pl.Float64, "window_s": pl.Float64,
                                       "field": pl.String, "value": pl.Float64, "probability": pl.Float64}, orient="row")
    clients = pl.DataFrame({"client_id": list(rates), "has_arrivals": [True] * len(rates),
                            "has_data": [cid in (pmfs or {}) for cid in rates], "note": [""] * len(rates)})
    return FramePool(clients, arrivals, data, conversations, None, window_s, data_window_s)


def to_client_pool(pool: FramePool):
    """The same pool as a real :class:`~servelab.generator.pool.ClientPool` (e.g. to save it)."""
    from servelab.generator.pool import ClientPool

    return ClientPool(clients=pool.clients, arrivals=pool.arrivals, data=pool.data,
                      conversation_pmfs=pool.conversation_pmfs, window_s=pool.window_s,
                      data_window_s=pool.data_window_s)

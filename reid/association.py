"""Minimum-cost assignment with a cost limit: ``lap.lapjv`` (fast Jonker-Volgenant), with
scipy's ``linear_sum_assignment`` as the fallback when lap is unavailable.

Impossible pairs are ``inf`` in the cost matrix; pairs above ``limit`` are never returned.
"""

from __future__ import annotations

import numpy as np

try:
    import lap
except ImportError:  # pragma: no cover - lap is a declared dependency
    lap = None

_BIG = 1e6


def assign(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Rows matched to columns, minimising total cost, every pair strictly below ``limit``."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.size == 0:
        return []
    finite = np.where(np.isfinite(cost), cost, _BIG)
    if lap is not None:
        _, row_to_col, _ = lap.lapjv(finite, extend_cost=True, cost_limit=limit)
        pairs = [(r, int(c)) for r, c in enumerate(row_to_col) if c >= 0]
    else:
        from scipy.optimize import linear_sum_assignment

        # pad like lapjv's cost_limit: leaving a row and a column unmatched costs `limit` in
        # total (limit / 2 each), so only pairs cheaper than `limit` are worth matching
        n, m = finite.shape
        padded = np.full((n + m, m + n), limit / 2, dtype=np.float64)
        padded[:n, :m] = finite
        padded[n:, m:] = 0.0
        rows, cols = linear_sum_assignment(padded)
        pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if r < n and c < m]
    # impossible pairs (inf) never come back, even with an infinite limit
    return [(r, c) for r, c in pairs if np.isfinite(cost[r, c]) and cost[r, c] < limit]

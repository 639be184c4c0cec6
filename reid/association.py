"""Minimum-cost assignment with a cost limit, the one assignment every stage uses.

``lap.lapjv`` (Jonker-Volgenant) with ``extend_cost``: rectangular matrices, and pairs at or
above ``limit`` left unmatched. Impossible pairs are ``inf`` in the cost matrix and never come
back, even with an infinite limit (a full assignment: ``limit=np.inf``).
"""

from __future__ import annotations

import lap
import numpy as np
from scipy.optimize import linear_sum_assignment

_BIG = 1e6  # stands in for inf inside lapjv, which needs finite costs


def assign(cost: np.ndarray, limit: float, *, full: bool = False) -> list[tuple[int, int]]:
    """Rows matched to columns, minimising total cost, every pair strictly below ``limit``.

    ``full``: as many pairs as the smaller side has (a complete matching), even where leaving
    an item unmatched would cost less; solved by scipy's ``linear_sum_assignment``, whose
    choice among equal-cost matchings the per-clip identity model was measured with."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.size == 0:
        return []
    finite = np.where(np.isfinite(cost), cost, _BIG)
    if full:
        rows, cols = linear_sum_assignment(finite)
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)
                if np.isfinite(cost[r, c])]
    _, row_to_col, _ = lap.lapjv(finite, extend_cost=True, cost_limit=limit)
    pairs = [(r, int(c)) for r, c in enumerate(row_to_col) if c >= 0]
    return [(r, c) for r, c in pairs if np.isfinite(cost[r, c]) and cost[r, c] < limit]

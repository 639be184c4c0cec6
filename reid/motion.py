"""Constant-velocity Kalman filter on a mask's box (centre x, centre y, width, height).

Why constant velocity: between two frames an animal barely accelerates, and a model this simple
has two jobs only: say where a track should be now (to shift its last mask for the IoU cost) and
say where it *cannot* be (Mahalanobis gating). Noise scales with the box size, as in SORT/DeepSORT,
so the same settings work for near and far objects.

State ``[cx, cy, w, h, vx, vy, vw, vh]``; measurement ``[cx, cy, w, h]``.
"""

from __future__ import annotations

import numpy as np

# chi-square 0.99 quantiles, by degrees of freedom: gate for the squared Mahalanobis distance
CHI2_99 = {1: 6.635, 2: 9.210, 3: 11.345, 4: 13.277}


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """xyxy box or boxes (``(4,)`` or ``(n, 4)``) -> centre, width and height in the same
    shape, each side at least a pixel."""
    b = np.asarray(boxes, dtype=np.float64)
    flat = b.reshape(-1, 4)
    out = np.stack([(flat[:, 0] + flat[:, 2]) / 2, (flat[:, 1] + flat[:, 3]) / 2,
                    np.maximum(flat[:, 2] - flat[:, 0], 1.0),
                    np.maximum(flat[:, 3] - flat[:, 1], 1.0)], axis=1)
    return out.reshape(b.shape)


_F = np.eye(8)  # constant velocity: position += velocity
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)  # the box is measured, its velocity is not


# Noise defaults, as fractions of the box height (``tracker.kalman_*`` options use these)
POSITION_NOISE = 0.03
VELOCITY_NOISE = 0.02
MEASUREMENT_NOISE = 0.05


class BoxKalman:
    """One track's filter. ``predict()`` once per frame, ``update(box)`` when matched.

    Args:
        box: first xyxy box.
        pos_noise: process noise of position per frame, as a fraction of the box height.
        vel_noise: process noise of velocity per frame, as a fraction of the box height.
        meas_noise: measurement noise, as a fraction of the box height.
    """

    def __init__(self, box: np.ndarray, pos_noise: float = POSITION_NOISE,
                 vel_noise: float = VELOCITY_NOISE, meas_noise: float = MEASUREMENT_NOISE,
                 ) -> None:
        self.x = np.zeros(8)
        self.x[:4] = xyxy_to_cxcywh(box)
        self.pos_noise, self.vel_noise, self.meas_noise = pos_noise, vel_noise, meas_noise
        size = self.x[3]
        self.P = np.diag(np.r_[np.full(4, (2 * pos_noise * size) ** 2),
                               np.full(4, (10 * vel_noise * size) ** 2)])
        self.H = _H
        # process noise per unit of squared box height (scaled by the height on each step)
        self._q_unit = np.r_[np.full(4, pos_noise ** 2), np.full(4, vel_noise ** 2)]

    def measurement_variance(self) -> float:
        """Variance of each measured box component (noise scales with the box height)."""
        return (self.meas_noise * max(self.x[3], 1.0)) ** 2

    def _r(self) -> np.ndarray:
        return np.eye(4) * self.measurement_variance()

    def predict(self) -> np.ndarray:
        """Step the state one frame ahead; the predicted box (cx, cy, w, h)."""
        predict_all([self])
        return self.x[:4].copy()

    def update(self, box: np.ndarray) -> None:
        """Correct the state with the measured xyxy ``box``."""
        update_all([self], np.asarray(box)[None])

    def freeze_velocity(self) -> None:
        """Stop extrapolating (used while a track is out of view: it is not moving *there*)."""
        self.x[4:] = 0.0

    @property
    def box(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    @property
    def velocity(self) -> np.ndarray:
        return self.x[4:6].copy()

    def mahalanobis(self, boxes: np.ndarray, dims: int = 2) -> np.ndarray:
        """Squared Mahalanobis distance of xyxy ``boxes`` to the predicted state, on the
        first ``dims`` measurement components (2 = centre only)."""
        if len(boxes) == 0:
            return np.zeros(0)
        z = xyxy_to_cxcywh(np.asarray(boxes).reshape(-1, 4))[:, :dims]
        s = (self.H @ self.P @ self.H.T + self._r())[:dims, :dims]
        d = z - self.x[:dims]
        return np.einsum("ni,ij,nj->n", d, np.linalg.inv(s), d)


def predict_all(filters: list[BoxKalman]) -> None:
    """Step every filter one frame ahead (constant velocity, process noise scaled by the box
    height), in one stacked computation: a filter's numbers are the same alone
    (:meth:`BoxKalman.predict`) or with others. Why stacked: one filter at a time, a handful
    of tiny matrix products per filter and frame took about a fifth of the tracker's time at
    ten objects, nearly all of it numpy's per-call overhead (eval/results/speed.md)."""
    if not filters:
        return
    x = np.stack([f.x for f in filters]) @ _F.T
    x[:, 2:4] = np.maximum(x[:, 2:4], 1.0)
    size = np.maximum(x[:, 3], 1.0)[:, None]
    q = np.stack([f._q_unit for f in filters]) * size * size
    p = _F @ np.stack([f.P for f in filters]) @ _F.T
    diagonal = np.arange(8)
    p[:, diagonal, diagonal] += q
    for f, x_f, p_f in zip(filters, x, p, strict=True):
        f.x, f.P = x_f, p_f


def update_all(filters: list[BoxKalman], boxes: np.ndarray) -> None:
    """Correct every filter with its measured xyxy box (``boxes[i]`` for ``filters[i]``),
    stacked as :func:`predict_all` is (:meth:`BoxKalman.update` for one)."""
    if not filters:
        return
    z = xyxy_to_cxcywh(np.asarray(boxes).reshape(-1, 4))
    x = np.stack([f.x for f in filters])
    p = np.stack([f.P for f in filters])
    r = np.array([f.measurement_variance() for f in filters])
    s = p[:, :4, :4] + np.eye(4)[None] * r[:, None, None]
    # H picks the first four state components, so H P H^T and P H^T are slices of P
    k = np.linalg.solve(s, p[:, :4, :]).transpose(0, 2, 1)  # = P H^T S^-1 (S, P symmetric)
    x = x + (k @ (z - x[:, :4])[:, :, None])[:, :, 0]
    p = p - k @ p[:, :4, :]
    for f, x_f, p_f in zip(filters, x, p, strict=True):
        f.x, f.P = x_f, p_f


def mahalanobis_centres(filters: list[BoxKalman], boxes: np.ndarray) -> np.ndarray:
    """``(len(filters), len(boxes))`` squared Mahalanobis distances of the boxes' centres to
    each filter's prediction; the same numbers as ``f.mahalanobis(boxes)`` per filter, in one
    batched computation (2x2 inverses in closed form)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
    means = np.stack([f.x[:2] for f in filters])
    s = np.stack([f.P[:2, :2] for f in filters])
    r = np.array([f.measurement_variance() for f in filters])
    a, bb, c = s[:, 0, 0] + r, s[:, 0, 1], s[:, 1, 1] + r
    det = a * c - bb * bb
    d = centres[None, :, :] - means[:, None, :]
    dx, dy = d[..., 0], d[..., 1]
    return (c[:, None] * dx * dx - 2 * bb[:, None] * dx * dy + a[:, None] * dy * dy) / \
        det[:, None]

"""Association costs: one small protocol, a few terms, and their weighted sum.

Why a protocol (after norfair's pluggable distances): every stage that pairs things up, in view
(tracklets x masks), at re-entry (absent identities x new tracklets) and offline (identities x
tracklets), asks the same questions: do they look alike, are they where motion puts them, does
the source's id agree. A term answers one question for a whole ``rows x columns`` matrix, in
about [0, 1], with ``nan`` where it has no opinion (no embedding yet, no motion for an absent
identity); :class:`CostModel` adds the terms with configured weights, substituting each term's
``missing`` value for its ``nan``. A new cost is one class with ``name`` and ``matrix`` and one
line in the stage that should use it.

The stages' gates (pairs that are impossible whatever the sum) stay with the stages: they are
rules about the stage, not opinions about a pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from samtrack.pipeline.core.geometry import box_iou, crop_intersection
from samtrack.reid.motion import mahalanobis_centres
from samtrack.reid.tracks import Tracklet


@dataclass
class Side:
    """One side of an association; a term reads the fields it needs, all optional.

    ``views``: per item, its appearance as L2-normalised rows (a gallery, a tracklet's clean
    views; ``None`` or empty: unknown), or one ``(N, D)`` array when every item has exactly one
    view (the masks of a frame). ``positions``: ``(N, 2)`` where each
    item is (columns) or was last seen (rows), in pixels. ``partial``: columns only, half-visible
    at a border. ``items``: the stage's own objects, for stage-specific terms (tracklets for
    motion).
    """

    views: Sequence[np.ndarray | None] | np.ndarray | None = None
    positions: np.ndarray | None = None
    source_ids: np.ndarray | None = None
    partial: np.ndarray | None = None
    boxes: np.ndarray | None = None
    patches: list[tuple[np.ndarray, tuple[int, int]]] | None = None
    items: Sequence[Any] = field(default_factory=list)
    size: int = 0

    def __len__(self) -> int:
        return self.size


class CostTerm(Protocol):
    """``matrix(rows, cols)`` -> ``(len(rows), len(cols))`` costs, ``nan`` = no opinion."""

    name: str

    def matrix(self, rows: Side, cols: Side) -> np.ndarray: ...


@dataclass(frozen=True)
class Weighted:
    """A term with its weight; ``missing`` is the cost used where the term has no opinion;
    ``column_scale`` (optional) scales each column, for evidence that is weaker for some
    columns (appearance of a half-visible object)."""

    term: CostTerm
    weight: float
    missing: float = 0.0
    column_scale: Callable[[Side], np.ndarray] | None = None


def partial_view_scale(weight: float) -> Callable[[Side], np.ndarray]:
    """Column scale: ``weight`` for columns half-visible at a border, 1 elsewhere."""

    def scale(cols: Side) -> np.ndarray:
        if cols.partial is None:
            return np.ones(len(cols))
        return np.where(cols.partial, weight, 1.0)

    return scale


class CostModel:
    """The weighted sum of terms; ``__call__`` also returns each term's own matrix (for gates,
    repair records and diagnostics)."""

    def __init__(self, terms: Sequence[Weighted]) -> None:
        self.terms = list(terms)

    def __call__(self, rows: Side, cols: Side) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        total = np.zeros((len(rows), len(cols)))
        parts: dict[str, np.ndarray] = {}
        for w in self.terms:
            values = w.term.matrix(rows, cols)
            parts[w.term.name] = values
            if w.weight:
                filled = np.where(np.isnan(values), w.missing, values)
                if w.column_scale is not None:
                    filled = w.column_scale(cols)[None, :] * filled
                total += w.weight * filled
        return total, parts


class AppearanceCost:
    """Cosine distance: for each column, the mean over its views of the nearest row view.

    With one view per column (a mask) this is the distance to the closest gallery entry; with
    several (an offline tracklet) the mean keeps one odd frame from deciding.
    """

    name = "appearance"

    def matrix(self, rows: Side, cols: Side) -> np.ndarray:
        return view_distance(rows.views, cols.views, len(rows), len(cols))


class MotionCost:
    """1 - IoU between each tracklet's last mask moved by its predicted shift and each mask."""

    name = "motion"

    def matrix(self, rows: Side, cols: Side) -> np.ndarray:
        if cols.boxes is None or cols.patches is None or not rows.items:
            return np.full((len(rows), len(cols)), np.nan)
        return 1.0 - motion_iou(list(rows.items), cols.boxes, cols.patches)


class PositionCost:
    """Distance from where each row was last seen to each column, over the frame diagonal:
    for an identity that exited, the prior that it comes back through the border it left by."""

    name = "position"

    def __init__(self, diagonal: float) -> None:
        self.diagonal = diagonal

    def matrix(self, rows: Side, cols: Side) -> np.ndarray:
        if rows.positions is None or cols.positions is None:
            return np.full((len(rows), len(cols)), np.nan)
        d = np.linalg.norm(rows.positions[:, None, :] - cols.positions[None, :, :], axis=2)
        return np.clip(d / max(self.diagonal, 1.0), 0.0, 1.0)


class SourceIdAgreement:
    """1 where the column carries the source id the row last had, else 0. Used with a negative
    weight (a bonus): the source id is a hint, so motion and appearance can outvote it."""

    name = "source_id"

    def matrix(self, rows: Side, cols: Side) -> np.ndarray:
        if rows.source_ids is None or cols.source_ids is None:
            return np.zeros((len(rows), len(cols)))
        return source_match(list(rows.source_ids), cols.source_ids).astype(np.float64)


def view_distance(rows: Sequence[np.ndarray | None] | np.ndarray | None,
                  cols: Sequence[np.ndarray | None] | np.ndarray | None, n_rows: int,
                  n_cols: int) -> np.ndarray:
    """Mean over each column's views of the min cosine distance to each row's views."""
    out = np.full((n_rows, n_cols), np.nan)
    if rows is None or cols is None or not n_rows or not n_cols:
        return out
    if isinstance(cols, np.ndarray):
        # one view per column (the per-frame case): one batched product
        return appearance_distance_rows(rows, cols)
    for k, views in enumerate(cols):
        if views is None or not len(views):
            continue
        for r, gallery in enumerate(rows):
            if gallery is not None and len(gallery):
                out[r, k] = float(np.mean(np.clip(1.0 - views @ gallery.T, 0.0, 2.0)
                                          .min(axis=1)))
    return out


def patch_iou(a: np.ndarray, a_origin: tuple[int, int], b: np.ndarray,
              b_origin: tuple[int, int]) -> float:
    """IoU of two boolean patches placed at their origins in the same image plane."""
    inter = crop_intersection((a, a_origin), (b, b_origin))
    union = int(a.sum()) + int(b.sum()) - inter
    return inter / union if union > 0 else 0.0


def motion_iou(tracks: list[Tracklet], det_boxes: np.ndarray,
               det_patches: list[tuple[np.ndarray, tuple[int, int]]]) -> np.ndarray:
    """IoU between each track's last mask, moved by its predicted shift, and each mask.

    Why the mask and not the box: two sheep side by side have overlapping boxes but not
    overlapping masks; mask IoU keeps them apart at crossings, where swaps happen.
    """
    out = np.zeros((len(tracks), len(det_boxes)))
    if not tracks or len(det_boxes) == 0:
        return out
    predicted = np.stack([t.kalman.box for t in tracks])
    overlap = box_iou(predicted, det_boxes) > 0
    for i, track in enumerate(tracks):
        if track.patch is None:
            continue
        dx, dy = np.round(track.predicted_shift()).astype(int)
        origin = (track.patch_origin[0] + int(dx), track.patch_origin[1] + int(dy))
        for j in np.flatnonzero(overlap[i]):
            patch, det_origin = det_patches[j]
            out[i, j] = patch_iou(track.patch, origin, patch, det_origin)
    return out


def appearance_distance_rows(matrices: Sequence[np.ndarray | None],
                             embeddings: np.ndarray) -> np.ndarray:
    """Min cosine distance between each row set and each embedding (nan: empty row set)."""
    out = np.full((len(matrices), len(embeddings)), np.nan)
    if not len(matrices) or len(embeddings) == 0:
        return out
    # one product against every row set at once, then the best row per set
    # (a loop of small products costs more in call overhead than in arithmetic at 100 tracks)
    counts = np.array([0 if m is None else len(m) for m in matrices])
    filled = counts > 0
    if not filled.any():
        return out
    rows = np.concatenate([m for m, c in zip(matrices, counts, strict=True) if c])
    similarity = (rows @ embeddings.T).astype(np.float64)
    starts = np.r_[0, np.cumsum(counts[filled])[:-1]]
    best = np.maximum.reduceat(similarity, starts, axis=0)
    out[filled] = np.clip(1.0 - best, 0.0, 2.0)
    return out


def mahalanobis_gate(tracks: list[Tracklet], det_boxes: np.ndarray, chi2: float) -> np.ndarray:
    """``True`` where the mask's centre is plausible for the track's motion."""
    if not tracks or len(det_boxes) == 0:
        return np.zeros((len(tracks), len(det_boxes)), bool)
    return mahalanobis_centres([t.kalman for t in tracks], det_boxes) <= chi2


def source_match(last_source_ids: list[int], source_ids: np.ndarray) -> np.ndarray:
    """``True`` where the mask carries the source id the track/identity last had."""
    if not last_source_ids or len(source_ids) == 0:
        return np.zeros((len(last_source_ids), len(source_ids)), bool)
    last = np.array(last_source_ids)
    return (last[:, None] == source_ids[None, :]) & (source_ids[None, :] >= 0)

"""Cost terms of the association, each a small function with values in about [0, 1].

Pluggable in the norfair sense: the tracker adds weighted terms; a term returns ``nan`` where it
has no opinion and the gates return ``False`` where a pair is impossible.
"""

from __future__ import annotations

import numpy as np
from samtrack.pipeline.core.geometry import box_iou
from samtrack.reid.motion import mahalanobis_centres
from samtrack.reid.tracks import Gallery, LastSeen, Tracklet


def crop_masks(masks: np.ndarray, boxes: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Each mask cropped to its integer box: ``(patch, (x, y) origin)``."""
    out = []
    for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int), strict=True):
        out.append((m[y1:y2, x1:x2], (int(x1), int(y1))))
    return out


def patch_iou(a: np.ndarray, a_origin: tuple[int, int], b: np.ndarray,
              b_origin: tuple[int, int]) -> float:
    """IoU of two boolean patches placed at their origins in the same image plane."""
    ax, ay = a_origin
    bx, by = b_origin
    x1, y1 = max(ax, bx), max(ay, by)
    x2 = min(ax + a.shape[1], bx + b.shape[1])
    y2 = min(ay + a.shape[0], by + b.shape[0])
    area_a, area_b = int(a.sum()), int(b.sum())
    if x2 <= x1 or y2 <= y1:
        return 0.0
    inter = int((a[y1 - ay:y2 - ay, x1 - ax:x2 - ax] & b[y1 - by:y2 - by, x1 - bx:x2 - bx]).sum())
    union = area_a + area_b - inter
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


def appearance_distance(galleries: list[Gallery], embeddings: np.ndarray | None,
                        count: int = 0) -> np.ndarray:
    """Min cosine distance between each gallery and each embedding (nan: unknown)."""
    if embeddings is None:
        return np.full((len(galleries), count), np.nan)
    if not galleries or len(embeddings) == 0:
        return np.full((len(galleries), len(embeddings)), np.nan)
    # one product against every gallery's rows at once, then the best row per gallery
    # (a loop of small products costs more in call overhead than in arithmetic at 100 tracks)
    matrices = [g.matrix() for g in galleries]
    counts = np.array([len(m) for m in matrices])
    out = np.full((len(galleries), len(embeddings)), np.nan)
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


def position_cost(last_seen: list[LastSeen], centroids: np.ndarray,
                  diagonal: float) -> np.ndarray:
    """Distance from where each identity was last seen to each mask, over the frame diagonal.

    For an identity that exited, "where it was last seen" is where it left, so this is the prior
    that an animal comes back through the border it went out of.
    """
    if not last_seen or len(centroids) == 0:
        return np.zeros((len(last_seen), len(centroids)))
    last = np.stack([s.centroid for s in last_seen])
    d = np.linalg.norm(last[:, None, :] - centroids[None, :, :], axis=2)
    return np.clip(d / max(diagonal, 1.0), 0.0, 1.0)

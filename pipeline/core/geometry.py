"""Overlap measures between sets of boxes and masks, used by trackers and metrics alike."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of xyxy boxes ``(N, 4)``."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas ``(N, M)`` between xyxy boxes ``a (N, 4)`` and ``b (M, 4)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(N, M)`` between xyxy boxes ``a (N, 4)`` and ``b (M, 4)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    inter = box_intersection(a, b)
    area_a = box_area(a)
    area_b = box_area(b)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def rle_iou(a: list[dict], b: list[dict]) -> np.ndarray:
    """IoU matrix between two lists of COCO RLEs (no decoding: pycocotools works on runs)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return np.asarray(coco_mask.iou(list(a), list(b), [0] * len(b)), dtype=np.float64).reshape(
        len(a), len(b))


def crop_intersection(a: tuple[np.ndarray, tuple[int, int]],
                      b: tuple[np.ndarray, tuple[int, int]]) -> int:
    """Pixels two masks share, each given cut to its box as ``(bool patch, (x, y) origin)``
    (:attr:`FrameObjects.crops`): only the boxes' overlap is looked at."""
    (pa, (ax, ay)), (pb, (bx, by)) = a, b
    x1, y1 = max(ax, bx), max(ay, by)
    x2 = min(ax + pa.shape[1], bx + pb.shape[1])
    y2 = min(ay + pa.shape[0], by + pb.shape[0])
    if x2 <= x1 or y2 <= y1:
        return 0
    return int(np.count_nonzero(pa[y1 - ay:y2 - ay, x1 - ax:x2 - ax] &
                                pb[y1 - by:y2 - by, x1 - bx:x2 - bx]))

"""CLEAR-MOT and identity metrics with py-motmetrics, fed with our own IoU.

motmetrics' ``distances.iou_matrix`` calls ``np.asfarray``, removed in NumPy 2, so we compute the
IoU ourselves (mask IoU when both sides have masks, box IoU otherwise) and only use its
accumulator and metric host, which work. Pairs below ``iou_threshold`` (0.5, the MOTChallenge
convention) cannot match.
"""

from __future__ import annotations

from typing import Any

import motmetrics as mm
import numpy as np

from eval.data import SequenceTracks
from pipeline.geometry import box_iou, rle_iou

MOT_METRICS = {
    "num_switches": "idsw",
    "idf1": "idf1",
    "idp": "idp",
    "idr": "idr",
    "mota": "mota",
    "motp": "motp",
    "num_false_positives": "fp",
    "num_misses": "fn",
    "mostly_tracked": "mt",
    "partially_tracked": "pt",
    "mostly_lost": "ml",
    "num_fragmentations": "frag",
    "num_unique_objects": "gt_ids",
    "num_frames": "frames",
}
COUNT_KEYS = {"idsw", "fp", "fn", "mt", "pt", "ml", "frag", "gt_ids", "frames"}


def accumulate(gt: SequenceTracks, pred: SequenceTracks,
               iou_threshold: float = 0.5) -> mm.MOTAccumulator:
    """One motmetrics accumulator over every frame of ``gt`` (and any extra ``pred`` frames)."""
    acc = mm.MOTAccumulator(auto_id=True)
    use_masks = gt.has_masks and pred.has_masks
    last = max(gt.num_frames, pred.num_frames)
    for frame in range(1, last + 1):
        g, p = gt.get(frame), pred.get(frame)
        iou = rle_iou(g.rles or [], p.rles or []) if use_masks else box_iou(g.boxes, p.boxes)
        dist = np.where(iou >= iou_threshold, 1.0 - iou, np.nan)
        acc.update(g.ids.tolist(), p.ids.tolist(), dist)
    return acc


def summarize(acc: mm.MOTAccumulator, name: str = "seq") -> dict[str, Any]:
    """Metric dict with samtrack's short names; ratios as fractions, counts as ints.

    MOTP here is motmetrics' convention: mean (1 - IoU) of matches, lower is better.
    """
    host = mm.metrics.create()
    df = host.compute(acc, metrics=list(MOT_METRICS), name=name)
    row = df.iloc[0]
    out: dict[str, Any] = {}
    for key, short in MOT_METRICS.items():
        value = row[key]
        if short in COUNT_KEYS:
            out[short] = int(value)
        else:
            out[short] = None if value is None or np.isnan(value) else float(value)
    return out


def evaluate(gt: SequenceTracks, pred: SequenceTracks, iou_threshold: float = 0.5):
    """Metrics of one predicted sequence against its ground truth."""
    return summarize(accumulate(gt, pred, iou_threshold), gt.name)

"""CLEAR-MOT and identity metrics with py-motmetrics, plus the ID-switch report.

motmetrics' ``distances.iou_matrix`` calls ``np.asfarray`` (removed in NumPy 2), so we hand its
accumulator our own IoU from :mod:`eval.pairing`. Pairs below ``iou_threshold`` (0.5, the
MOTChallenge convention) cannot match.

MOTP conventions differ between tools: motmetrics reports the mean *distance* ``1 - IoU`` of
matches (lower is better); MOTChallenge and TrackEval report the mean IoU (higher is better).
We report TrackEval's as ``motp`` and motmetrics' as ``motp_dist`` (``motp = 1 - motp_dist``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import motmetrics as mm

import numpy as np

from samtrack.eval.pairing import PairedSequence

MOT_METRICS = {
    "idf1": "idf1", "idp": "idp", "idr": "idr", "recall": "recall", "precision": "precision",
    "mota": "mota", "motp": "motp_dist", "num_switches": "idsw",
    "num_false_positives": "fp", "num_misses": "fn", "num_objects": "gt_dets",
    "num_predictions": "pred_dets", "mostly_tracked": "mt", "partially_tracked": "pt",
    "mostly_lost": "ml", "num_fragmentations": "frag", "num_unique_objects": "gt_ids",
    "num_frames": "frames",
}
COUNT_KEYS = {"idsw", "fp", "fn", "gt_dets", "pred_dets", "mt", "pt", "ml", "frag", "gt_ids",
              "frames"}


def accumulate(paired: PairedSequence, iou_threshold: float = 0.5) -> mm.MOTAccumulator:
    """Feed one motmetrics accumulator with every frame of a paired sequence."""
    import motmetrics as mm  # on first use (pandas, scipy.stats): `import samtrack` stays light

    acc = mm.MOTAccumulator(auto_id=True)
    for frame in paired.frames:
        dist = np.where(frame.similarity >= iou_threshold - 1e-12, 1.0 - frame.similarity,
                        np.nan)
        acc.update(frame.gt_ids.tolist(), frame.pred_ids.tolist(), dist)
    return acc


def _row_to_dict(row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, short in MOT_METRICS.items():
        value = row[key]
        if short in COUNT_KEYS:
            out[short] = int(value)
        else:
            out[short] = None if value is None or np.isnan(value) else float(value)
    if out["motp_dist"] is not None:
        out["motp"] = 1.0 - out["motp_dist"]
    else:
        out["motp"] = None
    return out


def clear_metrics(accs: dict[str, mm.MOTAccumulator]) -> tuple[dict, dict[str, dict]]:
    """``(combined, per sequence)`` CLEAR + identity metrics from named accumulators."""
    import motmetrics as mm

    host = mm.metrics.create()
    names = list(accs)
    df = host.compute_many([accs[n] for n in names], metrics=list(MOT_METRICS), names=names,
                           generate_overall=True)
    per_seq = {n: _row_to_dict(df.loc[n]) for n in names}
    return _row_to_dict(df.loc["OVERALL"]), per_seq


@dataclass(frozen=True)
class Switch:
    """Ground-truth object ``gt_id`` changed predicted id at ``frame`` (1-based)."""

    sequence: str
    frame: int
    gt_id: int
    previous_pred_id: int
    new_pred_id: int


@dataclass(frozen=True)
class Fragmentation:
    """Ground truth ``gt_id`` was tracked, then missed from ``frame`` for ``missed`` frames."""

    sequence: str
    frame: int
    gt_id: int
    missed: int
    pred_id_before: int
    pred_id_after: int


def switch_report(acc: mm.MOTAccumulator, sequence: str,
                  ) -> tuple[list[Switch], list[Fragmentation]]:
    """Every ID switch and fragmentation, as motmetrics counted them.

    Frames are reported 1-based (the accumulator counts from 0).
    """
    events = acc.mot_events.reset_index()
    events = events[events.Type.isin(["MATCH", "SWITCH", "MISS"])]
    switches: list[Switch] = []
    frags: list[Fragmentation] = []
    last_hyp: dict[int, int] = {}
    # per object: (miss run start frame, length, hyp before) while inside a gap
    gap: dict[int, tuple[int, int, int]] = {}
    for frame_id, kind, oid, hid in zip(events.FrameId, events.Type, events.OId, events.HId,
                                        strict=True):
        oid = int(oid)
        if kind == "MISS":
            if oid in last_hyp:  # inside the tracked span: a gap (closed only if tracked again)
                start, length, before = gap.get(oid, (int(frame_id) + 1, 0, last_hyp[oid]))
                gap[oid] = (start, length + 1, before)
            continue
        hid = int(hid)
        if kind == "SWITCH":
            switches.append(Switch(sequence, int(frame_id) + 1, oid, last_hyp.get(oid, -1), hid))
        if oid in gap:
            start, length, before = gap.pop(oid)
            frags.append(Fragmentation(sequence, start, oid, length, before, hid))
        last_hyp[oid] = hid
    return switches, frags

"""Per-frame similarity between ground truth and predictions, after the benchmark's preprocessing.

Every metric (motmetrics' CLEAR/identity, TrackEval's HOTA) is computed from the same
:class:`PairedSequence`, so they can never disagree about which objects exist or how much they
overlap.

MOTChallenge preprocessing replicates TrackEval's ``MotChallenge2DBox.get_preprocessed_seq_data``:

* MOT16/17/20: prediction boxes that match (Hungarian on IoU >= 0.5) a ground-truth box of a
  distractor class (person on vehicle, static person, distractor, reflection; MOT20 also
  non-MOT vehicle) are removed; then only pedestrian ground truth with a non-zero "consider"
  flag is kept;
* MOT15 (class column -1): only ground truth with a zero "consider" flag is removed.

It applies to MOTChallenge-txt ground truth only (``auto``), or as forced by ``preproc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from samtrack.eval.data import SequenceTracks
from samtrack.eval.points import DEFAULT_RADIUS, point_similarity
from samtrack.pipeline.core.formats import FormatError
from samtrack.pipeline.core.geometry import box_iou, rle_iou

PEDESTRIAN = 1
DISTRACTORS = {"mot17": (2, 7, 8, 12), "mot20": (2, 6, 7, 8, 12)}
VALID_CLASSES = set(range(1, 14))
PREPROC_CHOICES = ("auto", "off", "mot15", "mot17", "mot20")


@dataclass
class FramePair:
    gt_ids: np.ndarray
    pred_ids: np.ndarray
    similarity: np.ndarray  # (len(gt_ids), len(pred_ids)) IoU
    pred_scores: np.ndarray | None = None


@dataclass
class PairedSequence:
    name: str
    frames: list[FramePair] = field(default_factory=list)  # index t = frame t + 1
    measure: str = "box"  # box | mask
    preproc: str = "off"

    @property
    def num_frames(self) -> int:
        return len(self.frames)


def resolve_preproc(gt: SequenceTracks, preproc: str) -> str:
    """``auto``: MOTChallenge txt ground truth -> mot17 when column 8 holds MOTChallenge classes
    (integers 1..13) everywhere, else mot15 (whose columns 8-10 are world coordinates or -1);
    other formats -> off."""
    if preproc not in PREPROC_CHOICES:
        raise ValueError(f"preproc must be one of {', '.join(PREPROC_CHOICES)}, got {preproc!r}")
    if preproc != "auto":
        return preproc
    if gt.kind != "mot":
        return "off"
    classes = [f.classes for f in gt.frames.values() if f.classes is not None and len(f.classes)]
    if not classes:
        return "mot15"
    values = np.concatenate(classes)
    is_class = (values == np.round(values)) & (values >= 1) & (values <= 13)
    return "mot17" if is_class.all() else "mot15"


def align_to_ground_truth(gt: SequenceTracks, pred: SequenceTracks) -> SequenceTracks:
    """``pred`` keyed by the ground truth's frames, or a :class:`FormatError` saying why not.

    Frames are matched by file name when both sides are PNG ID maps (``000042.png`` with
    ``000042.png``), else by frame number. The ground truth defines the sequence, as
    MOTChallenge's ``seqLength`` does: frames 1 to its last frame (or ``seqLength`` when
    declared). A prediction with objects on a frame outside that range is an error, never
    silently ignored: the two files do not describe the same clip. A frame the prediction
    lacks counts as a frame where it found nothing (every object missed).
    """
    if gt.names and pred.names:
        by_name = {stem: frame for frame, stem in gt.names.items()}
        frames = {}
        for frame, tracks in pred.frames.items():
            stem = pred.names[frame]
            if stem not in by_name:
                if not len(tracks.ids):
                    continue
                raise FormatError(f"{pred.source}: ID map '{stem}.png' has no ground-truth map "
                                  f"of that name in {gt.source}")
            frames[by_name[stem]] = tracks
        pred = replace(pred, frames=frames, names=None)
    last = gt.num_frames
    outside = sorted(f for f, t in pred.frames.items() if (f < 1 or f > last) and len(t.ids))
    if outside:
        raise FormatError(f"{pred.source}: predictions on frames {outside[0]}-{outside[-1]}, "
                          f"outside the ground truth's frames 1-{last} ({gt.source}); the "
                          "ground truth defines the sequence (MOTChallenge seqLength)")
    return pred


def pair_sequences(gt: SequenceTracks, pred: SequenceTracks, preproc: str = "auto",
                   name: str | None = None, radius: float = DEFAULT_RADIUS) -> PairedSequence:
    """Similarity per frame over the ground truth's frames (``seqLength`` when declared):
    mask IoU, box IoU, or for point ground truth the point-in-mask similarity within
    ``radius`` px (:func:`eval.points.point_similarity`)."""
    pred = align_to_ground_truth(gt, pred)
    mode = resolve_preproc(gt, preproc)
    use_masks = gt.has_masks and pred.has_masks
    if gt.has_points and not pred.has_masks:
        raise FormatError(f"{gt.source}: point ground truth scores masks; {pred.source} has "
                          "boxes only")
    measure = "point" if gt.has_points else "mask" if use_masks else "box"
    paired = PairedSequence(name or gt.name, measure=measure, preproc=mode)
    for frame in range(1, gt.num_frames + 1):
        g, p = gt.get(frame), pred.get(frame)
        if gt.has_points:
            size = tuple(p.rles[0]["size"]) if p.rles else (0, 0)
            sim = point_similarity(g.points, p.rles or [], size, radius)  # type: ignore[arg-type]
        else:
            sim = rle_iou(g.rles or [], p.rles or []) if use_masks else \
                box_iou(g.boxes, p.boxes)
        gt_keep = np.ones(len(g.ids), bool)
        pred_keep = np.ones(len(p.ids), bool)
        if mode in ("mot17", "mot20"):
            classes = (np.nan_to_num(g.classes, nan=-1).astype(int) if g.classes is not None
                       else np.ones(len(g.ids), int))
            bad = set(np.unique(classes).tolist()) - VALID_CLASSES
            if bad and len(p.ids):
                raise FormatError(f"{gt.source}: frame {frame}: invalid MOTChallenge classes "
                                 f"{sorted(bad)} (use --preproc off or mot15)")
            if len(g.ids) and len(p.ids):
                scores = sim.copy()
                scores[scores < 0.5 - np.finfo(float).eps] = 0
                rows, cols = linear_sum_assignment(-scores)
                real = scores[rows, cols] > np.finfo(float).eps
                rows, cols = rows[real], cols[real]
                distractor = np.isin(classes[rows], DISTRACTORS[mode])
                pred_keep[cols[distractor]] = False
            zero = g.zero_marked if g.zero_marked is not None else np.ones(len(g.ids), int)
            gt_keep = (zero != 0) & (classes == PEDESTRIAN)
        elif mode == "mot15" and g.zero_marked is not None:
            gt_keep = g.zero_marked != 0
        paired.frames.append(FramePair(g.ids[gt_keep], p.ids[pred_keep],
                                       sim[np.ix_(gt_keep, pred_keep)]))
    return paired

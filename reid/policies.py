"""Policies of the tracker: decisions that are rules rather than costs.

Why objects: each rule here answers one failure of a mask source (a masklet latched onto an
animal another masklet follows; a source whose ids can or cannot be trusted; a returning object
that could be one of several). Kept apart from the association they can be read and tested one
at a time. Their settings come from ``tracker.duplicates`` and ``tracker.reentry`` (defaults
stated there, in :mod:`reid.config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.geometry import box_iou, crop_intersection
from samtrack.reid.contrast import SceneContrast


class ContainmentDuplicates:
    """Two masks whose overlap covers ``containment`` of the smaller one are one object.

    The larger mask is kept (the duplicate is the part of the animal a stray masklet grabbed);
    on equal areas the higher score. Returns the mask of objects to keep and the dropped ones.

    ``iou`` (off by default): two masks overlapping by at least this IoU are also one object,
    and the better-scored stays: greedy non-maximum suppression, for detectors that leave
    several boxes side by side on one object. Why it exists: MOT15's public detections do. On
    PETS09-S2L1 a quarter of the boxes ranked below 0.7 overlap a better-scored box by IoU > 0.3,
    and 7% of those are a person nobody else covers, against 88% of the rest; containment does
    not see them (neither box holds the other). Pairs are then visited best-scored first, as
    NMS does, so a suppressed box suppresses nothing.
    """

    def __init__(self, containment: float, iou: float | None) -> None:
        self.containment = containment
        self.iou = iou

    def __call__(self, objects: FrameObjects) -> tuple[np.ndarray, list[int]]:
        keep = np.ones(len(objects), bool)
        dropped: list[int] = []
        if len(objects) < 2:
            return keep, dropped
        boxes = objects.boxes
        overlap = box_iou(boxes, boxes) > 0
        np.fill_diagonal(overlap, False)
        if not overlap.any():
            return keep, dropped
        crops, areas = objects.crops, objects.areas
        # NMS visits pairs best-scored first; the containment rule alone keeps storage order
        order = np.argsort(-objects.scores, kind="stable") if self.iou is not None \
            else np.arange(len(objects))
        for a, b in zip(*np.nonzero(np.triu(overlap[np.ix_(order, order)])), strict=True):
            i, j = order[a], order[b]
            if not (keep[i] and keep[j]):
                continue
            inter = crop_intersection(crops[i], crops[j])
            union = max(int(areas[i]) + int(areas[j]) - inter, 1)
            if self.iou is not None and inter / union >= self.iou:
                # two detections of one object side by side: the better-scored one stays
                drop = j if (objects.scores[i], areas[i]) >= (objects.scores[j], areas[j]) else i
            elif inter / max(min(areas[i], areas[j]), 1) >= self.containment:
                drop = j if (areas[i], objects.scores[i]) >= (areas[j], objects.scores[j]) else i
            else:
                continue
            keep[drop] = False
            dropped.append(int(drop))
        return keep, dropped


class SourceTrust:
    """Counts the times the source's ids and samtrack's decisions parted ways.

    A duplicate masklet, an object renamed in view, a returning object restored under another or
    a brand-new source id, a correction: each is a disagreement. While there has been none, the
    source has earned trust and its agreeing id settles a close re-entry call.
    """

    def __init__(self) -> None:
        self.disagreements = 0

    def disagree(self) -> None:
        self.disagreements += 1

    @property
    def trusted(self) -> bool:
        return self.disagreements == 0

    def reset(self) -> None:
        self.disagreements = 0


@dataclass
class ReentryRules:
    """Which absent identities a returning object may take, and when a decision is held back.

    ``limit``: appearance distance above which a fully visible object is not a returning one,
    the fixed ``gate`` or, once the clip has shown how alike distinct objects look
    (:class:`SceneContrast`), ``contrast`` times that scale, whichever is lower; with
    ``own_floor`` (the online engines) never below how far this clip's objects stray from
    their own appearance.

    ``hold``: a restored identity is not reported while contested, until verified: a few
    unlabelled frames instead of a wrong label and two ID switches.
    """

    gate: float
    contrast: float | None
    hold_contested: Literal["margin", "source", "off"]
    hold_margin: float
    own_floor: bool = True  # the limit never below the objects' own spread (see ``limit``)

    def __post_init__(self) -> None:
        self.scene = SceneContrast()

    def limit(self) -> float:
        scale = self.scene.scale() if self.contrast is not None else None
        if scale is None:
            return self.gate
        # never below how far the objects' own views stray: where distinct objects look
        # closer than that, appearance cannot say a returning object is someone new
        own = self.scene.own_scale() if self.own_floor else None
        return min(self.gate, max(self.contrast * scale, own or 0.0))

    def hold(self, *, close_call: bool, disagrees: bool, vouched: bool,
             source_agrees: bool) -> bool:
        if self.hold_contested == "margin":
            return disagrees or (close_call and not vouched)
        if self.hold_contested == "source":
            return not source_agrees and (disagrees or close_call)
        return False

    def reset(self) -> None:
        self.scene = SceneContrast()

"""A deliberately plain IoU tracker: Hungarian matching of box IoU between consecutive frames.

It exists so the pipeline runs end to end before the re-identification tracker lands; it keeps
no appearance and no motion model, so any object that leaves and returns gets a new id.
"""

from __future__ import annotations

from dataclasses import dataclass

import lap
import numpy as np
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.geometry import box_iou


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    misses: int = 0


class IouTracker:
    """``update(objects) -> objects with track_ids``; one call per frame, in order."""

    def __init__(self, iou_threshold: float = 0.2, max_age: int = 10) -> None:
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.tracks: list[_Track] = []
        self._next_id = 1
        self.events: list = []

    def update(self, objects: FrameObjects, image: np.ndarray | None = None) -> FrameObjects:
        boxes = objects.boxes
        track_ids = np.full(len(objects), -1, dtype=np.int64)
        matched_tracks: set[int] = set()
        if self.tracks and len(objects):
            iou = box_iou(np.stack([t.box for t in self.tracks]), boxes)
            cost = 1.0 - iou
            _, row_to_col, _ = lap.lapjv(cost, extend_cost=True,
                                         cost_limit=1.0 - self.iou_threshold + 1e-9)
            for ti, oi in enumerate(row_to_col):
                if oi >= 0 and iou[ti, oi] >= self.iou_threshold:
                    track = self.tracks[ti]
                    track.box, track.misses = boxes[oi], 0
                    track_ids[oi] = track.track_id
                    matched_tracks.add(ti)
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_age]
        for oi in np.flatnonzero(track_ids < 0):
            self.tracks.append(_Track(self._next_id, boxes[oi]))
            track_ids[oi] = self._next_id
            self._next_id += 1
        return objects.with_track_ids(track_ids)

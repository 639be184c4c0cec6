"""A deliberately plain IoU tracker: Hungarian matching of box IoU between consecutive frames.

It exists so the pipeline runs end to end before the re-identification tracker lands; it keeps
no appearance and no motion model, so any object that leaves and returns gets a new id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import lap
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.frames import FrameObjects
from pipeline.geometry import box_iou


class IouTrackerConfig(BaseModel):
    """Options of the ``iou`` tracker (``tracker.*``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["iou"] = Field(default="iou", description="Tracker kind.")
    iou_threshold: float = Field(default=0.2, ge=0, le=1, description="Minimum box IoU between "
                                 "a track's last box and a new mask to continue the track.")
    max_age: int = Field(default=10, ge=0, description="Frames a track may go unmatched "
                         "before it is dropped (a dropped track never comes back).")


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    misses: int = 0


class IouTracker:
    """``update(objects) -> objects with track_ids``; one call per frame, in order."""

    def __init__(self, config: IouTrackerConfig | None = None) -> None:
        self.config = config or IouTrackerConfig()
        self.tracks: list[_Track] = []
        self._next_id = 1

    def update(self, objects: FrameObjects) -> FrameObjects:
        boxes = objects.boxes
        track_ids = np.full(len(objects), -1, dtype=np.int64)
        matched_tracks: set[int] = set()
        if self.tracks and len(objects):
            iou = box_iou(np.stack([t.box for t in self.tracks]), boxes)
            cost = 1.0 - iou
            _, row_to_col, _ = lap.lapjv(cost, extend_cost=True,
                                         cost_limit=1.0 - self.config.iou_threshold + 1e-9)
            for ti, oi in enumerate(row_to_col):
                if oi >= 0 and iou[ti, oi] >= self.config.iou_threshold:
                    track = self.tracks[ti]
                    track.box, track.misses = boxes[oi], 0
                    track_ids[oi] = track.track_id
                    matched_tracks.add(ti)
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.config.max_age]
        for oi in np.flatnonzero(track_ids < 0):
            self.tracks.append(_Track(self._next_id, boxes[oi]))
            track_ids[oi] = self._next_id
            self._next_id += 1
        return objects.with_track_ids(track_ids)

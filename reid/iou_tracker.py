"""A deliberately plain IoU tracker: Hungarian matching of box IoU between consecutive frames.

It exists so the pipeline runs end to end before the re-identification tracker lands; it keeps
no appearance and no motion model, so any object that leaves and returns gets a new id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.geometry import box_iou
from samtrack.pipeline.core.video import ColorOrder
from samtrack.reid.association import assign
from samtrack.reid.base import Tracker, TrackResult
from samtrack.reid.config import TRACKERS, TrackerConfig


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    misses: int = 0


class IouTracker(Tracker):
    """``update(objects) -> objects with track_ids``; one call per frame, in order.

    Options: ``iou_threshold``; ``max_age`` capped at 30 frames (it has no motion model, so a
    box remembered longer only collects wrong matches).
    """

    def __init__(self, config: TrackerConfig | None = None, *, device: str = "cpu",
                 record: bool = True) -> None:
        self.config = config or TrackerConfig(type="iou")
        self.iou_threshold = self.config.iou.threshold
        self.max_age = min(self.config.association.max_age, 30)
        self.record = record
        self.reset()

    def reset(self) -> None:
        self.tracks: list[_Track] = []
        self._next_id = 1
        self.frames_seen = 0
        self.events: list = []
        self.frames: list[FrameObjects] = []

    def finalize(self, *, progress: bool = False) -> TrackResult:
        return TrackResult(frames=list(self.frames), identities={"engine": "iou"})

    def update(self, objects: FrameObjects, image: np.ndarray | None = None, *,
               color: ColorOrder = "bgr") -> FrameObjects:
        objects = self.numbered(objects, self.frames_seen)
        self.frames_seen += 1
        boxes = objects.boxes
        track_ids = np.full(len(objects), -1, dtype=np.int64)
        matched_tracks: set[int] = set()
        if self.tracks and len(objects):
            iou = box_iou(np.stack([t.box for t in self.tracks]), boxes)
            cost = 1.0 - iou
            for ti, oi in assign(cost, 1.0 - self.iou_threshold + 1e-9):
                if iou[ti, oi] >= self.iou_threshold:
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
        if self.record:
            self.frames.append(objects.with_track_ids(track_ids).compact())
        return objects.with_track_ids(track_ids)


TRACKERS.register("iou", IouTracker)

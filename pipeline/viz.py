"""Drawing identities on frames: a stable palette, annotators and an atomic video writer.

The palette is a pure function of the id, so the same identity has the same colour in every
picture of every run: people compare runs by colour before they read labels.

Annotators (after supervision's) each draw one thing for every object of a frame: ``masks``
(tint and outline), ``labels`` (the id at the centroid), ``boxes``. They are registered by name;
``viz.annotators`` picks which draw the overlay video and the trails video, in order. A new one
is a class with ``annotate(image, objects, values)`` and one :func:`register_annotator` call.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.registry import Registry

OVERLAY_ALPHA = 0.5


def id_color(track_id: int) -> tuple[int, int, int]:
    """BGR colour of an id. Hues step by the golden ratio so consecutive ids differ strongly."""
    if track_id <= 0:
        return (128, 128, 128)
    hue = (track_id * 0.618033988749895) % 1.0
    sat = 0.85 if track_id % 2 else 0.65
    val = 1.0 if (track_id // 2) % 2 else 0.85
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (int(b * 255), int(g * 255), int(r * 255))


class Annotator(Protocol):
    def annotate(self, image: np.ndarray, objects: FrameObjects, values: np.ndarray) -> None:
        """Draw on ``image`` in place; ``values`` are the ids to show (track or source)."""


ANNOTATORS: Registry[Callable[[], Annotator]] = Registry("annotator", "viz.annotators")
DEFAULT_ANNOTATORS = ("masks", "labels")


def register_annotator(name: str, factory: Callable[[], Annotator]) -> None:
    ANNOTATORS.register(name, factory)


class MaskAnnotator:
    """Tint each mask with its id's colour and outline it."""

    def __init__(self, alpha: float = OVERLAY_ALPHA) -> None:
        self.alpha = alpha

    def annotate(self, image: np.ndarray, objects: FrameObjects, values: np.ndarray) -> None:
        masks = objects.masks
        for i in range(len(objects)):
            m = masks[i]
            if not m.any():
                continue
            color = np.array(id_color(int(values[i])), dtype=np.float32)
            image[m] = ((1 - self.alpha) * image[m].astype(np.float32) +
                        self.alpha * color).astype(np.uint8)
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(image, contours, -1, tuple(int(c) for c in color), 2)


class LabelAnnotator:
    """The id just above each object's centroid (the centroid keeps the mask's colour)."""

    def annotate(self, image: np.ndarray, objects: FrameObjects, values: np.ndarray) -> None:
        areas = objects.areas
        for i, (cx, cy) in enumerate(objects.centroids):
            if not areas[i]:
                continue
            label = str(int(values[i]))
            org = (int(cx) - 6 * len(label), int(cy) - 6)
            cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3,
                        cv2.LINE_AA)
            cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                        cv2.LINE_AA)


class BoxAnnotator:
    """Each object's box in its id's colour."""

    def annotate(self, image: np.ndarray, objects: FrameObjects, values: np.ndarray) -> None:
        for (x1, y1, x2, y2), value in zip(objects.boxes, values, strict=True):
            cv2.rectangle(image, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1),
                          id_color(int(value)), 1)


register_annotator("masks", MaskAnnotator)
register_annotator("labels", LabelAnnotator)
register_annotator("boxes", BoxAnnotator)


def draw_overlay(image: np.ndarray, objects: FrameObjects, ids: str = "track",
                 annotators: Sequence[str] = DEFAULT_ANNOTATORS) -> np.ndarray:
    """A copy of ``image`` with the named annotators drawn in order (default: tinted,
    outlined masks with the id at each centroid)."""
    out = image.copy()
    values = objects.track_ids if ids == "track" else objects.source_ids
    for name in annotators:
        ANNOTATORS.get(name)().annotate(out, objects, values)
    return out


def largest_object_mask(objects: FrameObjects) -> np.ndarray:
    """White-on-black ``uint8`` image of the largest object (all black when there is none)."""
    out = np.zeros(objects.image_size, dtype=np.uint8)
    if len(objects):
        out[objects.masks[int(np.argmax(objects.areas))]] = 255
    return out


class VideoSink:
    """Write frames to an mp4 atomically: frames go to a temp file renamed on ``close()``.

    A run that fails part way leaves no video that looks complete.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self._writer: cv2.VideoWriter | None = None
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: cannot open video writer")
        self._writer.write(image)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._tmp.exists():
            self._tmp.unlink()

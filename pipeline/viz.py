"""Drawing identities on frames: a stable palette, mask overlays and an atomic video writer.

The palette is a pure function of the id, so the same identity has the same colour in every
picture of every run: people compare runs by colour before they read labels.
"""

from __future__ import annotations

import colorsys
import os
from pathlib import Path

import cv2
import numpy as np

from samtrack.pipeline.core.frames import FrameObjects

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


def draw_overlay(
    image: np.ndarray, objects: FrameObjects, ids: str = "track", alpha: float = OVERLAY_ALPHA
) -> np.ndarray:
    """Tint each mask with its id's colour, outline it and write the id at its centroid."""
    out = image.copy()
    values = objects.track_ids if ids == "track" else objects.source_ids
    masks = objects.masks
    for i in range(len(objects)):
        color = np.array(id_color(int(values[i])), dtype=np.float32)
        m = masks[i]
        if not m.any():
            continue
        out[m] = ((1 - alpha) * out[m].astype(np.float32) + alpha * color).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 2)
    for i, (cx, cy) in enumerate(objects.centroids):
        if not masks[i].any():
            continue
        label = str(int(values[i]))
        # just above the centroid, so the centroid itself shows the tinted mask colour
        org = (int(cx) - 6 * len(label), int(cy) - 6)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                    cv2.LINE_AA)
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

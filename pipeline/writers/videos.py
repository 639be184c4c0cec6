"""Videos: ``overlay.mp4`` (masks tinted by track id) and ``binary.mp4`` (largest object)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.viz import VideoSink, draw_overlay, largest_object_mask
from samtrack.pipeline.writers.base import register_writer


class FrameVideoWriter:
    """One drawn picture per frame into an mp4 (atomic: see :class:`VideoSink`)."""

    def __init__(self, path: Path, fps: float,
                 draw: Callable[[np.ndarray, FrameObjects], np.ndarray]) -> None:
        self.sink = VideoSink(path, fps)
        self.draw = draw

    def write(self, image: np.ndarray, objects: FrameObjects) -> None:
        self.sink.write(self.draw(image, objects))

    def close(self) -> None:
        self.sink.close()

    def abort(self) -> None:
        self.sink.abort()


register_writer("overlay", lambda folder, settings: FrameVideoWriter(
    folder / "overlay.mp4", settings.fps,
    lambda image, objects: draw_overlay(image, objects, annotators=settings.annotators)),
                "overlay.mp4: the clip with masks tinted by track id and id labels")
register_writer("binary", lambda folder, settings: FrameVideoWriter(
    folder / "binary.mp4", settings.fps, lambda image, objects: largest_object_mask(objects)),
    "binary.mp4: the largest object white on black", default=False)

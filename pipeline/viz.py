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
import logging
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.registry import Registry

OVERLAY_ALPHA = 0.5

log = logging.getLogger(__name__)


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
    """Tint each mask with its id's colour and outline it.

    Drawn on each mask's crop, never on a full-frame mask: a frame's cost grows with the
    masks' pixels, not with the frame's size times the objects. That is why this is not
    supervision's ``MaskAnnotator``, which blends dense ``(N, H, W)`` masks (``python -m
    samtrack.eval.bench.speed --drawing``; eval/results/drawing.md)."""

    def __init__(self, alpha: float = OVERLAY_ALPHA) -> None:
        self.alpha = alpha

    def annotate(self, image: np.ndarray, objects: FrameObjects, values: np.ndarray) -> None:
        for (patch, (x0, y0)), value in zip(objects.crops, values, strict=True):
            if not patch.any():
                continue
            h, w = patch.shape
            region = image[y0:y0 + h, x0:x0 + w]
            color = np.array(id_color(int(value)), dtype=np.float32)
            region[patch] = ((1 - self.alpha) * region[patch].astype(np.float32) +
                             self.alpha * color).astype(np.uint8)
            contours, _ = cv2.findContours(patch.view(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
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

    H.264 (yuv420p, ``+faststart``) through PyAV's bundled libx264, the codec every browser
    plays; odd frame sizes are padded by one black row/column because 4:2:0 needs even sizes.
    Without a usable libx264 the fallback is OpenCV's ``mp4v`` (plays in desktop players, not
    in Chromium), said once in the log. A run that fails part way leaves no video that looks
    complete.
    """

    def __init__(self, path: str | Path, fps: float, *, quality: int = 23) -> None:
        self.path = Path(path)
        self.fps = fps
        self.quality = quality  # x264 CRF: 18 near-lossless .. 28 small; 23 is x264's default
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self._container = None
        self._stream = None
        self._frame_from: Callable[..., Any] | None = None  # av.VideoFrame.from_ndarray
        self._cv_writer: cv2.VideoWriter | None = None
        self.codec = ""
        self.frames_written = 0

    def _open(self, width: int, height: int) -> None:
        try:
            import av  # PyAV: FFmpeg with libx264, so the mp4 plays in a browser

            av.codec.Codec("libx264", "w")
        except Exception as exc:  # no PyAV, or a build without the encoder
            log.warning("%s: H.264 encoder unavailable (%s); writing mp4v, which browsers do "
                        "not play", self.path, exc)
        else:
            self._container = av.open(str(self._tmp), mode="w", format="mp4",
                                      options={"movflags": "+faststart"})
            rate = Fraction(self.fps).limit_denominator(1001)
            stream = self._container.add_stream("libx264", rate=rate)
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            # superfast: about mp4v's encode time at less than half its file size
            stream.options = {"crf": str(self.quality), "preset": "superfast"}
            self._stream = stream
            self._frame_from = av.VideoFrame.from_ndarray
            self.codec = "h264"
            return
        self._cv_writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                          self.fps, (width, height))
        if not self._cv_writer.isOpened():
            raise OSError(f"{self.path}: cannot open video writer")
        self.codec = "mp4v"

    def write(self, image: np.ndarray) -> None:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self._stream is None and self._cv_writer is None:
            self._open(image.shape[1], image.shape[0])
        if self._stream is not None:
            h, w = image.shape[:2]
            if (w, h) != (self._stream.width, self._stream.height):
                image = cv2.copyMakeBorder(image, 0, self._stream.height - h, 0,
                                           self._stream.width - w, cv2.BORDER_CONSTANT)
            frame = self._frame_from(np.ascontiguousarray(image), format="bgr24")
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        else:
            self._cv_writer.write(image)
        self.frames_written += 1

    def _release(self, *, flush: bool) -> bool:
        opened = self._stream is not None or self._cv_writer is not None
        if self._stream is not None:
            try:
                if flush:
                    for packet in self._stream.encode():
                        self._container.mux(packet)
            finally:
                self._container.close()
                self._container = self._stream = None
        if self._cv_writer is not None:
            self._cv_writer.release()
            self._cv_writer = None
        return opened

    def close(self) -> None:
        if self._release(flush=True):
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._release(flush=False)
        if self._tmp.exists():
            self._tmp.unlink()

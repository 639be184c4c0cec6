"""``motion`` source: weight-free masks from a static camera by background subtraction.

OpenCV's MOG2 (or KNN) background model marks moving pixels; morphology removes sensor noise and
closes gaps; connected components become objects. It needs no download and no GPU, which is why
it is the default source: the whole pipeline runs on a fresh machine on real pixels.

Why priming: a background subtractor started on frame 0 calls *everything* foreground until it has
seen enough frames, so objects visible from the start would be lost in a blur of false masks. We
therefore build a clean background first: the per-pixel median of ``prime_frames`` frames spread
over the whole clip (an object that sits at a pixel less than half the time vanishes from the
median) and feed it to the model ``prime_repeats`` times. Only then do we stream the clip.

Limits: objects that touch become one blob, and an object that stops for a long time fades into
the background (``history`` frames). The tracker downstream copes with the first; raise
``history`` for the second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import VideoFrame, VideoReader
from samtrack.pipeline.sources.background import camera_of, to_grey
from samtrack.pipeline.sources.base import (
    SourceBase,
    SourceContext,
    SourceOptions,
    register_source,
)

#: px: the largest blur or morphology kernel (each is also cut to the frame's smaller side,
#: where a larger one would only cost time)
MAX_KERNEL = 1023


def kernel_size(size: int, image: np.ndarray, odd: bool = False) -> int:
    """A kernel no larger than the frame's smaller side (odd when asked)."""
    size = min(size, min(image.shape[:2]))
    return size - 1 + size % 2 if odd and size % 2 == 0 else size


class MotionOptions(SourceOptions):
    """Options of the ``motion`` source (``source.motion.*``)."""

    method: Literal["mog2", "knn"] = Field(
        default="mog2", description="OpenCV background subtractor: MOG2 (Gaussian mixture) or "
        "KNN (more robust to dynamic backgrounds, a little slower)."
    )
    history: int = Field(default=500, ge=1, le=1_000_000, description="Frames the background "
                         "model remembers; objects still for longer than this fade into it.")
    var_threshold: float = Field(default=25.0, gt=0, description="MOG2 squared Mahalanobis "
                                 "distance for foreground (KNN: squared distance x 16).")
    blur: int = Field(default=5, ge=0, le=MAX_KERNEL, description="Gaussian blur kernel (px, "
                      "odd; 0 = off) applied before subtraction to suppress sensor noise.")
    shadows: Literal["remove", "keep", "off"] = Field(
        default="remove", description="Shadow handling: detect and drop shadow pixels, detect "
        "and keep them as foreground, or do not detect shadows at all."
    )
    open_kernel: int = Field(default=3, ge=0, le=MAX_KERNEL, description="Opening kernel (px) "
                             "removing specks.")
    close_kernel: int = Field(default=9, ge=0, le=MAX_KERNEL, description="Closing kernel (px) "
                              "joining the parts of one object.")
    fill_holes: bool = Field(default=True, description="Fill holes inside each blob.")
    min_area: int = Field(default=150, ge=1, description="Drop blobs smaller than this (px).")
    max_area_fraction: float = Field(default=0.5, gt=0, le=1, description="Drop blobs larger "
                                     "than this fraction of the frame (lighting changes).")
    max_objects: int | None = Field(default=None, ge=1, description="Keep only the N largest "
                                    "blobs per frame (None = all).")
    prime_frames: int = Field(default=40, ge=0, le=400, description="Frames sampled over the "
                              "clip to build the initial background (0 = learn online only).")
    prime_repeats: int = Field(default=30, ge=1, le=1000, description="Times the primed "
                               "background is fed to the model before streaming.")
    learning_rate: float | None = Field(
        default=None, ge=0, le=1, description="Background update rate per frame; None = "
        "1/history. (OpenCV's automatic rate starts near 1/frames-seen, which right after "
        "priming is fast enough to absorb a slow animal into the background.)")


class MotionSource(SourceBase):
    """Background-subtraction mask source; see the module docstring."""

    name = "motion"

    def __init__(self, options: MotionOptions) -> None:
        self.options = options
        self.camera: str | None = None  # "static" | "moving", from the priming frames
        self._subtractor_ready: cv2.BackgroundSubtractor | None = None  # primed by prepare()

    def summary(self) -> dict:
        return {} if self.camera is None else {"camera": self.camera}

    def _subtractor(self):
        o = self.options
        detect = o.shadows != "off"
        if o.method == "knn":
            return cv2.createBackgroundSubtractorKNN(
                history=o.history, dist2Threshold=o.var_threshold * 16, detectShadows=detect)
        return cv2.createBackgroundSubtractorMOG2(
            history=o.history, varThreshold=o.var_threshold, detectShadows=detect)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        k = kernel_size(self.options.blur, image, odd=True)
        if k > 1:
            return cv2.GaussianBlur(image, (k, k), 0)
        return image

    def prepare(self, video: VideoReader) -> str | None:
        """Prime the model on a clean background before the first frame is streamed, so the
        priming seconds are spent (and shown) before the per-frame progress starts."""
        if self._subtractor_ready is not None:
            return None
        subtractor = self._subtractor()
        o = self.options
        detail = None
        if o.prime_frames > 0:
            raw = list(video.sample(o.prime_frames))
            samples = [self._prepare(img) for img in raw]
            if samples:
                background = np.median(np.stack(samples), axis=0).astype(np.uint8)
                self.camera = camera_of(np.stack([to_grey(img) for img in raw]))
                for _ in range(o.prime_repeats):
                    subtractor.apply(background, learningRate=-1)
                detail = f"motion model primed on {len(samples)} frames"
        self._subtractor_ready = subtractor
        return detail

    def frames(self, video: VideoReader) -> Iterator[tuple[VideoFrame, FrameObjects]]:
        self.prepare(video)
        subtractor, self._subtractor_ready = self._subtractor_ready, None
        o = self.options
        for frame in video:
            rate = o.learning_rate if o.learning_rate is not None else 1.0 / o.history
            fg = subtractor.apply(self._prepare(frame.image), learningRate=rate)
            yield frame, self.segment(fg, frame)

    def segment(self, fg: np.ndarray, frame: VideoFrame) -> FrameObjects:
        """Foreground mask (0 / 127 shadow / 255) -> objects."""
        o = self.options
        # MOG2/KNN write 127 for shadow pixels and 255 for foreground.
        binary = (fg >= 200) if o.shadows == "remove" else (fg > 0)
        binary = binary.astype(np.uint8)
        if o.open_kernel > 1:
            size = kernel_size(o.open_kernel, binary)
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
        if o.close_kernel > 1:
            size = kernel_size(o.close_kernel, binary)
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
        if o.fill_holes:
            contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            binary = np.zeros_like(binary)
            cv2.drawContours(binary, contours, -1, 1, thickness=cv2.FILLED)
        _count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        h, w = binary.shape
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.flatnonzero((areas >= o.min_area) & (areas <= o.max_area_fraction * h * w)) + 1
        keep = keep[np.argsort(-stats[keep, cv2.CC_STAT_AREA], kind="stable")]
        if o.max_objects is not None:
            keep = keep[: o.max_objects]
        masks = labels[None, :, :] == keep[:, None, None]
        return FrameObjects.from_masks(masks, frame_index=frame.index, frame_name=frame.name)


@register_source("motion", MotionOptions,
                 "weight-free background subtraction (OpenCV MOG2/KNN) for static cameras")
def _build(options: SourceOptions, context: SourceContext) -> MotionSource:
    assert isinstance(options, MotionOptions)
    return MotionSource(options)

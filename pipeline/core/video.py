"""Streaming video input: a video file (via OpenCV) or a folder of frames.

Frames are read one at a time and never collected, so memory does not grow with the clip length.
Each frame keeps a *name* (the file stem for a frame folder, the zero-based index ``%06d`` for a
video file) because every per-frame output is named after its input frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from samtrack.pipeline.core.errors import InputError

log = logging.getLogger(__name__)

MAX_PIXELS = 3840 * 2160  # 4K UHD (video.max_pixels)
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm"}
SEEK_GAP = 250  # frames; beyond this gap sample() seeks instead of grabbing through
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


ColorOrder = Literal["bgr", "rgb"]


def as_bgr(image: np.ndarray | None, color: ColorOrder = "bgr") -> np.ndarray | None:
    """``image`` in BGR order; ``color`` says the order it is in (``"bgr"``: as is)."""
    if image is None or color == "bgr":
        return image
    if color != "rgb":
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    if image.ndim != 3 or image.shape[2] != 3:
        return image  # grey: no order to change
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)



class VideoError(InputError):
    """A video or frame that cannot be read; the message names the path or frame."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: BGR ``uint8`` image ``(H, W, 3)``, index and output name."""

    index: int
    name: str
    image: np.ndarray


class VideoReader:
    """Iterate the frames of a video file or a frame folder.

    Args:
        path: a video file (mp4/avi/mov/...) or a folder of jpg/png frames (sorted naturally, so
            ``frame2.png`` comes before ``frame10.png``).
        fps: frame rate to report; ``None`` takes it from the file (folders default to 25).
        on_bad_frame: ``"skip"`` logs a warning naming the frame and goes on; ``"stop"`` raises.
        max_frames: stop after this many frames (``None`` = all).
        max_pixels: frames larger than this are refused with one line (the motion source holds
            dozens of frames for its background model; 8000x4500 frames took 19.6 GB).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | None = None,
        on_bad_frame: str = "skip",
        max_frames: int | None = None,
        max_pixels: int | None = MAX_PIXELS,
    ) -> None:
        self.path = Path(path)
        self.max_pixels = max_pixels
        if on_bad_frame not in ("skip", "stop"):
            raise ValueError(f"on_bad_frame must be 'skip' or 'stop', got {on_bad_frame!r}")
        self.on_bad_frame = on_bad_frame
        self.max_frames = max_frames
        self.skipped: list[str] = []
        if not self.path.exists():
            raise VideoError(f"{self.path}: no such file or folder")
        if not (self.path.is_dir() or self.path.is_file()):
            # a FIFO or device would block the reader forever
            raise VideoError(f"{self.path}: not a regular file or folder")
        self.is_folder = self.path.is_dir()
        if self.is_folder:
            from natsort import natsorted  # on first use: `import samtrack` stays light

            self._files = natsorted(
                (p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                key=lambda p: p.name,
            )
            if not self._files:
                raise VideoError(f"{self.path}: folder holds no jpg/png frames")
            self._count = len(self._files)
            self._fps = fps or 25.0
            first = cv2.imread(str(self._files[0]), cv2.IMREAD_COLOR)
            self._size = None if first is None else (first.shape[0], first.shape[1])
        else:
            cap = cv2.VideoCapture(str(self.path))
            if not cap.isOpened():
                raise VideoError(f"{self.path}: cannot open as a video")
            self._count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            file_fps = cap.get(cv2.CAP_PROP_FPS)
            h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            ok, _ = cap.read()
            cap.release()
            if not ok:
                raise VideoError(f"{self.path}: video has no decodable frame")
            self._fps = fps or (file_fps if file_fps and file_fps > 0 else 25.0)
            self._size = (h, w)
        self._check_size(self._size)

    def _check_size(self, size: tuple[int, int] | None) -> None:
        if size is not None and self.max_pixels is not None and \
                size[0] * size[1] > self.max_pixels:
            raise VideoError(f"{self.path}: frames are {size[1]}x{size[0]} "
                             f"({size[0] * size[1] / 1e6:.1f} MP), more than video.max_pixels "
                             f"({self.max_pixels / 1e6:.1f} MP); downscale the clip or raise "
                             "the limit")

    @property
    def fps(self) -> float:
        return float(self._fps)

    @property
    def frame_count(self) -> int:
        """Number of frames the input declares (a video's header may be approximate)."""
        n = self._count
        return n if self.max_frames is None else min(n, self.max_frames)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the first frame, if it decodes."""
        return self._size

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[VideoFrame]:
        self.skipped = []
        if self.is_folder:
            yield from self._iter_folder()
        else:
            yield from self._iter_video()

    def _bad_frame(self, name: str, why: str) -> None:
        msg = f"{name}: {why}"
        if self.on_bad_frame == "stop":
            raise VideoError(msg)
        log.warning("skipping frame %s", msg)
        self.skipped.append(name)

    def _iter_folder(self) -> Iterator[VideoFrame]:
        for index, file in enumerate(self._files[: self.frame_count]):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                self._bad_frame(str(file), "cannot decode image")
                continue
            if self._size is not None and image.shape[:2] != self._size:
                self._bad_frame(
                    str(file), f"size {image.shape[1]}x{image.shape[0]} differs from the first "
                    f"frame's {self._size[1]}x{self._size[0]}"
                )
                continue
            if self._size is None:
                self._size = image.shape[:2]
                self._check_size(self._size)
            yield VideoFrame(index=index, name=file.stem, image=image)

    def _iter_video(self) -> Iterator[VideoFrame]:
        cap = cv2.VideoCapture(str(self.path))
        try:
            index = 0
            limit = self.max_frames
            while limit is None or index < limit:
                ok, image = cap.read()
                if not ok:
                    # A failed read before the declared end is a corrupt frame, not the end:
                    # note it and try the next one; past the declared end it is the real end.
                    if index < self._count - 1:
                        self._bad_frame(f"{self.path}#{index}", "cannot decode frame")
                        index += 1
                        continue
                    break
                yield VideoFrame(index=index, name=f"{index:06d}", image=image)
                index += 1
        finally:
            cap.release()

    def sample(self, count: int) -> Iterator[np.ndarray]:
        """Up to ``count`` frames spread evenly over the clip (a separate pass; for priming
        background models). Undecodable frames are silently left out here."""
        total = self.frame_count
        if total <= 0 or count <= 0:
            return
        picks = np.unique(np.linspace(0, total - 1, num=min(count, total)).round().astype(int))
        if self.is_folder:
            for i in picks:
                image = cv2.imread(str(self._files[i]), cv2.IMREAD_COLOR)
                if image is not None and (self._size is None or image.shape[:2] == self._size):
                    yield image
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            position = 0  # the frame the next grab() returns
            for i in picks:
                # Seeking decodes from the last keyframe, often slower than decoding the frames
                # between picks: grab (decode without conversion) across short gaps, seek long ones.
                if i - position > SEEK_GAP:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
                    position = int(i)
                while position < i and cap.grab():
                    position += 1
                ok, image = cap.read()
                position += 1
                if ok:
                    yield image
        finally:
            cap.release()

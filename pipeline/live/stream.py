"""Frames from a camera, a network stream or a file played as one, for ``samtrack live``.

Why a reader thread with a one-frame slot: a live stream does not wait. The reader keeps only
the newest frame; when processing is slower than the stream, older frames are replaced before
they are processed and counted as dropped, so the output stays current instead of falling
further and further behind. A file played without ``realtime`` is read as fast as it is
consumed and drops nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from samtrack.pipeline.core.errors import InputError
from samtrack.pipeline.core.video import VideoFrame, VideoReader

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 4.0)  # waits before each reconnection try of a dropped stream


class StreamError(InputError):
    """A camera or stream that cannot be opened; the message names it."""


@dataclass
class TimedFrame:
    frame: VideoFrame
    arrived: float  # time.perf_counter() when the frame was read


def silence_opencv() -> None:
    """OpenCV prints its own warnings for a camera or stream it cannot open; the one line
    samtrack prints says it better."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def describe(spec: str) -> str:
    return f"camera {spec}" if spec.isdigit() else spec


class LiveStream:
    """``spec``: a camera index (``0``), a URL (``rtsp://``, ``http://``...) or a video file or
    frame folder. ``realtime``: play a file at its own frame rate (as a camera would)."""

    def __init__(self, spec: str, *, realtime: bool = False, fps: float | None = None,
                 max_pixels: int | None = None) -> None:
        self.spec = spec
        self.is_file = not spec.isdigit() and "://" not in spec
        self.realtime = realtime or not self.is_file
        self.dropped = 0
        self.read = 0
        self.reconnects = 0
        self.ended = False
        self.error: str | None = None
        self._slot: TimedFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        if self.is_file:
            self._video = VideoReader(spec, fps=fps, max_pixels=max_pixels)
            self.fps = self._video.fps
        else:
            self._capture = self._open()
            file_fps = self._capture.get(cv2.CAP_PROP_FPS)
            self.fps = fps or (file_fps if file_fps and 0 < file_fps < 240 else 25.0)
        self._thread = threading.Thread(target=self._run, name="samtrack-stream", daemon=True)

    def _open(self) -> cv2.VideoCapture:
        source: int | str = int(self.spec) if self.spec.isdigit() else self.spec
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise StreamError(f"{describe(self.spec)}: cannot open (unreachable, busy or not "
                              "a stream)")
        return capture

    def start(self) -> LiveStream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the reader thread to end (after :meth:`stop`).

        Why it matters: the reader is a daemon thread that spends its time inside OpenCV. If the
        interpreter exits while it is there, Python ends the thread from under OpenCV's C++
        frames when it next asks for the GIL, and the process aborts ("terminate called without
        an active exception") instead of exiting 0 with its run written.
        """
        self._thread.join(timeout)

    # ------------------------------------------------------------------ producer
    def _put(self, frame: VideoFrame) -> None:
        with self._cond:
            if self.realtime:
                if self._slot is not None:
                    self.dropped += 1  # replaced before anyone processed it
                self._slot = TimedFrame(frame, time.perf_counter())
                self._cond.notify_all()
            else:  # a file as fast as it is consumed: wait for the slot to free up
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(0.1)
                self._slot = TimedFrame(frame, time.perf_counter())
                self._cond.notify_all()
        self.read += 1

    def _run(self) -> None:
        try:
            if self.is_file:
                self._run_file()
            else:
                self._run_capture()
        except Exception as exc:  # reported by the session; the run ends cleanly
            self.error = f"{describe(self.spec)}: {exc}"
            log.error("stream stopped: %s", self.error)
        finally:
            if not self.is_file:
                self._capture.release()
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _run_file(self) -> None:
        start = time.perf_counter()
        for frame in self._video:
            if self._stop.is_set():
                return
            if self.realtime:  # play at the file's own rate
                due = start + frame.index / self.fps
                if self._stop.wait(max(0.0, due - time.perf_counter())):
                    return
            self._put(frame)

    def _run_capture(self) -> None:
        index = 0
        while not self._stop.is_set():
            ok, image = self._capture.read()
            if not ok:
                if not self._reconnect():
                    return
                continue
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            self._put(VideoFrame(index=index, name=f"{index:06d}", image=np.ascontiguousarray(
                image[..., :3])))
            index += 1

    def _reconnect(self) -> bool:
        """A stream that drops: retry with growing waits, then end the run cleanly."""
        self._capture.release()
        for wait in BACKOFF_S:
            log.warning("%s: no frame; reconnecting in %.1f s", describe(self.spec), wait)
            if self._stop.wait(wait):
                return False
            try:
                self._capture = self._open()
            except StreamError:
                continue
            self.reconnects += 1
            return True
        self.error = f"{describe(self.spec)}: stream lost (no frame after {len(BACKOFF_S)} " \
            "reconnection tries)"
        return False

    # ------------------------------------------------------------------ consumer
    def next(self, timeout: float = 1.0) -> TimedFrame | None:
        """The newest frame not yet taken; None when the stream ended (or ``timeout``)."""
        with self._cond:
            deadline = time.perf_counter() + timeout
            while self._slot is None and not self.ended and not self._stop.is_set():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item, self._slot = self._slot, None
            self._cond.notify_all()
            return item

    @property
    def finished(self) -> bool:
        with self._cond:
            return (self.ended or self._stop.is_set()) and self._slot is None

    @property
    def name(self) -> str:
        return Path(self.spec).stem if self.is_file else ("camera" + self.spec
                                                          if self.spec.isdigit() else "stream")

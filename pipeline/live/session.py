"""A live tracking session: stream -> mask source -> tracker -> run folder + the page.

One thread pulls frames from the :class:`LiveStream` through the configured mask source and the
online tracker, writes the run folder as it goes (flushed every second) and publishes each
result (an annotated JPEG, the objects, frames/s, latency) for the web page. The page steers it
through :class:`LiveSession`'s methods: select or drop objects, name identities, correct them,
pause.

**Keeping up.** When the segmenter is slower than the stream it runs on every k-th frame only,
k chosen from its measured time and the stream's frame interval; in between, each object's last
mask is moved by its Kalman velocity (the tracker's motion model) and tracked as usual. Frames
that arrive while one is processed are dropped, never queued: the output stays current.

**Corrections** (names, selections, "these two are swapped", "this is Sheep1") are constraints
kept by :class:`~pipeline.live.corrections.Corrections`; the session resolves each click to the
object under it at the clicked frame and re-draws the frame on screen.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from samtrack.pipeline.config import Config
from samtrack.pipeline.core.device import resolve_device
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.runformat import CORRECTIONS, read_summary, run_summary
from samtrack.pipeline.core.video import VideoFrame
from samtrack.pipeline.live.corrections import Corrections, RequestError
from samtrack.pipeline.live.stream import LiveStream
from samtrack.pipeline.outputs import RunInterrupted, RunWriter
from samtrack.pipeline.sources import MaskSource, SourceContext, build_source
from samtrack.pipeline.sources.sam2_sources import Prompt, Sam2VideoSource
from samtrack.pipeline.viz import draw_overlay, id_color
from samtrack.pipeline.writers.tracks import mot_rows
from samtrack.reid.base import Tracker
from samtrack.reid.resolvers import RESOLVERS

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0
HISTORY = 300  # frames whose objects a click may refer to
MAX_STRIDE = 100  # the segmenter runs at least every this many frames


@dataclass
class Published:
    """What the page shows for one processed frame."""

    frame: int
    jpeg: bytes
    objects: list[dict[str, Any]]
    stats: dict[str, Any]
    size: tuple[int, int] = (0, 0)  # the frame's (width, height): the JPEG may be smaller


@dataclass
class _Shown:
    """One processed frame's objects, kept so a click can be resolved at that frame."""

    objects: FrameObjects  # masks with *displayed* ids as track_ids
    track_ids: np.ndarray  # the tracker's ids of the same objects


class _SegmenterFeed:
    """The "video" the mask source reads: each frame the session decides to segment.

    Sources pull frames (SAM2 in windows, the background subtractor one by one); here a pull
    asks the session for its next segmenter frame, which handles the frames in between itself.
    """

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self.fps = session.stream.fps
        self.image_size = None

    def __iter__(self) -> Iterator[VideoFrame]:
        while True:
            frame = self.session._next_segmenter_frame()
            if frame is None:
                return
            yield frame

    def __len__(self) -> int:
        return 0  # unknown: a stream

    def sample(self, count: int) -> list[np.ndarray]:
        return []  # no look-ahead in a stream: background models learn as frames come


@dataclass
class _Timing:
    segment_s: float | None = None  # smoothed segmenter time per frame
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=100))
    processed: deque = field(default_factory=lambda: deque(maxlen=100))  # perf_counter times


class LiveSession:
    """Runs one stream; thread-safe methods for the web API."""

    def __init__(self, config: Config, stream: LiveStream, out_dir: Path, *,
                 source: MaskSource | None = None, paused: bool = False,
                 jpeg_quality: int = 80) -> None:
        self.config = config
        self.stream = stream
        device = resolve_device(config.device)
        self.source = source or build_source(config.source.name, config.source.options(),
                                             SourceContext(device=device))
        if isinstance(self.source, Sam2VideoSource):
            self.source = self.source.streaming()  # one frame per window
        # a stream has no end to wait for: an engine that decides at the end falls back to
        # the gallery rules
        # (decided before building: the tracker, embedder and all, is built once)
        tracker_options = config.tracker
        if RESOLVERS.get(tracker_options.identities).needs_whole_clip:
            log.warning("live: tracker.identities %s decides at the end of a clip; a stream "
                        "uses the gallery rules", tracker_options.identities)
            tracker_options = tracker_options.model_copy(update={"identities": "gallery"})
        elif tracker_options.learns and tracker_options.learned.background is None:
            # a stream does not wait for a training of tens of seconds: it goes on meanwhile
            learned = tracker_options.learned.model_copy(update={"background": True})
            tracker_options = tracker_options.model_copy(update={"learned": learned})
        self.tracker: Tracker = tracker_options.build(device=device, record=False)
        self.writer = RunWriter(out_dir, overwrite=config.output.overwrite, fps=stream.fps,
                                writers=config.output.writers,
                                annotators=tuple(config.viz.annotators))
        self.jpeg_quality = jpeg_quality
        self._lock = threading.RLock()
        self._resume = threading.Event()
        if not paused:
            self._resume.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="samtrack-live", daemon=True)
        self.said = Corrections()  # names, selection and identity corrections
        self.history: dict[int, _Shown] = {}
        self.latest: Published | None = None
        self.version = 0
        self.frames = 0
        self.segmented = 0
        self.stride = 1
        self.error: str | None = None
        self.done = threading.Event()
        self.mot_rows: list[str] = []  # MOTChallenge text per shown frame (downloads)
        self._timing = _Timing()
        self._counter = 0
        self._last: FrameObjects | None = None  # last processed objects, tracker ids
        self._last_image: np.ndarray | None = None
        self._arrival: dict[int, float] = {}
        self._next_flush = time.perf_counter() + FLUSH_EVERY_S
        self._next_source_id = 1000

    # ------------------------------------------------------------------ life cycle
    def start(self) -> LiveSession:
        self._started = time.perf_counter()
        self.stream.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._resume.set()
        self.stream.stop()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the session's thread and then the stream's reader to end."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        self._thread.join(timeout)
        self.stream.join(None if deadline is None else max(0.0, deadline - time.perf_counter()))

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def _run(self) -> None:
        reason = "the stream ended"
        try:
            with self.writer:
                self.writer.summary_base = self._summary()
                self.writer.write_config(self.config.to_dict())
                try:
                    for frame, objects in self.source.frames(_SegmenterFeed(self)):
                        self._segment_done(frame)
                        self._process(frame, objects)
                except Exception as exc:  # the source failed mid-stream: keep what was written
                    raise RunInterrupted(f"source error at frame {self.frames}: {exc}") from exc
                if self._stop.is_set():
                    reason = "stopped"
                if self.stream.error:
                    reason = self.stream.error
            # after the writers have closed: a replaced run is moved into place only whole
            self.writer.finish({**self._summary(), "end": reason})
        except RunInterrupted as exc:
            self.error = str(exc)
            log.error("live run ended early: %s", exc)
        except Exception as exc:  # anything else still ends the session, recorded
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("live run failed")
        finally:
            self.done.set()

    # ------------------------------------------------------------------ frames
    def _next_segmenter_frame(self) -> VideoFrame | None:
        """The next frame for the segmenter; frames in between are carried by motion here."""
        while not self._stop.is_set():
            self._resume.wait()
            if self._stop.is_set():
                return None
            item = self.stream.next(timeout=0.5)
            if item is None:
                if self.stream.finished:
                    return None
                continue
            frame = item.frame
            self._arrival[frame.index] = item.arrived
            self._counter += 1
            if self._last is not None and self._counter % self.stride != 0:
                self._process(frame, self._carry(frame))
                continue
            self._segment_start = time.perf_counter()
            return frame
        return None

    def _segment_done(self, frame: VideoFrame) -> None:
        spent = time.perf_counter() - getattr(self, "_segment_start", time.perf_counter())
        t = self._timing
        t.segment_s = spent if t.segment_s is None else 0.8 * t.segment_s + 0.2 * spent
        self.segmented += 1
        if self.stream.realtime:
            # the segmenter may take at most ~80% of the frames it spans; the rest is carried
            budget = 0.8 / max(self.stream.fps, 1e-6)
            self.stride = int(min(MAX_STRIDE, max(1, math.ceil(t.segment_s / budget))))

    def _carry(self, frame: VideoFrame) -> FrameObjects:
        """The last objects moved by their Kalman velocity to ``frame``."""
        last = self._last
        assert last is not None
        steps = frame.index - last.frame_index
        h, w = last.image_size
        crops, keep = [], np.zeros(len(last), bool)
        for i, (patch, (x, y)) in enumerate(last.crops):
            vx, vy = self._velocity(int(last.track_ids[i]))
            nx, ny = x + round(vx * steps), y + round(vy * steps)  # moved, then cut to the frame
            x1, y1 = max(nx, 0), max(ny, 0)
            x2, y2 = min(nx + patch.shape[1], w), min(ny + patch.shape[0], h)
            if x2 <= x1 or y2 <= y1:
                continue
            moved = patch[y1 - ny:y2 - ny, x1 - nx:x2 - nx]
            if moved.any():
                crops.append((moved, (x1, y1)))
                keep[i] = True
        return FrameObjects.from_crops(crops, (h, w), frame_index=frame.index,
                                       frame_name=frame.name, scores=last.scores[keep],
                                       source_ids=last.source_ids[keep])

    def _velocity(self, track_id: int) -> tuple[float, float]:
        return self.tracker.velocity(track_id) or (0.0, 0.0)

    def _process(self, frame: VideoFrame, objects: FrameObjects) -> None:
        tracked = self.tracker.update(objects, frame.image)
        with self._lock:
            shown, track_ids = self.said.display(tracked)
            self.history[frame.index] = _Shown(shown, track_ids)
            self.history.pop(frame.index - HISTORY, None)
        self._last = tracked
        self._last_image = frame.image
        self.writer.write_frame(frame.image, shown)
        self.mot_rows.append(mot_rows(shown))
        now = time.perf_counter()
        if now >= self._next_flush:
            self.writer.flush()
            self._next_flush = now + FLUSH_EVERY_S
        self.frames += 1
        self._publish(frame, shown, now)

    def _publish(self, frame: VideoFrame, shown: FrameObjects, now: float, *,
                 count: bool = True) -> None:
        t = self._timing
        arrived = self._arrival.pop(frame.index, now)
        if count:  # a re-drawn frame (after a correction) is not a processed one
            t.latency_ms.append(1000 * (now - arrived))
            t.processed.append(now)
        picture = draw_overlay(frame.image, shown, annotators=tuple(self.config.viz.annotators))
        objects = []
        for i, (cx, cy) in enumerate(shown.centroids):
            display = int(shown.track_ids[i])
            name = self.said.names.get(display)
            x1, y1, x2, y2 = (float(v) for v in shown.boxes[i])
            objects.append({"id": display, "name": name, "box": [x1, y1, x2, y2],
                            "centroid": [float(cx), float(cy)],
                            "source_id": int(shown.source_ids[i])})
            if name:
                _label(picture, name, (int(x1), max(14, int(y1) - 6)), id_color(display))
        ok, jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        with self._lock:
            self.latest = Published(frame.index, jpeg.tobytes() if ok else b"", objects, {},
                                    (frame.image.shape[1], frame.image.shape[0]))
            self.latest.stats = self.stats()  # after: its "frame" is this frame's
            self.version += 1

    # ------------------------------------------------------------------ reading
    def stats(self) -> dict[str, Any]:
        t = self._timing
        times = list(t.processed)
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and \
            times[-1] > times[0] else None
        latency = sorted(t.latency_ms)
        return {"frame": self.latest.frame if self.latest else None, "frames": self.frames,
                "segmented": self.segmented, "stride": self.stride,
                "fps": round(fps, 2) if fps else None,
                "latency_ms": round(latency[len(latency) // 2], 1) if latency else None,
                "latency_ms_p90": round(latency[int(0.9 * (len(latency) - 1))], 1)
                if latency else None,
                "segment_ms": round(1000 * t.segment_s, 1) if t.segment_s else None,
                "dropped": self.stream.dropped, "stream_fps": self.stream.fps,
                "paused": self.paused, "ended": self.done.is_set(), "error": self.error}

    def tracks(self) -> dict[str, Any]:
        with self._lock:
            latest = self.latest
            return {"frame": latest.frame if latest else None,
                    "objects": latest.objects if latest else [],
                    "names": self.said.names_by_id(),
                    "selected": sorted(self.said.selected), "removed": sorted(self.said.removed),
                    "corrections": list(self.said.log), "stats": self.stats()}

    def frame_message(self) -> tuple[dict[str, Any], bytes] | None:
        """The frame on screen: its description (JSON) and its JPEG, sent as two WebSocket
        messages (text, then binary) so neither side base64-codes 100+ KB per frame."""
        with self._lock:
            latest = self.latest
            if latest is None:
                return None
            return ({"frame": latest.frame, "objects": latest.objects, "stats": latest.stats,
                     "size": list(latest.size)}, latest.jpeg)

    def mot_text(self) -> str:
        with self._lock:
            return "".join(self.mot_rows)

    # ------------------------------------------------------------------ steering
    def _object_at(self, frame: int, x: float, y: float) -> tuple[int, int]:
        """``(displayed id, tracker id)`` of the object under ``(x, y)`` at ``frame``."""
        shown = self.history.get(frame)
        if shown is None:
            raise RequestError(f"frame {frame}: not among the last {HISTORY} processed frames")
        h, w = shown.objects.image_size
        xi, yi = round(x), round(y)
        if not (0 <= xi < w and 0 <= yi < h):
            raise RequestError(f"point ({x}, {y}) is outside the {w}x{h} frame", 422)
        hits = shown.objects.at(xi, yi)
        if not len(hits):
            raise RequestError(f"frame {frame}: no object at ({x:.0f}, {y:.0f})")
        i = int(hits[0])
        track = int(shown.track_ids[i])
        # the identity it shows *now*: a correction since that frame was drawn has changed it
        display = self.said.displayed(track)
        if display <= 0:
            raise RequestError(f"frame {frame}: the object at ({x:.0f}, {y:.0f}) has no "
                               "identity yet")
        return display, track

    def _log(self, entry: dict[str, Any]) -> None:
        """Record a steering action and show its effect on the frame on screen at once (a
        paused page must not wait for the next frame to see a name or a swap)."""
        self.said.record(entry, self.writer.dir, CORRECTIONS)
        if self.done.is_set() and self.writer.status == "complete":
            # steered after the stream ended: the finished run's summary says so too
            summary = read_summary(self.writer.dir)
            summary.update(names=self.said.names_by_id(), corrections=len(self.said.log))
            self.writer.write_summary(summary)
        if self._last is not None and self._last_image is not None:
            shown, _ = self.said.display(self._last)
            frame = VideoFrame(self._last.frame_index, "", self._last_image)
            self._arrival[frame.index] = time.perf_counter()
            self._publish(frame, shown, time.perf_counter(), count=False)

    def prompt(self, frame: int, x: float, y: float, name: str | None = None) -> dict[str, Any]:
        """Add an object: a point prompt for ``sam2-video``; with other sources, select the
        object under the point. Once anything is selected, only selected objects are shown."""
        with self._lock:
            if isinstance(self.source, Sam2VideoSource):
                prompt_id = self._next_source_id
                self._next_source_id += 1
                next_frame = (self._last.frame_index + 1) if self._last is not None else frame
                self.source.add_prompt(Prompt(id=prompt_id, frame=next_frame,
                                              points=[[x, y]], labels=[1]))
                self.said.select_prompt(prompt_id, name)
                self._log({"frame": frame, "kind": "prompt", "x": x, "y": y,
                           "sam2_object": prompt_id, "name": name})
                return {"sam2_object": prompt_id, "from_frame": next_frame}
            display, _ = self._object_at(frame, x, y)
            self.said.select(display)
            if name:
                self.said.name(display, name)
            self._log({"frame": frame, "kind": "select", "id": display, "name": name})
            return {"id": display, "name": self.said.names.get(display)}

    def remove(self, frame: int, x: float, y: float) -> dict[str, Any]:
        with self._lock:
            display, _ = self._object_at(frame, x, y)
            self.said.remove(display)
            self._log({"frame": frame, "kind": "remove", "id": display})
            return {"id": display}

    def name(self, display: int, name: str, frame: int | None = None) -> dict[str, Any]:
        with self._lock:
            known = set(self.said.remap.values()) | {int(t) for s in self.history.values()
                                                     for t in s.objects.track_ids}
            if display not in known:
                raise RequestError(f"identity {display} has not been seen")
            self.said.name(display, name)
            self._log({"frame": frame if frame is not None else self.stats()["frame"],
                       "kind": "name", "id": display, "name": name})
            return {"id": display, "name": name}

    def name_at(self, frame: int, x: float, y: float, name: str) -> dict[str, Any]:
        """Name the identity of the object under the point (no change to the selection)."""
        with self._lock:
            display, _ = self._object_at(frame, x, y)
            self.said.name(display, name)
            self._log({"frame": frame, "kind": "name", "id": display, "name": name})
            return {"id": display, "name": name}

    def swap(self, frame: int, a: tuple[float, float], b: tuple[float, float]) -> dict[str, Any]:
        """The two objects under ``a`` and ``b`` carry each other's identity: exchange them,
        from ``frame`` on."""
        with self._lock:
            first, second = self._object_at(frame, *a), self._object_at(frame, *b)
            self.said.swap(first, second)
            self._log({"frame": frame, "kind": "swap", "ids": [first[0], second[0]]})
            return {"swapped": [first[0], second[0]]}

    def assign(self, frame: int, x: float, y: float, name: str) -> dict[str, Any]:
        """"This is <name>": the object under the point takes the identity named ``name``; the
        object that had it (if any) takes the object's old identity (never two at once)."""
        with self._lock:
            display, track = self._object_at(frame, x, y)
            seen = {int(t) for s in self.history.values() for t in s.track_ids if t > 0}
            target = self.said.assign(display, track, name, seen)
            self._log({"frame": frame, "kind": "is", "id": target, "was": display,
                       "name": name})
            return {"id": target, "was": display}

    def _summary(self) -> dict[str, Any]:
        stats = self.stats()
        shown = {int(v) for v in self.said.remap.values()} | {
            int(t) for s in self.history.values() for t in s.objects.track_ids if t > 0}
        return run_summary(
            video=self.stream.spec, source=self.config.source.name,
            tracker=self.config.tracker.type, fps=self.stream.fps, frames=self.frames,
            track_ids=shown, live=True, segmented_frames=self.segmented,
            dropped_frames=self.stream.dropped, stride=self.stride,
            median_latency_ms=stats["latency_ms"],
            seconds=round(time.perf_counter() - getattr(self, "_started",
                                                        time.perf_counter()), 3),
            segment_ms=stats["segment_ms"], names=self.said.names_by_id(),
            corrections=len(self.said.log))


def _label(image: np.ndarray, text: str, org: tuple[int, int], color) -> None:
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 2, cv2.LINE_AA)

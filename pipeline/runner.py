"""Run a whole pipeline: video -> mask source -> tracker -> outputs (-> evaluation).

One function, :func:`run`, with one job: wire the stages together, time each of them and hand
every tracked frame to the writer. Online runs stream (memory does not grow with the clip);
offline runs (``tracker.identities: offline``) keep each frame's masks as RLE, re-link
identities at the end, then read the video a second time to write the outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from samtrack.eval.data import load_tracks
from samtrack.eval.report import evaluate_pairs
from samtrack.pipeline.config import Config
from samtrack.pipeline.core.device import resolve_device
from samtrack.pipeline.core.errors import ConfigError, UserError
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.runformat import LEARNED_REPRESENTATION, run_summary
from samtrack.pipeline.core.video import VideoError, VideoFrame, VideoReader
from samtrack.pipeline.health import RunHealth
from samtrack.pipeline.outputs import RunInterrupted, RunWriter, default_run_dir
from samtrack.pipeline.render import VizOptions, render
from samtrack.pipeline.sources import SourceContext, build_source, registered_sources
from samtrack.reid.base import Tracker, TrackResult

log = logging.getLogger(__name__)


class _TimedVideo:
    """Proxy of a VideoReader that measures the time spent decoding frames."""

    def __init__(self, video: VideoReader) -> None:
        self._video = video
        self.seconds = 0.0

    def __getattr__(self, name: str):
        return getattr(self._video, name)

    def __len__(self) -> int:
        return len(self._video)

    def __iter__(self) -> Iterator[VideoFrame]:
        it = iter(self._video)
        while True:
            start = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            yield frame


@dataclass
class RunResult:
    out_dir: Path
    frames: int
    objects: int
    track_ids: list[int]
    timing: dict[str, float]
    skipped_frames: list[str] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    repairs: list[dict] = field(default_factory=list)


def run(config: Config) -> RunResult:
    """Execute the run described by ``config`` and return what it produced."""
    if config.video.path is None:
        raise ConfigError("video.path: required (give --video PATH or set it in the config)")
    video = VideoReader(config.video.path, fps=config.video.fps,
                        on_bad_frame=config.video.on_bad_frame, max_frames=config.video.max_frames,
                        max_pixels=config.video.max_pixels)
    timed = _TimedVideo(video)
    # resolved by whatever needs it (a SAM2 source, a CNN embedder): resolving here would
    # import torch (~400 MB) for runs that never use it
    device = config.device
    context = SourceContext(device=device, num_objects=config.tracker.num_identities,
                            options={name: config.source.options(name)
                                     for name in registered_sources()})
    source = build_source(config.source.name, config.source.options(), context)
    tracker = config.tracker.build(device=device, record=False)
    # online runs write each frame as it comes; an identity engine that decides at the end
    # needs the whole clip (kept as RLE)
    offline = tracker.needs_whole_clip
    tracker.record = offline
    out_dir = Path(config.output.dir) if config.output.dir else default_run_dir(video.path)
    gt = None
    if config.eval.gt:
        gt = load_tracks(config.eval.gt)  # read up front: a bad file fails before hours of work
    with _terminate_as_interrupt():
        return _run(config, video, timed, source, tracker, offline, out_dir, gt, device)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a run like Ctrl-C: every output closed, ``status: interrupted``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise RunInterrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(config: Config, video: VideoReader, timed: _TimedVideo, source, tracker: Tracker,
         offline: bool, out_dir: Path, gt, device: str) -> RunResult:
    protected = [Path(config.video.path)] + [Path(p) for p in (
        config.config_file, getattr(config.source.options(), "path", None), config.eval.gt)
        if p]
    writer = RunWriter(out_dir, overwrite=config.output.overwrite, fps=video.fps,
                       writers=config.output.writers, protected=protected,
                       annotators=tuple(config.viz.annotators))
    timing = {"decode": 0.0, "source": 0.0, "track": 0.0, "write": 0.0}
    frames = objects_total = 0
    ids: set[int] = set()
    health = RunHealth()
    started = time.perf_counter()
    with writer:
        writer.write_config(config.to_dict())
        t_prepare = time.perf_counter()
        decided = source.prepare(video)
        timing["source"] += time.perf_counter() - t_prepare
        if decided:
            log.info(decided)
        stream = source.frames(timed)  # type: ignore[arg-type]
        bar = tqdm(total=len(video), unit="frame", disable=config.quiet, desc="samtrack",
                   leave=False)
        with bar:
            while True:
                t0 = time.perf_counter()
                decode_before = timed.seconds
                try:
                    frame, objects = next(stream)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                decode = timed.seconds - decode_before
                timing["decode"] += decode
                timing["source"] += (t1 - t0) - decode
                health.observe(objects)
                tracked = tracker.update(objects, frame.image)
                t2 = time.perf_counter()
                timing["track"] += t2 - t1
                if not offline:
                    writer.write_frame(frame.image, tracked)
                    timing["write"] += time.perf_counter() - t2
                    ids.update(int(i) for i in tracked.track_ids if i > 0)
                frames += 1
                objects_total += len(tracked)
                bar.update(1)
        if frames == 0:
            raise VideoError(f"{video.path}: no frame could be decoded")
        if offline:
            ids, finished = _write_offline(tracker, video, writer, timing,
                                           progress=not config.quiet)
        else:
            finished = tracker.finalize()  # nothing recorded: the repairs, summary, timing
        identities = finished.identities
        if finished.representation is not None:  # for tracker.embedder: learned
            finished.representation.save(writer.dir / LEARNED_REPRESENTATION)
            identities = {**identities, "representation_file": LEARNED_REPRESENTATION}
        draining = time.perf_counter()
    # leaving the block waits for the writer thread to finish the queue and close every file:
    # that wait is the part of writing that did not overlap tracking
    timing["write"] += time.perf_counter() - draining
    total = time.perf_counter() - started
    result = RunResult(out_dir=out_dir, frames=frames, objects=objects_total,
                       track_ids=sorted(ids), timing=timing, skipped_frames=list(video.skipped),
                       repairs=finished.repairs)
    summary = run_summary(
        video=str(video.path), source=config.source.name, tracker=config.tracker.type,
        fps=video.fps, frames=frames, track_ids=result.track_ids,
        # the device models ran on; "cpu" when no model ran (torch never imported)
        device=resolve_device(device) if "torch" in sys.modules else "cpu",
        image_size=list(video.image_size or []), skipped_frames=result.skipped_frames,
        objects=objects_total)
    summary |= {
        "timing_s": {k: round(v, 4) for k, v in timing.items()} | {"total": round(total, 4)},
        "ms_per_frame": {k: round(1000 * v / frames, 3) for k, v in timing.items()},
        # seconds the writer thread spent encoding and writing, mostly overlapping the above
        "writer_thread_s": round(writer.thread_seconds, 4),
        "repairs": result.repairs,
    }
    if identities:  # how many individuals, estimated or given, and how decided
        summary["identities"] = identities
    source_summary = source.summary()
    if source_summary:
        summary["source_details"] = source_summary
    individuals = config.tracker.num_identities or identities.get("num_identities") or \
        source_summary.get("count")
    chosen = source_summary.get("chosen", config.source.name)
    warnings = health.check(tracks=len(ids), individuals=individuals, source=chosen,
                            camera=source_summary.get("camera"))
    for warning in warnings:
        log.warning("health: %s", warning)
    summary["health"] = health.summary(warnings)
    if finished.timing:
        summary["tracker_ms_per_frame"] = {k: round(1000 * v / frames, 3)
                                           for k, v in finished.timing.items()}
    interrupted: RunInterrupted | None = None
    if gt is not None:
        try:
            pred = load_tracks(writer.dir / "masks") if "id_maps" in config.output.writers \
                else load_tracks(writer.dir / "tracks.txt")
            report = evaluate_pairs({gt.name: (gt, pred)}, iou_threshold=config.eval.iou,
                                    radius=config.eval.radius)
        except UserError as exc:
            # the tracks are fine; only scoring them against this ground truth failed
            log.warning("eval.gt: not scored: %s", exc)
            summary["metrics_error"] = str(exc)
        except RunInterrupted as exc:
            # every output is written: the run is complete, only its score is missing
            summary["metrics_error"] = "interrupted during the closing evaluation"
            interrupted = exc
        else:
            report.write(writer.dir / "eval")
            result.metrics = report.combined
            summary["metrics"] = result.metrics
    result.out_dir = writer.finish(summary)
    if interrupted is not None:
        raise interrupted
    if config.viz.render:
        render(result.out_dir, VizOptions(trail_length=config.viz.trail_length,
                                          annotators=tuple(config.viz.annotators),
                                          side_by_side=config.viz.side_by_side,
                                          scale=config.viz.scale, gt=config.eval.gt,
                                          progress=not config.quiet))
    return result


def _write_offline(tracker: Tracker, video: VideoReader, writer: RunWriter,
                   timing: dict[str, float], *, progress: bool,
                   ) -> tuple[set[int], TrackResult]:
    """Re-link identities over the whole clip (``finalize``), then read the video again and
    write every frame with the final ids."""
    t0 = time.perf_counter()
    finished = tracker.finalize(progress=progress)
    final = finished.by_frame()
    timing["track"] += time.perf_counter() - t0
    ids: set[int] = set()
    t1 = time.perf_counter()
    for frame in tqdm(video, total=len(video), unit="frame", desc="samtrack: writing",
                      leave=False, disable=not progress):
        obj = final.get(frame.index)
        if obj is None:
            continue
        writer.write_frame(frame.image, obj)
        ids.update(int(i) for i in obj.track_ids if i > 0)
    timing["write"] += time.perf_counter() - t1
    return ids, finished


def save_result(result: TrackResult, out_dir: str | Path, *, video: str | Path,
                fps: float | None = None, overwrite: bool = False,
                writers: list[str] | None = None) -> Path:
    """Write a library user's finished :class:`TrackResult` as a run folder, the one
    ``samtrack viz``, ``samtrack eval`` and ``samtrack export`` read.

    ``video``: the clip the masks came from (file or frame folder), read once for the drawn
    outputs and the frame names. A frame the result does not hold is written with no object,
    so every per-frame output stays aligned with the video.
    """
    reader = VideoReader(video, fps=fps)
    final = result.by_frame()
    ids: set[int] = set()
    frames = objects_total = 0
    with RunWriter(out_dir, overwrite=overwrite, fps=reader.fps, writers=writers,
                   protected=[reader.path]) as writer:
        for frame in reader:
            objects = final.get(frame.index)
            if objects is None:
                objects = FrameObjects.empty(frame.image.shape[:2], frame_index=frame.index)
            objects = dataclasses.replace(objects, frame_name=frame.name)
            writer.write_frame(frame.image, objects)
            ids.update(int(i) for i in objects.track_ids if i > 0)
            frames += 1
            objects_total += len(objects)
        summary = run_summary(video=str(reader.path), source="library", tracker="library",
                              fps=reader.fps, frames=frames, track_ids=ids,
                              image_size=list(reader.image_size or []),
                              objects=objects_total, repairs=list(result.repairs))
        if result.identities:
            summary["identities"] = result.identities
        return writer.finish(summary)

"""A run's output folder and everything written into it.

Layout of a run folder::

    masks/000000.png ...   16-bit PNG ID maps of track ids, one per processed frame
    tracks.txt             MOTChallenge: frame,id,x,y,w,h,score,-1,-1,-1 (1-based frames)
    tracks_mots.txt        MOTS: frame id class height width rle (1-based frames, class 1)
    source_mots.txt        MOTS of the source's own ids (every mask, tracked or not): the raw
                           input, for side-by-side views and for scoring the source alone
    config.yaml            the resolved config (every default spelled out)
    summary.json           frames, objects, ids, per-stage timing, status
    overlay.mp4            masks tinted by track id (viz.overlay_video)
    binary.mp4             largest object white on black (output.binary_video)

Safety rules, because a tracking run can take hours and its outputs feed evaluations:

* a run never writes into an existing run folder unless ``overwrite`` is set, and even then the
  new run is built in a staging folder that replaces the old one only when it has finished, so a
  failed re-run loses nothing;
* while a run is in progress its folder holds an ``INCOMPLETE`` file; a failed run keeps it and
  records ``"status": "failed"`` and the error in ``summary.json``;
* text outputs are streamed to hidden temp files and renamed into place at the end.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from samtrack.pipeline.core.errors import UserError
from samtrack.pipeline.core.formats import (
    MotsRow,
    format_mot_rows,
    format_mots_row,
    write_id_map,
    write_text_atomic,
)
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.viz import VideoSink, draw_overlay, largest_object_mask

INCOMPLETE_MARKER = "INCOMPLETE"


class OutputExistsError(UserError):
    """The run folder exists (or is a file) and may not be replaced."""


def default_run_dir(video_path: str | Path, root: str | Path = "runs") -> Path:
    """``runs/<video name>``, or ``-2``, ``-3``... when taken, so defaults never collide."""
    stem = Path(video_path).stem or "run"
    base = Path(root) / stem
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{stem}-{n}")
        n += 1
    return candidate


class RunWriter:
    """Streams one run's outputs into its folder; use as a context manager.

    On normal exit it finalises every file and removes the ``INCOMPLETE`` marker; on an exception
    it records the failure and leaves the marker (and, for overwrites, the previous run intact).
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        overwrite: bool = False,
        fps: float = 25.0,
        id_maps: bool = True,
        mots: bool = True,
        overlay_video: bool = True,
        binary_video: bool = False,
    ) -> None:
        self.final_dir = Path(out_dir)
        if self.final_dir.exists() and not overwrite and (
                self.final_dir.is_file() or any(self.final_dir.iterdir())):
            raise OutputExistsError(f"{self.final_dir}: run folder exists and is not empty "
                                        "(pass --overwrite to replace it)")
        if self.final_dir.exists() and self.final_dir.is_file():
            raise OutputExistsError(f"{self.final_dir}: exists and is a file, not a folder")
        self._staging = self.final_dir.exists() and any(self.final_dir.iterdir())
        self.dir = (self.final_dir.with_name(f".{self.final_dir.name}.partial")
                    if self._staging else self.final_dir)
        self.fps = fps
        self.opts = dict(id_maps=id_maps, mots=mots, overlay=overlay_video, binary=binary_video)
        self.frames_written = 0
        self._mot_fh = None
        self._mots_fh = None
        self._source_fh = None
        self._sinks: dict[str, VideoSink] = {}

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> RunWriter:
        if self._staging and self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / INCOMPLETE_MARKER).write_text(
            "This run did not finish; its outputs are partial. See summary.json.\n")
        if self.opts["id_maps"]:
            (self.dir / "masks").mkdir(exist_ok=True)
        self._mot_fh = (self.dir / ".tracks.txt.partial").open("w")
        if self.opts["mots"]:
            self._mots_fh = (self.dir / ".tracks_mots.txt.partial").open("w")
            self._source_fh = (self.dir / ".source_mots.txt.partial").open("w")
        if self.opts["overlay"]:
            self._sinks["overlay"] = VideoSink(self.dir / "overlay.mp4", self.fps)
        if self.opts["binary"]:
            self._sinks["binary"] = VideoSink(self.dir / "binary.mp4", self.fps)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for fh in (self._mot_fh, self._mots_fh, self._source_fh):
            if fh is not None:
                fh.close()
        if exc is not None:
            for sink in self._sinks.values():
                sink.abort()
            self.write_summary({"status": "failed", "error": str(exc),
                                "frames_written": self.frames_written})
            return
        for sink in self._sinks.values():
            sink.close()
        (self.dir / ".tracks.txt.partial").replace(self.dir / "tracks.txt")
        if self.opts["mots"]:
            (self.dir / ".tracks_mots.txt.partial").replace(self.dir / "tracks_mots.txt")
            (self.dir / ".source_mots.txt.partial").replace(self.dir / "source_mots.txt")

    def finish(self, summary: dict[str, Any]) -> Path:
        """Write the final summary, drop the marker, move a staged run into place."""
        self.write_summary({"status": "complete", **summary})
        (self.dir / INCOMPLETE_MARKER).unlink()
        if self._staging:
            old = self.final_dir.with_name(f".{self.final_dir.name}.old-{int(time.time())}")
            self.final_dir.rename(old)
            self.dir.rename(self.final_dir)
            shutil.rmtree(old)
            self.dir = self.final_dir
        return self.final_dir

    # ------------------------------------------------------------------ writing
    def write_config(self, config: dict[str, Any]) -> None:
        write_text_atomic(self.dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_text_atomic(self.dir / "summary.json", json.dumps(summary, indent=2) + "\n")

    def write_frame(self, image, objects: FrameObjects) -> None:
        """Append one tracked frame to every output."""
        frame_no = objects.frame_index + 1
        if self.opts["id_maps"]:
            write_id_map(self.dir / "masks" / f"{objects.frame_name}.png", objects.to_id_map())
        boxes = objects.boxes
        tracked = [i for i in range(len(objects)) if objects.track_ids[i] > 0]
        assert self._mot_fh is not None
        self._mot_fh.write(format_mot_rows(
            (frame_no, int(objects.track_ids[i]), float(boxes[i, 0]), float(boxes[i, 1]),
             float(boxes[i, 2] - boxes[i, 0]), float(boxes[i, 3] - boxes[i, 1]),
             float(objects.scores[i])) for i in tracked))
        if self._mots_fh is not None:
            rles = objects.rles
            h, w = objects.image_size
            for i in tracked:
                self._mots_fh.write(format_mots_row(
                    MotsRow(frame_no, int(objects.track_ids[i]), 1, h, w, rles[i])))
            if self._source_fh is not None:
                for i in range(len(objects)):
                    self._source_fh.write(format_mots_row(
                        MotsRow(frame_no, int(objects.source_ids[i]), 1, h, w, rles[i])))
        if "overlay" in self._sinks:
            self._sinks["overlay"].write(draw_overlay(image, objects))
        if "binary" in self._sinks:
            self._sinks["binary"].write(largest_object_mask(objects))
        self.frames_written += 1

"""A run's output folder and everything written into it.

Layout of a run folder::

    masks/000000.png ...   16-bit PNG ID maps of track ids, one per processed frame
    tracks.txt             MOTChallenge: frame,id,x,y,w,h,score,-1,-1,-1 (1-based frames)
    tracks_mots.txt        MOTS: frame id class height width rle (1-based frames, class 1)
    source_mots.txt        MOTS of the source's own ids (every mask, tracked or not): the raw
                           input, for side-by-side views and for scoring the source alone
    config.yaml            the resolved config (every default spelled out)
    summary.json           frames, objects, ids, per-stage timing, status
    overlay.mp4            masks tinted by track id
    binary.mp4             largest object white on black (off by default)

Which files are written is ``output.writers`` (:mod:`samtrack.pipeline.writers`).

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
from samtrack.pipeline.core.formats import write_text_atomic
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.writers import WRITERS, OutputWriter, default_writers

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

    def __init__(self, out_dir: str | Path, *, overwrite: bool = False, fps: float = 25.0,
                 writers: list[str] | None = None) -> None:
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
        self.writer_names = default_writers() if writers is None else list(writers)
        for name in self.writer_names:
            WRITERS.get(name)  # unknown names fail before anything is written
        self.frames_written = 0
        self._writers: list[OutputWriter] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> RunWriter:
        if self._staging and self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / INCOMPLETE_MARKER).write_text(
            "This run did not finish; its outputs are partial. See summary.json.\n")
        self._writers = [WRITERS.get(name).factory(self.dir, self.fps)
                         for name in self.writer_names]
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            for writer in self._writers:
                writer.abort()
            self.write_summary({"status": "failed", "error": str(exc),
                                "frames_written": self.frames_written})
            return
        for writer in self._writers:
            writer.close()

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
        for writer in self._writers:
            writer.write(image, objects)
        self.frames_written += 1

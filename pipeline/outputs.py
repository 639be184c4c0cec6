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

* a run writes only into a new or empty folder, or replaces a previous *run* with ``overwrite``
  (never a folder of other files, ``.``, ``..``, ``/``, the home folder or one holding an input:
  :mod:`samtrack.pipeline.runfolder`), and even then the new run is built in a staging folder
  that replaces the old one only when it has finished, so a failed re-run loses nothing;
* one run at a time per folder (an exclusive lock beside it);
* while a run is in progress its folder holds an ``INCOMPLETE`` file; a failed run keeps it and
  records ``"status": "failed"`` and the error in ``summary.json``; an interrupted one (Ctrl-C,
  SIGTERM) closes every file properly and records ``"status": "interrupted"``: a valid, partial
  run;
* text outputs are streamed to hidden temp files and renamed into place at the end;
* frames are written by a thread of their own behind a bounded queue, so encoding PNGs and
  videos overlaps tracking, and memory stays bounded.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from samtrack.pipeline.core.formats import write_text_atomic
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.runformat import CONFIG, INCOMPLETE_MARKER, INCOMPLETE_TEXT
from samtrack.pipeline.core.runformat import write_summary as write_run_summary
from samtrack.pipeline.runfolder import (
    OutputExistsError,
    OutputWriteError,
    RunLock,
    check_location,
    check_target,
)
from samtrack.pipeline.viz import DEFAULT_ANNOTATORS
from samtrack.pipeline.writers import WRITERS, OutputWriter, WriterSettings, default_writers

__all__ = ["INCOMPLETE_MARKER", "OutputExistsError", "OutputWriteError", "RunWriter",
           "default_run_dir"]

QUEUE_FRAMES = 8  # frames waiting for the writer thread at most (memory stays bounded)


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM (or Ctrl-C) during a run: outputs are closed and marked ``interrupted``."""


def default_run_dir(video_path: str | Path, root: str | Path = "runs") -> Path:
    """``runs/<video name>``, or ``-2``, ``-3``... when taken, so defaults never collide."""
    stem = Path(video_path).stem or "run"
    base = Path(root) / stem
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{stem}-{n}")
        n += 1
    return candidate


class _WriterThread:
    """Runs every output writer on a thread of its own, fed through a bounded queue.

    Why: PNG and video encoding took more time than tracking on a masks-source run; on a
    thread they overlap it (OpenCV and zlib release the GIL). The queue bounds memory; an error
    in the thread is raised in the caller at its next ``put`` or at ``join``.
    """

    def __init__(self, writers: list[OutputWriter]) -> None:
        self.writers = writers
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.error: BaseException | None = None
        self.busy = 0.0  # seconds the thread spent writing
        self.thread = threading.Thread(target=self._work, name="samtrack-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain: the caller learns of the error and stops
            start = time.perf_counter()
            try:
                image, objects = item
                for writer in self.writers:
                    if objects is None:  # a flush request
                        getattr(writer, "flush", lambda: None)()
                    else:
                        writer.write(image, objects)
            except BaseException as exc:
                self.error = exc
            self.busy += time.perf_counter() - start

    def put(self, image: np.ndarray, objects: FrameObjects) -> None:
        self._raise()
        self.queue.put((image, objects))

    def join(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error


class RunWriter:
    """Streams one run's outputs into its folder; use as a context manager.

    On normal exit it finalises every file and removes the ``INCOMPLETE`` marker; on an exception
    it records the failure and leaves the marker (and, for overwrites, the previous run intact);
    on an interruption it closes every file and records ``interrupted`` (a valid partial run).
    ``protected``: the run's inputs, which the run folder must not contain.
    """

    def __init__(self, out_dir: str | Path, *, overwrite: bool = False, fps: float = 25.0,
                 writers: list[str] | None = None, protected: list[Path] | None = None,
                 annotators: tuple[str, ...] = DEFAULT_ANNOTATORS) -> None:
        self.final_dir = Path(out_dir)
        self.writer_names = default_writers() if writers is None else list(writers)
        for name in self.writer_names:
            WRITERS.get(name)  # unknown names fail before anything is written
        check_location(self.final_dir, list(protected or []))
        self.lock = RunLock(self.final_dir)
        self.lock.acquire()  # before looking inside: another run may be creating it now
        try:
            mode = check_target(self.final_dir, overwrite=overwrite)
        except BaseException:
            self.lock.release(forget=True)  # refused: leave no lock file beside their folder
            raise
        self._staging = mode == "replace"
        self.dir = (self.final_dir.with_name(f".{self.final_dir.name}.partial")
                    if self._staging else self.final_dir)
        self.settings = WriterSettings(fps=fps, annotators=tuple(annotators))
        self.frames_written = 0
        self.status = "running"
        self.summary_base: dict[str, Any] = {}  # what an interrupted run's summary starts from
        self._writers: list[OutputWriter] = []
        self._thread: _WriterThread | None = None
        self._busy_done = 0.0  # the writer thread's busy seconds, once it has finished

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> RunWriter:
        try:
            self._remove_leftovers()
            if self._staging and self.dir.exists():
                shutil.rmtree(self.dir)  # a staging folder a killed run left behind
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / INCOMPLETE_MARKER).write_text(INCOMPLETE_TEXT)
            self.write_summary({"status": "running", "pid": os.getpid()})
            self._writers = [WRITERS.get(name).factory(self.dir, self.settings)
                             for name in self.writer_names]
        except OSError as exc:
            self.lock.release()
            raise self._write_error(exc) from None
        self._thread = _WriterThread(self._writers)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._exit(exc)
        finally:
            self.lock.release()

    def _exit(self, exc: BaseException | None) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                thread.join()  # everything queued is written (or its error raised) first
            except BaseException as error:
                if exc is None:
                    exc = error
            self._busy_done = thread.busy
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C or SIGTERM: close what was written
            try:
                for writer in self._writers:
                    writer.close()
                self.status = "interrupted"
                self.write_summary({**self.summary_base, "status": "interrupted",
                                    "reason": str(exc) or type(exc).__name__,
                                    "frames": self.frames_written,
                                    "frames_written": self.frames_written})
                (self.dir / INCOMPLETE_MARKER).unlink()
            except OSError:
                pass  # a full disk: the marker stays, and the folder says it is unfinished
            return
        if exc is not None:
            for writer in self._writers:
                writer.abort()
            self.status = "failed"
            with contextlib.suppress(OSError):  # the marker stays: the folder is unfinished
                self.write_summary({"status": "failed", "error": str(exc),
                                    "frames_written": self.frames_written})
            if isinstance(exc, OSError):
                raise self._write_error(exc) from None
            return
        try:
            for writer in self._writers:
                writer.close()
        except OSError as error:
            raise self._write_error(error) from None

    def _remove_leftovers(self) -> None:
        """What a run killed while replacing this folder left beside it: the staged new run
        (``.NAME.partial``) and the previous run moved aside (``.NAME.old-<time>``). Names only
        samtrack makes, next to a folder whose lock is held."""
        name = self.final_dir.name
        for stale in self.final_dir.parent.glob(f".{glob.escape(name)}.old-*"):
            if stale.is_dir() and stale.name[len(name) + 6:].isdigit():
                shutil.rmtree(stale)
        partial = self.final_dir.with_name(f".{name}.partial")
        if not self._staging and partial.is_dir():
            shutil.rmtree(partial)

    def _write_error(self, exc: OSError) -> OutputWriteError:
        kept = " (the previous run is untouched)" if self._staging else ""
        return OutputWriteError(f"{self.final_dir}: cannot write the run: "
                                f"{exc.strerror or exc}{kept}")

    def finish(self, summary: dict[str, Any]) -> Path:
        """Write the final summary, drop the marker, move a staged run into place."""
        try:
            self.write_summary({"status": "complete", **summary})
            (self.dir / INCOMPLETE_MARKER).unlink()
            if self._staging:
                old = self.final_dir.with_name(f".{self.final_dir.name}.old-{int(time.time())}")
                self.final_dir.rename(old)
                try:
                    self.dir.rename(self.final_dir)
                except OSError:
                    old.rename(self.final_dir)  # put the previous run back
                    raise
                shutil.rmtree(old)
                self.dir = self.final_dir
        except OSError as exc:
            raise self._write_error(exc) from None
        self.status = "complete"
        return self.final_dir

    # ------------------------------------------------------------------ writing
    def write_config(self, config: dict[str, Any]) -> None:
        try:
            write_text_atomic(self.dir / CONFIG, yaml.safe_dump(config, sort_keys=False))
        except OSError as exc:
            raise self._write_error(exc) from None

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_run_summary(self.dir, summary)

    def flush(self) -> None:
        """Ask every writer to push what it buffered to disk (live runs: at least every
        second, so a run folder read while the stream goes is current)."""
        assert self._thread is not None, "use RunWriter as a context manager"
        self._thread.put(None, None)

    def write_frame(self, image, objects: FrameObjects) -> None:
        """Queue one tracked frame for every output (written on the writer thread)."""
        assert self._thread is not None, "use RunWriter as a context manager"
        self._thread.put(image, objects)
        self.frames_written += 1

    @property
    def thread_seconds(self) -> float:
        """Seconds the writer thread has spent encoding and writing so far."""
        return self._thread.busy if self._thread is not None else self._busy_done

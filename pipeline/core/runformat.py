"""The run folder's format, in one place: its file names, its markers, its status.

A run folder holds ``summary.json`` (the run's status and numbers; ``"format": "samtrack-run"``
marks the folder as samtrack's), ``config.yaml`` (the resolved config), ``masks/`` (ID maps:
what ``eval``, ``viz`` and ``export`` read), and while it is being written, ``INCOMPLETE``
holding :data:`INCOMPLETE_TEXT`. Every module that writes, reads or checks a run folder names
these through this module; the safety rules for replacing one are in ``pipeline/runfolder.py``
and the writing in ``pipeline/outputs.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from samtrack.pipeline.core import __version__
from samtrack.pipeline.core.formats import write_text_atomic

SUMMARY = "summary.json"
CONFIG = "config.yaml"
MASKS = "masks"
# the representation learned from the clip, where it decided identities (tracker.embedder learned)
LEARNED_REPRESENTATION = "learned.pt"
CORRECTIONS = "corrections.jsonl"  # live runs: every steering action, one JSON per line
INCOMPLETE_MARKER = "INCOMPLETE"
#: what samtrack writes in the marker: a file named INCOMPLETE alone proves nothing
INCOMPLETE_TEXT = "This run did not finish; its outputs are partial. See summary.json.\n"
#: summary.json's "format" in every run folder samtrack writes
RUN_FORMAT = "samtrack-run"


def read_summary(folder: Path) -> dict[str, Any]:
    """The run's summary.json (``OSError``/``ValueError`` when missing or unreadable)."""
    summary = json.loads((Path(folder) / SUMMARY).read_text())
    if not isinstance(summary, dict):
        raise ValueError(f"{Path(folder) / SUMMARY}: not a JSON object")
    return summary


def write_summary(folder: Path, summary: dict[str, Any]) -> None:
    """Write summary.json atomically, marked as samtrack's own."""
    write_text_atomic(Path(folder) / SUMMARY,
                      json.dumps({"format": RUN_FORMAT, **summary}, indent=2) + "\n")


def has_summary(folder: Path) -> bool:
    return (Path(folder) / SUMMARY).is_file()


def run_status(folder: Path) -> tuple[str, str]:
    """``(state, why)`` of a run folder: ``complete``; ``partial`` (interrupted by Ctrl-C or
    SIGTERM: every file closed, valid up to where it stopped); ``unfinished`` (an
    ``INCOMPLETE`` marker: killed, crashed or still running; or ``status: failed``)."""
    if (Path(folder) / INCOMPLETE_MARKER).exists():
        return "unfinished", "INCOMPLETE marker: the run was killed, failed or is still running"
    try:
        status = read_summary(folder).get("status")
    except (OSError, ValueError):
        return "unfinished", f"{SUMMARY} unreadable"
    if status == "complete":
        return "complete", ""
    if status == "interrupted":
        return "partial", "interrupted: frames up to the interruption"
    return "unfinished", f"status {status!r}"


def is_run_folder(folder: Path) -> bool:
    """A samtrack run folder to read: ``masks/`` with ``summary.json`` or the ``INCOMPLETE``
    marker of a run that never finished."""
    folder = Path(folder)
    return (folder / MASKS).is_dir() and ((folder / SUMMARY).is_file() or
                                          (folder / INCOMPLETE_MARKER).is_file())


def is_samtrack_run(folder: Path) -> bool:
    """A folder samtrack wrote, and so one ``--overwrite`` may replace: its summary says
    ``"format": "samtrack-run"`` (or, from before that key, carries ``samtrack_version`` and
    ``status``), or it holds samtrack's own unfinished-run marker. A folder that merely has a
    summary.json with a ``status``, or a file named INCOMPLETE, is the user's."""
    marker = Path(folder) / INCOMPLETE_MARKER
    if marker.is_file():
        try:
            if marker.stat().st_size == len(INCOMPLETE_TEXT) and \
                    marker.read_text() == INCOMPLETE_TEXT:
                return True
        except (OSError, UnicodeDecodeError):
            pass
    try:
        summary = read_summary(folder)
    except (OSError, ValueError):
        return False
    return summary.get("format") == RUN_FORMAT or (
        "samtrack_version" in summary and "status" in summary)


def run_summary(*, video: str, source: str, tracker: str, fps: float | None, frames: int,
                track_ids: Iterable[int], **more: Any) -> dict[str, Any]:
    """The fields every run's summary.json starts with (``run``, ``live``, a library result
    saved as a run), then what that kind of run adds (``more``)."""
    ids = sorted({int(i) for i in track_ids})
    return {"samtrack_version": __version__, "video": video, "source": source,
            "tracker": tracker, "fps": fps, "frames": frames, "track_ids": ids,
            "num_tracks": len(ids), **more}

"""Text outputs: ``tracks.txt`` (MOTChallenge boxes), ``tracks_mots.txt`` and
``source_mots.txt`` (MOTS RLE of samtrack's ids and of the source's own ids)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import numpy as np

from samtrack.pipeline.core.formats import MotsRow, format_mot_rows, format_mots_row
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.writers.base import register_writer


class _StreamedText:
    """A text file streamed to ``.<name>.partial`` and renamed on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        self.fh: TextIO = self.partial.open("w")

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()
        self.partial.replace(self.path)

    def abort(self) -> None:
        self.fh.close()


def mot_rows(objects: FrameObjects) -> str:
    """``frame,id,x,y,w,h,score,-1,-1,-1`` per tracked object of one frame, 1-based frame."""
    boxes = objects.boxes
    tracked = np.flatnonzero(objects.track_ids > 0)
    return format_mot_rows(
        (objects.frame_index + 1, int(objects.track_ids[i]), float(boxes[i, 0]),
         float(boxes[i, 1]), float(boxes[i, 2] - boxes[i, 0]),
         float(boxes[i, 3] - boxes[i, 1]), float(objects.scores[i])) for i in tracked)


class MotWriter(_StreamedText):
    """``tracks.txt``: :func:`mot_rows` of every frame."""

    def write(self, image: np.ndarray, objects: FrameObjects) -> None:
        self.fh.write(mot_rows(objects))


class MotsWriter:
    """MOTS rows of samtrack's ids (tracked objects) and of the source's ids (every object)."""

    def __init__(self, folder: Path) -> None:
        self.tracks = _StreamedText(folder / "tracks_mots.txt")
        self.source = _StreamedText(folder / "source_mots.txt")

    def write(self, image: np.ndarray, objects: FrameObjects) -> None:
        frame_no = objects.frame_index + 1
        rles = objects.rles
        h, w = objects.image_size
        for i in np.flatnonzero(objects.track_ids > 0):
            self.tracks.fh.write(format_mots_row(
                MotsRow(frame_no, int(objects.track_ids[i]), 1, h, w, rles[i])))
        for i in range(len(objects)):
            self.source.fh.write(format_mots_row(
                MotsRow(frame_no, int(objects.source_ids[i]), 1, h, w, rles[i])))

    def flush(self) -> None:
        self.tracks.flush()
        self.source.flush()

    def close(self) -> None:
        self.tracks.close()
        self.source.close()

    def abort(self) -> None:
        self.tracks.abort()
        self.source.abort()


register_writer("mot", lambda folder, settings: MotWriter(folder / "tracks.txt"),
                "tracks.txt: MOTChallenge boxes, frame,id,x,y,w,h,score,-1,-1,-1")
register_writer("mots", lambda folder, settings: MotsWriter(folder),
                "tracks_mots.txt and source_mots.txt: MOTS RLE of samtrack's and the source's ids")

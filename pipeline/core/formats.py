"""Reading and writing the mask and track formats samtrack speaks.

* PNG instance-ID maps: one single-channel 8- or 16-bit PNG per frame, 0 = background,
  pixel value = object id.
* MOTChallenge txt: ``frame,id,x,y,w,h,score,-1,-1,-1`` with 1-based frames and pixel boxes
  (top-left corner + size). Ground truth files may carry ``class,visibility`` in columns 8-9.
* MOTS txt: ``frame id class_id height width rle`` (space separated, COCO compressed RLE), frames
  1-based as in MOTSChallenge. samtrack writes ``class_id`` 1 and the track id unchanged; when
  reading, class 10 marks ignore regions and is dropped.

Every writer is atomic (temp file + rename) so an interrupted run never leaves a half-written
file that looks complete. Every reader error names the file, and the line for text files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from samtrack.pipeline.core.errors import UserError


class FormatError(UserError):
    """A malformed input file; the message starts with ``path:line:``."""


# --------------------------------------------------------------------------- atomic writing
@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# --------------------------------------------------------------------------- PNG ID maps
def write_id_map(path: str | Path, id_map: np.ndarray) -> None:
    """Write a ``(H, W)`` uint8/uint16 ID map as a lossless PNG, atomically."""
    if id_map.ndim != 2 or id_map.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: id map must be (H, W) uint8/uint16, got "
                         f"{id_map.shape} {id_map.dtype}")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), id_map):
            raise OSError(f"{path}: could not write PNG")


def read_id_map(path: str | Path) -> np.ndarray:
    """Read a single-channel 8/16-bit PNG ID map as ``(H, W)`` integer array."""
    path = Path(path)
    id_map = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if id_map is None:
        raise FormatError(f"{path}: cannot read as an image")
    if id_map.ndim == 3:
        # Some tools save grey maps as 3 identical channels; anything else is a colour image,
        # whose pixel values are not ids.
        if id_map.shape[2] >= 3 and np.array_equal(id_map[..., 0], id_map[..., 1]) and \
                np.array_equal(id_map[..., 0], id_map[..., 2]):
            id_map = id_map[..., 0]
        else:
            raise FormatError(f"{path}: expected a single-channel ID map, got a colour image")
    if id_map.dtype not in (np.uint8, np.uint16):
        raise FormatError(f"{path}: expected 8- or 16-bit integers, got {id_map.dtype}")
    return id_map


def id_map_files(folder: str | Path) -> dict[str, Path]:
    """``{frame name: png path}`` for the PNG ID maps in a folder."""
    folder = Path(folder)
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() == ".png"}


# --------------------------------------------------------------------------- MOTChallenge txt
@dataclass
class TrackRows:
    """Rows of a MOTChallenge-style file, as parallel arrays (frames 1-based)."""

    frame: np.ndarray  # (M,) int
    id: np.ndarray  # (M,) int
    box_xywh: np.ndarray  # (M, 4) float
    score: np.ndarray  # (M,) float (conf / "consider" flag in ground truth)
    cls: np.ndarray  # (M,) float: column 8 as written (MOT16+ class, MOT15 world x); nan if none
    visibility: np.ndarray  # (M,) float, -1 when absent

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def at_frame(self, frame: int) -> TrackRows:
        keep = self.frame == frame
        return TrackRows(self.frame[keep], self.id[keep], self.box_xywh[keep], self.score[keep],
                         self.cls[keep], self.visibility[keep])


def read_mot_txt(path: str | Path) -> TrackRows:
    """Parse a MOTChallenge txt (comma or whitespace separated, >= 6 columns)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    frames, ids, boxes, scores, classes, vis = [], [], [], [], [], []
    with path.open() as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.replace(",", " ").split()
            if len(parts) < 6:
                raise FormatError(f"{path}:{lineno}: expected at least 6 columns "
                                  f"(frame,id,x,y,w,h), got {len(parts)}")
            try:
                values = [float(p) for p in parts]
            except ValueError as exc:
                raise FormatError(f"{path}:{lineno}: not a number ({exc})") from None
            if values[0] < 1 or values[0] != int(values[0]):
                raise FormatError(f"{path}:{lineno}: frame must be an integer >= 1, "
                                  f"got {parts[0]}")
            if values[4] < 0 or values[5] < 0:
                raise FormatError(f"{path}:{lineno}: negative box size")
            frames.append(int(values[0]))
            ids.append(int(values[1]))
            boxes.append(values[2:6])
            scores.append(values[6] if len(values) > 6 else 1.0)
            # MOT16+ ground truth: col 8 = class, col 9 = visibility; MOT15 has -1 / world coords.
            classes.append(values[7] if len(values) > 7 else np.nan)
            vis.append(values[8] if len(values) > 8 else -1.0)
    return TrackRows(
        frame=np.asarray(frames, dtype=np.int64),
        id=np.asarray(ids, dtype=np.int64),
        box_xywh=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        score=np.asarray(scores, dtype=np.float64),
        cls=np.asarray(classes, dtype=np.float64),
        visibility=np.asarray(vis, dtype=np.float64),
    )


def format_mot_rows(rows: Iterable[tuple[int, int, float, float, float, float, float]]) -> str:
    """``(frame, id, x, y, w, h, score)`` tuples -> MOTChallenge text."""
    return "".join(
        f"{f},{i},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1\n"
        for f, i, x, y, w, h, s in rows
    )


# --------------------------------------------------------------------------- MOTS txt
@dataclass
class MotsRow:
    frame: int  # 1-based
    id: int
    cls: int
    height: int
    width: int
    rle: dict  # COCO RLE with bytes counts


def format_mots_row(row: MotsRow) -> str:
    counts = row.rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return f"{row.frame} {row.id} {row.cls} {row.height} {row.width} {counts}\n"


def read_mots_txt(path: str | Path, *, drop_ignore: bool = True) -> list[MotsRow]:
    """Parse a MOTS txt file; class 10 (ignore regions) is dropped unless asked otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    rows: list[MotsRow] = []
    with path.open() as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(" ")
            if len(parts) != 6:
                raise FormatError(f"{path}:{lineno}: expected 6 fields "
                                  f"(frame id class height width rle), got {len(parts)}")
            try:
                frame, oid, cls, h, w = (int(p) for p in parts[:5])
            except ValueError:
                raise FormatError(f"{path}:{lineno}: first five fields must be integers") from None
            if h <= 0 or w <= 0:
                raise FormatError(f"{path}:{lineno}: bad image size {w}x{h}")
            if drop_ignore and cls == 10:
                continue
            rows.append(MotsRow(frame, oid, cls, h, w,
                                {"size": [h, w], "counts": parts[5].encode("ascii")}))
    return rows

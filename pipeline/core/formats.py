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


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
#: Track ids must fit a signed 64-bit integer (and PNG ID maps 16 bits).
MAX_ID = 2**63 - 1


# --------------------------------------------------------------------------- atomic writing
@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    # mkstemp creates 0600; outputs get the permissions any other new file would (umask)
    os.fchmod(fd, 0o666 & ~_UMASK)
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
# zlib level 1 and no per-row filter: ID maps are flat regions, which deflate alone packs as well
# as filtered rows (12-13 KB a 1280x720 map either way), while choosing filters costs 3/4 of
# the write (OpenCV >= 4.10 offers the choice; older builds keep their default filtering)
PNG_ID_MAP_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1] + (
    [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE] if hasattr(cv2, "IMWRITE_PNG_FILTER")
    else [])


def write_id_map(path: str | Path, id_map: np.ndarray) -> None:
    """Write a ``(H, W)`` uint8/uint16 ID map as a lossless PNG, atomically."""
    if id_map.ndim != 2 or id_map.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: id map must be (H, W) uint8/uint16, got "
                         f"{id_map.shape} {id_map.dtype}")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), id_map, PNG_ID_MAP_PARAMS):
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
    # hidden names are temp files of an atomic write that never finished
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() == ".png" and
            not p.name.startswith(".")}


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


_MOT_COLUMNS = ("frame", "id", "x", "y", "width", "height")


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
            bad = next((k for k in range(6) if not np.isfinite(values[k])), None)
            if bad is not None:
                raise FormatError(f"{path}:{lineno}: column {bad + 1} ({_MOT_COLUMNS[bad]}) "
                                  f"is {parts[bad]}, not a finite number")
            if values[0] < 1 or values[0] != int(values[0]):
                raise FormatError(f"{path}:{lineno}: frame must be an integer >= 1, "
                                  f"got {parts[0]}")
            if values[1] != int(values[1]) or not -1 <= values[1] <= MAX_ID:
                raise FormatError(f"{path}:{lineno}: id must be an integer from -1 to 2^63-1, "
                                  f"got {parts[1]}")
            if values[4] < 0 or values[5] < 0:
                raise FormatError(f"{path}:{lineno}: negative box size")
            frames.append(int(values[0]))
            ids.append(int(parts[1]) if parts[1].lstrip("-").isdigit() else int(values[1]))
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


def rle_problem(counts: str, pixels: int) -> str | None:
    """Why a COCO compressed RLE string is not a mask of ``pixels`` pixels (None: it is).

    Decodes the run lengths (COCO's 6-bit variable-length code, as pycocotools' ``rleFrString``)
    and checks they are non-negative and cover the image exactly: a truncated string, ``0`` or
    garbage would otherwise be read as some other mask without complaint.
    """
    total, previous2, previous1, k, m = 0, 0, 0, 0, 0
    p, n = 0, len(counts)
    while p < n:
        x, shift, more = 0, 0, True
        while more:
            if p >= n:
                return "truncated (a run length is cut off)"
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return f"character {counts[p]!r} is not RLE"
            x |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            p += 1
            shift += 1
            if not more and c & 0x10:
                x |= -1 << (5 * shift)
        if m > 2:
            x += previous2
        if x < 0:
            return "negative run length"
        total += x
        previous2, previous1 = previous1, x
        m += 1
        k += 1
    if total != pixels:
        return f"its runs cover {total} pixels, the image has {pixels}"
    return None


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
            if frame < 1:
                raise FormatError(f"{path}:{lineno}: frame must be >= 1, got {frame}")
            if not -1 <= oid <= MAX_ID:  # -1: an object without an id (a source's raw masks)
                raise FormatError(f"{path}:{lineno}: id must be from -1 to 2^63-1, got {oid}")
            if h <= 0 or w <= 0:
                raise FormatError(f"{path}:{lineno}: bad image size {w}x{h}")
            problem = rle_problem(parts[5], h * w)
            if problem:
                raise FormatError(f"{path}:{lineno}: bad RLE mask: {problem}")
            if drop_ignore and cls == 10:
                continue
            rows.append(MotsRow(frame, oid, cls, h, w,
                                {"size": [h, w], "counts": parts[5].encode("ascii")}))
    return rows

"""Tracks of one sequence, loaded from any supported format, ready for metrics.

Ground truth and predictions are both read into :class:`SequenceTracks`: per 1-based frame the
object ids plus either masks (COCO RLE) or boxes. Keeping masks as RLE lets pycocotools compute
mask IoU on the runs directly, so long clips never need dense masks in memory.

MOTChallenge ground truth also keeps what the official preprocessing needs: the "consider" flag
(column 7, read as an integer exactly as TrackEval does, so ``0.5`` counts as zero) and the class
(column 8).

Sequence folders: :func:`discover_sequences` finds ``<root>/<seq>/gt/{gt.txt,masks/}`` (the
MOTChallenge layout, also what :mod:`eval.scenes` writes) and :func:`find_prediction` the
matching ``<pred>/<seq>.txt``, ``<pred>/<seq>/`` run folder or PNG folder.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from samtrack.eval.points import is_point_file, read_points
from samtrack.pipeline.core.formats import FormatError, read_id_map, read_mot_txt, read_mots_txt
from samtrack.pipeline.core.frames import FrameObjects, id_pixels, rle_from_pixels
from samtrack.pipeline.core.geometry import xywh_to_xyxy
from samtrack.pipeline.core.runformat import MASKS, is_run_folder


@dataclass
class FrameTracks:
    ids: np.ndarray  # (N,) int
    boxes: np.ndarray  # (N, 4) xyxy
    rles: list[dict] | None = None  # masks, when the format has them
    classes: np.ndarray | None = None  # MOTChallenge class column (ground truth)
    zero_marked: np.ndarray | None = None  # int(conf column): 0 = do not consider
    points: np.ndarray | None = None  # (N, 2) x, y: point ground truth (eval.points)


def _empty_frame(has_masks: bool, has_points: bool = False) -> FrameTracks:
    return FrameTracks(np.zeros(0, np.int64), np.zeros((0, 4)), [] if has_masks else None,
                       points=np.zeros((0, 2)) if has_points else None)


@dataclass
class SequenceTracks:
    name: str
    has_masks: bool
    frames: dict[int, FrameTracks] = field(default_factory=dict)  # key: 1-based frame
    source: str = ""  # the path it was read from
    kind: str = ""  # png | mots | mot
    length: int | None = None  # declared length (seqinfo.ini), if known
    names: dict[int, str] | None = None  # PNG ID maps: frame -> file stem (matched by name)
    has_points: bool = False  # one point per object (animal-tracking ground truth)

    @property
    def num_frames(self) -> int:
        last = max(self.frames, default=0)
        return max(last, self.length or 0)

    def get(self, frame: int) -> FrameTracks:
        return self.frames.get(frame) or _empty_frame(self.has_masks, self.has_points)

    @property
    def num_objects(self) -> int:
        return sum(len(f.ids) for f in self.frames.values())


def frame_tracks(objects: FrameObjects, ids: str = "track") -> FrameTracks:
    """The objects with a positive ``track_ids`` (or ``source_ids``) value, as masks."""
    values = objects.track_ids if ids == "track" else objects.source_ids
    keep = values > 0
    return FrameTracks(values[keep].copy(), objects.boxes[keep].astype(np.float64),
                       [r for r, k in zip(objects.rles, keep, strict=True) if k])


def sequence_from_frames(frames: Iterable[FrameObjects], name: str = "tracks",
                         ids: str = "track") -> SequenceTracks:
    """In-memory tracker output (or the source's ids, ``ids="source"``) as a sequence: the
    same data ``load_tracks`` reads back from a run's PNG ID maps, without the files."""
    seq = SequenceTracks(name, has_masks=True, source=f"<{name}>", kind="frames")
    for obj in frames:
        seq.frames[obj.frame_index + 1] = frame_tracks(obj, ids)
    return seq


def id_map_tracks(id_map: np.ndarray) -> FrameTracks:
    """The objects of an ID map as ids, boxes and COCO RLEs, in time linear in the pixels and
    the ids (:func:`id_pixels`)."""
    h, w = id_map.shape
    ids, pixels = id_pixels(id_map, order="F")  # column-major: COCO's RLE order
    if not len(ids):
        return _empty_frame(True)
    boxes = np.zeros((len(ids), 4))
    rles = []
    for k, idx in enumerate(pixels):
        cols, rows = np.divmod(idx, h)
        boxes[k] = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        rles.append(rle_from_pixels(idx, (h, w)))
    return FrameTracks(ids.astype(np.int64), boxes, rles)


def _check_unique(seq: SequenceTracks) -> None:
    for frame, tracks in seq.frames.items():
        ids, counts = np.unique(tracks.ids, return_counts=True)
        if (counts > 1).any():
            raise FormatError(f"{seq.source}: frame {frame}: id {int(ids[counts > 1][0])} "
                              "appears more than once")


_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def png_frame_numbers(files: list[Path]) -> list[int]:
    """The 1-based frame each ID map belongs to, from the number in its name.

    Maps are named like the frames they belong to: a folder whose numbers start at 0
    (``000000.png``, a video's zero-based index, samtrack's scenes) is zero-based, otherwise
    numbers are taken as 1-based frames (MOTChallenge's ``000001.png``). Names without a number
    are numbered in natural order; two sequences of PNG maps are always matched by file name.
    """
    found = [_LAST_NUMBER.search(f.stem) for f in files]
    if not all(found):
        return list(range(1, len(files) + 1))
    numbers = [int(m.group(1)) for m in found if m]
    if len(set(numbers)) != len(numbers):
        first = next(n for n in numbers if numbers.count(n) > 1)
        raise FormatError(f"{files[0].parent}: two ID maps carry frame number {first} "
                          "in their names")
    shift = 1 if min(numbers) == 0 else 0
    return [n + shift for n in numbers]


def _from_png_folder(folder: Path, name: str) -> SequenceTracks:
    # hidden names are temp files of an atomic write a killed run left behind
    from natsort import natsorted  # on first use: `import samtrack` stays light

    files = natsorted((p for p in folder.iterdir() if p.suffix.lower() == ".png" and
                       not p.name.startswith(".")), key=lambda p: p.name)
    if not files:
        raise FormatError(f"{folder}: folder holds no PNG ID maps")
    seq = SequenceTracks(name, has_masks=True, source=str(folder), kind="png", names={})
    size = None
    for i, file in zip(png_frame_numbers(files), files, strict=True):
        seq.names[i] = file.stem  # type: ignore[index]
        id_map = read_id_map(file)
        if size is not None and id_map.shape != size:
            raise FormatError(f"{file}: size {id_map.shape[1]}x{id_map.shape[0]} differs from "
                              f"the first map's {size[1]}x{size[0]}")
        size = id_map.shape
        seq.frames[i] = id_map_tracks(id_map)
    return seq


def _from_mots(path: Path, name: str) -> SequenceTracks:
    seq = SequenceTracks(name, has_masks=True, source=str(path), kind="mots")
    by_frame: dict[int, list] = {}
    for row in read_mots_txt(path):
        by_frame.setdefault(row.frame, []).append(row)
    for frame, rows in by_frame.items():
        rles = [r.rle for r in rows]
        boxes = xywh_to_xyxy(np.asarray(coco_mask.toBbox(rles)).reshape(-1, 4))
        seq.frames[frame] = FrameTracks(np.array([r.id for r in rows], np.int64), boxes, rles)
    _check_unique(seq)
    return seq


def _from_points(path: Path, name: str) -> SequenceTracks:
    seq = SequenceTracks(name, has_masks=False, source=str(path), kind="points",
                         has_points=True)
    for frame, animals in read_points(path).items():
        ids = np.array(sorted(animals), np.int64)
        points = np.array([animals[i] for i in ids], np.float64).reshape(-1, 2)
        boxes = np.column_stack([points, points])  # a point is a box of no size
        seq.frames[frame] = FrameTracks(ids, boxes, points=points)
    return seq


def _from_mot(path: Path, name: str) -> SequenceTracks:
    rows = read_mot_txt(path)
    seq = SequenceTracks(name, has_masks=False, source=str(path), kind="mot")
    ncols = _column_count(path)
    for frame in np.unique(rows.frame):
        sub = rows.at_frame(int(frame))
        seq.frames[int(frame)] = FrameTracks(
            sub.id.copy(), xywh_to_xyxy(sub.box_xywh), classes=sub.cls if ncols >= 8 else None,
            zero_marked=sub.score.astype(int) if ncols >= 7 else None)
    _check_unique(seq)
    seq.length = _seqinfo_length(path)
    return seq


def _column_count(path: Path) -> int:
    with path.open() as fh:
        for line in fh:
            if line.strip():
                return len(line.replace(",", " ").split())
    return 0


def _seqinfo_length(path: Path) -> int | None:
    """seqLength from the seqinfo.ini of a MOTChallenge sequence holding this gt file."""
    for folder in (path.parent, path.parent.parent):
        ini = folder / "seqinfo.ini"
        if ini.is_file():
            parser = configparser.ConfigParser()
            parser.read(ini)
            try:
                return int(parser["Sequence"]["seqLength"])
            except (KeyError, ValueError):
                return None
    return None


def load_tracks(path: str | Path, name: str | None = None) -> SequenceTracks:
    """Load a PNG ID-map folder, a MOTS txt, a MOTChallenge txt, point ground truth
    (:mod:`eval.points`: SLEAP .slp, CSV, idtracker.ai .npy, frame,id,x,y txt) or a samtrack
    run folder."""
    path = Path(path)
    name = name or path.stem
    if not path.exists():
        raise FormatError(f"{path}: no such file or folder")
    if path.is_dir():
        if is_run_folder(path):
            return _from_png_folder(path / MASKS, name)
        if (path / "gt").is_dir():
            return load_tracks(ground_truth_path(path), name)  # a sequence folder
        return _from_png_folder(path, name)
    if not path.is_file():  # a device or FIFO would be read forever
        raise FormatError(f"{path}: not a regular file or folder")
    if is_point_file(path):
        return _from_points(path, name)
    try:
        with path.open(encoding="utf-8") as fh:
            first = next((ln.strip() for ln in fh if ln.strip()), "")
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a text file of tracks (MOT, MOTS or points)") from None
    if not first:  # "found nothing" is a legitimate result: every object is missed
        return SequenceTracks(name, has_masks=False, source=str(path), kind="empty")
    if len(first.split(" ")) == 6 and "," not in first:
        return _from_mots(path, name)
    return _from_mot(path, name)


def ground_truth_path(seq_dir: Path) -> Path:
    """The ground truth inside a sequence folder: gt/masks/ (masks) before gt/gt.txt (boxes)."""
    for candidate in (seq_dir / "gt" / "masks", seq_dir / "gt" / "gt_mots.txt",
                      seq_dir / "gt" / "gt.txt"):
        if candidate.exists():
            return candidate
    raise FormatError(f"{seq_dir}: no gt/masks/, gt/gt_mots.txt or gt/gt.txt")


def discover_sequences(root: str | Path) -> dict[str, Path] | None:
    """``{name: sequence folder}`` when ``root`` holds ``<seq>/gt/`` folders, else None."""
    root = Path(root)
    if not root.is_dir() or (root / "gt").is_dir():
        return None
    from natsort import natsorted

    seqs = {p.name: p for p in natsorted(root.iterdir(), key=lambda p: p.name)
            if p.is_dir() and (p / "gt").is_dir()}
    return seqs or None


def find_prediction(pred_root: Path, name: str) -> Path:
    """The prediction for sequence ``name`` under a predictions folder."""
    for candidate in (pred_root / f"{name}.txt", pred_root / name / MASKS, pred_root / name):
        if candidate.exists():
            return candidate.parent if candidate.name == MASKS else candidate
    raise FormatError(f"{pred_root}: no prediction for sequence '{name}' "
                      f"(expected {name}.txt or {name}/)")

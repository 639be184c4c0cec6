"""Tracks of one sequence, loaded from any supported format, ready for metrics.

Ground truth and predictions are both read into :class:`SequenceTracks`: per 1-based frame the
object ids plus either masks (COCO RLE) or boxes. Keeping masks as RLE lets pycocotools compute
mask IoU on the runs directly, so long clips never need dense masks in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from natsort import natsorted

from pipeline.formats import FormatError, read_id_map, read_mot_txt, read_mots_txt
from pipeline.frames import FrameObjects
from pipeline.geometry import xywh_to_xyxy


@dataclass
class FrameTracks:
    ids: np.ndarray  # (N,) int
    boxes: np.ndarray  # (N, 4) xyxy
    rles: list[dict] | None = None  # masks, when the format has them


@dataclass
class SequenceTracks:
    name: str
    has_masks: bool
    frames: dict[int, FrameTracks] = field(default_factory=dict)  # key: 1-based frame

    @property
    def num_frames(self) -> int:
        return max(self.frames, default=0)

    def get(self, frame: int) -> FrameTracks:
        empty = FrameTracks(np.zeros(0, np.int64), np.zeros((0, 4)), [] if self.has_masks else None)
        return self.frames.get(frame, empty)


def _from_png_folder(folder: Path, name: str) -> SequenceTracks:
    files = natsorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"),
                      key=lambda p: p.name)
    if not files:
        raise FormatError(f"{folder}: folder holds no PNG ID maps")
    seq = SequenceTracks(name, has_masks=True)
    size = None
    for i, file in enumerate(files, start=1):
        id_map = read_id_map(file)
        if size is not None and id_map.shape != size:
            raise FormatError(f"{file}: size {id_map.shape[1]}x{id_map.shape[0]} differs from "
                              f"the first map's {size[1]}x{size[0]}")
        size = id_map.shape
        objects = FrameObjects.from_id_map(id_map, frame_index=i - 1)
        seq.frames[i] = FrameTracks(objects.source_ids.copy(), objects.boxes.astype(np.float64),
                                    objects.rles)
    return seq


def load_tracks(path: str | Path, name: str | None = None) -> SequenceTracks:
    """Load a PNG ID-map folder, a MOTS txt, a MOTChallenge txt or a samtrack run folder."""
    path = Path(path)
    name = name or path.stem
    if not path.exists():
        raise FormatError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "masks").is_dir() and (path / "summary.json").is_file():
            return _from_png_folder(path / "masks", name)  # a samtrack run folder
        return _from_png_folder(path, name)
    with path.open() as fh:
        first = next((ln.strip() for ln in fh if ln.strip()), "")
    if not first:
        raise FormatError(f"{path}: file is empty")
    if len(first.split(" ")) == 6 and "," not in first:
        seq = SequenceTracks(name, has_masks=True)
        by_frame: dict[int, list] = {}
        for row in read_mots_txt(path):
            by_frame.setdefault(row.frame, []).append(row)
        from pycocotools import mask as coco_mask

        for frame, rows in by_frame.items():
            rles = [r.rle for r in rows]
            boxes = xywh_to_xyxy(np.asarray(coco_mask.toBbox(rles)).reshape(-1, 4))
            seq.frames[frame] = FrameTracks(np.array([r.id for r in rows], np.int64), boxes, rles)
        return seq
    rows = read_mot_txt(path)
    seq = SequenceTracks(name, has_masks=False)
    for frame in np.unique(rows.frame):
        sub = rows.at_frame(int(frame))
        seq.frames[int(frame)] = FrameTracks(sub.id.copy(), xywh_to_xyxy(sub.box_xywh))
    return seq

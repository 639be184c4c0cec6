"""``masks`` source: precomputed masks from any segmenter (a SAM2 run, a labelling tool...).

Three layouts are read:

* ``png``: a folder of single-channel 8/16-bit PNG ID maps, one per frame, named like the frame
  (``000123.png`` for ``000123.jpg``; for a video file, the zero-based index ``%06d.png``).
* ``mots``: a MOTS txt file (RLE masks, 1-based frames).
* ``mot``: a MOTChallenge box txt (1-based frames); each box becomes a box-shaped mask, which
  lets box detectors and the MOTChallenge public detections drive the same pipeline.

The ids found in the files become ``source_ids``: they are the source's identity *hint*, which
the tracker may follow or repair.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from samtrack.pipeline.core.errors import ConfigError, InputError
from samtrack.pipeline.core.formats import (
    FormatError,
    id_map_files,
    read_id_map,
    read_mot_txt,
    read_mots_txt,
)
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import VideoFrame, VideoReader
from samtrack.pipeline.sources.base import (
    SourceBase,
    SourceContext,
    SourceOptions,
    register_source,
)

log = logging.getLogger(__name__)


class MasksOptions(SourceOptions):
    """Options of the ``masks`` source (``source.masks.*``)."""

    path: str | None = Field(
        default=None, description="Folder of PNG ID maps, or a MOTS / MOTChallenge txt file."
    )
    format: Literal["auto", "png", "mots", "mot"] = Field(
        default="auto", description="Layout of `path`; auto: folder -> png, txt -> mots or mot "
        "(sniffed from the first line)."
    )
    missing_frame: Literal["error", "empty"] = Field(
        default="error", description="A frame with no PNG: stop with an error naming the "
        "expected file, or treat the frame as having no objects."
    )
    min_score: float | None = Field(
        default=None, description="mot format: drop boxes scoring below this (raw file "
        "score, before normalisation); None keeps all."
    )
    score_scale: float | None = Field(
        default=None, gt=0, description="mot format: divide raw scores by this and clip to "
        "[0, 1] (MOT15 detector scores run to ~100); None keeps scores as they are, clipped."
    )
    ids: Literal["auto", "track", "none"] = Field(
        default="auto", description="What the ids in the files are: track (the same object "
        "keeps its id: SAM2's video predictor, a tracker), none (numbers per frame only: a "
        "per-frame segmenter's instance maps; samtrack assigns every identity); auto: none "
        "when the PNG maps are plainly numbered per frame (1..n in reading order in every "
        "sampled map), else track.")
    max_objects: int = Field(
        default=1000, ge=1, description="A frame with more objects than this is refused: each "
        "object is a full-frame mask for the tracker, so thousands of ids in one frame (noise "
        "in an ID map) would take minutes and gigabytes per frame."
    )


def sniff_txt_format(path: Path) -> str:
    """``mots`` if the first data line is ``frame id class h w rle``, else ``mot``."""
    with path.open() as fh:
        for line in fh:
            line = line.strip()
            if line:
                parts = line.split(" ")
                return "mots" if len(parts) == 6 and "," not in line else "mot"
    raise FormatError(f"{path}: file is empty")


def resolve_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "png"
    return sniff_txt_format(path)


class MasksSource(SourceBase):
    """Yields the stored masks of each frame; see the module docstring."""

    name = "masks"

    def __init__(self, options: MasksOptions) -> None:
        if options.path is None:
            raise ConfigError("source.masks.path: required (folder or txt file of masks)")
        self.options = options
        self.path = Path(options.path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or folder (source.masks.path)")
        self.format = resolve_format(self.path, options.format)
        self._png: dict[str, Path] = {}
        self._by_frame: dict[int, list] = defaultdict(list)
        if self.format == "png":
            if not self.path.is_dir():
                raise FormatError(f"{self.path}: png format needs a folder of ID maps")
            self._png = id_map_files(self.path)
            if not self._png:
                raise FormatError(f"{self.path}: folder holds no PNG ID maps")
        elif self.format == "mots":
            for row in read_mots_txt(self.path):
                self._by_frame[row.frame].append(row)
        else:
            self._mot = read_mot_txt(self.path)
        self.ids = options.ids  # "auto" until prepare() has looked at the maps
        self.ids_why = "given" if options.ids != "auto" else ""

    def _judge_ids(self) -> tuple[str, str]:
        """Per-frame numbering is plain when every sampled map numbers its objects 1..n in
        reading order (top to bottom, as connected-component labelling does) and at least
        three of them hold several objects; anything else is taken as identities."""
        if self.format != "png":
            return "track", "ids from a txt file are taken as identities"
        files = list(self._png.values())
        picks = np.unique(np.linspace(0, len(files) - 1, min(20, len(files))).astype(int))
        several = 0
        for i in picks:
            objects = FrameObjects.from_id_map(read_id_map(files[i]), frame_index=int(i))
            ids = objects.source_ids
            if not len(ids):
                continue
            if not np.array_equal(np.sort(ids), np.arange(1, len(ids) + 1)):
                return "track", "ids are not 1..n in every map"
            if len(ids) > 1:
                several += 1
                boxes = objects.boxes  # reading order: first row, then first column
                if not np.array_equal(ids[np.lexsort((boxes[:, 0], boxes[:, 1]))],
                                      np.arange(1, len(ids) + 1)):
                    return "track", "ids are not in reading order"
        if several < 3:
            return "track", "too few maps with several objects to tell"
        return "none", (f"every one of {len(picks)} sampled maps numbers its objects 1..n "
                        "from the top: a per-frame segmenter's numbering, not identities")

    def prepare(self, video: VideoReader) -> str | None:
        if self.ids == "auto":
            self.ids, self.ids_why = self._judge_ids()
        if self.options.ids == "auto" and self.ids == "none":
            return (f"source.masks: ids ignored ({self.ids_why}); set source.masks.ids: track "
                    "to keep them")
        return None

    def summary(self) -> dict:
        return {"ids": self.ids, "ids_why": self.ids_why}

    def frames(self, video: VideoReader) -> Iterator[tuple[VideoFrame, FrameObjects]]:
        self.prepare(video)
        for frame in video:
            yield frame, self.objects_for(frame)

    def objects_for(self, frame: VideoFrame) -> FrameObjects:
        size = (frame.image.shape[0], frame.image.shape[1])
        if self.format == "png":
            objects = self._from_png(frame, size)
        elif self.format == "mots":
            objects = self._from_mots(frame, size)
        else:
            objects = self._from_mot(frame, size)
        if self.ids == "none":
            objects.source_ids = np.full(len(objects), -1, np.int64)
        return objects

    def _from_png(self, frame: VideoFrame, size: tuple[int, int]) -> FrameObjects:
        file = self._png.get(frame.name)
        if file is None:
            expected = self.path / f"{frame.name}.png"
            if self.options.missing_frame == "error":
                raise FormatError(f"{expected}: no mask file for frame {frame.name} "
                                  "(set source.masks.missing_frame: empty to allow this)")
            return FrameObjects.empty(size, frame_index=frame.index, frame_name=frame.name)
        id_map = read_id_map(file)
        if id_map.shape != size:
            raise FormatError(f"{file}: mask size {id_map.shape[1]}x{id_map.shape[0]} differs "
                              f"from frame {frame.name} size {size[1]}x{size[0]}")
        count = len(np.unique(id_map)) - int(bool((id_map == 0).any()))
        if count > self.options.max_objects:
            raise FormatError(f"{file}: {count} object ids in one frame, more than "
                              f"source.masks.max_objects ({self.options.max_objects})")
        return FrameObjects.from_id_map(id_map, frame_index=frame.index, frame_name=frame.name)

    def _from_mots(self, frame: VideoFrame, size: tuple[int, int]) -> FrameObjects:
        rows = self._by_frame.get(frame.index + 1, [])
        for row in rows:
            if (row.height, row.width) != size:
                raise FormatError(f"{self.path}: frame {row.frame} mask size "
                                  f"{row.width}x{row.height} differs from the video's "
                                  f"{size[1]}x{size[0]}")
        self._unique_ids([r.id for r in rows], frame)
        return FrameObjects.from_rles(
            [r.rle for r in rows], size, frame_index=frame.index, frame_name=frame.name,
            source_ids=[r.id for r in rows],
        )

    def _unique_ids(self, ids, frame: VideoFrame) -> None:
        """Two objects of one frame with one id: the file contradicts itself (-1 = no id)."""
        values, counts = np.unique(np.asarray(ids, np.int64), return_counts=True)
        twice = values[(counts > 1) & (values >= 0)]
        if len(twice):
            raise FormatError(f"{self.path}: frame {frame.index + 1}: id {int(twice[0])} "
                              "appears more than once")

    def _from_mot(self, frame: VideoFrame, size: tuple[int, int]) -> FrameObjects:
        rows = self._mot.at_frame(frame.index + 1)
        keep = np.ones(len(rows), dtype=bool)
        if self.options.min_score is not None:
            keep = rows.score >= self.options.min_score
        boxes, ids, scores = rows.box_xywh[keep], rows.id[keep], rows.score[keep]
        self._unique_ids(ids, frame)
        if self.options.score_scale is not None:
            scores = scores / self.options.score_scale
        scores = np.clip(scores, 0.0, 1.0)
        masks = box_masks(boxes, size)
        nonempty = masks.any(axis=(1, 2))
        return FrameObjects.from_masks(
            masks[nonempty], frame_index=frame.index, frame_name=frame.name,
            scores=scores[nonempty], source_ids=ids[nonempty],
        )


def box_masks(boxes_xywh: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Box-shaped boolean masks, clipped to the image (boxes may extend past the border)."""
    h, w = size
    masks = np.zeros((len(boxes_xywh), h, w), dtype=bool)
    for i, (x, y, bw, bh) in enumerate(boxes_xywh):
        x1, y1 = max(round(x), 0), max(round(y), 0)
        x2, y2 = min(round(x + bw), w), min(round(y + bh), h)
        if x2 > x1 and y2 > y1:
            masks[i, y1:y2, x1:x2] = True
    return masks


@register_source("masks", MasksOptions, "precomputed masks: PNG ID maps, MOTS txt or MOT box txt")
def _build(options: SourceOptions, context: SourceContext) -> MasksSource:
    assert isinstance(options, MasksOptions)
    return MasksSource(options)

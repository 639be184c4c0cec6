"""The one container every stage takes and returns: a frame's objects.

Modelled on supervision's ``Detections``: a small typed bundle of parallel arrays (one row per
object) that mask sources fill, the tracker annotates with ``track_ids`` and the writers read.
Boxes are always derived from the masks, so the two can never disagree.

Masks are stored as *crops* (each mask cut to its box: a boolean patch and its origin) or as
COCO run-length encodings (pycocotools). A mask is a few thousand pixels of a megapixel frame:
every stage works on crops (boxes, areas, centroids, overlaps, appearance, RLE), so nothing
per frame costs in proportion to the frame's size times the objects. ``masks`` builds the
dense ``(N, H, W)`` array only for a caller that asks (a picture). ``compact()`` keeps only RLE
(~50-100x smaller again), for records of a whole clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from pycocotools import mask as coco_mask

RLE = dict  # pycocotools RLE: {"size": [H, W], "counts": bytes}
Crop = tuple[np.ndarray, tuple[int, int]]  # a mask cut to its box: (bool patch, (x, y) origin)


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight ``(N, 4)`` xyxy boxes (x2/y2 exclusive, in pixels) of boolean masks ``(N, H, W)``.

    Empty masks get an all-zero box. Exclusive max corners make ``w = x2 - x1`` the pixel width,
    which is what MOTChallenge files store.
    """
    n = masks.shape[0]
    boxes = np.zeros((n, 4), dtype=np.float32)
    if n == 0:
        return boxes
    rows = masks.any(axis=2)  # (N, H)
    cols = masks.any(axis=1)  # (N, W)
    for i in range(n):
        ys = np.flatnonzero(rows[i])
        xs = np.flatnonzero(cols[i])
        if ys.size and xs.size:
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def crops_from_masks(masks: np.ndarray, hint: np.ndarray | None = None,
                     ) -> tuple[list[Crop], np.ndarray]:
    """Dense ``(N, H, W)`` masks -> their crops (copies) and tight xyxy boxes.

    ``hint``: xyxy boxes known to hold each mask (a detector's, ``sv.Detections.xyxy``): only
    inside them is looked at, instead of every pixel of every mask."""
    crops: list[Crop] = []
    boxes = np.zeros((len(masks), 4), np.float32)
    height, width = masks.shape[1:]
    for i, mask in enumerate(masks):
        x0 = y0 = 0
        if hint is not None:
            x0, y0 = max(int(np.floor(hint[i, 0])), 0), max(int(np.floor(hint[i, 1])), 0)
            x1 = min(int(np.ceil(hint[i, 2])), width)
            y1 = min(int(np.ceil(hint[i, 3])), height)
            mask = mask[y0:max(y1, y0), x0:max(x1, x0)]
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))  # non-zero pixels' box, vectorised
        crops.append((mask[y:y + h, x:x + w].copy(), (x0 + x, y0 + y)))
        boxes[i] = (x0 + x, y0 + y, x0 + x + w, y0 + y + h)
    return crops, boxes


def id_pixels(id_map: np.ndarray, order: str = "C") -> tuple[np.ndarray, list[np.ndarray]]:
    """The non-zero ids of an ID map and, for each, the flat indices of its pixels in ``order``
    (``C``: ``y * W + x``; ``F``: ``x * H + y``, the order COCO's RLE counts in), ascending.
    From one sort of the map, never one full-frame comparison per id (a map with 5000 ids
    would take 5000 passes over every pixel)."""
    flat = id_map.ravel(order=order)
    pixels = np.flatnonzero(flat)
    values = flat[pixels]
    sort = np.argsort(values, kind="stable")  # stable: each id's pixels stay ascending
    pixels, values = pixels[sort], values[sort]
    ids, starts = np.unique(values, return_index=True)
    return ids, np.split(pixels, starts[1:])


def crop_from_pixels(ys: np.ndarray, xs: np.ndarray) -> Crop:
    """A mask given as pixel rows and columns, cut to its box."""
    y0, x0 = int(ys.min()), int(xs.min())
    patch = np.zeros((int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1), bool)
    patch[ys - y0, xs - x0] = True
    return patch, (x0, y0)


def rle_from_pixels(pixels: np.ndarray, image_size: tuple[int, int]) -> RLE:
    """COCO RLE of the pixels at ascending column-major flat indices ``x * H + y`` (the order
    COCO counts runs in), without a full-frame array."""
    h, w = image_size
    if not len(pixels):
        return coco_mask.frPyObjects({"counts": [h * w], "size": [h, w]}, h, w)
    breaks = np.flatnonzero(np.diff(pixels) != 1)
    starts = np.r_[pixels[0], pixels[breaks + 1]]
    ends = np.r_[pixels[breaks] + 1, pixels[-1] + 1]
    counts = np.empty(2 * len(starts) + 1, np.int64)
    counts[0:-1:2] = starts - np.r_[0, ends[:-1]]
    counts[1::2] = ends - starts
    counts[-1] = h * w - ends[-1]
    return coco_mask.frPyObjects({"counts": counts.tolist(), "size": [h, w]}, h, w)


def rle_from_crop(crop: Crop, image_size: tuple[int, int]) -> RLE:
    patch, (x0, y0) = crop
    cols, rows = np.nonzero(patch.T)  # column by column, rows ascending: column-major order
    return rle_from_pixels((cols + x0).astype(np.int64) * image_size[0] + rows + y0, image_size)


def encode_rle(masks: np.ndarray) -> list[RLE]:
    """Boolean ``(N, H, W)`` masks -> list of COCO RLEs (counts as bytes)."""
    if masks.shape[0] == 0:
        return []
    fortran = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))
    return list(coco_mask.encode(fortran))


def decode_rle(rles: Sequence[RLE], image_size: tuple[int, int]) -> np.ndarray:
    """List of COCO RLEs -> boolean ``(N, H, W)`` masks."""
    if len(rles) == 0:
        return np.zeros((0, *image_size), dtype=bool)
    dense = coco_mask.decode(list(rles))  # (H, W, N) uint8
    return dense.transpose(2, 0, 1).astype(bool)


@dataclass
class FrameObjects:
    """The objects found in one frame.

    Attributes:
        frame_index: zero-based index of the frame in the clip (-1: not numbered yet; a
            tracker numbers it in the order it sees frames).
        image_size: ``(height, width)`` of the frame.
        scores: ``(N,)`` confidence per object in ``[0, 1]`` (1.0 when the source has none).
        source_ids: ``(N,)`` the id the mask source gave each object (SAM2 object id, id-map
            value), ``-1`` when the source has no identities.
        track_ids: ``(N,)`` identity assigned by the tracker, ``-1`` until tracked.
        embeddings: optional ``(N, D)`` appearance vectors, filled by the re-id stage.
        frame_name: file stem used to name per-frame outputs (``000123`` for ``000123.jpg``).
        data: further per-object columns by name (each ``(N, ...)``), selected together with
            the rest, as supervision's ``Detections.data`` (e.g. ``merged``: the mask is one
            piece of a blob of touching animals).
    """

    frame_index: int
    image_size: tuple[int, int]
    scores: np.ndarray
    source_ids: np.ndarray
    track_ids: np.ndarray
    embeddings: np.ndarray | None = None
    frame_name: str = ""
    data: dict[str, np.ndarray] = field(default_factory=dict)
    _crops: list[Crop] | None = field(default=None, repr=False)
    _rles: list[RLE] | None = field(default=None, repr=False)
    _boxes: np.ndarray | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_masks(
        cls,
        masks: np.ndarray,
        *,
        frame_index: int = -1,
        scores: np.ndarray | Sequence[float] | None = None,
        source_ids: np.ndarray | Sequence[int] | None = None,
        track_ids: np.ndarray | Sequence[int] | None = None,
        embeddings: np.ndarray | None = None,
        frame_name: str = "",
        data: dict[str, np.ndarray] | None = None,
        boxes: np.ndarray | Sequence[Sequence[float]] | None = None,
    ) -> FrameObjects:
        """Build from boolean masks ``(N, H, W)``; missing per-object fields get defaults.

        The masks are cut to their boxes at once (see the module docstring). ``boxes``: xyxy
        boxes that hold the masks, when the caller has them (``sv.Detections.xyxy``): the
        masks are then looked at only inside them. A mask reaching outside its box is cut.

        ``frame_index`` -1 (not given): a tracker numbers such frames in the order it sees them.
        """
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
        n = masks.shape[0]
        hint = None
        if boxes is not None:
            hint = np.asarray(boxes, np.float64).reshape(-1, 4)
            if len(hint) != n:
                raise ValueError(f"boxes has {len(hint)} rows for {n} masks")
        crops, found = crops_from_masks(masks.astype(bool, copy=False), hint)
        obj = cls._with_columns(n, (masks.shape[1], masks.shape[2]), frame_index, scores,
                                source_ids, track_ids, frame_name, data, embeddings=embeddings,
                                _crops=crops, _boxes=found)
        if embeddings is not None and len(embeddings) != n:
            raise ValueError(f"embeddings has {len(embeddings)} rows for {n} masks")
        return obj

    @classmethod
    def from_rles(
        cls,
        rles: Sequence[RLE],
        image_size: tuple[int, int],
        *,
        frame_index: int,
        scores: np.ndarray | Sequence[float] | None = None,
        source_ids: np.ndarray | Sequence[int] | None = None,
        track_ids: np.ndarray | Sequence[int] | None = None,
        frame_name: str = "",
        data: dict[str, np.ndarray] | None = None,
    ) -> FrameObjects:
        """Build from COCO RLEs without decoding them."""
        return cls._with_columns(len(rles), image_size, frame_index, scores, source_ids,
                                 track_ids, frame_name, data, _rles=list(rles))

    @classmethod
    def from_crops(
        cls,
        crops: Sequence[Crop],
        image_size: tuple[int, int],
        *,
        frame_index: int = -1,
        scores: np.ndarray | Sequence[float] | None = None,
        source_ids: np.ndarray | Sequence[int] | None = None,
        track_ids: np.ndarray | Sequence[int] | None = None,
        frame_name: str = "",
        data: dict[str, np.ndarray] | None = None,
    ) -> FrameObjects:
        """Build from masks already cut to their boxes: ``(bool patch, (x, y))`` pairs (a
        source that finds objects as pixel regions never makes a full-frame mask)."""
        n = len(crops)
        tight, boxes = [], np.zeros((n, 4), np.float32)
        for i, (patch, (x0, y0)) in enumerate(crops):
            patch = np.asarray(patch, bool)
            x, y, w, h = cv2.boundingRect(patch.view(np.uint8))
            tight.append((patch[y:y + h, x:x + w], (int(x0) + x, int(y0) + y)))
            boxes[i] = (x0 + x, y0 + y, x0 + x + w, y0 + y + h)
        return cls._with_columns(n, image_size, frame_index, scores, source_ids, track_ids,
                                 frame_name, data, _crops=tight, _boxes=boxes)

    @classmethod
    def _with_columns(cls, n: int, image_size: tuple[int, int], frame_index: int, scores,
                      source_ids, track_ids, frame_name: str, data, **storage) -> FrameObjects:
        """The per-object columns, defaulted and checked, around masks in ``storage``."""
        return cls(
            frame_index=frame_index,
            image_size=(int(image_size[0]), int(image_size[1])),
            scores=_column(scores, n, 1.0, np.float32, "scores"),
            source_ids=_column(source_ids, n, -1, np.int64, "source_ids"),
            track_ids=_column(track_ids, n, -1, np.int64, "track_ids"),
            frame_name=frame_name,
            data=_data_columns(data, n),
            **storage,
        )

    @classmethod
    def empty(cls, image_size: tuple[int, int], *, frame_index: int, frame_name: str = ""):
        """A frame with no objects."""
        return cls.from_masks(
            np.zeros((0, *image_size), dtype=bool), frame_index=frame_index, frame_name=frame_name
        )

    @classmethod
    def from_id_map(
        cls, id_map: np.ndarray, *, frame_index: int, frame_name: str = ""
    ) -> FrameObjects:
        """Split an instance-ID map (0 = background, value = object id) into objects.

        The ids become ``source_ids``; objects are ordered by id so the result is deterministic.
        """
        if id_map.ndim != 2:
            raise ValueError(f"id map must be single-channel (H, W), got shape {id_map.shape}")
        h, w = id_map.shape
        ids, pixels = id_pixels(id_map)
        if not len(ids):
            return cls.empty((h, w), frame_index=frame_index, frame_name=frame_name)
        crops = [crop_from_pixels(*np.divmod(p, w)) for p in pixels]
        return cls.from_crops(crops, (h, w), frame_index=frame_index,
                              source_ids=ids.astype(np.int64), frame_name=frame_name)

    # ------------------------------------------------------------------ mask storage
    @property
    def crops(self) -> list[Crop]:
        """Each mask cut to its box: ``(bool patch, (x, y) origin)`` (decoded from RLE when
        stored compactly)."""
        if self._crops is not None:
            return self._crops
        assert self._rles is not None
        out = []
        for rle, (x1, y1, x2, y2) in zip(self._rles, self.boxes.astype(int), strict=True):
            out.append((coco_mask.decode(rle)[y1:y2, x1:x2].astype(bool), (int(x1), int(y1))))
        return out

    @property
    def masks(self) -> np.ndarray:
        """Boolean ``(N, H, W)`` masks, made on each call: for pictures, not for per-frame
        work (use :attr:`crops`)."""
        if self._crops is None:
            assert self._rles is not None
            return decode_rle(self._rles, self.image_size)
        out = np.zeros((len(self), *self.image_size), bool)
        for i, (patch, (x, y)) in enumerate(self._crops):
            out[i, y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        return out

    @property
    def rles(self) -> list[RLE]:
        """COCO RLEs of the masks (encoded from the crops on demand and cached)."""
        if self._rles is None:
            assert self._crops is not None
            self._rles = [rle_from_crop(c, self.image_size) for c in self._crops]
        return self._rles

    @property
    def is_compact(self) -> bool:
        return self._crops is None

    def compact(self) -> FrameObjects:
        """Keep only RLE (in place; returns self for chaining)."""
        _ = self.rles
        self._boxes = self.boxes
        self._crops = None
        return self

    # ------------------------------------------------------------------ derived columns
    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def boxes(self) -> np.ndarray:
        """``(N, 4)`` float32 xyxy boxes (x2/y2 exclusive) of the masks."""
        if self._boxes is None:
            # RLE only: toBbox gives xywh without decoding the masks
            xywh = coco_mask.toBbox(self._rles) if self._rles else np.zeros((0, 4))
            boxes = np.asarray(xywh, dtype=np.float32).reshape(-1, 4)
            boxes[:, 2:] += boxes[:, :2]
            self._boxes = boxes
        return self._boxes

    @property
    def areas(self) -> np.ndarray:
        """``(N,)`` mask areas in pixels."""
        if self._crops is None and self._rles is not None:
            return np.asarray(coco_mask.area(self._rles), dtype=np.int64).reshape(-1)
        return np.array([int(np.count_nonzero(p)) for p, _ in self.crops], dtype=np.int64)

    @property
    def centroids(self) -> np.ndarray:
        """``(N, 2)`` mask centroids ``(x, y)``; the box centre for empty masks."""
        out = np.zeros((len(self), 2), dtype=np.float32)
        for i, (patch, (x1, y1)) in enumerate(self.crops):
            # from row and column counts (no index arrays)
            cols = np.count_nonzero(patch, axis=0)
            total = int(cols.sum())
            if total:
                rows = np.count_nonzero(patch, axis=1)
                out[i] = (cols @ np.arange(cols.size) / total + x1,
                          rows @ np.arange(rows.size) / total + y1)
            else:
                b = self.boxes[i]
                out[i] = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        return out

    def at(self, x: int, y: int) -> np.ndarray:
        """Indices of the objects whose mask covers pixel ``(x, y)``."""
        hits = []
        for i, (patch, (px, py)) in enumerate(self.crops):
            if px <= x < px + patch.shape[1] and py <= y < py + patch.shape[0] and \
                    patch[y - py, x - px]:
                hits.append(i)
        return np.array(hits, np.int64)

    # ------------------------------------------------------------------ selection
    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> FrameObjects:
        """Subset of objects by integer index, slice, index array or boolean array."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]
        sub = replace(
            self,
            scores=self.scores[idx],
            source_ids=self.source_ids[idx],
            track_ids=self.track_ids[idx],
            embeddings=None if self.embeddings is None else self.embeddings[idx],
            data={key: value[idx] for key, value in self.data.items()},
            _crops=None if self._crops is None else [self._crops[i] for i in idx],
            _rles=None if self._rles is None else [self._rles[i] for i in idx],
            _boxes=None if self._boxes is None else self._boxes[idx],
        )
        return sub

    def with_track_ids(self, track_ids: np.ndarray | Sequence[int]) -> FrameObjects:
        """A copy with the tracker's ids set (masks shared, not copied)."""
        return replace(self, track_ids=_column(track_ids, len(self), -1, np.int64, "track_ids"))

    # ------------------------------------------------------------------ export
    def to_id_map(self, ids: str = "track", dtype: type = np.uint16) -> np.ndarray:
        """Render an instance-ID map ``(H, W)`` from ``track_ids`` or ``source_ids``.

        Objects with id <= 0 are left out. Where masks overlap, the larger id is drawn last, which
        is arbitrary but deterministic; the tracker's duplicate suppression keeps overlaps rare.
        """
        values = self.track_ids if ids == "track" else self.source_ids
        if ids not in ("track", "source"):
            raise ValueError(f"ids must be 'track' or 'source', got {ids!r}")
        if len(values) and values.max() > np.iinfo(dtype).max:
            raise ValueError(f"id {values.max()} does not fit in {np.dtype(dtype).name}")
        out = np.zeros(self.image_size, dtype=dtype)
        crops = self.crops
        for i in np.argsort(values, kind="stable"):
            if values[i] > 0:
                patch, (x, y) = crops[i]
                out[y:y + patch.shape[0], x:x + patch.shape[1]][patch] = values[i]
        return out


def _data_columns(data: dict[str, np.ndarray] | None, n: int) -> dict[str, np.ndarray]:
    columns = {key: np.asarray(value) for key, value in (data or {}).items()}
    for key, value in columns.items():
        if value.ndim == 0 or value.shape[0] != n:
            raise ValueError(f"data[{key!r}] has {0 if value.ndim == 0 else value.shape[0]} "
                             f"rows for {n} objects")
    return columns


def _column(values, n: int, default, dtype, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=dtype)
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values for {n} objects")
    return arr

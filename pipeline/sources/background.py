"""``background`` source: animals segmented against a model of the empty arena (static cameras).

This is how lab tracking tools (idtracker.ai, TRex, ToxTrac) segment: the camera and the arena
do not move, so whatever differs from the empty arena is an animal. Every quantity is derived
from the clip itself, because the next user's clip has other animals, other light and another
camera:

* **Background**: a per-pixel quantile of frames sampled across the whole clip. The quantile is
  taken on the far side from the animals (a low one when animals are lighter than the floor, a
  high one when darker), so an animal that sits still is learnt out as long as it leaves its
  spot for ``away_fraction`` of the clip (a median would need it gone half the time). Slow light
  drift is followed by a per-frame brightness offset and a slow running update of the pixels
  that show no animal.
* **Polarity** (dark animals on a light floor, or light on dark): the side on which the clip's
  changes are the most extreme pixels of their own frame. Ghosts of animals that moved away
  differ from the background too, but they show ordinary floor.
* **Thresholds**: hysteresis on the contrast to the background. The low threshold is twice the
  noise edge of the clip's contrast histogram (the triangle method finds where the noise peak
  ends); the high one separates, by Otsu's method, the animal cores from the faint pixels above
  the low one. A blob is kept when it holds a core, so faint tails and wings stay attached to
  their animal while sensor noise and compression speckle never start a blob.
* **Area and count**: the number of animals is the largest blob count that at least
  ``count_support`` of the sampled frames reach (animals are apart some of the time); one
  animal's area is the median blob area in those frames. Blobs below ``min_area_fraction`` of
  it are dropped; a blob of k animals' area is split into k.
* **Arena**: a well (a circle around all the animals, with strong edges) is found in the
  background image and whatever lies outside is ignored; or it is given as a circle, polygon or
  mask image.
* **Touching animals** are split by k-means on the blob's pixels, started from where the animals
  were in the previous frame, so a pair keeps its sides through a touch. The pieces are marked
  ``merged`` (their boxes overlap, so the identity engine treats the stretch as a crossing).

Everything the model derived is in ``summary()`` (written to summary.json), so a user can see
why a clip segmented as it did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from samtrack.pipeline.core.errors import InputError
from samtrack.pipeline.core.frames import FrameObjects, crop_from_pixels
from samtrack.pipeline.core.video import VideoFrame, VideoReader
from samtrack.pipeline.sources.base import (
    SourceBase,
    SourceContext,
    SourceOptions,
    register_source,
)

log = logging.getLogger(__name__)

MAX_SAMPLES = 400  # frames held at once for the background model (memory: samples x frame)
CAMERA_SIZE = 256  # px: the camera check compares downscaled frames
#: a still arena's animals change a few percent of a frame at most; a frame that differs from
#: the background over more than this, while shifted against it, was filmed by a moving camera
MOVING_CHANGED_FRACTION = 0.05
#: px: the smallest region taken for an animal (4 x 4): below it, a region is sensor noise or
#: compression speckle, and nothing could be told about its identity anyway
MIN_ANIMAL_AREA = 16


class RoiOptions(SourceOptions):
    """Where the animals can be (``source.background.roi.*``)."""

    shape: Literal["auto", "none", "circle", "polygon", "mask"] = Field(
        default="auto", description="auto: a well found in the background (a circle holding "
        "every animal, with strong edges), else the whole frame; none: the whole frame; "
        "circle/polygon/mask: as given below.")
    circle: tuple[float, float, float] | None = Field(
        default=None, description="shape circle: [x, y, radius] in pixels.")
    polygon: list[tuple[float, float]] | None = Field(
        default=None, description="shape polygon: [[x, y], ...] in pixels (3 points or more).")
    mask: str | None = Field(default=None, description="shape mask: an image file the size of "
                             "the frames; non-zero pixels are the arena.")

    @model_validator(mode="after")
    def _shape_has_its_value(self) -> RoiOptions:
        needs = {"circle": self.circle, "polygon": self.polygon, "mask": self.mask}
        if self.shape in needs and needs[self.shape] is None:
            raise ValueError(f"shape {self.shape} needs roi.{self.shape}")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError("polygon needs at least 3 points")
        if self.circle is not None and self.circle[2] <= 0:
            raise ValueError("circle radius must be positive")
        return self


class BackgroundOptions(SourceOptions):
    """Options of the ``background`` source (``source.background.*``)."""

    samples: int = Field(default=40, ge=3, le=MAX_SAMPLES, description="Frames sampled "
                         "evenly over the clip to build the background model.")
    away_fraction: float = Field(default=0.1, gt=0, lt=0.5, description="An animal is learnt "
                                 "out of the background where it is away from a pixel at "
                                 "least this fraction of the sampled frames.")
    polarity: Literal["auto", "dark", "light", "both"] = Field(
        default="auto", description="Animals darker or lighter than the floor, or with parts "
        "of both (a shadow, a dark head); auto: found from the clip.")
    num_objects: int | None = Field(
        default=None, ge=1, le=10000, description="Animals in the arena (splits touching "
        "ones); None: tracker.num_identities, else estimated from the clip.")
    count_support: float = Field(default=0.25, gt=0, le=1, description="The estimated count "
                                 "is the most blobs seen in at least this fraction of the "
                                 "sampled frames.")
    min_area_fraction: float = Field(default=0.25, gt=0, le=1, description="Blobs smaller "
                                     "than this fraction of one animal's area are dropped.")
    max_area_fraction: float = Field(default=0.5, gt=0, le=1, description="Blobs larger than "
                                     "this fraction of the frame are dropped (light changes).")
    split: bool = Field(default=True, description="Split a blob of several animals' area "
                        "into that many masks.")
    drift_rate: float = Field(default=0.005, ge=0, le=1, description="Per frame, pixels "
                              "showing no animal move this fraction towards the current frame "
                              "(slow light drift); 0: the background stays as sampled.")
    roi: RoiOptions = Field(default_factory=RoiOptions, description="The arena.")


@dataclass
class BackgroundModel:
    """What the source learnt from the clip (every field derived from the sampled frames)."""

    #: float32 (H, W) grey background per side the animals differ on: "light" (animals
    #: lighter than it: a low quantile of the samples) and/or "dark" (a high quantile)
    floors: dict[str, np.ndarray]
    low: float  # hysteresis thresholds on the contrast to the background (grey levels)
    high: float
    roi: np.ndarray | None  # uint8 (H, W) arena, None = whole frame
    roi_found: str  # how the arena was decided
    single_area: float  # px: one animal
    area_spread: float  # relative spread of single-animal areas (MAD / median)
    count: int  # animals: given, or estimated
    count_estimated: bool
    camera: str  # "static" | "moving"
    changed_fraction: float  # median fraction of the frame that differs from the background
    samples: int
    notes: list[str] = field(default_factory=list)

    @property
    def polarity(self) -> str:
        """light, dark or both: how the animals differ from the floor."""
        return "both" if len(self.floors) > 1 else next(iter(self.floors))

    @property
    def image(self) -> np.ndarray:
        """One background image (the first side's), for the checks that need a picture."""
        return next(iter(self.floors.values()))

    def summary(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k not in ("floors", "roi")}
        data["polarity"] = self.polarity
        for key in ("low", "high", "single_area", "area_spread", "changed_fraction"):
            data[key] = round(float(data[key]), 4)
        return data


# --------------------------------------------------------------------------- pixel work
def to_grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def contrast(grey: np.ndarray, floors: dict[str, np.ndarray],
             roi: np.ndarray | None) -> np.ndarray:
    """Float32 contrast of each pixel to the background, towards the animals' side(s) (the
    larger where there are two), minus the frame's overall brightness shift (the median over
    a grid of arena pixels)."""
    grey = grey.astype(np.float32)
    diff = None
    for side, floor in floors.items():
        d = cv2.subtract(grey, floor) if side == "light" else cv2.subtract(floor, grey)
        diff = d if diff is None else np.maximum(diff, d)
    assert diff is not None
    grid = diff[::8, ::8] if roi is None else diff[::8, ::8][roi[::8, ::8] > 0]
    if grid.size:
        diff -= float(np.median(grid))
    return diff


@dataclass
class Blob:
    """One connected region of an animal's contrast: its pixels (absolute rows and columns)."""

    ys: np.ndarray
    xs: np.ndarray

    @property
    def area(self) -> int:
        return len(self.ys)


def core_blobs(diff: np.ndarray, low: float, high: float, roi: np.ndarray | None,
               min_area: float = 0) -> list[Blob]:
    """Hysteresis segmentation: regions of ``diff > low`` (outer contours, holes filled) that
    hold a pixel above ``high``. Works per contour in its bounding box, never on a full-frame
    label image: a frame holds a few animals and a megapixel of floor."""
    weak = (diff > low).astype(np.uint8)
    if roi is not None:
        weak &= roi
    contours, _ = cv2.findContours(weak, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    blobs = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if w * h < min_area:
            continue
        filled = np.zeros((h, w), np.uint8)
        cv2.drawContours(filled, [contour], -1, 1, thickness=cv2.FILLED, offset=(-x, -y))
        inside = filled > 0
        if not (diff[y:y + h, x:x + w][inside] > high).any():
            continue
        ys, xs = np.nonzero(inside)
        if len(ys) >= min_area:
            blobs.append(Blob(ys + y, xs + x))
    return blobs


def _triangle(values: np.ndarray) -> float:
    """Triangle threshold of non-negative contrasts: where the noise peak's tail ends."""
    clipped = np.clip(values, 0, 255).astype(np.uint8).reshape(1, -1)
    threshold, _ = cv2.threshold(clipped, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_TRIANGLE)
    return float(max(threshold, 1.0))


def _otsu(values: np.ndarray) -> float:
    clipped = np.clip(values, 0, 255).astype(np.uint8).reshape(1, -1)
    threshold, _ = cv2.threshold(clipped, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return float(threshold)


def find_sides(stack: np.ndarray) -> tuple[str, ...]:
    """The sides on which the animals differ from the floor: ("light",), ("dark",) or both.

    A pixel that differs from the median background is either an animal or the ghost of one
    that moved away. Animals are extreme pixels of their own frame; ghosts show floor. So each
    side's changes are scored by how far they lie from their frame's median, and a side is
    the animals' when that exceeds the clip's noise edge (lab animals: one side; an animal
    with light and dark parts, or with a shadow: both); with neither, the stronger side.
    Every other pixel in each direction is plenty for a vote of whole animals."""
    stack = stack[:, ::2, ::2].astype(np.int16)
    diff = stack - np.median(stack, axis=0).astype(np.int16)
    edge = 2 * _triangle(np.abs(diff[:, ::2, ::2]))
    away = stack - np.median(stack[:, ::2, ::2], axis=(1, 2)).astype(np.int16)[:, None, None]
    lighter = away[diff > edge]
    darker = -away[diff < -edge]
    scores = {"light": float(np.mean(lighter)) if lighter.size else 0.0,
              "dark": float(np.mean(darker)) if darker.size else 0.0}
    sides = tuple(side for side, score in scores.items() if score > edge)
    return sides or (max(scores, key=scores.__getitem__),)


def camera_motion(stack: np.ndarray, background: np.ndarray) -> tuple[str, float]:
    """``("static" | "moving", shift)``: the median shift (px, full size) of the sampled frames
    against the background by phase correlation. A panning camera shifts the frames; a static
    one does not, whatever moves inside it."""
    h, w = background.shape
    scale = min(1.0, CAMERA_SIZE / max(h, w))
    size = (max(int(w * scale), 16), max(int(h * scale), 16))
    window = cv2.createHanningWindow(size, cv2.CV_32F)
    ref = cv2.resize(background.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    shifts = []
    for grey in stack:
        img = cv2.resize(grey.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        (dx, dy), _ = cv2.phaseCorrelate(ref, img, window)
        shifts.append(np.hypot(dx, dy) / scale)
    shift = float(np.median(shifts))
    # one downscaled pixel of sub-pixel-accurate shift is far above the jitter of a still camera
    return ("moving" if shift > 1.0 / scale else "static"), shift


def camera_of(stack: np.ndarray) -> str:
    """``static`` or ``moving`` for grey samples ``(S, H, W)`` against their median: shifted
    against it, and changed beyond what animals cover (see :func:`build_model`)."""
    median = np.median(stack, axis=0).astype(np.float32)
    shifted, _ = camera_motion(stack, median)
    if shifted == "static":
        return "static"
    diff = np.abs(stack[:, ::4, ::4].astype(np.float32) - median[::4, ::4])
    changed = float(np.median(np.mean(diff > 2 * _triangle(diff), axis=(1, 2))))
    return "moving" if changed > MOVING_CHANGED_FRACTION else "static"


def find_arena(background: np.ndarray, stack_fg: np.ndarray) -> np.ndarray | None:
    """A circular well in the background that holds every animal seen, or None.

    Hough circles on the (downscaled) background, largest first; a candidate is kept when its
    rim has strong edges along most of its length and no foreground of the samples lies
    outside it (an arena is where the animals are)."""
    h, w = background.shape
    scale = min(1.0, 512 / max(h, w))
    small = cv2.resize(background, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(np.clip(small, 0, 255).astype(np.uint8), (5, 5), 0)
    side = min(small.shape)
    circles = cv2.HoughCircles(small, cv2.HOUGH_GRADIENT, dp=1, minDist=side / 4, param1=60,
                               param2=30, minRadius=int(side * 0.25), maxRadius=int(side * 0.75))
    if circles is None:
        return None
    gx = cv2.Sobel(small.astype(np.float32), cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(small.astype(np.float32), cv2.CV_32F, 0, 1)
    grad = np.hypot(gx, gy)
    strong_edge = np.quantile(grad, 0.9)
    ys_fg, xs_fg = np.nonzero(stack_fg)
    for x, y, r in sorted(circles[0], key=lambda c: -c[2]):
        angles = np.linspace(0, 2 * np.pi, 360, endpoint=False)
        rim_x = np.clip((x + r * np.cos(angles)).round().astype(int), 0, small.shape[1] - 1)
        rim_y = np.clip((y + r * np.sin(angles)).round().astype(int), 0, small.shape[0] - 1)
        # the rim's strongest edge within two pixels, so a slightly wrong radius still counts
        support = np.mean([grad[max(ry - 2, 0):ry + 3, max(rx - 2, 0):rx + 3].max() > strong_edge
                           for rx, ry in zip(rim_x, rim_y, strict=True)])
        if support < 0.5:
            continue
        cx, cy, radius = x / scale, y / scale, r / scale * 1.03  # margin: the rim itself
        if len(xs_fg) and np.mean(np.hypot(xs_fg - cx, ys_fg - cy) > radius) > 0.001:
            continue
        roi = np.zeros((h, w), np.uint8)
        cv2.circle(roi, (round(cx), round(cy)), round(radius), 1, thickness=-1)
        return roi
    return None


def given_arena(roi: RoiOptions, size: tuple[int, int]) -> np.ndarray | None:
    h, w = size
    if roi.shape in ("auto", "none"):
        return None
    out = np.zeros((h, w), np.uint8)
    if roi.shape == "circle":
        assert roi.circle is not None
        x, y, r = roi.circle
        cv2.circle(out, (round(x), round(y)), round(r), 1, thickness=-1)
    elif roi.shape == "polygon":
        assert roi.polygon is not None
        cv2.fillPoly(out, [np.round(np.asarray(roi.polygon)).astype(np.int32)], 1)
    else:
        assert roi.mask is not None
        if not Path(roi.mask).is_file():
            raise InputError(f"{roi.mask}: no such file (source.background.roi.mask)")
        image = cv2.imread(roi.mask, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise InputError(f"{roi.mask}: cannot read as an image (source.background.roi.mask)")
        if image.shape != (h, w):
            raise InputError(f"{roi.mask}: size {image.shape[1]}x{image.shape[0]} differs from "
                             f"the frames' {w}x{h} (source.background.roi.mask)")
        out = (image > 0).astype(np.uint8)
    if not out.any():
        raise InputError("source.background.roi: the arena covers no pixel of the frame")
    return out


def estimate_count(areas_by_frame: list[np.ndarray], support: float) -> tuple[int, float, float]:
    """``(count, single_area, spread)`` from the blob areas of the sampled frames.

    Fragments (below a quarter of the median blob) are not counted. The count is the most blobs
    that at least ``support`` of the frames show; one animal's area is the median blob area of
    the frames that show exactly that many, and its spread the relative median deviation."""
    every = np.concatenate(areas_by_frame) if areas_by_frame else np.zeros(0)
    if not every.size:
        return 0, 0.0, 0.0
    every = every[every >= MIN_ANIMAL_AREA]
    if not every.size:
        return 0, 0.0, 0.0
    floor = max(0.25 * float(np.median(every)), MIN_ANIMAL_AREA)
    counts = np.array([int((a >= floor).sum()) for a in areas_by_frame])
    count = 0
    for n in range(int(counts.max()), 0, -1):
        if np.mean(counts >= n) >= support:
            count = n
            break
    pool = [a[a >= floor] for a, c in zip(areas_by_frame, counts, strict=True) if c == count]
    single = np.concatenate(pool) if pool else every[every >= floor]
    area = float(np.median(single))
    spread = float(np.median(np.abs(single - area)) / area) if area else 0.0
    return count, area, spread


def build_model(stack: np.ndarray, options: BackgroundOptions,
                num_objects: int | None) -> BackgroundModel:
    """The background model of a clip from its sampled grey frames ``(S, H, W)`` uint8."""
    notes: list[str] = []
    sides = {"light": ("light",), "dark": ("dark",), "both": ("light", "dark")}.get(
        options.polarity) or find_sides(stack)
    k = min(int(options.away_fraction * len(stack)), len(stack) - 1)
    # the quantile on the far side from the animals (np.partition is O(S) per pixel). With
    # animals on both sides there is no far side: a light quantile would keep their dark
    # parts and a dark one their light parts, so both take the median (an animal must then
    # be away half the time to be learnt out)
    indices = {"light": k, "dark": len(stack) - 1 - k} if len(sides) == 1 else \
        {"light": len(stack) // 2, "dark": len(stack) // 2}
    ordered = np.partition(stack, sorted({indices[s] for s in sides}), axis=0)
    floors = {side: ordered[indices[side]].astype(np.float32) for side in sides}
    background = floors[sides[0]]
    shifted, _shift = camera_motion(stack, background)
    roi = given_arena(options.roi, background.shape)
    roi_found = options.roi.shape
    # the samples' contrasts are made again for each pass rather than held: 40 float frames
    # of a megapixel clip are 160 MB that the allocator would keep for the rest of the run
    def contrasts():
        return (contrast(g, floors, roi) for g in stack)

    low = 2 * _triangle(np.concatenate([d[::4, ::4].ravel() for d in contrasts()]))
    above, changes = [], []
    for d in contrasts():
        above.append(d[d > low])
        changes.append(float(np.mean(np.abs(d) > low)))
    above_all = np.concatenate(above)
    high = max(_otsu(above_all), low) if above_all.size else low
    changed = float(np.median(changes))
    # a shift alone can be the animals themselves on a plain floor (phase correlation follows
    # whatever has contrast): the scene must also have changed beyond what animals cover
    camera = "moving" if shifted == "moving" and changed > MOVING_CHANGED_FRACTION else \
        "static"
    if options.roi.shape == "auto":
        fg = np.zeros(background.shape, np.uint8)
        for d in contrasts():
            fg |= (d > high).astype(np.uint8)
        roi = find_arena(background, fg)
        roi_found = "well found" if roi is not None else "whole frame (no well found)"
    areas = [np.array([b.area for b in core_blobs(d, low, high, roi)], np.int64)
             for d in contrasts()]
    h, w = background.shape
    areas = [a[a <= options.max_area_fraction * h * w] for a in areas]
    count, single, spread = estimate_count(areas, options.count_support)
    estimated = num_objects is None
    if num_objects is not None:
        if count != num_objects:
            notes.append(f"{num_objects} animals given; the sampled frames suggest {count}")
            full = [a for a in areas if len(a) == num_objects]
            if full:
                single = float(np.median(np.concatenate(full)))
        count = num_objects
    if single <= 0:
        notes.append("no animal found in the sampled frames (animals that never leave their "
                     "spot while sampled are learnt into the background)")
    return BackgroundModel(floors=floors, low=low, high=high, roi=roi,
                           roi_found=roi_found, single_area=single, area_spread=spread,
                           count=count, count_estimated=estimated, camera=camera,
                           changed_fraction=changed, samples=len(stack), notes=notes)


# --------------------------------------------------------------------------- splitting
@dataclass
class Animal:
    """One mask of the previous frame, as the next frame's split needs it."""

    ys: np.ndarray  # pixel rows and columns of its last whole (unsplit) mask
    xs: np.ndarray
    centroid: np.ndarray  # (x, y) of that mask
    velocity: np.ndarray  # (dx, dy) per frame: centroid change since the frame before
    age: int = 0  # frames since that mask: > 0 while it is inside a blob of several

    def predicted(self, blob: np.ndarray | None = None, origin: tuple[int, int] = (0, 0),
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Its last whole mask and centroid moved along its velocity to the next frame.

        Without a blob: as far as the velocity carries it (``age + 1`` frames). Inside a blob
        of several animals (``blob``: its boolean crop at ``origin`` = (y, x)): as far along
        that path as lies best within the blob. Animals in contact may stop (two flies
        resting side by side) or go on (a larva darting over another); the blob says which.
        """
        steps = [self.age + 1]
        if blob is not None:
            y0, x0 = origin
            h, w = blob.shape
            best = -1
            for s in range(self.age + 2):
                dx, dy = np.round(self.velocity * s).astype(int)
                py, px = self.ys + dy - y0, self.xs + dx - x0
                inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
                overlap = int(blob[py[inside], px[inside]].sum())
                if overlap >= best:  # ties: the farther, as the velocity says
                    best, steps = overlap, [s]
        step = self.velocity * steps[0]
        dx, dy = np.round(step).astype(int)
        return self.ys + dy, self.xs + dx, self.centroid + step


def split_by_prediction(ys: np.ndarray, xs: np.ndarray, animals: list[Animal]) -> np.ndarray:
    """Labels ``0..k-1`` for a blob's pixels: each goes to the animal whose predicted mask
    (last whole mask moved along its velocity, as far as fits the blob) it lies in or nearest
    to; where predictions overlap, to the nearer predicted centroid. Through a crossing each
    piece keeps following its animal's motion instead of the blob's left and right halves."""
    blob, (x0, y0) = crop_from_pixels(ys, xs)
    h, w = blob.shape
    distances = []
    centre_distances = []
    for animal in animals:
        py, px, centre = animal.predicted(blob, (y0, x0))
        inside = (py >= y0) & (py < y0 + h) & (px >= x0) & (px < x0 + w)
        outside = np.ones((h, w), np.uint8)
        outside[py[inside] - y0, px[inside] - x0] = 0
        if outside.all():  # predicted wholly outside the blob's box: distance to its centre
            dist = np.hypot(xs - centre[0], ys - centre[1]).astype(np.float32)
        else:
            field = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
            dist = field[ys - y0, xs - x0]
        distances.append(dist)
        centre_distances.append(np.hypot(xs - centre[0], ys - centre[1]))
    dist = np.stack(distances)
    # inside two predictions at once (distance 0 to both): the nearer centre decides
    return np.lexsort((np.stack(centre_distances), dist), axis=0)[0]


def split_by_kmeans(ys: np.ndarray, xs: np.ndarray, k: int, iterations: int = 10) -> np.ndarray:
    """Labels ``0..k-1`` for a blob's pixels by k-means on their coordinates, started from
    pixels at even steps along the blob's main axis (deterministic)."""
    points = np.column_stack([xs, ys]).astype(np.float32)
    centred = points - points.mean(0)
    axis = np.linalg.svd(centred[:: max(len(points) // 2000, 1)], full_matrices=False)[2][0]
    order = np.argsort(centred @ axis)
    centres = points[order[((np.arange(k) + 0.5) * len(points) / k).astype(int)]]
    labels = np.zeros(len(points), np.int64)
    for _ in range(iterations):
        labels = ((points[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        moved = np.array([points[labels == j].mean(0) if (labels == j).any() else centres[j]
                          for j in range(k)], np.float32)
        if np.allclose(moved, centres, atol=0.1):
            break
        centres = moved
    return labels


class BackgroundSource(SourceBase):
    """Background-model mask source; see the module docstring."""

    name = "background"

    def __init__(self, options: BackgroundOptions, num_objects: int | None = None) -> None:
        self.options = options
        self.num_objects = options.num_objects or num_objects
        self.model: BackgroundModel | None = None
        self.fit_seconds = 0.0
        self._previous: list[Animal] = []

    def fit(self, video: VideoReader) -> BackgroundModel:
        """Build the background model from frames sampled over the whole clip."""
        started = time.perf_counter()
        grey = [to_grey(img) for img in video.sample(self.options.samples)]
        if not grey:
            raise InputError(f"{video.path}: no frame could be decoded for the background")
        self.model = build_model(np.stack(grey), self.options, self.num_objects)
        self.fit_seconds = time.perf_counter() - started
        self._previous = []
        return self.model

    def prepare(self, video: VideoReader) -> str | None:
        m = self.model or self.fit(video)
        count = f"{m.count} animals" + (" (estimated)" if m.count_estimated else "")
        looks = {"light": "light on dark", "dark": "dark on light",
                 "both": "light and dark parts"}[m.polarity]
        return (f"background model from {m.samples} frames: {count} of ~{m.single_area:.0f} px, "
                f"{looks}, arena: {m.roi_found}")

    def frames(self, video: VideoReader) -> Iterator[tuple[VideoFrame, FrameObjects]]:
        model = self.model or self.fit(video)
        for frame in video:
            yield frame, self.segment(frame, model)

    def segment(self, frame: VideoFrame, model: BackgroundModel) -> FrameObjects:
        """The animals of one frame: hysteresis blobs, area-checked, touching ones split."""
        grey = to_grey(frame.image)
        diff = contrast(grey, model.floors, model.roi)
        o = self.options
        blobs = core_blobs(diff, model.low, model.high, model.roi,
                           min_area=max(o.min_area_fraction * model.single_area,
                                        MIN_ANIMAL_AREA))
        h, w = grey.shape
        blobs = [b for b in blobs if b.area <= o.max_area_fraction * h * w]
        areas = np.array([b.area for b in blobs], np.int64)
        pieces: list[tuple[np.ndarray, np.ndarray, Animal | None, bool]] = []
        owners = self._previous_blobs(blobs, (h, w))
        for index, (blob, k) in enumerate(zip(blobs, self._animals_per_blob(areas, model),
                                              strict=True)):
            ys, xs = blob.ys, blob.xs
            if k == 1:
                pieces.append((ys, xs, None, False))
                continue
            before = [a for a, owner in zip(self._previous, owners, strict=True)
                      if owner == index]
            if len(before) == k:
                split = split_by_prediction(ys, xs, before)
            else:
                split, before = split_by_kmeans(ys, xs, k), [None] * k
            for j in range(k):
                if (split == j).any():  # a split can leave a prediction no pixel at all
                    pieces.append((ys[split == j], xs[split == j], before[j], True))
        if o.drift_rate > 0:
            still = (diff <= model.low).astype(np.uint8)
            for floor in model.floors.values():
                cv2.accumulateWeighted(grey.astype(np.float32), floor, o.drift_rate,
                                       mask=still)
        crops = [crop_from_pixels(ys, xs) for ys, xs, _, _ in pieces]
        centroids = np.array([(xs.mean(), ys.mean()) for ys, xs, _, _ in pieces]).reshape(-1, 2)
        self._remember(pieces, centroids)
        return FrameObjects.from_crops(
            crops, (h, w), frame_index=frame.index, frame_name=frame.name,
            data={"merged": np.array([p[3] for p in pieces], bool)})

    def _remember(self, pieces, centroids: np.ndarray) -> None:
        """Keep this frame's animals with their velocities for the next frame's splits: a
        piece of a split knows its animal; a whole blob takes the previous animal whose
        centroid is nearest (within the blob's own size), else it is at rest."""
        previous = self._previous
        animals = []
        for (ys, xs, parent, merged), centre in zip(pieces, centroids, strict=True):
            if merged and parent is not None:
                # a piece is a guess shaped by the split: the animal is still best described
                # by its last whole mask, moving on as it was when it went in
                animals.append(Animal(parent.ys, parent.xs, parent.centroid, parent.velocity,
                                      parent.age + 1))
                continue
            if parent is None and previous:
                near = np.array([np.hypot(*(a.centroid - centre)) for a in previous])
                size = np.hypot(np.ptp(xs) + 1, np.ptp(ys) + 1)
                parent = previous[int(near.argmin())] if near.min() <= size else None
            velocity = (centre - parent.centroid) if parent is not None else np.zeros(2)
            animals.append(Animal(ys, xs, centre.astype(np.float64), velocity))
        self._previous = animals

    def _animals_per_blob(self, areas: np.ndarray, model: BackgroundModel) -> np.ndarray:
        """How many animals each blob holds: its area in animals, then, when the count is
        known, blobs that clearly hold more than they were given take the missing ones."""
        if not len(areas) or model.single_area <= 0 or not self.options.split:
            return np.ones(len(areas), np.int64)
        ratio = areas / model.single_area
        parts = np.maximum(np.round(ratio), 1).astype(np.int64)
        if model.count <= 0:
            return parts
        # a blob is "clearly more" beyond one animal's natural spread of areas
        tolerance = 1 + max(3 * model.area_spread, 0.1)
        while parts.sum() < model.count:
            load = ratio / parts
            j = int(np.argmax(load))
            if load[j] <= tolerance:
                break
            parts[j] += 1
        while parts.sum() > model.count and (parts > 1).any():
            load = np.where(parts > 1, ratio / parts, np.inf)
            parts[int(np.argmin(load))] -= 1
        return parts

    def _previous_blobs(self, blobs: list[Blob], size: tuple[int, int]) -> list[int]:
        """For each of the previous frame's animals, the blob its predicted mask overlaps most
        (-1: none). Overlap, not the predicted centroid: a thin, curved animal's centroid can
        lie off its own body."""
        if not self._previous or not blobs:
            return [-1] * len(self._previous)
        h, w = size
        canvas = np.zeros((h, w), np.int32)  # blob index + 1 at each blob pixel
        for index, blob in enumerate(blobs):
            canvas[blob.ys, blob.xs] = index + 1
        owners = []
        for animal in self._previous:
            py, px, _ = animal.predicted()
            inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
            hits = canvas[py[inside], px[inside]]
            hits = hits[hits > 0]
            owners.append(int(np.bincount(hits).argmax()) - 1 if hits.size else -1)
        return owners

    def summary(self) -> dict:
        if self.model is None:
            return {}
        return {**self.model.summary(), "fit_s": round(self.fit_seconds, 3)}


@register_source("background", BackgroundOptions,
                 "static camera: animals against a background model of the clip (lab arenas)")
def _build(options: SourceOptions, context: SourceContext) -> BackgroundSource:
    assert isinstance(options, BackgroundOptions)
    return BackgroundSource(options, num_objects=context.num_objects)


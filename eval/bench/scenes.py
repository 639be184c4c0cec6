"""Synthetic benchmark scenes: look-alike animals that wander out of the frame and come back.

Seen from above, each animal is a woolly body with a darker head, on a textured meadow with
sensor noise. The world is wider (and a little taller) than the camera's view, so animals leave
through one border and re-enter, often through another, which is exactly where SAM2 masklets lose
identities. Animals differ only slightly (wool tone, head colour, size), as real sheep do.

Everything is a pure function of the :class:`SceneSpec` (seed included): the same spec gives the
same bytes, so benchmark numbers are reproducible. Ground truth is exact: the ID map is painted
with the same shapes, in the same depth order, as the image, so occluded parts are not labelled.
"""

from __future__ import annotations

import configparser
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from samtrack.pipeline.core.formats import format_mot_rows, write_id_map, write_text_atomic
from samtrack.pipeline.core.frames import FrameObjects


@dataclass(frozen=True)
class SceneSpec:
    """Parameters of a generated scene. Sizes in pixels, speeds in pixels per frame."""

    num_animals: int = 2
    num_frames: int = 150
    width: int = 640
    height: int = 360
    seed: int = 0
    body_length: float = 64.0
    size_jitter: float = 0.08  # relative size difference between animals
    tone_jitter: float = 10.0  # wool tone difference (grey levels)
    speed: float = 5.0
    speed_jitter: float = 0.25  # relative
    turn_rate: float = 0.12  # max heading change per frame (radians)
    world_margin_x: float = 0.45  # world extends this fraction of the width beyond each side
    world_margin_y: float = 0.30
    exit_every: int = 2  # every n-th waypoint lies outside the view (0 = never leave)
    noise_sigma: float = 3.0
    shadow: float = 0.18  # darkness of the soft shadow under each animal (0 = none)
    fps: float = 25.0

    def __post_init__(self) -> None:
        if not 1 <= self.num_animals <= 64:
            raise ValueError(f"num_animals must be 1..64, got {self.num_animals}")
        if self.num_frames < 1 or self.width < 32 or self.height < 32:
            raise ValueError("scene must have >= 1 frame and be at least 32x32")


@dataclass
class Animal:
    identity: int
    length: float
    width: float
    wool_bgr: tuple[float, float, float]
    head_bgr: tuple[float, float, float]
    speed: float
    positions: np.ndarray = field(repr=False)  # (T, 2) x, y
    headings: np.ndarray = field(repr=False)  # (T,)


def _meadow(spec: SceneSpec, rng: np.random.Generator) -> np.ndarray:
    """Textured grass: smooth patches of tone plus fine blades, BGR uint8."""
    h, w = spec.height, spec.width
    coarse = cv2.resize(rng.normal(0, 1, (h // 40 + 2, w // 40 + 2)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)
    base = np.array([60, 120, 80], dtype=np.float32)  # BGR green
    img = base[None, None, :] + coarse[..., None] * np.array([8, 16, 10], np.float32) \
        + fine[..., None] * np.array([14, 22, 14], np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _waypoint(spec: SceneSpec, rng: np.random.Generator, outside: bool, length: float):
    w, h = spec.width, spec.height
    if not outside:
        return np.array([rng.uniform(0.12 * w, 0.88 * w), rng.uniform(0.18 * h, 0.82 * h)])
    # Far enough past a border that the whole body leaves the view.
    gap = 1.6 * length
    border = rng.choice(["left", "right", "top", "bottom"], p=[0.35, 0.35, 0.15, 0.15])
    if border == "left":
        return np.array([-rng.uniform(gap, max(gap + 1, spec.world_margin_x * w)),
                         rng.uniform(0.15 * h, 0.85 * h)])
    if border == "right":
        return np.array([w + rng.uniform(gap, max(gap + 1, spec.world_margin_x * w)),
                         rng.uniform(0.15 * h, 0.85 * h)])
    y_out = rng.uniform(gap, max(gap + 1, spec.world_margin_y * h))
    return np.array([rng.uniform(0.15 * w, 0.85 * w), -y_out if border == "top" else h + y_out])


def _trajectory(spec: SceneSpec, rng: np.random.Generator, length: float, speed: float):
    """Steer towards waypoints with a bounded turn rate: smooth, animal-like paths."""
    pos = np.array([rng.uniform(0.2 * spec.width, 0.8 * spec.width),
                    rng.uniform(0.25 * spec.height, 0.75 * spec.height)])
    heading = rng.uniform(-math.pi, math.pi)
    # Start the waypoint count at a random phase so animals do not all leave at once.
    count = int(rng.integers(1, max(spec.exit_every, 1) + 1))
    target = _waypoint(spec, rng, spec.exit_every > 0 and count % spec.exit_every == 0, length)
    # A waypoint inside the turning circle would be orbited forever: count it reached sooner.
    reach = max(2 * speed, 1.5 * speed / spec.turn_rate)
    positions = np.zeros((spec.num_frames, 2))
    headings = np.zeros(spec.num_frames)
    for t in range(spec.num_frames):
        positions[t], headings[t] = pos, heading
        delta = target - pos
        if np.hypot(*delta) < reach:
            count += 1
            outside = spec.exit_every > 0 and count % spec.exit_every == 0
            target = _waypoint(spec, rng, outside, length)
            delta = target - pos
        want = math.atan2(delta[1], delta[0])
        turn = (want - heading + math.pi) % (2 * math.pi) - math.pi
        heading += float(np.clip(turn, -spec.turn_rate, spec.turn_rate))
        step = speed * (1.0 + 0.15 * math.sin(0.21 * t + length))  # gait rhythm
        pos = pos + step * np.array([math.cos(heading), math.sin(heading)])
    return positions, headings


def make_animals(spec: SceneSpec) -> list[Animal]:
    rng = np.random.default_rng([spec.seed, 1])
    animals = []
    for k in range(spec.num_animals):
        scale = 1.0 + rng.uniform(-spec.size_jitter, spec.size_jitter)
        length = spec.body_length * scale
        tone = 205 + rng.uniform(-spec.tone_jitter, spec.tone_jitter)
        wool = (tone - 8, tone, tone + 4)  # BGR, slightly warm
        head_grey = rng.uniform(25, 70)
        head = (head_grey, head_grey + rng.uniform(0, 12), head_grey + rng.uniform(0, 22))
        speed = spec.speed * (1.0 + rng.uniform(-spec.speed_jitter, spec.speed_jitter))
        positions, headings = _trajectory(spec, rng, length, speed)
        animals.append(Animal(k + 1, length, 0.55 * length, wool, head, speed, positions,
                              headings))
    return animals


def _draw_animal(img: np.ndarray | None, id_map: np.ndarray | None, animal: Animal, t: int,
                 shadow: float) -> None:
    x, y = animal.positions[t]
    angle = math.degrees(animal.headings[t])
    c, s = math.cos(animal.headings[t]), math.sin(animal.headings[t])
    body_axes = (int(animal.length / 2), int(animal.width / 2))
    head_center = (x + c * animal.length * 0.52, y + s * animal.length * 0.52)
    head_axes = (int(animal.length * 0.17), int(animal.width * 0.30))
    centre = (round(x), round(y))
    hc = (round(head_center[0]), round(head_center[1]))
    if img is not None:
        if shadow > 0:
            layer = img.copy()
            cv2.ellipse(layer, (centre[0] + 5, centre[1] + 6), body_axes, angle, 0, 360,
                        (0, 0, 0), -1, cv2.LINE_AA)
            cv2.addWeighted(layer, shadow, img, 1 - shadow, 0, dst=img)
        cv2.ellipse(img, centre, body_axes, angle, 0, 360, animal.wool_bgr, -1, cv2.LINE_AA)
        # wool curls: a few slightly darker blobs fixed in the body frame
        for u, v in ((-0.25, -0.2), (0.05, 0.25), (0.2, -0.15), (-0.1, 0.05)):
            px = x + c * u * animal.length - s * v * animal.width
            py = y + s * u * animal.length + c * v * animal.width
            tone = tuple(ch - 14 for ch in animal.wool_bgr)
            cv2.circle(img, (int(px), int(py)), max(2, int(animal.width * 0.16)), tone, -1,
                       cv2.LINE_AA)
        cv2.ellipse(img, hc, head_axes, angle, 0, 360, animal.head_bgr, -1, cv2.LINE_AA)
    if id_map is not None:
        cv2.ellipse(id_map, centre, body_axes, angle, 0, 360, animal.identity, -1, cv2.LINE_8)
        cv2.ellipse(id_map, hc, head_axes, angle, 0, 360, animal.identity, -1, cv2.LINE_8)


class Scene:
    """A generated clip: iterate frames with :meth:`frames`, or save with :meth:`write`."""

    def __init__(self, spec: SceneSpec) -> None:
        self.spec = spec
        self.animals = make_animals(spec)
        self.background = _meadow(spec, np.random.default_rng([spec.seed, 0]))

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(image BGR uint8, id_map uint16)`` per frame, streaming."""
        spec = self.spec
        noise_rng = np.random.default_rng([spec.seed, 2])
        for t in range(spec.num_frames):
            img = self.background.copy()
            id_map = np.zeros((spec.height, spec.width), dtype=np.uint16)
            # Depth order: farther (smaller y) first, so nearer animals occlude them.
            for animal in sorted(self.animals, key=lambda a: a.positions[t][1]):
                _draw_animal(img, id_map, animal, t, spec.shadow)
            if spec.noise_sigma > 0:
                noise = noise_rng.normal(0, spec.noise_sigma, img.shape).astype(np.float32)
                img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
            yield img, id_map

    def ground_truth(self) -> Iterator[FrameObjects]:
        """Ground-truth objects per frame (``source_ids`` = identity)."""
        for t, (_, id_map) in enumerate(self.frames()):
            yield FrameObjects.from_id_map(id_map, frame_index=t, frame_name=f"{t:06d}")

    def write(self, folder: str | Path, name: str | None = None) -> Path:
        """Save as a MOTChallenge-style sequence folder::

            img1/000000.jpg...    frames (JPEG, quality 95)
            gt/masks/000000.png   16-bit ground-truth ID maps
            gt/gt.txt             boxes of the visible parts: frame,id,x,y,w,h,1,1,1 (1-based)
            seqinfo.ini           name, length, size, fps, and the generator's spec
        """
        folder = Path(folder)
        (folder / "img1").mkdir(parents=True, exist_ok=True)
        (folder / "gt" / "masks").mkdir(parents=True, exist_ok=True)
        rows = []
        for t, (img, id_map) in enumerate(self.frames()):
            cv2.imwrite(str(folder / "img1" / f"{t:06d}.jpg"), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            write_id_map(folder / "gt" / "masks" / f"{t:06d}.png", id_map)
            objects = FrameObjects.from_id_map(id_map, frame_index=t)
            for oid, (x1, y1, x2, y2) in zip(objects.source_ids, objects.boxes, strict=True):
                rows.append((t + 1, int(oid), x1, y1, x2 - x1, y2 - y1, 1.0))
        text = format_mot_rows(rows).replace(",-1,-1,-1\n", ",1,1\n")
        write_text_atomic(folder / "gt" / "gt.txt", text)
        ini = configparser.ConfigParser()
        ini.optionxform = str  # keep MOTChallenge's key case
        ini["Sequence"] = {
            "name": name or folder.name, "imDir": "img1", "frameRate": str(self.spec.fps),
            "seqLength": str(self.spec.num_frames), "imWidth": str(self.spec.width),
            "imHeight": str(self.spec.height), "imExt": ".jpg",
        }
        ini["Generator"] = {k: str(v) for k, v in asdict(self.spec).items()}
        with (folder / "seqinfo.ini").open("w") as fh:
            ini.write(fh)
        return folder

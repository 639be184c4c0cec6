"""Look-alikes that differ only in texture: two elongated bodies of one size, shape and grey-level
histogram (half their pixels dark, half light), one striped across its body, one spotted in a
checkerboard. A colour histogram sees the same animal twice; the pattern tells them apart."""

from __future__ import annotations

import cv2
import numpy as np

from samtrack.pipeline.core.frames import FrameObjects

SIZE = (160, 320)  # h, w
LENGTH, WIDTH = 44, 16  # body, px
DARK, LIGHT = 70, 170


def _pattern(kind: str) -> np.ndarray:
    """The body's texture in its own frame (rows across, columns along the body)."""
    ys, xs = np.mgrid[0:WIDTH, 0:LENGTH]
    across = 0 if kind == "stripes" else ys // 4  # stripes across the body, or a checkerboard
    on = ((xs // 4) + across) % 2 == 0
    return np.where(on, DARK, LIGHT).astype(np.uint8)


def draw(image: np.ndarray, kind: str, centre: tuple[float, float], angle: float,
         ) -> np.ndarray:
    """Draw a body with its texture, turned by ``angle`` degrees; its mask."""
    h, w = image.shape[:2]
    body = _pattern(kind)
    shape = np.zeros((WIDTH, LENGTH), np.uint8)
    cv2.ellipse(shape, (LENGTH // 2, WIDTH // 2), (LENGTH // 2 - 1, WIDTH // 2 - 1), 0, 0, 360,
                1, -1)
    rot = cv2.getRotationMatrix2D((LENGTH / 2, WIDTH / 2), angle, 1.0)
    rot[0, 2] += centre[0] - LENGTH / 2
    rot[1, 2] += centre[1] - WIDTH / 2
    mask = cv2.warpAffine(shape, rot, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
    grey = cv2.warpAffine(body, rot, (w, h), flags=cv2.INTER_NEAREST)
    image[mask] = grey[mask][:, None]
    return mask


def views(kind: str, n: int, rng: np.random.Generator):
    """``n`` frames of one body alone at random places and turns: (image, objects) pairs."""
    out = []
    for t in range(n):
        image = np.full((*SIZE, 3), 120, np.uint8)
        image += rng.integers(0, 6, image.shape, dtype=np.uint8)
        centre = (float(rng.uniform(40, SIZE[1] - 40)), float(rng.uniform(40, SIZE[0] - 40)))
        mask = draw(image, kind, centre, float(rng.uniform(0, 360)))
        out.append((image, FrameObjects.from_masks(mask[None], frame_index=t)))
    return out


def crossing_clip(frames: int = 160, seed: int = 0, bounce: bool = False, meetings: int = 2):
    """Two textured look-alikes swimming left and right along one line, meeting (touching)
    ``meetings`` times, evenly spread: passing each other, or with ``bounce`` turning back
    where they met, so that where each was heading says the wrong thing. The mask source swaps
    their ids at every touch, as SAM2 does at a crossing, and while they touch it gives one
    mask for both. Returns (images, objects with source ids, true id of each row: 0 for the
    merged mask)."""
    rng = np.random.default_rng(seed)
    images, objects, truth = [], [], []
    touching_before = False
    swapped = False
    for t in range(frames):
        image = np.full((*SIZE, 3), 120, np.uint8)
        image += rng.integers(0, 6, image.shape, dtype=np.uint8)
        phase = np.pi * (t - frames / meetings / 2) / (frames / meetings)
        offset = 110 * (np.abs(np.sin(phase)) + 0.13 if bounce else np.sin(phase))
        x_a, x_b = SIZE[1] / 2 + offset, SIZE[1] / 2 - offset
        wobble = 6 * abs(np.cos(phase))  # closest when they meet
        a = draw(image, "stripes", (x_a, SIZE[0] / 2 - 9 + wobble), 5 * np.sin(t / 7))
        b = draw(image, "spots", (x_b, SIZE[0] / 2 + 9 - wobble), 180 + 5 * np.cos(t / 6))
        grown = cv2.dilate(a.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        touching = bool((grown & b).any())
        if touching and not touching_before:
            swapped = not swapped
        touching_before = touching
        ids = [2, 1] if swapped else [1, 2]
        images.append(image)
        if touching:  # the segmenter sees one blob while they touch
            objects.append(FrameObjects.from_masks((a | b)[None], frame_index=t,
                                                   source_ids=ids[:1]))
            truth.append([0])
            continue
        objects.append(FrameObjects.from_masks(np.stack([a & ~b, b]), frame_index=t,
                                               source_ids=ids))
        truth.append([1, 2])
    return images, objects, truth

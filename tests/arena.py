"""A small synthetic lab arena for the background source's tests: look-alike animals (ellipses)
on a textured floor, dark on light or light on dark, some resting for a third of the clip, two
that touch side by side, and a slow light drift."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SIZE = (200, 280)  # h, w
FRAMES = 45
AXES = (14, 6)  # half-length, half-width of an animal (px)


def animal_tracks() -> list[list[tuple[float, float, float]]]:
    """Per animal, per frame: (x, y, angle in degrees)."""
    rest = FRAMES // 3
    tracks = []
    # 0: rests for the first third, then walks right
    tracks.append([(50 + max(t - rest, 0) * 2.0, 50, 0) for t in range(FRAMES)])
    # 1 and 2: walk towards each other, touch side by side (frames 20-29), part again
    for sign, y in ((-1, 120), (1, 131)):
        path = []
        for t in range(FRAMES):
            # approach until frame 20, stay touching, then part vertically
            gap = max(0, t - 29) * 2.0
            x = 140 + sign * max(0, 20 - t) * 3.0
            path.append((x, y + (gap if sign > 0 else -gap), 0))
        tracks.append(path)
    return tracks


def render(polarity: str, drift: float = 20.0, seed: int = 0) -> tuple[list[np.ndarray],
                                                                      list[np.ndarray]]:
    """Frames (BGR) and, per frame, the true instance-ID map (1..3)."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    floor_level, animal_level = (170, 60) if polarity == "dark" else (50, 200)
    texture = cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 3)
    frames, truths = [], []
    for t in range(FRAMES):
        level = floor_level + drift * t / FRAMES
        image = np.full((h, w), level, np.float32) + texture
        truth = np.zeros((h, w), np.uint8)
        for k, track in enumerate(animal_tracks()):
            x, y, angle = track[t]
            cv2.ellipse(truth, (round(x), round(y)), AXES, angle, 0, 360, k + 1, -1)
        image[truth > 0] = animal_level + drift * t / FRAMES
        image += rng.normal(0, 2, (h, w))
        frames.append(cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
        truths.append(truth)
    return frames, truths


def write(folder: Path, polarity: str) -> tuple[Path, list[np.ndarray]]:
    frames, truths = render(polarity)
    folder.mkdir(parents=True, exist_ok=True)
    for t, image in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:06d}.png"), image)
    return folder, truths

"""Hand-built frames for tracker tests: discs of chosen colour at chosen places."""

from __future__ import annotations

import cv2
import numpy as np

from samtrack.pipeline.core.frames import FrameObjects

SIZE = (120, 200)  # h, w
BACKGROUND = (60, 120, 80)


def frame(t: int, objects: list[tuple[tuple[float, float], tuple[int, int, int], int]],
          radius: int = 10, size: tuple[int, int] = SIZE):
    """objects: ((x, y), BGR colour, source id). Returns (image, FrameObjects)."""
    image = np.zeros((*size, 3), np.uint8)
    image[:] = BACKGROUND
    masks = []
    for (x, y), colour, _ in objects:
        m = np.zeros(size, np.uint8)
        cv2.circle(m, (int(x), int(y)), radius, 1, -1)
        cv2.circle(image, (int(x), int(y)), radius, colour, -1)
        masks.append(m.astype(bool))
    stack = np.stack(masks) if masks else np.zeros((0, *size), bool)
    return image, FrameObjects.from_masks(stack, frame_index=t,
                                          source_ids=[s for _, _, s in objects])


RED, BLUE, GREEN = (40, 40, 220), (220, 60, 40), (40, 200, 40)

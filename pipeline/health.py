"""A plain health check at the end of every run: does the result look like tracking?

A run on unsuitable footage still ends "successfully" with plausible-looking files; the user
only finds out from the pictures, if they look. So each run ends by checking the symptoms that
mean the segmentation or the identities went wrong, and says so in plain words on the terminal
and in summary.json (``health``). Each limit is stated once, here, with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects

#: one mask over this fraction of the frame is a lighting change, a camera move or a table,
#: not an animal among several
LARGE_MASK_FRACTION = 0.25
#: more tracks than this many times the individuals: identities are fragmenting
TRACKS_PER_INDIVIDUAL = 2.0
#: more frames than this fraction without any mask, while nothing had left the view: the
#: objects are being missed
EMPTY_FRAME_FRACTION = 0.1
#: px: an object this near the frame's edge can leave the view there
BORDER = 3
#: sources that model a still camera's background
STILL_CAMERA_SOURCES = ("background", "motion")


@dataclass
class RunHealth:
    """Per-frame facts gathered while the run streams (no masks kept)."""

    frames: int = 0
    empty_frames: list[int] = field(default_factory=list)
    largest_fraction: float = 0.0
    largest_frame: int = -1
    _left_through_border: bool = False  # the last objects seen all touched the border

    def observe(self, objects: FrameObjects) -> None:
        self.frames += 1
        if not len(objects):
            # after every object went out through the border, an empty view is the scene
            if not self._left_through_border:
                self.empty_frames.append(objects.frame_index)
            return
        h, w = objects.image_size
        boxes = objects.boxes
        at_border = (boxes[:, 0] <= BORDER) | (boxes[:, 1] <= BORDER) | \
            (boxes[:, 2] >= w - BORDER) | (boxes[:, 3] >= h - BORDER)
        self._left_through_border = bool(at_border.all())
        box_fraction = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (h * w)
        big = np.flatnonzero(box_fraction > max(LARGE_MASK_FRACTION, self.largest_fraction))
        if len(big):  # only then count pixels: a box bounds its mask's area
            fraction = float(objects[big].areas.max()) / (h * w)
            if fraction > self.largest_fraction:
                self.largest_fraction, self.largest_frame = fraction, objects.frame_index

    def check(self, *, tracks: int, individuals: int | None, source: str,
              camera: str | None) -> list[str]:
        """The warnings this run deserves (empty: nothing looks wrong)."""
        warnings = []
        if self.largest_fraction > LARGE_MASK_FRACTION:
            warnings.append(f"frame {self.largest_frame}: one mask covers "
                            f"{self.largest_fraction:.0%} of the frame (a light change, a "
                            "moving camera or the scene itself, not an object)")
        if individuals and tracks > TRACKS_PER_INDIVIDUAL * individuals:
            warnings.append(f"{tracks} tracks for {individuals} individuals: identities are "
                            "fragmenting (give tracker.num_identities, or try mode offline)")
        if camera == "moving" and source in STILL_CAMERA_SOURCES:
            warnings.append(f"the camera moves, but source '{source}' models a still camera's "
                            "background: expect masks on the scenery (use a SAM2 source)")
        if self.frames and len(self.empty_frames) > EMPTY_FRAME_FRACTION * self.frames:
            first = self.empty_frames[0]
            warnings.append(f"{len(self.empty_frames)} of {self.frames} frames have no mask "
                            f"although nothing left through the border (first: frame {first}): "
                            "objects are being missed")
        return warnings

    def summary(self, warnings: list[str]) -> dict:
        return {"warnings": warnings, "frames_without_masks": len(self.empty_frames),
                "largest_mask_fraction": round(self.largest_fraction, 4)}

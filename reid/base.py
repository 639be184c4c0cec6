"""What every tracker offers: ``update`` per frame, ``reset``, ``finalize``.

Why a base class: the runner, the live and batch paths and library users drive any configured
tracker (the re-identification tracker, the plain IoU baseline) the same way, and
``Tracker.from_config`` gives the one the YAML describes, embedder and all.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samtrack.pipeline.core.errors import ConfigError
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import ColorOrder
from samtrack.reid.config import TrackerConfig
from samtrack.reid.embedders.learned import LearnedEmbedder


@dataclass
class TrackResult:
    """A finished clip: every recorded frame with its final identities (masks kept as RLE; none
    when the tracker was built with ``record=False``), the identity repairs (``summary.json``'s
    ``repairs``), how identities were decided and the tracker's time per stage."""

    frames: list[FrameObjects] = field(default_factory=list)
    repairs: list[dict] = field(default_factory=list)
    identities: dict = field(default_factory=dict)  # how identities were decided (the engine's)
    timing: dict[str, float] = field(default_factory=dict)  # seconds per stage of the tracker
    # the representation learned from the clip, where it decided identities (saved by a run
    # as learned.pt: tracker.embedder learned)
    representation: LearnedEmbedder | None = None

    @property
    def track_ids(self) -> list[int]:
        return sorted({int(i) for f in self.frames for i in f.track_ids if i > 0})

    def by_frame(self) -> dict[int, FrameObjects]:
        return {f.frame_index: f for f in self.frames}


class Tracker(ABC):
    """``update(objects, image) -> objects with track_ids``, one call per frame in order.

    ``record``: keep every output frame (as RLE) for :meth:`finalize`; a streaming user that
    writes each frame as it comes (``samtrack run`` online) turns it off so memory stays flat.
    """

    config: TrackerConfig
    record: bool

    @classmethod
    def from_config(cls, path: str | Path, *, device: str = "cpu", record: bool = True,
                    ) -> Tracker:
        """The tracker a YAML file describes: its ``tracker:`` section (a full run config), or
        the whole file as tracker options. Called on a subclass, the file must describe that
        kind (``ReidTracker.from_config`` of an ``type: iou`` file is an error)."""
        config = TrackerConfig.from_file(path)
        tracker = config.build(device=device, record=record)
        if not isinstance(tracker, cls):
            raise ConfigError(f"{path}: tracker.type {config.type!r} builds a "
                              f"{type(tracker).__name__}, not a {cls.__name__} (use "
                              "Tracker.from_config for any kind)")
        return tracker

    @staticmethod
    def numbered(objects: FrameObjects, frames_seen: int) -> FrameObjects:
        """``objects`` with a frame index: its own, or ``frames_seen`` when it has none (-1),
        so a caller feeding masks frame by frame need not count frames."""
        if objects.frame_index >= 0:
            return objects
        return dataclasses.replace(objects, frame_index=frames_seen)

    @abstractmethod
    def update(self, objects: FrameObjects, image: np.ndarray | None = None, *,
               color: ColorOrder = "bgr") -> FrameObjects:
        """Identities for one frame's objects (``track_ids``; -1: not reported).

        ``image``: the frame the masks were found in, for appearance; ``color`` its channel
        order (``"rgb"`` for frames from SAM2, PIL or supervision; ``"bgr"`` from OpenCV)."""

    @property
    def needs_whole_clip(self) -> bool:
        """Identities are final only after :meth:`finalize` (outputs must wait for it)."""
        return False

    def velocity(self, track_id: int) -> tuple[float, float] | None:
        """Pixels per frame of the identity's object as the motion model has it (None:
        unknown), for callers that carry masks between segmented frames."""
        return None

    @abstractmethod
    def reset(self) -> None:
        """Forget everything: the next ``update`` starts a new clip."""

    @abstractmethod
    def finalize(self, *, progress: bool = False) -> TrackResult:
        """The whole clip's result; offline re-linking happens here when configured
        (``progress``: a bar on stderr for its steps)."""

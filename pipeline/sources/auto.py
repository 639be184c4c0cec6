"""``auto`` source (the default): looks at the clip and picks the source that fits it.

Most users run the default first, on footage nobody on the project has seen, so the default
must not assume a kind of footage. A clip from a still camera over a stable scene (a lab
arena, a well, a tank: what idtracker.ai and TRex users film) is segmented best against a
model of its empty background (``background``); anything else (a panning or shaking camera, a
scene that keeps changing) falls back to adaptive background subtraction (``motion``), which
at least follows what moves. The choice and its reason are the run's first line and go to
summary.json.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import VideoFrame, VideoReader
from samtrack.pipeline.sources.background import BackgroundOptions, BackgroundSource
from samtrack.pipeline.sources.base import (
    MaskSource,
    SourceBase,
    SourceContext,
    SourceOptions,
    register_source,
)
from samtrack.pipeline.sources.motion import MotionOptions, MotionSource


class AutoOptions(SourceOptions):
    """Options of the ``auto`` source (``source.auto.*``); the picked source reads its own
    section (``source.background``, ``source.motion``)."""

    max_changed_fraction: float = Field(
        default=0.25, gt=0, le=1, description="A still camera's scene is stable when, in a "
        "typical sampled frame, at most this fraction of the arena differs from the "
        "background model; more (light changes, water, a crowd) picks motion.")


class AutoSource(SourceBase):
    """Picks ``background`` or ``motion`` for the clip; see the module docstring."""

    name = "auto"

    def __init__(self, options: AutoOptions, context: SourceContext) -> None:
        self.options = options
        self.context = context
        self.chosen: MaskSource | None = None
        self.reason = ""
        self.camera: str | None = None

    def prepare(self, video: VideoReader) -> str | None:
        if self.chosen is not None:
            return None
        if len(video) == 0:  # a live stream: nothing to look ahead at
            motion_options = self.context.options.get("motion") or MotionOptions()
            assert isinstance(motion_options, MotionOptions)
            self.chosen = MotionSource(motion_options)
            self.reason = "a live stream: no frames ahead to model the background from"
            return f"source auto -> motion ({self.reason})"
        background_options = self.context.options.get("background") or BackgroundOptions()
        assert isinstance(background_options, BackgroundOptions)
        background = BackgroundSource(background_options, self.context.num_objects)
        model = background.fit(video)
        self.camera = model.camera
        if model.count == 0:
            self.reason = ("the background model found no animal in the sampled frames "
                           "(nothing moved, or everything sat still)")
        elif model.camera == "moving":
            self.reason = "the camera moves (frames shift against each other)"
        elif model.changed_fraction > self.options.max_changed_fraction:
            self.reason = (f"the scene is not stable ({model.changed_fraction:.0%} of a typical "
                           "frame differs from the background)")
        if self.reason:
            motion_options = self.context.options.get("motion") or MotionOptions()
            assert isinstance(motion_options, MotionOptions)
            self.chosen = MotionSource(motion_options)
        else:
            self.chosen = background
            self.reason = "still camera, stable background"
        detail = self.chosen.prepare(video)
        return f"source auto -> {self.chosen.name} ({self.reason})" + \
            (f"; {detail}" if detail else "")

    def frames(self, video: VideoReader) -> Iterator[tuple[VideoFrame, FrameObjects]]:
        self.prepare(video)
        assert self.chosen is not None
        yield from self.chosen.frames(video)

    def summary(self) -> dict:
        if self.chosen is None:
            return {}
        details = {"chosen": self.chosen.name, "why": self.reason, **self.chosen.summary()}
        if self.camera is not None:  # the background model's look at the camera decided
            details["camera"] = self.camera
        return details


@register_source("auto", AutoOptions,
                 "default: background for a still camera over a stable scene, else motion")
def _build(options: SourceOptions, context: SourceContext) -> AutoSource:
    assert isinstance(options, AutoOptions)
    return AutoSource(options, context)

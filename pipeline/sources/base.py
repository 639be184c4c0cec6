"""The mask-source interface and its registry.

A mask source turns a video into a stream of ``(VideoFrame, FrameObjects)`` pairs. It receives
the whole :class:`~pipeline.video.VideoReader` rather than single frames because some sources
need more than one frame at a time (SAM2's video predictor works on windows of frames; the
background subtractor primes itself on frames sampled across the clip).

Sources register themselves by name together with a pydantic model of their options, so the
config loader can validate ``source.<name>.*`` keys without knowing any source in advance. New
sources (the SAM2 ones, user plug-ins) only need to call :func:`register_source`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.registry import Registry
from samtrack.pipeline.core.video import VideoFrame, VideoReader


class SourceOptions(BaseModel):
    """Base class of every source's options: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # as StrictModel


class MaskSource(Protocol):
    """Anything that yields the objects of each frame of a video."""

    name: str

    def prepare(self, video: VideoReader) -> str | None:
        """Look at the clip before streaming it (a background model, a choice of method);
        returns one line saying what was decided, or None."""
        ...

    def frames(self, video: VideoReader) -> Iterator[tuple[VideoFrame, FrameObjects]]:
        """Yield each decoded frame with its objects, in order."""
        ...

    def summary(self) -> dict:
        """What the source derived from the clip, for summary.json (empty when nothing)."""
        ...


class SourceBase:
    """Defaults of the optional parts of :class:`MaskSource`: nothing to prepare or report."""

    name = "source"

    def prepare(self, video: VideoReader) -> str | None:
        return None

    def summary(self) -> dict:
        return {}


@dataclass(frozen=True)
class SourceContext:
    """Run-wide settings a source may need besides its own options."""

    device: str = "auto"
    #: the options of every registered source by name (``auto`` builds the one it picks)
    options: Mapping[str, SourceOptions] = field(default_factory=dict)
    #: animals known to be in view (``tracker.num_identities``): sources that can split
    #: touching animals use it; None: unknown
    num_objects: int | None = None


SourceFactory = Callable[[SourceOptions, SourceContext], MaskSource]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    options: type[SourceOptions]
    factory: SourceFactory
    summary: str


SOURCES: Registry[SourceSpec] = Registry("source", "source.name")


def register_source(name: str, options: type[SourceOptions], summary: str):
    """Decorator: register ``factory(options, context) -> MaskSource`` under ``name``."""

    def wrap(factory: SourceFactory) -> SourceFactory:
        SOURCES.register(name, SourceSpec(name, options, factory, summary))
        return factory

    return wrap


def registered_sources() -> dict[str, SourceSpec]:
    return dict(SOURCES.items())


def build_source(name: str, options: SourceOptions, context: SourceContext) -> MaskSource:
    return SOURCES.get(name).factory(options, context)

"""Mask sources. Importing this package registers the built-in ones."""

from samtrack.pipeline.sources import (  # noqa: F401  (registration)
    auto,
    background,
    masks,
    motion,
    sam2_sources,
)
from samtrack.pipeline.sources.base import (
    MaskSource,
    SourceContext,
    SourceOptions,
    build_source,
    register_source,
    registered_sources,
)

__all__ = [
    "MaskSource",
    "SourceContext",
    "SourceOptions",
    "build_source",
    "register_source",
    "registered_sources",
]

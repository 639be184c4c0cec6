"""``sam2``: features the mask source attached to each object (SAM2's image encoder)."""

from __future__ import annotations

import numpy as np

from samtrack.pipeline.core.errors import ConfigError
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.embedders.base import EmbedderSettings, l2_normalize, register_embedder


class SourceFeatureEmbedder:
    """Uses the embeddings the mask source attached (SAM2 image-encoder features)."""

    name = "sam2"
    dim = 0

    def embed(self, image: np.ndarray, objects: FrameObjects) -> np.ndarray:
        if objects.embeddings is None:
            raise ConfigError("tracker.embedder: 'sam2' needs a SAM2 source that exposes "
                              "image-encoder features (source.sam2-video.expose_features: true)")
        return l2_normalize(objects.embeddings)


def _build(argument: str | None, settings: EmbedderSettings) -> SourceFeatureEmbedder:
    return SourceFeatureEmbedder()


register_embedder("sam2", _build)

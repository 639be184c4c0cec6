"""Appearance embedders. Importing this package registers the built-in ones; a new embedder is
one module here that calls :func:`register_embedder`, plus its import below."""

from samtrack.reid.embedders import (  # noqa: F401 (registration)
    cnn,
    histogram,
    learned,
    source_features,
)
from samtrack.reid.embedders.base import (
    EMBEDDERS,
    CombinedEmbedder,
    Embedder,
    EmbedderSettings,
    aligned_crops,
    build_embedder,
    check_embedder_name,
    embedder_names,
    l2_normalize,
    mask_crops,
    register_embedder,
)
from samtrack.reid.embedders.cnn import MobileNetV2Embedder, TorchvisionEmbedder
from samtrack.reid.embedders.histogram import HistogramEmbedder
from samtrack.reid.embedders.source_features import SourceFeatureEmbedder

__all__ = [
    "EMBEDDERS",
    "CombinedEmbedder",
    "Embedder",
    "EmbedderSettings",
    "HistogramEmbedder",
    "MobileNetV2Embedder",
    "SourceFeatureEmbedder",
    "TorchvisionEmbedder",
    "aligned_crops",
    "build_embedder",
    "check_embedder_name",
    "embedder_names",
    "l2_normalize",
    "mask_crops",
    "register_embedder",
]

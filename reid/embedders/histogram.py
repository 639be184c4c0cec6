"""``histogram``: the weight-free default embedder."""

from __future__ import annotations

import cv2
import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.embedders.base import EmbedderSettings, l2_normalize, register_embedder


class HistogramEmbedder:
    """HSV histogram inside the mask (H x S, plus V) and shape statistics; no weights.

    Shape terms (log area, elongation) separate animals of slightly different size; they are
    scaled down so colour dominates.
    """

    name = "histogram"

    def __init__(self, h_bins: int = 16, s_bins: int = 8, v_bins: int = 8,
                 shape_weight: float = 0.3) -> None:
        self.bins = (h_bins, s_bins, v_bins)
        self.shape_weight = shape_weight
        self.dim = h_bins * s_bins + v_bins + 2

    def embed(self, image: np.ndarray, objects: FrameObjects) -> np.ndarray:
        if len(objects) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = np.zeros((len(objects), self.dim), np.float32)
        hb, sb, vb = self.bins
        for i, (mask, (x1, y1)) in enumerate(objects.crops):
            if not mask.size:
                continue
            # colour-convert each object's box only: a few objects in a large frame
            patch = cv2.cvtColor(image[y1:y1 + mask.shape[0], x1:x1 + mask.shape[1]],
                                 cv2.COLOR_BGR2HSV)
            m = mask.astype(np.uint8)
            hs = cv2.calcHist([patch], [0, 1], m, [hb, sb], [0, 180, 0, 256]).ravel()
            v = cv2.calcHist([patch], [2], m, [vb], [0, 256]).ravel()
            total = max(float(m.sum()), 1.0)
            # square root (Hellinger) so that cosine distance behaves like Bhattacharyya
            colour = np.sqrt(np.concatenate([hs, v]) / total) / np.sqrt(2.0)
            elong = 0.0
            if total > 2:
                # the pixel covariance's eigenvalues from the central moments (as np.cov with
                # its n - 1 normalisation, so the value is the same)
                mo = cv2.moments(m, binaryImage=True)
                scale = 1.0 / (total - 1)
                a, b, c = mo["mu20"] * scale, mo["mu11"] * scale, mo["mu02"] * scale
                root = np.sqrt(((a - c) / 2) ** 2 + b * b)
                small, large = (a + c) / 2 - root, (a + c) / 2 + root
                elong = float(np.sqrt(max(small, 1e-6) / max(large, 1e-6)))
            shape = np.array([np.log1p(total) / 10.0, elong], np.float32) * self.shape_weight
            out[i] = np.concatenate([colour, shape])
        return l2_normalize(out)


def _build(argument: str | None, settings: EmbedderSettings) -> HistogramEmbedder:
    return HistogramEmbedder()


register_embedder("histogram", _build)

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
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        out = np.zeros((len(objects), self.dim), np.float32)
        masks = objects.masks
        hb, sb, vb = self.bins
        for i, (x1, y1, x2, y2) in enumerate(objects.boxes.astype(int)):
            if x2 <= x1 or y2 <= y1:
                continue
            patch = hsv[y1:y2, x1:x2]
            m = masks[i, y1:y2, x1:x2].astype(np.uint8)
            hs = cv2.calcHist([patch], [0, 1], m, [hb, sb], [0, 180, 0, 256]).ravel()
            v = cv2.calcHist([patch], [2], m, [vb], [0, 256]).ravel()
            total = max(float(m.sum()), 1.0)
            # square root (Hellinger) so that cosine distance behaves like Bhattacharyya
            colour = np.sqrt(np.concatenate([hs, v]) / total) / np.sqrt(2.0)
            ys, xs = np.nonzero(m)
            elong = 0.0
            if xs.size > 2:
                cov = np.cov(np.stack([xs, ys]).astype(np.float32))
                ev = np.linalg.eigvalsh(cov)
                elong = float(np.sqrt(max(ev[0], 1e-6) / max(ev[1], 1e-6)))
            shape = np.array([np.log1p(total) / 10.0, elong], np.float32) * self.shape_weight
            out[i] = np.concatenate([colour, shape])
        return l2_normalize(out)


def _build(argument: str | None, settings: EmbedderSettings) -> HistogramEmbedder:
    return HistogramEmbedder()


register_embedder("histogram", _build)

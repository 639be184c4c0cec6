"""How different distinct objects look in *this* video: the scale a re-identification needs.

Why: an appearance distance means nothing on its own. Between two look-alike sheep a colour
histogram may differ by 0.03 while clean views of one sheep differ by 0.005; between pedestrians
in dark coats the same histogram differs by 0.02 to 0.07 for *different* people. A fixed gate
that lets a returning sheep back in (it must, as its first views are half-visible) lets any
passer-by take a departed pedestrian's identity. The video itself says which case it is: objects
visible at the same time are different objects, so the distances between them sample "how far
apart distinct objects are here". A returning object takes an old identity on appearance only if
it is clearly closer than that.
"""

from __future__ import annotations

import numpy as np


class SceneContrast:
    """A rolling sample of each clean view's distance to the nearest *other* visible identity,
    and to its own.

    ``observe`` takes one frame's clean embeddings and the running-average embeddings of the
    identities they belong to; ``scale`` is a low quantile of the first sample (the hard
    negatives: the closest that two distinct objects came), ``own_scale`` the matching high
    quantile of the second (how far an object's own views stray from it); ``None`` until enough
    has been seen.
    """

    def __init__(self, size: int = 2000, quantile: float = 0.1, min_samples: int = 30) -> None:
        self.size, self.quantile, self.min_samples = size, quantile, min_samples
        self._values = np.zeros(size, np.float32)
        self._own = np.zeros(size, np.float32)
        self._count = 0  # values ever added (ring position = count % size)

    def observe(self, embeddings: np.ndarray, identity_means: np.ndarray) -> None:
        """Row i of both arrays belongs to one object (a different identity per row)."""
        n = len(embeddings)
        if n < 2:
            return
        distance = 1.0 - embeddings @ identity_means.T
        slots = (self._count + np.arange(n)) % self.size
        self._own[slots] = np.diag(distance)
        np.fill_diagonal(distance, np.inf)
        self._values[slots] = distance.min(axis=1)
        self._count += n

    @property
    def samples(self) -> int:
        return min(self._count, self.size)

    def scale(self) -> float | None:
        if self.samples < self.min_samples:
            return None
        return float(np.quantile(self._values[:self.samples], self.quantile))

    def own_scale(self) -> float | None:
        """Why: on look-alikes (larvae, flies) distinct objects come closer than one object's
        views do to its own mean, so a fraction of ``scale`` lies below what the object itself
        shows, and no returning object could ever pass it."""
        if self.samples < self.min_samples:
            return None
        return float(np.quantile(self._own[:self.samples], 1.0 - self.quantile))

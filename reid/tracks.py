"""Tracklets (who moved where, continuously) and identities (who they are).

Why two things: motion is reliable while an object stays in view, and worthless once it leaves;
appearance is what tells a returning sheep apart, and it is worthless on the few half-visible
frames at the border. So a *tracklet* follows one object continuously (Kalman filter, last mask)
and ends when the object leaves or stays lost; an *identity* is the label with its appearance
gallery, handed from tracklet to tracklet. A returning object starts a new tracklet that is given
an identity provisionally and verified once it is fully in view; offline linking re-assigns
tracklets to identities globally.

Tracklet life cycle::

    tentative --(min_hits)--> active --(unmatched)--> lost --(motion_horizon)--> ended
                                 \\--(unmatched, last seen at a border)----------> ended (exited)

Identity states: visible (has an active or lost tracklet) or absent (exited through a border,
or lost); an absent identity remembers where and when it was last seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from reid.motion import BoxKalman


class TrackState(str, Enum):
    TENTATIVE = "tentative"
    ACTIVE = "active"
    LOST = "lost"
    ENDED = "ended"


@dataclass
class Gallery:
    """A running-average embedding plus a bank of the last K distinct embeddings.

    Why both: the average is stable but blurs poses together; the bank keeps distinct poses, so a
    returning animal seen from a known angle matches well. Distance = min over all of them.
    """

    size: int = 12
    ema: float = 0.9
    min_distance: float = 0.02
    mean: np.ndarray | None = None
    bank: list[np.ndarray] = field(default_factory=list)

    def add(self, embedding: np.ndarray) -> None:
        e = embedding.astype(np.float32)
        if self.mean is None:
            self.mean = e.copy()
        else:
            m = self.ema * self.mean + (1 - self.ema) * e
            self.mean = m / max(float(np.linalg.norm(m)), 1e-12)
        if not self.bank or float(np.min(1 - np.stack(self.bank) @ e)) > self.min_distance:
            self.bank.append(e)
            if len(self.bank) > self.size:
                self.bank.pop(0)

    def matrix(self) -> np.ndarray:
        rows = ([self.mean] if self.mean is not None else []) + self.bank
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def distance(self, embeddings: np.ndarray) -> np.ndarray:
        """Min cosine distance of each row of ``embeddings`` to the gallery (nan if empty)."""
        g = self.matrix()
        if g.size == 0 or len(embeddings) == 0:
            return np.full(len(embeddings), np.nan, np.float32)
        return np.clip(1.0 - (embeddings @ g.T).max(axis=1), 0.0, 2.0)


@dataclass
class LastSeen:
    frame: int
    centroid: np.ndarray
    borders: tuple[str, ...]


@dataclass(eq=False)  # compared by identity: two identities are never "equal"
class Identity:
    track_id: int
    gallery: Gallery
    last_seen: LastSeen
    tracklet: Tracklet | None = None  # the tracklet carrying it now (None: absent)

    @property
    def absent(self) -> bool:
        return self.tracklet is None


@dataclass(eq=False)  # compared by identity (membership tests stay O(1) per item)
class Tracklet:
    key: int
    kalman: BoxKalman
    first_frame: int
    last_frame: int
    last_box: np.ndarray
    patch: np.ndarray
    patch_origin: tuple[int, int]
    centroid: np.ndarray
    borders: tuple[str, ...]
    state: TrackState = TrackState.TENTATIVE
    identity: Identity | None = None
    hits: int = 1
    misses: int = 0
    source_id: int = -1
    # identity given provisionally at (re-)entry, awaiting clean views to verify it
    pending: bool = False
    pending_since: int = 0
    pending_embeddings: list[np.ndarray] = field(default_factory=list)
    # a contested provisional identity is not reported until verification settles it
    held: bool = False
    # the absent identity's last sighting before this tracklet took it (restored on a switch)
    previous_last_seen: LastSeen | None = None
    own_gallery: Gallery = field(default_factory=Gallery)

    @property
    def track_id(self) -> int:
        return self.identity.track_id if self.identity is not None else -1

    def predicted_shift(self) -> np.ndarray:
        """Predicted displacement of the last mask (Kalman centre minus last seen centre)."""
        cx, cy = self.kalman.x[:2]
        lx1, ly1, lx2, ly2 = self.last_box
        return np.array([cx - (lx1 + lx2) / 2, cy - (ly1 + ly2) / 2])

    def appearance_gallery(self) -> Gallery:
        """What this object looks like: its identity's gallery once verified, else its own."""
        if self.identity is not None and not self.pending:
            return self.identity.gallery
        return self.own_gallery

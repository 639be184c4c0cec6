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

from samtrack.reid.motion import BoxKalman


class TrackState(str, Enum):
    TENTATIVE = "tentative"
    ACTIVE = "active"
    LOST = "lost"
    ENDED = "ended"


class Gallery:
    """A running-average embedding plus a bank of the last K distinct embeddings.

    Why both: the average is stable but blurs poses together; the bank keeps distinct poses, so a
    returning animal seen from a known angle matches well. Distance = min over all of them.

    Stored as one array, row 0 the average and rows 1.. the bank as a ring buffer: every track
    adds a view and is compared on every frame, so at 100 objects the cost is in re-stacking
    lists, not in arithmetic; here adding and comparing touch the array in place.
    """

    SIZE, EMA, MIN_DISTANCE = 12, 0.9, 0.02  # defaults of the tracker.gallery_* options

    def __init__(self, size: int = SIZE, ema: float = EMA,
                 min_distance: float = MIN_DISTANCE) -> None:
        self.size, self.ema, self.min_distance = size, ema, min_distance
        self._rows: np.ndarray | None = None  # (1 + size, dim) float32
        self._count = 0  # views in the bank
        self._oldest = 0  # ring position replaced next once the bank is full

    @property
    def mean(self) -> np.ndarray | None:
        return None if self._rows is None else self._rows[0]

    @property
    def bank(self) -> list[np.ndarray]:
        """The bank's views, oldest first."""
        if self._rows is None:
            return []
        order = (np.arange(self._count) + (self._oldest if self._count == self.size else 0)) \
            % self.size
        return [self._rows[1 + i].copy() for i in order]

    def add(self, embedding: np.ndarray) -> None:
        e = np.asarray(embedding, np.float32)
        if self._rows is None:
            self._rows = np.zeros((1 + self.size, e.shape[0]), np.float32)
            self._rows[0] = e
            self._rows[1] = e
            self._count = 1
            return
        m = self.ema * self._rows[0] + (1 - self.ema) * e
        self._rows[0] = m / max(float(np.sqrt(m @ m)), 1e-12)
        bank = self._rows[1:1 + self._count]
        if 1.0 - float((bank @ e).max()) <= self.min_distance:
            return  # a view like one already kept
        if self._count < self.size:
            self._rows[1 + self._count] = e
            self._count += 1
        else:
            self._rows[1 + self._oldest] = e
            self._oldest = (self._oldest + 1) % self.size

    def matrix(self) -> np.ndarray:
        """Average and bank as rows (a view, not a copy)."""
        if self._rows is None:
            return np.zeros((0, 0), np.float32)
        return self._rows[:1 + self._count]

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


@dataclass
class CrossingEntry:
    """Where a tracklet was, and how it moved, when it began touching another object."""

    frame: int
    centroid: np.ndarray
    velocity: np.ndarray | None  # px per frame over its last apart sightings; None: unseen
    identity: Identity | None
    source_id: int = -1
    chain: int = -1  # the motion chain the tracklet continued (Tracklet.chain)
    size: float = 0.0  # box diagonal at the last apart sighting, px


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
    seen_whole: bool = False  # its own gallery holds a clean view (not only a first glimpse)
    # motion through a crossing: the last apart sightings (frame, centroid, box diagonal), the
    # state when it began touching others, and the tracklets it touched since
    recent: list[tuple[int, np.ndarray, float]] = field(default_factory=list)
    crossing: CrossingEntry | None = None
    crossed_with: set[int] = field(default_factory=set)
    # which animal's path this tracklet continues, as a tracklet key: its own key until a
    # crossing resolved by motion hands it the identity another tracklet went in with; it then
    # continues that one's chain (the offline engine links fragments along chains)
    chain: int = -1

    @property
    def track_id(self) -> int:
        return self.identity.track_id if self.identity is not None else -1

    @property
    def size(self) -> float:
        """The object's size: the diagonal of its last mask's box, px."""
        x1, y1, x2, y2 = self.last_box
        return float(np.hypot(x2 - x1, y2 - y1))

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

    def add_own_view(self, embedding: np.ndarray, clean: bool) -> None:
        """A clean view joins the tracklet's own gallery; so does its first view, whatever it
        shows, since nothing else describes the object yet (:attr:`appearance_known` tells the
        two apart)."""
        if clean or self.own_gallery.mean is None:
            self.own_gallery.add(embedding)
            self.seen_whole |= clean

    @property
    def appearance_known(self) -> bool:
        """Whether :meth:`appearance_gallery` describes the whole object: a verified
        identity's gallery, or its own with a clean view. A tracklet seen only cut by a border
        or touching another object holds just its first, partial glimpse."""
        return (self.identity is not None and not self.pending) or self.seen_whole


@dataclass
class FrameLog:
    """What offline linking needs from one frame of the online pass."""

    frame: int
    det_index: np.ndarray  # indices into the frame's objects that belong to a tracklet
    tracklet_keys: np.ndarray
    track_ids: np.ndarray  # online (possibly provisional, unreported) identity; -1: none
    clean: np.ndarray  # bool: fully visible and apart from others
    isolated: np.ndarray  # bool: apart from others (crossings are where tracklets may err)
    embeddings: np.ndarray | None
    positions: np.ndarray | None = None  # (N, 2) centroids over the frame diagonal
    source_ids: np.ndarray | None = None  # the mask source's id per object; -1: none
    # (n, rows, columns, 3) uint8 identification images of every row, for the representation
    # learned from the clip (reid.embedders.learned); None when not wanted, or before the
    # first clean mask fixed their shape
    id_images: np.ndarray | None = None
    # bool: the box reaches a frame border (the object is entering or leaving the view)
    at_border: np.ndarray | None = None
    step_iou: np.ndarray | None = None  # motion IoU of the match that continued the tracklet
    # (negative: continued by reach, without overlap)
    # (NaN where the object started a tracklet): how sure the frame-to-frame link was
    # the tracklet key of the path each row continues (Tracklet.chain); None: its own key
    chains: np.ndarray | None = None

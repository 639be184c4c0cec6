"""Fragments: stretches of one object that the identity model can trust to be one individual.

The online tracker links masks frame to frame; most links are certain (the object is alone and
moved a little), a few are guesses. A guess is where an identity can silently change, so the
online tracklets are cut at every such place and the pieces are judged on appearance alone:

* the object starts or stops touching another one (a crossing: the mask may have followed the
  wrong animal);
* it was missed for a frame or more, or left and came back (a re-entry starts a new tracklet);
* the mask source changed its id for it (the source thinks something happened);
* the frame-to-frame link was unusually weak: its motion IoU is among the clip's lowest
  (``weak_step_quantile`` of all links; a threshold of the clip, not an absolute number), or
  it was made by reach, without any overlap.

A fragment is *apart* when its object touched no other object throughout; only apart,
fully visible frames give *views* (embeddings) to the model, since a crop of two touching animals
describes neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from samtrack.reid.tracks import FrameLog

WEAK_STEP_QUANTILE = 0.01
MAX_VIEWS = 60  # evenly spread: enough to describe a fragment, bounded cost for long ones


def evenly_spread(items: list, limit: int = MAX_VIEWS) -> list:
    """At most ``limit`` of ``items``, evenly spread from first to last (all when fewer)."""
    if len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


@dataclass(eq=False)
class Fragment:
    index: int
    tracklet: int
    source_id: int
    apart: bool
    # the path it continues (FrameLog.chains): its tracklet's key (-1: the same), or after a
    # crossing the tracker resolved by motion, the key of the tracklet that went in with its
    # identity
    chain: int = -1
    frames: list[int] = field(default_factory=list)
    entries: list[tuple[int, int]] = field(default_factory=list)  # (log position, row)
    online_ids: list[int] = field(default_factory=list)
    views: list[np.ndarray] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # identification images of the views
    # apart but not fully visible (at a border): too rough to decide on, enough for a first guess
    rough_views: list[np.ndarray] = field(default_factory=list)
    first_position: np.ndarray | None = None
    last_position: np.ndarray | None = None
    # whether its first / last frame was at a frame border (None: not logged)
    first_at_border: bool | None = None
    last_at_border: bool | None = None

    def __post_init__(self) -> None:
        if self.chain < 0:
            self.chain = self.tracklet

    @property
    def start(self) -> int:
        return self.frames[0]

    @property
    def end(self) -> int:
        return self.frames[-1]

    @property
    def length(self) -> int:
        return len(self.frames)

    @property
    def online_id(self) -> int:
        ids = [i for i in self.online_ids if i > 0]
        return max(set(ids), key=ids.count) if ids else -1

    def view_matrix(self, limit: int = MAX_VIEWS) -> np.ndarray:
        if not self.views:
            return np.zeros((0, 0), np.float32)
        return np.stack(evenly_spread(self.views, limit)).astype(np.float32)

    def overlaps(self, other: Fragment) -> bool:
        return self.start <= other.end and other.start <= self.end


def weak_step_limit(log: list[FrameLog], quantile: float = WEAK_STEP_QUANTILE) -> float:
    """The motion IoU below which a frame-to-frame link counts as weak in this clip."""
    # negative steps are reach links (no overlap): always cut, and no part of the clip's scale
    steps = [e.step_iou[np.isfinite(e.step_iou) & (e.step_iou >= 0)] for e in log
             if e.step_iou is not None]
    values = np.concatenate(steps) if steps else np.zeros(0)
    return float(np.quantile(values, quantile)) if values.size else 0.0


class FragmentCutter:
    """Cuts fragments as the log grows, one entry at a time (the online identity model uses it
    frame by frame; :func:`cut_fragments` runs it over a finished log)."""

    def __init__(self, weak: float = 0.0) -> None:
        self.weak = weak
        # views from the entries' identification images instead of their embeddings (a
        # representation learned from the clip, once the online model has one)
        self.embed: Callable[[np.ndarray], np.ndarray] | None = None
        self.fragments: list[Fragment] = []
        self._open: dict[int, Fragment] = {}  # tracklet key -> its current fragment
        self._last_frame: dict[int, int] = {}
        self._predecessor: dict[int, Fragment] = {}  # fragment index -> its path's previous
        self._path_end: dict[int, Fragment] = {}  # path (Fragment.chain) -> its latest fragment

    def add(self, position: int, entry: FrameLog) -> list[Fragment]:
        """The fragment of each row of ``entry`` (new ones appended to ``fragments``)."""
        n = len(entry.tracklet_keys)
        sources = entry.source_ids if entry.source_ids is not None else np.full(n, -1)
        steps = entry.step_iou if entry.step_iou is not None else np.full(n, np.nan)
        chains = entry.chains if entry.chains is not None else entry.tracklet_keys
        vectors = entry.embeddings
        if self.embed is not None:  # only rows that give views or rough views are embedded
            wanted = np.flatnonzero(entry.clean | entry.isolated)
            vectors = None
            if entry.id_images is not None and wanted.size:
                learned = self.embed(entry.id_images[wanted])
                vectors = np.zeros((n, learned.shape[1]), np.float32)
                vectors[wanted] = learned
        rows = []
        for row, key in enumerate(entry.tracklet_keys):
            key = int(key)
            apart = bool(entry.isolated[row])
            source = int(sources[row])
            chain = int(chains[row])
            current = self._open.get(key)
            continues = (current is not None and self._last_frame.get(key) == entry.frame - 1
                         and current.apart == apart and current.source_id == source
                         # a piece still touching keeps its path to its end: which of its
                         # frames were the other animal's, the handover does not say
                         and (current.chain == chain or not apart)
                         and not steps[row] < self.weak and not steps[row] < 0)
            if not continues:
                # the fragment this one continues: the latest of its path (after a resolved
                # crossing, the other tracklet's piece, whose identity it was handed)
                previous = self._path_end.get(chain)
                current = Fragment(len(self.fragments), key, source, apart, chain=chain)
                if previous is not None:
                    self._predecessor[current.index] = previous
                self._path_end[chain] = current
                self.fragments.append(current)
                self._open[key] = current
            self._last_frame[key] = entry.frame
            current.frames.append(entry.frame)
            current.entries.append((position, row))
            current.online_ids.append(int(entry.track_ids[row]))
            if vectors is not None and entry.clean[row]:
                current.views.append(vectors[row])
                if entry.id_images is not None:
                    current.images.append(entry.id_images[row])
            elif vectors is not None and apart and len(current.rough_views) < MAX_VIEWS:
                current.rough_views.append(vectors[row])
            if entry.at_border is not None:
                if current.first_at_border is None:
                    current.first_at_border = bool(entry.at_border[row])
                current.last_at_border = bool(entry.at_border[row])
            if entry.positions is not None:
                if current.first_position is None:
                    current.first_position = entry.positions[row]
                current.last_position = entry.positions[row]
            rows.append(current)
        return rows

    def predecessor(self, fragment: Fragment) -> Fragment | None:
        """The fragment of the same path just before ``fragment`` (None: it started one): the
        same tracklet's, except after a crossing the tracker resolved by motion, where it is
        the piece of the tracklet whose identity this one was handed."""
        return self._predecessor.get(fragment.index)


def cut_fragments(log: list[FrameLog], quantile: float = WEAK_STEP_QUANTILE) -> list[Fragment]:
    """The clip's fragments, in order of their first frame (see the module docstring)."""
    cutter = FragmentCutter(weak_step_limit(log, quantile))
    for position, entry in enumerate(log):
        cutter.add(position, entry)
    return cutter.fragments


def cliques(fragments: list[Fragment]) -> list[list[int]]:
    """Maximal sets of fragments present at one time (positions in ``fragments``): no two
    members can be the same individual. Fragments are intervals, so the maximal cliques are
    the sets alive just after some fragment starts (one sweep)."""
    events = sorted({f.start for f in fragments})
    order = sorted(range(len(fragments)), key=lambda i: fragments[i].start)
    out: list[list[int]] = []
    alive: list[int] = []
    cursor = 0
    previous: set[int] = set()
    for t in events:
        while cursor < len(order) and fragments[order[cursor]].start <= t:
            alive.append(order[cursor])
            cursor += 1
        alive = [i for i in alive if fragments[i].end >= t]
        current = set(alive)
        # the previous set is maximal unless it is contained in this one
        if previous and not previous <= current:
            out.append(sorted(previous))
        previous = current
    if previous:
        out.append(sorted(previous))
    return [c for c in out if len(c) > 1]

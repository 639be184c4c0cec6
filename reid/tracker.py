"""The re-identification tracker: stable identities from masks that swap, vanish and return.

Per frame (``update``), see :mod:`reid.tracks` for tracklets versus identities:

1. **Duplicates**: two masks on one object (a masklet latched onto an animal another masklet
   already follows) are cut to one by containment, keeping the larger.
2. **In view** (stage 1, like ByteTrack's first stage): live tracklets are matched with confident
   masks by Hungarian assignment on ``appearance + motion - source-id bonus``, gated by
   Mahalanobis distance and appearance. Source ids are only a hint: when SAM2 hands one animal's
   id to another, motion and appearance win and a ``swap_fixed`` event is recorded.
3. **Low-score masks** (stage 2) extend the remaining tracklets on motion alone.
4. Unmatched confident masks start tentative tracklets.
5. **Re-entry**: a tracklet without identity (after ``min_hits`` frames) is matched against the
   absent identities on appearance plus where each was last seen (the border it left through)
   plus the source-id hint. A match restores the old identity (``restored``), provisionally.
   A fully visible object must look more alike than distinct objects of this video look to
   each other (:mod:`reid.contrast`): look-alike pedestrians do not inherit departed identities.
6. **Verification**: a provisional identity is checked once the object has been seen fully
   (not at a border, not touching another object) for ``verify_frames`` frames; if another
   absent identity fits clearly better, the identity is corrected (``reassigned``). This is what
   repairs SAM2's swaps on re-entry, where the first half-visible frames say little.
7. Tracklets with no identity left to take become new identities (never more than
   ``num_identities`` when it is set).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.geometry import (
    box_area,
    box_intersection,
    box_iou,
    crop_intersection,
)
from samtrack.pipeline.core.video import ColorOrder, as_bgr
from samtrack.reid.association import assign
from samtrack.reid.base import Tracker, TrackResult
from samtrack.reid.config import TRACKERS, TrackerConfig
from samtrack.reid.costs import (
    AppearanceCost,
    CostModel,
    MotionCost,
    PositionCost,
    Side,
    SourceIdAgreement,
    Weighted,
    mahalanobis_gate,
    motion_iou,
    partial_view_scale,
)
from samtrack.reid.embedders import Embedder
from samtrack.reid.embedders.learned import ImageGeometry, identification_images, mask_extents
from samtrack.reid.identities import relabel
from samtrack.reid.motion import BoxKalman, predict_all, update_all
from samtrack.reid.policies import ContainmentDuplicates, ReentryRules, SourceTrust
from samtrack.reid.repairs import RepairEvent
from samtrack.reid.resolvers import RESOLVERS, IdentityResolver
from samtrack.reid.tracks import (
    CrossingEntry,
    FrameLog,
    Gallery,
    Identity,
    LastSeen,
    Tracklet,
    TrackState,
)


def frame_borders(box: np.ndarray, size: tuple[int, int], margin: int) -> tuple[str, ...]:
    """The frame borders a box touches (within ``margin`` pixels)."""
    h, w = size
    x1, y1, x2, y2 = box
    out = []
    if x1 <= margin:
        out.append("left")
    if y1 <= margin:
        out.append("top")
    if x2 >= w - margin:
        out.append("right")
    if y2 >= h - margin:
        out.append("bottom")
    return tuple(out)


def isolated(boxes: np.ndarray) -> np.ndarray:
    """``True`` for boxes that overlap no other box (their crops show one animal only)."""
    if len(boxes) < 2:
        return np.ones(len(boxes), bool)
    iou = box_iou(boxes, boxes)
    np.fill_diagonal(iou, 0)
    return ~(iou > 0).any(axis=1)


def touching(boxes: np.ndarray, patches: list[tuple[np.ndarray, tuple[int, int]]],
             ) -> np.ndarray:
    """``(N, N)`` bool: masks that touch or overlap (8-connected), checked only where their
    boxes, grown by one pixel, meet. Finer than box overlap: two slanted, elongated animals
    side by side have overlapping boxes without touching."""
    n = len(boxes)
    out = np.zeros((n, n), bool)
    if n < 2:
        return out
    grown = boxes + np.array([-1, -1, 1, 1], boxes.dtype)
    for a, b in np.argwhere(np.triu(box_intersection(grown, grown) > 0, 1)):
        patch, (x, y) = patches[a]
        # one mask grown by a pixel all round meets the other where the two touch
        dilated = cv2.dilate(np.pad(patch, 1).astype(np.uint8), np.ones((3, 3), np.uint8))
        out[a, b] = out[b, a] = crop_intersection((dilated.astype(bool), (x - 1, y - 1)),
                                                  patches[b]) > 0
    return out


def covered_by_others(boxes: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """``True`` for boxes mostly inside other boxes (a sliver of an occluded object)."""
    if len(boxes) < 2:
        return np.zeros(len(boxes), bool)
    inter = box_intersection(boxes, boxes)
    np.fill_diagonal(inter, 0)
    return inter.max(axis=1) / np.maximum(box_area(boxes), 1e-9) >= fraction


_FROM_CONFIG: Any = object()  # sentinel: build the embedder the config names


@dataclass
class _Frame:
    """One ``update``: the frame's usable masks with their per-object columns (``dets``:
    boxes, crops, scores, source ids, embeddings; ``data``: centroid, border, apart, clean),
    and what the stages decide about them as they go."""

    objects: FrameObjects  # as given (outputs are aligned with these)
    det_index: np.ndarray  # rows of ``objects`` that ``dets`` holds
    dets: FrameObjects
    diagonal: float  # of the frame, in pixels
    started: float  # perf_counter at the start of the update
    embed_seconds: float
    decided_before: int  # the gallery rules' decisions made before this frame
    high: np.ndarray  # rows of ``dets`` scoring at least ``high_score`` (matched first)
    low: np.ndarray  # the others (they only extend tracklets)
    assigned: dict[int, Tracklet] = field(default_factory=dict)  # mask row -> tracklet
    details: dict[int, tuple] = field(default_factory=dict)  # (appearance, IoU, cost) of a match
    image: np.ndarray | None = None  # the frame (BGR), for identification images

    @property
    def frame(self) -> int:
        return self.objects.frame_index

    def match(self, j: int, tracklet: Tracklet, detail: tuple) -> None:
        self.assigned[j] = tracklet
        self.details[j] = detail


class ReidTracker(Tracker):
    """``update(objects, image) -> objects with track_ids``, one call per frame in order.

    Built from its options (``TrackerConfig(...).build()`` or ``ReidTracker(config)``), it
    creates the embedder the options name, so options and tracker cannot disagree; pass
    ``embedder=`` to use another one (``None``: motion and source ids only). The policies
    (``duplicates``, ``trust``, ``reentry``) are objects of :mod:`reid.policies`, built from the
    options unless given.
    """

    def __init__(self, config: TrackerConfig | None = None,
                 embedder: Embedder | None = _FROM_CONFIG, *, device: str = "cpu",
                 record: bool = True, keep_log: bool | None = None) -> None:
        self.config = c = config or TrackerConfig()
        self.embedder = c.build_embedder(device) if embedder is _FROM_CONFIG else embedder
        self.record = record
        # who decides the shown identity (reid.resolvers): gallery rules, online model, offline
        self.resolver: IdentityResolver = RESOLVERS.get(c.identities)(
            c, has_appearance=self.embedder is not None, device=device)
        # the per-frame log, for an engine that decides at the end (and for diagnostics)
        self.keep_log = self.resolver.keeps_log if keep_log is None else keep_log
        self.duplicates = ContainmentDuplicates(c.duplicates.containment, c.duplicates.iou)
        self.trust = SourceTrust()
        # what the online identities need between the frames: an object back after a short
        # dropout keeps its identity. Offline the engine links the fragments across such gaps
        # itself, with hindsight, so the online pass keeps the plain rules there
        # (eval/results/online_lost_reentry.md: with them offline, arena-crowded lost 0.003)
        self._keeps_through_dropouts = not self.resolver.needs_whole_clip
        self.reentry = ReentryRules(c.reentry.appearance_gate, c.reentry.contrast,
                                    c.reentry.hold_contested, c.reentry.hold_margin,
                                    own_floor=self._keeps_through_dropouts)
        self._view_costs = CostModel([
            Weighted(AppearanceCost(), c.appearance.weight,
                     column_scale=partial_view_scale(c.appearance.border_weight)),
            Weighted(MotionCost(), c.motion.weight),
            Weighted(SourceIdAgreement(), -c.association.source_id_bonus)])
        self.reset()

    def reset(self) -> None:
        self.tracklets: list[Tracklet] = []  # live ones
        self.identities: dict[int, Identity] = {}
        # the gallery rules' decisions (with their costs), whether shown or not; the repairs
        # are what the identity engine records from what it shows
        self.decisions: list[RepairEvent] = []
        self.dropped: list[RepairEvent] = []  # duplicate masks suppressed
        self.timing = {"embed": 0.0, "associate": 0.0}
        self.id_geometry: ImageGeometry | None = None  # fixed by the first clean masks
        self.frames_seen = 0
        self.log: list[FrameLog] = []
        self.frames: list[FrameObjects] = []  # recorded outputs (RLE), for finalize()
        self._next_key = 1
        self._next_id = 1
        self._source_owner: dict[int, Identity] = {}
        self._identity_source: dict[int, int] = {}  # track_id -> last source id
        self.trust.reset()
        self.reentry.reset()
        self.resolver.reset()

    @property
    def source_disagreements(self) -> int:
        """Times the source's ids and samtrack's decisions parted ways (:class:`SourceTrust`)."""
        return self.trust.disagreements

    @property
    def needs_whole_clip(self) -> bool:
        return self.resolver.needs_whole_clip

    def finalize(self, *, progress: bool = False) -> TrackResult:
        """The recorded frames with their final identities (re-labelled over the whole clip
        when the identity engine decides at the end), the repairs, how identities were
        decided and the time per stage."""
        self.resolver.end()
        frames = self.frames
        labels = self.resolver.finalize(self.log, progress=progress) if self.keep_log else None
        if labels is not None:
            by_frame = {e.frame: (e, lab) for e, lab in zip(self.log, labels, strict=True)}
            frames = [relabel(f, *by_frame[f.frame_index]) if f.frame_index in by_frame else
                      f.with_track_ids(np.full(len(f), -1, np.int64)) for f in self.frames]
        repairs = sorted(self.dropped + self.resolver.repairs(), key=lambda e: e.frame)
        representation = self.resolver.representation
        if representation is not None:
            representation.geometry = self.id_geometry  # the images it was trained on
        return TrackResult(frames=frames, repairs=[e.to_dict() for e in repairs],
                           identities=self.resolver.summary(), timing=dict(self.timing),
                           representation=representation)

    def velocity(self, track_id: int) -> tuple[float, float] | None:
        """Pixels per frame of the identity's object in view (its motion model), or None."""
        for tracklet in self.tracklets:
            if tracklet.track_id == track_id:
                vx, vy = tracklet.kalman.x[4:6]
                return float(vx), float(vy)
        return None

    # ------------------------------------------------------------------ helpers
    def _gallery(self) -> Gallery:
        a = self.config.appearance
        return Gallery(a.gallery_size, a.gallery_ema, a.gallery_min_distance)

    def _new_identity(self, tracklet: Tracklet, frame: int) -> Identity:
        identity = Identity(self._next_id, self._gallery(),
                            LastSeen(frame, tracklet.centroid.copy(), tracklet.borders))
        for e in tracklet.own_gallery.bank:
            identity.gallery.add(e)
        self._next_id += 1
        self.identities[identity.track_id] = identity
        self._attach(tracklet, identity, pending=False)
        return identity

    def _attach(self, tracklet: Tracklet, identity: Identity, *, pending: bool) -> None:
        tracklet.identity = identity
        identity.tracklet = tracklet
        tracklet.pending = pending
        tracklet.state = TrackState.ACTIVE
        if pending:
            tracklet.previous_last_seen = identity.last_seen
            tracklet.pending_embeddings = []
            tracklet.pending_since = tracklet.last_frame

    def _all_known(self) -> bool:
        """Every one of ``num_identities`` individuals has an identity: none may be added."""
        n = self.config.num_identities
        return n is not None and len(self.identities) >= n

    def _release_provisional(self, tracklet: Tracklet) -> Identity:
        """Take a provisional identity back from a tracklet, as it was before (where it was
        last seen before this tracklet claimed it); returns the identity."""
        identity = tracklet.identity
        assert identity is not None
        identity.tracklet = None
        if tracklet.previous_last_seen is not None:
            identity.last_seen = tracklet.previous_last_seen
        tracklet.identity = None
        return identity

    def _detach(self, tracklet: Tracklet, frame: int) -> None:
        identity = tracklet.identity
        if identity is None:
            return
        identity.tracklet = None
        if tracklet.pending:
            self._commit(tracklet)
        identity.last_seen = LastSeen(tracklet.last_frame, tracklet.centroid.copy(),
                                      tracklet.borders)

    def _commit(self, tracklet: Tracklet) -> None:
        """End verification: the provisional identity is kept and learns the clean views."""
        if tracklet.identity is not None:
            for e in tracklet.pending_embeddings:
                tracklet.identity.gallery.add(e)
            self._backfill_log(tracklet)
        tracklet.pending = False
        tracklet.held = False
        tracklet.pending_embeddings = []

    def _backfill_log(self, tracklet: Tracklet) -> None:
        """Log the verified identity over the frames where the tracklet's identity was still
        provisional: offline linking starts from the online pass's best answer, and that is
        the identity after verification, not the first guess at the border. (This can give
        one identity to two objects of a frame; offline linking resolves that.)"""
        if not self.keep_log:
            return
        track_id = tracklet.identity.track_id
        for entry in reversed(self.log):
            if entry.frame < tracklet.first_frame:
                break
            entry.track_ids[entry.tracklet_keys == tracklet.key] = track_id

    def _suppress_duplicates(self, objects: FrameObjects, frame: int) -> np.ndarray:
        keep, dropped = self.duplicates(objects)
        for drop in dropped:
            self.trust.disagree()  # two masklets on one animal: ids not to be trusted
            self.dropped.append(RepairEvent(frame, "duplicate_suppressed",
                                           int(objects.source_ids[drop]), -1, -1))
        return keep

    # ------------------------------------------------------------------ main step
    def update(self, objects: FrameObjects, image: np.ndarray | None = None, *,
               color: ColorOrder = "bgr") -> FrameObjects:
        f = self._prepare(self.numbered(objects, self.frames_seen), as_bgr(image, color))
        self._predict()
        self._match_in_view(f)  # confident masks: appearance + motion + source-id hint
        self._match_low_scores(f)  # low-score masks extend tracklets on motion alone
        self._match_within_reach(f)  # burst movers that left the motion gate
        self._update_matched(f)
        self._follow_crossings(f)
        self._start_tracklets(f)
        self._age_unmatched(f)
        self._reenter(f)  # identities for tracklets that have none
        self._verify(f)  # provisional identities checked on clean views
        self._remember(f)
        return self._report(f)

    def _prepare(self, objects: FrameObjects, image: np.ndarray | None) -> _Frame:
        """The frame's usable masks (duplicates and low scores dropped) with every per-object
        column the stages read, computed once and carried together."""
        c = self.config
        started = time.perf_counter()
        keep = self._suppress_duplicates(objects, objects.frame_index) & \
            (objects.scores >= c.association.low_score)
        det_index = np.flatnonzero(keep)
        dets = objects if keep.all() else objects[det_index]  # no copy of the masks
        embed_time = 0.0
        if self.embedder is not None and len(dets) and (image is not None or
                                                       dets.embeddings is not None):
            t0 = time.perf_counter()
            dets = dataclasses.replace(dets, embeddings=self.embedder.embed(image, dets))
            embed_time = time.perf_counter() - t0
        elif dets.embeddings is not None:
            dets = dataclasses.replace(dets, embeddings=None)  # the embedder decides: none
        boxes = dets.boxes
        borders = np.empty(len(dets), object)
        borders[:] = [frame_borders(b, objects.image_size, c.association.border_margin)
                      for b in boxes]
        apart = isolated(boxes)
        at_border = np.array([bool(b) for b in borders], bool)
        dets = dataclasses.replace(dets, data={
            **dets.data, "centroid": dets.centroids, "border": borders,
            "at_border": at_border, "apart": apart, "clean": apart & ~at_border})
        confident = dets.scores >= c.association.high_score
        return _Frame(objects, det_index, dets, float(np.hypot(*objects.image_size)),
                      started, embed_time, len(self.decisions), np.flatnonzero(confident),
                      np.flatnonzero(~confident), image=image)

    def _predict(self) -> None:
        predict_all([t.kalman for t in self.tracklets])

    def _live(self) -> list[Tracklet]:
        return [t for t in self.tracklets if t.misses <= self.config.motion.horizon]

    def _match_in_view(self, f: _Frame) -> None:
        """Stage 1 (as ByteTrack's first): live tracklets x confident masks, on the view
        cost, gated."""
        live = self._live()
        if live and len(f.high):
            cost, miou, app = self._view_cost(live, f.dets[f.high])
            self._mark_merges(f, live, miou)
            for r, k in assign(cost, self.config.association.max_cost):
                f.match(int(f.high[k]), live[r],
                        (_f(app[r, k]), float(miou[r, k]), float(cost[r, k])))

    def _mark_merges(self, f: _Frame, live: list[Tracklet], miou: np.ndarray) -> None:
        """A confident mask that continues two tracklets seen last frame (motion IoU at least
        ``motion.min_iou`` with each) is two animals in one blob: not apart, so it cuts their
        fragments and gives no view, as a touch does. Why: a segmenter gives one mask to
        animals that overlap, and that mask touches nothing; without this the fragment of
        whichever tracklet took the blob would run on into the other animal."""
        seen = np.array([t.misses == 0 for t in live], bool)
        merged = (miou[seen] >= self.config.motion.min_iou).sum(axis=0) >= 2
        for j in f.high[merged]:
            f.dets.data["apart"][j] = False
            f.dets.data["clean"][j] = False

    def _match_low_scores(self, f: _Frame) -> None:
        """Stage 2: the remaining tracklets x low-score masks, on motion alone."""
        rest = [t for t in self._live() if t not in f.assigned.values()]
        if rest and len(f.low):
            low = f.dets[f.low]
            miou = motion_iou(rest, low.boxes, low.crops)
            cost = np.where(miou > 0, 1.0 - miou, np.inf)
            for r, k in assign(cost, 1.0 - self.config.motion.min_iou):
                f.match(int(f.low[k]), rest[r], (None, float(miou[r, k]), float(cost[r, k])))

    def _match_within_reach(self, f: _Frame) -> None:
        """Stage 2b, near misses: objects that move in bursts (a larva darting half its
        length) leave the constant-velocity gate and their old mask; within reach, they
        continue. Only tracklets seen in the previous frame: a burst is one frame's jump."""
        rest = [t for t in self._live() if t not in f.assigned.values() and t.misses == 0]
        left = np.array([j for j in f.high if j not in f.assigned], np.int64)
        if self.config.motion.reach > 0 and rest and len(left):
            reach, app = self._reach_cost(rest, f.dets[left])
            for r, k in assign(reach, 1.0):
                # no overlap to speak of: logged as a link below every IoU (always a cut)
                f.match(int(left[k]), rest[r], (_f(app[r, k]), REACH_STEP, float(reach[r, k])))

    def _update_matched(self, f: _Frame) -> None:
        # the matched filters take their boxes at once (the same numbers as one by one)
        rows = list(f.assigned)
        update_all([f.assigned[j].kalman for j in rows], f.dets.boxes[rows])
        for j, tracklet in f.assigned.items():
            self._update_tracklet(tracklet, f, j)
            self._note_source(f.frame, tracklet, int(f.dets.source_ids[j]), f.details[j])

    def _start_tracklets(self, f: _Frame) -> None:
        """Stage 3: unmatched confident masks start tentative tracklets."""
        for j in f.high:
            j = int(j)
            if j not in f.assigned:
                f.assigned[j] = self._new_tracklet(f, j)

    def _age_unmatched(self, f: _Frame) -> None:
        """Unmatched tracklets age, end, and release their identities."""
        matched = {t.key for t in f.assigned.values()}
        for tracklet in list(self.tracklets):
            if tracklet.key in matched:
                continue
            tracklet.misses += 1
            if tracklet.borders and tracklet.misses == 1:
                # it went out of view: it is not moving on *there*; wait where it left
                tracklet.kalman.freeze_velocity()
            if tracklet.state == TrackState.TENTATIVE or \
                    tracklet.misses > self.config.motion.horizon:
                self._end(tracklet, f.frame)
            else:
                tracklet.state = TrackState.LOST

    def _remember(self, f: _Frame) -> None:
        """Where each identity was seen and with which source id; how unlike distinct objects
        look; identities absent too long are forgotten."""
        source_ids = f.dets.source_ids
        for j, tracklet in f.assigned.items():
            identity = tracklet.identity
            if identity is not None:
                identity.last_seen = LastSeen(f.frame, tracklet.centroid.copy(),
                                              tracklet.borders)
                if source_ids[j] >= 0:
                    self._identity_source[identity.track_id] = int(source_ids[j])
                    self._source_owner[int(source_ids[j])] = identity
        if f.dets.embeddings is not None:
            self._observe_contrast(f)
        self._expire(f.frame)

    def _identification_images(self, f: _Frame, js: list[int]) -> np.ndarray | None:
        """Identification images of the frame's rows, for the representation the identity
        engine learns from the clip: clean ones are its views; apart ones cut by a border give
        the online model rough views; the pieces without views (touching, at a border) are
        named by them offline. The image shape is fixed by the first clean masks seen (their
        typical aspect ratio)."""
        if f.image is None:
            return None
        if self.id_geometry is None:
            whole = [j for j in js if f.dets.data["clean"][j]]
            if not whole:
                return None
            self.id_geometry = ImageGeometry.from_extents(mask_extents(f.dets[whole]),
                                                          self.config.learned.long_side)
        started = time.perf_counter()
        out = identification_images(f.image, f.dets, self.id_geometry, js)
        f.embed_seconds += time.perf_counter() - started  # appearance work, not association
        return out

    def _report(self, f: _Frame) -> FrameObjects:
        """The frame's log entry; the identity engine decides what is shown; the record."""
        dets, js = f.dets, sorted(f.assigned)
        embeddings, centroids = dets.embeddings, dets.data["centroid"]
        entry = FrameLog(
            frame=f.frame, det_index=f.det_index[js].astype(np.int64),
            tracklet_keys=np.array([f.assigned[j].key for j in js], np.int64),
            # the provisional identity even while held: offline linking decides with hindsight
            track_ids=np.array([f.assigned[j].track_id for j in js], np.int64),
            clean=dets.data["clean"][js] if js else np.zeros(0, bool),
            isolated=dets.data["apart"][js] if js else np.zeros(0, bool),
            embeddings=None if embeddings is None else embeddings[js].astype(np.float16),
            positions=(centroids[js] / f.diagonal).astype(np.float32) if js else
            np.zeros((0, 2), np.float32),
            source_ids=dets.source_ids[js].astype(np.int64) if js else np.zeros(0, np.int64),
            at_border=dets.data["at_border"][js] if js else np.zeros(0, bool),
            step_iou=np.array([f.details[j][1] if j in f.details else np.nan for j in js],
                              np.float32),
            chains=np.array([f.assigned[j].chain for j in js], np.int64),
            id_images=self._identification_images(f, js) if self.resolver.wants_id_images
            else None)
        if self.keep_log:
            self.log.append(entry)
        # what the gallery rules propose (nothing while a contested identity is held back);
        # the identity engine decides what is shown
        proposed = np.array([f.assigned[j].track_id if not f.assigned[j].held else -1
                             for j in js], np.int64)
        hints = {e.new_track: e for e in self.decisions[f.decided_before:]}
        out_ids = np.full(len(f.objects), -1, np.int64)
        out_ids[entry.det_index] = self.resolver.observe(entry, proposed, hints)
        self.frames_seen += 1
        self.timing["embed"] += f.embed_seconds
        self.timing["associate"] += time.perf_counter() - f.started - f.embed_seconds
        objects = f.objects
        if self.record:
            # RLE only (a long clip's masks would not fit otherwise), made once: the caller's
            # copy below shares it with the record, so its writers reuse it
            _ = objects.rles
            self.frames.append(objects.with_track_ids(out_ids).compact())
        result = objects.with_track_ids(out_ids)
        if embeddings is not None:
            full = np.zeros((len(objects), embeddings.shape[1]), np.float32)
            full[f.det_index] = embeddings
            result.embeddings = full
        return result

    # ------------------------------------------------------------------ stages
    def _view_cost(self, tracklets: list[Tracklet], masks: FrameObjects,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tracklets x masks: the gated view cost, motion IoU and appearance distance."""
        c = self.config
        boxes = masks.boxes
        partial = masks.data["at_border"]
        rows = Side(views=[t.appearance_gallery().matrix() for t in tracklets],
                    source_ids=np.array([t.source_id for t in tracklets]), items=tracklets,
                    size=len(tracklets))
        cols = Side(views=masks.embeddings, source_ids=masks.source_ids, partial=partial,
                    boxes=boxes, patches=masks.crops, size=len(boxes))
        cost, parts = self._view_costs(rows, cols)
        miou = 1.0 - parts["motion"]
        app = parts["appearance"]
        app0 = np.nan_to_num(app, nan=0.0)
        gate = mahalanobis_gate(tracklets, boxes, c.motion.gate_chi2) | (miou > 0)
        # half-visible at a border: appearance is unreliable, so it neither gates nor weighs
        # fully (motion and the source id carry the match); the same for a tracklet whose
        # gallery holds only a partial glimpse (it entered at a border touching another
        # object): its first whole view looks unlike that glimpse, and is still the object
        known = np.array([t.appearance_known for t in tracklets], bool)
        gate &= (app0 <= c.appearance.gate) | (miou >= 0.5) | partial[None, :] | ~known[:, None]
        # no appearance to vouch for the pair (boxes without images): it must overlap
        gate &= ~np.isnan(app) | (miou >= c.motion.min_iou)
        return np.where(gate, cost, np.inf), miou, app

    def _reach_cost(self, tracklets: list[Tracklet], masks: FrameObjects,
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Distance from each tracklet's last centroid to each mask, in units of how far the
        object can plausibly have gone: ``reach`` times its own size (box diagonal); 1 = the
        edge of reach. Only pairs that appearance vouches for (within ``appearance_gate``) and
        whose areas are within a factor of two can match: a spurious blob or a fragment near
        a moving animal is not the animal."""
        c = self.config
        _, _, app = self._view_cost(tracklets, masks)
        last = np.array([t.centroid for t in tracklets], np.float64)
        size = np.array([t.size for t in tracklets])
        dist = np.linalg.norm(last[:, None, :] - masks.data["centroid"][None, :, :], axis=2)
        cost = dist / np.maximum(c.motion.reach * size, 1e-9)[:, None]
        last_area = np.array([max(int(t.patch.sum()), 1) for t in tracklets], np.float64)
        area = np.array([max(int(patch.sum()), 1) for patch, _ in masks.crops], np.float64)
        ratio = area[None, :] / last_area[:, None]
        # without appearance a mask out of the motion gate is as likely a neighbour
        ok = ~np.isnan(app) & (np.nan_to_num(app, nan=np.inf) <= c.appearance.gate) & \
            (ratio >= 0.5) & (ratio <= 2.0)
        return np.where(ok, cost, np.inf), app

    def _new_tracklet(self, f: _Frame, j: int) -> Tracklet:
        c = self.config
        frame, box, patch = f.frame, f.dets.boxes[j], f.dets.crops[j]
        centroid, borders = f.dets.data["centroid"][j], f.dets.data["border"][j]
        source_id = int(f.dets.source_ids[j])
        embedding = None if f.dets.embeddings is None else f.dets.embeddings[j]
        kalman = BoxKalman(box, c.motion.position_noise, c.motion.velocity_noise,
                           c.motion.measurement_noise)
        tracklet = Tracklet(key=self._next_key, kalman=kalman, first_frame=frame,
                            last_frame=frame, last_box=box.copy(), patch=patch[0],
                            patch_origin=patch[1], centroid=centroid.copy(), borders=borders,
                            source_id=source_id, own_gallery=self._gallery(),
                            chain=self._next_key)
        if embedding is not None:
            tracklet.add_own_view(embedding, bool(f.dets.data["clean"][j]))
        self._next_key += 1
        self.tracklets.append(tracklet)
        return tracklet

    def _update_tracklet(self, tracklet: Tracklet, f: _Frame, j: int) -> None:
        box, patch = f.dets.boxes[j], f.dets.crops[j]
        embedding = None if f.dets.embeddings is None else f.dets.embeddings[j]
        clean = bool(f.dets.data["clean"][j])
        tracklet.last_box = box.copy()
        tracklet.patch, tracklet.patch_origin = patch
        tracklet.centroid = f.dets.data["centroid"][j].copy()
        tracklet.borders = f.dets.data["border"][j]
        tracklet.last_frame = f.frame
        tracklet.misses = 0
        tracklet.hits += 1
        if tracklet.state == TrackState.LOST:
            tracklet.state = TrackState.ACTIVE
        if embedding is None:
            return
        tracklet.add_own_view(embedding, clean)
        if tracklet.identity is not None and clean:
            if tracklet.pending:
                tracklet.pending_embeddings.append(embedding)
            else:
                tracklet.identity.gallery.add(embedding)

    def _follow_crossings(self, f: _Frame) -> None:
        """Crossings resolved by motion continuity.

        Two animals that touch or overlap become one blob (or two pieces of one): the masks
        through it may follow the wrong animal, and look-alikes cannot be told apart by
        appearance. Their motion can: an animal darting through a resting one comes out on
        the far side still moving. Each tracklet records its position and velocity when it
        starts touching; when every tracklet of the group is apart again, the identities that
        went in are matched to the tracklets that came out on distance to where each was
        heading, in units of how far that prediction may be off (:func:`crossing_cost`;
        Hungarian), and swapped when that is clearly better than the tracklets'
        own continuation (``verify_ratio``). Only short crossings (``motion_horizon`` frames
        from the last apart sighting to the first) of objects whose velocity was seen are
        judged so: later, or without a velocity, where an object was heading says little about
        where it is. A trusted source's ids that agree with the continuation also stand.
        """
        c = self.config
        if c.motion.crossings != "motion":
            return
        frame, assigned = f.frame, f.assigned
        touch = touching(f.dets.boxes, f.dets.crops)
        apart = ~touch.any(axis=1)
        for j, tracklet in assigned.items():
            if apart[j]:
                continue
            if tracklet.crossing is None:
                tracklet.crossing = _entry_state(tracklet, frame)
            tracklet.crossed_with |= {assigned[k].key for k in np.flatnonzero(touch[j])
                                      if k in assigned}
        by_key = {t.key: t for t in self.tracklets}
        out_of = [t for j, t in assigned.items() if apart[j] and t.crossing is not None]
        done: set[int] = set()
        for tracklet in out_of:
            if tracklet.key in done:
                continue
            group = {tracklet.key}
            frontier = [tracklet]
            while frontier:  # everything it touched, and what those touched
                for key in frontier.pop().crossed_with:
                    if key not in group and key in by_key:
                        group.add(key)
                        frontier.append(by_key[key])
            members = [by_key[k] for k in group]
            if any(m.crossing is None or m.last_frame != frame for m in members) or \
                    any(not apart[j] for j, t in assigned.items() if t.key in group):
                continue  # some are still touching, or were not seen: not over yet
            done |= group
            entries = [m.crossing for m in members]
            short = frame - min(e.frame for e in entries) <= c.motion.horizon
            if len(members) > 1 and short:
                self._resolve_crossing(frame, members)
            for m in members:
                m.crossing = None
                m.crossed_with = set()
                m.recent = []
        for j, tracklet in assigned.items():
            if apart[j] and tracklet.crossing is None:
                tracklet.recent = [*tracklet.recent[-(RECENT - 1):],
                                   (frame, tracklet.centroid.copy(), tracklet.size)]

    def _resolve_crossing(self, frame: int, members: list[Tracklet]) -> None:
        c = self.config
        entries = [m.crossing for m in members]
        if any(e is None or e.identity is None or e.velocity is None for e in entries):
            return
        if self.trust.trusted and all(
                m.source_id >= 0 and m.source_id == e.source_id for m, e in
                zip(members, entries, strict=True)):
            return  # the source followed each object through, and has never erred
        cost = crossing_cost(entries, np.array([m.centroid for m in members]), frame,
                             c.motion.reach)
        rows = {id(e.identity): r for r, e in enumerate(entries)}
        current = [(rows.get(id(m.identity)), col) for col, m in enumerate(members)]
        if any(r is None for r, _ in current):
            return  # an identity left or joined the group meanwhile
        current_cost = sum(cost[r, col] for r, col in current)
        best = assign(cost, np.inf)
        best_cost = sum(cost[r, col] for r, col in best)
        if len(best) != len(members) or best_cost >= c.reentry.verify_ratio * current_cost:
            return
        identities = [e.identity for e in entries]
        for r, col in best:
            tracklet, identity = members[col], identities[r]
            # the path goes on with the identity: offline, the fragment after the crossing is
            # linked to the one that went in with it, not to its own tracklet's
            tracklet.chain = entries[r].chain
            if tracklet.identity is identity:
                continue
            old = tracklet.track_id
            tracklet.identity = identity
            identity.tracklet = tracklet
            self.decisions.append(RepairEvent(frame, "swap_fixed", tracklet.source_id, old,
                                           identity.track_id, None, None,
                                           float(cost[r, col])))

    def _note_source(self, frame, tracklet, source_id, detail):
        """An in-view match whose source id belonged to another identity: a repaired swap."""
        if source_id < 0:
            return
        owner = self._source_owner.get(source_id)
        identity = tracklet.identity
        if 0 <= tracklet.source_id != source_id:
            self.trust.disagree()  # the source renamed an object it was following
        if owner is not None and identity is not None and owner is not identity and \
                source_id != tracklet.source_id:
            app, miou, cost = detail
            self.decisions.append(RepairEvent(frame, "swap_fixed", source_id, owner.track_id,
                                           identity.track_id, app, miou, cost))
        tracklet.source_id = source_id

    def _observe_contrast(self, f: _Frame) -> None:
        """Clean views of distinct identities in one frame: a sample of how unlike they look."""
        clean, embeddings = f.dets.data["clean"], f.dets.embeddings
        rows = [(j, t.identity) for j, t in f.assigned.items() if clean[j] and
                t.identity is not None and not t.pending and t.identity.gallery.mean is not None]
        if len(rows) > 1:
            self.reentry.scene.observe(embeddings[[j for j, _ in rows]],
                                       np.stack([i.gallery.mean for _, i in rows]))

    def _reentry_costs(self, diagonal: float) -> CostModel:
        c = self.config
        return CostModel([
            Weighted(AppearanceCost(), c.appearance.weight, missing=c.reentry.appearance_gate,
                     column_scale=partial_view_scale(c.appearance.border_weight)),
            Weighted(PositionCost(diagonal), c.reentry.position_weight),
            Weighted(SourceIdAgreement(), -c.association.source_id_bonus)])

    def _absent(self) -> list[Identity]:
        return [i for i in self.identities.values() if i.absent]

    def _lost(self) -> list[Identity]:
        """Verified identities whose tracklet is waiting for its object (unmatched, within
        ``motion.horizon``)."""
        return [i for i in self.identities.values() if i.tracklet is not None and
                i.tracklet.state == TrackState.LOST and not i.tracklet.pending]

    def _end(self, tracklet: Tracklet, frame: int) -> None:
        """The tracklet stops following anything; its identity, if any, becomes absent."""
        tracklet.state = TrackState.ENDED
        self._detach(tracklet, frame)
        self.tracklets.remove(tracklet)

    def _reenter(self, f: _Frame) -> None:
        """A tracklet without identity: one of the absent identities (re-entry) or of those
        whose tracklet waits for its object, or a new one once it has lasted ``min_hits`` frames
        (never beyond ``num_identities``)."""
        c = self.config
        frame, assigned, source_ids = f.frame, f.assigned, f.dets.source_ids
        embeddings, centroids = f.dets.embeddings, f.dets.data["centroid"]
        waiting = [j for j, t in assigned.items() if t.identity is None]
        if not waiting:
            return
        # the absent identities, then those whose tracklet lost its object a few frames ago:
        # an animal that darts while the source misses it comes back out of the motion gate
        # and of reach while its old tracklet still waits for it (motion.horizon)
        absent = self._absent()
        n_absent = len(absent)  # rows past these are identities still held by a waiting tracklet
        if self._keeps_through_dropouts:
            absent += self._lost()
        pairs: list[tuple[int, int]] = []
        cost = app = None
        if c.reentry.enabled and absent and embeddings is not None and self.frames_seen > 0:
            idx = np.array(waiting)
            # a half-visible object at the border says little about its appearance: there the
            # decision leans on where identities left and on the source id, and verification
            # checks it once the object is fully in view
            partial = np.array([bool(assigned[j].borders) for j in waiting])
            rows = Side(views=[i.gallery.matrix() for i in absent],
                        positions=np.stack([i.last_seen.centroid for i in absent]),
                        source_ids=np.array([self._identity_source.get(i.track_id, -1)
                                             for i in absent]), items=absent, size=len(absent))
            cols = Side(views=embeddings[idx], positions=centroids[idx],
                        source_ids=source_ids[idx], partial=partial, size=len(idx))
            cost, parts = self._reentry_costs(f.diagonal)(rows, cols)
            app = parts["appearance"]
            app0 = np.nan_to_num(app, nan=c.reentry.appearance_gate)
            src = parts["source_id"]
            # a view mostly hidden behind another object (the sliver of an animal walking in
            # behind a neighbour) says little about appearance: only the fixed gate applies
            covered = covered_by_others(f.dets.boxes)[idx]
            full = self._all_known()
            # with every identity known there are no passers-by to keep out: the scene's
            # contrast limit guards against those, so only the fixed gate applies
            limit = np.where(covered | full, c.reentry.appearance_gate, self.reentry.limit())
            cost = np.where((app0 <= limit[None, :]) | partial[None, :], cost,
                            np.inf)
            # an identity whose tracklet still waits for it comes back only under its own
            # source id: on look-alikes appearance and the distance from where it was lost
            # would let any newcomer nearby take it
            still_held = np.arange(len(absent)) >= n_absent
            cost = np.where(still_held[:, None] & (src < 1), np.inf, cost)
            # with every identity known, a returning object *is* one of the absent ones
            pairs = assign(cost, np.inf if full else c.reentry.max_cost)
        done = set()
        for r, k in pairs:
            j = waiting[k]
            tracklet, identity = assigned[j], absent[r]
            if identity.tracklet is not None:  # still held: its object came back elsewhere
                self._end(identity.tracklet, frame)
            self._attach(tracklet, identity, pending=True)
            owner = self._source_owner.get(int(source_ids[j]))
            # judged without the source-id bonus: at re-entry the source id is least reliable
            evidence = cost[:, k] + c.association.source_id_bonus * src[:, k]
            others = np.delete(evidence, r)
            runner_up = float(others.min()) if others.size else np.inf
            # contested: the source id points to another identity, or another absent identity
            # is nearly as likely; then the label waits for verification instead of guessing
            close_call = runner_up - float(evidence[r]) < c.reentry.hold_margin
            disagrees = owner is not None and owner is not identity
            vouched = owner is identity and self.trust.trusted
            if owner is not identity and source_ids[j] >= 0:
                self.trust.disagree()
            tracklet.held = self.reentry.hold(close_call=close_call, disagrees=disagrees,
                                              vouched=vouched, source_agrees=owner is identity)
            self.decisions.append(RepairEvent(
                frame, "restored", int(source_ids[j]),
                owner.track_id if owner is not None and owner is not identity else -1,
                identity.track_id, _f(app[r, k]), None, float(cost[r, k])))
            done.add(j)
        for j in waiting:
            if j in done:
                continue
            if assigned[j].hits < c.association.min_hits and self.frames_seen > 0:
                continue  # a new identity needs min_hits frames (spurious blobs do not last)
            if self._all_known():
                continue  # no identity left: a spurious blob or a duplicate; stays unlabelled
            self._new_identity(assigned[j], frame)

    def _verify(self, f: _Frame) -> None:
        """Re-solve provisional identities once a tracklet has enough clean views.

        Jointly over every provisional tracklet with clean views and every absent identity
        (Hungarian on mean gallery distance): when two sheep return and each was provisionally
        given the other's identity, only a joint solution can exchange them.
        """
        c = self.config
        frame = f.frame
        ready = [t for t in f.assigned.values() if t.pending and t.identity is not None and
                 (len(t.pending_embeddings) >= c.reentry.verify_frames or
                  frame - t.pending_since >= c.reentry.verify_timeout)]
        if not ready:
            return
        pending = [t for t in self.tracklets if t.pending and t.identity is not None]
        group = [t for t in pending if t.pending_embeddings]
        # identities held provisionally by tracklets with no clean view yet are up for grabs too
        idle = [t for t in pending if not t.pending_embeddings]
        identities = [t.identity for t in group] + [t.identity for t in idle] + self._absent()
        if group and len(identities) > 1:
            # the mean over each tracklet's clean views of the distance to each identity's
            # gallery: the appearance term, tracklets as rows
            distance = AppearanceCost().matrix(
                Side(views=[i.gallery.matrix() for i in identities], size=len(identities)),
                Side(views=[np.stack(t.pending_embeddings) for t in group], size=len(group)))
            cost = np.where(np.isnan(distance), np.inf, distance).T
            current = sum(cost[r, r] for r in range(len(group)))
            pairs = assign(cost, np.inf)
            better = sum(cost[r, k] for r, k in pairs)
            if len(pairs) == len(group) and np.isfinite(better) and \
                    better < c.reentry.verify_ratio * current - c.reentry.verify_margin:
                old = {t.key: t.identity for t in group + idle}
                for t in group + idle:  # release, then re-attach per the joint solution
                    self._release_provisional(t)
                taken = set()
                for r, k in pairs:
                    t, identity = group[r], identities[k]
                    taken.add(identity.track_id)
                    views = list(t.pending_embeddings)
                    self._attach(t, identity, pending=True)
                    t.pending_embeddings = views
                    if identity is not old[t.key]:
                        self.trust.disagree()
                        self.decisions.append(RepairEvent(
                            frame, "reassigned", int(t.source_id), old[t.key].track_id,
                            identity.track_id, float(cost[r, k]), None, float(cost[r, r])))
                for t in idle:
                    if old[t.key].track_id not in taken:
                        self._attach(t, old[t.key], pending=True)
                    # else: left without identity; re-entry resolves it next frame
        for t in ready:
            if t.identity is None:
                continue
            views = np.stack(t.pending_embeddings) if t.pending_embeddings else None
            own = (float(np.nanmean(t.identity.gallery.distance(views)))
                   if views is not None and t.identity.gallery.mean is not None else 0.0)
            if own > c.reentry.appearance_gate and not self._all_known():
                # clearly not the identity it was given, nor any other absent one: a newcomer
                previous = self._release_provisional(t)
                t.pending = False
                identity = self._new_identity(t, frame)
                self.trust.disagree()
                self.decisions.append(RepairEvent(frame, "reassigned", int(t.source_id),
                                               previous.track_id, identity.track_id, own))
                continue
            self._commit(t)

    def _expire(self, frame):
        c = self.config
        if c.num_identities is not None:
            return
        for tid, identity in list(self.identities.items()):
            if identity.absent and frame - identity.last_seen.frame > c.association.max_age:
                del self.identities[tid]


#: the step IoU logged for a link made by reach: below any real IoU, so the identity model
#: always cuts a fragment there (the link is a guess, however plausible)
REACH_STEP = -1.0
RECENT = 4  # apart sightings kept for a tracklet's velocity into a crossing


def _entry_state(tracklet: Tracklet, frame: int) -> CrossingEntry:
    """Position and velocity of a tracklet as it starts touching: its last apart sighting and
    the mean step over the few before (None when it was not seen apart twice)."""
    recent = tracklet.recent
    if len(recent) < 2:  # no velocity seen: nothing to judge the crossing on
        return CrossingEntry(frame, tracklet.centroid.copy(), None, tracklet.identity,
                             tracklet.source_id, tracklet.chain)
    (first_frame, first, _), (last_frame, last, size) = recent[0], recent[-1]
    velocity = (last - first) / max(last_frame - first_frame, 1)
    return CrossingEntry(last_frame, last.copy(), velocity, tracklet.identity,
                         tracklet.source_id, tracklet.chain, size)


def crossing_cost(entries: list[CrossingEntry], centroids: np.ndarray, frame: int,
                  reach: float) -> np.ndarray:
    """Entries x tracklets out of a crossing: distance from where each entry was heading to
    each tracklet, in units of how far that prediction may be off.

    Why the units: a prediction is only as sure as the motion it extrapolates. A dart carried
    over several frames may end anywhere along and beside its path; a resting animal stays
    within one burst (``reach`` of its size) of where it was. In pixels the dart's large miss
    outweighs the resting animal's clear evidence, and a swap made inside the blob stands
    (zebrafish-07's larvae 2 and 3: ``eval/results/crossing_spread.md``)."""
    heading = np.array([e.centroid + e.velocity * (frame - e.frame) for e in entries])
    distance = np.linalg.norm(heading[:, None, :] - centroids[None, :, :], axis=2)
    spread = np.array([reach * e.size + float(np.hypot(*e.velocity)) * (frame - e.frame)
                       for e in entries])
    return distance / np.maximum(spread, 1.0)[:, None]  # never below a pixel


def _f(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


TRACKERS.register("reid", ReidTracker)

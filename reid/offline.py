"""Offline identity linking: re-assign whole tracklets to identities with hindsight.

Online, a returning animal must be labelled from a few frames; offline we know every clean view
of every tracklet. Tracklets are first cut where association was least certain: where the object
starts or stops touching another one (a crossing is where a tracklet may have followed the wrong
animal). Starting from the online labelling (the identity each tracklet had once verified, not
the first guess at the border), we then alternate (like constrained k-means):

1. an identity's prototype = the clean embeddings of the tracklets currently labelled with it;
2. each tracklet's cost for an identity = mean over its clean views of the min distance to that
   prototype, the tracklet's own views left out (so a tracklet cannot vouch for itself), plus
   ``position_weight`` times the gaps to the identity's neighbouring tracklets in time (an
   animal comes back through the border it left by: the online re-entry prior, with hindsight);
3. tracklets, longest first (their views are the most reliable), take their cheapest identity
   that no tracklet overlapping them in time already holds (cannot-link: one animal is never in
   two places at once), but keep their online identity unless another is clearly (by
   ``switch_margin``) cheaper; with ``num_identities`` no new identity is ever made.

Tracklets with no clean view take the identity of the same tracklet's segments on both sides
when those agree, else keep their online identity unless a time-overlapping tracklet took it.
The result is accepted only if its total cost is lower than the online labelling's, so the
offline pass never trades a consistent online answer for a worse one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.tracks import FrameLog

NEW_IDENTITY_COST = 0.35  # tracker.offline_link_cost
CONTRAST = 0.5  # tracker.offline_contrast


@dataclass
class TrackletSummary:
    key: tuple[int, int]  # (tracklet key, segment between crossings)
    frames: list[int] = field(default_factory=list)
    online_ids: list[int] = field(default_factory=list)
    views: list[np.ndarray] = field(default_factory=list)
    first_position: np.ndarray | None = None  # centroid / frame diagonal, first frame
    last_position: np.ndarray | None = None

    @property
    def span(self) -> tuple[int, int]:
        return self.frames[0], self.frames[-1]

    @property
    def online_id(self) -> int:
        ids = [i for i in self.online_ids if i > 0]
        return max(set(ids), key=ids.count) if ids else -1


def segment_keys(log: list[FrameLog]) -> list[list[tuple[int, int]]]:
    """Per log entry and object, ``(tracklet key, segment)``: a new segment starts whenever the
    object goes from apart to touching another object or back."""
    state: dict[int, tuple[int, bool]] = {}
    out = []
    for entry in log:
        keys = []
        for k, key in enumerate(entry.tracklet_keys):
            key = int(key)
            apart = bool(entry.isolated[k])
            seg, was = state.get(key, (0, apart))
            if apart != was:
                seg += 1
            state[key] = (seg, apart)
            keys.append((key, seg))
        out.append(keys)
    return out


def summarize_tracklets(log: list[FrameLog], max_views: int = 30,
                        ) -> dict[tuple[int, int], TrackletSummary]:
    out: dict[tuple[int, int], TrackletSummary] = {}
    for entry, keys in zip(log, segment_keys(log), strict=True):
        for k, key in enumerate(keys):
            s = out.setdefault(key, TrackletSummary(key))
            s.frames.append(entry.frame)
            s.online_ids.append(int(entry.track_ids[k]))
            if entry.embeddings is not None and entry.clean[k]:
                s.views.append(entry.embeddings[k].astype(np.float32))
            if entry.positions is not None:
                if s.first_position is None:
                    s.first_position = entry.positions[k]
                s.last_position = entry.positions[k]
    for s in out.values():
        if len(s.views) > max_views:  # evenly spread subset keeps cost bounded
            pick = np.linspace(0, len(s.views) - 1, max_views).round().astype(int)
            s.views = [s.views[i] for i in pick]
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _gap_distance(t: TrackletSummary, group: list[TrackletSummary]) -> float:
    """How far ``t`` starts from where the identity's previous tracklet ended, plus how far it
    ends from where the next one starts (fractions of the frame diagonal): an animal comes back
    through the border it left by, and a tracklet cut at a crossing continues where it stopped.
    """
    before = [m for m in group if m.span[1] < t.span[0] and m.last_position is not None]
    after = [m for m in group if m.span[0] > t.span[1] and m.first_position is not None]
    total = 0.0
    if before and t.first_position is not None:
        previous = max(before, key=lambda m: m.span[1])
        total += float(np.linalg.norm(previous.last_position - t.first_position))
    if after and t.last_position is not None:
        following = min(after, key=lambda m: m.span[0])
        total += float(np.linalg.norm(t.last_position - following.first_position))
    return total


def _view_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the views ``a`` of the min cosine distance to the views ``b``."""
    return float(np.mean((1.0 - a @ b.T).min(axis=1)))


def overlapping(tracklets: list[TrackletSummary]) -> dict:
    """For each tracklet key, the other tracklets that overlap it in time (cannot-link)."""
    return {t.key: [o for o in tracklets if o is not t and _overlap(o.span, t.span)]
            for t in tracklets}


def scene_contrast(tracklets: list[TrackletSummary], labels: dict, appearance: dict,
                   neighbours: dict, quantile: float = 0.1,
                   min_pairs: int = 10) -> float | None:
    """How far apart distinct objects look in this video, on the scale of the linking cost:
    a low quantile of the appearance cost between a tracklet and the identities of tracklets
    that overlap it in time (``neighbours``, from :func:`overlapping`: certainly other
    objects). ``None`` with fewer than ``min_pairs`` such pairs. The online tracker's
    :class:`reid.contrast.SceneContrast`, with hindsight."""
    values = []
    for t in tracklets:
        own = labels.get(t.key, -1)
        others = {labels.get(o.key, -1) for o in neighbours[t.key]} - {own, -1}
        values.extend(appearance.get(t.key, {})[i] for i in others
                      if i in appearance.get(t.key, {}))
    if len(values) < min_pairs:
        return None
    return float(np.quantile(values, quantile))


def _costs(tracklets: list[TrackletSummary], labels: dict, position_weight: float,
           appearance_out: dict | None = None) -> dict:
    """cost[key][identity] for tracklets with clean views: appearance (mean over the
    tracklet's views of the min distance to the identity's other views) plus the position
    prior of :func:`_gap_distance`. The appearance part alone goes to ``appearance_out``."""
    members: dict[int, list[TrackletSummary]] = defaultdict(list)
    everyone: dict[int, list[TrackletSummary]] = defaultdict(list)
    for t in tracklets:
        if labels.get(t.key, -1) > 0:
            everyone[labels[t.key]].append(t)
            if t.views:
                members[labels[t.key]].append(t)
    out: dict[int, dict] = {}
    for t in tracklets:
        if not t.views:
            continue
        views = np.stack(t.views)
        out[t.key] = {}
        for identity, group in members.items():
            proto = [v for m in group if m.key != t.key for v in m.views]
            if proto:
                cost = _view_distance(views, np.stack(proto))
                if appearance_out is not None:
                    appearance_out.setdefault(t.key, {})[identity] = cost
                if position_weight:
                    others = [m for m in everyone[identity] if m.key != t.key]
                    cost += position_weight * _gap_distance(t, others)
                out[t.key][identity] = cost
    return out


def _total(costs: dict, labels: dict, missing: float) -> float:
    return sum(costs[k].get(labels[k], missing) for k in costs if labels.get(k, -1) > 0)


def link_offline(log: list[FrameLog], *, num_identities: int | None = None,
                 new_identity_cost: float = NEW_IDENTITY_COST, iterations: int = 5,
                 switch_margin: float = 0.02, position_weight: float = 0.5,
                 contrast: float | None = CONTRAST) -> list[np.ndarray]:
    """Identity per logged object (aligned with each entry's ``det_index``) after global
    re-linking; the online identities where re-linking does not lower the total cost.

    Objects the online pass never attached to an identity (a tracklet's frames before it was
    confirmed) stay unlabelled: an unconfirmed tracklet is often a duplicate box or clutter
    for a frame or two, and offline linking decides *who* an object is, not *whether* it is
    one."""
    labels = _link(log, num_identities, new_identity_cost, iterations, switch_margin,
                   position_weight, contrast)
    return [np.array([labels.get(key, -1) if online > 0 else -1
                      for key, online in zip(keys, entry.track_ids, strict=True)], np.int64)
            for keys, entry in zip(segment_keys(log), log, strict=True)]


def relabel(objects: FrameObjects, entry: FrameLog, labels: np.ndarray) -> FrameObjects:
    """``objects`` with the offline identities of their log entry (others unlabelled)."""
    ids = np.full(len(objects), -1, np.int64)
    ids[entry.det_index] = labels
    return objects.with_track_ids(ids)


def _one_object_per_identity(tracklets: list[TrackletSummary], labels: dict) -> dict:
    """``labels`` where tracklets overlapping in time share an identity: the longest keeps it,
    the others lose it (the online log can hold such pairs after verification rewrote a
    tracklet's past)."""
    out = dict(labels)
    taken: list[tuple[tuple[int, int], int]] = []
    for t in tracklets:  # longest first
        identity = out[t.key]
        if identity <= 0:
            continue
        if any(i == identity and _overlap(span, t.span) for span, i in taken):
            out[t.key] = -1
        else:
            taken.append((t.span, identity))
    return out


def _link(log, num_identities, new_identity_cost, iterations, switch_margin,
          position_weight, contrast) -> dict:
    summaries = summarize_tracklets(log)
    tracklets = sorted(summaries.values(), key=lambda t: -len(t.frames))
    online = _one_object_per_identity(tracklets, {t.key: t.online_id for t in tracklets})
    labels = dict(online)
    next_id = max([i for i in online.values() if i > 0], default=0) + 1
    neighbours = overlapping(tracklets) if contrast is not None and num_identities is None \
        else None
    # a tracklet moves to another identity only if it looks clearly more alike than distinct
    # objects of this video do: where everyone looks alike (pedestrians under a colour
    # histogram) appearance cannot justify re-linking, and the online answer stands
    for _ in range(iterations):
        appearance: dict = {}
        costs = _costs(tracklets, labels, position_weight, appearance)
        scale = None if neighbours is None else \
            scene_contrast(tracklets, labels, appearance, neighbours)
        limit = np.inf if scale is None else contrast * scale
        new: dict = {}
        taken: list[tuple[tuple[int, int], int]] = []  # (span, identity)
        for t in tracklets:
            blocked = {i for span, i in taken if _overlap(span, t.span)}
            mine = online.get(t.key, -1)
            options = {i: c for i, c in costs.get(t.key, {}).items() if i not in blocked and
                       (i == mine or appearance[t.key][i] <= limit)}
            if t.key in costs and options:
                best = min(options, key=options.get)
                if mine in options and options[mine] <= options[best] + switch_margin:
                    new[t.key] = mine  # hysteresis: leave the online label unless clearly worse
                elif options[best] <= new_identity_cost or num_identities is not None:
                    new[t.key] = best
            if t.key not in new:
                # no clean view (a crossing, a border): between two segments of its tracklet
                # that agree, take their label (one stretch of the same object); else keep its
                # online label (not last round's: a round's passing change must not stick
                # here), else continue a neighbouring segment's label
                key, seg = t.key
                before = new.get((key, seg - 1), labels.get((key, seg - 1), -1))
                after = new.get((key, seg + 1), labels.get((key, seg + 1), -1))
                options_no_view = [before if before == after else -1, online.get(t.key, -1),
                                   before, after]
                keep = next((i for i in options_no_view if i > 0 and i not in blocked), -1)
                if keep > 0:
                    new[t.key] = keep
                elif num_identities is None or next_id <= num_identities:
                    new[t.key] = next_id
                    next_id += 1
                else:
                    new[t.key] = -1
            if new[t.key] > 0:
                taken.append((t.span, new[t.key]))
        if new == labels:
            break
        labels = new
    final_costs = _costs(tracklets, labels, position_weight)
    online_costs = _costs(tracklets, online, position_weight)
    if _total(final_costs, labels, new_identity_cost) >= _total(online_costs, online,
                                                                new_identity_cost):
        return online
    return labels

"""Offline identity linking: re-assign whole tracklets to identities with hindsight.

Online, a returning animal must be labelled from a few frames; offline we know every clean view
of every tracklet. Tracklets are first cut where association was least certain: where the object
starts or stops touching another one (a crossing is where a tracklet may have followed the wrong
animal). Starting from the online labelling, we then alternate (like constrained k-means):

1. an identity's prototype = the clean embeddings of the tracklets currently labelled with it;
2. each tracklet's cost for an identity = mean over its clean views of the min distance to that
   prototype, the tracklet's own views left out (so a tracklet cannot vouch for itself);
3. tracklets, longest first (their views are the most reliable), take their cheapest identity
   that no tracklet overlapping them in time already holds (cannot-link: one animal is never in
   two places at once), but keep their online identity unless another is clearly (by
   ``switch_margin``) cheaper; with ``num_identities`` no new identity is ever made.

Tracklets with no clean view keep their online identity unless a time-overlapping tracklet took
it. The result is accepted only if its total cost is lower than the online labelling's, so the
offline pass never trades a consistent online answer for a worse one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from pipeline.frames import FrameObjects
from reid.tracker import FrameLog


@dataclass
class TrackletSummary:
    key: tuple[int, int]  # (tracklet key, segment between crossings)
    frames: list[int] = field(default_factory=list)
    online_ids: list[int] = field(default_factory=list)
    views: list[np.ndarray] = field(default_factory=list)

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
    for s in out.values():
        if len(s.views) > max_views:  # evenly spread subset keeps cost bounded
            pick = np.linspace(0, len(s.views) - 1, max_views).round().astype(int)
            s.views = [s.views[i] for i in pick]
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _costs(tracklets: list[TrackletSummary], labels: dict) -> dict:
    """cost[key][identity] for tracklets with clean views."""
    members: dict[int, list[TrackletSummary]] = defaultdict(list)
    for t in tracklets:
        if labels.get(t.key, -1) > 0 and t.views:
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
                d = 1.0 - views @ np.stack(proto).T
                out[t.key][identity] = float(np.mean(d.min(axis=1)))
    return out


def _total(costs: dict, labels: dict, missing: float) -> float:
    return sum(costs[k].get(labels[k], missing) for k in costs if labels.get(k, -1) > 0)


def link_offline(log: list[FrameLog], *, num_identities: int | None = None,
                 new_identity_cost: float = 0.35, iterations: int = 5,
                 switch_margin: float = 0.02) -> list[np.ndarray]:
    """Identity per logged object (aligned with each entry's ``det_index``) after global
    re-linking; the online identities where re-linking does not lower the total cost."""
    labels = _link(log, num_identities, new_identity_cost, iterations, switch_margin)
    return [np.array([labels.get(key, -1) for key in keys], np.int64)
            for keys in segment_keys(log)]


def relabel(objects: FrameObjects, entry: FrameLog, labels: np.ndarray) -> FrameObjects:
    """``objects`` with the offline identities of their log entry (others unlabelled)."""
    ids = np.full(len(objects), -1, np.int64)
    ids[entry.det_index] = labels
    return objects.with_track_ids(ids)


def _link(log, num_identities, new_identity_cost, iterations, switch_margin) -> dict:
    summaries = summarize_tracklets(log)
    tracklets = sorted(summaries.values(), key=lambda t: -len(t.frames))
    online = {t.key: t.online_id for t in tracklets}
    labels = dict(online)
    next_id = max([i for i in online.values() if i > 0], default=0) + 1
    for _ in range(iterations):
        costs = _costs(tracklets, labels)
        new: dict = {}
        taken: list[tuple[tuple[int, int], int]] = []  # (span, identity)
        for t in tracklets:
            blocked = {i for span, i in taken if _overlap(span, t.span)}
            options = {i: c for i, c in costs.get(t.key, {}).items() if i not in blocked}
            if t.key in costs and options:
                best = min(options, key=options.get)
                mine = online.get(t.key, -1)
                if mine in options and options[mine] <= options[best] + switch_margin:
                    new[t.key] = mine  # hysteresis: leave the online label unless clearly worse
                elif options[best] <= new_identity_cost or num_identities is not None:
                    new[t.key] = best
            if t.key not in new:
                # no clean view (a crossing, a border): keep its online label, else continue
                # the label of the same tracklet's neighbouring segments
                key, seg = t.key
                options_no_view = [labels.get(t.key, -1), new.get((key, seg - 1), -1),
                                   new.get((key, seg + 1), -1), labels.get((key, seg - 1), -1),
                                   labels.get((key, seg + 1), -1)]
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
    final_costs = _costs(tracklets, labels)
    online_costs = _costs(tracklets, online)
    if _total(final_costs, labels, new_identity_cost) >= _total(online_costs, online,
                                                                new_identity_cost):
        return online
    return labels

"""Identity repairs: where the identity shown for an object overrode, or filled in for, what
the mask source said.

Recorded by whoever decides the shown identity (an :class:`~reid.resolvers.IdentityResolver`)
from what it shows, so every repair names an identity that is on screen:

* ``restored``: a tracklet's first shown identity is one shown before (an object came back);
* ``swap_fixed``: the object carries a source id last shown as another identity (the source
  handed one animal's id to another), or two tracklets exchanged their shown identities;
* ``reassigned``: a tracklet's shown identity changed (a provisional decision corrected);
* ``duplicate_suppressed``: a second mask on one object was dropped (no identity shown).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from samtrack.reid.tracks import FrameLog


@dataclass(frozen=True)
class RepairEvent:
    """An identity decision that overrode (or filled in for) the mask source."""

    frame: int  # zero-based frame index
    kind: str  # swap_fixed | restored | reassigned | duplicate_suppressed
    source_id: int
    old_track: int  # the identity the source id (or the previous decision) pointed to; -1 none
    new_track: int  # the identity shown for the object; -1 dropped
    appearance: float | None = None
    motion_iou: float | None = None
    cost: float | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class RepairLog:
    """Repairs derived frame by frame from the identities shown per tracklet.

    ``hints``: the decider's own record of a decision (its costs), by the identity it gave,
    attached to the repair that shows it."""

    def __init__(self) -> None:
        self.events: list[RepairEvent] = []
        self._shown: dict[int, int] = {}  # tracklet key -> identity last shown for it
        self._source_owner: dict[int, int] = {}  # source id -> identity last shown with it
        self._seen: set[int] = set()

    def record(self, entry: FrameLog, shown: np.ndarray,
               hints: dict[int, RepairEvent] | None = None) -> None:
        keys = [int(k) for k in entry.tracklet_keys]
        sources = (entry.source_ids if entry.source_ids is not None
                   else np.full(len(keys), -1)).tolist()
        before = [self._shown.get(k) for k in keys]
        for row, (key, source) in enumerate(zip(keys, sources, strict=True)):
            new = int(shown[row])
            if new <= 0:
                continue
            owner = self._source_owner.get(source) if source >= 0 else None
            kind, old = None, -1
            if before[row] is not None and before[row] != new:
                exchanged = any(before[other] == new and int(shown[other]) == before[row]
                                for other in range(len(keys)) if other != row)
                kind, old = ("swap_fixed" if exchanged else "reassigned"), before[row]
            elif before[row] is None and new in self._seen:
                kind, old = "restored", owner if owner is not None and owner != new else -1
            elif owner is not None and owner != new:
                kind, old = "swap_fixed", owner
            if kind is not None:
                hint = (hints or {}).get(new)
                self.events.append(RepairEvent(
                    entry.frame, kind, source, old, new,
                    hint.appearance if hint else None, hint.motion_iou if hint else None,
                    hint.cost if hint else None))
            self._shown[key] = new
            self._seen.add(new)
            if source >= 0:
                self._source_owner[source] = new

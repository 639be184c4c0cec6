"""What the person at the live page said: names, selections and identity corrections.

**Corrections are constraints.** The tracker's identities are shown through a map
``track id -> displayed id``. "These two are swapped" exchanges two entries; "this is Sheep1"
gives the object the displayed id named Sheep1 and its previous owner the object's old one. The
map keeps applying from that frame on, so a returning object the tracker re-identifies keeps the
corrected identity, and two objects never show one identity (cannot-link). Every action is
logged with its frame, in memory and in ``corrections.jsonl`` in the run folder.

Nothing here knows the stream, the tracker or the web server: the session resolves a click to
``(displayed id, tracker id)`` and hands it over.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samtrack.pipeline.core.errors import UserError
from samtrack.pipeline.core.frames import FrameObjects


class RequestError(UserError):
    """A request the session cannot carry out: the API answers ``status`` (404 nothing there,
    409 conflicts with what exists, 422 not a valid request) with this message."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Corrections:
    """The identity map, names and selection; :meth:`display` applies them to a frame."""

    remap: dict[int, int] = field(default_factory=dict)  # tracker id -> displayed id
    names: dict[int, str] = field(default_factory=dict)  # displayed id -> name
    selected: set[int] = field(default_factory=set)  # displayed ids followed (empty: all)
    removed: set[int] = field(default_factory=set)  # displayed ids hidden
    selected_sources: set[int] = field(default_factory=set)  # sam2-video prompt ids
    pending_names: dict[int, str] = field(default_factory=dict)  # prompt id -> name
    log: list[dict[str, Any]] = field(default_factory=list)

    def displayed(self, track_id: int) -> int:
        """The identity shown now for a tracker id (-1 for none)."""
        return self.remap.get(track_id, track_id) if track_id > 0 else -1

    # ------------------------------------------------------------------ applying
    def display(self, tracked: FrameObjects) -> tuple[FrameObjects, np.ndarray]:
        """The shown objects with displayed ids, and their tracker ids."""
        shown = tracked[np.flatnonzero(self._kept(tracked))]
        ids = np.array([self.displayed(int(t)) for t in shown.track_ids], np.int64)
        return shown.with_track_ids(ids), shown.track_ids.copy()

    def _kept(self, tracked: FrameObjects) -> np.ndarray:
        """Which objects are shown: the selection (if any) without the removed ones. A SAM2
        object prompted from the page joins the selection (and takes its name) once it has
        an identity."""
        keep = np.ones(len(tracked), bool)
        display = np.array([self.remap.get(int(t), int(t)) for t in tracked.track_ids])
        for i, (track_id, source_id) in enumerate(zip(tracked.track_ids, tracked.source_ids,
                                                      strict=True)):
            if track_id > 0 and int(source_id) in self.pending_names:
                self.names[int(display[i])] = self.pending_names.pop(int(source_id))
            if int(source_id) in self.selected_sources and track_id > 0:
                self.selected.add(int(display[i]))
        if self.selected:
            keep &= np.isin(display, list(self.selected))
        if self.removed:
            keep &= ~np.isin(display, list(self.removed))
        return keep

    # ------------------------------------------------------------------ actions
    def select(self, display: int) -> None:
        self.selected.add(display)
        self.removed.discard(display)

    def select_prompt(self, prompt_id: int, name: str | None) -> None:
        self.selected_sources.add(prompt_id)
        if name:
            self.pending_names[prompt_id] = name

    def remove(self, display: int) -> None:
        self.removed.add(display)
        self.selected.discard(display)

    def name(self, display: int, name: str) -> None:
        for other, existing in list(self.names.items()):
            if existing == name and other != display:
                raise RequestError(f"name {name!r} already belongs to identity {other}", 409)
        self.names[display] = name

    def swap(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        """Two objects, each ``(displayed id, tracker id)``, carry each other's identity."""
        (da, ta), (db, tb) = a, b
        if ta == tb:
            raise RequestError("both points are on the same object", 422)
        self.remap[ta], self.remap[tb] = db, da

    def assign(self, display: int, track: int, name: str, seen: set[int]) -> int:
        """"This is <name>": the object takes the identity named ``name``; the object that
        had it (among the tracker ids ``seen``) takes the object's old one, so no two
        objects show one identity. Returns the identity now shown for the object."""
        target = next((d for d, n in self.names.items() if n == name), None)
        if target is None:
            raise RequestError(f"no identity is named {name!r} (name one first)")
        if target != display:
            holder = next((t for t in set(self.remap) | seen if t != track and
                           self.remap.get(t, t) == target), None)
            self.remap[track] = target
            if holder is not None:
                self.remap[holder] = display
        return target

    def record(self, entry: dict[str, Any], folder: Path, file: str) -> dict[str, Any]:
        """Log an action (``frame`` first, then the time) in memory and in the run folder."""
        entry = {"frame": entry.pop("frame"), "time": round(time.time(), 3), **entry}
        self.log.append(entry)
        with (folder / file).open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        return entry

    def names_by_id(self) -> dict[str, str]:
        return {str(k): v for k, v in self.names.items()}

"""Who decides the identity shown for each tracklet: one interface, three engines.

The tracker (:class:`~reid.tracker.ReidTracker`) follows objects frame to frame (tracklets)
and proposes an identity for each, by its gallery rules (re-entry, verification, holds). An
:class:`IdentityResolver` decides what is *shown*:

* ``gallery``: the tracker's proposal, as it stands each frame (streaming, no model);
* ``model``: the per-clip identity model online (:mod:`reid.online_identities`), once every
  individual was seen apart; the proposal until then;
* ``offline``: the per-clip identity model over the whole clip with hindsight
  (:mod:`reid.identities`), at :meth:`finalize`; frames are re-labelled then.

Whoever decides the shown identity records the repairs (:class:`~reid.repairs.RepairLog`), so
every repair names an identity that is shown. A new engine is a subclass and one
``RESOLVERS.register`` line; ``tracker.identities`` then accepts its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from samtrack.pipeline.core.registry import Registry
from samtrack.reid.embedders.learned import LearnedEmbedder
from samtrack.reid.identities import link_identities
from samtrack.reid.online_identities import OnlineIdentities
from samtrack.reid.repairs import RepairEvent, RepairLog
from samtrack.reid.tracks import FrameLog

if TYPE_CHECKING:
    from samtrack.reid.config import TrackerConfig


class IdentityResolver(ABC):
    """``observe(entry, proposed) -> shown`` per frame; ``finalize(log)`` at the clip's end."""

    #: the shown identities are only final after :meth:`finalize` (outputs wait for it)
    needs_whole_clip = False
    #: keep every frame's log for :meth:`finalize`
    keeps_log = False
    #: decides on the identity model's fragments, so it can learn a representation from them
    #: (``tracker.learned``)
    learns_from_fragments = False

    def __init__(self, config: TrackerConfig, *, has_appearance: bool,
                 device: str = "cpu") -> None:
        self.config = config
        self.has_appearance = has_appearance
        self.device = device
        self.reset()

    @property
    def wants_id_images(self) -> bool:
        """Log identification images of apart views (for a representation learned from the
        clip's fragments, ``tracker.learned``)."""
        return self.learns_from_fragments and self.config.learns and \
            self.has_appearance

    def reset(self) -> None:
        self.repair_log = RepairLog()

    @abstractmethod
    def observe(self, entry: FrameLog, proposed: np.ndarray,
                hints: dict[int, RepairEvent]) -> np.ndarray:
        """The identity shown for each row of ``entry`` (-1: none), given the tracker's
        ``proposed`` one (-1 where it holds it back) and its decisions of this frame
        (``hints``, by identity, for the repair record)."""

    def end(self) -> None:
        """The clip or stream has ended (before :meth:`finalize`): stop work still running."""
        return None

    def finalize(self, log: list[FrameLog], *, progress: bool = False,
                 ) -> list[np.ndarray] | None:
        """Final identities per row of every logged frame, or ``None``: the shown ones stand."""
        return None

    def summary(self) -> dict:
        """What ``summary.json`` says under ``identities`` (empty: nothing to say)."""
        return {}

    def repairs(self) -> list[RepairEvent]:
        return list(self.repair_log.events)

    @property
    def representation(self) -> LearnedEmbedder | None:
        """The representation learned from the clip that decided identities (None: none)."""
        return None


RESOLVERS: Registry[type[IdentityResolver]] = Registry("identity engine", "tracker.identities")


class GalleryIdentities(IdentityResolver):
    """The tracker's gallery rules decide: what it proposes is shown."""

    def summary(self) -> dict:
        return {"engine": "gallery"}

    def observe(self, entry: FrameLog, proposed: np.ndarray,
                hints: dict[int, RepairEvent]) -> np.ndarray:
        self.repair_log.record(entry, proposed, hints)
        return proposed


class ModelIdentities(IdentityResolver):
    """The per-clip identity model online; the tracker's proposal while it warms up (and
    always when there is no appearance to learn from)."""

    learns_from_fragments = True

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "model"):  # a new clip: the last one's work ends
            self.end()
        c = self.config
        self.model = OnlineIdentities(
            c.num_identities, show_border_guesses=c.model.border_guesses,
            border_wait_factor=c.model.border_guess_wait, agreed_links=c.model.agreed_links,
            learned=c.learned.settings(self.device) if self.wants_id_images else None,
            train_in_background=bool(c.learned.background),
        ) if self.has_appearance else None
        self.took_over: int | None = None

    def observe(self, entry: FrameLog, proposed: np.ndarray,
                hints: dict[int, RepairEvent]) -> np.ndarray:
        decided = self.model.observe(entry) if self.model is not None else None
        if decided is None:
            shown = proposed
        else:
            if self.took_over is None:
                self.took_over = entry.frame
            shown, hints = decided, {}  # the tracker's decisions are not what is shown
        self.repair_log.record(entry, shown, hints)
        return shown

    def end(self) -> None:
        if self.model is not None:
            self.model.end()

    def summary(self) -> dict:
        if self.model is None:
            return {"engine": "model", "online_identity_model": False,
                    "why": "no appearance embedder: the gallery rules decided"}
        return {"engine": "model", **self.model.summary(), "took_over_frame": self.took_over}

    @property
    def representation(self) -> LearnedEmbedder | None:
        return self.model.embedder if self.model is not None else None


class OfflineIdentities(IdentityResolver):
    """The per-clip identity model over the whole clip, with hindsight."""

    needs_whole_clip = True
    keeps_log = True
    learns_from_fragments = True

    def reset(self) -> None:
        super().reset()
        self._summary: dict = {}
        self._representation: LearnedEmbedder | None = None

    def observe(self, entry: FrameLog, proposed: np.ndarray,
                hints: dict[int, RepairEvent]) -> np.ndarray:
        return proposed  # provisional: finalize() decides what is shown

    def finalize(self, log: list[FrameLog], *, progress: bool = False,
                 ) -> list[np.ndarray] | None:
        learned = self.config.learned.settings(self.device) if self.wants_id_images else None
        linked = link_identities(log, num_identities=self.config.num_identities,
                                 progress=progress, learned=learned)
        self._summary = {"engine": "offline", **linked.summary()}
        self._representation = linked.representation
        self.repair_log = RepairLog()
        for entry, labels in zip(log, linked.labels, strict=True):
            self.repair_log.record(entry, labels)
        return linked.labels

    def summary(self) -> dict:
        return self._summary

    @property
    def representation(self) -> LearnedEmbedder | None:
        return self._representation


RESOLVERS.register("gallery", GalleryIdentities)
RESOLVERS.register("model", ModelIdentities)
RESOLVERS.register("offline", OfflineIdentities)

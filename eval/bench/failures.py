"""Turn ground truth into the masks a SAM2 masklet source would give, failures included.

SAM2's video predictor keeps one masklet per prompted object id and is excellent while objects
stay in view. What goes wrong with look-alike objects, and what this simulator reproduces (each
with its own probability, all driven by one seed):

``swap_on_reentry``
    an object that comes back after being out of view is picked up by *another* object's masklet
    (Sheep1 gets Sheep2's id and, when Sheep2 returns, it gets Sheep1's);
``new_id_on_reentry``
    a returning object is treated as new: it gets a fresh id (automatic re-seeding does this);
``swap_at_crossing``
    when two objects touch or cross, their masklets exchange objects from then on;
``drop``
    an object's mask is missing for a run of frames (low object score), ``drop_length`` frames;
``jitter``
    mask boundaries eroded or dilated by up to ``jitter_px`` pixels, per object and frame;
``spurious``
    a short-lived blob on the background with an id of its own (a wrong automatic seed);
``relabel_every``
    every so many frames, every object gets a fresh id in a new random order (what a per-frame
    segmenter's numbering looks like); 0: never;
``duplicate``
    a second masklet latches onto the same animal for ``duplicate_length`` frames: the id of an
    object that is out of view (its masklet drifted onto a look-alike), else a fresh id; the
    duplicate mask covers most of the animal, so the two masks overlap.

Masks may overlap (duplicates), so the output is a list of :class:`FrameObjects` per frame and is
saved as MOTS txt, which keeps each mask separately. Every injected failure is logged as a
:class:`FailureEvent`, so tests and the benchmark can check what the tracker was up against.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from samtrack.pipeline.core.formats import MotsRow, format_mots_row, write_text_atomic
from samtrack.pipeline.core.frames import FrameObjects


@dataclass(frozen=True)
class FailureSpec:
    """Probabilities of each SAM2-style failure (0 = never). See the module docstring."""

    swap_on_reentry: float = 0.0
    new_id_on_reentry: float = 0.0
    swap_at_crossing: float = 0.0
    drop: float = 0.0  # chance per visible object per frame that a drop run starts
    drop_length: int = 3
    jitter: float = 0.0  # chance per object per frame of an eroded/dilated boundary
    jitter_px: int = 2
    spurious: float = 0.0  # chance per frame that a spurious blob appears
    spurious_length: int = 6
    duplicate: float = 0.0  # chance per visible object per frame that a duplicate starts
    duplicate_length: int = 8
    reentry_gap: int = 3  # frames out of view before a reappearance counts as re-entry
    relabel_every: int = 0  # frames between renumberings of every object; 0: never
    seed: int = 0

    @classmethod
    def none(cls) -> FailureSpec:
        return cls()

    @classmethod
    def sam2_like(cls, seed: int = 0, crowded: bool = False) -> FailureSpec:
        """The mix used by the benchmark's look-alike and crowded sets."""
        return cls(swap_on_reentry=0.45, new_id_on_reentry=0.3,
                   swap_at_crossing=0.35 if crowded else 0.2, drop=0.01, jitter=0.3,
                   spurious=0.02, duplicate=0.004, seed=seed)


@dataclass(frozen=True)
class FailureEvent:
    frame: int  # zero-based
    kind: str
    gt_ids: tuple[int, ...]
    source_ids: tuple[int, ...]


@dataclass
class SimulatedMasks:
    frames: list[FrameObjects]
    events: list[FailureEvent] = field(default_factory=list)

    def write_mots(self, path: str | Path) -> None:
        """Save as MOTS txt (1-based frames, class 1; overlapping masks allowed)."""
        lines = []
        for obj in self.frames:
            h, w = obj.image_size
            lines += [format_mots_row(MotsRow(obj.frame_index + 1, int(i), 1, h, w, rle))
                      for i, rle in zip(obj.source_ids, obj.rles, strict=True)]
        write_text_atomic(path, "".join(lines))

    def count(self, kind: str) -> int:
        return sum(e.kind == kind for e in self.events)


def _touching(a: np.ndarray, b: np.ndarray) -> bool:
    grown = cv2.dilate(a.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return bool((grown & b).any())


def simulate(ground_truth: Iterable[FrameObjects], spec: FailureSpec) -> SimulatedMasks:
    """Apply ``spec``'s failures to ground-truth frames (``source_ids`` = true identity)."""
    rng = np.random.default_rng([spec.seed, 17])
    mapping: dict[int, int] = {}  # true id -> source id given now
    last_seen: dict[int, int] = {}
    dropping: dict[int, int] = {}  # true id -> frames left in a drop run
    duplicates: dict[int, tuple[int, int]] = {}  # true id -> (source id, frames left)
    spurious: list[tuple[np.ndarray, int, int]] = []  # (mask, source id, frames left)
    in_contact: set[tuple[int, int]] = set()
    next_id = 1
    out = SimulatedMasks(frames=[])

    def fresh() -> int:
        nonlocal next_id
        nid = next_id
        next_id += 1
        return nid

    for gt in ground_truth:
        t = gt.frame_index
        masks = gt.masks
        ids = [int(i) for i in gt.source_ids]
        visible = set(ids)
        if spec.relabel_every and t and t % spec.relabel_every == 0:
            order = rng.permutation(sorted(mapping))
            for true_id in order:
                mapping[int(true_id)] = fresh()
            out.events.append(FailureEvent(t, "relabel", tuple(int(i) for i in order),
                                           tuple(mapping[int(i)] for i in order)))
        for true_id in ids:
            if true_id not in mapping:
                mapping[true_id] = fresh()
                next_id = max(next_id, mapping[true_id] + 1)
                continue
            gap = t - last_seen.get(true_id, t)
            if gap > spec.reentry_gap:
                roll = rng.random()
                away = [o for o in mapping if o != true_id and o not in visible]
                if roll < spec.swap_on_reentry:
                    if away:  # a swap needs a partner out of view (its masklet is free)
                        other = int(rng.choice(away))
                        mapping[true_id], mapping[other] = mapping[other], mapping[true_id]
                        out.events.append(FailureEvent(t, "swap_on_reentry", (true_id, other),
                                                       (mapping[true_id], mapping[other])))
                elif roll < spec.swap_on_reentry + spec.new_id_on_reentry:
                    old = mapping[true_id]
                    mapping[true_id] = fresh()
                    out.events.append(FailureEvent(t, "new_id_on_reentry", (true_id,),
                                                   (old, mapping[true_id])))
        # crossings: a new contact between two visible objects may exchange their masklets
        contacts = set()
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                if _touching(masks[a], masks[b]):
                    pair = (min(ids[a], ids[b]), max(ids[a], ids[b]))
                    contacts.add(pair)
                    if pair not in in_contact and rng.random() < spec.swap_at_crossing:
                        i, j = pair
                        mapping[i], mapping[j] = mapping[j], mapping[i]
                        out.events.append(FailureEvent(t, "swap_at_crossing", pair,
                                                       (mapping[i], mapping[j])))
        in_contact = contacts
        for true_id in ids:
            last_seen[true_id] = t

        out_masks, out_ids = [], []
        for k, true_id in enumerate(ids):
            if dropping.get(true_id, 0) > 0:
                dropping[true_id] -= 1
                continue
            if rng.random() < spec.drop:
                dropping[true_id] = spec.drop_length - 1
                out.events.append(FailureEvent(t, "drop", (true_id,), (mapping[true_id],)))
                continue
            m = masks[k]
            if spec.jitter_px > 0 and rng.random() < spec.jitter:
                size = int(rng.integers(1, spec.jitter_px + 1)) * 2 + 1
                kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
                op = cv2.erode if rng.random() < 0.5 else cv2.dilate
                changed = op(m.astype(np.uint8), kernel).astype(bool)
                if changed.any():
                    m = changed
            out_masks.append(m)
            out_ids.append(mapping[true_id])
            if true_id not in duplicates and rng.random() < spec.duplicate:
                away = [mapping[o] for o in mapping if o not in visible]
                dup_id = int(rng.choice(away)) if away else fresh()
                duplicates[true_id] = (dup_id, spec.duplicate_length)
                out.events.append(FailureEvent(t, "duplicate", (true_id,),
                                               (mapping[true_id], dup_id)))
            if true_id in duplicates:
                dup_id, left = duplicates[true_id]
                # the latched masklet covers most, not all, of the animal
                part = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                if part.any() and dup_id not in out_ids:
                    out_masks.append(part)
                    out_ids.append(dup_id)
                duplicates[true_id] = (dup_id, left - 1)
                if left - 1 <= 0:
                    del duplicates[true_id]
        for true_id in list(duplicates):
            if true_id not in visible:
                del duplicates[true_id]
        # spurious blobs on the background
        h, w = gt.image_size
        if rng.random() < spec.spurious:
            blob = np.zeros((h, w), np.uint8)
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(6, 20)), int(rng.integers(6, 20)))
            cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            occupied = masks.any(axis=0) if len(masks) else np.zeros((h, w), bool)
            blob_mask = blob.astype(bool) & ~occupied
            if blob_mask.sum() > 20:
                sid = fresh()
                spurious.append((blob_mask, sid, spec.spurious_length))
                out.events.append(FailureEvent(t, "spurious", (), (sid,)))
        still = []
        for blob_mask, sid, left in spurious:
            out_masks.append(blob_mask)
            out_ids.append(sid)
            if left > 1:
                still.append((blob_mask, sid, left - 1))
        spurious = still
        stack = np.stack(out_masks) if out_masks else np.zeros((0, h, w), bool)
        out.frames.append(FrameObjects.from_masks(
            stack, frame_index=t, frame_name=gt.frame_name, source_ids=out_ids).compact())
    return out

"""The benchmark's scene sets: generated scenes plus SAM2-style masks, deterministic by seed.

Sets (rows of the benchmark table):

* ``easy``: 2-3 animals that rarely leave the view; only mild mask noise (drops, jitter).
* ``lookalike``: 2-4 look-alikes leaving and re-entering through the borders, with the full
  SAM2 failure mix (swaps and new ids on re-entry, crossing swaps, drops, spurious blobs,
  duplicates).
* ``crowded``: 6-8 animals, many crossings and occlusions, crossing swaps more likely.
* ``clean``: the look-alike scenes with perfect masks and ids (no failures): samtrack must never
  be worse than the raw ids here.
* ``long``: 1500-3000 frames, 3-8 look-alikes leaving and re-entering again and again, the
  SAM2 failure mix: where identities must hold for minutes, not seconds.

The **arena** family (:mod:`eval.bench.arena`) is a second generator that shares nothing with
the meadow scenes above but the format: fish-like bodies in a round arena, burst-and-glide
motion, lighting changes, a detector's failures instead of SAM2's. Its sets:

* ``arena``: 3-6 animals, the whole arena in view;
* ``arena-exits``: 3-5 animals, a third of the arena outside the picture (exits and returns);
* ``arena-crowded``: 8-10 animals;
* ``arena-long``: 1500-3000 frames, 3-8 animals, a quarter of the arena outside the picture.
* ``arena-heavy``: 1500 frames, 4-6 animals, a quarter of the arena outside the picture, and
  a detector failing twice as often (:meth:`DetectorFailures.heavy`): where the identity
  engine has the shortest fragments to work with.

Every default was chosen on the meadow family's ``tune`` seeds; the arena family's rows are
what those choices give on scenes nobody tuned on.

**Splits.** ``tune`` is the seeds every default so far was chosen on (100 + k); ``report`` is
a disjoint range (700 + k) that no choice has looked at. Tables say which split they show;
a number meant to predict what users see comes from ``report``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from samtrack.eval.bench.arena import ArenaScene, ArenaSpec, DetectorFailures
from samtrack.eval.bench.failures import FailureSpec
from samtrack.eval.bench.scenes import Scene, SceneSpec


@dataclass(frozen=True)
class BenchScene:
    set_name: str
    name: str
    scene: SceneSpec | ArenaSpec
    failures: FailureSpec | DetectorFailures

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The rendered clip: (image, id map of the true objects) per frame."""
        arena = isinstance(self.scene, ArenaSpec)
        return (ArenaScene(self.scene) if arena else Scene(self.scene)).frames()


SPLIT_SEEDS = {"tune": 100, "report": 700}
SETS = ("easy", "lookalike", "crowded", "clean", "long", "arena", "arena-exits",
        "arena-crowded", "arena-long", "arena-heavy")


def unknown_set(sets: tuple[str, ...]) -> str | None:
    """The first name in ``sets`` that is no set, with the known ones: a typo would otherwise
    give a table without that set's rows."""
    for name in sets:
        if name not in SETS:
            return f"unknown set {name!r} (sets: {', '.join(SETS)})"
    return None


def scene_sets(num_scenes: int = 3, num_frames: int = 300,
               sets: tuple[str, ...] = ("easy", "lookalike", "crowded", "clean"),
               split: str = "tune") -> list[BenchScene]:
    out = []
    for k in range(num_scenes):
        seed = SPLIT_SEEDS[split] + k
        if "long" in sets:
            spec = SceneSpec(num_animals=3 + (2 * k) % 6, num_frames=1500 + 750 * (k % 3),
                             seed=seed + 30, exit_every=2)
            out.append(BenchScene("long", f"long-{split}-{k}", spec,
                                  FailureSpec.sam2_like(seed=seed + 30)))
        if "easy" in sets:
            spec = SceneSpec(num_animals=2 + k % 2, num_frames=num_frames, seed=seed,
                             exit_every=4)
            out.append(BenchScene("easy", f"easy-{k}", spec,
                                  FailureSpec(drop=0.005, jitter=0.3, seed=seed)))
        look = SceneSpec(num_animals=2 + k % 3, num_frames=num_frames, seed=seed + 10,
                         exit_every=2)
        if "lookalike" in sets:
            out.append(BenchScene("lookalike", f"lookalike-{k}", look,
                                  FailureSpec.sam2_like(seed=seed + 10)))
        if "crowded" in sets:
            spec = SceneSpec(num_animals=6 + k % 3, num_frames=num_frames, seed=seed + 20,
                             exit_every=3, speed=4.0)
            out.append(BenchScene("crowded", f"crowded-{k}", spec,
                                  FailureSpec.sam2_like(seed=seed + 20, crowded=True)))
        if "clean" in sets:
            out.append(BenchScene("clean", f"clean-{k}", look, FailureSpec.none()))
        out.extend(_arena_sets(k, seed, num_frames, sets, split))
    return out


def _arena_sets(k: int, seed: int, num_frames: int, sets: tuple[str, ...], split: str,
                ) -> list[BenchScene]:
    out = []
    detector = DetectorFailures
    arena = {  # each set's scene and how its detector fails
        "arena": (ArenaSpec(num_animals=3 + k % 4, num_frames=num_frames, seed=seed + 40),
                  detector),
        "arena-exits": (ArenaSpec(num_animals=3 + k % 3, num_frames=num_frames,
                                  seed=seed + 50, view_crop=0.33), detector),
        "arena-crowded": (ArenaSpec(num_animals=8 + k % 3, num_frames=num_frames,
                                    seed=seed + 60, body_length=40.0), detector),
        "arena-long": (ArenaSpec(num_animals=3 + (2 * k) % 6, num_frames=1500 + 750 * (k % 3),
                                 seed=seed + 70, view_crop=0.25), detector),
        "arena-heavy": (ArenaSpec(num_animals=4 + k % 3, num_frames=1500, seed=seed + 80,
                                  view_crop=0.25), detector.heavy),
    }
    for name, (spec, failures) in arena.items():
        if name in sets:
            out.append(BenchScene(name, f"{name}-{split}-{k}", spec, failures(seed=spec.seed)))
    return out

"""The second scene family (eval.bench.arena): deterministic, and its failures are what its
docstring says."""

from __future__ import annotations

import numpy as np
import pytest

from samtrack.eval.bench.arena import ArenaScene, ArenaSpec, DetectorFailures, detector_masks
from samtrack.eval.bench.sets import scene_sets
from samtrack.pipeline.core.frames import FrameObjects


def _truth(spec: ArenaSpec) -> tuple[list[np.ndarray], list[FrameObjects]]:
    frames = list(ArenaScene(spec).frames())
    return [im for im, _ in frames], [FrameObjects.from_id_map(m, frame_index=t).compact()
                                      for t, (_, m) in enumerate(frames)]


def test_same_spec_same_bytes_and_every_animal_is_labelled():
    spec = ArenaSpec(num_animals=4, num_frames=30, seed=5)
    images, truth = _truth(spec)
    again, _ = _truth(spec)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))
    assert {len(t) for t in truth} == {4}
    assert images[0].shape == (spec.size, spec.size, 3)


@pytest.mark.slow
def test_a_cropped_view_lets_animals_leave():
    spec = ArenaSpec(num_animals=5, num_frames=120, seed=1, view_crop=0.4)
    images, truth = _truth(spec)
    assert images[0].shape[1] == round(spec.size * 0.6)
    assert min(len(t) for t in truth) < 5  # someone is out of the picture at times


@pytest.mark.slow
def test_detector_failures_merge_renumber_and_miss():
    spec = ArenaSpec(num_animals=8, num_frames=60, seed=2, body_length=40.0)
    _, truth = _truth(spec)
    quiet = detector_masks(spec, DetectorFailures(merge_renumber=0, merge_exchange=0, miss=0,
                                                  miss_when_fast=0, split=0, reflection=0),
                           truth)
    # without failures, only merges change the count: touching animals become one mask
    merges = sum(len(t) - len(q) for t, q in zip(truth, quiet, strict=True))
    assert merges > 0
    assert all(len(q) <= len(t) for t, q in zip(truth, quiet, strict=True))
    noisy = detector_masks(spec, DetectorFailures(seed=2), truth)
    ids_quiet = {int(i) for q in quiet for i in q.source_ids}
    ids_noisy = {int(i) for q in noisy for i in q.source_ids}
    assert len(ids_quiet) == 8 and len(ids_noisy) > 8  # renumbering, splits, reflections


def test_the_arena_family_is_in_the_bench_sets():
    scenes = scene_sets(2, 40, ("arena", "arena-exits", "arena-crowded", "arena-long"),
                        "report")
    assert {s.set_name for s in scenes} == {"arena", "arena-exits", "arena-crowded",
                                            "arena-long"}
    assert all(isinstance(s.failures, DetectorFailures) for s in scenes)

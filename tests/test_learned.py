"""The representation learned from one clip (reid.embedders.learned) and its use offline."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from textured import crossing_clip, views

from samtrack.eval.bench.learned_probe import nearest_centroid_accuracy
from samtrack.reid.config import TrackerConfig
from samtrack.reid.embedders import HistogramEmbedder
from samtrack.reid.embedders.learned import (
    ImageGeometry,
    LearnedSettings,
    identification_images,
    mask_extents,
    train_representation,
)
from samtrack.reid.identities import link_identities

FAST = LearnedSettings(max_steps=150, check_every=25, seconds=60)


def _geometry(pairs) -> ImageGeometry:
    return ImageGeometry.from_extents(np.concatenate([mask_extents(o) for _, o in pairs]), 64)


def _fragments(kinds: dict[str, list], geometry: ImageGeometry, length: int):
    """Both bodies' views cut into fragments of ``length`` frames, the two of each time
    window coexisting (so: different individuals), as a tracker would cut them."""
    images, spans = [], []
    n = min(len(v) for v in kinds.values())
    for start in range(0, n - length + 1, length):
        for pairs in kinds.values():
            chunk = pairs[start:start + length]
            images.append(np.concatenate([identification_images(im, o, geometry)
                                          for im, o in chunk]))
            spans.append((start, start + length - 1))
    return images, spans


def _nearest_centroid(train: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> float:
    """The probe's measure (eval.bench.learned_probe) on views grouped by body."""
    names = sorted(train)
    embeddings = np.concatenate([train[k] for k in names] + [test[k] for k in names])
    ids = np.concatenate([np.full(len(train[k]), n) for n, k in enumerate(names)]
                         + [np.full(len(test[k]), n) for n, k in enumerate(names)])
    fitted = np.arange(len(ids)) < sum(len(train[k]) for k in names)
    return nearest_centroid_accuracy(embeddings, ids, fitted)


def test_identification_images_turn_with_the_body():
    rng = np.random.default_rng(0)
    pairs = views("stripes", 6, rng)
    geometry = _geometry(pairs)
    images = np.concatenate([identification_images(im, o, geometry) for im, o in pairs])
    assert images.shape[1:] == (*geometry.shape, 3) and geometry.shape[1] == 64
    inside = images.any(axis=3)
    # the body fills the image whatever its turn: the mask covers about the same pixels
    overlap = (inside[0] & inside[1:]).sum(axis=(1, 2)) / (inside[0] | inside[1:]).sum(
        axis=(1, 2))
    assert overlap.min() > 0.7
    # outside the mask is 0, inside never is
    assert (images[~inside] == 0).all() and (images[inside] >= 1).all()


@pytest.mark.slow
def test_learned_embedder_separates_what_a_histogram_cannot():
    rng = np.random.default_rng(1)
    kinds = {k: views(k, 120, rng) for k in ("stripes", "spots")}
    geometry = _geometry(kinds["stripes"] + kinds["spots"])
    images, spans = _fragments({k: v[:80] for k, v in kinds.items()}, geometry, 10)
    embedder, report = train_representation(images, spans, 2, FAST)
    assert embedder is not None and report.trained
    embedder.geometry = geometry
    histogram = HistogramEmbedder()

    def embed(model, pairs):
        return np.concatenate([model.embed(im, o) for im, o in pairs])

    learned = _nearest_centroid({k: embed(embedder, v[:80]) for k, v in kinds.items()},
                                {k: embed(embedder, v[80:]) for k, v in kinds.items()})
    colour = _nearest_centroid({k: embed(histogram, v[:80]) for k, v in kinds.items()},
                               {k: embed(histogram, v[80:]) for k, v in kinds.items()})
    assert learned >= 0.95
    assert colour <= 0.75  # the histograms of the two bodies are the same by construction


@pytest.mark.slow
def test_same_seed_same_representation():
    rng = np.random.default_rng(2)
    kinds = {k: views(k, 40, rng) for k in ("stripes", "spots")}
    geometry = _geometry(kinds["stripes"] + kinds["spots"])
    images, spans = _fragments(kinds, geometry, 10)
    settings = LearnedSettings(max_steps=30, check_every=10, seconds=60)
    first, _ = train_representation(images, spans, 2, settings)
    again, _ = train_representation(images, spans, 2, settings)
    other, _ = train_representation(images, spans, 2, LearnedSettings(
        max_steps=30, check_every=10, seconds=60, seed=1))
    x = np.concatenate(images)
    assert np.array_equal(first.embed_images(x), again.embed_images(x))
    assert not np.array_equal(first.embed_images(x), other.embed_images(x))


def test_nothing_to_learn_from_says_why():
    rng = np.random.default_rng(3)
    pairs = views("stripes", 20, rng)
    geometry = _geometry(pairs)
    # fragments that never coexist: no pair is known to be two individuals
    images = [np.concatenate([identification_images(im, o, geometry) for im, o in pairs[s:s + 5]])
              for s in (0, 5, 10, 15)]
    spans = [(s, s + 4) for s in (0, 5, 10, 15)]
    embedder, report = train_representation(images, spans, 2, FAST)
    assert embedder is None and not report.trained
    assert "pairs of fragments" in report.why


def _run_offline(images, objects, **options):
    config = TrackerConfig.from_dotted({"identities": "offline", "num_identities": 2,
                                        **options})
    tracker = config.build(keep_log=True, record=True)
    for image, o in zip(images, objects, strict=True):
        tracker.update(o, image)
    return tracker.finalize()


def _kept_share(result, truth) -> dict[int, float]:
    """Per body, the share of its frames shown under its most frequent identity."""
    shown: dict[int, list[int]] = {1: [], 2: []}
    for frame, true_ids in zip(result.frames, truth, strict=True):
        for row, true_id in enumerate(true_ids):
            if true_id in shown:  # not the merged blob
                shown[true_id].append(int(frame.track_ids[row]))
    return {body: Counter(ids).most_common(1)[0][1] / len(ids) for body, ids in shown.items()}


@pytest.mark.slow
def test_swaps_at_crossings_are_repaired_by_the_learned_representation():
    # they meet eight times and turn back; the source swaps their ids each time and gives one
    # mask while they touch: motion says they passed each other, so only appearance can tell
    images, objects, truth = crossing_clip(frames=480, bounce=True, meetings=8)
    apart = [list(o.source_ids) for o in objects if len(o) == 2]
    assert sum(a != b for a, b in itertools.pairwise(apart)) == 8
    without = _kept_share(_run_offline(images, objects), truth)
    assert min(without.values()) < 0.8  # the swaps stand without it
    result = _run_offline(images, objects, **{"learned.enabled": True,
                                              "learned.max_steps": 150})
    learned = result.identities["learned"]
    assert learned["used"] and learned["trusted"], learned
    assert min(_kept_share(result, truth).values()) >= 0.99


@pytest.mark.slow
def test_a_clip_too_small_to_judge_keeps_the_inputs_links():
    # two meetings: too few fragments to hold out two per individual, so the representation
    # is not trusted and the engine decides as it does without one (and says so)
    images, objects, _ = crossing_clip(frames=120, bounce=True, meetings=2)
    result = _run_offline(images, objects, **{"learned.enabled": True,
                                              "learned.max_steps": 20})
    learned = result.identities["learned"]
    assert learned["trained"] and not learned["trusted"]
    assert "kept_source_ids" in result.identities  # the input guard ran


def test_learning_needs_images_in_the_log():
    # an offline run without learning logs no identification images, and linking works on
    # the tracker's embeddings as before
    images, objects, _ = crossing_clip(frames=20)
    config = TrackerConfig.from_dotted({"identities": "offline", "num_identities": 2})
    tracker = config.build(keep_log=True, record=True)
    for image, o in zip(images, objects, strict=True):
        tracker.update(o, image)
    assert all(e.id_images is None for e in tracker.log)
    assert "learned" not in link_identities(tracker.log, 2).details

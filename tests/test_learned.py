"""The representation learned from one clip (reid.embedders.learned) and its use offline and
online."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter

import cv2
import numpy as np
import pytest
import torch
import yaml
from textured import crossing_clip, views

from samtrack.eval.bench.learned_probe import nearest_centroid_accuracy
from samtrack.pipeline.cli import main as cli_main
from samtrack.pipeline.core.errors import ConfigError
from samtrack.pipeline.core.formats import write_id_map
from samtrack.reid import online_identities
from samtrack.reid.config import TrackerConfig
from samtrack.reid.embedders import EmbedderSettings, HistogramEmbedder, build_embedder
from samtrack.reid.embedders.learned import (
    SAVED_FORMAT,
    ImageGeometry,
    LearnedEmbedder,
    LearnedSettings,
    cluster_quality,
    fragments_to_judge,
    identification_images,
    identity_network,
    mask_extents,
    train_representation,
)
from samtrack.reid.fragments import Fragment
from samtrack.reid.identities import embed_views, link_identities

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


def _two_bodies(seed: int, frames: int):
    """The striped and the spotted body, ``frames`` views each, cut into coexisting fragments
    of ten views; the generator too, for what the test draws next."""
    rng = np.random.default_rng(seed)
    kinds = {k: views(k, frames, rng) for k in ("stripes", "spots")}
    geometry = _geometry(kinds["stripes"] + kinds["spots"])
    images, spans = _fragments(kinds, geometry, 10)
    return rng, kinds, images, spans


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


def test_held_out_judgements_are_counted_together_against_the_engines_features():
    # one body, two individuals; fragments 0-3 held out, 0 and 1 seen together, 2 and 3 too
    spans = [(0, 9), (0, 9), (20, 29), (20, 29)]
    fragment = np.repeat(np.arange(4), 5)
    corners = np.eye(2)

    def space(groups: list[list[int]], noise: float) -> np.ndarray:
        """Each fragment's five views, in the corner its group list names, view by view."""
        rows = [corners[g] for views_of in groups for g in views_of]
        return np.asarray(rows) + np.random.default_rng(0).normal(0, noise, (len(rows), 2))

    whole = [[0] * 5, [1] * 5, [0] * 5, [1] * 5]
    # fragment 0 split by an odd pose, every pair still told apart
    one_split = [[0, 0, 0, 1, 1], [1] * 5, [0] * 5, [1] * 5]
    # both pairs put in one group: fragments whole, individuals not told apart
    merged = [[0] * 5, [0] * 5, [1] * 5, [1] * 5]
    q = {name: cluster_quality(space(groups, 0.01), fragment, {0, 1, 2, 3}, 2, 0, spans)
         for name, groups in (("whole", whole), ("one_split", one_split), ("merged", merged))}
    assert (q["whole"].held_out_right, q["whole"].held_out_judged) == (6, 6)
    assert (q["one_split"].held_out_right, q["merged"].held_out_right) == (5, 4)
    assert q["one_split"].held_out_agreement == 0.75
    assert q["one_split"].held_out_separation == 1.0
    # fewer judgements right than the other space: refused, whichever kind it lost on
    assert not q["one_split"].at_least_as_good_as(q["whole"])
    assert q["one_split"].at_least_as_good_as(q["merged"])  # lost a fragment, won two pairs
    # as many right but groups no tighter: refused
    tight = cluster_quality(space(whole, 0.001), fragment, {0, 1, 2, 3}, 2, 0, spans)
    assert tight.at_least_as_good_as(q["whole"])
    assert not q["whole"].at_least_as_good_as(tight)


@pytest.mark.slow
def test_trusted_only_where_it_tells_held_out_fragments_apart_better_than_the_engines_features():
    rng, kinds, images, spans = _two_bodies(4, 120)
    histogram = HistogramEmbedder()
    # the same fragments' views as _fragments cuts them, in the tracker's histogram space
    colour = [np.concatenate([histogram.embed(im, o) for im, o in pairs[s:s + 10]])
              for s in range(0, 120, 10) for pairs in kinds.values()]
    # features that know the answer: one corner of the space per body
    exact = [np.tile(np.eye(8)[n % 2], (10, 1)) + rng.normal(0, 1e-3, (10, 8))
             for n in range(len(images))]
    settings = LearnedSettings(max_steps=100, check_every=25, seconds=60)
    _, beats_colour = train_representation(images, spans, 2, settings, without=colour)
    _, against_exact = train_representation(images, spans, 2, settings, without=exact)
    _, alone = train_representation(images, spans, 2, settings)
    assert beats_colour.held_out >= 4  # two per individual
    assert beats_colour.trusted, beats_colour.summary()
    assert beats_colour.summary()["without"]["silhouette"] < beats_colour.silhouette
    assert not against_exact.trusted, against_exact.summary()
    assert not alone.trusted and "without" not in alone.summary()
    assert "compare" in alone.why


def test_features_to_compare_with_must_match_the_images_one_to_one():
    _, _, images, spans = _two_bodies(2, 40)
    short = [np.zeros((len(im) - 1, 8), np.float32) for im in images]
    with pytest.raises(ValueError, match="one row of features per identification image"):
        train_representation(images, spans, 2, FAST, without=short)
    with pytest.raises(ValueError, match="one row of features"):
        train_representation(images, spans, 2, FAST, without=short[:1])


@pytest.mark.slow
def test_same_seed_same_representation():
    _, _, images, spans = _two_bodies(2, 40)
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
    without = _kept_share(_run_offline(images, objects, **{"learned.enabled": False}), truth)
    assert min(without.values()) < 0.8  # the swaps stand without it
    result = _run_offline(images, objects, **{"learned.enabled": True,
                                              "learned.max_steps": 150})
    learned = result.identities["learned"]
    assert learned["used"] and learned["trusted"], learned
    assert min(_kept_share(result, truth).values()) >= 0.99
    assert result.representation is not None and result.representation.geometry is not None


@pytest.mark.slow
def test_a_clip_too_small_to_judge_keeps_the_inputs_links():
    # two meetings: too few fragments to hold out two per individual, so no representation
    # is trained and the engine decides as it does without one (and says so)
    images, objects, _ = crossing_clip(frames=120, bounce=True, meetings=2)
    result = _run_offline(images, objects, **{"learned.enabled": True,
                                              "learned.max_steps": 20})
    learned = result.identities["learned"]
    assert not learned["trained"] and not learned["used"]
    assert "18 are needed to hold out two per individual" in learned["why"]
    assert "kept_source_ids" in result.identities  # the input guard ran
    assert result.representation is None


def test_learning_needs_images_in_the_log():
    # an offline run with learning turned off logs no identification images, and linking
    # works on the tracker's embeddings as before
    images, objects, _ = crossing_clip(frames=20)
    config = TrackerConfig.from_dotted({"identities": "offline", "num_identities": 2,
                                        "learned.enabled": False})
    tracker = config.build(keep_log=True, record=True)
    for image, o in zip(images, objects, strict=True):
        tracker.update(o, image)
    assert all(e.id_images is None for e in tracker.log)
    assert "learned" not in link_identities(tracker.log, 2).details


@pytest.mark.parametrize(("identities", "learns"),
                         [("offline", True), ("model", False), ("gallery", False)])
def test_by_default_a_representation_is_learned_for_offline_identities_only(identities,
                                                                            learns):
    config = TrackerConfig.from_dotted({"identities": identities})
    assert config.learned.enabled is None and config.learns is learns
    images, objects, _ = crossing_clip(frames=6)
    tracker = config.build(keep_log=True, record=True)
    for image, o in zip(images, objects, strict=True):
        tracker.update(o, image)
    logged = any(e.id_images is not None for e in tracker.log)
    assert logged is learns


def test_fragments_to_judge_is_where_two_per_individual_are_held_out():
    s = LearnedSettings()  # a fifth held out, judged from five usable fragments on
    assert fragments_to_judge(2, s) == 18  # round(0.2 * 18) = 4 = 2 * 2; round(0.2 * 17) = 3
    assert fragments_to_judge(4, s) == 38


def _run_online(images, objects, **options):
    config = TrackerConfig.from_dotted({"identities": "model", "num_identities": 2, **options})
    tracker = config.build(keep_log=False, record=True)
    for image, o in zip(images, objects, strict=True):
        tracker.update(o, image)
    return tracker, tracker.finalize()


@pytest.mark.slow
def test_online_model_takes_the_learned_representation_over_once_it_is_trusted():
    images, objects, truth = crossing_clip(frames=960, bounce=True, meetings=16)
    _, plain = _run_online(images, objects)
    tracker, result = _run_online(images, objects, **{"learned.enabled": True,
                                                      "learned.max_steps": 150})
    learned = result.identities["learned"]
    assert learned["used"] and learned["trusted"] and learned["tries"] == 1, learned
    took_over = learned["took_over_frame"]
    online = tracker.resolver.model
    # not before the clip holds enough fragments to judge a representation on
    assert took_over is not None
    before = [f for f in online.cutter.fragments if f.start <= took_over and len(f.views) >= 2]
    assert len(before) >= fragments_to_judge(2, LearnedSettings()) == learned["fragments"]
    # from then on the model decides on the learned embeddings: its views are of their size
    later = [f for f in online.cutter.fragments if f.start > took_over and f.views]
    assert later and all(len(v) == LearnedSettings.dim for f in later for v in f.views)
    assert online.model.posteriors(later[-1].view_matrix()).shape[1] == 2
    # and it keeps each body's identity at least as well as the tracker's embedder did
    kept, before = _kept_share(result, truth), _kept_share(plain, truth)
    assert all(kept[b] >= before[b] - 1e-9 for b in kept), (kept, before)


@pytest.mark.slow
def test_online_training_in_the_background_lets_the_stream_go_on(monkeypatch):
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    train = online_identities.train_representation

    def held_back(*args, cancel):  # a training that ends only when the test says so
        started.set()
        release.wait(60)
        try:
            return train(*args, cancel=cancel)
        finally:
            finished.set()

    monkeypatch.setattr(online_identities, "train_representation", held_back)
    images, objects, _ = crossing_clip(frames=960, bounce=True, meetings=16)
    config = TrackerConfig.from_dotted({
        "identities": "model", "num_identities": 2, "learned.enabled": True,
        "learned.max_steps": 150, "learned.background": True})
    tracker = config.build(keep_log=False, record=True)
    began, during = None, 0
    for t, (image, o) in enumerate(zip(images, objects, strict=True)):
        tracker.update(o, image)
        if started.is_set() and not release.is_set():
            began = t if began is None else began
            during += 1  # a frame tracked while the training runs
            if during == 10:
                release.set()
                assert finished.wait(300)
    learned = tracker.finalize().identities["learned"]
    assert began is not None and during == 10
    # taken up on the first frame after it ended, as the same training would be in the
    # foreground (test_online_model_takes_the_learned_representation_over_once_it_is_trusted)
    assert learned["used"] and learned["tries"] == 1, learned
    assert learned["took_over_frame"] == began + 10
    assert not learned["training_unfinished"]


@pytest.mark.slow
def test_a_stream_that_ends_during_a_background_training_cancels_it(monkeypatch):
    started = threading.Event()
    train = online_identities.train_representation

    def slow(*args, cancel):  # as slow as a training on a slow day: until cancelled
        started.set()
        cancel.wait(300)
        return train(*args, cancel=cancel)

    monkeypatch.setattr(online_identities, "train_representation", slow)
    images, objects, _ = crossing_clip(frames=960, bounce=True, meetings=16)
    config = TrackerConfig.from_dotted({"identities": "model", "num_identities": 2,
                                        "learned.enabled": True, "learned.background": True})
    tracker = config.build(keep_log=False, record=True)
    for image, o in zip(images, objects, strict=True):
        tracker.update(o, image)
        if started.is_set():
            break  # the stream ends while the training runs
    assert started.is_set()
    waited = time.perf_counter()
    learned = tracker.finalize().identities["learned"]
    assert time.perf_counter() - waited < 30  # not a whole training
    assert learned["training_unfinished"] and learned["took_over_frame"] is None
    assert not any(t.name == "samtrack-learn" and t.is_alive() for t in threading.enumerate())
    # so does a tracker reset for a new clip
    started.clear()
    tracker.reset()
    for image, o in zip(images, objects, strict=True):
        tracker.update(o, image)
        if started.is_set():
            break
    assert started.is_set()
    tracker.reset()
    assert not any(t.name == "samtrack-learn" and t.is_alive() for t in threading.enumerate())


def test_online_learning_is_refused_without_an_identity_model():
    with pytest.raises(ValueError, match="offline or model"):
        TrackerConfig.from_dotted({"identities": "gallery", "learned.enabled": True})


def test_a_saved_representation_is_an_embedder(tmp_path):
    pairs = views("stripes", 3, np.random.default_rng(0))
    torch.manual_seed(0)
    original = LearnedEmbedder(identity_network(8).eval(), _geometry(pairs),
                               LearnedSettings(dim=8))
    original.save(tmp_path / "learned.pt")
    loaded = build_embedder("learned", EmbedderSettings(weights=str(tmp_path / "learned.pt")))
    assert loaded.dim == 8 and loaded.geometry == original.geometry
    for image, objects in pairs:
        np.testing.assert_allclose(loaded.embed(image, objects), original.embed(image, objects),
                                   atol=1e-6)


def test_embedding_with_batch_norm_folded_gives_the_networks_own_embeddings():
    torch.manual_seed(0)
    net = identity_network(8)
    with torch.no_grad():  # batch norms that are not the identity, as after training
        for norm in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            for tensor in (norm.running_mean, norm.weight, norm.bias):
                tensor.normal_()
            norm.running_var.uniform_(0.5, 2.0)
    net.eval()
    embedder = LearnedEmbedder(net, None, LearnedSettings(dim=8))
    images = torch.randn(2 * embedder.chunk + 5, 3, 24, 64)  # more than one chunk
    with torch.no_grad():
        own = (net(images) + net(torch.flip(images, dims=(2, 3)))).numpy()
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    np.testing.assert_allclose(embedder.embed_images(images), own, atol=1e-5)
    # the trained network itself keeps its batch norms (it is what a run saves)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 3


def test_fragments_views_become_the_embeddings_of_their_own_images():
    torch.manual_seed(0)
    embedder = LearnedEmbedder(identity_network(8).eval(), None, LearnedSettings(dim=8))
    rng = np.random.default_rng(0)

    def fragment(index: int, count: int, with_images: bool = True) -> Fragment:
        f = Fragment(index, index, index, True)
        f.views = [np.zeros(4, np.float32)] * count
        f.images = [rng.integers(0, 255, (24, 64, 3), np.uint8) for _ in range(count)] \
            if with_images else []
        return f

    # more images in all than one pass of the network takes, cut at uneven places
    fragments = [fragment(0, 3), fragment(1, embedder.chunk + 7), fragment(2, 0),
                 fragment(3, 5, with_images=False), fragment(4, 1)]
    own = {f.index: embedder.embed_images(np.stack(f.images)) for f in fragments if f.images}
    embed_views(fragments, embedder)
    for f in fragments:
        if f.index in own:
            np.testing.assert_allclose(np.stack(f.views), own[f.index], atol=1e-5)
        else:  # no images: its views were in another space, and are dropped
            assert f.views == []


def test_a_file_that_is_not_a_saved_representation_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"appearance\.weights"):
        build_embedder("learned", EmbedderSettings())
    with pytest.raises(ConfigError, match=r"missing\.pt: no such file"):
        build_embedder("learned", EmbedderSettings(weights=str(tmp_path / "missing.pt")))
    (tmp_path / "text.pt").write_text("not torch")
    with pytest.raises(ConfigError, match=r"text\.pt: not a saved representation"):
        build_embedder("learned", EmbedderSettings(weights=str(tmp_path / "text.pt")))
    torch.save({"state": {}}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"other\.pt: not a representation saved by samtrack"):
        build_embedder("learned", EmbedderSettings(weights=str(tmp_path / "other.pt")))
    torch.save({"format": SAVED_FORMAT, "state": {}, "shape": [16, 64], "dim": 8},
               tmp_path / "damaged.pt")
    with pytest.raises(ConfigError, match=r"damaged\.pt: a damaged representation") as caught:
        build_embedder("learned", EmbedderSettings(weights=str(tmp_path / "damaged.pt")))
    assert "\n" not in str(caught.value)


def _write_clip(folder, images, objects):
    (folder / "img1").mkdir(parents=True)
    (folder / "masks").mkdir()
    for t, (image, o) in enumerate(zip(images, objects, strict=True)):
        cv2.imwrite(str(folder / "img1" / f"{t:06d}.png"), image)
        id_map = np.zeros(image.shape[:2], np.uint8)
        for mask, source in zip(o.masks, o.source_ids, strict=True):
            id_map[mask] = source
        write_id_map(folder / "masks" / f"{t:06d}.png", id_map)


@pytest.mark.slow
def test_a_run_saves_the_representation_that_decided_and_another_run_uses_it(tmp_path):
    images, objects, _ = crossing_clip(frames=480, bounce=True, meetings=8)
    _write_clip(tmp_path / "clip", images, objects)
    first = {"tracker": {"identities": "offline", "num_identities": 2,
                         "learned": {"enabled": True, "max_steps": 150}}}
    (tmp_path / "first.yaml").write_text(yaml.safe_dump(first))
    clip = ["--video", str(tmp_path / "clip" / "img1"), "--masks", str(tmp_path / "clip" / "masks"),
            "--quiet"]
    assert cli_main(["run", "--config", str(tmp_path / "first.yaml"), *clip,
                     "--out", str(tmp_path / "first")]) == 0
    summary = json.loads((tmp_path / "first" / "summary.json").read_text())
    assert summary["identities"]["learned"]["used"]
    assert summary["identities"]["representation_file"] == "learned.pt"
    saved = tmp_path / "first" / "learned.pt"
    assert saved.is_file()
    second = {"tracker": {"identities": "model", "num_identities": 2, "embedder": "learned",
                          "appearance": {"weights": str(saved)}}}
    (tmp_path / "second.yaml").write_text(yaml.safe_dump(second))
    assert cli_main(["run", "--config", str(tmp_path / "second.yaml"), *clip,
                     "--out", str(tmp_path / "second")]) == 0
    assert json.loads((tmp_path / "second" / "summary.json").read_text())["identities"][
        "online_identity_model"]

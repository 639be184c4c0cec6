"""SAM2 sources with the real sam2 code and a random-weight Hiera-T checkpoint (CPU, few frames).

A random-weight model segments nonsense, so these tests check plumbing that could break: loading,
error messages, prompt handling, id carry-over between windows, shapes, filters.
"""

import numpy as np
import pytest
from fake_sam2 import FakeVideoPredictor

import samtrack.pipeline.sources.sam2_sources as sam2_sources
from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.errors import ConfigError
from samtrack.pipeline.core.video import VideoReader
from samtrack.pipeline.sources.base import SourceContext
from samtrack.pipeline.sources.sam2_model import (
    CheckpointError,
    build_model,
    save_random_checkpoint,
)
from samtrack.pipeline.sources.sam2_sources import (
    AutoOptions,
    Sam2AutoOptions,
    Sam2AutoSource,
    Sam2VideoOptions,
    Sam2VideoSource,
    new_objects,
)
from samtrack.reid.config import TrackerConfig

PERMISSIVE = AutoOptions(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                         min_area=0, max_area_fraction=1.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    # fixed weights: a random-weight model may empty every mask of a window, and whether it does
    # must not change from run to run
    torch.manual_seed(0)
    return save_random_checkpoint("sam2.1_hiera_t", tmp_path_factory.mktemp("ckpt") / "t.pt")


@pytest.fixture(scope="module")
def clip5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip5")
    Scene(SceneSpec(num_animals=2, num_frames=5, width=160, height=96, body_length=30,
                    seed=1)).write(folder)
    return folder / "img1"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    Scene(SceneSpec(num_animals=2, num_frames=3, width=160, height=96, body_length=30,
                    seed=1)).write(folder)
    return folder / "img1"


def test_new_objects_skips_covered_and_duplicate_masks():
    a = np.zeros((10, 10), bool)
    a[:5, :5] = True
    b = np.zeros((10, 10), bool)
    b[5:, 5:] = True
    almost_a = a.copy()
    almost_a[0, 0] = False
    found = new_objects([almost_a, b, b.copy()], existing=[a], coverage=0.5)
    assert len(found) == 1 and (found[0] == b).all()


def test_missing_checkpoint_names_path_and_script(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: SAM2 checkpoint not found; "
                                              r"download it with `bash checkpoints/download\.sh"):
        build_model("sam2.1_hiera_t", tmp_path / "nope.pt", "cpu", video=False)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"x\.pt: not a readable PyTorch checkpoint"):
        build_model("tiny", tmp_path / "x.pt", "cpu", video=False)


@pytest.mark.slow
def test_loader_and_mismatched_config(checkpoint):
    model = build_model("sam2.1_hiera_t", checkpoint, "cpu", video=False)
    assert model.image_size == 1024
    with pytest.raises(CheckpointError, match=r"does not fit model sam2\.1_hiera_s"):
        build_model("sam2.1_hiera_s", checkpoint, "cpu", video=False)


def _fake_source(options: Sam2VideoOptions, fake: FakeVideoPredictor) -> Sam2VideoSource:
    return Sam2VideoSource(options, SourceContext("cpu"), predictor=fake)


def test_windows_share_a_frame_and_carry_ids_fake(clip5):
    """window=2 on 5 frames: windows [0,1], [1,2], [2,3], [3,4] share their first frame with
    the previous one, which is seeded with the masks the previous window ended with."""
    fake = FakeVideoPredictor()
    options = Sam2VideoOptions(checkpoint="unused.pt", auto_seed=False, window=2,
                               prompts=[{"id": 3, "box": [10, 10, 60, 50]},
                                        {"id": 8, "points": [[110, 50]], "labels": [1]}])
    source = _fake_source(options, fake)
    out = list(source.frames(VideoReader(clip5)))
    assert [f.index for f, _ in out] == [0, 1, 2, 3, 4]  # the shared frame is yielded once
    assert source.windows == 4
    assert [c[2] for c in fake.calls if c[0] == "init_state"] == [2, 2, 2, 2]
    prompts = [c for c in fake.calls if c[0] == "add_new_points_or_box"]
    assert prompts == [("add_new_points_or_box", 1, 0, 3), ("add_new_points_or_box", 1, 0, 8)]
    seeds = [c for c in fake.calls if c[0] == "add_new_mask"]
    assert {(w, i) for _, w, _, i in seeds} == {(w, i) for w in (2, 3, 4) for i in (3, 8)}
    assert all(frame == 0 for _, _, frame, _ in seeds)  # seeded on the shared first frame
    assert [c[0] for c in fake.calls if c[1] == 1] == [
        "init_state", "add_new_points_or_box", "add_new_points_or_box", "propagate_in_video",
        "reset_state"]
    for frame, objects in out:
        assert objects.frame_index == frame.index
        assert sorted(objects.source_ids.tolist()) == [3, 8]
        assert objects.areas.min() > 0
    # the box prompt's object is exactly the box on every frame (the fake follows it as is)
    box = out[4][1].boxes[out[4][1].source_ids.tolist().index(3)]
    assert box.tolist() == [10, 10, 60, 50]


def test_an_object_lost_in_a_window_is_not_carried_fake(clip5):
    fake = FakeVideoPredictor(drop={2: {8}})  # object 8 comes back empty in window 2
    options = Sam2VideoOptions(checkpoint="unused.pt", auto_seed=False, window=2,
                               prompts=[{"id": 3, "box": [10, 10, 60, 50]},
                                        {"id": 8, "box": [100, 40, 140, 80]}])
    out = list(_fake_source(options, fake).frames(VideoReader(clip5)))
    assert [sorted(o.source_ids.tolist()) for _, o in out] == [[3, 8], [3, 8], [3], [3], [3]]
    seeded = {(c[1], c[3]) for c in fake.calls if c[0] == "add_new_mask"}
    assert (3, 8) not in seeded and (3, 3) in seeded


def test_expose_features_pools_inside_each_mask_fake(clip5):
    options = Sam2VideoOptions(checkpoint="unused.pt", auto_seed=False, window=3,
                               expose_features=True,
                               prompts=[{"id": 1, "box": [10, 10, 60, 50]}])
    out = list(_fake_source(options, FakeVideoPredictor()).frames(VideoReader(clip5)))
    for _, objects in out:
        assert objects.embeddings.shape == (1, 4)
    # the fake's feature grid is constant per local frame, so pooling returns that constant
    assert out[1][1].embeddings[0].tolist() == pytest.approx([2.0] * 4)
    tracker = TrackerConfig(embedder="sam2").build()
    for frame, objects in out:
        assert tracker.update(objects, frame.image).track_ids.tolist() in ([1], [-1])


@pytest.mark.slow
def test_video_smoke_random_weights(checkpoint, clip):
    """The real architecture end to end (random weights: same compute as trained ones)."""
    options = Sam2VideoOptions(checkpoint=str(checkpoint), auto_seed=False, window=2,
                               expose_features=True,
                               prompts=[{"id": 3, "box": [10, 10, 60, 50]},
                                        {"id": 8, "points": [[110, 50]], "labels": [1]}])
    out = list(Sam2VideoSource(options, SourceContext("cpu")).frames(VideoReader(clip)))
    assert [f.index for f, _ in out] == [0, 1, 2]
    for _, objects in out:
        assert len(objects) >= 1 and objects.areas.min() > 0  # SAM2 returned real masks
        assert set(objects.source_ids.tolist()) <= {3, 8}
        assert objects.embeddings.shape == (len(objects), 256)


def test_automatic_seeding_numbers_new_objects_fake(clip5, monkeypatch):
    """Automatic seeding on the first window only (rediscover_every: None): every mask the
    generator finds becomes an object with a new id, carried through later windows."""
    a = np.zeros((96, 160), bool)
    a[10:40, 10:50] = True
    b = np.zeros((96, 160), bool)
    b[50:90, 100:150] = True
    found: list[int] = []

    def generate(generator, image, options):
        found.append(1)
        return [{"segmentation": a}, {"segmentation": b}]

    monkeypatch.setattr(sam2_sources, "generate_masks", generate)
    fake = FakeVideoPredictor()
    source = _fake_source(Sam2VideoOptions(checkpoint="unused.pt", window=3,
                                           rediscover_every=None), fake)
    source._generator = object()  # generate() above stands for SAM2's mask generator
    out = list(source.frames(VideoReader(clip5)))
    assert len(found) == 1  # discovery ran once, on the first window
    assert [sorted(o.source_ids.tolist()) for _, o in out] == [[1, 2]] * 5
    first = [c for c in fake.calls if c[0] == "add_new_mask" and c[1] == 1]
    assert [c[3] for c in first] == [1, 2]


@pytest.mark.slow
def test_auto_source_one_frame_and_largest_only(checkpoint, clip):
    reader = VideoReader(clip, max_frames=1)
    source = Sam2AutoSource(Sam2AutoOptions(checkpoint=str(checkpoint), auto=PERMISSIVE),
                            SourceContext("cpu"))
    (_, objects), = list(source.frames(reader))
    assert len(objects) >= 1 and (objects.source_ids == -1).all()
    assert objects.areas.min() > 0  # SAM2 returned real masks
    largest = Sam2AutoSource(Sam2AutoOptions(checkpoint=str(checkpoint), auto=PERMISSIVE,
                                             largest_only=True), SourceContext("cpu"))
    (_, only), = list(largest.frames(VideoReader(clip, max_frames=1)))
    assert len(only) == 1 and only.areas[0] == objects.areas.max()


def test_sam2_options_validate():

    with pytest.raises(ConfigError, match=r"source\.sam2-video\.model: unknown SAM2 model"):
        load_config(None, {"source.sam2-video.model": "hiera_xxl"})
    with pytest.raises(ConfigError,
                       match=r"source\.sam2-video\.prompts\.0: a prompt needs points or a box"):
        load_config(None, {"source.sam2-video.prompts": [{"id": 1}]})

"""SAM2 sources with the real sam2 code and a random-weight Hiera-T checkpoint (CPU, few frames).

A random-weight model segments nonsense, so these tests check plumbing that could break: loading,
error messages, prompt handling, id carry-over between windows, shapes, filters.
"""

import numpy as np
import pytest

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
from samtrack.reid.embedders import build_embedder
from samtrack.reid.tracker import ReidTracker

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


@pytest.mark.slow
def test_video_box_prompt_and_ids_across_windows(checkpoint, clip):
    """window=2 on 3 frames: two windows sharing frame 1; ids must survive the boundary."""
    options = Sam2VideoOptions(
        checkpoint=str(checkpoint), auto_seed=False, window=2, expose_features=True,
        prompts=[{"id": 3, "box": [10, 10, 60, 50]},
                 {"id": 8, "points": [[110, 50]], "labels": [1]}])
    source = Sam2VideoSource(options, SourceContext("cpu"))
    seeded: list[tuple[int, int]] = []  # (window, object id) given to add_new_mask
    original = source.predictor.add_new_mask

    def record(state, frame_idx, obj_id, mask):
        seeded.append((source.windows, int(obj_id)))
        assert frame_idx == 0 and mask.shape == (96, 160)
        return original(state, frame_idx, obj_id, mask)

    source.predictor.add_new_mask = record
    out = list(source.frames(VideoReader(clip)))
    assert [f.index for f, _ in out] == [0, 1, 2]
    assert source.windows == 2
    for frame, objects in out:
        assert objects.image_size == (96, 160) and objects.frame_index == frame.index
        assert objects.masks.shape[1:] == (96, 160)
        assert set(objects.source_ids.tolist()) <= {3, 8}
        assert ((objects.scores >= 0) & (objects.scores <= 1)).all()
        # expose_features: the image encoder's 256 channels pooled inside each mask
        assert objects.embeddings.shape == (len(objects), 256)
        assert np.isfinite(objects.embeddings).all()
    # the tracker's sam2 embedder takes them as they come (no network of its own)

    tracker = ReidTracker(TrackerConfig(embedder="sam2"), build_embedder("sam2"))
    for frame, objects in out:
        tracked = tracker.update(objects, frame.image)
        assert len(tracked) == len(objects)
    # carry-over: window 2 starts on frame 1 (shared) seeded, under the same ids, with exactly
    # the objects that had a mask there (random weights may empty a mask: then it is absent)
    assert {i for w, i in seeded if w == 2} == set(out[1][1].source_ids.tolist())
    assert {i for w, i in seeded if w == 1} == set()  # window 1 came from prompts only


@pytest.mark.slow
def test_video_automatic_seeding(checkpoint, clip):
    options = Sam2VideoOptions(checkpoint=str(checkpoint), auto=PERMISSIVE, window=8,
                               rediscover_every=None)
    source = Sam2VideoSource(options, SourceContext("cpu"))
    out = list(source.frames(VideoReader(clip, max_frames=2)))
    assert len(out) == 2
    ids = out[0][1].source_ids
    assert len(ids) >= 1 and (ids >= 1).all() and len(set(ids.tolist())) == len(ids)


@pytest.mark.slow
def test_auto_source_one_frame_and_largest_only(checkpoint, clip):
    reader = VideoReader(clip, max_frames=1)
    source = Sam2AutoSource(Sam2AutoOptions(checkpoint=str(checkpoint), auto=PERMISSIVE),
                            SourceContext("cpu"))
    (_, objects), = list(source.frames(reader))
    assert len(objects) >= 1 and (objects.source_ids == -1).all()
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

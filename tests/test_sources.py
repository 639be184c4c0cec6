import shutil

import numpy as np
import pytest
from conftest import SMALL_SPEC

from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.pipeline.core.formats import (
    FormatError,
    MotsRow,
    format_mots_row,
    read_id_map,
    write_id_map,
)
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import VideoReader
from samtrack.pipeline.sources.masks import MasksOptions, MasksSource
from samtrack.pipeline.sources.motion import MotionOptions, MotionSource


def _gt_maps(scene_dir):
    return {p.stem: read_id_map(p) for p in sorted((scene_dir / "gt" / "masks").glob("*.png"))}


def test_png_masks_round_trip(small_scene):
    source = MasksSource(MasksOptions(path=str(small_scene / "gt" / "masks")))
    gt = _gt_maps(small_scene)
    count = 0
    for frame, objects in source.frames(VideoReader(small_scene / "img1")):
        np.testing.assert_array_equal(objects.to_id_map("source"), gt[frame.name])
        count += 1
    assert count == SMALL_SPEC.num_frames


def test_mots_txt_round_trip(small_scene, tmp_path):
    gt = _gt_maps(small_scene)

    lines = []
    for t, name in enumerate(sorted(gt)):
        obj = FrameObjects.from_id_map(gt[name], frame_index=t)
        h, w = obj.image_size
        lines += [format_mots_row(MotsRow(t + 1, int(i), 1, h, w, r))
                  for i, r in zip(obj.source_ids, obj.rles, strict=True)]
    (tmp_path / "m.txt").write_text("".join(lines))
    source = MasksSource(MasksOptions(path=str(tmp_path / "m.txt")))
    assert source.format == "mots"
    for frame, objects in source.frames(VideoReader(small_scene / "img1")):
        np.testing.assert_array_equal(objects.to_id_map("source"), gt[frame.name])


def test_mot_boxes_become_box_masks(small_scene):
    source = MasksSource(MasksOptions(path=str(small_scene / "gt" / "gt.txt")))
    assert source.format == "mot"
    gt = _gt_maps(small_scene)

    for frame, objects in source.frames(VideoReader(small_scene / "img1", max_frames=5)):
        truth = FrameObjects.from_id_map(gt[frame.name], frame_index=frame.index)
        assert objects.source_ids.tolist() == truth.source_ids.tolist()
        np.testing.assert_allclose(objects.boxes, truth.boxes)
        assert (objects.areas >= truth.areas).all()  # a box covers its mask


def test_mask_size_mismatch_names_the_file(small_scene, tmp_path):
    masks = tmp_path / "masks"
    shutil.copytree(small_scene / "gt" / "masks", masks)
    write_id_map(masks / "000003.png", np.zeros((10, 10), np.uint16))
    source = MasksSource(MasksOptions(path=str(masks)))
    with pytest.raises(FormatError, match=r"000003.png: mask size 10x10 differs from frame "
                                          r"000003 size 320x180"):
        list(source.frames(VideoReader(small_scene / "img1")))


def test_missing_mask_frame_error_or_empty(small_scene, tmp_path):
    masks = tmp_path / "masks"
    shutil.copytree(small_scene / "gt" / "masks", masks)
    (masks / "000002.png").unlink()
    with pytest.raises(FormatError, match=r"000002.png: no mask file for frame 000002"):
        list(MasksSource(MasksOptions(path=str(masks))).frames(VideoReader(small_scene / "img1")))
    lenient = MasksSource(MasksOptions(path=str(masks), missing_frame="empty"))
    counts = [len(o) for _, o in lenient.frames(VideoReader(small_scene / "img1", max_frames=4))]
    assert counts[2] == 0 and counts[1] > 0


def test_motion_source_finds_the_animals(tmp_path):
    """On a generated static-camera clip the background model finds each visible animal once."""

    # seed 2 keeps the three animals apart (touching animals form one blob, by design)
    spec = SceneSpec(num_animals=3, num_frames=40, width=320, height=180, body_length=30,
                     speed=3.0, seed=2, exit_every=0, shadow=0.0)
    scene_dir = Scene(spec).write(tmp_path / "s")
    gt = _gt_maps(scene_dir)
    source = MotionSource(MotionOptions(min_area=60))
    hits = 0
    for frame, objects in source.frames(VideoReader(scene_dir / "img1")):
        truth = gt[frame.name]
        visible = [i for i in np.unique(truth) if i and (truth == i).sum() > 200]
        # count objects matching one animal with IoU > 0.5
        matched = 0
        for i in visible:
            m = truth == i
            inter = (objects.masks & m).sum(axis=(1, 2))
            union = (objects.masks | m).sum(axis=(1, 2))
            matched += int((inter / np.maximum(union, 1) > 0.5).any())
        if len(objects) == len(visible) and matched == len(visible):
            hits += 1
    assert hits >= 0.9 * spec.num_frames


def test_motion_primes_before_the_first_frame_is_streamed(small_scene):
    """The priming seconds belong to prepare(), not to the first frame (whose time would
    otherwise make the progress bar promise an hour)."""
    from samtrack.pipeline.core.video import VideoReader
    from samtrack.pipeline.sources.motion import MotionOptions, MotionSource

    video = VideoReader(small_scene / "img1")
    calls = []
    sample = video.sample
    video.sample = lambda n: (calls.append(n), sample(n))[1]
    source = MotionSource(MotionOptions(prime_frames=8, prime_repeats=3))
    assert "primed on 8 frames" in source.prepare(video)
    assert calls == [8]
    frames = list(source.frames(video))
    assert calls == [8] and len(frames) == len(video)
    assert source.prepare(video) is not None  # a second pass primes afresh

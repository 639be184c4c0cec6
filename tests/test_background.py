"""The ``background`` source on a synthetic arena, and the ``auto`` source's choice."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from arena import FRAMES, animal_tracks, write
from shared_data import REAL, needs_zebrafish

import samtrack as st
from samtrack.pipeline.core.video import VideoReader
from samtrack.pipeline.sources.background import (
    BackgroundOptions,
    BackgroundSource,
    RoiOptions,
    estimate_count,
)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _touching(t: int) -> bool:
    return 20 <= t <= 29


@pytest.mark.parametrize("polarity", ["dark", "light"])
def test_every_animal_whole_in_every_frame_and_the_touching_pair_split(tmp_path, polarity):
    folder, truths = write(tmp_path / polarity, polarity)
    source = BackgroundSource(BackgroundOptions())  # count not given: estimated
    video = VideoReader(folder)
    model = source.fit(video)
    assert model.summary()["polarity"] == polarity
    assert model.count == 3 and model.count_estimated
    split_frames = 0
    for frame, objects in source.frames(video):
        truth = truths[frame.index]
        assert len(objects) == 3, f"frame {frame.index}: {len(objects)} masks"
        for k in (1, 2, 3):
            best = max(_iou(m, truth == k) for m in objects.masks)
            # whole: the animal resting in the first third too, and each half of a touch
            assert best >= (0.6 if _touching(frame.index) else 0.8), (frame.index, k, best)
        if _touching(frame.index):
            assert objects.data["merged"].sum() == 2
            split_frames += 1
    assert split_frames == 10


def test_resting_animal_is_not_learnt_into_the_background(tmp_path):
    folder, _ = write(tmp_path / "dark", "dark")
    source = BackgroundSource(BackgroundOptions(away_fraction=0.1))
    source.fit(VideoReader(folder))
    x, y, _ = animal_tracks()[0][0]  # where animal 0 rests for a third of the clip
    floor = np.median(source.model.image)
    assert abs(source.model.image[round(y), round(x)] - floor) < 15


def test_given_arena_drops_blobs_outside_it(tmp_path):
    folder, _ = write(tmp_path / "dark", "dark")
    roi = RoiOptions(shape="polygon", polygon=[(0, 0), (100, 0), (100, 100), (0, 100)])
    source = BackgroundSource(BackgroundOptions(roi=roi, num_objects=1))
    counts = [len(objects) for _, objects in source.frames(VideoReader(folder))]
    assert counts[: FRAMES // 3] == [1] * (FRAMES // 3)  # only the animal inside the square


def test_roi_options_need_their_shape():
    with pytest.raises(ValueError, match=r"needs roi\.circle"):
        RoiOptions(shape="circle")


def test_count_is_the_most_blobs_seen_often_enough():
    # three apart most of the time, two when two touch, a spurious fourth once
    frames = [np.array([100, 100, 100])] * 6 + [np.array([100, 200])] * 3 + \
        [np.array([100, 100, 100, 100])]
    count, single, _ = estimate_count(frames, support=0.25)
    assert count == 3 and single == 100


def _panning_clip(folder, frames=30):
    rng = np.random.default_rng(1)
    world = cv2.GaussianBlur(rng.uniform(0, 255, (240, 600)).astype(np.float32), (0, 0), 4)
    world = cv2.normalize(world, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    folder.mkdir(parents=True)
    for t in range(frames):
        crop = world[20:220, 8 * t:8 * t + 280]
        cv2.imwrite(str(folder / f"{t:06d}.png"), cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR))
    return folder


def test_auto_picks_background_for_a_still_arena(tmp_path):
    folder, _ = write(tmp_path / "dark", "dark")
    result = st.run(st.load_config(None, {"video.path": str(folder),
                                          "output.dir": str(tmp_path / "run"),
                                          "quiet": True}))
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["source"] == "auto"
    assert summary["source_details"]["chosen"] == "background"
    assert summary["source_details"]["count"] == 3
    assert summary["health"]["warnings"] == []


def test_auto_picks_motion_for_a_panning_camera_and_the_health_check_warns(tmp_path):
    folder = _panning_clip(tmp_path / "pan")
    result = st.run(st.load_config(None, {"video.path": str(folder),
                                          "output.dir": str(tmp_path / "run"),
                                          "quiet": True}))
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["source_details"]["chosen"] == "motion"
    assert "camera moves" in summary["source_details"]["why"]
    assert any("camera moves" in w for w in summary["health"]["warnings"])


def test_explicit_still_camera_source_on_a_panning_clip_is_warned_about(tmp_path):
    folder = _panning_clip(tmp_path / "pan")
    result = st.run(st.load_config(None, {"video.path": str(folder), "source.name": "background",
                                          "output.dir": str(tmp_path / "run"),
                                          "quiet": True}))
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert any("camera moves" in w for w in summary["health"]["warnings"])


@pytest.mark.slow
@needs_zebrafish
def test_real_larvae_from_their_pixels_with_every_default(tmp_path):
    """The headline of the real benchmark, pinned: zebrafish-07 from its pixels, count not
    given, scored on its true points (eval.bench.real)."""
    from samtrack.eval.bench.real import CLIPS, run_clip

    clip = next(c for c in CLIPS if c.name == "zebrafish-07")
    row = run_clip(REAL, clip, told=False, work=tmp_path)
    assert row["source"] == "background" and row["count"] == "4 of 4"
    assert row["idf1"] >= 0.99 and row["idsw"] == 0


def test_a_split_that_leaves_an_animal_no_pixels_drops_that_piece(tmp_path):
    # two predictions that coincide: the whole blob goes to the first, the second gets nothing
    folder, _ = write(tmp_path / "dark", "dark")
    source = BackgroundSource(BackgroundOptions())
    video = VideoReader(folder)
    model = source.fit(video)
    frames = list(video)
    source.segment(frames[21], model)  # animals 1 and 2 touch: a blob of two, split
    pair = [a for a in source._previous if a.centroid[1] > 100]
    rest = [a for a in source._previous if a.centroid[1] <= 100]
    assert len(pair) == 2
    source._previous = [*rest, pair[0], pair[0]]  # one of the pair predicted twice
    objects = source.segment(frames[22], model)
    assert len(objects) == 2 and all(area > 0 for area in objects.areas)

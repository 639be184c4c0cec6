"""The library API of the README: ``import samtrack as st`` and the frame-by-frame loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_SPEC

import samtrack as st
from samtrack.eval.bench.failures import FailureSpec, simulate
from samtrack.eval.bench.scenes import Scene
from samtrack.pipeline.cli import main as cli_main
from samtrack.pipeline.core.errors import ConfigError
from samtrack.pipeline.viz import draw_overlay

FAILURES = FailureSpec(swap_on_reentry=1.0, drop=0.02, spurious=0.02, seed=5)


def _my_segmenter(scene_dir: Path):
    """Stands for a user's segmenter: SAM2-style masks (failures injected) with the frames."""
    sim = simulate((g.compact() for g in Scene(SMALL_SPEC).ground_truth()), FAILURES)
    by_frame = {f.frame_index: f for f in sim.frames}
    for frame in st.VideoReader(scene_dir / "img1"):
        yield frame.image, by_frame[frame.index].masks


def test_readme_loop_runs_as_written_and_equals_samtrack_eval(small_scene, tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text("tracker:\n  identities: offline\n  num_identities: 3\n")
    gt = str(small_scene / "gt" / "masks")

    # --- the README's loop, as written there ---
    tracker = st.Tracker.from_config(config)
    for frame, masks in _my_segmenter(small_scene):
        objs = st.FrameObjects.from_masks(masks)
        tracked = tracker.update(objs, frame)
        assert len(tracked.track_ids) == len(masks)
    result = tracker.finalize()
    report = st.evaluate(gt=gt, pred=result)
    # ---

    assert len(result.frames) == SMALL_SPEC.num_frames
    assert [f.frame_index for f in result.frames] == list(range(SMALL_SPEC.num_frames))
    assert 1 <= len(result.track_ids) <= 3
    # the same numbers as `samtrack eval` on the written run of the same masks
    masks_txt = tmp_path / "masks.txt"
    sim = simulate((g.compact() for g in Scene(SMALL_SPEC).ground_truth()), FAILURES)
    # the segmenter above gave no source ids; the run's masks source must not either
    for f in sim.frames:
        f.source_ids = np.full(len(f), -1, np.int64)
    sim.write_mots(masks_txt)
    run_dir = tmp_path / "run"
    assert cli_main(["run", "--config", str(config), "--video", str(small_scene / "img1"),
                     "--masks", str(masks_txt), "--out", str(run_dir), "--quiet"]) == 0
    cli = st.evaluate(gt=gt, pred=run_dir).combined
    for key in ("idf1", "hota", "mota", "idsw", "fp", "fn"):
        assert report.combined[key] == pytest.approx(cli[key], abs=1e-9), key


def test_build_creates_the_configured_embedder():
    assert st.TrackerConfig().build().embedder.name == "histogram"
    assert st.ReidTracker(st.TrackerConfig()).embedder is not None  # never silently without
    assert st.ReidTracker(st.TrackerConfig(), embedder=None).embedder is None  # asked for
    assert isinstance(st.TrackerConfig(type="iou").build(), st.IouTracker)


def test_reset_forgets_the_clip(small_scene):
    tracker = st.TrackerConfig().build()
    for frame, masks in _my_segmenter(small_scene):
        tracker.update(st.FrameObjects.from_masks(masks), frame)
    first = [f.track_ids.tolist() for f in tracker.finalize().frames]
    tracker.reset()
    assert tracker.finalize().frames == []
    for frame, masks in _my_segmenter(small_scene):
        tracker.update(st.FrameObjects.from_masks(masks), frame)
    assert [f.track_ids.tolist() for f in tracker.finalize().frames] == first


def test_from_config_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tracker:\n  association:\n    max_age: ten\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: tracker\.association\.max_age: "
                                          r"expected int"):
        st.Tracker.from_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        st.Tracker.from_config(tmp_path / "missing.yaml")


def test_annotators_are_registered_and_chosen_by_config():
    masks = np.zeros((1, 40, 60), bool)
    masks[0, 10:30, 20:50] = True
    objs = st.FrameObjects.from_masks(masks, frame_index=0, track_ids=[3])
    image = np.zeros((40, 60, 3), np.uint8)
    boxes = draw_overlay(image, objs, annotators=["boxes"])
    assert boxes[10, 20].any() and not boxes[20, 35].any()  # outline only
    tinted = draw_overlay(image, objs)  # default: masks, labels
    assert tinted[20, 30].any() and not tinted[0, 0].any()
    with pytest.raises(ConfigError, match=r"viz\.annotators.*unknown annotator 'halo'"):
        st.load_config(None, {"viz.annotators": ["masks", "halo"]})

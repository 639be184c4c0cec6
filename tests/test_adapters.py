"""SAM2 and supervision adapters, colour order, saving a library result, the SAM2 example."""

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fake_sam2 import FakeVideoPredictor

import samtrack as st
from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.pipeline.render import VizOptions, render

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sam2_loop.py"


def _example():
    spec = importlib.util.spec_from_file_location("sam2_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sam2_loop"] = module
    spec.loader.exec_module(module)
    return module


def _logits(masks):
    return torch.from_numpy(np.where(masks, 6.0, -6.0).astype(np.float32))[:, None]


def test_from_sam2_takes_what_propagate_yields():
    masks = np.zeros((2, 40, 60), bool)
    masks[0, 5:15, 10:30] = True
    masks[1, 20:35, 40:55] = True
    objects = st.from_sam2(7, [3, 9], _logits(masks))  # (N, 1, H, W) float tensor
    assert objects.frame_index == 7 and objects.image_size == (40, 60)
    assert objects.source_ids.tolist() == [3, 9]
    assert np.array_equal(objects.masks, masks)
    assert objects.boxes.tolist() == [[10, 5, 30, 15], [40, 20, 55, 35]]
    assert objects.scores == pytest.approx(1 / (1 + np.exp(-6.0)), abs=1e-6)
    for shape in [(2, 40, 60), (1, 2, 40, 60)]:  # other layouts SAM2 code passes around
        again = st.from_sam2(7, np.array([3, 9]), _logits(masks).reshape(shape))
        assert np.array_equal(again.masks, masks)
    booleans = st.from_sam2(0, [1, 2], masks)
    assert booleans.scores.tolist() == [1.0, 1.0]


def test_from_sam2_keeps_a_lost_object_as_empty_and_refuses_wrong_shapes():
    masks = np.zeros((2, 20, 20), bool)
    masks[0, 2:8, 2:8] = True
    objects = st.from_sam2(0, [1, 2], _logits(masks))
    assert objects.areas.tolist() == [36, 0] and objects.scores[1] == 0
    with pytest.raises(ValueError, match=r"one mask per object id \(3 ids\)"):
        st.from_sam2(0, [1, 2, 3], _logits(masks))


def _detections():
    import supervision as sv

    masks = np.zeros((3, 50, 80), bool)
    masks[0, 5:20, 5:25] = True
    masks[1, 30:45, 40:70] = True
    masks[2, 10:12, 60:79] = True
    return sv.Detections(xyxy=np.array([[5, 5, 25, 20], [40, 30, 70, 45], [60, 10, 79, 12]],
                                       np.float32),
                         mask=masks, confidence=np.array([0.9, 0.8, 0.4], np.float32),
                         class_id=np.array([0, 0, 1]), tracker_id=np.array([11, 12, 13]),
                         data={"class_name": np.array(["sheep", "sheep", "dog"])})


def test_supervision_detections_round_trip_every_column():
    detections = _detections()
    objects = st.from_detections(detections, frame_index=4)
    assert objects.source_ids.tolist() == [11, 12, 13]
    assert objects.data["class_name"].tolist() == ["sheep", "sheep", "dog"]
    tracked = objects.with_track_ids([1, 2, 3])
    back = st.to_detections(tracked)
    assert np.array_equal(back.mask, detections.mask)
    assert np.array_equal(back.xyxy, detections.xyxy)
    assert np.allclose(back.confidence, detections.confidence)
    assert back.class_id.tolist() == [0, 0, 1]
    assert back.tracker_id.tolist() == [1, 2, 3]
    assert back.data["source_id"].tolist() == [11, 12, 13]
    assert back.data["class_name"].tolist() == ["sheep", "sheep", "dog"]
    subset = back[back.class_id == 0]  # supervision filters every column together
    assert subset.data["source_id"].tolist() == [11, 12]


def test_boxes_without_masks_need_the_image_size():
    import supervision as sv

    boxes = sv.Detections(xyxy=np.array([[2, 3, 10, 8]], np.float32))
    with pytest.raises(ValueError, match="image_size"):
        st.from_detections(boxes)
    objects = st.from_detections(boxes, image_size=(20, 30))
    assert objects.areas.tolist() == [8 * 5] and objects.source_ids.tolist() == [-1]


def test_an_rgb_frame_said_rgb_gives_what_the_bgr_frame_gives():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    rgb = bgr[:, :, ::-1].copy()
    assert np.array_equal(st.as_bgr(rgb, "rgb"), bgr)
    with pytest.raises(ValueError, match="color"):
        st.as_bgr(rgb, "hsv")
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 5:25, 5:25] = True
    masks[1, 30:55, 40:70] = True

    def embeddings(image, color):
        tracker = st.TrackerConfig(embedder="histogram").build()
        out = tracker.update(st.FrameObjects.from_masks(masks), image, color=color)
        return out.embeddings

    assert np.allclose(embeddings(rgb, "rgb"), embeddings(bgr, "bgr"))
    assert not np.allclose(embeddings(rgb, "bgr"), embeddings(bgr, "bgr"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    Scene(SceneSpec(num_animals=2, num_frames=6, width=160, height=96, body_length=30,
                    seed=1, exit_every=0)).write(folder)
    return folder / "img1"


def test_the_sam2_example_with_the_fake_predictor_writes_a_run_viz_can_draw(scene, tmp_path):
    folder = _example().main([str(scene), "--box", "10,10,40,40", "--box", "100,40,140,80",
                              "--out", str(tmp_path / "run")], predictor=FakeVideoPredictor())
    data = json.loads((folder / "summary.json").read_text())
    assert data["status"] == "complete" and data["frames"] == 6
    assert data["track_ids"] == [1, 2]
    written = render(folder, VizOptions())
    assert written["trails.mp4"].stat().st_size > 0
    first = cv2.imread(str(folder / "masks" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert first[20, 20] == 1 and first[60, 120] == 2


@pytest.mark.slow
def test_the_sam2_example_runs_the_real_architecture_with_random_weights(scene, tmp_path):
    from samtrack.pipeline.sources.sam2_model import save_random_checkpoint

    torch.manual_seed(0)
    checkpoint = save_random_checkpoint("tiny", tmp_path / "t.pt")
    three = tmp_path / "frames"
    three.mkdir()
    for path in sorted(scene.glob("*.jpg"))[:3]:
        (three / path.name).write_bytes(path.read_bytes())
    folder = _example().main([str(three), "--box", "10,10,40,40", "--checkpoint",
                              str(checkpoint), "--device", "cpu", "--out", str(tmp_path / "run")])
    assert (folder / "summary.json").is_file()
    assert len(list((folder / "masks").glob("*.png"))) == 3

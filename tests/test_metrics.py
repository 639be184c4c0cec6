import numpy as np
import pytest

from eval.data import FrameTracks, SequenceTracks, load_tracks
from eval.metrics import evaluate


def _boxes_seq(assignments, name="s"):
    """assignments: per frame a list of (id, x) boxes 10 wide at height 0..10."""
    seq = SequenceTracks(name, has_masks=False)
    for f, objs in enumerate(assignments, start=1):
        ids = np.array([i for i, _ in objs], np.int64)
        boxes = np.array([[x, 0, x + 10, 10] for _, x in objs], float).reshape(-1, 4)
        seq.frames[f] = FrameTracks(ids, boxes)
    return seq


def test_perfect_prediction_scores_one():
    gt = _boxes_seq([[(1, 0), (2, 50)]] * 6)
    m = evaluate(gt, gt)
    assert m["idf1"] == 1.0 and m["mota"] == 1.0 and m["idsw"] == 0
    assert m["fp"] == 0 and m["fn"] == 0 and m["mt"] == 2


def test_single_swapped_pair_counts_two_switches():
    gt = _boxes_seq([[(1, 0), (2, 50)]] * 6)
    pred = _boxes_seq([[(1, 0), (2, 50)]] * 3 + [[(2, 0), (1, 50)]] * 3)
    m = evaluate(gt, pred)
    assert m["idsw"] == 2  # each ground-truth id changes its predicted id once
    assert m["idf1"] == pytest.approx(0.5)
    assert m["mota"] == pytest.approx(1 - 2 / 12)


def test_new_id_on_reentry_is_one_switch():
    gt = _boxes_seq([[(1, 0)]] * 3 + [[]] * 2 + [[(1, 0)]] * 3)
    pred = _boxes_seq([[(1, 0)]] * 3 + [[]] * 2 + [[(7, 0)]] * 3)
    m = evaluate(gt, pred)
    assert m["idsw"] == 1
    assert m["frag"] == 0  # the object was absent, not missed: no fragmentation
    assert m["idf1"] == pytest.approx(0.5)


def test_missed_frames_fragment_a_track():
    gt = _boxes_seq([[(1, 0)]] * 6)
    pred = _boxes_seq([[(1, 0)]] * 2 + [[]] * 2 + [[(1, 0)]] * 2)
    m = evaluate(gt, pred)
    assert m["frag"] == 1 and m["fn"] == 2 and m["idsw"] == 0


def test_load_tracks_png_and_mot_agree(small_scene):
    png = load_tracks(small_scene / "gt" / "masks")
    mot = load_tracks(small_scene / "gt" / "gt.txt")
    assert png.has_masks and not mot.has_masks
    assert png.num_frames == mot.num_frames
    np.testing.assert_allclose(png.get(1).boxes, mot.get(1).boxes)
    assert evaluate(png, mot)["idf1"] == 1.0  # box IoU used when one side has no masks

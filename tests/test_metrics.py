import numpy as np
import pytest

from samtrack.eval.data import FrameTracks, SequenceTracks, load_tracks
from samtrack.eval.report import evaluate_pairs, evaluate_paths
from samtrack.pipeline.core.formats import FormatError


def evaluate(gt, pred):
    return evaluate_pairs({"s": (gt, pred)}).combined


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


def test_perfect_prediction_hota_one():
    gt = _boxes_seq([[(1, 0), (2, 50)]] * 6)
    m = evaluate(gt, gt)
    assert m["hota"] == pytest.approx(1.0) and m["assa"] == pytest.approx(1.0)


def test_swap_report_names_frame_and_ids():

    gt = _boxes_seq([[(1, 0), (2, 50)]] * 6)
    pred = _boxes_seq([[(10, 0), (20, 50)]] * 3 + [[(20, 0), (10, 50)]] * 3)
    report = evaluate_pairs({"s": (gt, pred)})
    got = sorted((s.frame, s.gt_id, s.previous_pred_id, s.new_pred_id) for s in report.switches)
    assert got == [(4, 1, 10, 20), (4, 2, 20, 10)]


def _write(path, rows):
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


def test_mot17_preprocessing_like_trackeval(tmp_path):
    """Zero-marked and non-pedestrian gt are dropped; predictions on distractors are removed."""

    gt = _write(tmp_path / "gt.txt", [
        (1, 1, 0, 0, 10, 10, 1, 1, 1),     # pedestrian
        (1, 2, 50, 0, 10, 10, 0, 1, 1),    # pedestrian, zero-marked: ignored
        (1, 3, 100, 0, 10, 10, 1, 7, 1),   # static person: a distractor
    ])
    pred = _write(tmp_path / "pred.txt", [
        (1, 5, 0, 0, 10, 10, 1, -1, -1, -1),
        (1, 6, 50, 0, 10, 10, 1, -1, -1, -1),    # on the zero-marked gt: stays an FP
        (1, 7, 100, 0, 10, 10, 1, -1, -1, -1),   # on the distractor: removed
    ])
    report = evaluate_pairs({"s": (load_tracks(gt), load_tracks(pred))})
    m = report.combined
    assert report.settings["sequences"]["s"]["preproc"] == "mot17"
    assert (m["gt_dets"], m["pred_dets"], m["fp"], m["fn"]) == (1, 2, 1, 0)
    off = evaluate_pairs({"s": (load_tracks(gt), load_tracks(pred))}, preproc="off").combined
    assert (off["gt_dets"], off["pred_dets"], off["fp"]) == (3, 3, 0)


def test_mot15_preprocessing_drops_zero_marked_only(tmp_path):

    gt = _write(tmp_path / "gt.txt", [(1, 1, 0, 0, 10, 10, 1, -1, -1, -1),
                                      (1, 2, 50, 0, 10, 10, 0, -1, -1, -1)])
    pred = _write(tmp_path / "pred.txt", [(1, 5, 0, 0, 10, 10, 1, -1, -1, -1)])
    report = evaluate_pairs({"s": (load_tracks(gt), load_tracks(pred))})
    assert report.settings["sequences"]["s"]["preproc"] == "mot15"
    assert report.combined["gt_dets"] == 1 and report.combined["fn"] == 0


def test_sequence_folder_combined_and_per_sequence(tmp_path, small_scene):
    import shutil


    for name in ("a", "b"):
        shutil.copytree(small_scene, tmp_path / "gt" / name)
    (tmp_path / "pred").mkdir()
    shutil.copy(small_scene / "gt" / "gt.txt", tmp_path / "pred" / "a.txt")
    shutil.copytree(small_scene / "gt" / "masks", tmp_path / "pred" / "b")
    report = evaluate_paths(tmp_path / "gt", tmp_path / "pred")
    assert set(report.sequences) == {"a", "b"}
    assert report.combined["idf1"] == pytest.approx(1.0)
    assert report.combined["gt_dets"] == 2 * report.sequences["a"]["gt_dets"]
    written = report.write(tmp_path / "out")
    assert {p.name for p in written.iterdir()} == {"metrics.json", "metrics.csv", "eval.json",
                                                  "switches.csv"}


def test_missing_prediction_and_bad_files(tmp_path, small_scene):
    import shutil


    shutil.copytree(small_scene, tmp_path / "gt" / "a")
    (tmp_path / "pred").mkdir()
    with pytest.raises(FormatError, match=r"no prediction for sequence 'a'"):
        evaluate_paths(tmp_path / "gt", tmp_path / "pred")
    (tmp_path / "empty.txt").write_text("")  # found nothing: a result, every object missed
    empty = load_tracks(tmp_path / "empty.txt")
    assert empty.frames == {} and empty.kind == "empty"
    _write(tmp_path / "dup.txt", [(1, 1, 0, 0, 1, 1, 1), (1, 1, 5, 5, 1, 1, 1)])
    with pytest.raises(FormatError, match=r"dup.txt: frame 1: id 1 appears more than once"):
        load_tracks(tmp_path / "dup.txt")

"""Correctness anchors: samtrack's numbers against motmetrics' and TrackEval's own."""

import os
from pathlib import Path

import motmetrics
import numpy as np
import pytest

from samtrack.eval.data import load_tracks
from samtrack.eval.report import evaluate_pairs

MM_DATA = Path(os.path.dirname(motmetrics.__file__)) / "data"

# motmetrics' tests/test_metrics.py::test_motchallenge_files, motchallenge_metrics[:15]:
# idf1 idp idr recall precision gt_ids mt pt ml fp fn idsw frag mota motp(dist)
EXPECTED = {
    "TUD-Campus": [0.557659, 0.729730, 0.451253, 0.582173, 0.941441, 8, 1, 6, 1, 13, 150, 7, 7,
                   0.526462, 0.277201],
    "TUD-Stadtmitte": [0.644619, 0.819760, 0.531142, 0.608997, 0.939920, 10, 5, 4, 1, 45, 452,
                       7, 6, 0.564014, 0.345904],
    "OVERALL": [0.624296, 0.799176, 0.512211, 0.602640, 0.940268, 18, 6, 10, 2, 58, 602, 14,
                13, 0.555116, 0.330177],
}
KEYS = ["idf1", "idp", "idr", "recall", "precision", "gt_ids", "mt", "pt", "ml", "fp", "fn",
        "idsw", "frag", "mota", "motp_dist"]


@pytest.fixture(scope="module")
def mm_report():
    pairs = {n: (load_tracks(MM_DATA / n / "gt.txt", n), load_tracks(MM_DATA / n / "test.txt", n))
             for n in ("TUD-Campus", "TUD-Stadtmitte")}
    return evaluate_pairs(pairs)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_equals_motmetrics_expected_values(mm_report, name):
    m = mm_report.combined if name == "OVERALL" else mm_report.sequences[name]
    np.testing.assert_allclose([m[k] for k in KEYS], EXPECTED[name], atol=1e-3)
    assert all(isinstance(m[k], int) for k in ("gt_ids", "fp", "fn", "idsw", "frag"))


def test_switch_report_lists_every_counted_switch(mm_report):
    campus = [s for s in mm_report.switches if s.sequence == "TUD-Campus"]
    assert len(campus) == mm_report.sequences["TUD-Campus"]["idsw"]
    assert all(s.previous_pred_id != s.new_pred_id for s in campus)
    frags = [f for f in mm_report.fragmentations if f.sequence == "TUD-Campus"]
    assert len(frags) == mm_report.sequences["TUD-Campus"]["frag"]


def _run_official_trackeval(tmp_path, name):
    """TrackEval's own MOTChallenge evaluator on the same files (MOT15: no class filter)."""
    import trackeval

    gt_root = tmp_path / "gt" / "MOT15-train"
    seq = gt_root / name
    (seq / "gt").mkdir(parents=True)
    gt_text = (MM_DATA / name / "gt.txt").read_text()
    (seq / "gt" / "gt.txt").write_text(gt_text)
    length = max(int(float(line.split(",")[0])) for line in gt_text.splitlines() if line)
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength={length}\n")
    tr = tmp_path / "trackers" / "MOT15-train" / "mine" / "data"
    tr.mkdir(parents=True)
    (tr / f"{name}.txt").write_text((MM_DATA / name / "test.txt").read_text())
    seqmap = tmp_path / "seqmap.txt"
    seqmap.write_text(f"name\n{name}\n")
    cfg = trackeval.Evaluator.get_default_eval_config()
    cfg.update(PRINT_RESULTS=False, PRINT_CONFIG=False, OUTPUT_SUMMARY=False,
               OUTPUT_DETAILED=False, PLOT_CURVES=False, PRINT_ONLY_COMBINED=True,
               TIME_PROGRESS=False, USE_PARALLEL=False)
    dcfg = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
    dcfg.update(GT_FOLDER=str(tmp_path / "gt"), TRACKERS_FOLDER=str(tmp_path / "trackers"),
                BENCHMARK="MOT15", SPLIT_TO_EVAL="train", TRACKERS_TO_EVAL=["mine"],
                SEQMAP_FILE=str(seqmap), SKIP_SPLIT_FOL=False, PRINT_CONFIG=False)
    evaluator = trackeval.Evaluator(cfg)
    dataset = trackeval.datasets.MotChallenge2DBox(dcfg)
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    res, _ = evaluator.evaluate([dataset], metrics)
    return res["MotChallenge2DBox"]["mine"][name]["pedestrian"]


@pytest.mark.parametrize("name", ["TUD-Campus", "TUD-Stadtmitte"])
def test_hota_equals_official_trackeval(tmp_path, mm_report, name):
    official = _run_official_trackeval(tmp_path, name)
    mine = mm_report.sequences[name]
    assert mine["hota"] == pytest.approx(float(np.mean(official["HOTA"]["HOTA"])), abs=1e-9)
    assert mine["deta"] == pytest.approx(float(np.mean(official["HOTA"]["DetA"])), abs=1e-9)
    assert mine["assa"] == pytest.approx(float(np.mean(official["HOTA"]["AssA"])), abs=1e-9)
    assert mine["te_mota"] == pytest.approx(official["CLEAR"]["MOTA"], abs=1e-9)
    assert mine["te_idf1"] == pytest.approx(official["Identity"]["IDF1"], abs=1e-9)

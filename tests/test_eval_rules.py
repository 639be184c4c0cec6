"""Evaluation never gives silently wrong numbers; configs reject what they say they reject.

Each case is a tiny input: either the right number, or exit code 2 with one
``samtrack: error:`` line naming the file, line, key or frame, and no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from samtrack.eval.report import evaluate_paths
from samtrack.pipeline.cli import main
from samtrack.pipeline.core.formats import write_id_map


def cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_user_error(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("samtrack: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _maps(folder: Path, frames: int, names=None) -> Path:
    """``frames`` ID maps of two 8x8 squares, named ``000001.png``... (or ``names``)."""
    folder.mkdir(parents=True)
    for t in range(frames):
        m = np.zeros((30, 40), np.uint16)
        m[2:10, 2 + t:10 + t] = 1
        m[15:23, 20:28] = 2
        name = names[t] if names else f"{t + 1:06d}"
        write_id_map(folder / f"{name}.png", m)
    return folder


def _mot(path: Path, frames: range) -> Path:
    path.write_text("".join(f"{f},1,{10 + f},10,20,20,1,-1,-1,-1\n" for f in frames))
    return path


# ----------------------------------------------------------------------------- frame matching
def test_png_maps_are_matched_by_name_not_position(tmp_path):
    gt = _maps(tmp_path / "gt", 4)
    pred = tmp_path / "pred"
    shutil.copytree(gt, pred)
    (pred / "000002.png").unlink()  # a perfect prediction with one map missing
    m = evaluate_paths(gt, pred).combined
    assert (m["fn"], m["fp"], m["idsw"]) == (2, 0, 0)


def test_zero_based_and_one_based_names_align_by_number(tmp_path):
    gt = _maps(tmp_path / "gt", 3, names=["000000", "000001", "000002"])  # a video's index
    mot = tmp_path / "pred.txt"  # MOTChallenge frames are 1-based
    boxes = [(1, 2 + t, 2, 8, 8) for t in range(3)] + [(2, 20, 15, 8, 8)] * 3
    frames = [1, 2, 3, 1, 2, 3]
    mot.write_text("".join(f"{f},{i},{x},{y},{w},{h},1,-1,-1,-1\n"
                           for f, (i, x, y, w, h) in zip(frames, boxes, strict=True)))
    m = evaluate_paths(gt, mot).combined
    assert (m["fn"], m["fp"], m["idsw"], m["mota"]) == (0, 0, 0, 1.0)


def test_predictions_beyond_the_ground_truth_are_an_error(tmp_path, capsys):
    gt = _mot(tmp_path / "gt.txt", range(1, 11))
    pred = _mot(tmp_path / "pred.txt", range(1, 21))
    code, err = cli(capsys, "eval", "--gt", str(gt), "--pred", str(pred))
    assert_user_error(code, err, "pred.txt", "frames 11-20", "1-10")


def test_an_empty_prediction_misses_everything(tmp_path, capsys):
    gt = _mot(tmp_path / "gt.txt", range(1, 6))
    (tmp_path / "empty.txt").write_text("")  # "found nothing" is a result, not bad input
    m = evaluate_paths(gt, tmp_path / "empty.txt").combined
    assert (m["fn"], m["fp"], m["idsw"]) == (5, 0, 0)
    code, err = cli(capsys, "eval", "--gt", str(gt), "--pred", str(tmp_path / "empty.txt"))
    assert code == 0, err


# ----------------------------------------------------------------------------- run folders
@pytest.fixture()
def finished_run(small_scene, tmp_path, capsys) -> Path:
    out = tmp_path / "run"
    code, err = cli(capsys, "run", "--video", str(small_scene / "img1"), "--masks",
                    str(small_scene / "gt" / "masks"), "--out", str(out), "--quiet")
    assert code == 0, err
    return out


@pytest.mark.parametrize("damage", ["incomplete", "failed"])
def test_eval_refuses_a_run_that_did_not_finish(finished_run, small_scene, capsys, damage):
    if damage == "incomplete":
        (finished_run / "INCOMPLETE").write_text("")
    else:
        summary = json.loads((finished_run / "summary.json").read_text())
        (finished_run / "summary.json").write_text(json.dumps({**summary, "status": "failed"}))
    shutil.rmtree(finished_run / "eval", ignore_errors=True)
    gt = str(small_scene / "gt" / "masks")
    code, err = cli(capsys, "eval", "--gt", gt, "--pred", str(finished_run))
    assert_user_error(code, err, str(finished_run), "--allow-incomplete")
    assert not (finished_run / "eval").exists()  # nothing written into it
    code, err = cli(capsys, "eval", "--gt", gt, "--pred", str(finished_run),
                    "--allow-incomplete")
    assert code == 0 and "partial run" in err


def test_a_run_that_skipped_a_frame_is_scored_by_name(small_scene, tmp_path, capsys):
    video = tmp_path / "frames"
    shutil.copytree(small_scene / "img1", video)
    victim = sorted(video.iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated JPEG: skipped with a warning
    out = tmp_path / "run"
    gt = str(small_scene / "gt" / "masks")
    code, err = cli(capsys, "run", "--video", str(video), "--masks", gt, "--out", str(out),
                    "--gt", gt, "--quiet")
    assert code == 0, err
    m = json.loads((out / "summary.json").read_text())["metrics"]
    objects_in_skipped = len(np.unique(cv2.imread(str(Path(gt) / f"{victim.stem}.png"),
                                                  cv2.IMREAD_UNCHANGED))) - 1
    assert (m["fn"], m["fp"], m["idsw"]) == (objects_in_skipped, 0, 0)


def test_outputs_get_ordinary_permissions(finished_run):
    def mode(name):
        return stat.S_IMODE((finished_run / name).stat().st_mode)

    assert mode("config.yaml") == mode("summary.json") == mode("tracks.txt")
    assert mode("summary.json") & 0o044 == 0o644 & 0o044 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- malformed rows
def _rle(h=4, w=4) -> str:
    m = np.zeros((h, w), np.uint8, order="F")
    m[1:3, 1:3] = 1
    return coco_mask.encode(m)["counts"].decode()


MOTS_ROWS = {
    "truncated RLE": (f"1 1 1 4 4 {_rle()[:-1]}", "bad RLE"),
    "RLE 0": ("1 1 1 4 4 0", "bad RLE"),
    "garbage RLE": ("1 1 1 4 4 ~~~~", "bad RLE"),
    "negative frame": (f"-3 1 1 4 4 {_rle()}", "frame must be >= 1"),
    "huge id": (f"1 {2**63} 1 4 4 {_rle()}", "id must be"),
}


@pytest.mark.parametrize("case", MOTS_ROWS, ids=list(MOTS_ROWS))
def test_malformed_mots_rows_name_file_and_line(tmp_path, capsys, case):
    row, why = MOTS_ROWS[case]
    gt = tmp_path / "gt.txt"
    gt.write_text(f"1 1 1 4 4 {_rle()}\n")
    pred = tmp_path / "pred.txt"
    pred.write_text(f"1 1 1 4 4 {_rle()}\n{row}\n")
    code, err = cli(capsys, "eval", "--gt", str(gt), "--pred", str(pred))
    assert_user_error(code, err, "pred.txt:2:", why)


MOT_ROWS = {
    "NaN x": ("2,1,NaN,10,20,20,1", "column 3 (x)"),
    "inf width": ("2,1,10,10,inf,20,1", "column 5 (width)"),
    "huge id": (f"2,{2**63},10,10,20,20,1", "id must be"),
    "fractional id": ("2,1.5,10,10,20,20,1", "id must be"),
    "negative size": ("2,1,10,10,-20,20,1", "negative box size"),
    "not a number": ("2,one,10,10,20,20,1", "not a number"),
}


@pytest.mark.parametrize("case", MOT_ROWS, ids=list(MOT_ROWS))
def test_malformed_mot_rows_name_file_and_line(tmp_path, capsys, case):
    row, why = MOT_ROWS[case]
    gt = _mot(tmp_path / "gt.txt", range(1, 4))
    pred = tmp_path / "pred.txt"
    pred.write_text(f"1,1,11,10,20,20,1\n{row}\n")
    code, err = cli(capsys, "eval", "--gt", str(gt), "--pred", str(pred))
    assert_user_error(code, err, "pred.txt:2:", why)


# ----------------------------------------------------------------------------- configs
BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['x'] * 9)}]\n"
               for p, a in zip(["", "a", "b", "c", "d", "e"], "abcdef", strict=True)) + \
    "tracker:\n  max_age: *f\n"

CONFIGS = {
    "duplicate section": (b"tracker:\n  identities: offline\ntracker:\n  num_identities: 5\n",
                          "key 'tracker' appears twice"),
    "bool for int": (b"tracker:\n  association:\n    max_age: true\n",
                     "tracker.association.max_age: expected int"),
    "string for int": (b"tracker:\n  association:\n    max_age: '600'\n",
                       "tracker.association.max_age: expected int"),
    "string for bool": (b"output:\n  overwrite: 'yes'\n", "output.overwrite: expected bool"),
    "alias bomb": (BOMB.encode(), "YAML aliases"),
    "python tag": (b"x: !!python/object:os.system\n  a: 1\n", "could not determine"),
    "not UTF-8": (b"tracker:\n  identities: \xff\xfe\n", "not UTF-8"),
    "unknown key": (b"tracker:\n  max_agee: 5\n", "tracker.max_agee: unknown key"),
    "NaN": (b"tracker:\n  association:\n    max_cost: .nan\n", "tracker.association.max_cost"),
    "negative": (b"tracker:\n  association:\n    max_age: -1\n", "tracker.association.max_age"),
    "zero": (b"tracker:\n  association:\n    min_hits: 0\n", "tracker.association.min_hits"),
    "huge": (b"tracker:\n  association:\n    max_age: 1.0e+308\n",
                "tracker.association.max_age: expected int"),
    "infinite": (b"tracker:\n  association:\n    max_cost: .inf\n", "tracker.association.max_cost"),
    "syntax": (b"tracker:\n  identities: [gallery\n", "line"),
    "not a mapping": (b"- tracker\n", "top level must be a mapping"),
}


@pytest.mark.parametrize("case", CONFIGS, ids=list(CONFIGS))
def test_bad_configs_fail_fast_with_one_short_line(tmp_path, small_scene, capsys, case):
    text, needle = CONFIGS[case]
    path = tmp_path / "bad config.yaml"
    path.write_bytes(text)
    start = time.perf_counter()
    code, err = cli(capsys, "run", "--config", str(path), "--video",
                    str(small_scene / "img1"), "--out", str(tmp_path / "out"))
    assert time.perf_counter() - start < 10
    assert_user_error(code, err, "bad config.yaml", needle)
    assert len(err) < 500
    assert not (tmp_path / "out").exists()


def test_config_that_is_a_folder(tmp_path, small_scene, capsys):
    folder = tmp_path / "conf.yaml"
    folder.mkdir()
    code, err = cli(capsys, "run", "--config", str(folder), "--video",
                    str(small_scene / "img1"), "--out", str(tmp_path / "out"))
    assert_user_error(code, err, "conf.yaml", "is a folder")


def test_empty_config_and_unicode_paths_run_on_defaults(tmp_path, small_scene, capsys):
    folder = tmp_path / "séquence ünï"
    shutil.copytree(small_scene / "img1", folder / "img 1")
    config = folder / "réglages vides.yaml"
    config.write_text("")  # an empty config is every default
    code, err = cli(capsys, "run", "--config", str(config), "--video", str(folder / "img 1"),
                    "--out", str(folder / "sortie"), "--quiet", "--max-frames", "3")
    assert code == 0, err
    assert json.loads((folder / "sortie" / "summary.json").read_text())["frames"] == 3


# ----------------------------------------------------------------------------- resources
def test_frames_above_the_pixel_limit_are_refused(tmp_path, capsys):
    folder = tmp_path / "huge"
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.png"), np.zeros((2200, 4000, 3), np.uint8))  # 8.8 MP
    code, err = cli(capsys, "run", "--video", str(folder), "--out", str(tmp_path / "o"))
    assert_user_error(code, err, "huge", "4000x2200", "video.max_pixels")


def test_a_fifo_as_video_is_refused_not_waited_on(tmp_path, capsys):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    code, err = cli(capsys, "run", "--video", str(fifo), "--out", str(tmp_path / "o"))
    assert_user_error(code, err, "stream.mp4", "not a regular file")


def test_viz_scale_is_capped_like_the_config(finished_run, capsys):
    code, err = cli(capsys, "viz", str(finished_run), "--scale", "1000")
    assert_user_error(code, err, "--scale", "less than or equal to 4")


@pytest.mark.slow
def test_an_id_map_with_a_thousand_ids_is_scored(tmp_path):
    """Reading a map is linear in pixels and ids (one sort, not one pass per id); 5000 ids
    took 22 s here, most of it in motmetrics' and TrackEval's own per-id work."""
    rng = np.random.default_rng(0)
    m = np.zeros((360, 640), np.uint16)
    m.flat[rng.choice(m.size, 1000, replace=False)] = np.arange(1, 1001)
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
        write_id_map(tmp_path / side / "000001.png", m)
    metrics = evaluate_paths(tmp_path / "gt", tmp_path / "pred").combined
    assert (metrics["fp"], metrics["fn"], metrics["idf1"]) == (0, 0, 1.0)


def test_masks_source_refuses_a_frame_with_too_many_objects(small_scene, tmp_path, capsys):
    masks = tmp_path / "masks"
    shutil.copytree(small_scene / "gt" / "masks", masks)
    first = sorted(masks.iterdir())[0]
    noisy = np.arange(1, 180 * 320 + 1, dtype=np.uint16).reshape(180, 320) % 3000 + 1
    write_id_map(first, noisy.astype(np.uint16))
    code, err = cli(capsys, "run", "--video", str(small_scene / "img1"), "--masks", str(masks),
                    "--out", str(tmp_path / "o"), "--quiet")
    assert_user_error(code, err, first.name, "source.masks.max_objects")

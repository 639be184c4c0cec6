"""The fault battery: bad video, masks, eval and output cases, each on a tiny input.

Every case asserts the exit code, a single ``samtrack: error:`` line naming the culprit, no
traceback, and that a previous run and the user's own files are untouched. Config and
evaluation cases live in ``test_eval_rules.py``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_eval_rules import assert_user_error, cli

from samtrack.pipeline.core.formats import write_id_map
from samtrack.pipeline.runfolder import RunLock


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture()
def clip(small_scene, tmp_path) -> Path:
    """A private copy of the 30-frame scene's frames (tests damage it)."""
    dst = tmp_path / "clip"
    shutil.copytree(small_scene / "img1", dst)
    return dst


@pytest.fixture()
def masks(small_scene) -> Path:
    return small_scene / "gt" / "masks"


@pytest.fixture()
def previous_run(clip, masks, tmp_path, capsys) -> Path:
    out = tmp_path / "run"
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(masks), "--out",
                    str(out), "--quiet", "--max-frames", "5")
    assert code == 0, err
    return out


# ----------------------------------------------------------------------------- video
def _frames(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


VIDEO_FAULTS = {
    "empty folder": (lambda c: [p.unlink() for p in _frames(c)], "holds no jpg/png frames"),
    "non-image files": (lambda c: ([p.unlink() for p in _frames(c)],
                                   (c / "notes.txt").write_text("x")), "holds no jpg/png"),
    "zero-byte mp4": (lambda c: (c / "v.mp4").write_bytes(b""), "v.mp4"),
    "fake mp4": (lambda c: (c / "v.mp4").write_text("not a video"), "v.mp4"),
}


@pytest.mark.parametrize("case", VIDEO_FAULTS, ids=list(VIDEO_FAULTS))
def test_unusable_video_is_one_line(clip, tmp_path, capsys, case):
    damage, needle = VIDEO_FAULTS[case]
    damage(clip)
    video = clip / "v.mp4" if (clip / "v.mp4").exists() else clip
    code, err = cli(capsys, "run", "--video", str(video), "--out", str(tmp_path / "o"))
    assert_user_error(code, err, needle)
    assert not (tmp_path / "o").exists()


def test_truncated_jpeg_mid_clip_is_skipped_or_stops_naming_it(clip, masks, tmp_path, capsys,
                                                                caplog):
    victim = _frames(clip)[10]
    victim.write_bytes(victim.read_bytes()[:200])
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(masks), "--out",
                    str(tmp_path / "skip"), "--quiet")
    assert code == 0 and victim.name in caplog.text  # a warning naming the frame
    summary = json.loads((tmp_path / "skip" / "summary.json").read_text())
    assert summary["frames"] == 29 and summary["skipped_frames"] == [str(victim)]
    config = tmp_path / "stop.yaml"
    config.write_text("video:\n  on_bad_frame: stop\n")
    code, err = cli(capsys, "run", "--config", str(config), "--video", str(clip), "--masks",
                    str(masks), "--out", str(tmp_path / "stop"), "--quiet")
    assert_user_error(code, err, victim.name, "cannot decode")
    assert (tmp_path / "stop" / "INCOMPLETE").exists()  # a failed run says so


def test_mixed_frame_sizes_skip_the_odd_frame(clip, tmp_path, capsys, caplog):
    odd = _frames(clip)[3]
    cv2.imwrite(str(odd), np.zeros((50, 60, 3), np.uint8))
    code, _err = cli(capsys, "run", "--video", str(clip), "--out", str(tmp_path / "o"),
                    "--quiet")
    assert code == 0 and odd.name in caplog.text
    assert "differs from the first frame" in caplog.text


@pytest.mark.parametrize("kind", ["gray", "16bit", "rgba", "one frame"])
def test_unusual_but_valid_frames_run(clip, tmp_path, capsys, kind):
    frames = _frames(clip)
    for p in frames:
        image = cv2.imread(str(p))
        if kind == "gray":
            cv2.imwrite(str(p.with_suffix(".png")), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        elif kind == "16bit":
            cv2.imwrite(str(p.with_suffix(".png")), image.astype(np.uint16) * 257)
        elif kind == "rgba":
            cv2.imwrite(str(p.with_suffix(".png")), cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
        p.unlink()
        if kind == "one frame":
            cv2.imwrite(str(p), image)
            [q.unlink() for q in frames[1:]]
            break
    code, err = cli(capsys, "run", "--video", str(clip), "--out", str(tmp_path / "o"),
                    "--quiet")
    assert code == 0, err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["frames"] == (1 if kind == "one frame" else 30)


# ----------------------------------------------------------------------------- masks
def test_masks_of_the_wrong_size(clip, masks, tmp_path, capsys):
    bad = tmp_path / "masks"
    shutil.copytree(masks, bad)
    victim = sorted(bad.iterdir())[4]
    write_id_map(victim, np.zeros((20, 30), np.uint16))
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(bad), "--out",
                    str(tmp_path / "o"), "--quiet")
    assert_user_error(code, err, victim.name, "differs from frame")


def test_a_missing_mask_frame_is_named(clip, masks, tmp_path, capsys):
    bad = tmp_path / "masks"
    shutil.copytree(masks, bad)
    victim = sorted(bad.iterdir())[7]
    victim.unlink()
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(bad), "--out",
                    str(tmp_path / "o"), "--quiet")
    assert_user_error(code, err, victim.name, "missing_frame")


def _mot_masks(tmp_path: Path, row: str) -> Path:
    path = tmp_path / "dets.txt"
    path.write_text(f"1,-1,10,10,20,20,0.9\n{row}\n")
    return path


MASK_ROWS = {
    "NaN box": ("2,-1,NaN,10,20,20,0.9", "dets.txt:2:"),
    "negative box": ("2,-1,10,10,-5,20,0.9", "dets.txt:2:"),
    "huge id": (f"2,{2**64},10,10,20,20,0.9", "dets.txt:2:"),
    "duplicate id": ("1,-1,40,40,20,20,0.9\n1,7,0,0,5,5,1\n1,7,50,50,5,5,1", "id 7"),
}


@pytest.mark.parametrize("case", MASK_ROWS, ids=list(MASK_ROWS))
def test_bad_mask_rows_name_file_and_line(clip, tmp_path, capsys, case):
    row, needle = MASK_ROWS[case]
    path = _mot_masks(tmp_path, row)
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(path), "--out",
                    str(tmp_path / "o"), "--quiet")
    assert_user_error(code, err, needle)


def test_bad_rle_in_mots_masks(clip, tmp_path, capsys):
    path = tmp_path / "masks.txt"
    path.write_text("1 1 1 180 320 0\n")
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(path), "--out",
                    str(tmp_path / "o"), "--quiet")
    assert_user_error(code, err, "masks.txt:1:", "bad RLE")


# ----------------------------------------------------------------------------- eval
def test_eval_of_a_folder_that_is_not_a_run(masks, tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    code, err = cli(capsys, "eval", "--gt", str(masks), "--pred", str(folder))
    assert_user_error(code, err, "notes", "no PNG ID maps")


# ----------------------------------------------------------------------------- output
@pytest.mark.parametrize("target", ["user folder", "current", "parent", "home", "root",
                                    "holds the input"])
def test_overwrite_never_takes_a_folder_that_is_not_a_run(clip, masks, tmp_path, capsys,
                                                          monkeypatch, target):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.chdir(user)
    out = {"user folder": str(user), "current": ".", "parent": "..", "home": "~",
           "root": "/", "holds the input": str(clip)}[target]
    if out == "~":
        out = os.path.expanduser(out)  # what the shell hands over
    before = _snapshot(user)
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(masks), "--out", out,
                    "--overwrite", "--quiet")
    assert_user_error(code, err, "refusing" if target != "holds the input" else "input")
    assert _snapshot(user) == before
    assert sorted(p.name for p in user.iterdir()) == ["thesis.tex"]


def test_a_second_run_into_a_locked_folder_fails_naming_the_pid(clip, masks, previous_run,
                                                              capsys):
    before = _snapshot(previous_run)
    lock = RunLock(previous_run)
    lock.acquire()
    try:
        code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(masks), "--out",
                        str(previous_run), "--overwrite", "--quiet")
    finally:
        lock.release()
    assert_user_error(code, err, f"pid {os.getpid()}")
    assert _snapshot(previous_run) == before


def test_a_stale_lock_is_taken_over(clip, masks, previous_run, capsys):
    (previous_run.parent / f".{previous_run.name}.lock").write_text("999999\n")  # dead holder
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(masks), "--out",
                    str(previous_run), "--overwrite", "--quiet", "--max-frames", "3")
    assert code == 0, err


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_disk_and_permission_errors_keep_the_previous_run(clip, masks, previous_run, capsys,
                                                           monkeypatch, error):
    before = _snapshot(previous_run)

    def fail(path, id_map):
        raise OSError(error, os.strerror(error), str(path))

    monkeypatch.setattr("samtrack.pipeline.writers.id_maps.write_id_map", fail)
    code, err = cli(capsys, "run", "--video", str(clip), "--masks", str(masks), "--out",
                    str(previous_run), "--overwrite", "--quiet")
    assert_user_error(code, err, str(previous_run), os.strerror(error),
                      "previous run is untouched")
    assert _snapshot(previous_run) == before


def _start_run(clip: Path, masks: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "samtrack", "run", "--video", str(clip),
                             "--masks", str(masks), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_frames(out: Path, count: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (out / "masks").is_dir() and len(list((out / "masks").iterdir())) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the run wrote no frames")


@pytest.fixture()
def long_clip(tmp_path) -> tuple[Path, Path]:
    """300 frames: long enough to stop a run part way."""
    frames, maps = tmp_path / "long", tmp_path / "long_masks"
    frames.mkdir()
    maps.mkdir()
    for t in range(300):
        image = np.full((60, 80, 3), 90, np.uint8)
        m = np.zeros((60, 80), np.uint16)
        m[10:30, (t % 50):(t % 50) + 20] = 1
        image[m > 0] = 200
        cv2.imwrite(str(frames / f"{t:06d}.png"), image)
        write_id_map(maps / f"{t:06d}.png", m)
    return frames, maps


@pytest.mark.slow
def test_sigterm_leaves_a_valid_partial_run(long_clip, tmp_path, capsys):
    frames, maps = long_clip
    out = tmp_path / "run"
    proc = _start_run(frames, maps, out)
    _wait_for_frames(out, 5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and not (out / "INCOMPLETE").exists()
    written = summary["frames_written"]
    assert 0 < written < 300 and len(list((out / "masks").iterdir())) == written
    code, err = cli(capsys, "eval", "--gt", str(maps), "--pred", str(out))
    assert code == 0 and "partial run" in err  # scored as it is: the rest counts as missed


@pytest.mark.slow
def test_sigkill_leaves_incomplete_which_eval_and_viz_refuse(long_clip, tmp_path, capsys):
    frames, maps = long_clip
    out = tmp_path / "run"
    proc = _start_run(frames, maps, out)
    _wait_for_frames(out, 5)
    proc.kill()
    proc.communicate(timeout=60)
    assert (out / "INCOMPLETE").exists()
    code, err = cli(capsys, "eval", "--gt", str(maps), "--pred", str(out))
    assert_user_error(code, err, "INCOMPLETE", "--allow-incomplete")
    code, err = cli(capsys, "viz", str(out))
    assert_user_error(code, err, "--allow-incomplete")
    code, err = cli(capsys, "eval", "--gt", str(maps), "--pred", str(out),
                    "--allow-incomplete")
    assert code == 0, err
    # the next run into the folder takes over the dead run's lock and replaces it
    code, err = cli(capsys, "run", "--video", str(frames), "--masks", str(maps), "--out",
                    str(out), "--overwrite", "--quiet", "--max-frames", "3")
    assert code == 0, err


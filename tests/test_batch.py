"""``samtrack batch``: local process pool and Ray, failures listed, resume, manifests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

import samtrack.pipeline.sources.sam2_sources as sam2_sources
from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.eval.report import evaluate_paths
from samtrack.pipeline.batch import run_batch
from samtrack.pipeline.cli import main


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Six inputs: five 12-frame sequences (img1/ + gt/) and one corrupt 'video'."""
    root = tmp_path_factory.mktemp("batch") / "clips"
    for k in range(5):
        Scene(SceneSpec(num_animals=2, num_frames=12, width=160, height=96, body_length=30,
                        seed=k)).write(root / f"c{k}")
    (root / "broken.mp4").write_text("not a video")
    return root


def _inputs(clips: Path) -> list[str]:
    return [str(clips / f"c{k}") for k in range(5)] + [str(clips / "broken.mp4")]


def _check_report(report, clips: Path, out: Path) -> None:
    status = {c.name: c.status for c in report.clips}
    assert status == {**{f"c{k}": "done" for k in range(5)}, "broken": "failed"}
    failure = report.failed[0]
    assert "broken.mp4" in failure.error and "\n" not in failure.error
    for k in range(5):
        summary = json.loads((out / f"c{k}" / "summary.json").read_text())
        assert summary["status"] == "complete" and not (out / f"c{k}" / "INCOMPLETE").exists()
    # the combined numbers are `samtrack eval` over the same sequences
    expected = evaluate_paths(clips, out).combined
    for key in ("idf1", "hota", "mota", "idsw", "fp", "fn"):
        assert report.combined[key] == pytest.approx(expected[key], abs=1e-12), key
    data = json.loads((out / "batch.json").read_text())
    assert data["totals"]["done"] == 5 and data["totals"]["failed"] == 1
    assert (out / "batch.csv").read_text().count("\n") == 1 + 6 + 1  # header, clips, ALL


@pytest.mark.slow
def test_local_pool_lists_the_failure_and_combines_metrics(clips, tmp_path):
    out = tmp_path / "out"
    report = run_batch(_inputs(clips), config=None, out=str(out), workers=2,
                       gt_root=str(clips), progress=False)
    _check_report(report, clips, out)


@pytest.mark.slow
def test_resume_redoes_only_unfinished_clips(clips, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["batch", *_inputs(clips), "--out", str(out), "--gt-root", str(clips), "--quiet"]
    assert main(args) == 4  # one clip failed
    (out / "c1" / "INCOMPLETE").write_text("")  # as a killed worker leaves it
    shutil.rmtree(out / "c3")  # a clip a lost node never wrote
    before = (out / "c0" / "summary.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 4
    table = capsys.readouterr().out
    data = json.loads((out / "batch.json").read_text())
    status = {c["name"]: c["status"] for c in data["clips"]}
    assert status == {"c0": "skipped", "c1": "done", "c2": "skipped", "c3": "done",
                      "c4": "skipped", "broken": "failed"}
    assert (out / "c0" / "summary.json").stat().st_mtime_ns == before
    assert "2 done, 3 skipped (complete), 1 failed" in table
    assert data["combined_metrics"]["idf1"] == pytest.approx(
        evaluate_paths(clips, out).combined["idf1"])


@pytest.mark.slow
def test_manifest_with_per_clip_overrides(clips, tmp_path):
    manifest = tmp_path / "clips.csv"
    manifest.write_text("path,name,num_identities,max_frames,identities\n"
                        f"{clips / 'c0'},first,2,5,offline\n"
                        f"{clips / 'c1'},second,,8,\n")
    out = tmp_path / "out"
    report = run_batch([str(manifest)], config=None, out=str(out), progress=False)
    assert [(c.name, c.status, c.frames) for c in report.clips] == [("first", "done", 5),
                                                                     ("second", "done", 8)]
    first = yaml.safe_load((out / "first" / "config.yaml").read_text())
    second = yaml.safe_load((out / "second" / "config.yaml").read_text())
    assert (first["tracker"]["num_identities"], first["tracker"]["identities"]) == (2, "offline")
    assert (second["tracker"]["num_identities"], second["tracker"]["identities"]) == \
        (None, "gallery")


def test_bad_manifest_and_inputs_are_one_line(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,colour\nx,red\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samtrack: error: ") and "m.csv:2" in err
    assert main(["batch", str(tmp_path / "nothing*.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "matches nothing" in capsys.readouterr().err


def test_a_worker_builds_its_sam2_model_once(monkeypatch):
    built = []
    monkeypatch.setattr(sam2_sources, "_MODELS", {})
    monkeypatch.setattr(sam2_sources, "build_model",
                        lambda *a, **k: built.append(a) or object())
    for _ in range(3):  # three clips in one worker process
        sam2_sources.shared_model("sam2.1_hiera_t", "x.pt", "cpu", video=True)
    assert len(built) == 1


@pytest.mark.slow
def test_ray_local_cluster(clips, tmp_path):
    ray = pytest.importorskip("ray", reason="the samtrack[ray] extra is not installed")
    out = tmp_path / "out"
    try:
        report = run_batch(_inputs(clips), config=None, out=str(out), engine="ray", workers=2,
                           gt_root=str(clips), progress=False)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    _check_report(report, clips, out)


@pytest.mark.parametrize("name", ["../x", "/tmp/elsewhere", ".", "..", ".hidden", "a/b"])
def test_a_manifest_name_cannot_leave_the_output_folder(tmp_path, capsys, name):
    frames = tmp_path / "clip"
    frames.mkdir()
    cv2.imwrite(str(frames / "000000.png"), np.zeros((8, 8, 3), np.uint8))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,name\n{frames},{name}\n")
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samtrack: error:") and "m.csv:2: name" in err
    assert len(err.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "x").exists()


def _frames(folder):
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.png"), np.zeros((8, 8, 3), np.uint8))
    return folder


@pytest.mark.parametrize(("content", "needle"), [
    (b"\xff\xfe\x00bad\n", "not a UTF-8 text manifest"),
    (b"path,name\n{clip},a,extra\n", "m.csv:2: more cells than the header has columns"),
    (b"path,num_identities\n{clip},[unclosed\n", "m.csv:2: tracker.num_identities"),
    (b'path,source.motion.history\n{clip},"&a [1,1,1,1,1,1,1,1,1]"\n',
     "m.csv:2: source.motion.history"),
])
def test_bad_manifests_are_one_line_before_anything_runs(tmp_path, capsys, content, needle):
    clip = _frames(tmp_path / "clip")
    suffix = ".txt" if content.startswith(b"\xff") else ".csv"
    manifest = tmp_path / f"m{suffix}"
    manifest.write_bytes(content.replace(b"{clip}", str(clip).encode()))
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_a_spreadsheet_csv_with_a_byte_order_mark_is_read(tmp_path):
    from samtrack.pipeline.batch import discover_clips

    clip = _frames(tmp_path / "clip")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"\xef\xbb\xbfpath,name\n" + str(clip).encode() + b",first\n")
    assert [c.name for c in discover_clips([str(manifest)])] == ["first"]


@pytest.mark.parametrize("command", ["batch", "eval"])
def test_out_cannot_be_the_root_or_an_existing_file(tmp_path, capsys, command):
    clip = _frames(tmp_path / "clip")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for out, needle in (("/", "file system root"), (str(a_file), "exists and is not a folder")):
        args = ["batch", str(clip)] if command == "batch" else \
            ["eval", "--gt", str(clip), "--pred", str(clip)]
        assert main([*args, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert a_file.read_text() == "mine"


def test_workers_are_capped_by_the_machine():
    from samtrack.pipeline.batch import capped_workers

    assert capped_workers(1) == 1
    assert 1 <= capped_workers(1000) <= (os.cpu_count() or 1)


@pytest.mark.slow
def test_a_failing_combined_evaluation_still_writes_every_clips_report(small_scene, tmp_path,
                                                                       capsys):
    short_gt = tmp_path / "short_gt"
    short_gt.mkdir()
    for png in sorted((small_scene / "gt" / "masks").glob("*.png"))[:10]:
        shutil.copy(png, short_gt / png.name)  # ground truth shorter than its clip
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,masks,gt,name\n"
                        f"{small_scene / 'img1'},{small_scene / 'gt' / 'masks'},{short_gt},a\n")
    out = tmp_path / "out"
    assert main(["batch", str(manifest), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("samtrack: error: combined evaluation:")
    data = json.loads((out / "batch.json").read_text())
    assert [c["status"] for c in data["clips"]] == ["done"]
    assert "has no ground-truth map" in data["combined_error"]
    assert (out / "batch.csv").is_file()


@pytest.mark.slow
def test_resume_redoes_a_clip_whose_manifest_entry_changed(small_scene, tmp_path):
    manifest = tmp_path / "m.csv"
    masks = small_scene / "gt" / "masks"
    manifest.write_text(f"path,masks,name,max_frames\n{small_scene / 'img1'},{masks},a,5\n")
    out = tmp_path / "out"
    first = run_batch([str(manifest)], config=None, out=str(out), progress=False)
    assert [c.status for c in first.clips] == ["done"]
    again = run_batch([str(manifest)], config=None, out=str(out), progress=False)
    assert [c.status for c in again.clips] == ["skipped"]
    manifest.write_text(f"path,masks,name,max_frames\n{small_scene / 'img1'},{masks},a,8\n")
    changed = run_batch([str(manifest)], config=None, out=str(out), progress=False)
    assert [(c.status, c.frames) for c in changed.clips] == [("done", 8)]


@pytest.mark.slow
def test_a_worker_dies_with_its_killed_batch(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", f"""
import subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", '''
import os, time
from samtrack.pipeline.batch import _init_worker
_init_worker(1)
open({str(pid_file)!r}, "w").write(str(os.getpid()))
time.sleep(120)
'''])
worker.wait()
"""])
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)  # the batch is killed outright
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the worker outlived its batch by 10 s")


@pytest.mark.slow
@pytest.mark.parametrize("address", ["auto", "ray://127.0.0.1:9"])
def test_a_ray_cluster_that_cannot_be_joined_is_one_line(tmp_path, capsys, address):
    clip = _frames(tmp_path / "clip")
    code = main(["batch", str(clip), "--out", str(tmp_path / "out"), "--engine", "ray",
                 "--address", address, "--quiet"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"samtrack: error: --address {address}: cannot join")


def _frames_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    cv2.imwrite(str(path / "000000.jpg"), np.zeros((8, 8, 3), np.uint8))
    return path


def test_clips_sharing_a_folder_name_are_named_by_the_shortest_unique_path(tmp_path):
    from samtrack.pipeline.batch import discover_clips

    for clip in ("c1", "c2"):
        _frames_folder(tmp_path / "clips" / clip / "frames")
    names = [c.name for c in discover_clips([str(tmp_path / "clips" / "c1" / "frames"),
                                             str(tmp_path / "clips" / "c2" / "frames")])]
    assert names == ["c1", "c2"]
    for where in ("a/c1", "b/c1", "b/c2"):
        _frames_folder(tmp_path / where / "frames")
    names = [c.name for c in discover_clips([str(tmp_path / w / "frames")
                                             for w in ("a/c1", "b/c1", "b/c2")])]
    assert names == ["a_c1", "b_c1", "b_c2"]
    videos = tmp_path / "v"
    for day in ("day1", "day2"):
        (videos / day).mkdir(parents=True)
        (videos / day / "video.mp4").write_bytes(b"")
    assert [c.name for c in discover_clips([str(videos / "day1" / "video.mp4"),
                                            str(videos / "day2" / "video.mp4")])] == \
        ["day1", "day2"]


def test_names_given_in_a_csv_are_kept_and_may_not_collide(tmp_path):
    from samtrack.pipeline.batch import discover_clips
    from samtrack.pipeline.core.errors import InputError

    for clip in ("c1", "c2"):
        _frames_folder(tmp_path / clip / "frames")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,name\nc1/frames,alpha\nc2/frames,\n")
    assert [c.name for c in discover_clips([str(manifest)])] == ["alpha", "frames"]
    manifest.write_text("path,name\nc1/frames,same\nc2/frames,same\n")
    with pytest.raises(InputError, match="share the run folder 'same'"):
        discover_clips([str(manifest)])

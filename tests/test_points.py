"""Point ground truth (SLEAP .slp, CSV, idtracker.ai .npy, frame,id,x,y txt) scores masks
as the equivalent mask ground truth does."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from samtrack.eval.data import load_tracks
from samtrack.eval.points import point_similarity
from samtrack.eval.report import evaluate_paths
from samtrack.pipeline.core.formats import FormatError

SIZE = (60, 100)
CENTRES = {1: lambda t: (20 + t, 20), 2: lambda t: (70 - t, 40)}
FRAMES = 12


def _id_maps(folder, swap_from: int | None = None):
    folder.mkdir(parents=True)
    for t in range(FRAMES):
        m = np.zeros(SIZE, np.uint8)
        for k, centre in CENTRES.items():
            value = (3 - k) if swap_from is not None and t >= swap_from else k
            cv2.circle(m, centre(t), 6, value, -1)
        cv2.imwrite(str(folder / f"{t:06d}.png"), m)
    return folder


def _csv(path):
    rows = ["frame,track_id,track_name,node,x,y,visible"]
    for t in range(FRAMES):
        for k, centre in CENTRES.items():
            x, y = centre(t)
            # two keypoints either side of the centre: their mean is the centre
            rows += [f"{t},{k},a{k},head,{x + 2},{y},1", f"{t},{k},a{k},tail,{x - 2},{y},1",
                     f"{t},{k},a{k},wing,900,900,0"]  # not visible: left out
    path.write_text("\n".join(rows) + "\n")
    return path


def _slp(path):
    sio = pytest.importorskip("sleap_io")
    skeleton = sio.Skeleton(["head", "tail"])
    tracks = {k: sio.Track(name=f"animal{k}") for k in CENTRES}
    video = sio.Video(filename="clip.mp4")
    frames = []
    for t in range(FRAMES):
        instances = []
        for k, centre in CENTRES.items():
            x, y = centre(t)
            instances.append(sio.Instance.from_numpy(
                np.array([[x + 2, y], [x - 2, y]], float), skeleton=skeleton, track=tracks[k]))
        frames.append(sio.LabeledFrame(video=video, frame_idx=t, instances=instances))
    sio.save_slp(sio.Labels(frames, videos=[video], skeletons=[skeleton],
                            tracks=list(tracks.values())), str(path))
    return path


def test_point_files_score_as_the_equivalent_masks(tmp_path):
    truth = _id_maps(tmp_path / "gt")
    pred = _id_maps(tmp_path / "pred", swap_from=6)  # one identity swap halfway
    by_masks = evaluate_paths(truth, pred).combined
    assert by_masks["idsw"] == 2 and by_masks["idf1"] < 0.6
    for points in (_csv(tmp_path / "gt.csv"), _slp(tmp_path / "gt.slp")):
        by_points = evaluate_paths(points, pred).combined
        for key in ("idf1", "idsw", "mota", "fp", "fn"):
            assert by_points[key] == pytest.approx(by_masks[key]), (points.suffix, key)


def test_idtracker_and_txt_centroids_read_with_their_frame_bases(tmp_path):
    trajectories = np.full((FRAMES, 2, 2), np.nan)
    for t in range(FRAMES):
        for k, centre in CENTRES.items():
            trajectories[t, k - 1] = centre(t)
    np.save(tmp_path / "trajectories.npy", {"trajectories": trajectories}, allow_pickle=True)
    npy = load_tracks(tmp_path / "trajectories.npy")
    lines = ["# frame,id,x,y"] + [f"{t + 1},{k},{c(t)[0]},{c(t)[1]}" for t in range(FRAMES)
                                  for k, c in CENTRES.items()]
    (tmp_path / "centroids.txt").write_text("\n".join(lines) + "\n")
    txt = load_tracks(tmp_path / "centroids.txt")
    assert npy.has_points and txt.has_points
    for frame in (1, FRAMES):
        np.testing.assert_allclose(npy.get(frame).points, txt.get(frame).points)
        np.testing.assert_allclose(npy.get(frame).points[0], CENTRES[1](frame - 1))


def test_a_point_near_a_mask_matches_within_the_radius():
    mask = np.zeros(SIZE, np.uint8)
    mask[10:20, 10:20] = 1
    from pycocotools import mask as coco_mask
    rle = coco_mask.encode(np.asfortranarray(mask[:, :, None]))
    points = np.array([[15, 15], [25, 15], [40, 15]], float)  # inside, 6 px out, 21 px out
    sim = point_similarity(points, rle, SIZE, radius=10)[:, 0]
    assert sim[0] == 1.0 and 0.5 < sim[1] < 1.0 and sim[2] == 0.0


def test_a_point_csv_without_its_columns_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,name,u,v\n0,a,1,2\n")
    with pytest.raises(FormatError, match=r"bad\.csv: a point CSV needs columns"):
        load_tracks(bad)

"""`samtrack export`: every format read back by its own library and compared with the run's
ID maps (the masks with their final identities)."""

import json
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.pipeline.cli import main
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.formats import read_id_map
from samtrack.pipeline.exports import ExportError, export
from samtrack.pipeline.runner import run

SPEC = SceneSpec(num_animals=3, num_frames=40, width=240, height=160, body_length=30, seed=3,
                 exit_every=1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    scene = Scene(SPEC).write(root / "scene")
    out = run(load_config(None, {"video.path": str(scene / "img1"), "source.name": "masks",
                                 "source.masks.path": str(scene / "gt" / "masks"),
                                 "output.dir": str(root / "run"), "quiet": True}))
    maps = [read_id_map(p) for p in sorted((out.out_dir / "masks").glob("*.png"))]
    return out.out_dir, maps


def _truth(maps):
    """{(frame, id): (cx, cy, area)} straight from the ID maps."""
    truth = {}
    for t, id_map in enumerate(maps):
        for tid in np.unique(id_map)[1:]:
            ys, xs = np.nonzero(id_map == tid)
            truth[t, int(tid)] = (xs.mean(), ys.mean(), len(xs))
    return truth


def test_the_clip_has_identities_leaving_view(finished):
    _, maps = finished
    truth = _truth(maps)
    ids = {tid for _, tid in truth}
    assert any((t, tid) not in truth for t in range(len(maps)) for tid in ids)


def test_csv_reads_in_pandas_with_every_frame_and_identity(finished, tmp_path):
    import pandas as pd

    folder, maps = finished
    truth = _truth(maps)
    table = pd.read_csv(export(folder, "csv", tmp_path / "t.csv", progress=False))
    ids = sorted({tid for _, tid in truth})
    assert len(table) == len(maps) * len(ids)
    for row in table.itertuples():
        key = (row.frame, row.id)
        assert row.visible == (key in truth)
        if key in truth:
            cx, cy, area = truth[key]
            assert (row.x, row.y, row.area) == pytest.approx((cx, cy, area), abs=1e-3)
            ys, xs = np.nonzero(maps[row.frame] == row.id)
            assert (row.x1, row.y1, row.x2, row.y2) == (xs.min(), ys.min(), xs.max() + 1,
                                                        ys.max() + 1)
        else:
            assert np.isnan(row.x)


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_npz_and_hdf5_hold_idtracker_style_trajectories(finished, tmp_path, fmt):
    import h5py

    folder, maps = finished
    truth = _truth(maps)
    path = export(folder, fmt, tmp_path / f"t.{fmt}", progress=False)
    if fmt == "npz":
        data = dict(np.load(path))
    else:
        with h5py.File(path) as h5:
            data = {key: h5[key][()] for key in h5}
    trajectories, ids = data["trajectories"], data["ids"].tolist()
    assert trajectories.shape == (len(maps), len(ids), 2)
    assert float(data["frames_per_second"]) == 25.0
    for t in range(len(maps)):
        for k, tid in enumerate(ids):
            if (t, tid) in truth:
                assert trajectories[t, k] == pytest.approx(truth[t, tid][:2], abs=1e-3)
                assert data["visible"][t, k]
            else:
                assert np.isnan(trajectories[t, k]).all() and not data["visible"][t, k]


def test_slp_loads_in_sleap_io_with_a_track_per_identity(finished, tmp_path):
    import sleap_io as sio

    folder, maps = finished
    truth = _truth(maps)
    labels = sio.load_slp(str(export(folder, "slp", tmp_path / "t.slp", progress=False)))
    assert sorted(t.name for t in labels.tracks) == [f"id_{i}" for i in
                                                      sorted({tid for _, tid in truth})]
    seen = {}
    for frame in labels.labeled_frames:
        for instance in frame.instances:
            seen[frame.frame_idx, int(instance.track.name[3:])] = instance.numpy()[0]
    assert seen.keys() == truth.keys()
    for key, point in seen.items():
        assert point == pytest.approx(truth[key][:2], abs=1e-3)


def test_coco_masks_decode_in_pycocotools_to_the_id_maps(finished, tmp_path):
    from pycocotools.coco import COCO

    folder, maps = finished
    coco = COCO(str(export(folder, "coco", tmp_path / "c.json", progress=False)))
    assert len(coco.getImgIds()) == len(maps)
    count = 0
    for image in coco.loadImgs(coco.getImgIds()):
        id_map = maps[image["frame_id"]]
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            assert np.array_equal(coco.annToMask(ann).astype(bool), id_map == ann["track_id"])
            assert ann["area"] == int((id_map == ann["track_id"]).sum())
            count += 1
    assert count == sum(len(np.unique(m)) - 1 for m in maps)


def test_cvat_tracks_outline_the_masks_and_mark_leaving_view(finished, tmp_path):
    folder, maps = finished
    truth = _truth(maps)
    root = ET.parse(export(folder, "cvat", tmp_path / "c.xml", progress=False)).getroot()
    assert root.findtext("version") == "1.1"
    assert root.findtext("meta/task/size") == str(len(maps))
    tracks = root.findall("track")
    assert len(tracks) == len({tid for _, tid in truth})
    for track in tracks:
        tid = int(track.findtext("attribute[@name='samtrack_id']"))
        for polygon in track.findall("polygon"):
            frame = int(polygon.get("frame"))
            if polygon.get("outside") == "1":
                assert (frame, tid) not in truth
                continue
            points = np.array([[float(v) for v in p.split(",")]
                               for p in polygon.get("points").split(";")])
            drawn = np.zeros(maps[frame].shape, np.uint8)
            cv2.fillPoly(drawn, [np.round(points).astype(np.int32)], 1)
            mask = maps[frame] == tid
            iou = (drawn.astype(bool) & mask).sum() / (drawn.astype(bool) | mask).sum()
            # a few-pixel sliver at the border is outlined by its box
            assert iou > 0.85 if mask.sum() >= 50 else (drawn.astype(bool) & mask).any()
        frames_in = {int(p.get("frame")) for p in track.findall("polygon")
                     if p.get("outside") == "0"}
        assert frames_in == {t for t, i in truth if i == tid}
        assert any(p.get("outside") == "1" for p in track.findall("polygon"))


def test_cli_exports_several_formats_and_keeps_existing_files(finished, tmp_path, capsys):
    folder, _ = finished
    assert main(["export", str(folder), "-f", "csv", "-f", "coco", "--out", str(tmp_path),
                 "--quiet"]) == 0
    assert (tmp_path / "trajectories.csv").is_file() and (tmp_path / "coco.json").is_file()
    before = (tmp_path / "coco.json").read_bytes()
    assert main(["export", str(folder), "-f", "coco", "--out", str(tmp_path), "--quiet"]) == 2
    assert "exists (pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "coco.json").read_bytes() == before
    assert main(["export", str(tmp_path), "-f", "csv"]) == 2
    assert "not a samtrack run folder" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*partial*"))


def test_a_failed_export_leaves_no_file(finished, tmp_path, monkeypatch):
    from samtrack.pipeline import exports

    folder, _ = finished

    def broken(run, path):
        path.write_text("half")
        raise OSError(28, "No space left on device")

    spec = exports.EXPORTERS.get("csv")
    monkeypatch.setitem(exports.EXPORTERS._entries, "csv",
                        exports.ExporterSpec(broken, spec.filename, spec.description))
    with pytest.raises(ExportError, match="No space left"):
        export(folder, "csv", tmp_path / "t.csv", progress=False)
    assert list(tmp_path.iterdir()) == []
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "complete"

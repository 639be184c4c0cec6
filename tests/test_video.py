import cv2
import numpy as np
import pytest

from samtrack.pipeline.core.video import VideoError, VideoReader


def _frames(folder, names, size=(24, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        img = np.full((*size, 3), 10 * i, np.uint8)
        cv2.imwrite(str(folder / name), img)


def test_folder_sorted_naturally(tmp_path):
    _frames(tmp_path / "f", ["frame10.png", "frame2.png", "frame1.png"])
    names = [f.name for f in VideoReader(tmp_path / "f")]
    assert names == ["frame1", "frame2", "frame10"]


def test_video_file_frames_named_by_index(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (32, 24))
    for i in range(5):
        writer.write(np.full((24, 32, 3), 40 * i, np.uint8))
    writer.release()
    reader = VideoReader(path)
    frames = list(reader)
    assert [f.name for f in frames] == ["000000", "000001", "000002", "000003", "000004"]
    assert reader.fps == pytest.approx(12.0)
    assert frames[0].image.shape == (24, 32, 3)
    assert len(list(reader.sample(2))) == 2
    assert len(list(VideoReader(path, max_frames=3))) == 3


def test_bad_frame_skip_or_stop(tmp_path):
    _frames(tmp_path / "f", ["000000.png", "000002.png"])
    (tmp_path / "f" / "000001.png").write_bytes(b"not an image")
    reader = VideoReader(tmp_path / "f")
    assert [f.name for f in reader] == ["000000", "000002"]
    assert reader.skipped == [str(tmp_path / "f" / "000001.png")]
    with pytest.raises(VideoError, match=r"000001.png: cannot decode image"):
        list(VideoReader(tmp_path / "f", on_bad_frame="stop"))


def test_missing_empty_and_unreadable_inputs(tmp_path):
    with pytest.raises(VideoError, match=r"nope.mp4: no such file"):
        VideoReader(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match=r"empty: folder holds no jpg/png frames"):
        VideoReader(tmp_path / "empty")
    (tmp_path / "junk.mp4").write_bytes(b"garbage")
    with pytest.raises(VideoError, match=r"junk.mp4: cannot open as a video"):
        VideoReader(tmp_path / "junk.mp4")

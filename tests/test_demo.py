import pytest

from samtrack.pipeline.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "raw source ids" in out and "samtrack ids" in out and "overlay video" in out
    motion = tmp_path / "run_motion"
    for name in ("overlay.mp4", "binary.mp4", "tracks.txt", "summary.json"):
        assert (motion / name).stat().st_size > 0
    assert len(list((motion / "masks").glob("*.png"))) == 200
    sam2 = tmp_path / "run_sam2_like"
    for name in ("trails.mp4", "trails.png", "timeline.png", "gallery.png"):
        assert (sam2 / "viz" / name).stat().st_size > 0
    assert (sam2 / "source_mots.txt").stat().st_size > 0

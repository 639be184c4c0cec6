import pytest

from pipeline.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "IDF1" in out and "overlay video" in out
    run = tmp_path / "run"
    for name in ("overlay.mp4", "binary.mp4", "tracks.txt", "summary.json"):
        assert (run / name).stat().st_size > 0
    assert len(list((run / "masks").glob("*.png"))) == 200

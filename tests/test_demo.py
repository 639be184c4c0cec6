import re

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
    # the demo's headline (README): the two sheep's identities repaired, nearly to the masks'
    # limit; a change that drops a real sheep's frames shows here (0.884 once, FN 49)
    raw = float(re.search(r"raw source ids\s*: IDF1 ([0-9.]+)", out).group(1))
    ours = [float(v) for v in re.findall(r"samtrack ids\s*: IDF1 ([0-9.]+)", out)]
    assert raw < 0.6 and ours[0] >= 0.97 and ours[-1] == ours[0]  # CLI run = library loop

import json

import numpy as np
import pytest
from conftest import SMALL_SPEC

from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.formats import read_id_map, read_mot_txt, read_mots_txt
from samtrack.pipeline.outputs import INCOMPLETE_MARKER, OutputExistsError
from samtrack.pipeline.runner import run
from samtrack.pipeline.writers import default_writers


def _config(scene, out, **extra):
    overrides = {"video.path": str(scene / "img1"),
                 "source.name": "masks", "source.masks.path": str(scene / "gt" / "masks"),
                 "output.dir": str(out), "quiet": True}
    overrides.update(extra)
    return load_config(None, overrides)


def test_run_folder_contents(small_scene, tmp_path):
    out = tmp_path / "run"
    result = run(_config(small_scene, out, **{"output.writers": [*default_writers(), "binary"],
                                              "eval.gt": str(small_scene / "gt" / "masks")}))
    names = {p.name for p in out.iterdir()}
    assert {"masks", "tracks.txt", "tracks_mots.txt", "config.yaml", "summary.json",
            "overlay.mp4", "binary.mp4"} <= names
    assert INCOMPLETE_MARKER not in names
    assert not [n for n in names if n.startswith(".")], "temp files left behind"
    pngs = sorted((out / "masks").glob("*.png"))
    assert [p.stem for p in pngs] == [f"{i:06d}" for i in range(SMALL_SPEC.num_frames)]
    assert read_id_map(pngs[0]).dtype == np.uint16
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["frames"] == SMALL_SPEC.num_frames
    assert set(summary["timing_s"]) >= {"decode", "source", "track", "write", "total"}
    rows = read_mot_txt(out / "tracks.txt")
    assert rows.frame.min() == 1 and rows.frame.max() == SMALL_SPEC.num_frames
    assert len(read_mots_txt(out / "tracks_mots.txt")) == len(rows)
    # fed perfect masks, the tracker keeps every identity: ground truth scores perfectly
    assert result.metrics["idf1"] == pytest.approx(1.0)
    assert result.metrics["idsw"] == 0


def test_existing_run_is_not_overwritten(small_scene, tmp_path):
    out = tmp_path / "run"
    run(_config(small_scene, out, **{"video.max_frames": 3}))

    with pytest.raises(OutputExistsError, match=r"run folder exists"):
        run(_config(small_scene, out, **{"video.max_frames": 3}))
    run(_config(small_scene, out, **{"video.max_frames": 5, "output.overwrite": True}))
    assert len(list((out / "masks").glob("*.png"))) == 5


def test_failed_overwrite_keeps_previous_run(small_scene, tmp_path):
    out = tmp_path / "run"
    run(_config(small_scene, out, **{"video.max_frames": 4}))
    bad_masks = tmp_path / "bad"
    bad_masks.mkdir()
    import shutil

    for p in sorted((small_scene / "gt" / "masks").glob("*.png"))[:2]:
        shutil.copy(p, bad_masks / p.name)  # frame 000002 has no mask file -> fails there
    with pytest.raises(Exception, match=r"000002.png: no mask file"):
        run(_config(small_scene, out, **{"source.masks.path": str(bad_masks),
                                          "output.overwrite": True}))
    assert len(list((out / "masks").glob("*.png"))) == 4
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"
    partial = tmp_path / ".run.partial"
    assert (partial / INCOMPLETE_MARKER).exists()
    assert json.loads((partial / "summary.json").read_text())["status"] == "failed"


def test_failed_run_is_marked_incomplete(small_scene, tmp_path):
    out = tmp_path / "run"
    bad_masks = tmp_path / "bad"
    bad_masks.mkdir()
    with pytest.raises(Exception, match=r"folder holds no PNG"):
        run(_config(small_scene, out, **{"source.masks.path": str(bad_masks)}))
    (bad_masks / "000000.png").write_bytes(b"junk")
    with pytest.raises(Exception, match=r"000000.png: cannot read"):
        run(_config(small_scene, out, **{"source.masks.path": str(bad_masks)}))
    assert (out / INCOMPLETE_MARKER).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "000000.png" in summary["error"]
    assert not (out / "tracks.txt").exists()


def test_motion_source_run_end_to_end(small_scene, tmp_path):
    config = load_config(None, {"video.path": str(small_scene / "img1"), "quiet": True,
                                "output.dir": str(tmp_path / "m"),
                                "eval.gt": str(small_scene / "gt" / "masks")})
    result = run(config)
    assert result.frames == SMALL_SPEC.num_frames
    assert result.metrics["mota"] > 0.5


def test_online_identity_model_reports_itself_in_the_summary(small_scene, tmp_path):
    out = tmp_path / "run"
    run(_config(small_scene, out, **{"tracker.identities": "model"}))
    identities = json.loads((out / "summary.json").read_text())["identities"]
    assert set(identities) == {"engine", "online_identity_model", "num_identities",
                               "num_identities_estimated", "guess_wait_frames",
                               "reentries_measured", "took_over_frame"}
    assert identities["engine"] == "model" and identities["took_over_frame"] < 10
    assert identities["num_identities_estimated"] is True
    # three animals apart from the start: the model takes over and knows all three; no
    # re-entry was measured, so the guess wait is still the default (min_views)
    assert identities["online_identity_model"] is True
    assert identities["num_identities"] == SMALL_SPEC.num_animals
    assert identities["guess_wait_frames"] == 5 and identities["reentries_measured"] == 0


@pytest.mark.parametrize("mimic", ["summary", "marker"])
def test_overwrite_never_replaces_a_folder_that_only_looks_like_a_run(small_scene, tmp_path,
                                                                     mimic):
    """A user's folder with a summary.json that has a status, or a file named INCOMPLETE, is
    not a samtrack run: --overwrite refuses it and every file stays."""
    mine = tmp_path / "thesis"
    (mine / "photos").mkdir(parents=True)
    (mine / "thesis.txt").write_text("four years")
    if mimic == "summary":
        (mine / "summary.json").write_text('{"status": "complete"}')
    else:
        (mine / "INCOMPLETE").write_text("todo: chapter 3\n")
    before = sorted(p.relative_to(mine) for p in mine.rglob("*"))
    with pytest.raises(OutputExistsError, match="is not a samtrack run folder"):
        run(_config(small_scene, mine, **{"output.overwrite": True}))
    assert sorted(p.relative_to(mine) for p in mine.rglob("*")) == before
    assert (mine / "thesis.txt").read_text() == "four years"


def test_a_previous_run_is_still_replaced_with_overwrite(small_scene, tmp_path):
    out = tmp_path / "run"
    run(_config(small_scene, out))
    assert json.loads((out / "summary.json").read_text())["format"] == "samtrack-run"
    run(_config(small_scene, out, **{"output.overwrite": True}))
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"


def test_the_next_run_removes_what_a_killed_replacement_left_beside_it(small_scene, tmp_path):
    out = tmp_path / "run"
    run(_config(small_scene, out))
    old = tmp_path / ".run.old-1733390000"  # a kill between the two renames of a replacement
    (old / "masks").mkdir(parents=True)
    partial = tmp_path / ".run.partial"
    partial.mkdir()
    mine = tmp_path / ".run.old-notes"  # not a name samtrack makes: left alone
    mine.mkdir()
    run(_config(small_scene, out, **{"output.overwrite": True}))
    assert not old.exists() and not partial.exists() and mine.is_dir()


def test_sigterm_during_the_closing_evaluation_still_completes_the_folder(small_scene, tmp_path,
                                                                         monkeypatch):
    import samtrack.pipeline.runner as runner
    from samtrack.pipeline.outputs import RunInterrupted

    def interrupted(*args, **kwargs):
        raise RunInterrupted("signal 15")

    monkeypatch.setattr(runner, "evaluate_pairs", interrupted)
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        run(_config(small_scene, out, **{"eval.gt": str(small_scene / "gt" / "masks")}))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and "interrupted" in summary["metrics_error"]
    assert not (out / INCOMPLETE_MARKER).exists()

import pytest
from shared_data import MOT15, needs_mot15

from samtrack.eval.bench import mot15_loo
from samtrack.eval.bench.ablate import main as ablate_main
from samtrack.eval.bench.harness import COLUMNS, main


@pytest.mark.slow
def test_harness_on_two_small_scenes_produces_every_column(tmp_path, capsys):
    code = main(["--sets", "lookalike", "--scenes", "2", "--frames", "30", "--embedder",
                 "histogram", "--methods", "raw,ceiling,samtrack-online,samtrack-offline,"
                 "bytetrack,sam2mot", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    csv_text = (tmp_path / "bench.csv").read_text().splitlines()
    assert csv_text[0].split(",") == COLUMNS
    rows = [line.split(",") for line in csv_text[1:]]
    methods = {(r[0], r[1]) for r in rows}
    for m in ("raw", "samtrack-online", "samtrack-offline", "bytetrack"):
        assert ("lookalike", m) in methods and ("overall", m) in methods
    for r in rows:
        assert all(cell != "" for cell in r[:9])
    share = {(r[0], r[1]): float(r[COLUMNS.index("idf1_vs_ceiling")]) for r in rows}
    assert share[("lookalike", "ceiling")] == 1.0
    # the oracle labelling of the same masks bounds every method's IDF1
    assert all(v <= 1.0 + 1e-9 for v in share.values())
    md = (tmp_path / "bench.md").read_text()
    assert "sam2mot" in md and "model hub" in md


@pytest.mark.parametrize("override, message", [
    ("nokey=1", "tracker.nokey: unknown key"),
    ("reentry.hold_contested=maybe", "tracker.reentry.hold_contested: expected one of"),
    ("reentry.contrast", "expected KEY=VALUE"),
    ("hold_contested=off", "tracker.hold_contested: replaced by tracker.reentry.hold_contested"),
])
def test_ablation_refuses_a_bad_override_at_once(override, message, capsys):
    with pytest.raises(SystemExit) as stop:
        ablate_main([override])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_ablation_on_the_arena_family_groups_the_arena_sets(monkeypatch):
    from samtrack.eval.bench import ablate

    monkeypatch.setattr(ablate, "synthetic_clip", lambda bench: bench.name)
    groups = ablate._groups("report", None, 2, "arena")
    assert list(groups) == ["arena", "arena-exits", "arena-crowded", "arena-long"]
    assert groups["arena-long"] == ["arena-long-report-0", "arena-long-report-1"]
    assert groups["arena"] == ["arena-report-0", "arena-report-1", "arena-report-2"]
    meadow = ablate._groups("tune", None, 1)
    assert list(meadow) == ["lookalike", "crowded", "long"]


def test_ablation_refuses_an_unknown_scene_family(capsys):
    with pytest.raises(SystemExit) as stop:
        ablate_main(["--family", "savanna"])
    assert stop.value.code == 2
    assert "--family" in capsys.readouterr().err


@pytest.mark.slow
@needs_mot15
def test_leave_one_out_tunes_on_the_others_and_leaves_a_peer_without_images_out(
        tmp_path, monkeypatch):
    # two grid points keep it quick (one motion point, both ways of taking the detections);
    # the choice is still made on the other sequence
    monkeypatch.setattr(mot15_loo, "GRID", {"reentry.enabled": (False,)})
    assert mot15_loo.main(["--mot15", str(MOT15), "--seqs", "TUD-Campus,KITTI-17",
                           "--peers", "bytetrack,deepsort", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "mot15_loo.md").read_text().splitlines()
    cells = [[c.strip(" *") for c in line.strip("|").split("|")] for line in table
             if line.startswith("| ") and "IDF1" not in line]
    rows = {c[0]: c[1:] for c in cells}  # input, settings, samtrack, bytetrack, deepsort
    assert set(rows) == {"TUD-Campus", "KITTI-17", "all, combined"}
    assert rows["TUD-Campus"][0] == "images" and rows["KITTI-17"][0] == "boxes only"
    points = ("reentry.enabled False", "reentry.enabled False, duplicates.iou 0.3, "
              "association.high_score 0.0, association.low_score 0.0")
    assert all(rows[name][1] in points for name in ("TUD-Campus", "KITTI-17"))
    # DeepSORT needs images: a cell for TUD-Campus, none for KITTI-17, so no total
    assert rows["TUD-Campus"][4] != "-" and rows["KITTI-17"][4] == "-"
    assert rows["all, combined"][4] == "-"
    assert 0 < float(rows["all, combined"][2].split()[0]) <= 1  # samtrack's total
    assert 0 < float(rows["all, combined"][3].split()[0]) <= 1  # ByteTrack's


@pytest.mark.slow
@needs_mot15
def test_leave_one_out_in_parallel_gives_the_same_table(tmp_path, monkeypatch):
    """Grid points run in worker processes (--jobs 2) give the table one process gives."""
    monkeypatch.setattr(mot15_loo, "GRID", {"reentry.enabled": (True, False)})
    monkeypatch.setattr(mot15_loo, "DETECTIONS", ({},))
    tables = []
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        assert mot15_loo.main(["--mot15", str(MOT15), "--seqs", "KITTI-17,KITTI-13", "--peers", "",
                               "--out", str(out), "--jobs", jobs]) == 0
        tables.append((out / "mot15_loo.md").read_text().split("\n", 3)[3])  # past the command
    assert tables[0] == tables[1]


@pytest.mark.parametrize("setting, message", [
    ('{"nokey": 1}', "tracker.nokey: unknown key"),
    ('{"association.min_hits": 0}', "tracker.association.min_hits:"),
    ('{"min_hits": 0}', "tracker.min_hits: replaced by tracker.association.min_hits"),
    ("[1]", "not a JSON object"),
    ("{bad", "not JSON"),
])
def test_trying_a_bad_setting_is_refused_before_any_run(setting, message, capsys):
    with pytest.raises(SystemExit) as stop:
        mot15_loo.main(["--mot15", "/nonexistent", "--try", setting])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@needs_mot15
def test_trying_settings_prints_each_sequence_and_the_others_combined(capsys):
    """With two sequences, "the others" of one is the other one: the criterion column for
    KITTI-13 must equal KITTI-17's own IDF1, and the settings must change the numbers."""
    assert mot15_loo.main(["--mot15", str(MOT15), "--seqs", "KITTI-17,KITTI-13",
                           "--try", '{"reentry.enabled": false}',
                           "--try", '{"association.min_hits": 5}']) == 0
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| {")]
    own, others = rows[:2], rows[2:]
    assert len(own) == 2 and len(others) == 2
    for row, criterion in zip(own, others, strict=True):
        assert row[0] == criterion[0]
        assert criterion[2] == row[1].split()[0]  # without KITTI-13 = KITTI-17 alone
        assert criterion[1] == row[2].split()[0]  # without KITTI-17 = KITTI-13 alone
    assert own[0][1:] != own[1][1:]


@pytest.mark.slow
@needs_mot15
def test_trying_a_setting_on_one_sequence_has_no_others_to_combine(capsys):
    assert mot15_loo.main(["--mot15", str(MOT15), "--seqs", "KITTI-17",
                           "--try", '{"reentry.enabled": false}']) == 0
    out = capsys.readouterr().out
    assert "| {\"reentry.enabled\": false} | " in out and "without" not in out


def test_the_benchmark_refuses_an_unknown_set_before_generating_anything(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--sets", "lookalike,arena-hevy", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "unknown set 'arena-hevy'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_heavy_detector_fails_more_often_in_every_way():
    from samtrack.eval.bench.arena import DetectorFailures
    from samtrack.eval.bench.sets import scene_sets

    plain, heavy = DetectorFailures(seed=3), DetectorFailures.heavy(seed=3)
    for rate in ("miss", "miss_when_fast", "split", "reflection"):
        assert getattr(heavy, rate) == 2 * getattr(plain, rate)
    assert heavy.merge_renumber + heavy.merge_exchange > plain.merge_renumber + plain.merge_exchange
    (scene,) = scene_sets(1, 300, ("arena-heavy",), "report")
    assert scene.failures == DetectorFailures.heavy(seed=scene.scene.seed)
    assert scene.scene.num_frames == 1500 and scene.scene.view_crop == 0.25


def test_half_views_are_less_distinct_than_clean_views_under_a_colour_histogram():
    # the meadow's coloured animals: a clean view is near its own identity, a half-view less so
    from samtrack.eval.bench.half_views import half_view_ratios
    from samtrack.eval.bench.sets import scene_sets

    (scene,) = scene_sets(1, 300, ("lookalike",), "tune")
    r = half_view_ratios(scene, frames=150)
    (clean_views, clean_right, clean_ratio), (half_views, _, half_ratio) = r["clean"], r["half"]
    assert clean_views > 50 and half_views > 10
    assert clean_right > 0.9 and clean_ratio < half_ratio
    assert 0 < r["weight"] < 1

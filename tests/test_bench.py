import pytest

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
    ("hold_contested=maybe", "tracker.hold_contested: expected one of"),
    ("reentry_contrast", "expected KEY=VALUE"),
])
def test_ablation_refuses_a_bad_override_at_once(override, message, capsys):
    with pytest.raises(SystemExit) as stop:
        ablate_main([override])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err

import numpy as np
import pytest

from samtrack.pipeline.core.formats import (
    FormatError,
    MotsRow,
    format_mot_rows,
    format_mots_row,
    read_id_map,
    read_mot_txt,
    read_mots_txt,
    write_id_map,
)
from samtrack.pipeline.core.frames import decode_rle, encode_rle


def test_16bit_id_map_round_trip(tmp_path):
    m = np.zeros((9, 11), np.uint16)
    m[1:4, 2:5] = 40000
    m[5:8, 6:10] = 3
    write_id_map(tmp_path / "a.png", m)
    back = read_id_map(tmp_path / "a.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, m)
    assert not list(tmp_path.glob(".*tmp*")), "temp file left behind"


def test_colour_png_is_not_an_id_map(tmp_path):
    import cv2

    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 2] = 200
    cv2.imwrite(str(tmp_path / "c.png"), img)
    with pytest.raises(FormatError, match=r"c.png: expected a single-channel"):
        read_id_map(tmp_path / "c.png")


def test_mot_txt_round_trip(tmp_path):
    rows = [(1, 3, 10.0, 20.0, 30.0, 40.0, 0.9), (2, 4, 1.5, 2.5, 3.0, 4.0, 1.0)]
    (tmp_path / "t.txt").write_text(format_mot_rows(rows))
    back = read_mot_txt(tmp_path / "t.txt")
    assert back.frame.tolist() == [1, 2] and back.id.tolist() == [3, 4]
    np.testing.assert_allclose(back.box_xywh, [[10, 20, 30, 40], [1.5, 2.5, 3, 4]])
    np.testing.assert_allclose(back.score, [0.9, 1.0])


@pytest.mark.parametrize(("text", "message"), [
    ("1,2,3\n", "t.txt:1: expected at least 6 columns"),
    ("1,2,3,4,5,6\n0,1,1,1,1,1\n", "t.txt:2: frame must be an integer >= 1"),
    ("1,2,x,4,5,6\n", "t.txt:1: not a number"),
])
def test_mot_txt_errors_name_file_and_line(tmp_path, text, message):
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(FormatError, match=message):
        read_mot_txt(tmp_path / "t.txt")


def test_mots_round_trip_and_ignore_class(tmp_path):
    masks = np.zeros((2, 6, 8), bool)
    masks[0, 1:3, 1:4] = True
    masks[1, 3:6, 5:8] = True
    rles = encode_rle(masks)
    text = format_mots_row(MotsRow(1, 5, 1, 6, 8, rles[0])) + \
        format_mots_row(MotsRow(1, 9, 10, 6, 8, rles[1]))
    (tmp_path / "m.txt").write_text(text)
    rows = read_mots_txt(tmp_path / "m.txt")
    assert [r.id for r in rows] == [5]  # class 10 = ignore region, dropped

    np.testing.assert_array_equal(decode_rle([rows[0].rle], (6, 8))[0], masks[0])
    assert len(read_mots_txt(tmp_path / "m.txt", drop_ignore=False)) == 2


def test_mots_bad_line(tmp_path):
    (tmp_path / "m.txt").write_text("1 2 1 6 8\n")
    with pytest.raises(FormatError, match=r"m.txt:1: expected 6 fields"):
        read_mots_txt(tmp_path / "m.txt")

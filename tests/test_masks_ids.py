"""Instance masks numbered per frame (a per-frame segmenter's maps) are not identities."""

from __future__ import annotations

import json

import cv2
import numpy as np

import samtrack as st

SIZE = (160, 200)
FRAMES = 40


def _per_frame_numbered(root):
    """Three still discs in a column and a fourth walking down past them; each map numbers
    its objects 1..n from the top, as connected-component labelling does."""
    frames, masks = root / "frames", root / "masks"
    frames.mkdir(parents=True)
    masks.mkdir()
    for t in range(FRAMES):
        centres = [(60, 30), (60, 80), (60, 130), (120, 10 + 3.5 * t)]
        centres.sort(key=lambda c: c[1] - 8)  # reading order: by top row
        image = np.full((*SIZE, 3), 90, np.uint8)
        id_map = np.zeros(SIZE, np.uint8)
        for number, (x, y) in enumerate(centres, start=1):
            cv2.circle(image, (int(x), int(y)), 8, (200, 200, 200), -1)
            cv2.circle(id_map, (int(x), int(y)), 8, number, -1)
        cv2.imwrite(str(frames / f"{t:06d}.png"), image)
        cv2.imwrite(str(masks / f"{t:06d}.png"), id_map)
    return frames, masks


def _run(tmp_path, name, ids: str | None):
    frames, masks = _per_frame_numbered(tmp_path / "clip")
    overrides = {"video.path": str(frames), "source.name": "masks",
                 "source.masks.path": str(masks), "tracker.identities": "offline",
                 "tracker.num_identities": 4, "output.dir": str(tmp_path / name), "quiet": True}
    if ids:
        overrides["source.masks.ids"] = ids
    result = st.run(st.load_config(None, overrides))
    return json.loads((result.out_dir / "summary.json").read_text())


def test_per_frame_numbering_is_detected_and_never_repaired_as_a_swap(tmp_path):
    summary = _run(tmp_path, "auto", None)
    assert summary["source_details"]["ids"] == "none"
    assert not [r for r in summary["repairs"] if r["kind"] == "swap_fixed"]
    assert summary["num_tracks"] == 4


def test_taken_as_identities_the_same_numbers_look_like_swaps(tmp_path):
    summary = _run(tmp_path, "track", "track")
    assert summary["source_details"]["ids"] == "track"
    assert [r for r in summary["repairs"] if r["kind"] == "swap_fixed"]

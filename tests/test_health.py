"""The end-of-run health check: warnings for the symptoms of a run gone wrong."""

from __future__ import annotations

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.health import RunHealth

SIZE = (100, 100)


def _frame(t: int, boxes: list[tuple[int, int, int, int]]) -> FrameObjects:
    masks = np.zeros((len(boxes), *SIZE), bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[i, y1:y2, x1:x2] = True
    return FrameObjects.from_masks(masks, frame_index=t)


def _check(health: RunHealth, **kw) -> list[str]:
    return health.check(**{"tracks": 2, "individuals": 2, "source": "background",
                           "camera": "static", **kw})


def test_a_healthy_run_has_no_warning():
    health = RunHealth()
    for t in range(20):
        health.observe(_frame(t, [(10, 10, 20, 20), (50, 50, 60, 60)]))
    assert _check(health) == []


def test_objects_vanishing_in_view_are_missed_but_leaving_through_the_border_is_not():
    vanished, left = RunHealth(), RunHealth()
    for t in range(20):
        vanished.observe(_frame(t, [(40, 40, 50, 50)] if t < 10 else []))
        left.observe(_frame(t, [(0, 40, 10, 50)] if t < 10 else []))
    assert any("no mask" in w for w in _check(vanished))
    assert _check(left) == []


def test_a_huge_mask_too_many_tracks_and_a_moving_camera_are_each_warned():
    health = RunHealth()
    health.observe(_frame(0, [(0, 0, 80, 80)]))
    warnings = _check(health, tracks=9, individuals=2, camera="moving")
    assert any("64% of the frame" in w for w in warnings)
    assert any("9 tracks for 2 individuals" in w for w in warnings)
    assert any("camera moves" in w for w in warnings)

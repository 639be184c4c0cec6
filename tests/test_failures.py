"""The SAM2-failure simulator: each failure verified on a tiny scene."""

import numpy as np

from samtrack.eval.bench.failures import FailureSpec, simulate
from samtrack.pipeline.core.frames import FrameObjects


def _gt(schedule, size=(40, 80)):
    """schedule: per frame a list of (true id, x) discs of radius 5 at y=20."""
    import cv2

    frames = []
    for t, objs in enumerate(schedule):
        masks = []
        for _, x in objs:
            m = np.zeros(size, np.uint8)
            cv2.circle(m, (x, 20), 5, 1, -1)
            masks.append(m.astype(bool))
        stack = np.stack(masks) if masks else np.zeros((0, *size), bool)
        frames.append(FrameObjects.from_masks(stack, frame_index=t,
                                              source_ids=[i for i, _ in objs]))
    return frames


def _reentry_schedule():
    both = [(1, 15), (2, 60)]
    return [both] * 3 + [[(2, 60)]] * 6 + [both] * 3  # object 1 leaves and comes back


def _ids(sim):
    return [sorted(f.source_ids.tolist()) for f in sim.frames]


def test_no_failures_reproduces_ground_truth_ids():
    sim = simulate(_gt(_reentry_schedule()), FailureSpec.none())
    assert _ids(sim) == [[1, 2]] * 3 + [[2]] * 6 + [[1, 2]] * 3
    assert sim.events == []


def test_forced_swap_on_reentry_gives_exactly_one_swap():
    # object 2 is visible when 1 returns, so swapping needs an absent partner: make 2 absent too
    both = [(1, 15), (2, 60)]
    schedule = [both] * 3 + [[]] * 6 + [[(1, 15)]] * 3 + [both] * 3
    sim = simulate(_gt(schedule), FailureSpec(swap_on_reentry=1.0))
    assert sim.count("swap_on_reentry") == 1
    event = next(e for e in sim.events if e.kind == "swap_on_reentry")
    assert event.frame == 9 and event.gt_ids == (1, 2)
    # object 1 now carries 2's old id, and object 2 carries 1's when it returns
    assert sim.frames[9].source_ids.tolist() == [2]
    last = dict(zip([1, 2], sim.frames[-1].source_ids.tolist(), strict=True))
    assert last == {1: 2, 2: 1}


def test_new_id_on_reentry():
    sim = simulate(_gt(_reentry_schedule()), FailureSpec(new_id_on_reentry=1.0))
    assert sim.count("new_id_on_reentry") == 1
    assert sorted(sim.frames[-1].source_ids.tolist()) == [2, 3]


def test_swap_at_crossing_when_objects_touch():
    schedule = [[(1, 20), (2, 60)], [(1, 30), (2, 50)], [(1, 36), (2, 44)], [(1, 44), (2, 36)]]
    sim = simulate(_gt(schedule), FailureSpec(swap_at_crossing=1.0))
    assert sim.count("swap_at_crossing") == 1
    assert sim.frames[-1].source_ids.tolist() == [2, 1]


def test_drop_spurious_duplicate_and_jitter():
    schedule = [[(1, 20), (2, 60)]] * 20
    sim = simulate(_gt(schedule), FailureSpec(drop=1.0, drop_length=3))
    assert all(len(f) == 0 for f in sim.frames[:3])  # both dropped for a run of 3 frames
    sim = simulate(_gt(schedule), FailureSpec(spurious=1.0, spurious_length=2, seed=1))
    assert sim.count("spurious") > 0 and max(len(f) for f in sim.frames) > 2
    sim = simulate(_gt(schedule), FailureSpec(duplicate=1.0, duplicate_length=4))
    first = sim.frames[0]
    assert len(first) == 4  # each object plus a latched duplicate (fresh ids: none absent)
    inter = (first.masks[0] & first.masks[1]).sum()
    assert inter == first.areas.min()  # the duplicate lies inside the object
    sim = simulate(_gt(schedule), FailureSpec(jitter=1.0, jitter_px=2))
    gt = _gt(schedule)
    assert any((s.areas != g.areas).any() for s, g in zip(sim.frames, gt, strict=True))


def test_simulator_is_deterministic():
    spec = FailureSpec.sam2_like(seed=4)
    a = simulate(_gt(_reentry_schedule() * 3), spec)
    b = simulate(_gt(_reentry_schedule() * 3), spec)
    assert _ids(a) == _ids(b) and a.events == b.events

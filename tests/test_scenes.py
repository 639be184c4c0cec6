import hashlib

import numpy as np
import pytest

from samtrack.eval.bench.scenes import Scene, SceneSpec


def _digest(spec):
    h = hashlib.sha256()
    for img, id_map in Scene(spec).frames():
        h.update(img.tobytes())
        h.update(id_map.tobytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs():
    spec = SceneSpec(num_frames=8, width=160, height=96, body_length=24, seed=5)
    assert _digest(spec) == _digest(spec)
    assert _digest(spec) != _digest(SceneSpec(num_frames=8, width=160, height=96,
                                              body_length=24, seed=6))


@pytest.mark.slow
def test_animals_leave_and_come_back():
    spec = SceneSpec(num_animals=2, num_frames=200, seed=1)
    visible = {1: [], 2: []}
    for _, id_map in Scene(spec).frames():
        present = set(np.unique(id_map).tolist())
        for k in visible:
            visible[k].append(k in present)
    for k, seen in visible.items():
        seen = np.array(seen)
        # at least one exit followed by a return
        changes = np.flatnonzero(np.diff(seen.astype(int)))
        assert any(seen[c] and not seen[c + 1] for c in changes), f"animal {k} never leaves"
        assert any(not seen[c] and seen[c + 1] for c in changes), f"animal {k} never returns"


def test_ground_truth_matches_the_painted_animals():
    spec = SceneSpec(num_animals=3, num_frames=3, noise_sigma=0, shadow=0, seed=2)
    scene = Scene(spec)
    for img, id_map in scene.frames():
        diff = np.abs(img.astype(int) - scene.background.astype(int)).sum(axis=2)
        changed = diff > 30
        labelled = id_map > 0
        # every labelled pixel looks different from the meadow (anti-aliased edges aside)
        assert (changed & labelled).sum() / labelled.sum() > 0.95


def test_bad_spec_rejected():
    with pytest.raises(ValueError, match=r"num_animals"):
        SceneSpec(num_animals=0)

from __future__ import annotations

from pathlib import Path

import pytest

from samtrack.eval.bench.scenes import Scene, SceneSpec

SMALL_SPEC = SceneSpec(num_animals=3, num_frames=30, width=320, height=180, body_length=40,
                       speed=3.0, seed=7)


@pytest.fixture(scope="session")
def small_scene(tmp_path_factory) -> Path:
    """A 30-frame, 3-animal generated sequence folder (img1/, gt/masks/, gt/gt.txt)."""
    folder = tmp_path_factory.mktemp("scene") / "small"
    return Scene(SMALL_SPEC).write(folder)

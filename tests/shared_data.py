"""Where the shared real footage lives (``../shared/data`` beside the checkout), and the skip
marks for tests that need it: a checkout without it still runs every other test."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL = SHARED_DATA / "real"
MOT15 = SHARED_DATA / "MOT15"

needs_zebrafish = pytest.mark.skipif(not (REAL / "zebrafish-07").is_dir(),
                                     reason="../shared/data/real is absent")
needs_mot15 = pytest.mark.skipif(not (MOT15 / "KITTI-17").is_dir(),
                                 reason="../shared/data/MOT15 is absent")

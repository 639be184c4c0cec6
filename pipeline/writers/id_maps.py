"""``masks/*.png``: 16-bit PNG ID maps of track ids, one per frame, named like the frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samtrack.pipeline.core.formats import write_id_map
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.writers.base import register_writer


class IdMapWriter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder / "masks"
        self.folder.mkdir(exist_ok=True)

    def write(self, image: np.ndarray, objects: FrameObjects) -> None:
        write_id_map(self.folder / f"{objects.frame_name}.png", objects.to_id_map())

    def close(self) -> None:
        pass  # each map is written atomically as it comes

    def abort(self) -> None:
        pass


register_writer("id_maps", lambda folder, settings: IdMapWriter(folder),
                "masks/*.png: 16-bit PNG ID maps of track ids (what eval and viz read)")

"""The output-writer interface and its registry.

A writer owns one kind of file in a run folder (``masks/*.png``, ``tracks.txt``, a video...).
:class:`~samtrack.pipeline.outputs.RunWriter` manages the folder (staging, the INCOMPLETE
marker, the summary) and hands each tracked frame to every writer named in ``output.writers``.

Writers stream into hidden temp files and rename them into place in ``close()``, so a run that
fails part way leaves nothing that looks complete; ``abort()`` drops what was started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.registry import Registry


class OutputWriter(Protocol):
    def write(self, image: np.ndarray, objects: FrameObjects) -> None:
        """Append one tracked frame (``image`` is the BGR frame)."""

    def close(self) -> None:
        """Finish: move every file into place."""

    def abort(self) -> None:
        """The run failed: drop what is unfinished."""


@dataclass(frozen=True)
class WriterSettings:
    """What every writer may need besides the folder."""

    fps: float = 25.0
    annotators: tuple[str, ...] = ("masks", "labels")  # viz.annotators, for drawn videos


@dataclass(frozen=True)
class WriterSpec:
    """``factory(folder, settings)``; ``files`` says what it writes (for help and the README);
    ``default``: on unless ``output.writers`` says otherwise."""

    factory: Callable[[Path, WriterSettings], OutputWriter]
    files: str
    default: bool = True


WRITERS: Registry[WriterSpec] = Registry("output writer", "output.writers")


def register_writer(name: str, factory: Callable[[Path, WriterSettings], OutputWriter], files: str,
                    *, default: bool = True) -> None:
    WRITERS.register(name, WriterSpec(factory, files, default))


def default_writers() -> list[str]:
    return [name for name, spec in WRITERS.items() if spec.default]

"""samtrack: stable identities for look-alike objects segmented by SAM2 (or any segmenter).

The flat public API; everything here is also importable from its layer::

    import samtrack as st

    tracker = st.Tracker.from_config("configs/two_sheep.yaml")  # or st.TrackerConfig(...).build()
    for frame, masks in my_segmenter(video):                    # masks: (N, H, W) booleans
        objs = st.FrameObjects.from_masks(masks)
        tracked = tracker.update(objs, frame)                   # tracked.track_ids
    result = tracker.finalize()                                 # offline re-linking if configured
    st.evaluate(gt="gt/", pred=result)                          # the numbers `samtrack eval` gives

Layers, each importing only from the ones below it (checked by the import-linter contract in
``pyproject.toml``): ``pipeline.core`` <- ``reid`` <- ``pipeline.sources`` <- evaluation,
drawing, outputs and config <- ``pipeline.runner`` / ``render`` <- demo, benchmarks <- ``cli``.
"""

from samtrack.eval.report import EvalReport, evaluate
from samtrack.pipeline.adapters import as_bgr, from_detections, from_sam2, to_detections
from samtrack.pipeline.config import Config, load_config
from samtrack.pipeline.core import __version__
from samtrack.pipeline.core.errors import ConfigError, InputError, UserError
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import VideoFrame, VideoReader
from samtrack.pipeline.runner import RunResult, run, save_result
from samtrack.pipeline.sources import SourceContext, SourceOptions, build_source, register_source
from samtrack.reid import IouTracker, ReidTracker, RepairEvent, Tracker, TrackerConfig, TrackResult
from samtrack.reid.costs import CostModel, CostTerm, Side, Weighted
from samtrack.reid.embedders import Embedder, build_embedder, register_embedder

__all__ = [
    "Config",
    "ConfigError",
    "CostModel",
    "CostTerm",
    "Embedder",
    "EvalReport",
    "FrameObjects",
    "InputError",
    "IouTracker",
    "ReidTracker",
    "RepairEvent",
    "RunResult",
    "Side",
    "SourceContext",
    "SourceOptions",
    "TrackResult",
    "Tracker",
    "TrackerConfig",
    "UserError",
    "VideoFrame",
    "VideoReader",
    "Weighted",
    "__version__",
    "as_bgr",
    "build_embedder",
    "build_source",
    "evaluate",
    "from_detections",
    "from_sam2",
    "load_config",
    "register_embedder",
    "register_source",
    "run",
    "save_result",
    "to_detections",
]

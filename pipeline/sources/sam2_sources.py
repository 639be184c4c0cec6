"""SAM2 mask sources: ``sam2-video`` (masklets with ids) and ``sam2-auto`` (per-frame masks).

``sam2-video`` runs SAM2's video predictor on windows of ``window`` frames. Why windows: SAM2's
``init_state`` loads and resizes every frame of the clip up front (about 12 MB per frame at
1024 px), so a long clip exhausts memory. Each window overlaps the previous one by one frame: the
objects' last masks are given to SAM2 on that shared frame (``add_new_mask``) under the same
object ids, so masklet ids carry across windows, and peak memory depends on the window, not on
the clip.

Objects come from explicit prompts (points with labels and/or a box, per object id and frame) and
from automatic seeding: SAM2's automatic mask generator on the first frame, and again at the start
of a window at least every ``rediscover_every`` frames, adding only masks that no current masklet
covers. New animals walking in are thus picked up, which the video predictor never does alone.

``sam2-auto`` runs the automatic mask generator on every ``every``-th frame (the per-frame
experiment, made usable): no identities (``source_ids`` = -1), so the tracker does all the work.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from samtrack.pipeline.core.device import resolve_device
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import VideoFrame, VideoReader
from samtrack.pipeline.sources.base import (
    SourceBase,
    SourceContext,
    SourceOptions,
    register_source,
)
from samtrack.pipeline.sources.sam2_model import ALIASES, MODELS, build_model, model_name

log = logging.getLogger(__name__)


class Prompt(BaseModel):
    """One object's prompt: points (x, y) with labels (1 = object, 0 = background), a box
    (x1, y1, x2, y2), or both, on a given frame."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    id: int = Field(ge=1, description="Object id (becomes the mask's source id).")
    frame: int = Field(default=0, ge=0, description="Zero-based frame of the prompt.")
    points: list[Annotated[list[float], Field(min_length=2, max_length=2)]] | None = Field(
        default=None, description="[[x, y], ...] in pixels.")
    labels: list[int] | None = None
    box: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                    description="[x1, y1, x2, y2] in pixels.")

    @model_validator(mode="after")
    def _check(self) -> Prompt:
        if self.points is None and self.box is None:
            raise ValueError("a prompt needs points or a box")
        if self.points is not None:
            labels = self.labels if self.labels is not None else [1] * len(self.points)
            if len(labels) != len(self.points):
                raise ValueError(f"{len(self.points)} points but {len(labels)} labels")
            self.labels = labels
        return self


class AutoOptions(BaseModel):
    """Filters of SAM2's automatic mask generator (seeding, rediscovery, ``sam2-auto``)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    points_per_side: int = Field(default=16, ge=1, description="Point grid density.")
    points_per_batch: int = Field(default=64, ge=1)
    pred_iou_thresh: float = Field(default=0.7, ge=0, le=1)
    stability_score_thresh: float = Field(default=0.85, ge=0, le=1)
    min_area: int = Field(default=200, ge=0, description="Drop masks smaller than this (px).")
    max_area_fraction: float = Field(default=0.5, gt=0, le=1, description="Drop masks larger "
                                     "than this fraction of the frame (background).")
    max_objects: int | None = Field(default=None, ge=1, description="Keep at most N masks "
                                    "(best predicted IoU first).")
    largest_k: int | None = Field(default=None, ge=1, description="Keep the K largest masks.")


_MODELS: dict[tuple, object] = {}


def shared_model(name: str, checkpoint: str | Path | None, device: str, *, video: bool):
    """The SAM2 model for these options, built once per process.

    Why: a batch worker runs clip after clip; loading SAM2 takes seconds to a minute and
    hundreds of MB, and the predictor keeps no state between clips (each window's inference
    state is reset), so every clip of a worker shares one model.
    """
    key = (model_name(name), str(checkpoint), device, video)
    if key not in _MODELS:
        _MODELS[key] = build_model(name, checkpoint, device, video=video)
    return _MODELS[key]


def _model_name(value: str) -> str:
    try:
        return model_name(value)
    except ValueError:
        raise ValueError(f"unknown SAM2 model {value!r}; choose from "
                         f"{', '.join([*MODELS, *ALIASES])}") from None


class _Sam2ModelOptions(SourceOptions):
    """The model both SAM2 sources load."""

    model: str = Field(default="sam2.1_hiera_t", description="SAM2.1 config: sam2.1_hiera_t/s/"
                       "b+/l (or tiny/small/base_plus/large).")
    checkpoint: str | None = Field(default=None, description="Checkpoint file; None = "
                                   "checkpoints/<file of the model> (see checkpoints/README.md).")

    _check_model = field_validator("model")(lambda cls, v: _model_name(v))


class Sam2VideoOptions(_Sam2ModelOptions):
    """Options of the ``sam2-video`` source (``source.sam2-video.*``)."""

    prompts: list[Prompt] = Field(default_factory=list, description="Explicit objects.")
    auto_seed: bool = Field(default=True, description="Seed objects with the automatic mask "
                            "generator on the first frame.")
    rediscover_every: int | None = Field(default=60, ge=1, description="Look for new objects "
                                         "(not covered by a masklet) at least this often, at "
                                         "window starts; None = never.")
    coverage: float = Field(default=0.5, gt=0, le=1, description="A generated mask this much "
                            "under existing masklets is not a new object.")
    auto: AutoOptions = Field(default_factory=AutoOptions)
    window: int = Field(default=60, ge=1, description="Frames per SAM2 window (memory bound). "
                        "1: each frame is its own window, seeded from the previous one (live "
                        "mode: no frame waits for the frames after it).")
    offload_video_to_cpu: bool = Field(default=False, description="SAM2 option: keep frames "
                                       "on the CPU (saves GPU memory).")
    offload_state_to_cpu: bool = Field(default=False, description="SAM2 option: keep the "
                                       "inference state on the CPU.")
    mask_threshold: float = Field(default=0.0, description="Mask logit threshold.")
    expose_features: bool = Field(default=False, description="Attach to each mask SAM2's "
                                  "image-encoder features averaged inside it (256-d), for "
                                  "tracker.embedder: sam2 (appearance at no extra network "
                                  "cost).")


class Sam2AutoOptions(_Sam2ModelOptions):
    """Options of the ``sam2-auto`` source (``source.sam2-auto.*``)."""

    every: int = Field(default=1, ge=1, description="Segment every k-th frame; the frames in "
                       "between have no masks (the tracker's motion bridges them).")
    largest_only: bool = Field(default=False, description="Keep only the largest mask (the "
                               "subject-on-black output).")
    auto: AutoOptions = Field(default_factory=AutoOptions)


def _autocast(device: str):
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def generate_masks(generator, image_bgr: np.ndarray, options: AutoOptions) -> list[dict]:
    """Automatic masks of one frame, filtered by area, count and size rank."""
    h, w = image_bgr.shape[:2]
    records = generator.generate(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    keep = [r for r in records if options.min_area <= r["area"] <= options.max_area_fraction *
            h * w]
    keep.sort(key=lambda r: -r["predicted_iou"])
    if options.max_objects is not None:
        keep = keep[: options.max_objects]
    if options.largest_k is not None:
        keep = sorted(keep, key=lambda r: -r["area"])[: options.largest_k]
    return keep


def _generator(model, options: AutoOptions):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    return SAM2AutomaticMaskGenerator(
        model, points_per_side=options.points_per_side, points_per_batch=options.points_per_batch,
        pred_iou_thresh=options.pred_iou_thresh,
        stability_score_thresh=options.stability_score_thresh)


def new_objects(candidates: list[np.ndarray], existing: list[np.ndarray],
                coverage: float) -> list[np.ndarray]:
    """Candidate masks that existing masks do not already cover (by ``coverage`` of their area);
    candidates are also de-duplicated among themselves, largest first."""
    taken = np.zeros_like(candidates[0]) if candidates else None
    for m in existing:
        taken = m.copy() if taken is None else taken | m
    out = []
    for m in sorted(candidates, key=lambda x: -int(x.sum())):
        area = int(m.sum())
        if area == 0:
            continue
        if taken is not None and (m & taken).sum() / area >= coverage:
            continue
        out.append(m)
        taken = m.copy() if taken is None else taken | m
    return out


class Sam2VideoSource(SourceBase):
    """SAM2 video predictor in windows; see the module docstring."""

    name = "sam2-video"

    def __init__(self, options: Sam2VideoOptions, context: SourceContext,
                 predictor=None) -> None:
        """``predictor``: an already built SAM2 video predictor (a batch worker's shared
        model, or a stand-in in tests); by default the one ``options`` name is loaded."""
        self.options = options
        self.context = context
        self.device = resolve_device(context.device)
        self.predictor = predictor if predictor is not None else shared_model(
            options.model, options.checkpoint, self.device, video=True)
        self._generator = None
        self.windows = 0  # windows processed (for tests and diagnostics)
        # the options' prompts, and those added while running (a click on the live page):
        # the options stay as the user gave them
        self.prompts: list[Prompt] = list(options.prompts)

    def add_prompt(self, prompt: Prompt) -> None:
        """An object to follow from ``prompt.frame`` on (prompts for frames already past are
        never seen)."""
        self.prompts.append(prompt)

    def streaming(self) -> Sam2VideoSource:
        """The same source for a live stream: one frame per window, seeded from the previous
        one, so no frame waits for later frames and SAM2's state never holds more than two
        frames. Shares the loaded model."""
        return Sam2VideoSource(self.options.model_copy(update={"window": 1}), self.context,
                               predictor=self.predictor)

    def generator(self):
        if self._generator is None:
            self._generator = _generator(self.predictor, self.options.auto)
        return self._generator

    def frames(self, video: VideoReader) -> Iterator[tuple[VideoFrame, FrameObjects]]:
        o = self.options
        carried: dict[int, np.ndarray] = {}  # object id -> mask on the shared frame
        next_id = max([p.id for p in self.prompts], default=0) + 1
        last_discovery: int | None = None
        overlap: VideoFrame | None = None
        batch: list[VideoFrame] = []
        for frame in video:
            batch.append(frame)
            if len(batch) < o.window - (1 if overlap is not None else 0):
                continue
            result = self._window(overlap, batch, carried, next_id, last_discovery)
            yield from result["out"]
            carried, next_id, last_discovery = (result["carried"], result["next_id"],
                                                result["last_discovery"])
            overlap, batch = batch[-1], []
        if batch:
            result = self._window(overlap, batch, carried, next_id, last_discovery)
            yield from result["out"]

    def _window(self, overlap, batch, carried, next_id, last_discovery):
        import torch

        o = self.options
        frames = ([overlap] if overlap is not None else []) + batch
        start = frames[0].index
        size = frames[0].image.shape[:2]
        out: list[tuple[VideoFrame, FrameObjects]] = []
        prompts = [p for p in self.prompts if any(f.index == p.frame for f in frames)
                   and not (overlap is not None and p.frame == overlap.index)]
        discover = o.auto_seed and (
            (last_discovery is None and overlap is None) or
            (o.rediscover_every is not None and last_discovery is not None and
             frames[0].index - last_discovery >= o.rediscover_every))
        seeds: dict[int, np.ndarray] = dict(carried)
        if discover:
            found = [r["segmentation"] for r in
                     generate_masks(self.generator(), frames[0].image, o.auto)]
            prompted = [self._box_mask(p, size) for p in prompts if p.frame == start]
            for m in new_objects(found, list(seeds.values()) + prompted, o.coverage):
                seeds[next_id] = m
                next_id += 1
            last_discovery = frames[0].index
        self.windows += 1
        if not seeds and not prompts:
            empty = [(f, FrameObjects.empty(size, frame_index=f.index, frame_name=f.name))
                     for f in batch]
            return {"out": empty, "carried": {}, "next_id": next_id,
                    "last_discovery": last_discovery}
        with tempfile.TemporaryDirectory(prefix="samtrack-sam2-") as tmp:
            for k, f in enumerate(frames):
                cv2.imwrite(str(Path(tmp) / f"{k}.jpg"), f.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            with torch.inference_mode(), _autocast(self.device):
                state = self.predictor.init_state(
                    tmp, offload_video_to_cpu=o.offload_video_to_cpu,
                    offload_state_to_cpu=o.offload_state_to_cpu)
                for obj_id, mask in seeds.items():
                    self.predictor.add_new_mask(state, 0, obj_id, mask)
                for p in prompts:
                    local = p.frame - start
                    kwargs = {}
                    if p.points is not None:
                        kwargs["points"] = np.asarray(p.points, np.float32)
                        kwargs["labels"] = np.asarray(p.labels, np.int32)
                    if p.box is not None:
                        kwargs["box"] = np.asarray(p.box, np.float32)
                    self.predictor.add_new_points_or_box(state, local, p.id, **kwargs)
                results: dict[int, tuple] = {}
                for local, obj_ids, logits in self.predictor.propagate_in_video(state):
                    values = logits[:, 0].float().cpu().numpy()
                    features = (self._pooled_features(state, local, values > o.mask_threshold)
                                if o.expose_features else None)
                    results[local] = (list(obj_ids), values, features)
                self.predictor.reset_state(state)
                del state
        new_carried: dict[int, np.ndarray] = {}
        for k, f in enumerate(frames):
            if overlap is not None and k == 0:
                continue  # already yielded by the previous window
            objects = self._objects(f, results.get(k), size)
            out.append((f, objects))
        last = results.get(len(frames) - 1)
        if last is not None:
            for obj_id, logit in zip(last[0], last[1], strict=True):
                mask = logit > o.mask_threshold
                if mask.any():
                    new_carried[int(obj_id)] = mask
        return {"out": out, "carried": new_carried, "next_id": next_id,
                "last_discovery": last_discovery}

    def _objects(self, frame: VideoFrame, result, size) -> FrameObjects:
        if result is None:
            return FrameObjects.empty(size, frame_index=frame.index, frame_name=frame.name)
        obj_ids, logits, features = result
        masks = logits > self.options.mask_threshold
        present = masks.any(axis=(1, 2))  # an object with an empty mask is simply absent
        scores = []
        for m, lg in zip(masks[present], logits[present], strict=True):
            scores.append(float(1 / (1 + np.exp(-float(lg[m].mean())))))
        return FrameObjects.from_masks(masks[present], frame_index=frame.index,
                                       frame_name=frame.name, scores=scores,
                                       source_ids=np.asarray(obj_ids)[present],
                                       embeddings=None if features is None else
                                       features[present])

    def _pooled_features(self, state, local: int, masks: np.ndarray) -> np.ndarray:
        """``(N, C)``: the image encoder's lowest-resolution features (C = 256 on a
        64x64 grid at 1024 px) averaged inside each mask.

        Why these: the video predictor computes them for every frame anyway, so re-id gets an
        appearance vector without running a second network. SAM2 keeps only the latest frame's
        features (``cached_features``); a prompted frame's output comes from storage, so its
        features may be gone and are then recomputed (once per window)."""
        cached = state["cached_features"].get(local)
        if cached is None:
            self.predictor._get_image_feature(state, local, 1)  # fills the one-frame cache
            cached = state["cached_features"][local]
        grid = cached[1]["backbone_fpn"][-1][0].float().cpu().numpy()  # (C, h, w)
        channels, h, w = grid.shape
        # SAM2 squashes the frame to a square input, so the grid maps onto the whole frame
        weights = np.stack([cv2.resize(m.astype(np.float32), (w, h),
                                       interpolation=cv2.INTER_AREA) for m in masks]) \
            if len(masks) else np.zeros((0, h, w), np.float32)
        totals = weights.reshape(len(masks), -1).sum(axis=1, keepdims=True)
        pooled = weights.reshape(len(masks), -1) @ grid.reshape(channels, -1).T
        return (pooled / np.maximum(totals, 1e-6)).astype(np.float32)

    @staticmethod
    def _box_mask(prompt: Prompt, size) -> np.ndarray:
        m = np.zeros(size, bool)
        if prompt.box is not None:
            x1, y1, x2, y2 = (int(v) for v in prompt.box)
            m[max(y1, 0):y2, max(x1, 0):x2] = True
        return m


class Sam2AutoSource(SourceBase):
    """SAM2's automatic mask generator per frame; see the module docstring."""

    name = "sam2-auto"

    def __init__(self, options: Sam2AutoOptions, context: SourceContext) -> None:
        self.options = options
        self.device = resolve_device(context.device)
        model = shared_model(options.model, options.checkpoint, self.device, video=False)
        self.generator = _generator(model, options.auto)

    def frames(self, video: VideoReader) -> Iterator[tuple[VideoFrame, FrameObjects]]:
        import torch

        o = self.options
        for frame in video:
            size = frame.image.shape[:2]
            if frame.index % o.every:
                yield frame, FrameObjects.empty(size, frame_index=frame.index,
                                                frame_name=frame.name)
                continue
            with torch.inference_mode(), _autocast(self.device):
                records = generate_masks(self.generator, frame.image, o.auto)
            if o.largest_only and records:
                records = [max(records, key=lambda r: r["area"])]
            masks = np.stack([r["segmentation"] for r in records]) if records else \
                np.zeros((0, *size), bool)
            yield frame, FrameObjects.from_masks(
                masks, frame_index=frame.index, frame_name=frame.name,
                scores=[float(r["predicted_iou"]) for r in records])


@register_source("sam2-video", Sam2VideoOptions,
                 "SAM2 video masklets with prompts and automatic seeding, in windows")
def _build_video(options: SourceOptions, context: SourceContext) -> Sam2VideoSource:
    assert isinstance(options, Sam2VideoOptions)
    return Sam2VideoSource(options, context)


@register_source("sam2-auto", Sam2AutoOptions,
                 "SAM2 automatic mask generator on every (k-th) frame, no identities")
def _build_auto(options: SourceOptions, context: SourceContext) -> Sam2AutoSource:
    assert isinstance(options, Sam2AutoOptions)
    return Sam2AutoSource(options, context)

"""Adapters from the tools people already hold: SAM2's video predictor and supervision.

SAM2's ``predictor.propagate_in_video(state)`` yields ``(frame_idx, obj_ids, mask_logits)`` with
``mask_logits`` a ``(N, 1, H, W)`` float tensor (often on the GPU) whose positive values are the
mask: :func:`from_sam2` takes that triple as it comes. supervision's ``sv.Detections`` is how many
CV pipelines hold masks and boxes: :func:`from_detections` and :func:`to_detections` convert both
ways, keeping every per-object column (``data``, ``class_id``, ids, scores).

Frames: samtrack's stages work on BGR images (OpenCV's order, what :class:`VideoReader` gives);
SAM2 and supervision users usually hold RGB. Every call that takes a frame says which with
``color`` and :func:`as_bgr` converts once, so an RGB frame is never read as BGR by mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import ColorOrder, as_bgr

__all__ = ["ColorOrder", "as_bgr", "from_detections", "from_sam2", "to_detections"]

SAM2_MASK_THRESHOLD = 0.0  # SAM2's own: a pixel is in the mask where its logit is positive


def _to_numpy(array: Any) -> np.ndarray:
    """A torch tensor (any device, with or without grad) or array-like as a NumPy array."""
    if hasattr(array, "detach"):
        array = array.detach()
        if array.dtype.is_floating_point and array.dtype.itemsize < 4:
            array = array.float()  # bfloat16/half (SAM2 autocast) have no NumPy twin
        array = array.cpu().numpy()
    return np.asarray(array)


def from_sam2(frame_idx: int, obj_ids: Sequence[int] | Any, mask_logits: Any, *,
              threshold: float = SAM2_MASK_THRESHOLD, frame_name: str = "") -> FrameObjects:
    """One frame of SAM2's video predictor as :class:`FrameObjects`.

    Args:
        frame_idx: the frame index SAM2 yields (the frame's index in the clip).
        obj_ids: SAM2's object ids, one per mask; kept as ``source_ids`` so the tracker can
            trust or repair them.
        mask_logits: ``(N, 1, H, W)`` as yielded, or ``(N, H, W)`` / ``(1, N, H, W)``; float
            logits (thresholded at ``threshold``) or booleans. Torch tensors on any device.
        threshold: logit above which a pixel is in the mask (SAM2 uses 0).

    Scores: the mean sigmoid of the logits inside each mask (how sure SAM2 is of the pixels it
    kept); 1 for boolean input. An object SAM2 lost this frame (all logits below threshold)
    stays as an empty mask with score 0, so its id is still seen and the tracker can tell
    "lost" from "never prompted".
    """
    logits = _to_numpy(mask_logits)
    ids = np.asarray(_to_numpy(obj_ids), np.int64).reshape(-1)
    n = len(ids)
    if logits.ndim == 4 and logits.shape[1] == 1 and logits.shape[0] == n:
        logits = logits[:, 0]
    elif logits.ndim == 4 and logits.shape[0] == 1 and logits.shape[1] == n:
        logits = logits[0]
    elif logits.ndim == 2 and n == 1:
        logits = logits[None]
    if logits.ndim != 3 or logits.shape[0] != n:
        raise ValueError(f"mask_logits of shape {tuple(logits.shape)} do not hold one mask per "
                         f"object id ({n} ids); SAM2 yields (N, 1, H, W)")
    if logits.dtype == bool:
        masks, scores = logits, np.ones(n, np.float32)
    else:
        masks = logits > threshold
        scores = np.zeros(n, np.float32)
        for i in range(n):
            inside = logits[i][masks[i]]
            if inside.size:
                scores[i] = float(np.mean(1.0 / (1.0 + np.exp(-inside.astype(np.float64)))))
    return FrameObjects.from_masks(masks, frame_index=int(frame_idx), scores=scores,
                                   source_ids=ids, frame_name=frame_name)


def from_detections(detections: Any, *, frame_index: int = -1,
                    image_size: tuple[int, int] | None = None, frame_name: str = "",
                    ) -> FrameObjects:
    """``sv.Detections`` -> :class:`FrameObjects`.

    ``mask`` (N, H, W) is used inside ``xyxy`` (supervision keeps the two consistent); without
    masks each box becomes a filled rectangle, which needs ``image_size`` ``(H, W)``.
    ``confidence`` -> ``scores``; ``tracker_id`` (an upstream tracker's ids) -> ``source_ids``;
    ``class_id`` and every per-object array of ``data`` -> ``data`` columns.
    """
    n = len(detections)
    boxes = np.asarray(detections.xyxy, np.float64).reshape(n, 4)
    masks = detections.mask
    if masks is None:
        if image_size is None:
            raise ValueError("detections have no masks: give image_size=(H, W) to use the boxes")
        masks = np.zeros((n, *image_size), bool)
        for i, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
            masks[i, max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    data: dict[str, np.ndarray] = {}
    if detections.class_id is not None:
        data["class_id"] = np.asarray(detections.class_id)
    for key, value in (detections.data or {}).items():
        array = np.asarray(value)
        if array.ndim and len(array) == n:
            data[key] = array
    return FrameObjects.from_masks(
        np.asarray(masks, bool), boxes=boxes, frame_index=frame_index, frame_name=frame_name,
        scores=None if detections.confidence is None else np.asarray(detections.confidence),
        source_ids=None if detections.tracker_id is None else np.asarray(detections.tracker_id),
        data=data)


def to_detections(objects: FrameObjects, *, ids: Literal["track", "source"] = "track") -> Any:
    """:class:`FrameObjects` -> ``sv.Detections`` (dense masks, tight boxes, scores).

    ``tracker_id`` carries samtrack's identities (``ids="track"``) or the source's; the other
    set goes to ``data["source_id"]`` / ``data["track_id"]`` so nothing is lost. ``data``
    columns travel along; a ``class_id`` column becomes supervision's ``class_id``.
    """
    import supervision as sv  # only users of supervision pay for its import

    data = {key: np.asarray(value) for key, value in objects.data.items() if key != "class_id"}
    if ids == "track":
        tracker_id, data["source_id"] = objects.track_ids, objects.source_ids
    else:
        tracker_id, data["track_id"] = objects.source_ids, objects.track_ids
    class_id = objects.data.get("class_id")
    return sv.Detections(
        xyxy=objects.boxes.astype(np.float32), mask=objects.masks,
        confidence=objects.scores.astype(np.float32),
        class_id=None if class_id is None else np.asarray(class_id, int),
        tracker_id=np.asarray(tracker_id, int), data=data)

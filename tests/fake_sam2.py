"""A stand-in for SAM2's video predictor: the five calls samtrack makes, in milliseconds.

It "segments" each object as the mask or box it was prompted with, on every frame of the
window, and records every call, so tests can check samtrack's windowing, seeding and id
carry-over without a network. Its logits are +8 inside and -8 outside the mask.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch


class FakeVideoPredictor:
    def __init__(self, drop: dict[int, set[int]] | None = None) -> None:
        self.calls: list[tuple] = []
        self.window = 0
        self.drop = drop or {}  # window -> object ids whose mask comes back empty

    def init_state(self, folder, offload_video_to_cpu=False, offload_state_to_cpu=False):
        self.window += 1
        frames = sorted(Path(folder).glob("*.jpg"), key=lambda p: int(p.stem))
        size = None
        if frames:
            size = cv2.imread(str(frames[0])).shape[:2]
        self.calls.append(("init_state", self.window, len(frames)))
        return {"frames": len(frames), "size": size, "objects": {}, "cached_features": {}}

    def add_new_mask(self, state, frame_idx, obj_id, mask):
        self.calls.append(("add_new_mask", self.window, frame_idx, int(obj_id)))
        state["objects"][int(obj_id)] = np.asarray(mask, bool)

    def add_new_points_or_box(self, state, frame_idx, obj_id, points=None, labels=None,
                              box=None):
        self.calls.append(("add_new_points_or_box", self.window, frame_idx, int(obj_id)))
        mask = np.zeros(state["size"], bool)
        if box is not None:
            x1, y1, x2, y2 = np.asarray(box, int)
            mask[y1:y2, x1:x2] = True
        else:
            for x, y in np.asarray(points, int):
                mask[max(0, y - 5):y + 5, max(0, x - 5):x + 5] = True
        state["objects"][int(obj_id)] = mask

    def propagate_in_video(self, state):
        self.calls.append(("propagate_in_video", self.window))
        ids = sorted(state["objects"])
        gone = self.drop.get(self.window, set())
        for local in range(state["frames"]):
            masks = np.stack([state["objects"][i] & (i not in gone) for i in ids])
            state["cached_features"][local] = (None, {"backbone_fpn": [
                torch.ones(1, 4, 8, 8) * (local + 1)]})
            yield local, ids, torch.from_numpy(np.where(masks, 8.0, -8.0)[:, None])

    def reset_state(self, state):
        self.calls.append(("reset_state", self.window))
        state["objects"].clear()

    def _get_image_feature(self, state, local, batch):
        state["cached_features"][local] = (None, {"backbone_fpn": [torch.ones(1, 4, 8, 8)]})

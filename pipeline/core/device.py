"""Compute device selection: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

from samtrack.pipeline.core.errors import ConfigError


def resolve_device(name: str) -> str:
    """``auto`` -> the best available device; an explicit device must exist."""
    import torch  # on first use: the weight-free path never pays its import

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: '{name}' requested but CUDA is not available here")
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device: 'mps' requested but Apple MPS is not available here")
    return name

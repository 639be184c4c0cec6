"""Building SAM2 models from the official configs and checkpoints, with errors a person can act on.

Model names are the SAM2.1 config names (``sam2.1_hiera_t``, ``_s``, ``_b+``, ``_l``; short
aliases ``tiny``, ``small``, ``base_plus``, ``large``). The checkpoint defaults to
``checkpoints/<name>.pt`` (what ``checkpoints/download.sh`` fetches).

We build the model with ``ckpt_path=None`` and load the state dict ourselves, so that a missing
file, a file that is not a SAM2 checkpoint, and a checkpoint of another size each get one clear
sentence instead of sam2's bare ``RuntimeError()``.
"""

from __future__ import annotations

from pathlib import Path

from samtrack.pipeline.core.errors import InputError

MODELS = {
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
ALIASES = {"tiny": "sam2.1_hiera_t", "small": "sam2.1_hiera_s",
           "base_plus": "sam2.1_hiera_b+", "large": "sam2.1_hiera_l"}
CHECKPOINT_FILES = {
    "sam2.1_hiera_t": "sam2.1_hiera_tiny.pt",
    "sam2.1_hiera_s": "sam2.1_hiera_small.pt",
    "sam2.1_hiera_b+": "sam2.1_hiera_base_plus.pt",
    "sam2.1_hiera_l": "sam2.1_hiera_large.pt",
}
CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints"


class CheckpointError(InputError):
    """A missing or unusable SAM2 checkpoint; the message says what to do."""


def model_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in MODELS:
        raise ValueError(f"unknown SAM2 model {name!r}; choose from "
                         f"{', '.join([*MODELS, *ALIASES])}")
    return name


def default_checkpoint(name: str) -> Path:
    return CHECKPOINT_DIR / CHECKPOINT_FILES[model_name(name)]


def _load_state_dict(model, checkpoint: Path, name: str) -> None:
    import torch

    if not checkpoint.is_file():
        raise CheckpointError(
            f"{checkpoint}: SAM2 checkpoint not found; download it with "
            f"`bash checkpoints/download.sh {name}` or give --checkpoint PATH")
    try:
        data = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors differ across torch versions
        raise CheckpointError(f"{checkpoint}: not a readable PyTorch checkpoint "
                              f"({type(exc).__name__})") from None
    state = data.get("model") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{checkpoint}: not a SAM2 checkpoint (no 'model' state dict)")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) !=
             tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        example = (wrong or missing or unexpected)[0]
        raise CheckpointError(
            f"{checkpoint}: does not fit model {name} ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} wrongly shaped weights, e.g. "
            f"'{example}'); is it the checkpoint of another SAM2 size?")
    model.load_state_dict(state)


def build_model(name: str, checkpoint: str | Path | None, device: str, *, video: bool):
    """A SAM2 model (video predictor when ``video``) on ``device`` with the checkpoint loaded."""
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    name = model_name(name)
    path = Path(checkpoint) if checkpoint else default_checkpoint(name)
    if not path.is_file():  # fail before spending seconds building the network
        _load_state_dict(None, path, name)
    builder = build_sam2_video_predictor if video else build_sam2
    model = builder(MODELS[name], ckpt_path=None, device="cpu")
    _load_state_dict(model, path, name)
    return model.to(device).eval()


def save_random_checkpoint(name: str, path: str | Path) -> Path:
    """Write a checkpoint of the official architecture with random weights (tests, no network)."""
    import torch
    from sam2.build_sam import build_sam2

    model = build_sam2(MODELS[model_name(name)], ckpt_path=None, device="cpu")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, str(path))
    return path

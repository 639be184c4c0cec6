"""Options of the tracker stage (``tracker.*``) and the factory that builds the tracker from them.

Cost scale: every cost term lives in about [0, 1] (cosine distance of L2-normalised embeddings,
1 - IoU, a normalised distance), so weights compare directly: ``appearance_weight: 2`` means "a
0.1 change in appearance distance counts like a 0.2 change in IoU".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from samtrack.pipeline.core.configbase import (
    MOVED_KEYS,
    StrictModel,
    format_error,
    load_yaml_mapping,
    raise_config_error,
    set_dotted,
)
from samtrack.pipeline.core.device import resolve_device
from samtrack.pipeline.core.registry import Registry
from samtrack.reid import motion
from samtrack.reid.embedders import Embedder, EmbedderSettings, build_embedder, check_embedder_name
from samtrack.reid.embedders.learned import LearnedSettings
from samtrack.reid.resolvers import RESOLVERS
from samtrack.reid.tracks import Gallery

if TYPE_CHECKING:  # only for annotations: the trackers import this module, not the reverse
    from samtrack.reid.base import Tracker

TrackerFactory = Callable[..., "Tracker"]

#: Tracker types (``tracker.type``). Each tracker module registers its class here, so this
#: module (the options) never imports the trackers that read them.
TRACKERS: Registry[TrackerFactory] = Registry("tracker type", "tracker.type")

#: flat keys of earlier versions -> their place now
FLAT_KEYS = {
    "embedder_weights": "appearance.weights", "embedder_input_size": "appearance.input_size",
    "embedder_align": "appearance.align", "embedder_flip_average": "appearance.flip_average",
    "gallery_size": "appearance.gallery_size", "gallery_ema": "appearance.gallery_ema",
    "gallery_min_distance": "appearance.gallery_min_distance",
    "appearance_weight": "appearance.weight", "appearance_gate": "appearance.gate",
    "border_appearance_weight": "appearance.border_weight",
    "motion_weight": "motion.weight", "min_motion_iou": "motion.min_iou",
    "gate_chi2": "motion.gate_chi2", "kalman_position_noise": "motion.position_noise",
    "kalman_velocity_noise": "motion.velocity_noise",
    "kalman_measurement_noise": "motion.measurement_noise", "motion_horizon": "motion.horizon",
    "reach": "motion.reach", "crossings": "motion.crossings",
    "source_id_bonus": "association.source_id_bonus", "max_cost": "association.max_cost",
    "high_score": "association.high_score", "low_score": "association.low_score",
    "min_hits": "association.min_hits", "max_age": "association.max_age",
    "border_margin": "association.border_margin",
    "reentry_max_cost": "reentry.max_cost", "reentry_position_weight": "reentry.position_weight",
    "reentry_appearance_gate": "reentry.appearance_gate", "reentry_contrast": "reentry.contrast",
    "verify_frames": "reentry.verify_frames", "verify_timeout": "reentry.verify_timeout",
    "verify_ratio": "reentry.verify_ratio", "verify_margin": "reentry.verify_margin",
    "hold_contested": "reentry.hold_contested", "hold_margin": "reentry.hold_margin",
    "duplicate_containment": "duplicates.containment", "duplicate_iou": "duplicates.iou",
    "online_border_guesses": "model.border_guesses",
    "online_border_guess_wait": "model.border_guess_wait", "iou_threshold": "iou.threshold",
}
MOVED_KEYS.update({f"tracker.{old}": f"tracker.{new}" for old, new in FLAT_KEYS.items()})
MOVED_KEYS["tracker.reentry"] = "tracker.reentry.enabled (reentry is a section now)"
MOVED_KEYS.update({
    "tracker.mode": "tracker.identities (online: gallery; offline: offline)",
    "tracker.online_identity_model": "tracker.identities: model",
})


class AppearanceOptions(StrictModel):
    """How objects look (``tracker.appearance``): the embedder and each identity's gallery."""

    weights: str | None = Field(default=None, description="Weights file for torchvision:<arch>; "
                                "for learned, the learned.pt a run with learned.enabled saved.")
    input_size: int = Field(default=128, ge=32, description="CNN input size (px).")
    align: bool = Field(default=True, description="Rotate crops to the mask's major axis "
                        "(rotation-invariant features for top-down views).")
    flip_average: bool = Field(default=False, description="Also embed the crop turned 180 "
                               "degrees and average (2x the work).")
    gallery_size: int = Field(default=Gallery.SIZE, ge=1, le=1000, description="Distinct "
                              "embeddings kept per identity besides its running average.")
    gallery_ema: float = Field(default=Gallery.EMA, ge=0, lt=1, description="Weight of the "
                               "past in the running-average embedding.")
    gallery_min_distance: float = Field(default=Gallery.MIN_DISTANCE, ge=0, description="A new "
                                        "embedding enters the bank only if this far from all.")
    weight: float = Field(default=1.0, ge=0, description="Weight of the appearance distance "
                          "in the association cost.")
    gate: float = Field(default=0.45, gt=0, description="In view: appearance distance above "
                        "which a pair is impossible unless motion IoU >= 0.5 (not applied to "
                        "a mask at a border, nor to a tracklet not yet seen whole).")
    border_weight: float = Field(default=0.3, ge=0, description="Weight of appearance for a "
                                 "mask touching the frame's border (half visible), not gated.")


class MotionOptions(StrictModel):
    """Where objects go (``tracker.motion``): the constant-velocity Kalman filter on the mask
    box (noise as a fraction of the box height) and how far motion alone may link."""

    weight: float = Field(default=1.0, ge=0, description="Weight of 1 - IoU between the mask "
                          "and the tracklet's last mask moved by the predicted motion.")
    min_iou: float = Field(default=0.1, ge=0, le=1, description="Least overlap with the "
                           "predicted mask for a match made on motion alone (low-score masks, "
                           "and every mask when there is no appearance).")
    gate_chi2: float = Field(default=13.3, gt=0, description="Squared Mahalanobis distance of "
                             "the box centre above which a pair is impossible.")
    position_noise: float = Field(default=motion.POSITION_NOISE, gt=0, description="Process "
                                  "noise of the box position per frame.")
    velocity_noise: float = Field(default=motion.VELOCITY_NOISE, gt=0, description="Process "
                                  "noise of the velocity per frame (how fast it follows speed "
                                  "changes).")
    measurement_noise: float = Field(default=motion.MEASUREMENT_NOISE, gt=0,
                                     description="Noise of a measured box (mask jitter).")
    horizon: int = Field(default=8, ge=0, description="Frames a lost tracklet stays in the "
                         "in-view association; after that only re-entry brings it back.")
    reach: float = Field(default=0.5, ge=0, description="An unmatched confident mask continues "
                         "a tracklet seen last frame within this many of its box diagonals, "
                         "when it looks alike and has a similar area (burst swimmers); 0: off. "
                         "Also how far a resting object may have moved when a crossing is "
                         "judged.")
    crossings: Literal["motion", "off"] = Field(default="motion", description="motion: after "
                                                "objects touched, identities follow where each "
                                                "was heading; off: the masks' matches stand.")


class AssociationOptions(StrictModel):
    """Matching masks to tracklets frame by frame (``tracker.association``); two score stages
    as ByteTrack's."""

    source_id_bonus: float = Field(default=0.3, ge=0, description="Cost reduction when the "
                                   "mask carries the tracklet's last source id (a hint).")
    max_cost: float = Field(default=1.2, gt=0, description="Pairs costing more never match "
                            "in view.")
    high_score: float = Field(default=0.7, ge=0, le=1, description="Masks scoring at least "
                              "this are matched first and may start tracklets.")
    low_score: float = Field(default=0.1, ge=0, le=1, description="Masks below this are "
                             "ignored; between the two they only extend tracklets, by motion.")
    min_hits: int = Field(default=2, ge=1, description="Matches before a new tracklet gets an "
                          "identity (those of the first frame at once).")
    max_age: int = Field(default=600, ge=1, description="Frames an absent identity is kept for "
                         "re-entry (with num_identities: forever).")
    border_margin: int = Field(default=3, ge=0, description="A mask within this many pixels "
                               "of the frame's edge touches the border.")


class ReentryOptions(StrictModel):
    """Giving a returning object its old identity, and checking it (``tracker.reentry``)."""

    enabled: bool = Field(default=True, description="Give an object that comes back into view "
                          "the identity it had; off: it is new, as in plain MOT trackers.")
    max_cost: float = Field(default=0.55, gt=0, description="A returning mask restores an old "
                            "identity only below this cost.")
    position_weight: float = Field(default=0.5, ge=0, description="Weight of the distance from "
                                   "where the identity left (fraction of the frame diagonal).")
    appearance_gate: float = Field(default=0.6, gt=0, description="Appearance distance above "
                                   "which re-entry is impossible.")
    contrast: float | None = Field(default=0.5, gt=0, description="A fully visible returning "
                                   "object must be closer than this fraction of how far apart "
                                   "distinct objects of this clip look (online, it may always "
                                   "be as far as the clip's objects stray from their own "
                                   "looks); null: the gate only.")
    verify_frames: int = Field(default=3, ge=1, description="Clean frames seen before a "
                               "restored identity is verified.")
    verify_timeout: int = Field(default=40, ge=1, description="Frames after which a restored "
                                "identity is kept without enough clean views.")
    verify_ratio: float = Field(default=0.7, gt=0, le=1, description="Identities are "
                                "re-assigned (verification, crossings) only if the new total "
                                "cost is below this fraction of the current one...")
    verify_margin: float = Field(default=0.005, ge=0, description="...and lower by at least "
                                 "this much.")
    hold_contested: Literal["margin", "source", "off"] = Field(
        default="margin", description="Hold back a contested restored identity until verified: "
        "margin (the source disagrees, or the runner-up is close); source (only when the "
        "source disagrees); off.")
    hold_margin: float = Field(default=0.1, ge=0, description="Cost margin to the runner-up "
                               "below which a re-entry is contested.")


class DuplicateOptions(StrictModel):
    """Two masks on one object (``tracker.duplicates``)."""

    containment: float = Field(default=0.8, gt=0, le=1, description="Overlap covering this "
                               "fraction of the smaller mask: one object, the smaller dropped.")
    iou: float | None = Field(default=None, gt=0, le=1, description="Overlap IoU at or above "
                              "which the lower-scored mask is dropped (NMS); null: off.")


class ModelOptions(StrictModel):
    """The per-clip identity model online (``tracker.model``, with ``identities: model``)."""

    border_guesses: bool = Field(default=True, description="Show the model's guess for a "
                                 "returning object still cut by the border; false: only once "
                                 "seen whole.")
    border_guess_wait: float = Field(default=1.5, ge=1, description="A guess made on border "
                                     "views alone waits this many times the clip's calibrated "
                                     "wait before it is shown.")
    agreed_links: bool = Field(default=True, description="Keep the identity of an object the "
                               "tracker followed and the mask source kept its id for, after "
                               "a crossing or touch; false: the model may overrule them "
                               "(a source that swaps at crossings).")


class LearnedOptions(StrictModel):
    """The appearance representation learned from each clip for the identity model, offline
    or online (``tracker.learned``; :mod:`reid.embedders.learned`)."""

    enabled: bool | None = Field(default=None, description="Train a small CNN on the "
                                 "clip's fragments (same fragment: one individual; fragments "
                                 "seen together: different ones) and decide identities on its "
                                 "embeddings where, on fragments held out of its training, "
                                 "it tells individuals apart better than tracker.embedder. "
                                 "Offline: on the whole clip, and it may overrule the input's "
                                 "links. Online (identities: model): once the clip so far has "
                                 "enough fragments; it then takes over. null: on for "
                                 "identities: offline, off otherwise.")
    background: bool | None = Field(default=None, description="Online: train in a thread "
                                    "while the stream goes on (the model decides on "
                                    "tracker.embedder meanwhile); the representation takes "
                                    "over on the first frame after training ends, which "
                                    "depends on the machine's speed. false: the stream waits "
                                    "for the training, so a clip gives the same identities "
                                    "every run. null: on in samtrack live, off elsewhere.")
    max_steps: int = Field(default=LearnedSettings.max_steps, ge=1, description="Training "
                           "budget in steps; training stops earlier when the clustering of "
                           "held-out fragments stops improving.")
    seconds: float = Field(default=LearnedSettings.seconds, gt=0, description="Wall-clock cap "
                           "on training (a run stopped by it is not reproducible; summary.json "
                           "says so).")
    long_side: int = Field(default=LearnedSettings.long_side, ge=16, description="Network "
                           "pixels along the body; across it follows the clip's shape.")
    dim: int = Field(default=LearnedSettings.dim, ge=2, description="Size of the learned "
                     "embedding.")
    seed: int = Field(default=LearnedSettings.seed, description="Seeds every random choice of "
                      "training: the same clip gives the same identities.")

    def settings(self, device: str = "cpu") -> LearnedSettings:
        return LearnedSettings(max_steps=self.max_steps, seconds=self.seconds,
                               long_side=self.long_side, dim=self.dim, seed=self.seed,
                               device=resolve_device(device))


class IouOptions(StrictModel):
    """The plain IoU baseline (``tracker.type: iou``)."""

    threshold: float = Field(default=0.2, ge=0, le=1, description="Minimum box IoU to continue "
                             "a track.")


class TrackerConfig(StrictModel):
    """``tracker.*``: what the tracker is, who decides identities, and each component's own
    options (tuned values and where they came from: configs/tuned/)."""

    type: str = Field(default="reid", description="reid: appearance + motion "
                      "re-identification tracker; iou: plain IoU baseline.")
    identities: str = Field(
        default="gallery", description="Who decides the identity shown: gallery (the "
        "tracker's rules, frame by frame), model (the per-clip model online) or offline (the "
        "per-clip model with hindsight, written at the end).")
    num_identities: int | None = Field(
        default=None, ge=1, description="Exactly this many individuals exist; null: "
        "estimated (summary.json identities.num_identities).")
    embedder: str = Field(default="histogram", description="Appearance embedder: histogram, "
                          "mobilenet_v2, sam2, torchvision:<arch>, learned (a representation a "
                          "run saved), or several joined by '+'.")
    appearance: AppearanceOptions = Field(default_factory=AppearanceOptions)
    motion: MotionOptions = Field(default_factory=MotionOptions)
    association: AssociationOptions = Field(default_factory=AssociationOptions)
    reentry: ReentryOptions = Field(default_factory=ReentryOptions)
    duplicates: DuplicateOptions = Field(default_factory=DuplicateOptions)
    model: ModelOptions = Field(default_factory=ModelOptions)
    learned: LearnedOptions = Field(default_factory=LearnedOptions)
    iou: IouOptions = Field(default_factory=IouOptions)

    @field_validator("identities")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in RESOLVERS:
            raise ValueError(f"expected one of {', '.join(RESOLVERS.names())}, got {value!r}")
        return value

    @field_validator("embedder")
    @classmethod
    def _known_embedder(cls, value: str) -> str:
        check_embedder_name(value)
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in TRACKERS:
            raise ValueError(f"expected one of {', '.join(TRACKERS.names())}, got {value!r}")
        return value

    @property
    def learns(self) -> bool:
        """Whether a representation is learned from the clip (``learned.enabled``; null: with
        offline identities, where the whole clip is there to learn from and nothing is shown
        before the end, so its training time delays only the result; not online, where
        training would pause the stream)."""
        if self.learned.enabled is None:
            return self.identities == "offline"
        return self.learned.enabled

    @model_validator(mode="after")
    def _learned_needs_identity_model(self) -> TrackerConfig:
        if self.learned.enabled and self.identities not in ("offline", "model"):
            raise ValueError("tracker.learned.enabled needs tracker.identities: offline or "
                             "model (the representation is trained on the identity model's "
                             "fragments)")
        return self

    @classmethod
    def from_dotted(cls, options: dict[str, Any]) -> TrackerConfig:
        """Options by dotted key (``{"identities": "offline", "motion.reach": 0}``), as the
        YAML's nested sections would give them; a flat key of earlier versions is refused
        naming its new place."""
        nested: dict[str, Any] = {}
        for key, value in options.items():
            moved = f"tracker.{key}" in MOVED_KEYS and not isinstance(value, dict)
            if moved:  # a flat key of earlier versions (``reentry: false`` among them)
                raise ValueError(f"tracker.{key}: replaced by {MOVED_KEYS[f'tracker.{key}']}")
            set_dotted(nested, key, value)
        return cls.model_validate(nested)

    # ------------------------------------------------------------------ building
    def embedder_settings(self, device: str = "cpu") -> EmbedderSettings:
        a = self.appearance
        return EmbedderSettings(weights=a.weights, input_size=a.input_size, device=device,
                                align=a.align, flip_average=a.flip_average)

    def build_embedder(self, device: str = "cpu") -> Embedder:
        """The appearance model these options name (one place, so config and tracker agree)."""
        return build_embedder(self.embedder, self.embedder_settings(device))

    def build(self, *, device: str = "cpu", record: bool = True, **kwargs: Any) -> Tracker:
        """The tracker these options describe, with its embedder (``device`` for CNNs).

        ``kwargs`` go to the tracker's constructor (an ``embedder`` or policies of your own).
        """
        return TRACKERS.get(self.type)(self, device=device, record=record, **kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> TrackerConfig:
        """Options from YAML: the ``tracker:`` section of a run config, or the whole file."""
        data = load_yaml_mapping(path)
        section: Any = data.get("tracker", {}) if "tracker" in data else data
        prefix = ("tracker",) if "tracker" in data else ()
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise_config_error(str(path), ["tracker: expected mapping"])
        try:
            return cls.model_validate(section)
        except ValidationError as exc:
            raise_config_error(str(path), [format_error(e, prefix) for e in exc.errors()])

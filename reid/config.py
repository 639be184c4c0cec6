"""Options of the tracker stage (``tracker.*``) and the factory that builds the tracker from them.

Cost scale: every cost term lives in about [0, 1] (cosine distance of L2-normalised embeddings,
1 - IoU, a normalised distance), so weights compare directly: ``appearance_weight: 2`` means "a
0.1 change in appearance distance counts like a 0.2 change in IoU".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator

from samtrack.pipeline.core.configbase import (
    MOVED_KEYS,
    StrictModel,
    format_error,
    load_yaml_mapping,
    raise_config_error,
)
from samtrack.pipeline.core.registry import Registry
from samtrack.reid import motion
from samtrack.reid.embedders import Embedder, EmbedderSettings, build_embedder, check_embedder_name
from samtrack.reid.resolvers import RESOLVERS
from samtrack.reid.tracks import Gallery

if TYPE_CHECKING:  # only for annotations: the trackers import this module, not the reverse
    from samtrack.reid.base import Tracker

TrackerFactory = Callable[..., "Tracker"]

#: Tracker types (``tracker.type``). Each tracker module registers its class here, so this
#: module (the options) never imports the trackers that read them.
TRACKERS: Registry[TrackerFactory] = Registry("tracker type", "tracker.type")

MOVED_KEYS.update({
    "tracker.mode": "tracker.identities (online: gallery; offline: offline)",
    "tracker.online_identity_model": "tracker.identities: model",
})


class TrackerConfig(StrictModel):
    type: str = Field(
        default="reid", description="reid: appearance + motion re-identification tracker; iou: "
        "plain IoU Hungarian baseline (no re-identification).")
    identities: str = Field(
        default="gallery", description="Who decides the identity shown: gallery (the "
        "tracker's gallery rules, frame by frame), model (the per-clip identity model online, "
        "once every individual was seen apart) or offline (the per-clip model over the whole "
        "clip with hindsight; outputs are written at the end). See docs/identity-engine.md.")
    num_identities: int | None = Field(
        default=None, ge=1, description="Exactly this many identities exist (\"there are two "
        "sheep\"): tracks are kept forever, and no identity beyond K is created. null: offline "
        "estimates it (summary.json identities.num_identities).")
    online_border_guesses: bool = Field(
        default=True, description="With online_identity_model: show the model's guess for a "
        "returning object while it is still cut by the frame's border. false: it is shown "
        "without an identity until seen whole once; far fewer identity switches, fewer frames "
        "named (measured before online_border_guess_wait, i.e. against a wait of 1: long, "
        "report split: 26 -> 6 switches, IDF1 0.895 -> 0.881; short sets, tune split: IDF1 "
        "0.880 -> 0.854).")
    online_border_guess_wait: float = Field(
        default=1.5, ge=1, description="With online_identity_model: a guess made only on views "
        "cut by the border is shown once it has been the model's best for this many times the "
        "wait the clip calibrated for guesses (1: the same wait; long, tune split: 1 -> 1.5 "
        "-> 2 gave 27 -> 13 -> 7 switches at mean IDF1 0.913 -> 0.908 -> 0.904).")

    # appearance
    embedder: str = Field(default="histogram", description="Appearance embedder: histogram "
                          "(default: best on the look-alike benchmark), mobilenet_v2, sam2, "
                          "torchvision:<arch>, or several joined by '+' "
                          "(mobilenet_v2+histogram).")
    embedder_weights: str | None = Field(default=None, description="Weights file for "
                                         "torchvision:<arch>.")
    embedder_input_size: int = Field(default=128, ge=32, description="CNN input size (px).")
    embedder_align: bool = Field(default=True, description="Rotate crops to the mask's major "
                                 "axis (rotation-invariant features for top-down views).")
    embedder_flip_average: bool = Field(default=False, description="Also embed the crop turned "
                                        "180 degrees and average (more robust, 2x the work).")
    gallery_size: int = Field(default=Gallery.SIZE, ge=1, le=1000,
        description="Distinct embeddings kept per "
                              "track besides its running average.")
    gallery_ema: float = Field(default=Gallery.EMA, ge=0, lt=1,
        description="Weight of the past in the "
                               "running-average embedding.")
    gallery_min_distance: float = Field(default=Gallery.MIN_DISTANCE, ge=0,
        description="A new embedding enters "
                                        "the bank only if this far from all in it.")

    # association costs
    appearance_weight: float = Field(default=1.0, ge=0, description="Weight of the appearance "
                                     "distance.")
    motion_weight: float = Field(default=1.0, ge=0, description="Weight of 1 - IoU between the "
                                 "mask and the track's last mask moved by the predicted motion.")
    source_id_bonus: float = Field(default=0.3, ge=0, description="Cost reduction when the mask "
                                   "carries the source id the track last had (a hint, not a "
                                   "rule: swaps are repaired when appearance/motion disagree).")
    min_motion_iou: float = Field(
        default=0.1, ge=0, le=1, description="Least overlap with the track's predicted mask "
        "for a match made on motion alone: low-score masks, and every mask when there is no "
        "appearance (boxes without images). Without appearance, a box that does not overlap "
        "where a track should be is as likely a neighbour as the track itself (SORT and "
        "ByteTrack require overlap for the same reason); with appearance, a nearby mask that "
        "looks right may still match (a dropped frame, a fast turn).")
    reach: float = Field(default=0.5, ge=0, description="A confident mask left unmatched "
                         "continues a tracklet seen in the previous frame and left unmatched whose "
                         "last centroid lies within this many of its own box diagonals, when "
                         "it looks alike and is of similar area "
                         "(objects that move in bursts leave the motion model's gate); 0: off.")
    crossings: Literal["motion", "off"] = Field(
        default="motion", description="When objects that touched are apart again, the "
        "identities that went in are matched to the objects that came out by where each was "
        "heading (reid.tracker.ReidTracker._follow_crossings); off: the masks' frame-to-frame "
        "matches stand.")
    max_cost: float = Field(default=1.2, gt=0, description="Pairs costing more never match "
                            "in view.")
    appearance_gate: float = Field(default=0.45, gt=0, description="Appearance distance above "
                                   "which a pair is impossible unless motion IoU >= 0.5.")
    gate_chi2: float = Field(default=13.3, gt=0, description="Squared Mahalanobis distance of "
                             "the box centre above which a pair is impossible.")

    # motion model (constant-velocity Kalman filter; noise as a fraction of the box height)
    kalman_position_noise: float = Field(
        default=motion.POSITION_NOISE, gt=0,
        description="Process noise of the box position per frame.")
    kalman_velocity_noise: float = Field(
        default=motion.VELOCITY_NOISE, gt=0,
        description="Process noise of the velocity per frame: how fast the filter follows an "
        "object that speeds up (a car nearing a moving camera). On MOT15's public detections "
        "0.01 lagged behind such cars on KITTI-13 (10 ID switches; 0.02: 3).")
    kalman_measurement_noise: float = Field(
        default=motion.MEASUREMENT_NOISE, gt=0,
        description="Noise of a measured box (detector/mask jitter).")

    # scores (two stages like ByteTrack)
    high_score: float = Field(default=0.7, ge=0, le=1, description="Masks scoring at least this "
                              "are matched first, on appearance and motion, and may start new "
                              "tracks (0.7 as ByteTrack's activation threshold: on MOT15's "
                              "public detections 0.5 gave 64 ID switches, 0.7 gave 46).")
    low_score: float = Field(default=0.1, ge=0, le=1, description="Masks below this are "
                             "ignored; between the two they only extend tracks, by motion.")

    # life cycle
    min_hits: int = Field(default=2, ge=1, description="Matches before a new track is confirmed "
                          "and reported (tracks of the first frame are confirmed at once).")
    motion_horizon: int = Field(default=8, ge=0, description="Frames a lost tracklet stays in "
                                "the in-view association; after that its identity is absent "
                                "and only re-entry can bring it back.")
    max_age: int = Field(default=600, ge=1, description="Frames an unmatched track is remembered "
                         "for re-entry (ignored with num_identities: kept forever).")
    border_margin: int = Field(default=3, ge=0, description="A mask within this many pixels of "
                               "the frame edge touches the border (exits, partial views).")

    # re-entry
    reentry: bool = Field(default=True, description="Give an object that comes back into view "
                          "the identity it had before it left. Off: every object that returns "
                          "after motion_horizon frames gets a new identity, as in plain MOT "
                          "trackers; right where what leaves seldom comes back (a street: on "
                          "MOT15's TUD-Campus, 4 of 6 restored identities went to another "
                          "person). The samtrack.eval.bench.mot15_loo benchmark chooses it per "
                          "left-out sequence. Offline linking and the online identity model "
                          "join fragments by appearance whatever this says.")
    reentry_max_cost: float = Field(default=0.55, gt=0, description="A returning mask restores "
                                    "an old identity only below this cost; else it is new.")
    reentry_position_weight: float = Field(default=0.5, ge=0, description="Weight of the "
                                           "distance between where a track left and where the "
                                           "mask appears (fraction of the frame diagonal).")
    border_appearance_weight: float = Field(default=0.3, ge=0, description="Re-entry of a mask "
                                            "touching the border: its appearance counts this "
                                            "much (and is not gated); verified later.")
    reentry_appearance_gate: float = Field(default=0.6, gt=0, description="Appearance distance "
                                           "above which re-entry is impossible.")
    reentry_contrast: float | None = Field(
        default=0.5, gt=0, description="A fully visible returning object keeps an old "
        "identity only if its appearance distance is below this fraction of how far apart "
        "distinct objects in this video look (the 10th percentile of distances between objects "
        "seen at the same time; see reid.contrast). Where everything looks alike (pedestrians "
        "under a colour histogram) this stops passers-by from taking departed identities. "
        "null: only reentry_appearance_gate.")

    # verification of provisional identities
    verify_frames: int = Field(default=3, ge=1, description="Clean (fully visible, apart from "
                               "others) frames seen before a restored identity is verified.")
    verify_timeout: int = Field(default=40, ge=1, description="Frames after which a restored "
                                "identity is kept even without enough clean views.")
    verify_ratio: float = Field(default=0.7, gt=0, le=1, description="Provisional identities "
                                "are re-assigned only if the new assignment's total appearance "
                                "distance is below this fraction of the current one...")
    verify_margin: float = Field(default=0.005, ge=0, description="...and lower by at least "
                                 "this much (distances are tiny between clean views of one "
                                 "animal, so a ratio alone would act on noise).")

    hold_contested: Literal["margin", "source", "off"] = Field(
        default="margin", description="Do not report a restored identity while it is contested, "
        "until verified: a few unlabelled frames instead of a wrong label and two ID switches "
        "(offline linking fills them in). margin: contested when the source id points elsewhere, "
        "or another absent identity is nearly as likely on appearance and position and the "
        "source id cannot settle it (it settles it only while the source has never been caught "
        "erring: no duplicate, renamed, swapped or brand-new id on a returning object so far); "
        "source: only when the source id does not agree; off: always report at once.")
    hold_margin: float = Field(default=0.1, ge=0, description="Cost margin to the runner-up "
                               "below which a re-entry decision is contested.")

    # duplicates
    duplicate_containment: float = Field(default=0.8, gt=0, le=1, description="Two masks whose "
                                         "overlap covers this fraction of the smaller are one "
                                         "object: the smaller (or lower-scored) is dropped.")

    duplicate_iou: float | None = Field(
        default=None, gt=0, le=1, description="Two masks overlapping with at least this IoU "
        "are one object: the higher-scored stays (non-maximum suppression, for detectors that "
        "leave several boxes on one object). null: off.")

    # plain IoU baseline (type: iou)
    iou_threshold: float = Field(default=0.2, ge=0, le=1, description="type iou: minimum box "
                                 "IoU to continue a track.")

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

    # ------------------------------------------------------------------ building
    def embedder_settings(self, device: str = "cpu") -> EmbedderSettings:
        return EmbedderSettings(weights=self.embedder_weights, input_size=self.embedder_input_size,
                                device=device, align=self.embedder_align,
                                flip_average=self.embedder_flip_average)

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

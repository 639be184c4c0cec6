"""samtrack re-identification: appearance embeddings, motion, association and identity repair.

Importing the package registers the tracker types (``tracker.type``: reid, iou).
"""

from samtrack.reid import iou_tracker, tracker  # noqa: F401  (registration)
from samtrack.reid.base import Tracker, TrackResult
from samtrack.reid.config import TrackerConfig
from samtrack.reid.iou_tracker import IouTracker
from samtrack.reid.repairs import RepairEvent
from samtrack.reid.resolvers import RESOLVERS, IdentityResolver
from samtrack.reid.tracker import ReidTracker

__all__ = ["RESOLVERS", "IdentityResolver", "IouTracker", "ReidTracker", "RepairEvent",
           "TrackResult", "Tracker", "TrackerConfig"]

"""Point ground truth: one point per animal and frame, as animal-tracking tools record it.

Most animal-tracking ground truth is points, not masks: SLEAP's ``.slp`` keypoints,
idtracker.ai's ``trajectories.npy`` centroids, CSV exports (DeepLabCut, TRex, a spreadsheet).
Each animal's point in a frame is the mean of its visible keypoints (a centroid file has one).

Scoring rule (:func:`point_similarity`): a predicted mask matches an animal when the animal's
point lies inside the mask, or within ``radius`` pixels of it. The similarity the metrics see
is 1 inside the mask and falls linearly to 0.5 at ``radius`` (0 beyond), so the usual match
threshold of 0.5 means "within the radius"; HOTA's stricter thresholds ask for a point nearer
the mask, or inside it.

Formats read (frames are 1-based inside samtrack, as in MOTChallenge):

* ``.slp`` (SLEAP, read with sleap-io): instances with a track; frame = ``frame_idx`` (0-based).
* ``.csv`` with a header naming ``frame``, an id column (``track_id``, ``track``, ``id`` or
  ``individual``), ``x`` and ``y`` (optional ``visible``): one row per keypoint or per animal;
  frames 0-based (SLEAP's and DeepLabCut's exports) unless ``frame_base`` says 1.
* ``.npy`` from idtracker.ai (a dict with ``trajectories``: frames x animals x 2, NaN where
  unknown): frames 0-based, ids 1..N.
* ``.txt`` with four columns ``frame,id,x,y`` (``#`` comment lines allowed): frames 1-based,
  as MOTChallenge files are.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from samtrack.pipeline.core.formats import FormatError

POINT_SUFFIXES = (".slp", ".csv", ".npy")
ID_COLUMNS = ("track_id", "track", "id", "individual", "identity")
DEFAULT_RADIUS = 10.0  # px: a point this near a mask still counts as on it (eval.radius)


def is_point_file(path: Path) -> bool:
    """Whether ``path`` holds point ground truth (by suffix, or a 4-column txt)."""
    if path.suffix.lower() in POINT_SUFFIXES:
        return True
    if path.suffix.lower() != ".txt" or not path.is_file():
        return False
    with path.open(errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                return len(line.replace(" ", ",").split(",")) == 4
    return False


def read_points(path: Path) -> dict[int, dict[int, np.ndarray]]:
    """``{1-based frame: {animal id: (x, y)}}`` from any supported point file."""
    suffix = path.suffix.lower()
    if suffix == ".slp":
        keypoints = _from_slp(path)
    elif suffix == ".csv":
        keypoints = _from_csv(path)
    elif suffix == ".npy":
        keypoints = _from_idtracker(path)
    else:
        keypoints = _from_txt(path)
    out: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
    for (frame, animal), points in keypoints.items():
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts):
            out[frame][animal] = pts.mean(axis=0)
    if not out:
        raise FormatError(f"{path}: no point with finite coordinates")
    return dict(out)


def _from_slp(path: Path) -> dict[tuple[int, int], list]:
    import sleap_io

    try:
        labels = sleap_io.load_slp(str(path))
    except Exception as exc:  # h5py/sleap-io raise many kinds on a foreign file
        raise FormatError(f"{path}: not a SLEAP labels file ({exc})") from None
    track_ids = {id(track): k + 1 for k, track in enumerate(labels.tracks)}
    out: dict[tuple[int, int], list] = defaultdict(list)
    for frame in labels.labeled_frames:
        for instance in frame.instances:
            if instance.track is None:
                continue
            points = instance.numpy()
            out[(int(frame.frame_idx) + 1, track_ids[id(instance.track)])].extend(points)
    if not out:
        raise FormatError(f"{path}: no tracked instance (ground truth needs tracks)")
    return out


def _from_csv(path: Path) -> dict[tuple[int, int], list]:
    out: dict[tuple[int, int], list] = defaultdict(list)
    names: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig", errors="strict") as fh:
        try:
            reader = csv.DictReader(fh)
            columns = {c.strip().lower(): c for c in reader.fieldnames or []}
            id_column = next((columns[c] for c in ID_COLUMNS if c in columns), None)
            missing = [c for c in ("frame", "x", "y") if c not in columns]
            if missing or id_column is None:
                raise FormatError(f"{path}: a point CSV needs columns frame, track_id (or id, "
                                  f"track, individual), x and y; missing "
                                  f"{', '.join(missing) or 'an id column'}")
            for line, row in enumerate(reader, start=2):
                if str(row.get(columns.get("visible", ""), "1")).strip() in ("0", "False",
                                                                             "false"):
                    continue
                try:
                    frame = int(float(row[columns["frame"]]))
                    animal = _animal_id(row[id_column], names)
                    xy = (float(row[columns["x"]]), float(row[columns["y"]]))
                except (TypeError, ValueError):
                    raise FormatError(f"{path}:{line}: expected numbers in frame, id, x, "
                                      "y") from None
                out[(frame + 1, animal)].append(xy)
        except UnicodeDecodeError:
            raise FormatError(f"{path}: not a UTF-8 text file") from None
    return out


def _animal_id(value: str, names: dict[str, int]) -> int:
    """Numeric ids as they are; names (``female``, ``M``) numbered in order of appearance."""
    try:
        return int(float(value))
    except ValueError:
        return names.setdefault(value, 10_000 + len(names))


def _from_idtracker(path: Path) -> dict[tuple[int, int], list]:
    try:
        data = np.load(path, allow_pickle=True)
        data = data.item() if data.dtype == object else {"trajectories": data}
        trajectories = np.asarray(data["trajectories"], np.float64)
    except Exception as exc:
        raise FormatError(f"{path}: not an idtracker.ai trajectories file ({exc})") from None
    if trajectories.ndim != 3 or trajectories.shape[2] != 2:
        raise FormatError(f"{path}: trajectories must be frames x animals x 2, got "
                          f"{trajectories.shape}")
    out: dict[tuple[int, int], list] = {}
    for frame, animal in zip(*np.nonzero(np.isfinite(trajectories).all(axis=2)), strict=True):
        out[(int(frame) + 1, int(animal) + 1)] = [trajectories[frame, animal]]
    return out


def _from_txt(path: Path) -> dict[tuple[int, int], list]:
    out: dict[tuple[int, int], list] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a UTF-8 text file") from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(" ", ",").split(",")
        try:
            frame, animal, x, y = int(float(parts[0])), int(float(parts[1])), float(parts[2]), \
                float(parts[3])
        except (ValueError, IndexError):
            raise FormatError(f"{path}:{number}: expected frame,id,x,y") from None
        out[(frame, animal)] = [(x, y)]
    return out


# --------------------------------------------------------------------------- scoring
def point_similarity(points: np.ndarray, rles: list[dict], image_size: tuple[int, int],
                     radius: float = DEFAULT_RADIUS) -> np.ndarray:
    """``(len(points), len(rles))``: 1 where the point lies inside the mask, falling linearly
    to 0.5 at ``radius`` px from it, 0 beyond (see the module docstring)."""
    out = np.zeros((len(points), len(rles)))
    if not len(points) or not len(rles):
        return out
    h, w = image_size
    masks = coco_mask.decode(list(rles))  # (H, W, N)
    reach = int(np.ceil(radius)) + 1
    for i, (x, y) in enumerate(points):
        xi, yi = round(float(x)), round(float(y))
        x1, x2 = max(xi - reach, 0), min(xi + reach + 1, w)
        y1, y2 = max(yi - reach, 0), min(yi + reach + 1, h)
        if x2 <= x1 or y2 <= y1:
            continue
        window = masks[y1:y2, x1:x2]
        for j in range(len(rles)):
            ys, xs = np.nonzero(window[:, :, j])
            if not len(xs):
                continue
            if 0 <= yi < h and 0 <= xi < w and masks[yi, xi, j]:
                out[i, j] = 1.0
                continue
            d = float(np.min(np.hypot(xs + x1 - x, ys + y1 - y)))
            if d <= radius:
                out[i, j] = 1.0 - 0.5 * d / max(radius, 1e-9)
    return out

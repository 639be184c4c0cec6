"""``samtrack export``: a finished run in the formats other tools load.

Every exporter reads the run folder's ID maps (``masks/*.png``, the masks with their final
identities) and writes one file:

========== ====================== ============================================================
format     file                   for
========== ====================== ============================================================
csv        trajectories.csv       pandas, R, spreadsheets: one row per frame and identity
npz        trajectories.npz       NumPy: idtracker.ai's ``trajectories`` array (frames x ids x
                                  2, NaN where unseen) beside boxes, areas, visibility
h5         trajectories.h5        the same arrays as HDF5 datasets (h5py, MATLAB, TRex users)
slp        tracks.slp             SLEAP / sleap-io: one centroid node per animal, one track per
                                  identity, proofread in SLEAP's GUI
coco       coco.json              COCO video instances with RLE masks (pycocotools); image
                                  ``frame_id``, annotation ``track_id``
cvat       cvat.xml               CVAT for video 1.1: one track per identity, polygons per
                                  frame, ``outside`` where the identity is not in view
========== ====================== ============================================================

Identities are the run's track ids; the centroid is the mask's centre of mass, the box is the
mask's tight box (x2/y2 exclusive). A new format is a function ``(run, path)`` and one
:func:`register_exporter` call.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from samtrack.pipeline.core.errors import UserError
from samtrack.pipeline.core.formats import id_map_files, read_id_map
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.registry import Registry
from samtrack.pipeline.core.runformat import MASKS, has_summary, read_summary, run_status


class ExportError(UserError):
    pass


@dataclass(frozen=True)
class ExporterSpec:
    write: Callable[[ExportRun, Path], None]
    filename: str
    description: str


EXPORTERS: Registry[ExporterSpec] = Registry("export format", "--format")


def register_exporter(name: str, write: Callable[[ExportRun, Path], None], filename: str,
                      description: str) -> None:
    EXPORTERS.register(name, ExporterSpec(write, filename, description))


@dataclass
class Trajectories:
    """Per frame and identity (``T`` frames x ``K`` identities): what trajectory files hold."""

    ids: np.ndarray  # (K,) track ids
    frames: np.ndarray  # (T,) frame indices
    time: np.ndarray  # (T,) seconds from the first frame
    centroids: np.ndarray  # (T, K, 2) x, y; NaN where not visible
    boxes: np.ndarray  # (T, K, 4) x1, y1, x2, y2; NaN where not visible
    areas: np.ndarray  # (T, K) pixels; 0 where not visible
    visible: np.ndarray  # (T, K) bool


class ExportRun:
    """A finished (or interrupted) run folder, read frame by frame from its ID maps."""

    def __init__(self, folder: str | Path, *, progress: bool = True) -> None:
        self.folder = Path(folder)
        if not has_summary(self.folder):
            raise ExportError(f"{self.folder}: not a samtrack run folder (no summary.json)")
        state, why = run_status(self.folder)
        if state == "unfinished":
            raise ExportError(f"{self.folder}: run did not finish ({why})")
        self.summary = read_summary(self.folder)
        if not (self.folder / MASKS).is_dir():
            raise ExportError(f"{self.folder / MASKS}: missing (run with id_maps in "
                              "output.writers)")
        files = id_map_files(self.folder / MASKS)
        from natsort import natsorted

        self.names = natsorted(files)
        self.files = [files[name] for name in self.names]
        if not self.files:
            raise ExportError(f"{self.folder / MASKS}: no ID maps")
        self.fps = float(self.summary.get("fps") or 25.0)
        self.video = str(self.summary.get("video", ""))
        self.progress = progress
        self._trajectories: Trajectories | None = None

    def __len__(self) -> int:
        return len(self.files)

    def frames(self, what: str = "") -> Iterator[FrameObjects]:
        """Each frame's objects, ``source_ids`` and ``track_ids`` both the run's identity."""
        bar = tqdm(self.files, desc=what or "reading", unit="frame", leave=False,
                   disable=not self.progress)
        for index, (name, path) in enumerate(zip(self.names, bar, strict=True)):
            objects = FrameObjects.from_id_map(read_id_map(path), frame_index=index,
                                               frame_name=name)
            yield objects.with_track_ids(objects.source_ids)

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.summary.get("image_size")
        if size:
            return int(size[0]), int(size[1])
        return read_id_map(self.files[0]).shape[:2]

    def trajectories(self) -> Trajectories:
        if self._trajectories is not None:
            return self._trajectories
        rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for objects in self.frames("trajectories"):
            rows.append((objects.frame_index, objects.track_ids.copy(), objects.centroids,
                         objects.boxes, objects.areas))
        ids = np.array(sorted({int(i) for _, tids, *_ in rows for i in tids}), np.int64)
        column = {int(i): k for k, i in enumerate(ids)}
        t, k = len(rows), len(ids)
        centroids = np.full((t, k, 2), np.nan)
        boxes = np.full((t, k, 4), np.nan)
        areas = np.zeros((t, k), np.int64)
        for row, (_, tids, cents, bxs, ars) in enumerate(rows):
            cols = [column[int(i)] for i in tids]
            centroids[row, cols] = cents
            boxes[row, cols] = bxs
            areas[row, cols] = ars
        frames = np.array([r[0] for r in rows], np.int64)
        self._trajectories = Trajectories(ids, frames, frames / self.fps, centroids, boxes,
                                          areas, areas > 0)
        return self._trajectories


def export(folder: str | Path | ExportRun, fmt: str, out: str | Path | None = None, *,
           overwrite: bool = False, progress: bool = True) -> Path:
    """Write run ``folder`` as format ``fmt`` to ``out`` (default ``<run>/exports/<file>``).

    Pass an :class:`ExportRun` to write several formats from one reading of the run.

    The file is written beside its final name and renamed into place, so a failed export
    leaves no file that looks complete; an existing file is kept unless ``overwrite``."""
    spec = EXPORTERS.get(fmt)
    run = folder if isinstance(folder, ExportRun) else ExportRun(folder, progress=progress)
    path = Path(out) if out is not None else run.folder / "exports" / spec.filename
    if path.is_dir():
        path = path / spec.filename
    if path.exists() and not overwrite:
        raise ExportError(f"{path}: exists (pass --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        spec.write(run, partial)
        os.replace(partial, path)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        if partial.exists():
            partial.unlink()
    return path


# --------------------------------------------------------------------------- trajectories
def write_csv(run: ExportRun, path: Path) -> None:
    """Long format: ``frame,time,id,visible,x,y,x1,y1,x2,y2,area``, one row per frame and
    identity (unseen rows kept, visible 0, so every identity has every frame)."""
    tr = run.trajectories()
    with path.open("w") as fh:
        fh.write("frame,time,id,visible,x,y,x1,y1,x2,y2,area\n")
        for row, frame in enumerate(tr.frames):
            for col, tid in enumerate(tr.ids):
                if tr.visible[row, col]:
                    x, y = tr.centroids[row, col]
                    x1, y1, x2, y2 = tr.boxes[row, col]
                    fh.write(f"{frame},{tr.time[row]:.6g},{tid},1,{x:.3f},{y:.3f},{x1:.0f},"
                             f"{y1:.0f},{x2:.0f},{y2:.0f},{tr.areas[row, col]}\n")
                else:
                    fh.write(f"{frame},{tr.time[row]:.6g},{tid},0,,,,,,,0\n")


def _arrays(run: ExportRun) -> dict[str, np.ndarray]:
    tr = run.trajectories()
    return {"trajectories": tr.centroids, "boxes": tr.boxes, "areas": tr.areas,
            "visible": tr.visible, "ids": tr.ids, "frames": tr.frames, "time": tr.time,
            "frames_per_second": np.float64(run.fps)}


def write_npz(run: ExportRun, path: Path) -> None:
    with path.open("wb") as fh:  # np.savez on a path would append .npz to the temp name
        np.savez_compressed(fh, **_arrays(run))


def write_h5(run: ExportRun, path: Path) -> None:
    import h5py  # only exports to HDF5 pay for its import

    with h5py.File(path, "w") as h5:
        for key, value in _arrays(run).items():
            h5.create_dataset(key, data=value)
        h5.attrs["video"] = run.video
        h5.attrs["layout"] = "trajectories[frame, identity, (x, y)], NaN where not visible"


# --------------------------------------------------------------------------- SLEAP
def write_slp(run: ExportRun, path: Path) -> None:
    """One ``centroid`` node per animal, one SLEAP track per identity (``id_<n>``)."""
    import sleap_io as sio

    tr = run.trajectories()
    skeleton = sio.Skeleton(["centroid"], name="samtrack")
    tracks = {int(i): sio.Track(name=f"id_{int(i)}") for i in tr.ids}
    h, w = run.image_size
    video = sio.Video(filename=run.video or "video.mp4", backend_metadata={"shape": (
        len(tr.frames), h, w, 3)}, open_backend=False)
    labelled = []
    for row, frame in enumerate(tr.frames):
        instances = [
            sio.Instance.from_numpy(tr.centroids[row, col][None], skeleton=skeleton,
                                    track=tracks[int(tid)])
            for col, tid in enumerate(tr.ids) if tr.visible[row, col]]
        if instances:
            labelled.append(sio.LabeledFrame(video=video, frame_idx=int(frame),
                                             instances=instances))
    labels = sio.Labels(labeled_frames=labelled, videos=[video], skeletons=[skeleton],
                        tracks=list(tracks.values()))
    sio.save_slp(labels, str(path), embed=False, verbose=False)


# --------------------------------------------------------------------------- COCO, CVAT
def write_coco(run: ExportRun, path: Path) -> None:
    """COCO with video fields (as YouTube-VIS / TAO): one image per frame with ``video_id``
    and ``frame_id``, one annotation per mask with its RLE, ``bbox`` xywh and ``track_id``."""
    h, w = run.image_size
    images, annotations = [], []
    for objects in run.frames("coco"):
        image_id = objects.frame_index + 1
        images.append({"id": image_id, "file_name": f"{objects.frame_name}.jpg", "height": h,
                       "width": w, "video_id": 1, "frame_id": objects.frame_index})
        for i, rle in enumerate(objects.rles):
            x1, y1, x2, y2 = (float(v) for v in objects.boxes[i])
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                "area": int(objects.areas[i]), "bbox": [x1, y1, x2 - x1, y2 - y1],
                "iscrowd": 0, "track_id": int(objects.track_ids[i])})
    data = {"info": {"description": f"samtrack run {run.folder.name}", "video": run.video},
            "videos": [{"id": 1, "name": Path(run.video).name or run.folder.name,
                        "width": w, "height": h, "length": len(images)}],
            "categories": [{"id": 1, "name": "object"}], "images": images,
            "annotations": annotations}
    path.write_text(json.dumps(data))


def _outline(patch: np.ndarray, origin: tuple[int, int]) -> np.ndarray | None:
    """The outer outline of a mask's largest piece; a sliver too thin for a polygon (a line
    of pixels at the frame's edge) gets its box, so no visible mask goes missing."""
    if not patch.any():
        return None
    contours, _ = cv2.findContours(patch.view(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = [c[:, 0] for c in contours if len(c) >= 3 and cv2.contourArea(c) > 0]
    if polygons:
        outline = max(polygons, key=cv2.contourArea)
    else:
        h, w = patch.shape
        outline = np.array([[0, 0], [w, 0], [w, h], [0, h]])
    return outline + np.array(origin)


def write_cvat(run: ExportRun, path: Path) -> None:
    """CVAT for video 1.1: a track per identity whose shapes are the mask's outer outline
    (its largest piece; CVAT tracks hold one shape per frame), a keyframe wherever seen and
    ``outside="1"`` on the first frame it is gone, as CVAT writes a track leaving view."""
    h, w = run.image_size
    shapes: dict[int, list[tuple[int, np.ndarray | None]]] = {}
    last_seen: dict[int, int] = {}
    for objects in run.frames("cvat"):
        frame = objects.frame_index
        for i, (patch, origin) in enumerate(objects.crops):
            outline = _outline(patch, origin)
            if outline is None:
                continue
            tid = int(objects.track_ids[i])
            if tid in last_seen and last_seen[tid] < frame - 1:
                shapes[tid].append((last_seen[tid] + 1, None))  # out of view in between
            shapes.setdefault(tid, []).append((frame, outline))
            last_seen[tid] = frame
    final = len(run) - 1
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(meta, "name").text = run.folder.name
    ET.SubElement(meta, "size").text = str(len(run))
    ET.SubElement(meta, "mode").text = "interpolation"
    ET.SubElement(meta, "start_frame").text = "0"
    ET.SubElement(meta, "stop_frame").text = str(final)
    label = ET.SubElement(ET.SubElement(meta, "labels"), "label")
    ET.SubElement(label, "name").text = "object"
    size = ET.SubElement(meta, "original_size")
    ET.SubElement(size, "width").text = str(w)
    ET.SubElement(size, "height").text = str(h)
    for number, tid in enumerate(sorted(shapes)):
        track = ET.SubElement(root, "track", id=str(number), label="object", source="samtrack")
        ET.SubElement(track, "attribute", name="samtrack_id").text = str(tid)
        previous: np.ndarray | None = None
        for frame, polygon in shapes[tid]:
            if polygon is None:
                _polygon_element(track, frame, previous, outside=True)
            else:
                _polygon_element(track, frame, polygon, outside=False)
                previous = polygon
        if last_seen[tid] < final:
            _polygon_element(track, last_seen[tid] + 1, previous, outside=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _polygon_element(track: ET.Element, frame: int, polygon: np.ndarray | None,
                     *, outside: bool) -> None:
    points = ";".join(f"{x:.2f},{y:.2f}" for x, y in polygon) if polygon is not None else ""
    ET.SubElement(track, "polygon", frame=str(frame), outside=str(int(outside)), occluded="0",
                  keyframe="1", points=points, z_order="0")


register_exporter("csv", write_csv, "trajectories.csv",
                  "one row per frame and identity: centroid, box, area, visible")
register_exporter("npz", write_npz, "trajectories.npz",
                  "NumPy arrays: trajectories (frames x ids x 2, NaN unseen), boxes, areas")
register_exporter("h5", write_h5, "trajectories.h5", "the npz arrays as HDF5 datasets")
register_exporter("slp", write_slp, "tracks.slp",
                  "SLEAP labels: a centroid node per animal, a track per identity")
register_exporter("coco", write_coco, "coco.json",
                  "COCO video instances with RLE masks and track_id")
register_exporter("cvat", write_cvat, "cvat.xml",
                  "CVAT for video 1.1: a polygon track per identity")

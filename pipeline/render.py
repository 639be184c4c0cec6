"""``samtrack viz``: turn a run folder into pictures that show who went where.

Outputs (in ``<run>/viz`` unless ``--out``):

* ``trails.mp4``: each identity's mask tinted in its palette colour (alpha ``OVERLAY_ALPHA``),
  outlined, labelled at its centroid, with a fading trail of its last ``trail_length`` centroids;
  at a repair event the label says so for ``label_frames`` frames ("3 restored",
  "2<->5 swap fixed"). ``side_by_side``: the source's raw ids left, samtrack's right.
* ``trails.png``: every identity's whole path over the middle frame; entries (o) and exits (x)
  at the frame border marked.
* ``timeline.png``: one row per identity, bars where visible, markers at repair events; with
  ground truth a second panel with ground-truth identities coloured by the predicted id that
  covered them (every ID switch is a colour change, marked).
* ``gallery.png``: per identity a strip of mask-cropped thumbnails over time.
* ``binary.mp4`` (on request): one identity (or the largest object) white on black.

Rendering streams frame by frame: nothing holds the whole clip.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from samtrack.eval.data import load_tracks
from samtrack.eval.metrics import accumulate, switch_report
from samtrack.eval.pairing import pair_sequences
from samtrack.pipeline.config import VizConfig
from samtrack.pipeline.core.errors import UserError
from samtrack.pipeline.core.formats import FormatError, id_map_files, read_id_map, read_mots_txt
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.runformat import MASKS, SUMMARY, has_summary, read_summary, run_status
from samtrack.pipeline.core.video import VideoReader
from samtrack.pipeline.viz import (
    DEFAULT_ANNOTATORS,
    OVERLAY_ALPHA,
    VideoSink,
    draw_overlay,
    id_color,
    largest_object_mask,
)

LABEL_FRAMES = 25
THUMB = 64


log = logging.getLogger(__name__)

class RunFolderError(UserError):
    pass


@dataclass
class RunData:
    folder: Path
    summary: dict
    masks: dict[str, Path]
    video: VideoReader
    source_rows: dict[int, list] = field(default_factory=dict)  # 1-based frame -> MOTS rows

    @property
    def repairs(self) -> list[dict]:
        return self.summary.get("repairs", [])


def load_run(folder: str | Path, video: str | Path | None = None, *,
             allow_incomplete: bool = False) -> RunData:
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: no such run folder")
    if not has_summary(folder):
        raise RunFolderError(f"{folder}: not a samtrack run folder (no {SUMMARY})")
    summary = read_summary(folder)
    state, why = run_status(folder)
    if state == "unfinished" and not allow_incomplete:
        raise RunFolderError(f"{folder}: run did not finish ({why}); pass --allow-incomplete "
                             "to render the frames written so far")
    if state != "complete":
        log.warning("%s: partial run (%s); rendering the frames written so far", folder, why)
    if not (folder / MASKS).is_dir():
        raise RunFolderError(f"{folder / MASKS}: missing (run with id_maps in output.writers)")
    masks = id_map_files(folder / MASKS)
    if state == "complete" and len(masks) != summary.get("frames"):
        raise RunFolderError(f"{folder / MASKS}: {len(masks)} ID maps but {SUMMARY} "
                             f"says {summary.get('frames')} frames")
    path = Path(video or summary.get("video", ""))
    if not path.exists():
        raise RunFolderError(f"{path}: the run's video is missing (give --video)")
    reader = VideoReader(path, fps=summary.get("fps"))
    rows: dict[int, list] = defaultdict(list)
    if (folder / "source_mots.txt").is_file():
        for row in read_mots_txt(folder / "source_mots.txt"):
            rows[row.frame].append(row)
    return RunData(folder, summary, masks, reader, dict(rows))


def _repair_labels(repairs: list[dict]) -> dict[int, list[tuple[int, str]]]:
    """frame -> [(identity to label, text)] for every frame a repair label is shown."""
    out: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for e in repairs:
        kind, new, old = e["kind"], e["new_track"], e["old_track"]
        if new <= 0:
            continue
        if kind == "restored":
            text = f"{new} restored"
        elif kind == "swap_fixed":
            text = f"{old}<->{new} swap fixed"
        elif kind == "reassigned":
            text = f"{old}->{new} corrected"
        else:
            continue
        for f in range(e["frame"], e["frame"] + LABEL_FRAMES):
            out[f].append((new, text))
    return out


def repair_labels_at(repairs: list[dict], frame: int) -> list[tuple[int, str]]:
    return _repair_labels(repairs).get(frame, [])


def _text(img, text, org, scale=0.5, color=(255, 255, 255)):
    """``text`` in ``color`` with a dark outline, legible on any background. The outline is
    the same thin text shifted a pixel each way: OpenCV widens a Hershey glyph's advance
    with the stroke, so a thicker copy beneath drifts right of the text along a line."""
    x, y = org
    for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
        cv2.putText(img, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _source_objects(run: RunData, frame_index: int, size) -> FrameObjects:
    rows = run.source_rows.get(frame_index + 1, [])
    return FrameObjects.from_rles([r.rle for r in rows], size, frame_index=frame_index,
                                  source_ids=[r.id for r in rows])


@dataclass
class VizOptions:
    """What ``render`` draws; the defaults are ``viz.*``'s (:class:`VizConfig`)."""

    out: Path | None = None
    trail_length: int = VizConfig.model_fields["trail_length"].default
    side_by_side: bool = VizConfig.model_fields["side_by_side"].default
    scale: float = VizConfig.model_fields["scale"].default
    annotators: tuple[str, ...] = DEFAULT_ANNOTATORS
    binary: bool = False
    binary_id: int | None = None
    gt: str | None = None
    progress: bool = False  # a progress bar on stderr (the CLI turns it on)


def render(run_dir: str | Path, options: VizOptions | None = None,
           video: str | Path | None = None, *, allow_incomplete: bool = False,
           ) -> dict[str, Path]:
    """Render every picture of a run; returns ``{name: path}``. An interrupted run renders
    with a warning (its frames so far); an unfinished one only with ``allow_incomplete``."""
    options = options or VizOptions()
    run = load_run(run_dir, video, allow_incomplete=allow_incomplete)
    out = options.out or (run.folder / "viz")
    out.mkdir(parents=True, exist_ok=True)
    if options.side_by_side and not run.source_rows:
        raise RunFolderError(f"{run.folder / 'source_mots.txt'}: missing, needed for "
                             "--side-by-side")
    labels = _repair_labels(run.repairs)
    fps = float(run.summary.get("fps") or run.video.fps)
    trails_sink = VideoSink(out / "trails.mp4", fps)
    binary_sink = VideoSink(out / "binary.mp4", fps) if options.binary else None
    history: dict[int, deque] = defaultdict(lambda: deque(maxlen=options.trail_length))
    paths: dict[int, list[tuple[int, float, float, bool]]] = defaultdict(list)
    visible: dict[int, list[int]] = defaultdict(list)
    thumbs: dict[int, list[np.ndarray]] = defaultdict(list)
    edge_thumbs: dict[int, list[np.ndarray]] = defaultdict(list)  # views cut by the border
    middle = None
    count = 0
    total = run.summary.get("frames", 0)
    bar = tqdm(total=total, desc="samtrack viz", unit="frame", leave=False,
               disable=not options.progress)
    try:
        for frame in run.video:
            file = run.masks.get(frame.name)
            if file is None:
                continue
            id_map = read_id_map(file)
            if id_map.shape != frame.image.shape[:2]:
                raise FormatError(f"{file}: size differs from video frame {frame.name}")
            objects = FrameObjects.from_id_map(id_map, frame_index=frame.index)
            objects = objects.with_track_ids(objects.source_ids)
            h, w = id_map.shape
            centroids = objects.centroids
            for i, tid in enumerate(objects.track_ids.tolist()):
                cx, cy = centroids[i]
                x1, y1, x2, y2 = objects.boxes[i]
                at_border = x1 <= 2 or y1 <= 2 or x2 >= w - 2 or y2 >= h - 2
                history[tid].append((cx, cy))
                paths[tid].append((frame.index, float(cx), float(cy), bool(at_border)))
                visible[tid].append(frame.index)
                store = edge_thumbs[tid] if at_border else thumbs[tid]
                if len(store) < 400:
                    store.append(_thumb(frame.image, objects.masks[i], objects.boxes[i]))
            for tid in list(history):
                if tid not in set(objects.track_ids.tolist()):
                    history[tid].clear()
            picture = draw_overlay(frame.image, objects, annotators=options.annotators)
            _draw_trails(picture, history)
            for tid, text in labels.get(frame.index, []):
                where = np.flatnonzero(objects.track_ids == tid)
                if len(where):
                    cx, cy = centroids[where[0]]
                    _text(picture, text, (int(cx) - 30, int(cy) - 22), 0.5, (0, 255, 255))
            if options.side_by_side:
                raw = draw_overlay(frame.image, _source_objects(run, frame.index, (h, w)),
                                   ids="source", annotators=options.annotators)
                _text(raw, "source ids", (10, 22), 0.6)
                _text(picture, "samtrack ids", (10, 22), 0.6)
                picture = np.hstack([raw, picture])
            trails_sink.write(_scaled(picture, options.scale))
            if binary_sink is not None:
                binary_sink.write(_scaled(_binary(objects, options.binary_id), options.scale))
            if count == total // 2:
                middle = frame.image.copy()
            count += 1
            bar.update(1)
        bar.close()
        if count != total:
            raise RunFolderError(f"{run.video.path}: {count} frames matched the run's ID maps, "
                                 f"summary.json says {total}")
        trails_sink.close()
        if binary_sink is not None:
            binary_sink.close()
    except BaseException:
        bar.close()
        trails_sink.abort()
        if binary_sink is not None:
            binary_sink.abort()
        raise
    written = {"trails.mp4": out / "trails.mp4"}
    if binary_sink is not None:
        written["binary.mp4"] = out / "binary.mp4"
    written["trails.png"] = _trails_png(out / "trails.png", middle, paths, options.scale)
    written["timeline.png"] = _timeline_png(out / "timeline.png", visible, run, count,
                                            options.gt)
    edge_only = sorted(set(edge_thumbs) - {t for t, tiles in thumbs.items() if tiles})
    if edge_only:
        log.info("gallery: %s seen only at the frame border: %s shown cut by the edge",
                 ", ".join(map(str, edge_only)), "its views are" if len(edge_only) == 1 else
                 "their views are")
    written["gallery.png"] = _gallery_png(
        out / "gallery.png", {**{t: edge_thumbs[t] for t in edge_only},
                              **{t: tiles for t, tiles in thumbs.items() if tiles}}, edge_only)
    return written


def _draw_trails(image: np.ndarray, history: dict[int, deque]) -> None:
    """Fading polylines: older segments thinner and more transparent."""
    layer = image.copy()
    for tid, points in history.items():
        pts = list(points)[:-1]  # stop one step short: the centroid keeps the mask's colour
        color = id_color(tid)
        for k in range(1, len(pts)):
            age = (len(pts) - k) / max(len(pts), 1)
            thickness = max(1, round(3 * (1 - age)))
            a = (int(pts[k - 1][0]), int(pts[k - 1][1]))
            b = (int(pts[k][0]), int(pts[k][1]))
            cv2.line(layer, a, b, color, thickness, cv2.LINE_AA)
    cv2.addWeighted(layer, 0.8, image, 0.2, 0, dst=image)


def _binary(objects: FrameObjects, track_id: int | None) -> np.ndarray:
    if track_id is None:
        return largest_object_mask(objects)
    out = np.zeros(objects.image_size, np.uint8)
    for i in np.flatnonzero(objects.track_ids == track_id):
        out[objects.masks[i]] = 255
    return out


def _thumb(image: np.ndarray, mask: np.ndarray, box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box.astype(int)
    crop = image[y1:y2, x1:x2].copy()
    crop[~mask[y1:y2, x1:x2]] = 0
    h, w = crop.shape[:2]
    scale = THUMB / max(h, w, 1)
    crop = cv2.resize(crop, (max(1, int(w * scale)), max(1, int(h * scale))))
    tile = np.zeros((THUMB, THUMB, 3), np.uint8)
    tile[:crop.shape[0], :crop.shape[1]] = crop
    return tile


def _trails_png(path: Path, background, paths, scale: float) -> Path:
    if background is None:
        background = np.zeros((240, 320, 3), np.uint8)
    canvas = (background * 0.6).astype(np.uint8)
    for tid, pts in sorted(paths.items()):
        color = id_color(tid)
        for k in range(1, len(pts)):
            if pts[k][0] - pts[k - 1][0] == 1:  # consecutive frames only: no jumps across gaps
                cv2.line(canvas, (int(pts[k - 1][1]), int(pts[k - 1][2])),
                         (int(pts[k][1]), int(pts[k][2])), color, 2, cv2.LINE_AA)
        for k, (f, x, y, border) in enumerate(pts):
            starts = k == 0 or pts[k - 1][0] != f - 1
            ends = k == len(pts) - 1 or pts[k + 1][0] != f + 1
            if border and starts:
                cv2.circle(canvas, (int(x), int(y)), 7, color, 2, cv2.LINE_AA)  # entry
            if border and ends:
                cv2.drawMarker(canvas, (int(x), int(y)), color, cv2.MARKER_TILTED_CROSS, 14, 2)
        if pts:
            _text(canvas, str(tid), (int(pts[0][1]) + 6, int(pts[0][2]) - 6), 0.6, color)
    _text(canvas, "paths: o entry, x exit at the border", (10, 22), 0.55)
    cv2.imwrite(str(path), _scaled(canvas, scale))
    return path


def _runs(frames: list[int]) -> list[tuple[int, int]]:
    out = []
    for f in frames:
        if out and f == out[-1][0] + out[-1][1]:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((f, 1))
    return out


def _rgb(tid: int) -> tuple[float, float, float]:
    b, g, r = id_color(tid)
    return (r / 255, g / 255, b / 255)


def _timeline_png(path: Path, visible, run: RunData, frames: int, gt: str | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = sorted(visible)
    gt_rows = _gt_coverage(run, gt) if gt else None
    panels = 2 if gt_rows else 1
    height = 0.4 * len(ids) + 1.5 + (0.4 * len(gt_rows[0]) + 1.5 if gt_rows else 0)
    fig, axes = plt.subplots(panels, 1, figsize=(10, max(2.5, height)), squeeze=False)
    ax = axes[0][0]
    for row, tid in enumerate(ids):
        ax.broken_barh(_runs(visible[tid]), (row - 0.35, 0.7), color=_rgb(tid))
    markers = {"restored": "o", "swap_fixed": "s", "reassigned": "D"}
    for kind, marker in markers.items():
        xs = [e["frame"] for e in run.repairs if e["kind"] == kind and e["new_track"] in ids]
        ys = [ids.index(e["new_track"]) for e in run.repairs
              if e["kind"] == kind and e["new_track"] in ids]
        if xs:
            ax.scatter(xs, ys, marker=marker, color="black", zorder=3, label=kind, s=25)
    ax.set_yticks(range(len(ids)), [str(i) for i in ids])
    ax.set_ylabel("samtrack id")
    ax.set_xlim(0, max(frames, 1))
    ax.set_title("Identities over time (markers: repairs)")
    if any(e["kind"] in markers for e in run.repairs):
        ax.legend(loc="upper right", fontsize=7)
    if gt_rows:
        coverage, switches = gt_rows
        ax2 = axes[1][0]
        gt_ids = sorted(coverage)
        for row, gid in enumerate(gt_ids):
            for start, length, pred in coverage[gid]:
                ax2.broken_barh([(start, length)], (row - 0.35, 0.7),
                                color=_rgb(pred) if pred > 0 else (0.85, 0.85, 0.85))
        for s in switches:
            if s.gt_id in gt_ids:
                ax2.scatter([s.frame - 1], [gt_ids.index(s.gt_id)], marker="v", color="red",
                            zorder=3, s=30)
        ax2.set_yticks(range(len(gt_ids)), [str(i) for i in gt_ids])
        ax2.set_ylabel("ground-truth id")
        ax2.set_xlim(0, max(frames, 1))
        ax2.set_title("Ground truth coloured by the predicted id covering it "
                      "(grey: missed, red: ID switch)")
    ax.set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _gt_coverage(run: RunData, gt: str):
    """Per ground-truth id: runs of (start frame, length, predicted id), and the switches."""
    truth = load_tracks(gt)
    pred = load_tracks(run.folder / "masks")
    paired = pair_sequences(truth, pred)
    coverage: dict[int, list] = defaultdict(list)
    for t, fp in enumerate(paired.frames):
        for r, gid in enumerate(fp.gt_ids.tolist()):
            sim = fp.similarity[r] if fp.similarity.size else np.zeros(0)
            pid = int(fp.pred_ids[int(np.argmax(sim))]) if sim.size and sim.max() >= 0.5 else -1
            runs = coverage[gid]
            if runs and runs[-1][2] == pid and runs[-1][0] + runs[-1][1] == t:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1, pid)
            else:
                runs.append((t, 1, pid))
    switches, _ = switch_report(accumulate(paired), truth.name)
    return dict(coverage), switches


def _gallery_png(path: Path, thumbs: dict[int, list[np.ndarray]], edge_only: list[int],
                 per_row: int = 12) -> Path:
    """A row of thumbnails per identity; an identity seen only at the frame border gets its
    border views, labelled "edge" so a cut-off animal is not taken for a bad mask."""
    ids = sorted(thumbs)
    label_w = 56
    rows = []
    for tid in ids:
        tiles = thumbs[tid]
        if len(tiles) > per_row:
            pick = np.linspace(0, len(tiles) - 1, per_row).round().astype(int)
            tiles = [tiles[i] for i in pick]
        strip = np.zeros((THUMB, label_w + per_row * THUMB, 3), np.uint8)
        strip[:, :label_w] = id_color(tid)
        _text(strip, str(tid), (8, THUMB // 2 + 8), 0.8)
        if tid in edge_only:
            _text(strip, "edge", (6, THUMB - 6), 0.45)
        for k, tile in enumerate(tiles):
            strip[:, label_w + k * THUMB: label_w + (k + 1) * THUMB] = tile
        rows.append(strip)
    image = np.vstack(rows) if rows else np.zeros((THUMB, label_w + per_row * THUMB, 3),
                                                  np.uint8)
    cv2.imwrite(str(path), image)
    return path


__all__ = ["OVERLAY_ALPHA", "RunFolderError", "VizOptions", "load_run", "render",
           "repair_labels_at"]

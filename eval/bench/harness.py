"""Benchmark harness: every method fed the same masks, one table.

``python -m samtrack.eval.bench`` (or ``samtrack bench``).

Rows: methods per scene set (easy / lookalike / crowded / clean, see :mod:`eval.benchsets`),
overall, and optionally the MOTChallenge 2015 sequences in ``../shared/data/MOT15``.
Columns: IDSW, IDF1, HOTA, AssA, MOTA (combined over the set's scenes) and ms per frame of the
method's update (embedding included; samtrack's association alone is in ``assoc_ms``).

Methods: ``raw`` (the source's own ids: what SAM2 alone gives), ``samtrack`` online and offline,
and the peers of :mod:`eval.peers`. Every method sees the same masks; box trackers get their
boxes and scores.

MOT15: public detections become box masks. Their scores are raw detector values (about -1 to
140, scaled differently per sequence), so every method gets the same normalised score: the
score's percentile rank among the sequence's detections (0.5 = the median detection).
"""

from __future__ import annotations

import argparse
import configparser
import csv
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from samtrack.eval.bench.arena import DetectorFailures, detector_masks
from samtrack.eval.bench.failures import FailureSpec, simulate
from samtrack.eval.bench.peers import Peer, PeerUnavailable, build_peer
from samtrack.eval.bench.sets import SETS, SPLIT_SEEDS, BenchScene, scene_sets, unknown_set
from samtrack.eval.data import SequenceTracks, load_tracks, sequence_from_frames
from samtrack.eval.report import evaluate_pairs
from samtrack.pipeline.core.configbase import parse_scalar
from samtrack.pipeline.core.formats import read_mot_txt, write_text_atomic
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.geometry import rle_iou
from samtrack.pipeline.sources.masks import box_masks
from samtrack.reid.association import assign
from samtrack.reid.config import TrackerConfig
from samtrack.reid.embedders import build_embedder

COLUMNS = ["set", "method", "idsw", "idf1", "idf1_vs_ceiling", "hota", "assa", "mota",
           "ms_per_frame", "assoc_ms"]


@dataclass
class Clip:
    """One benchmark sequence in memory: frames (JPEG bytes or None), inputs, ground truth."""

    name: str
    set_name: str
    frames: list[bytes | None]
    inputs: list[FrameObjects]
    gt: SequenceTracks
    fps: float = 25.0

    def image(self, t: int) -> np.ndarray | None:
        data = self.frames[t]
        return None if data is None else cv2.imdecode(np.frombuffer(data, np.uint8),
                                                      cv2.IMREAD_COLOR)


def synthetic_clip(bs: BenchScene) -> Clip:
    frames, gt = [], []
    for t, (img, id_map) in enumerate(bs.frames()):
        frames.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
        gt.append(FrameObjects.from_id_map(id_map, frame_index=t).compact())
    if isinstance(bs.failures, DetectorFailures):
        inputs = detector_masks(bs.scene, bs.failures, gt)
    else:
        inputs = simulate(gt, bs.failures).frames
    return Clip(bs.name, bs.set_name, frames, inputs,
                sequence_from_frames(gt, bs.name, "source"), bs.scene.fps)


def real_clip(seq_dir: Path, crop: str = "full", seed: int = 0,
              failures: FailureSpec | None = None, set_name: str | None = None) -> Clip:
    """A real look-alike sequence (``../shared/data/real``) with SAM2-style failures injected
    into its true masks (or ``failures``). ``crop="right"``: the right half of the frame only,
    so objects leave and re-enter the view."""
    files = sorted((seq_dir / "img1").glob("*.jpg"))
    maps = sorted((seq_dir / "gt" / "masks").glob("*.png"))
    frames, gt = [], []
    for t, (image_file, map_file) in enumerate(zip(files, maps, strict=True)):
        image = cv2.imread(str(image_file), cv2.IMREAD_COLOR)
        id_map = cv2.imread(str(map_file), cv2.IMREAD_UNCHANGED)
        if crop == "right":
            half = image.shape[1] // 2
            image, id_map = image[:, half:], id_map[:, half:]
        frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
        gt.append(FrameObjects.from_id_map(np.ascontiguousarray(id_map),
                                           frame_index=t).compact())
    sim = simulate(gt, failures or FailureSpec.sam2_like(seed=seed))
    name = f"{seq_dir.name}-{crop}"
    # one table row per crop: the full frame and the re-entry window are different problems
    return Clip(name, set_name or f"real-{crop}", frames, sim.frames,
                sequence_from_frames(gt, name, "source"))


def mot15_clip(seq_dir: Path) -> Clip:

    ini = configparser.ConfigParser()
    ini.read(seq_dir / "seqinfo.ini")
    info = ini["Sequence"]
    length, w, h = int(info["seqLength"]), int(info["imWidth"]), int(info["imHeight"])
    dets = read_mot_txt(seq_dir / "det" / "det.txt")
    ranks = np.argsort(np.argsort(dets.score, kind="stable"), kind="stable")
    norm = (ranks + 0.5) / max(len(ranks), 1)  # percentile rank in (0, 1)
    img_dir = seq_dir / "img1"
    files = sorted(img_dir.glob("*.jpg")) if img_dir.is_dir() else []
    frames: list[bytes | None] = []
    inputs = []
    for t in range(length):
        keep = dets.frame == t + 1
        masks = box_masks(dets.box_xywh[keep], (h, w))
        nonempty = masks.any(axis=(1, 2))
        inputs.append(FrameObjects.from_masks(masks[nonempty], frame_index=t,
                                              scores=norm[keep][nonempty]).compact())
        frames.append(files[t].read_bytes() if t < len(files) else None)
    return Clip(seq_dir.name, "mot15", frames, inputs,
                load_tracks(seq_dir / "gt" / "gt.txt", seq_dir.name),
                float(info.get("frameRate", 25)))


@dataclass
class MethodResult:
    outputs: list[FrameObjects]
    seconds: float
    assoc_seconds: float | None = None


def run_method(factory: Callable, clip: Clip, log_offline: bool = False) -> MethodResult:
    tracker = factory(clip)
    outputs, spent = [], 0.0
    for t, objects in enumerate(clip.inputs):
        image = clip.image(t)
        start = time.perf_counter()
        outputs.append(tracker.update(objects, image).compact())
        spent += time.perf_counter() - start
    if log_offline:
        start = time.perf_counter()
        finished = tracker.finalize()
        outputs = finished.frames
        spent += time.perf_counter() - start
    else:
        finished = tracker.finalize()  # nothing recorded: the timing
    assoc = finished.timing.get("associate")
    return MethodResult(outputs, spent, assoc)


class _Raw(Peer):
    """The source's own ids, unchanged."""

    def update(self, objects: FrameObjects, image=None) -> FrameObjects:
        return objects.with_track_ids(objects.source_ids)


class _Ceiling(Peer):
    """The same input masks labelled with their true identities: each mask takes the id of the
    ground-truth object it overlaps best (mask IoU >= 0.5, one-to-one). What a perfect identity
    engine could reach from these masks; samtrack's rows are reported as a share of it."""

    def __init__(self, clip: Clip) -> None:
        self.gt = clip.gt

    def update(self, objects: FrameObjects, image=None) -> FrameObjects:
        truth = self.gt.get(objects.frame_index + 1)
        ids = np.full(len(objects), -1, np.int64)
        if len(objects) and len(truth.ids):
            iou = rle_iou(objects.rles, truth.rles or [])
            for r, c in assign(1.0 - iou, 0.5 + 1e-9):  # IoU >= 0.5
                ids[r] = truth.ids[c]
        return objects.with_track_ids(ids)


def _with_options(made: Callable, options: dict, clip: Clip, **kw):
    return made(clip, **options, **kw)


def method_factories(methods: list[str], embedder: str) -> dict[str, tuple[Callable, bool]]:
    shared: dict[str, object] = {}

    def samtrack(clip: Clip, identities: str = "gallery", **overrides):
        # one embedder for every clip (a CNN loads once); none where the clip has no images
        use = embedder if clip.frames[0] is not None else None
        if use is not None and use not in shared:
            shared[use] = build_embedder(use)
        config = TrackerConfig.from_dotted({"embedder": embedder, "identities": identities,
                                            **overrides})
        return config.build(embedder=shared.get(use) if use else None, keep_log=True,
                            record=identities == "offline")

    out: dict[str, tuple[Callable, bool]] = {}
    for m in methods:
        base, *settings = m.split(":")
        if settings and base.startswith("samtrack-"):
            # "samtrack-offline:motion.reach=0:motion.crossings=off": a samtrack method with
            # tracker options
            # changed, for ablations side by side in one table
            made, offline = method_factories([base], embedder)[base]
            options = {k: parse_scalar(v) for k, v in (x.split("=", 1) for x in settings)}
            out[m] = (partial(_with_options, made, options), offline)
            continue
        if m == "raw":
            out[m] = (lambda clip: _Raw(), False)
        elif m == "ceiling":
            out[m] = (_Ceiling, False)
        elif m == "samtrack-online":
            out[m] = (samtrack, False)
        elif m == "samtrack-online-model":  # online with the per-clip identity model
            out[m] = (lambda clip, **kw: samtrack(clip, "model", **kw), False)
        elif m == "samtrack-online-model-whole":  # the same, named only once seen whole
            out[m] = (lambda clip, **kw: samtrack(clip, "model", **{
                "model.border_guesses": False}, **kw), False)
        elif m == "samtrack-offline":
            out[m] = (lambda clip, **kw: samtrack(clip, "offline", **kw), True)
        else:
            out[m] = ((lambda name: lambda clip: build_peer(name, clip.fps))(m), False)
    return out


@dataclass
class BenchTable:
    rows: list[dict] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def markdown(self) -> str:
        head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
        body = "".join("| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |\n"
                       for r in self.rows)
        notes = "".join(f"\n- `{m}`: {why}" for m, why in self.unavailable.items())
        return head + body + notes + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        return buf.getvalue()


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def run_bench(clips: list[Clip], methods: list[str], embedder: str = "histogram",
              progress: bool = True) -> BenchTable:

    table = BenchTable(settings={"methods": methods, "embedder": embedder})
    factories = method_factories(methods, embedder)
    results: dict[str, dict[str, dict]] = {}  # method -> clip -> outputs
    timing: dict[str, dict[str, list]] = {}
    for method, (factory, offline) in factories.items():
        for clip in clips:
            if method in ("raw", "ceiling") and clip.set_name == "mot15":
                continue  # public detections carry no identities (nor masks for an oracle)
            try:
                res = run_method(factory, clip, offline)
            except PeerUnavailable as exc:
                why = str(exc)
                if "needs frames" in why:  # box-only sequence: skip this clip, keep the method
                    skipped = table.unavailable.setdefault(method, "no images, skipped on:")
                    table.unavailable[method] = f"{skipped} {clip.name}"
                    continue
                table.unavailable[method] = why
                break
            results.setdefault(method, {})[clip.name] = res.outputs
            t = timing.setdefault(method, {}).setdefault(clip.set_name, [0.0, 0.0, 0])
            t[0] += res.seconds
            t[1] += res.assoc_seconds or 0.0
            t[2] += len(clip.inputs)
            if progress:
                print(f"  {method:18s} {clip.name:16s} {1000 * res.seconds / len(clip.inputs):7.1f}"
                      " ms/frame", file=sys.stderr)
    set_names = list(dict.fromkeys(c.set_name for c in clips))
    for set_name in [*set_names, "overall"]:
        members = [c for c in clips if set_name in ("overall", c.set_name)
                   and (set_name != "overall" or c.set_name != "mot15")]
        if not members:
            continue
        for method in factories:
            if method not in results:
                continue
            if any(c.name not in results[method] for c in members):
                if set_name != "mot15":
                    continue
                members_m = [c for c in members if c.name in results[method]]
                if not members_m:
                    continue
            else:
                members_m = members
            pairs = {c.name: (c.gt, sequence_from_frames(results[method][c.name], c.name))
                     for c in members_m}
            m = evaluate_pairs(pairs).combined
            secs = sum(timing[method][s][0] for s in {c.set_name for c in members_m})
            assoc = sum(timing[method][s][1] for s in {c.set_name for c in members_m})
            count = sum(timing[method][s][2] for s in {c.set_name for c in members_m})
            label = set_name if members_m is members else \
                f"{set_name} ({'+'.join(c.name for c in members_m)})"
            table.rows.append({"set": label, "method": method, "idsw": m["idsw"],
                               "idf1": m["idf1"], "hota": m["hota"], "assa": m["assa"],
                               "mota": m["mota"], "ms_per_frame": 1000 * secs / count,
                               "assoc_ms": 1000 * assoc / count if assoc else None})
    ceilings = {r["set"]: r["idf1"] for r in table.rows if r["method"] == "ceiling"}
    for row in table.rows:
        if row["set"] in ceilings and ceilings[row["set"]]:
            row["idf1_vs_ceiling"] = row["idf1"] / ceilings[row["set"]]
    return table


DEFAULT_METHODS = ["raw", "ceiling", "samtrack-online", "samtrack-offline", "bytetrack",
                   "ocsort", "sort", "botsort", "deepsort", "sam2mot"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m samtrack.eval.bench", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sets", default="easy,lookalike,crowded,clean",
                        help=f"comma-separated scene sets, of: {', '.join(SETS)}")
    parser.add_argument("--scenes", type=int, default=3, help="scenes per set")
    parser.add_argument("--frames", type=int, default=300, help="frames per scene")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--embedder", default="histogram", help="samtrack's embedder")
    parser.add_argument("--mot15", default=None, metavar="DIR",
                        help="also run the MOT15 sequences under DIR "
                        "(e.g. ../shared/data/MOT15)")
    parser.add_argument("--mot15-seqs", default="TUD-Campus,ETH-Sunnyday,PETS09-S2L1,KITTI-13,"
                        "KITTI-17", help="which MOT15 sequences")
    parser.add_argument("--split", choices=["tune", "report"], default="tune",
                        help="scene seeds: tune (what defaults were chosen on) or report "
                        "(held out from every choice)")
    parser.add_argument("--real", default=None, metavar="DIR", help="also run the real "
                        "look-alike sequences under DIR (full frame and right half), SAM2-style "
                        "failures injected into their true masks (e.g. ../shared/data/real)")
    parser.add_argument("--out", default="eval/results", help="where bench.md/.csv go")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    sets = tuple(s for s in args.sets.split(",") if s)
    if (unknown := unknown_set(sets)) is not None:
        parser.error(f"--sets: {unknown}")
    clips = [synthetic_clip(bs) for bs in scene_sets(args.scenes, args.frames, sets,
                                                     args.split)]
    if args.real:
        for seq in sorted(p for p in Path(args.real).iterdir() if (p / "gt").is_dir()):
            clips.extend(real_clip(seq, crop, seed=SPLIT_SEEDS[args.split])
                         for crop in ("full", "right"))
    if args.mot15:
        for name in args.mot15_seqs.split(","):
            if name:
                clips.append(mot15_clip(Path(args.mot15) / name))
    table = run_bench(clips, [m for m in args.methods.split(",") if m], args.embedder,
                      progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = (f"samtrack benchmark: sets {', '.join(sets)} ({args.split} split), {args.scenes} "
              f"scenes x {args.frames} frames each (long, arena-long: 1500-3000; arena-heavy: "
              f"1500); samtrack embedder "
              f"{args.embedder}.\n"
              f"Command: python -m samtrack.eval.bench {' '.join(argv or sys.argv[1:])}\n\n")
    write_text_atomic(out / "bench.md", header + table.markdown())
    write_text_atomic(out / "bench.csv", table.csv())
    print(header + table.markdown())
    print(f"written: {out / 'bench.md'}, {out / 'bench.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

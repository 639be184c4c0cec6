"""Real masks whose ids mean nothing from one stretch to the next: can samtrack name them?

A per-frame segmenter (SAM2's image model, Cellpose, a detector) numbers its masks anew every
time; the identities must come from the tracker alone. Here zebrafish-07's true masks get
fresh ids in a random order every ``--every`` frames (:class:`FailureSpec` ``relabel_every``,
nothing else injected), and the offline engine, told how many animals there are, names them.
Each crop is its own row: the full well (crossings) and its right half (exits and returns, so
identities must be recovered from appearance alone).

The fly clips (``flies-2``, ``flies-2-long``) have points, not masks: their masks are made by
samtrack's own segmenter (``samtrack run --video`` with every default), renumbered the same way,
and every row is scored on the true points (:mod:`eval.points`); their ceiling gives each mask
the identity of the true point it holds.

Columns: IDF1 of the input's ids, of samtrack and of the ceiling (the same masks with their
true ids), the share of the ceiling, ID switches, and how many input masks got no identity in
the output.

    python -m samtrack.eval.bench.relabel --real ../shared/data/real
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from samtrack.eval.bench.failures import FailureSpec, simulate
from samtrack.eval.bench.harness import Clip, method_factories, real_clip, run_method
from samtrack.eval.data import SequenceTracks, load_tracks, sequence_from_frames
from samtrack.eval.points import DEFAULT_RADIUS, point_similarity
from samtrack.eval.report import evaluate_pairs
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.formats import id_map_files, read_id_map
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.runformat import MASKS
from samtrack.pipeline.core.video import VideoReader
from samtrack.pipeline.runner import run
from samtrack.reid.association import assign

CROPS = ("full", "right")
FLY_CLIPS = ("flies-2", "flies-2-long")  # video.mp4 and labels.slp in each folder


def score(clip: Clip, outputs) -> dict:
    pairs = {clip.name: (clip.gt, sequence_from_frames(outputs, clip.name))}
    return evaluate_pairs(pairs).combined


def segmented_clip(folder: Path, every: int, seed: int, work: Path) -> Clip:
    """A fly clip made into masks by samtrack's segmenter (a default ``samtrack run --video``),
    every mask renumbered every ``every`` frames; the truth is the clip's points."""
    config = load_config(None, {"video.path": str(folder / "video.mp4"),
                                "output.dir": str(work / folder.name),
                                "output.overwrite": True, "quiet": True})
    maps = id_map_files(run(config).out_dir / MASKS)
    frames, masks = [], []
    for frame in VideoReader(folder / "video.mp4"):
        frames.append(cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
                      .tobytes())
        id_map = read_id_map(maps[frame.name]) if frame.name in maps else \
            np.zeros(frame.image.shape[:2], np.uint8)
        masks.append(FrameObjects.from_id_map(id_map, frame_index=frame.index).compact())
    renumbered = simulate(masks, FailureSpec(relabel_every=every, seed=seed)).frames
    return Clip(folder.name, "real-points", frames, renumbered,
                load_tracks(folder / "labels.slp", folder.name))


def point_ceiling(truth: SequenceTracks, inputs: list[FrameObjects],
                  radius: float = DEFAULT_RADIUS) -> list[FrameObjects]:
    """Each mask labelled with the true point it holds (one to one; a point within ``radius``
    px counts half-way, as the scorer does): the best an identity engine could do with these
    masks."""
    out = []
    for objects in inputs:
        points = truth.get(objects.frame_index + 1)
        ids = np.full(len(objects), -1, np.int64)
        if len(objects) and len(points.ids):
            similarity = point_similarity(points.points, objects.rles, objects.image_size,
                                          radius)
            for r, c in assign(1.0 - similarity.T, 0.5 + 1e-9):
                ids[r] = points.ids[c]
        out.append(objects.with_track_ids(ids))
    return out


def dropped_masks(clip: Clip, outputs) -> int:
    """Input masks that left the tracker without an identity."""
    given = sum(len(o) for o in clip.inputs)
    named = sum(int((o.track_ids > 0).sum()) for o in outputs)
    return given - named


def print_rows(clip: Clip, animals: int, ceiling: list[FrameObjects],
               methods: list[str]) -> None:
    """One table row per method on ``clip``, told ``animals`` individuals."""
    raw = score(clip, [o.with_track_ids(o.source_ids) for o in clip.inputs])["idf1"]
    best = score(clip, ceiling)["idf1"]
    factories = method_factories([f"{m}:num_identities={animals}" for m in methods],
                                 "histogram")
    for name, (factory, offline) in factories.items():
        started = time.perf_counter()
        outputs = run_method(factory, clip, offline).outputs
        spent = time.perf_counter() - started
        m = score(clip, outputs)
        print(f"| {clip.name} | {name} | {raw:.3f} | {m['idf1']:.3f} | {best:.3f} | "
              f"{m['idf1'] / best:.3f} | {m['idsw']} | {dropped_masks(clip, outputs)} | "
              f"{spent:.1f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.relabel",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", default="../shared/data/real")
    parser.add_argument("--clips", default=",".join(CROPS + FLY_CLIPS),
                        help="zebrafish-07 crops (full, right) and fly clips")
    parser.add_argument("--every", type=int, default=30, help="frames between renumberings")
    parser.add_argument("--methods", default="samtrack-offline,"
                        "samtrack-offline:learned.enabled=false")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = Path(args.real)
    methods = args.methods.split(",")
    print("| clip | method | input idf1 | idf1 | ceiling | share | idsw | masks dropped | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.clips.split(","):
        folder = root / ("zebrafish-07" if name in CROPS else name)
        if name in CROPS + FLY_CLIPS and not folder.is_dir():
            parser.error(f"--real {root}: no folder {folder.name} in it (the shared real clips)")
        if name in CROPS:
            clip = real_clip(root / "zebrafish-07", name,
                             failures=FailureSpec(relabel_every=args.every, seed=args.seed))
            factory, _ = method_factories(["ceiling"], "histogram")["ceiling"]
            print_rows(clip, 4, run_method(factory, clip).outputs, methods)
        elif name in FLY_CLIPS:
            with tempfile.TemporaryDirectory() as work:
                clip = segmented_clip(root / name, args.every, args.seed, Path(work))
            print_rows(clip, 2, point_ceiling(clip.gt, clip.inputs), methods)
        else:
            parser.error(f"--clips: unknown clip {name!r} (known: {', '.join(CROPS + FLY_CLIPS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

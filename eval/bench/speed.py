"""Speed benchmark (prints numbers; ``python -m samtrack.eval.bench.speed``), not a timed test.

* **what a user sees**: dense boolean masks at 1280x720 and 1024x1024, 10 and 50 objects, fed
  as a SAM2 user feeds them (``FrameObjects.from_masks`` + ``update`` with the default
  histogram appearance and the default record), side by side with roboflow ``trackers``'
  ByteTrack and McByte on the same frames in the same run (``sv.Detections`` with the same
  masks and boxes; the ratios printed); and samtrack told the boxes too (``boxes=``, as a
  supervision user holding ``sv.Detections`` can);
* memory of online library use: RSS growth over 5000 updates without ``finalize()``
  (``--updates``);
* ``samtrack run`` end to end on a real clip by stage (decode, source, track, write), frames/s
  and peak RSS (``--run VIDEO``, e.g. ``../shared/data/real/flies-2-long/video.mp4``);
* tracker time per frame *excluding the embedding network*, at 10 and 100 objects: discs on a
  random walk, embeddings precomputed and handed over by a pass-through embedder, so only
  duplicate suppression, costs, gating, assignment and bookkeeping are timed;
* MobileNetV2 embedding time per object, batched (all objects of a frame in one batch);
* the histogram embedder per object, for comparison;
* ``samtrack viz`` rendering speed (frames/s) on a run folder given with ``--viz RUN_DIR``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from samtrack.eval.bench.arena import ArenaSpec, DetectorFailures
from samtrack.eval.bench.failures import FailureSpec
from samtrack.eval.bench.harness import synthetic_clip
from samtrack.eval.bench.scenes import SceneSpec
from samtrack.eval.bench.sets import BenchScene
from samtrack.pipeline.adapters import to_detections
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.render import VizOptions, render
from samtrack.pipeline.viz import draw_overlay, id_color
from samtrack.reid.config import TrackerConfig
from samtrack.reid.embedders import HistogramEmbedder, MobileNetV2Embedder, l2_normalize
from samtrack.reid.embedders.learned import (
    ImageGeometry,
    LearnedEmbedder,
    LearnedSettings,
    identification_images,
    identity_network,
    mask_extents,
)
from samtrack.reid.identities import link_identities


class _Precomputed:
    """Embedder stand-in returning the vectors attached to the frame (no network in the loop)."""

    name = "precomputed"
    dim = 64

    def embed(self, image, objects: FrameObjects) -> np.ndarray:
        return objects.embeddings


def dense_frames(count: int, frames: int, size: tuple[int, int], radius: int, seed: int = 0,
                 step: float = 1.5):
    """Frames of discs on a random walk (``step`` px per frame): (image, dense bool masks
    (N, H, W), xyxy boxes)."""
    rng = np.random.default_rng(seed)
    h, w = size
    grid = int(np.ceil(np.sqrt(count)))
    pos = np.array([(x, y) for y in np.linspace(radius * 2, h - radius * 2, grid)
                    for x in np.linspace(radius * 2, w - radius * 2, grid)][:count], float)
    colours = rng.integers(40, 220, (count, 3))
    out = []
    for _ in range(frames):
        pos += rng.normal(0, step, pos.shape)
        image = np.full((h, w, 3), (60, 120, 80), np.uint8)
        masks = np.zeros((count, h, w), np.uint8)
        for i, (x, y) in enumerate(pos):
            cv2.circle(masks[i], (int(x), int(y)), radius, 1, -1)
            cv2.circle(image, (int(x), int(y)), radius, tuple(int(c) for c in colours[i]), -1)
        dense = masks.astype(bool)
        boxes = np.array([(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) for ys, xs in
                          (np.nonzero(m) for m in dense)], np.float32)
        out.append((image, dense, boxes))
    return out


def synthetic_frames(count: int, frames: int, size: tuple[int, int], radius: int, seed: int = 0):
    """:func:`dense_frames` as tracker input, with a look-alike embedding per object."""
    rng = np.random.default_rng(seed)
    vectors = l2_normalize(rng.normal(size=(count, 64)))
    out = []
    for t, (image, masks, _) in enumerate(dense_frames(count, frames, size, radius, seed,
                                                       step=1.0)):
        emb = l2_normalize(vectors + rng.normal(0, 0.02, vectors.shape))
        objects = FrameObjects.from_masks(masks, frame_index=t,
                                          source_ids=np.arange(1, count + 1), embeddings=emb)
        out.append((image, objects))
    return out


def versus_peers(count: int, size: tuple[int, int], frames: int = 60) -> dict[str, float]:
    """ms/frame of samtrack (masks only, and masks + boxes) and of trackers' ByteTrack and
    McByte on the same frames."""
    import supervision as sv
    import trackers

    data = dense_frames(count, frames, size, radius=20)
    out: dict[str, float] = {}
    for name, with_boxes in (("samtrack", False), ("samtrack+boxes", True)):
        tracker = TrackerConfig().build()
        start = time.perf_counter()
        for image, masks, boxes in data:
            objects = FrameObjects.from_masks(masks, boxes=boxes if with_boxes else None)
            tracker.update(objects, image)
        out[name] = 1000 * (time.perf_counter() - start) / frames
    for name, make in (("bytetrack", trackers.ByteTrackTracker),
                       ("mcbyte", trackers.McByteTracker)):
        peer = make()
        start = time.perf_counter()
        for image, masks, boxes in data:
            detections = sv.Detections(xyxy=boxes, mask=masks,
                                       confidence=np.full(len(boxes), 0.9, np.float32),
                                       class_id=np.zeros(len(boxes), int))
            peer.update(detections, image if name == "mcbyte" else None)
        out[name] = 1000 * (time.perf_counter() - start) / frames
    return out


def rss_mb() -> float:
    """Resident memory now (Linux /proc), MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def online_growth_mb(updates: int, count: int = 10, size=(720, 1280)) -> tuple[float, float]:
    """RSS growth (MB) over ``updates`` library updates without ``finalize()``, measured after
    a warm-up of 200 updates; and ms/update."""
    rng = np.random.default_rng(3)
    h, w = size
    pos = rng.uniform((40, 40), (w - 40, h - 40), (count, 2))
    image = np.full((h, w, 3), (60, 120, 80), np.uint8)
    tracker = TrackerConfig().build()
    masks = np.zeros((count, h, w), np.uint8)
    before = 0.0
    start = time.perf_counter()
    for t in range(updates + 200):
        if t == 200:
            before, start = rss_mb(), time.perf_counter()
        pos = np.clip(pos + rng.normal(0, 2, pos.shape), 40, (w - 40, h - 40))
        masks[:] = 0
        for i, (x, y) in enumerate(pos):
            cv2.circle(masks[i], (int(x), int(y)), 20, 1, -1)
        tracker.update(FrameObjects.from_masks(masks.view(bool)), image)
    spent = time.perf_counter() - start
    return rss_mb() - before, 1000 * spent / updates


_RUN_AND_PEAK = """
import sys
from samtrack.pipeline.cli import main
code = main(["run", "--video", sys.argv[1], "--out", sys.argv[2], "--quiet", *sys.argv[3:]])
with open("/proc/self/status") as fh:
    print(next(line.split()[1] for line in fh if line.startswith("VmHWM:")))
sys.exit(code)
"""


def run_by_stage(video: str, max_frames: int | None = None) -> str:
    """``samtrack run --video VIDEO`` (every default) in a child process that reports its own
    peak RSS (VmHWM): stages, frames/s."""


    limit = ["--max-frames", str(max_frames)] if max_frames else []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _RUN_AND_PEAK, video, f"{tmp}/run",
                               *limit], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        summary = json.loads(Path(f"{tmp}/run/summary.json").read_text())
    peak = int(done.stdout.split()[-1]) / 1024
    stages = ", ".join(f"{k} {v:.1f}" for k, v in summary["ms_per_frame"].items())
    frames = summary["frames"]
    return (f"samtrack run {video}: {frames} frames, {frames / summary['timing_s']['total']:.1f} "
            f"frames/s in the run ({frames / wall:.1f} with start-up), ms/frame by stage: "
            f"{stages}; peak RSS {peak:.0f} MB")


def tracker_ms(count: int, frames: int, size, radius) -> float:
    data = synthetic_frames(count, frames, size, radius)
    tracker = TrackerConfig().build(embedder=_Precomputed(), record=False)
    for image, objects in data:
        tracker.update(objects, image)
    return 1000 * tracker.timing["associate"] / frames


ROUNDS = 7  # timed rounds per measure; the median is printed


def _median_ms_per_object(work, count: int, repeats: int) -> float:
    """ms per object of ``work()`` (one batch of ``count`` objects): the median over
    :data:`ROUNDS` rounds of ``repeats`` calls, after one warm-up round. Why the median: on a
    shared 2-core CPU one round of a few batches varied twofold between runs (torch's thread
    pool waking, the scheduler), and a single round printed that noise as the cost."""
    work()
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(repeats):
            work()
        rounds.append(1000 * (time.perf_counter() - start) / (repeats * count))
    return float(np.median(rounds))


def embed_ms_per_object(embedder, count: int, repeats: int = 5) -> float:
    image, objects = synthetic_frames(count, 1, (360, 640), 24)[0]
    return _median_ms_per_object(lambda: embedder.embed(image, objects), count, repeats)


def offline_link_seconds(frames: int, animals: int = 8, seed: int = 5) -> tuple[float, int]:
    """Seconds the offline identity engine (:func:`reid.identities.link_identities`) takes on
    the log of a generated ``long``-style clip (SAM2-style failures), and its fragment count.
    The online pass that writes the log is not timed."""
    bench = BenchScene("long", "speed", SceneSpec(num_animals=animals, num_frames=frames,
                                                  seed=seed, exit_every=2),
                       FailureSpec.sam2_like(seed=seed))
    clip = synthetic_clip(bench)
    tracker = TrackerConfig(identities="offline").build(keep_log=True, record=False)
    for t, objects in enumerate(clip.inputs):
        tracker.update(objects, clip.image(t))
    start = time.perf_counter()
    result = link_identities(tracker.log)
    return time.perf_counter() - start, result.fragments


def learned_link_seconds(frames: int, animals: int = 8, seed: int = 5) -> dict:
    """Training the representation learned from the clip plus offline linking, on the log of
    an 8-animal arena clip (the second scene family, a detector's failures): seconds in all,
    of which training, and the engine's report. The online pass is not timed."""
    spec = ArenaSpec(num_animals=animals, num_frames=frames, seed=seed)
    clip = synthetic_clip(BenchScene("arena-long", "speed", spec, DetectorFailures(seed=seed)))
    config = TrackerConfig.from_dotted({"identities": "offline", "learned.enabled": True})
    tracker = config.build(keep_log=True, record=False)
    for t, objects in enumerate(clip.inputs):
        tracker.update(objects, clip.image(t))
    start = time.perf_counter()
    result = link_identities(tracker.log, learned=config.learned.settings())
    return {**result.details["learned"], "total": time.perf_counter() - start}


def learned_embed_ms_per_object(count: int, repeats: int = 5) -> tuple[float, float]:
    """ms per object of the learned embedder (an untrained network: the cost does not depend
    on the weights): the identification images, and the network on them (both head-tail
    orders), batched over ``count`` objects of one frame."""
    image, objects = synthetic_frames(count, 1, (360, 640), 24)[0]
    geometry = ImageGeometry.from_extents(mask_extents(objects), LearnedSettings.long_side)
    embedder = LearnedEmbedder(identity_network(LearnedSettings.dim), geometry)
    images = identification_images(image, objects, geometry)
    return (_median_ms_per_object(lambda: identification_images(image, objects, geometry),
                                  count, repeats),
            _median_ms_per_object(lambda: embedder.embed_images(images), count, repeats))


def drawing_ms(count: int, size: tuple[int, int], frames: int = 20) -> dict[str, float]:
    """ms/frame drawing masks and id labels: samtrack's annotators (on crops) against
    supervision's ``MaskAnnotator`` + ``LabelAnnotator`` (dense masks), the same colours."""
    import supervision as sv

    scenes = dense_frames(count, frames, size, radius=14)
    objects = [FrameObjects.from_masks(dense, boxes=boxes).with_track_ids(
        np.arange(1, count + 1)) for _, dense, boxes in scenes]
    ids = np.arange(1, count + 1)
    palette = sv.ColorPalette([sv.Color(*id_color(int(i))[::-1]) for i in ids])
    masks = sv.MaskAnnotator(color=palette, opacity=0.5)
    labels = sv.LabelAnnotator(color=palette, text_position=sv.Position.CENTER)
    lookup = np.arange(count)
    out = {}
    start = time.perf_counter()
    for (image, _, _), obj in zip(scenes, objects, strict=True):
        draw_overlay(image, obj)
    out["samtrack"] = 1000 * (time.perf_counter() - start) / frames
    start = time.perf_counter()
    for (image, _, _), obj in zip(scenes, objects, strict=True):
        detections = to_detections(obj)
        picture = masks.annotate(image.copy(), detections, custom_color_lookup=lookup)
        labels.annotate(picture, detections, labels=[str(i) for i in ids],
                        custom_color_lookup=lookup)
    out["supervision"] = 1000 * (time.perf_counter() - start) / frames
    return out


IMPORT_BASE = "import numpy, cv2, scipy.optimize"


def import_seconds(statement: str, repeats: int = 7) -> float:
    """Median wall time of ``statement`` in a fresh interpreter (start-up excluded)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(repeats)]
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.speed",
                                     description=__doc__)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--viz", metavar="RUN_DIR", help="also time rendering this run")
    parser.add_argument("--offline", metavar="FRAMES", default="", help="also time offline "
                        "identity linking of 8-animal clips of these lengths, e.g. 1000,3000")
    parser.add_argument("--learned", metavar="FRAMES", default="", help="also time training "
                        "the learned representation plus offline linking on 8-animal arena "
                        "clips of these lengths, e.g. 3000")
    parser.add_argument("--updates", type=int, default=0, help="also measure RSS growth over "
                        "this many online library updates without finalize() (e.g. 5000)")
    parser.add_argument("--run", metavar="VIDEO", help="also time `samtrack run` on VIDEO by "
                        "stage, with its peak RSS")
    parser.add_argument("--drawing", action="store_true", help="only time drawing masks and "
                        "labels: samtrack's annotators against supervision's")
    parser.add_argument("--import-time", action="store_true", help="only time `import "
                        "samtrack` against numpy, cv2 and scipy.optimize")
    args = parser.parse_args(argv)
    if args.import_time:
        base, ours = import_seconds(IMPORT_BASE), import_seconds("import samtrack")
        print(f"import samtrack {ours:.3f} s, {IMPORT_BASE} {base:.3f} s: "
              f"{ours / base:.2f}x (medians of 7 fresh interpreters)")
        return 0
    if args.drawing:
        for count in (10, 50):
            ms = drawing_ms(count, (720, 1280))
            print(f"drawing masks + labels, 1280x720, {count} objects: samtrack "
                  f"{ms['samtrack']:.1f}, supervision {ms['supervision']:.1f} ms/frame")
        return 0
    print(f"torch threads: {torch.get_num_threads()}")
    for size in ((720, 1280), (1024, 1024)):
        for count in (10, 50):
            ms = versus_peers(count, size)
            print(f"dense masks {size[1]}x{size[0]}, {count:2d} objects, appearance included: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()) + " ms/frame; samtrack / "
                  f"ByteTrack {ms['samtrack'] / ms['bytetrack']:.2f} (with boxes "
                  f"{ms['samtrack+boxes'] / ms['bytetrack']:.2f}), samtrack / McByte "
                  f"{ms['samtrack'] / ms['mcbyte']:.2f}")
    if args.updates:
        grown, ms = online_growth_mb(args.updates)
        print(f"{args.updates} online library updates (10 objects, 1280x720, no finalize): RSS "
              f"+{grown:.1f} MB, {ms:.1f} ms/update")
    if args.run:
        # memory must not grow with the clip: the first fifth of it, then all of it
        print(run_by_stage(args.run, max_frames=300))
        print(run_by_stage(args.run))
    for count, size, radius in ((10, (360, 640), 14), (100, (720, 1280), 14)):
        ms = tracker_ms(count, args.frames, size, radius)
        print(f"tracker, {count:3d} objects ({size[1]}x{size[0]}): {ms:6.2f} ms/frame "
              "(embedding network excluded)")
    for batch in (8, 16):
        print(f"mobilenet_v2 embedding, batch {batch:2d}: "
              f"{embed_ms_per_object(MobileNetV2Embedder(), batch):6.2f} ms/object")
    print(f"histogram embedding, batch 16: "
          f"{embed_ms_per_object(HistogramEmbedder(), 16):6.2f} ms/object")
    for batch in (10, 50):
        crop_ms, net_ms = learned_embed_ms_per_object(batch)
        print(f"learned embedding, batch {batch:2d}: identification images {crop_ms:.3f} + "
              f"network {net_ms:.3f} ms/object")
    for length in [int(n) for n in args.learned.split(",") if n]:
        report = learned_link_seconds(length)
        print(f"learned representation + offline linking, 8 animals, {length} frames (arena): "
              f"{report['total']:.1f} s, of which training {report['seconds']:.1f} s "
              f"({report['steps']} steps, stopped: {report['stopped']}, trusted: "
              f"{report['trusted']})")
    for length in [int(n) for n in args.offline.split(",") if n]:
        seconds, fragments = offline_link_seconds(length)
        print(f"offline identity linking, 8 animals, {length} frames: {seconds:6.2f} s "
              f"({fragments} fragments)")
    if args.viz:
        frames = json.loads((Path(args.viz) / "summary.json").read_text())["frames"]
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            render(args.viz, VizOptions(out=Path(tmp)))
            spent = time.perf_counter() - start
        print(f"viz render of {args.viz}: {frames / spent:6.1f} frames/s "
              f"(all pictures, {frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

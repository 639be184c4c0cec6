"""Speed benchmark (prints numbers; ``python -m samtrack.eval.bench.speed``), not a timed test.

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
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from samtrack.eval.bench.failures import FailureSpec
from samtrack.eval.bench.harness import synthetic_clip
from samtrack.eval.bench.scenes import SceneSpec
from samtrack.eval.bench.sets import BenchScene
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.render import VizOptions, render
from samtrack.reid.config import TrackerConfig
from samtrack.reid.embedders import HistogramEmbedder, MobileNetV2Embedder, l2_normalize
from samtrack.reid.identities import link_identities


class _Precomputed:
    """Embedder stand-in returning the vectors attached to the frame (no network in the loop)."""

    name = "precomputed"
    dim = 64

    def embed(self, image, objects: FrameObjects) -> np.ndarray:
        return objects.embeddings


def synthetic_frames(count: int, frames: int, size: tuple[int, int], radius: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    h, w = size
    grid = int(np.ceil(np.sqrt(count)))
    xs = np.linspace(radius * 2, w - radius * 2, grid)
    ys = np.linspace(radius * 2, h - radius * 2, grid)
    pos = np.array([(x, y) for y in ys for x in xs][:count], float)
    colours = rng.integers(40, 220, (count, 3))
    vectors = l2_normalize(rng.normal(size=(count, 64)))
    out = []
    for t in range(frames):
        pos += rng.normal(0, 1.0, pos.shape)
        image = np.full((h, w, 3), (60, 120, 80), np.uint8)
        masks = np.zeros((count, h, w), np.uint8)
        for i, (x, y) in enumerate(pos):
            cv2.circle(masks[i], (int(x), int(y)), radius, 1, -1)
            cv2.circle(image, (int(x), int(y)), radius, tuple(int(c) for c in colours[i]), -1)
        emb = l2_normalize(vectors + rng.normal(0, 0.02, vectors.shape))
        objects = FrameObjects.from_masks(masks.astype(bool), frame_index=t,
                                          source_ids=np.arange(1, count + 1), embeddings=emb)
        _ = objects.boxes  # the container's own work (a source builds it), not the tracker's
        out.append((image, objects))
    return out


def tracker_ms(count: int, frames: int, size, radius) -> float:
    data = synthetic_frames(count, frames, size, radius)
    tracker = TrackerConfig().build(embedder=_Precomputed(), record=False)
    for image, objects in data:
        tracker.update(objects, image)
    return 1000 * tracker.timing["associate"] / frames


def embed_ms_per_object(embedder, count: int, repeats: int = 5) -> float:
    image, objects = synthetic_frames(count, 1, (360, 640), 24)[0]
    embedder.embed(image, objects)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        embedder.embed(image, objects)
    return 1000 * (time.perf_counter() - start) / (repeats * count)


def offline_link_seconds(frames: int, animals: int = 8, seed: int = 5) -> tuple[float, int]:
    """Seconds the offline identity engine (:func:`reid.identities.link_identities`) takes on
    the log of a generated ``long``-style clip (SAM2-style failures), and its fragment count.
    The online pass that writes the log is not timed."""
    bench = BenchScene("long", "speed", SceneSpec(num_animals=animals, num_frames=frames,
                                                  seed=seed, exit_every=2),
                       FailureSpec.sam2_like(seed=seed))
    clip = synthetic_clip(bench)
    tracker = TrackerConfig(mode="offline").build(keep_log=True, record=False)
    for t, objects in enumerate(clip.inputs):
        tracker.update(objects, clip.image(t))
    start = time.perf_counter()
    result = link_identities(tracker.log)
    return time.perf_counter() - start, result.fragments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.speed",
                                     description=__doc__)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--viz", metavar="RUN_DIR", help="also time rendering this run")
    parser.add_argument("--offline", metavar="FRAMES", default="", help="also time offline "
                        "identity linking of 8-animal clips of these lengths, e.g. 1000,3000")
    args = parser.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}")
    for count, size, radius in ((10, (360, 640), 14), (100, (720, 1280), 14)):
        ms = tracker_ms(count, args.frames, size, radius)
        print(f"tracker, {count:3d} objects ({size[1]}x{size[0]}): {ms:6.2f} ms/frame "
              "(embedding network excluded)")
    for batch in (8, 16):
        print(f"mobilenet_v2 embedding, batch {batch:2d}: "
              f"{embed_ms_per_object(MobileNetV2Embedder(), batch):6.2f} ms/object")
    print(f"histogram embedding, batch 16: "
          f"{embed_ms_per_object(HistogramEmbedder(), 16):6.2f} ms/object")
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

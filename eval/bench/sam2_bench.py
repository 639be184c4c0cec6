"""SAM2 source measurements, not a timed test: prints numbers.

``python -m samtrack.eval.bench.sam2_bench``.

* ``speed``: seconds per frame of ``sam2-video`` (box prompts, default window) and ``sam2-auto``
  for a model at its default 1024-px size, and samtrack's own overhead around SAM2: the time
  spent outside SAM2's calls (writing window JPEGs, building containers, carry-over) as a share
  of the time inside them;
* ``memory``: peak RSS (each measurement in a fresh process) of SAM2's plain ``init_state`` on
  the whole clip versus samtrack's windowed source, for clips of 100/200/300 720p frames.
  ``--image-size`` lowers SAM2's input size for both (a hydra override) so the windowed runs,
  which must propagate every frame, fit in CPU time; the plain/windowed comparison is made at the
  same size. ``--one-run`` runs the windowed source once over the longest clip and reads its
  peak after each length (about 8-10 s per frame at 1024 px on a 2-core CPU: 300 frames take
  40 minutes instead of 100 for three runs).

A checkpoint is needed; without network, make a random-weight one (same speed and memory as
the real weights): ``--random-checkpoint PATH``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
from sam2.build_sam import build_sam2_video_predictor

import samtrack.pipeline.sources.sam2_sources as sources
from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.pipeline.core.video import VideoReader
from samtrack.pipeline.sources import sam2_model
from samtrack.pipeline.sources.base import SourceContext
from samtrack.pipeline.sources.sam2_model import save_random_checkpoint
from samtrack.pipeline.sources.sam2_sources import (
    Sam2AutoOptions,
    Sam2AutoSource,
    Sam2VideoOptions,
    Sam2VideoSource,
)


def _clip(folder: Path, frames: int, width: int = 1280, height: int = 720) -> Path:
    if not (folder / "img1").is_dir() or len(list((folder / "img1").glob("*.jpg"))) < frames:
        Scene(SceneSpec(num_animals=2, num_frames=frames, width=width, height=height,
                        body_length=120, speed=8, seed=3)).write(folder)
    return folder / "img1"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed(checkpoint: str, frames: int, model: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        clip = _clip(Path(tmp), frames)
        options = Sam2VideoOptions(model=model, checkpoint=checkpoint, auto_seed=False,
                                   prompts=[{"id": 1, "box": [100, 200, 400, 450]},
                                            {"id": 2, "box": [700, 200, 1000, 450]}])
        source = Sam2VideoSource(options, SourceContext("cpu"))
        inside = {"s": 0.0}
        predictor = source.predictor
        for name in ("init_state", "add_new_mask", "add_new_points_or_box", "reset_state"):
            original = getattr(predictor, name)

            def timed(*a, _f=original, **k):
                t0 = time.perf_counter()
                try:
                    return _f(*a, **k)
                finally:
                    inside["s"] += time.perf_counter() - t0
            setattr(predictor, name, timed)
        original_prop = predictor.propagate_in_video

        def timed_prop(*a, **k):
            it = original_prop(*a, **k)
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    inside["s"] += time.perf_counter() - t0
                    return
                inside["s"] += time.perf_counter() - t0
                yield item
        predictor.propagate_in_video = timed_prop
        start = time.perf_counter()
        count = sum(1 for _ in source.frames(VideoReader(clip)))
        total = time.perf_counter() - start
        auto = Sam2AutoSource(Sam2AutoOptions(model=model, checkpoint=checkpoint),
                              SourceContext("cpu"))
        start = time.perf_counter()
        auto_frames = sum(1 for _ in auto.frames(VideoReader(clip, max_frames=2)))
        auto_total = time.perf_counter() - start
    return {"video_s_per_frame": total / count, "sam2_s": inside["s"], "total_s": total,
            "overhead_pct": 100 * (total - inside["s"]) / inside["s"],
            "auto_s_per_frame": auto_total / auto_frames, "frames": count}


def _memory_child(mode: str, clip: str, frames: int, checkpoint: str, image_size: int,
                  window: int, marks: frozenset[int] = frozenset()) -> None:
    """Runs in a fresh process; prints its peak RSS as JSON (windowed: also after each of
    ``marks`` frames)."""
    overrides = [f"++model.image_size={image_size}"] if image_size != 1024 else []
    if mode == "plain":
        predictor = build_sam2_video_predictor(
            sam2_model.MODELS["sam2.1_hiera_t"], ckpt_path=checkpoint, device="cpu",
            hydra_overrides_extra=overrides)
        with tempfile.TemporaryDirectory() as tmp:
            for k, f in enumerate(sorted(Path(clip).glob("*.jpg"))[:frames]):
                (Path(tmp) / f"{k}.jpg").write_bytes(f.read_bytes())
            with torch.inference_mode():
                predictor.init_state(tmp)
    else:
        original = sam2_model.build_model

        def build(name, ckpt, device, *, video):
            return build_sam2_video_predictor(sam2_model.MODELS["sam2.1_hiera_t"],
                                              ckpt_path=str(ckpt), device=device,
                                              hydra_overrides_extra=overrides)
        sources.build_model = build if overrides else original
        options = Sam2VideoOptions(checkpoint=checkpoint, auto_seed=False, window=window,
                                   prompts=[{"id": 1, "box": [100, 200, 400, 450]}])
        source = Sam2VideoSource(options, SourceContext("cpu"))
        for k, _ in enumerate(source.frames(VideoReader(clip, max_frames=frames)), start=1):
            if k in marks:
                # The windowed source never reads past its current window, so the peak after
                # k frames of a long clip is the peak of a k-frame clip.
                print(json.dumps({"frames": k, "peak_rss_mb": _peak_rss_mb()}), flush=True)
    print(json.dumps({"frames": frames, "peak_rss_mb": _peak_rss_mb()}), flush=True)


def _child(mode: str, clip: Path, frames: int, checkpoint: str, image_size: int, window: int,
           marks: list[int]) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "samtrack.eval.bench.sam2_bench", "--child", mode, str(clip),
         str(frames), checkpoint, str(image_size), str(window), ",".join(map(str, marks))],
        capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"memory child ({mode}, {frames} frames) failed: "
                         f"{done.stderr.strip().splitlines()[-1:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def memory(checkpoint: str, sizes: list[int], image_size: int, window: int,
           one_run: bool = False) -> dict:
    """Peak RSS per clip length. ``one_run``: the windowed source runs once over the longest
    clip and reports its peak after each length (it must propagate every frame, about 10 s per
    frame at 1024 px on this CPU, so separate runs would triple the time)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = _clip(Path(tmp), max(sizes))
        for n in sizes:
            rss = _child("plain", clip, n, checkpoint, image_size, window, [])[-1]["peak_rss_mb"]
            out[f"plain_{n}"] = rss
            print(f"  plain    {n:4d} frames: peak RSS {rss:8.0f} MB", flush=True)
        runs = [(max(sizes), sizes)] if one_run else [(n, []) for n in sizes]
        for n, marks in runs:
            for record in _child("windowed", clip, n, checkpoint, image_size, window, marks):
                if record["frames"] in sizes and f"windowed_{record['frames']}" not in out:
                    out[f"windowed_{record['frames']}"] = record["peak_rss_mb"]
                    print(f"  windowed {record['frames']:4d} frames: peak RSS "
                          f"{record['peak_rss_mb']:8.0f} MB", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        mode, clip, frames, ckpt, size, window, marks = argv[1:8]
        _memory_child(mode, clip, int(frames), ckpt, int(size), int(window),
                      frozenset(int(m) for m in marks.split(",") if m))
        return 0
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.sam2_bench",
                                     description=__doc__)
    parser.add_argument("what", choices=["speed", "memory", "all"])
    parser.add_argument("--checkpoint", help="SAM2.1 Hiera-T checkpoint")
    parser.add_argument("--random-checkpoint", metavar="PATH",
                        help="write a random-weight Hiera-T checkpoint here and use it")
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--frames", type=int, default=4, help="frames for the speed test")
    parser.add_argument("--sizes", default="100,200,300")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--one-run", action="store_true",
                        help="windowed: one run over the longest clip, peak read at each size")
    args = parser.parse_args(argv)
    checkpoint = args.checkpoint
    if args.random_checkpoint:
        checkpoint = str(save_random_checkpoint(args.model, args.random_checkpoint))
    if checkpoint is None:
        parser.error("--checkpoint or --random-checkpoint is required")
    cv2.setNumThreads(1)
    if args.what in ("speed", "all"):
        r = speed(checkpoint, args.frames, args.model)
        print(f"sam2-video ({args.model}, 1024 px, CPU): {r['video_s_per_frame']:.2f} s/frame "
              f"over {r['frames']} frames; samtrack overhead {r['overhead_pct']:.2f}% of SAM2 "
              "time")
        print(f"sam2-auto  ({args.model}, 1024 px, CPU): {r['auto_s_per_frame']:.2f} s/frame")
    if args.what in ("memory", "all"):
        print(f"peak RSS, SAM2 input {args.image_size} px, window {args.window}:")
        memory(checkpoint, [int(s) for s in args.sizes.split(",")], args.image_size,
               args.window, args.one_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

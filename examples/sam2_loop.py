"""SAM2's video predictor feeding samtrack: SAM2 segments, samtrack keeps the identities.

SAM2 follows each prompted object well but can hand one object's mask to a look-alike, or
lose an object that leaves and comes back. Here every frame SAM2 yields goes straight into
samtrack's tracker (``from_sam2`` takes SAM2's ``(frame_idx, obj_ids, mask_logits)`` as they
come), and the finished result is saved as a run folder for ``samtrack viz`` / ``export``::

    python examples/sam2_loop.py FRAMES_DIR --box 10,10,60,50 --box 100,30,150,80 \
        --model tiny --out runs/sam2_loop
    samtrack viz runs/sam2_loop
    samtrack export runs/sam2_loop --format csv

FRAMES_DIR is a folder of JPEG frames named by number (what SAM2's ``init_state`` reads).
The checkpoint defaults to ``checkpoints/<model>.pt`` (``bash checkpoints/download.sh tiny``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

import samtrack as st


def track(predictor, frames_dir: str | Path, boxes: Sequence[Sequence[float]],
          tracker: st.Tracker) -> Iterator[st.FrameObjects]:
    """Prompt SAM2 with one box per object on the first frame, propagate, and pass each
    frame's masks through ``tracker``; yields the tracked objects frame by frame."""
    frames = sorted(Path(frames_dir).glob("*.jp*g"), key=lambda p: int(p.stem))
    state = predictor.init_state(str(frames_dir))
    for obj_id, box in enumerate(boxes, start=1):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id,
                                        box=np.asarray(box, np.float32))
    for frame_idx, obj_ids, mask_logits in predictor.propagate_in_video(state):
        objects = st.from_sam2(frame_idx, obj_ids, mask_logits)
        image = cv2.imread(str(frames[frame_idx]))  # OpenCV reads BGR: say so
        yield tracker.update(objects, image, color="bgr")


def _box(text: str) -> list[float]:
    values = [float(v) for v in text.split(",")]
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: a box is x1,y1,x2,y2")
    return values


def main(argv: Sequence[str] | None = None, predictor=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("frames", type=Path, help="folder of numbered JPEG frames")
    parser.add_argument("--box", type=_box, action="append", required=True,
                        help="x1,y1,x2,y2 of one object on the first frame (repeat per object)")
    parser.add_argument("--model", default="tiny", help="SAM2.1 size: tiny, small, "
                        "base_plus, large")
    parser.add_argument("--checkpoint", help="SAM2 checkpoint (default checkpoints/<model>.pt)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    parser.add_argument("--out", type=Path, default=Path("runs/sam2_loop"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if predictor is None:
        from samtrack.pipeline.core.device import resolve_device
        from samtrack.pipeline.sources.sam2_model import build_model

        predictor = build_model(args.model, args.checkpoint, resolve_device(args.device),
                                video=True)
    # SAM2 gives each prompted object its id: tell the tracker how many individuals there are
    tracker = st.TrackerConfig(num_identities=len(args.box)).build()
    for objects in track(predictor, args.frames, args.box, tracker):
        print(f"frame {objects.frame_index}: ids {objects.track_ids.tolist()}", flush=True)
    folder = st.save_result(tracker.finalize(), args.out, video=args.frames,
                            overwrite=args.overwrite)
    print(f"run folder: {folder}\nnext: samtrack viz {folder}")
    return folder


if __name__ == "__main__":
    main()

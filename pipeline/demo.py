"""The bundled demo: a generated clip of look-alike sheep, end to end, with no download.

1. Generates the scene (frames + ground truth) in ``<out>/scene``.
2. Feeds it as SAM2-style masks with SAM2's failures (ids swapped and renewed on re-entry,
   dropped frames, spurious blobs, duplicates; :mod:`eval.failures`) and compares the raw
   source ids with samtrack's ids, rendering the side-by-side trails video.
3. Runs the weight-free ``motion`` source on the pixels themselves, tracked by samtrack.
4. Runs the library loop of the README (``Tracker``, ``FrameObjects.from_masks``,
   ``finalize``, ``evaluate``) on the same SAM2-style masks: what a user feeding their own
   segmenter frame by frame gets.
"""

from __future__ import annotations

from pathlib import Path

from samtrack.eval.bench.failures import FailureSpec, simulate
from samtrack.eval.bench.scenes import Scene, SceneSpec
from samtrack.eval.data import load_tracks
from samtrack.eval.report import evaluate, evaluate_pairs
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.pipeline.core.video import VideoReader
from samtrack.pipeline.render import VizOptions, render
from samtrack.pipeline.runner import RunResult, run
from samtrack.pipeline.writers import default_writers
from samtrack.reid.config import TrackerConfig

DEMO_SPEC = SceneSpec(num_animals=2, num_frames=200, seed=1)
DEMO_FAILURES = FailureSpec(swap_on_reentry=1.0, new_id_on_reentry=0.0, drop=0.01, jitter=0.3,
                            spurious=0.02, duplicate=0.005, seed=3)


def format_metrics(m: dict) -> str:
    return (f"IDF1 {m['idf1']:.3f}  HOTA {m['hota']:.3f}  MOTA {m['mota']:.3f}  "
            f"ID switches {m['idsw']}  FP {m['fp']}  FN {m['fn']}")


def run_demo(out: str | Path = "demo_output", *, quiet: bool = False,
             spec: SceneSpec = DEMO_SPEC) -> dict:
    out = Path(out)
    scene = Scene(spec)
    scene_dir = scene.write(out / "scene", name="demo-sheep")
    gt_path = scene_dir / "gt" / "masks"
    sim = simulate((g.compact() for g in scene.ground_truth()), DEMO_FAILURES)
    sim.write_mots(scene_dir / "sam2_like_masks.txt")
    common = {"video.path": str(scene_dir / "img1"), "video.fps": spec.fps,
              "eval.gt": str(gt_path), "output.overwrite": True, "quiet": quiet}
    # the canonical case: the user knows there are exactly two sheep
    sam2 = run(load_config(None, {**common, "source.name": "masks",
                                  "tracker.num_identities": spec.num_animals,
                                  "tracker.identities": "offline",
                                  "source.masks.path": str(scene_dir / "sam2_like_masks.txt"),
                                  "output.dir": str(out / "run_sam2_like")}))
    gt = load_tracks(gt_path)
    raw = evaluate_pairs({gt.name: (gt, load_tracks(sam2.out_dir / "source_mots.txt"))})
    viz = render(sam2.out_dir, VizOptions(side_by_side=True, gt=str(gt_path)))
    motion = run(load_config(None, {**common, "source.name": "motion",
                                    "output.dir": str(out / "run_motion"),
                                    "output.writers": [*default_writers(), "binary"]}))
    # the same masks through the library API, frame by frame
    tracker = TrackerConfig(identities="offline", num_identities=spec.num_animals).build()
    masks_by_frame = {f.frame_index: f for f in sim.frames}
    for frame in VideoReader(scene_dir / "img1"):
        given = masks_by_frame[frame.index]
        tracker.update(FrameObjects.from_masks(given.masks, source_ids=given.source_ids),
                       frame.image)
    library = evaluate(gt=gt_path, pred=tracker.finalize()).combined
    return {"sam2": sam2, "raw": raw.combined, "viz": viz, "motion": motion,
            "library": library,
            "failures": {k: sim.count(k) for k in ("swap_on_reentry", "new_id_on_reentry",
                                                   "drop", "spurious", "duplicate")}}


def main(out: str | Path = "demo_output", quiet: bool = False) -> int:
    result = run_demo(out, quiet=quiet)
    sam2: RunResult = result["sam2"]
    motion: RunResult = result["motion"]
    failures = ", ".join(f"{v} {k}" for k, v in result["failures"].items() if v)
    print(f"samtrack demo: {DEMO_SPEC.num_animals} look-alike sheep, {sam2.frames} frames, "
          f"leaving and re-entering the view")
    print(f"  scene + ground truth  : {Path(out) / 'scene'}")
    print(f"  SAM2-style masks with : {failures}")
    print(f"    raw source ids      : {format_metrics(result['raw'])}")
    assert sam2.metrics is not None and motion.metrics is not None
    print(f"    samtrack ids        : {format_metrics(sam2.metrics)}  "
          f"(told: {DEMO_SPEC.num_animals} sheep; offline)")
    print(f"    identity repairs    : {len(sam2.repairs)} (summary.json 'repairs')")
    print(f"    side-by-side video  : {result['viz']['trails.mp4']}")
    print(f"    timeline / gallery  : {result['viz']['timeline.png']}, "
          f"{result['viz']['gallery.png']}")
    print("  weight-free 'motion' source on the pixels, tracked by samtrack:")
    print(f"    samtrack ids        : {format_metrics(motion.metrics)}")
    print(f"    overlay video       : {motion.out_dir / 'overlay.mp4'}")
    print("  library API (README loop: Tracker.update per frame, finalize, evaluate):")
    print(f"    samtrack ids        : {format_metrics(result['library'])}")
    return 0

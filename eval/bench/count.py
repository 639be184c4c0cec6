"""How often the identity engine estimates the number of individuals right (no
``num_identities`` given): per scene the estimate in ``summary.json``'s
``identities.num_identities`` against the number of individuals in the ground truth.

    python -m samtrack.eval.bench.count --sets long --scenes 6 --split report
"""

from __future__ import annotations

import argparse
import sys

from samtrack.eval.bench.harness import method_factories, synthetic_clip
from samtrack.eval.bench.sets import scene_sets, unknown_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.count",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="long")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--split", choices=["tune", "report"], default="report")
    args = parser.parse_args(argv)
    sets = tuple(s for s in args.sets.split(",") if s)
    if (unknown := unknown_set(sets)) is not None:
        parser.error(f"--sets: {unknown}")
    factory, _ = method_factories(["samtrack-offline"], "histogram")["samtrack-offline"]
    right = total = 0
    for bench_scene in scene_sets(args.scenes, sets=sets,
                                  split=args.split):
        clip = synthetic_clip(bench_scene)
        tracker = factory(clip)
        for t, objects in enumerate(clip.inputs):
            tracker.update(objects, clip.image(t))
        estimate = tracker.finalize().identities["num_identities"]
        truth = len({int(i) for t in range(len(clip.inputs))
                     for i in clip.gt.get(t + 1).ids})
        right += estimate == truth
        total += 1
        print(f"{clip.name:18s} {len(clip.inputs):5d} frames: estimated {estimate}, "
              f"true {truth}", flush=True)
    print(f"right on {right} of {total} scenes ({args.split} split)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How much less distinct a half-view (an object cut by the picture's border) is than a clean
view, per clip, on the true masks: the quantity behind ``appearance.border_weight``.

    python -m samtrack.eval.bench.half_views --split tune

Why: the two scene families disagree on that weight (``eval/results/tuned_both_ways.md``).
Per clip, every true object of its first ``--frames`` frames is embedded (the histogram
embedder by default); each identity's reference is the mean of its clean views (apart from
the others, not at the border); each apart view is scored by its distance to its own
reference over the distance to the nearest other one. Printed per kind of view: how often its
own reference is the nearest, the median ratio, and the clean median over the half-view
median: the weight a clip would give half-views if it knew who is who.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from samtrack.eval.bench.sets import BenchScene, scene_sets
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.config import AssociationOptions
from samtrack.reid.embedders import build_embedder
from samtrack.reid.tracker import frame_borders, isolated

CLIPS = (("lookalike", 0), ("lookalike", 1), ("long", 0), ("arena-exits", 0),
         ("arena-exits", 1), ("arena-long", 0))


def half_view_ratios(bench: BenchScene, frames: int, embedder: str = "histogram") -> dict:
    """``{"clean": (views, own nearest, median ratio), "half": (...), "weight": float}``."""
    embed = build_embedder(embedder)
    margin = AssociationOptions().border_margin
    views, ids, half, apart = [], [], [], []
    for t, (image, id_map) in enumerate(bench.frames()):
        if t >= frames:
            break
        objects = FrameObjects.from_id_map(id_map, frame_index=t)
        if not len(objects):
            continue
        boxes = objects.boxes
        views.append(embed.embed(image, objects))
        ids.append(np.asarray(objects.source_ids))
        half.append(np.array([bool(frame_borders(b, objects.image_size, margin))
                              for b in boxes]))
        apart.append(isolated(boxes))
    views, ids, half, apart = map(np.concatenate, (views, ids, half, apart))
    clean = apart & ~half
    known = np.unique(ids[clean])
    references = np.stack([views[clean & (ids == i)].mean(axis=0) for i in known])
    scored = apart & np.isin(ids, known)
    distance = np.linalg.norm(views[scored][:, None, :] - references[None], axis=2)
    column = np.searchsorted(known, ids[scored])
    own = distance[np.arange(len(distance)), column]
    distance[np.arange(len(distance)), column] = np.inf
    ratio = own / np.maximum(distance.min(axis=1), 1e-9)
    out: dict = {}
    for kind, rows in (("clean", ~half[scored]), ("half", half[scored])):
        out[kind] = ((int(rows.sum()), float((ratio[rows] < 1).mean()),
                      float(np.median(ratio[rows]))) if rows.any() else (0, float("nan"),
                                                                          float("nan")))
    out["weight"] = out["clean"][2] / out["half"][2] if out["half"][0] else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.half_views",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["tune", "report"], default="tune")
    parser.add_argument("--frames", type=int, default=1500, help="first frames of each clip")
    args = parser.parse_args(argv)
    print("| clip | clean: views, own nearest, own/other | half: views, own nearest, "
          "own/other | clean / half |")
    print("|---|---|---|---|")
    for set_name, k in CLIPS:
        bench = scene_sets(k + 1, 300, (set_name,), args.split)[k]
        r = half_view_ratios(bench, args.frames)
        (cn, cr, cm), (hn, hr, hm) = r["clean"], r["half"]
        print(f"| `{bench.name}` | {cn}, {cr:.3f}, {cm:.3f} | {hn}, {hr:.3f}, {hm:.3f} | "
              f"{r['weight']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Identity timeline of a long clip, before and after samtrack: the README's picture.

One row per true individual, time along x; each stretch is coloured by the identity the method
gave that individual at that frame (grey: no label). A perfect answer is one colour per row
and a different colour on every row; every colour change along a row is an identity switch.

    python -m samtrack.eval.bench.timeline --out docs/timeline.png

The clip is a ``long`` scene of the *tuning* split (the picture illustrates, it does not
report), tracked by the same code as the benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt
import numpy as np

from samtrack.eval.bench.harness import (
    Clip,
    _Ceiling,
    _Raw,
    method_factories,
    run_method,
    synthetic_clip,
)
from samtrack.eval.bench.sets import scene_sets
from samtrack.pipeline.core.frames import FrameObjects


def identity_rows(clip: Clip, outputs: list[FrameObjects]) -> dict[int, np.ndarray]:
    """true id -> the output id per frame (-1: not labelled or not visible)."""
    truth = [_Ceiling(clip).update(o).track_ids for o in clip.inputs]
    ids = sorted({int(i) for t in truth for i in t if i > 0})
    rows = {i: np.full(len(outputs), -1, np.int64) for i in ids}
    for t, (true_ids, out) in enumerate(zip(truth, outputs, strict=True)):
        for true, given in zip(true_ids.tolist(), out.track_ids.tolist(), strict=True):
            if true > 0:
                rows[true][t] = given
    return rows


def draw(ax, rows: dict[int, np.ndarray], title: str, colours: dict[int, tuple]) -> int:
    switches = 0
    for r, (_true, given) in enumerate(rows.items()):
        start = 0
        for t in range(1, len(given) + 1):
            if t == len(given) or given[t] != given[start]:
                colour = colours.get(int(given[start]), (0.9, 0.9, 0.9))
                ax.barh(r, t - start, left=start, height=0.8, color=colour)
                start = t
        labelled = given[given > 0]
        switches += int((labelled[1:] != labelled[:-1]).sum())
    ax.set_yticks(range(len(rows)), [f"animal {i}" for i in rows])
    ax.set_title(f"{title}: {switches} identity changes along the rows")
    return switches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.timeline",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/timeline.png")
    parser.add_argument("--scene", type=int, default=1, help="which long scene (tune split)")
    args = parser.parse_args(argv)
    bench_scene = scene_sets(args.scene + 1, sets=("long",), split="tune")[args.scene]
    clip = synthetic_clip(bench_scene)
    raw = run_method(lambda c: _Raw(), clip).outputs
    factory, offline = method_factories(["samtrack-offline"], "histogram")["samtrack-offline"]
    after = run_method(factory, clip, offline).outputs
    before_rows, after_rows = identity_rows(clip, raw), identity_rows(clip, after)
    palette = plt.get_cmap("tab20").colors
    given = sorted({int(i) for r in [*before_rows.values(), *after_rows.values()]
                    for i in r if i > 0})
    colours = {i: palette[n % len(palette)] for n, i in enumerate(given)}
    fig, axes = plt.subplots(2, 1, figsize=(12, 4.5), sharex=True)
    draw(axes[0], before_rows, "input (mask source's ids)", colours)
    draw(axes[1], after_rows, "samtrack offline", colours)
    axes[1].set_xlabel(f"frame ({clip.name}: {len(clip.inputs)} frames, tuning split); "
                       "grey = no label or not visible")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real masks whose ids mean nothing from one stretch to the next: can samtrack name them?

A per-frame segmenter (SAM2's image model, Cellpose, a detector) numbers its masks anew every
time; the identities must come from the tracker alone. Here zebrafish-07's true masks get
fresh ids in a random order every ``--every`` frames (:class:`FailureSpec` ``relabel_every``,
nothing else injected), and the offline engine, told how many animals there are, names them.
Each crop is its own row: the full well (crossings) and its right half (exits and returns, so
identities must be recovered from appearance alone). Columns: IDF1 of the input's ids, of
samtrack and of the ceiling (the same masks with their true ids), the share of the ceiling, ID
switches, and how many input masks got no identity in the output.

    python -m samtrack.eval.bench.relabel --real ../shared/data/real
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from samtrack.eval.bench.failures import FailureSpec
from samtrack.eval.bench.harness import Clip, method_factories, real_clip, run_method
from samtrack.eval.data import sequence_from_frames
from samtrack.eval.report import evaluate_pairs

CROPS = ("full", "right")


def score(clip: Clip, outputs) -> dict:
    pairs = {clip.name: (clip.gt, sequence_from_frames(outputs, clip.name))}
    return evaluate_pairs(pairs).combined


def dropped_masks(clip: Clip, outputs) -> int:
    """Input masks that left the tracker without an identity."""
    given = sum(len(o) for o in clip.inputs)
    named = sum(int((o.track_ids > 0).sum()) for o in outputs)
    return given - named


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.relabel",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", default="../shared/data/real")
    parser.add_argument("--every", type=int, default=30, help="frames between renumberings")
    parser.add_argument("--methods", default="samtrack-offline,"
                        "samtrack-offline:learned.enabled=true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    seq = Path(args.real) / "zebrafish-07"
    methods = args.methods.split(",")
    print("| clip | method | input idf1 | idf1 | ceiling | share | idsw | masks dropped | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for crop in CROPS:
        clip = real_clip(seq, crop, failures=FailureSpec(relabel_every=args.every,
                                                         seed=args.seed))
        given = {"raw": None, "ceiling": None}
        for name, (factory, _) in method_factories(list(given), "histogram").items():
            given[name] = score(clip, run_method(factory, clip).outputs)["idf1"]
        factories = method_factories([f"{m}:num_identities=4" for m in methods], "histogram")
        for name, (factory, offline) in factories.items():
            started = time.perf_counter()
            outputs = run_method(factory, clip, offline).outputs
            spent = time.perf_counter() - started
            m = score(clip, outputs)
            print(f"| {clip.name} | {name} | {given['raw']:.3f} | {m['idf1']:.3f} | "
                  f"{given['ceiling']:.3f} | {m['idf1'] / given['ceiling']:.3f} | "
                  f"{m['idsw']} | {dropped_masks(clip, outputs)} | {spent:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

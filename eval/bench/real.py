"""Real clips end to end, from their pixels, with the command a new user types.

Each clip of ``shared/data/real`` is run as ``samtrack run --video CLIP`` with every default
(the ``auto`` source, online tracking), once as it is and once told how many animals there
are (``tracker.num_identities``), and scored against the clip's true points (the animal's
point inside, or within ``--radius`` px of, its mask: :mod:`eval.points`). Every clip is its
own row: these are the footage nobody tuned on, and an average would hide the one that fails.
The table also says what the source derived from each clip (polarity, thresholds, one
animal's area, the count, the arena), so a reader can see how it decided.

Usage: ``python -m samtrack.eval.bench.real --real ../shared/data/real --out eval/results``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from samtrack.eval.data import load_tracks
from samtrack.eval.points import DEFAULT_RADIUS
from samtrack.eval.report import evaluate_pairs
from samtrack.pipeline.config import load_config
from samtrack.pipeline.core.formats import write_text_atomic
from samtrack.pipeline.runner import run


@dataclass(frozen=True)
class RealClip:
    name: str
    video: str  # relative to the real-data folder
    truth: str
    animals: int


CLIPS = (
    RealClip("zebrafish-07", "zebrafish-07/img1", "zebrafish-07/gt/centroids.txt", 4),
    RealClip("flies-2", "flies-2/video.mp4", "flies-2/labels.slp", 2),
    RealClip("flies-2-long", "flies-2-long/video.mp4", "flies-2-long/labels.slp", 2),
)
COLUMNS = ["clip", "told", "source", "count", "tracks", "idf1", "mota", "idsw", "fp", "fn",
           "ms_per_frame", "source_ms", "fit_s", "derived"]


def run_clip(root: Path, clip: RealClip, told: bool, work: Path,
             radius: float = DEFAULT_RADIUS) -> dict:
    """One default run of a clip, scored on its points."""
    overrides = {"video.path": str(root / clip.video), "output.dir": str(work / clip.name),
                 "output.overwrite": True, "quiet": True}
    if told:
        overrides["tracker.num_identities"] = clip.animals
    config = load_config(None, overrides)
    started = time.perf_counter()
    result = run(config)
    wall = time.perf_counter() - started
    summary = json.loads((result.out_dir / "summary.json").read_text())
    truth = load_tracks(root / clip.truth, clip.name)
    report = evaluate_pairs({clip.name: (truth, load_tracks(result.out_dir, clip.name))},
                            radius=radius)
    m = report.combined
    details = summary.get("source_details", {})
    derived = ", ".join(f"{k} {details[k]}" for k in
                        ("polarity", "low", "high", "single_area", "roi_found") if k in details)
    return {
        "clip": clip.name, "told": clip.animals if told else "-",
        "source": details.get("chosen", summary["source"]),
        "count": f"{details.get('count', '-')} of {clip.animals}",
        "tracks": summary["num_tracks"], "idf1": m["idf1"], "mota": m["mota"],
        "idsw": m["idsw"], "fp": m["fp"], "fn": m["fn"],
        "ms_per_frame": round(1000 * wall / max(result.frames, 1), 1),
        "source_ms": summary["ms_per_frame"]["source"],
        "fit_s": details.get("fit_s", "-"), "derived": derived,
    }


def _cell(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--real", default="../shared/data/real", help="the real clips' folder")
    parser.add_argument("--out", default=None, help="write real.md here (default: print only)")
    parser.add_argument("--clips", default=",".join(c.name for c in CLIPS),
                        help="comma-separated clip names")
    parser.add_argument("--radius", type=float, default=DEFAULT_RADIUS,
                        help="px: a true point this near a mask matches it")
    args = parser.parse_args(argv)
    root = Path(args.real)
    wanted = [c for c in CLIPS if c.name in args.clips.split(",")]
    missing = [c.name for c in wanted if not (root / c.video).exists()]
    if missing or not wanted:
        print(f"samtrack: error: {root}: no clip {', '.join(missing) or args.clips}",
              file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in wanted:
            for told in (False, True):
                rows.append(run_clip(root, clip, told, Path(tmp), args.radius))
                print(" | ".join(_cell(rows[-1][k]) for k in COLUMNS), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = ["Real clips from their pixels: `samtrack run --video CLIP` with every default "
             "(count not given, then told), scored on the true points within "
             f"{args.radius:g} px (`python -m samtrack.eval.bench.real`). Peak RSS of the "
             f"whole benchmark process {peak:.0f} MB.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[k]) for k in COLUMNS) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(args.out) / "real.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

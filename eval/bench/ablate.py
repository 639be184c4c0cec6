"""The online tracker's gallery rules switched off one at a time, on the tuning split.

    python -m samtrack.eval.bench.ablate reentry.contrast=null reentry.hold_contested=off ...
    python -m samtrack.eval.bench.ablate --family arena ...

Why: the rules (re-entry contrast, border prior, holding contested re-entries, duplicate
containment) were added for failures of the scene generator; each stays on by default only
where turning it off measurably hurts. Every argument is ``key=value`` of ``tracker:`` (the
value read as YAML, so ``null`` is None); the first row is the defaults. Reported per group:
IDF1 and identity switches of ``samtrack-online`` over the group's clips combined.

``--family arena`` runs the same on the second scene generator (:mod:`eval.bench.arena`),
whose scenes no default was chosen on: a rule kept for the meadow scenes should not cost
there, and what the arena's tune seeds prefer is checked on the meadow's report seeds (tuning
one family and reporting on the other, both ways).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from pydantic import ValidationError

from samtrack.eval.bench.harness import (
    Clip,
    method_factories,
    real_clip,
    run_method,
    synthetic_clip,
)
from samtrack.eval.bench.sets import SPLIT_SEEDS, scene_sets
from samtrack.eval.data import sequence_from_frames
from samtrack.eval.report import evaluate_pairs
from samtrack.pipeline.core.configbase import format_error
from samtrack.reid.config import TrackerConfig

FAMILIES = {"meadow": (("lookalike", "crowded"), "long"),
            "arena": (("arena", "arena-exits", "arena-crowded"), "arena-long")}


def _groups(split: str, real: str | None, long_scenes: int, family: str = "meadow",
            ) -> dict[str, list[Clip]]:
    short, long = FAMILIES[family]
    groups = {name: [synthetic_clip(bs) for bs in scene_sets(3, 300, (name,), split)]
              for name in short}
    groups[long] = [synthetic_clip(bs) for bs in scene_sets(long_scenes, 300, (long,), split)]
    if real:
        groups["real"] = [real_clip(seq, crop, seed=SPLIT_SEEDS[split])
                          for seq in sorted(p for p in Path(real).iterdir()
                                            if (p / "gt").is_dir())
                          for crop in ("full", "right")]
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.ablate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--split", choices=["tune", "report"], default="tune")
    parser.add_argument("--real", default=None, metavar="DIR")
    parser.add_argument("--long-scenes", type=int, default=5)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="meadow",
                        help="scene generator: meadow (what the defaults were tuned on) or arena")
    args = parser.parse_args(argv)
    variants: dict[str, dict] = {"defaults": {}}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"{item}: expected KEY=VALUE")
        # YAML reads a bare off as False; hold_contested takes the word itself
        variants[item] = {key: yaml.safe_load(value) if value != "off" else "off"}
        try:  # a typo fails here, in one line, before minutes of scene generation
            TrackerConfig.from_dotted(variants[item])
        except ValidationError as exc:
            parser.error(f"{item}: {format_error(exc.errors()[0], ('tracker',))}")
        except ValueError as exc:  # a flat key of earlier versions
            parser.error(f"{item}: {exc}")
    groups = _groups(args.split, args.real, args.long_scenes, args.family)
    samtrack, _ = method_factories(["samtrack-online"], "histogram")["samtrack-online"]
    print("| variant | " + " | ".join(f"{g} IDF1 (idsw)" for g in groups) + " |")
    print("|---|" + "---|" * len(groups))
    for name, override in variants.items():
        cells = []
        for clips in groups.values():
            pairs = {c.name: (c.gt, sequence_from_frames(
                run_method(lambda clip, o=override: samtrack(clip, **o), c).outputs, c.name))
                for c in clips}
            m = evaluate_pairs(pairs).combined
            cells.append(f"{m['idf1']:.3f} ({m['idsw']})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

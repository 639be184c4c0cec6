"""Evaluate one sequence or a folder of sequences and write the report.

:func:`evaluate_paths` is what ``samtrack eval`` runs: load, pair (with the benchmark's
preprocessing), compute motmetrics' CLEAR/identity metrics, TrackEval's HOTA, and the list of
every ID switch and fragmentation. :meth:`EvalReport.write` saves ``metrics.json``,
``metrics.csv``, ``eval.json`` and ``switches.csv``; :meth:`EvalReport.table` is the stdout view.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from samtrack.eval import hota as hota_mod
from samtrack.eval.data import (
    SequenceTracks,
    discover_sequences,
    find_prediction,
    ground_truth_path,
    load_tracks,
    sequence_from_frames,
)
from samtrack.eval.metrics import Fragmentation, Switch, accumulate, clear_metrics, switch_report
from samtrack.eval.pairing import pair_sequences
from samtrack.eval.points import DEFAULT_RADIUS
from samtrack.pipeline.core.formats import write_text_atomic
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.base import TrackResult

HEADLINE = ["hota", "deta", "assa", "idf1", "mota", "motp", "idsw", "frag", "fp", "fn", "mt",
            "pt", "ml", "gt_ids"]


@dataclass
class EvalReport:
    combined: dict[str, Any]
    sequences: dict[str, dict[str, Any]]
    switches: list[Switch] = field(default_factory=list)
    fragmentations: list[Fragmentation] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``--format json`` object: ratios as fractions in [0, 1], counts as integers."""
        return {"combined": self.combined, "sequences": self.sequences}

    def table(self) -> str:
        rows = [("sequence", *HEADLINE)]
        names = list(self.sequences) + (["COMBINED"] if len(self.sequences) > 1 else [])
        for name in names:
            m = self.combined if name == "COMBINED" else self.sequences[name]
            rows.append((name, *(_fmt(m.get(k)) for k in HEADLINE)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                           enumerate(zip(r, widths, strict=True))) for r in rows]
        lines.append(f"{len(self.switches)} ID switches, {len(self.fragmentations)} "
                     "fragmentations" + (":" if self.switches else ""))
        for s in self.switches[:20]:
            lines.append(f"  switch  {s.sequence} frame {s.frame}: gt {s.gt_id} "
                         f"pred {s.previous_pred_id} -> {s.new_pred_id}")
        if len(self.switches) > 20:
            lines.append(f"  ... {len(self.switches) - 20} more in switches.csv")
        return "\n".join(lines)

    def write(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / "metrics.json", json.dumps(self.to_json(), indent=2) + "\n")
        keys = list(self.combined)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["sequence", *keys])
        for name, m in [*self.sequences.items(), ("COMBINED", self.combined)]:
            writer.writerow([name, *(m.get(k) for k in keys)])
        write_text_atomic(folder / "metrics.csv", buf.getvalue())
        full = {**self.to_json(), "settings": self.settings,
                "switches": [asdict(s) for s in self.switches],
                "fragmentations": [asdict(f) for f in self.fragmentations]}
        write_text_atomic(folder / "eval.json", json.dumps(full, indent=2) + "\n")
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["sequence", "frame", "gt_id", "previous_pred_id", "new_pred_id"])
        for s in self.switches:
            writer.writerow([s.sequence, s.frame, s.gt_id, s.previous_pred_id, s.new_pred_id])
        write_text_atomic(folder / "switches.csv", buf.getvalue())
        return folder


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def evaluate_pairs(pairs: dict[str, tuple], preproc: str = "auto",
                   iou_threshold: float = 0.5, radius: float = DEFAULT_RADIUS) -> EvalReport:
    """Evaluate ``{name: (gt SequenceTracks, pred SequenceTracks)}``."""
    accs, raw, switches, frags, modes = {}, {}, [], [], {}
    for name, (gt, pred) in pairs.items():
        paired = pair_sequences(gt, pred, preproc, name=name, radius=radius)
        modes[name] = {"preproc": paired.preproc, "measure": paired.measure}
        accs[name] = accumulate(paired, iou_threshold)
        raw[name] = hota_mod.trackeval_sequence(paired)
        s, f = switch_report(accs[name], name)
        switches += s
        frags += f
    combined, per_seq = clear_metrics(accs)
    for name in per_seq:
        per_seq[name].update(hota_mod.summarize(raw[name]))
    combined.update(hota_mod.summarize(hota_mod.combine(raw)))
    settings = {"iou_threshold": iou_threshold, "sequences": modes,
                "point_radius": radius,
                "motp": "mean IoU of matches (TrackEval); motp_dist = motmetrics' 1 - IoU"}
    return EvalReport(combined, per_seq, switches, frags, settings)


def evaluate_paths(gt: str | Path, pred: str | Path, preproc: str = "auto",
                   iou_threshold: float = 0.5, radius: float = DEFAULT_RADIUS) -> EvalReport:
    """One sequence (file/folder vs file/folder) or a folder of ``<seq>/gt/`` sequences."""
    gt, pred = Path(gt), Path(pred)
    seqs = discover_sequences(gt)
    if seqs is None:
        name = gt.parent.parent.name if gt.parent.name == "gt" else gt.stem
        if gt.is_dir() and (gt / "gt").is_dir():
            name = gt.name
        pairs = {name: (load_tracks(gt, name), load_tracks(pred, name))}
    else:
        pairs = {name: (load_tracks(ground_truth_path(folder), name),
                        load_tracks(find_prediction(pred, name), name))
                 for name, folder in seqs.items()}
    return evaluate_pairs(pairs, preproc, iou_threshold, radius)


Tracks = str | Path | SequenceTracks | TrackResult | list[FrameObjects]


def as_sequence(tracks: Tracks, name: str) -> SequenceTracks:
    """Any form of tracks as a :class:`SequenceTracks`: a path (PNG ID maps, MOTS, MOT txt or
    a run folder), a tracker's :class:`TrackResult`, or a list of tracked frames."""
    if isinstance(tracks, SequenceTracks):
        return tracks
    if isinstance(tracks, TrackResult):
        return sequence_from_frames(tracks.frames, name)
    if isinstance(tracks, list):
        return sequence_from_frames(tracks, name)
    return load_tracks(tracks, name)


def evaluate(gt: Tracks, pred: Tracks, *, preproc: str = "auto", iou_threshold: float = 0.5,
             name: str | None = None, radius: float = DEFAULT_RADIUS) -> EvalReport:
    """Score ``pred`` against ``gt``: the numbers ``samtrack eval`` prints, from paths or from
    a tracker's result in memory (``evaluate(gt="gt/", pred=tracker.finalize())``). A path
    that is a folder of ``<seq>/gt/`` sequences is scored per sequence and combined."""
    if isinstance(gt, (str, Path)) and isinstance(pred, (str, Path)):
        return evaluate_paths(gt, pred, preproc, iou_threshold, radius)
    label = name or (Path(gt).stem if isinstance(gt, (str, Path)) else "sequence")
    return evaluate_pairs({label: (as_sequence(gt, label), as_sequence(pred, label))},
                          preproc, iou_threshold, radius)

"""HOTA (with DetA, AssA, LocA) and TrackEval's own CLEAR / Identity, via the ``trackeval`` package.

TrackEval's dataset classes insist on their folder layout and on the pedestrian class; its metric
classes only need matched data. We therefore feed its metric classes directly with the same
:class:`~eval.pairing.PairedSequence` the motmetrics side uses (ids relabelled to 0..K-1, as
TrackEval's datasets do). TrackEval's CLEAR and Identity results are kept as a cross-check of
motmetrics' numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from samtrack.eval.pairing import PairedSequence


def to_trackeval_data(paired: PairedSequence) -> dict[str, Any]:
    gt_all = np.unique(np.concatenate([f.gt_ids for f in paired.frames] or [np.zeros(0, int)]))
    pr_all = np.unique(np.concatenate([f.pred_ids for f in paired.frames] or [np.zeros(0, int)]))
    gt_index = {int(v): i for i, v in enumerate(gt_all)}
    pr_index = {int(v): i for i, v in enumerate(pr_all)}
    return {
        "num_timesteps": paired.num_frames,
        "num_gt_ids": len(gt_all),
        "num_tracker_ids": len(pr_all),
        "num_gt_dets": int(sum(len(f.gt_ids) for f in paired.frames)),
        "num_tracker_dets": int(sum(len(f.pred_ids) for f in paired.frames)),
        "gt_ids": [np.array([gt_index[int(i)] for i in f.gt_ids], dtype=int)
                   for f in paired.frames],
        "tracker_ids": [np.array([pr_index[int(i)] for i in f.pred_ids], dtype=int)
                        for f in paired.frames],
        "similarity_scores": [f.similarity.astype(float) for f in paired.frames],
        "seq": paired.name,
    }


_METRICS = None


def _metrics():
    global _METRICS
    if _METRICS is None:
        # trackeval (with scipy.stats) on first use: `import samtrack` must stay light
        from trackeval.metrics import CLEAR, HOTA, Identity

        _METRICS = (HOTA(), CLEAR({"PRINT_CONFIG": False}), Identity({"PRINT_CONFIG": False}))
    return _METRICS


def trackeval_sequence(paired: PairedSequence) -> dict[str, dict]:
    """Raw TrackEval result dicts ``{"HOTA": ..., "CLEAR": ..., "Identity": ...}``."""
    data = to_trackeval_data(paired)
    return {type(m).__name__: m.eval_sequence(data) for m in _metrics()}


def combine(results: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Combine per-sequence raw results the way TrackEval combines a benchmark."""
    out = {}
    for metric in _metrics():
        key = type(metric).__name__
        out[key] = metric.combine_sequences({seq: res[key] for seq, res in results.items()})
    return out


def summarize(raw: dict[str, dict]) -> dict[str, Any]:
    """samtrack's short names: HOTA family averaged over TrackEval's 19 alpha thresholds."""
    hota, clear, ident = raw["HOTA"], raw["CLEAR"], raw["Identity"]
    return {
        "hota": float(np.mean(hota["HOTA"])),
        "deta": float(np.mean(hota["DetA"])),
        "assa": float(np.mean(hota["AssA"])),
        "loca": float(np.mean(hota["LocA"])),
        "hota_alpha50": float(hota["HOTA"][np.argmin(np.abs(hota_alphas() - 0.5))]),
        "te_mota": float(clear["MOTA"]),
        "te_motp": float(clear["MOTP"]),
        "te_idsw": int(clear["IDSW"]),
        "te_idf1": float(ident["IDF1"]),
    }


def hota_alphas() -> np.ndarray:
    return np.arange(0.05, 0.99, 0.05)

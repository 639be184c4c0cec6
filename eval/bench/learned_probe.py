"""Can a representation learned from one clip tell its look-alikes apart? A probe for issue 32.

On a sequence with true instance masks (``gt/masks``), the animals' *apart stretches* (frames
where an animal's mask touches no other, cut where it touches one or is missing) play the part
of the identity engine's fragments. A small CNN is trained on the first half of the clip only
from what a tracker would know without the answer: views of one stretch are one individual
(positives), stretches present at the same time are different individuals (negatives). Then,
as in the issue's measurement of histograms, each true identity's centroid is taken over its
first-half views and every second-half view is given the nearest centroid's identity.
Reported: that accuracy for the learned embedding and for the colour-histogram embedder, and
the training time.

    python -m samtrack.eval.bench.learned_probe --seq ../shared/data/real/zebrafish-07

The true identities are used only to score (and to name the centroids), never to train.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from samtrack.pipeline.core.formats import id_map_files, read_id_map
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.embedders import HistogramEmbedder
from samtrack.reid.embedders.base import aligned_crops
from samtrack.reid.tracker import touching

CROP = (32, 96)  # height, width of the aligned crop the network sees


def load_views(seq: Path) -> list[dict]:
    """Per true object and frame: its aligned grey crop, histogram embedding, identity, frame
    and whether it is apart from the others."""
    frames = sorted((seq / "img1").glob("*.jpg"))
    maps = id_map_files(seq / "gt" / "masks")
    histogram = HistogramEmbedder()
    views = []
    for t, path in enumerate(frames):
        image = cv2.imread(str(path))
        objects = FrameObjects.from_id_map(read_id_map(maps[path.stem]), frame_index=t)
        if not len(objects):
            continue
        touch = touching(objects.boxes, objects.crops)
        crops = aligned_crops(image, objects)
        hist = histogram.embed(image, objects)
        for i, crop in enumerate(crops):
            grey = cv2.cvtColor(cv2.resize(crop, CROP[::-1]), cv2.COLOR_BGR2GRAY)
            views.append({"frame": t, "id": int(objects.source_ids[i]),
                          "apart": not touch[i].any(), "crop": grey, "hist": hist[i]})
    return views


def stretches(views: list[dict]) -> list[list[int]]:
    """Indices of views in runs of consecutive apart frames of one object."""
    by_id: dict[int, list[int]] = {}
    for k, v in enumerate(views):
        if v["apart"]:
            by_id.setdefault(v["id"], []).append(k)
    out = []
    for ks in by_id.values():
        run = [ks[0]]
        for k in ks[1:]:
            if views[k]["frame"] == views[run[-1]]["frame"] + 1:
                run.append(k)
            else:
                out.append(run)
                run = [k]
        out.append(run)
    return out


class SmallNet(nn.Module):
    def __init__(self, dim: int = 32) -> None:
        super().__init__()

        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, 16), block(16, 32), block(32, 64))
        self.head = nn.Linear(64, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3))
        return nn.functional.normalize(self.head(x), dim=1)


def _tensor(crops: list[np.ndarray]) -> torch.Tensor:
    a = np.stack(crops).astype(np.float32) / 255.0
    a = (a - a.mean(axis=(1, 2), keepdims=True)) / (a.std(axis=(1, 2), keepdims=True) + 1e-6)
    return torch.from_numpy(a[:, None])


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small shifts and brightness changes; a half turn for half of the crops (the aligned
    crop's head-tail order can flip with the pose)."""
    n = len(x)
    turn = torch.rand(n, generator=generator) < 0.5
    x = torch.where(turn[:, None, None, None], torch.flip(x, dims=(2, 3)), x)
    shift = torch.randint(-3, 4, (2,), generator=generator)
    x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
    return x * (1 + 0.1 * torch.randn(n, 1, 1, 1, generator=generator))


def train(views: list[dict], runs: list[list[int]], seconds: float, seed: int = 0,
          ) -> SmallNet:
    """Contrastive training: in each step, stretches present at one frame are the classes
    (InfoNCE on two augmented views of each)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SmallNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    frame_of = [{views[k]["frame"] for k in run} for run in runs]
    frames = sorted(set().union(*frame_of))
    crops = _tensor([v["crop"] for v in views])
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        t = frames[rng.integers(len(frames))]
        present = [r for r, fs in enumerate(frame_of) if t in fs]
        if len(present) < 2:
            continue
        a = [runs[r][rng.integers(len(runs[r]))] for r in present]
        b = [runs[r][rng.integers(len(runs[r]))] for r in present]
        za = net(_augment(crops[a], generator))
        zb = net(_augment(crops[b], generator))
        logits = za @ zb.T / 0.1
        target = torch.arange(len(present))
        loss = nn.functional.cross_entropy(logits, target) + \
            nn.functional.cross_entropy(logits.T, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net.eval()


def nearest_centroid_accuracy(embeddings: np.ndarray, ids: np.ndarray, train: np.ndarray,
                              ) -> float:
    labels = np.unique(ids[train])
    centroids = np.stack([embeddings[train & (ids == i)].mean(axis=0) for i in labels])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
    test = ~train
    guess = labels[np.argmax(embeddings[test] @ centroids.T, axis=1)]
    return float(np.mean(guess == ids[test]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.learned_probe",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq", default="../shared/data/real/zebrafish-07")
    parser.add_argument("--seconds", type=float, default=20.0, help="training budget")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    views = load_views(Path(args.seq))
    apart = np.array([v["apart"] for v in views])
    frames = np.array([v["frame"] for v in views])
    ids = np.array([v["id"] for v in views])
    half = (frames.max() + 1) // 2
    first = frames < half
    keep = apart  # only views of animals apart from the others are judged
    runs = [r for r in stretches(views) if views[r[0]]["frame"] < half]
    runs = [[k for k in r if frames[k] < half] for r in runs]
    hist = np.stack([v["hist"] for v in views])
    hist_acc = nearest_centroid_accuracy(hist[keep], ids[keep], first[keep])
    print(f"{args.seq}: {len(views)} views, {int(apart.sum())} apart, {len(runs)} first-half "
          f"stretches; nearest-centroid accuracy on second-half apart views: "
          f"histogram {hist_acc:.3f}")
    for seed in (int(s) for s in args.seeds.split(",")):
        started = time.perf_counter()
        net = train(views, runs, args.seconds, seed)
        spent = time.perf_counter() - started
        with torch.no_grad():  # both head-tail orders, averaged: the crop's order can flip
            x = _tensor([v["crop"] for v in views])
            learned = nn.functional.normalize(net(x) + net(torch.flip(x, dims=(2, 3))),
                                              dim=1).numpy()
        acc = nearest_centroid_accuracy(learned[keep], ids[keep], first[keep])
        print(f"  learned, seed {seed}: {acc:.3f} (training {spent:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

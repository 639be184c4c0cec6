"""Can a representation learned from one clip tell its look-alikes apart? A probe for issue 32.

On a sequence with true instance masks (``gt/masks``), the animals' *apart stretches* (frames
where an animal's mask touches no other, cut where it touches one or is missing) play the part
of the identity engine's fragments. :func:`reid.embedders.learned.train_representation` learns
from them what a tracker would know without the answer: views of one stretch are one
individual, stretches present at the same time are different individuals. Then each true
identity's centroid is taken over its first-half views and every second-half view is given
the nearest centroid's identity. Two protocols, each a row:

* ``first half``: trained on the first half's stretches only (the second half never seen);
* ``whole clip``: trained on every stretch, as the identity engine does (no identities used
  either way: the truth only names the centroids and scores).

The colour-histogram embedder is the reference. The true identities are never used to train.

``--told``: how far *any* representation of these images could go on the clip. Each stretch in
turn is held out, classifiers are trained *with the true identities* of all the others (the
same network with a classification head, and a linear discriminant on the images' principal
components), and the held-out stretch's views are named. A representation learned without
labels cannot beat a classifier told the answer on the same images, so this bounds the
unsupervised rows from above.

    python -m samtrack.eval.bench.learned_probe --seq ../shared/data/real/zebrafish-07
    python -m samtrack.eval.bench.learned_probe --seq ../shared/data/real/zebrafish-07 --told
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from samtrack.pipeline.core.formats import id_map_files, read_id_map
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.embedders import HistogramEmbedder
from samtrack.reid.embedders.learned import (
    ImageGeometry,
    LearnedSettings,
    augment,
    identification_images,
    identity_network,
    mask_extents,
    standardise,
    train_representation,
)
from samtrack.reid.tracker import touching


def load_views(seq: Path, long_side: int) -> dict[str, np.ndarray]:
    """Per true object and frame: identification image, histogram embedding, identity, frame,
    and whether it is apart from the others."""
    frames = sorted((seq / "img1").glob("*.jpg"))
    maps = id_map_files(seq / "gt" / "masks")
    objects = [FrameObjects.from_id_map(read_id_map(maps[p.stem]), frame_index=t)
               for t, p in enumerate(frames)]
    geometry = ImageGeometry.from_extents(np.concatenate([mask_extents(o) for o in objects]),
                                          long_side)
    histogram = HistogramEmbedder()
    columns: dict[str, list] = {"image": [], "hist": [], "id": [], "frame": [], "apart": []}
    for t, (path, o) in enumerate(zip(frames, objects, strict=True)):
        if not len(o):
            continue
        image = cv2.imread(str(path))
        columns["image"].extend(identification_images(image, o, geometry))
        columns["hist"].extend(histogram.embed(image, o))
        columns["id"].extend(int(i) for i in o.source_ids)
        columns["frame"].extend([t] * len(o))
        columns["apart"].extend(~touching(o.boxes, o.crops).any(axis=1))
    return {k: np.array(v) for k, v in columns.items()}


def stretches(views: dict[str, np.ndarray], keep: np.ndarray) -> list[np.ndarray]:
    """Rows of runs of consecutive apart frames of one object, among ``keep``."""
    out = []
    for identity in np.unique(views["id"]):
        rows = np.flatnonzero(keep & views["apart"] & (views["id"] == identity))
        if rows.size:
            breaks = np.flatnonzero(np.diff(views["frame"][rows]) != 1) + 1
            out.extend(np.split(rows, breaks))
    return out


def nearest_centroid_accuracy(embeddings: np.ndarray, ids: np.ndarray, train: np.ndarray,
                              ) -> float:
    labels = np.unique(ids[train])
    centroids = np.stack([embeddings[train & (ids == i)].mean(axis=0) for i in labels])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
    guess = labels[np.argmax(embeddings[~train] @ centroids.T, axis=1)]
    return float(np.mean(guess == ids[~train]))


def told_classifier_accuracy(images: np.ndarray, ids: np.ndarray, train: np.ndarray,
                             steps: int, seed: int) -> np.ndarray:
    """Identities of ``images[~train]`` guessed by the identity network with a classification
    head, trained with the true ``ids`` of ``images[train]`` (cross-entropy, the embedder's
    augmentation)."""
    import torch

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = np.unique(ids[train])
    net = torch.nn.Sequential(identity_network(LearnedSettings.dim),
                              torch.nn.Linear(LearnedSettings.dim, len(labels)))
    optimiser = torch.optim.Adam(net.parameters(), lr=LearnedSettings.learning_rate)
    rows = np.flatnonzero(train)
    target = torch.from_numpy(np.searchsorted(labels, ids))
    for _ in range(steps):
        pick = rng.choice(rows, size=min(128, len(rows)))
        logits = net(augment(standardise(images[pick]), generator))
        loss = torch.nn.functional.cross_entropy(logits * 10, target[pick])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        return labels[net(standardise(images[~train])).argmax(dim=1).numpy()]


def linear_discriminant_accuracy(images: np.ndarray, ids: np.ndarray, train: np.ndarray,
                                 ) -> np.ndarray:
    """The same, by a linear discriminant on 30 principal components of the standardised
    images."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    flat = standardise(images).reshape(len(images), -1).numpy()
    pca = PCA(min(30, int(train.sum()) - 1), random_state=0).fit(flat[train])
    lda = LinearDiscriminantAnalysis().fit(pca.transform(flat[train]), ids[train])
    return lda.predict(pca.transform(flat[~train]))


def told_bound(views: dict[str, np.ndarray], steps: int, seed: int) -> None:
    """Leave one stretch out, classifiers told every other stretch's identity (``--told``)."""
    runs = stretches(views, np.ones(len(views["id"]), bool))
    ids, images = views["id"], views["image"]
    right = {"network": [], "linear": []}
    named = 0
    for held in runs:
        rest = np.concatenate([r for r in runs if r is not held])
        if ids[held[0]] not in set(ids[rest].tolist()):
            continue  # its larva has no other stretch: nothing could name it
        named += 1
        subset = np.concatenate([rest, held])
        train = np.zeros(len(subset), bool)
        train[:len(rest)] = True
        truth = ids[held]
        right["network"].extend(told_classifier_accuracy(images[subset], ids[subset], train,
                                                         steps, seed) == truth)
        right["linear"].extend(linear_discriminant_accuracy(images[subset], ids[subset],
                                                            train) == truth)
    print(f"told the identities of every other stretch ({named} of {len(runs)} stretches "
          f"held out in turn; a stretch whose larva has no other one cannot be named)")
    print("| classifier | accuracy on the held-out stretch's views |")
    print("|---|---|")
    for name, hits in right.items():
        print(f"| {name} | {np.mean(hits):.3f} ({int(np.sum(hits))} of {len(hits)}) |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samtrack.eval.bench.learned_probe",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq", default="../shared/data/real/zebrafish-07")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=LearnedSettings.max_steps)
    parser.add_argument("--long-side", type=int, default=LearnedSettings.long_side)
    parser.add_argument("--told", action="store_true",
                        help="the upper bound: classifiers told the other stretches' identities")
    args = parser.parse_args(argv)
    import torch

    if not (Path(args.seq) / "gt" / "masks").is_dir():
        parser.error(f"--seq {args.seq}: no gt/masks folder (a sequence with true masks)")
    torch.set_num_threads(2)
    views = load_views(Path(args.seq), args.long_side)
    if args.told:
        told_bound(views, args.steps, int(args.seeds.split(",")[0]))
        return 0
    apart, frames, ids = views["apart"], views["frame"], views["id"]
    first = frames < (frames.max() + 1) // 2
    k = len(np.unique(ids))
    hist = nearest_centroid_accuracy(views["hist"][apart], ids[apart], first[apart])
    print(f"{args.seq}: {len(ids)} views, {int(apart.sum())} apart, {k} animals; "
          f"nearest-centroid accuracy on second-half apart views")
    print("| representation | trained on | seed | accuracy | training | stopped |")
    print("|---|---|---|---|---|---|")
    print(f"| colour histogram | - | - | {hist:.3f} | - | - |")
    for protocol, keep in (("first half", first), ("whole clip", np.ones_like(first))):
        runs = stretches(views, keep)
        images = [views["image"][r] for r in runs]
        spans = [(int(frames[r[0]]), int(frames[r[-1]])) for r in runs]
        for seed in (int(s) for s in args.seeds.split(",")):
            settings = LearnedSettings(max_steps=args.steps, long_side=args.long_side,
                                       seed=seed)
            started = time.perf_counter()
            embedder, report = train_representation(images, spans, k, settings)
            spent = time.perf_counter() - started
            if embedder is None:
                print(f"| learned | {protocol} | {seed} | - | - | {report.why} |")
                continue
            learned = embedder.embed_images(views["image"])
            acc = nearest_centroid_accuracy(learned[apart], ids[apart], first[apart])
            print(f"| learned | {protocol} ({len(runs)} stretches) | {seed} | {acc:.3f} | "
                  f"{spent:.1f} s, {report.steps} steps | {report.stopped}, silhouette "
                  f"{report.silhouette:.2f}, trusted {report.trusted} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

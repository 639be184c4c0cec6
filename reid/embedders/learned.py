"""``learned``: an appearance representation learned from the clip itself.

Why: look-alike animals (larvae, flies, mice of one strain) differ in details no generic
feature was made for; a colour histogram names the right larva about half the time, ImageNet
features no better. What does tell them apart is learnable from the clip without any label,
the way idtracker.ai (v6) does it: views of one *fragment* (a stretch in which one object was
followed alone, with no crossing) are one individual, and fragments present at the same moment
are different individuals. A small CNN trained contrastively on those pairs puts the views of
one animal together and those of different animals apart.

The pieces:

* :func:`identification_images`: a small colour image of each body, turned so the mask's major
  axis is horizontal and stretched so the body fills it, the outside of the mask set to zero.
  (A fixed-scale crop named zebrafish-07's larvae less often: a bent larva fills a fraction of
  it; eval/results/learned_probe.md.)
* :func:`identity_network`: three conv blocks, global pooling, a linear head; output
  L2-normalised.
* :func:`train_representation`: pairs of views, half from one fragment (pulled within a small
  distance), half from two coexisting fragments (pushed beyond a large one), as idtracker.ai's
  contrastive step; shifts, small rotations, brightness changes and the head-tail half turn as
  augmentation. Stopped by cluster quality: every few steps the views of every fragment are
  embedded, clustered into as many groups as there are individuals, and scored by silhouette;
  the best checkpoint is kept and training stops when that score has not improved for
  ``patience`` checks or the step budget is spent. Fragments held out of training decide
  whether the result is *trusted* (:func:`train_representation`).
* :class:`LearnedEmbedder`: the trained network as an :class:`~reid.embedders.base.Embedder`;
  both head-tail orders are embedded and averaged, since the aligned crop's order can flip. It
  embeds with a copy whose batch norms are folded into the convolutions
  (:func:`inference_network`), in chunks that stay in the CPU's caches.
  A run that used one saves it in its folder (``learned.pt``); ``tracker.embedder: learned``
  with ``tracker.appearance.weights: <run>/learned.pt`` makes it the embedder of another run
  (the same animals filmed again, a live stream after a recorded session).

Seeds are fixed and the budget is in steps, so the same clip gives the same representation
(and the same labels) on the same machine with the same number of torch threads (which sum
in another order with another count); it trains on the run's device (``--device``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from samtrack.pipeline.core.device import resolve_device
from samtrack.pipeline.core.errors import ConfigError
from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.embedders.base import EmbedderSettings, l2_normalize, register_embedder

SAVED_FORMAT = "samtrack-learned-representation-1"


@dataclass(frozen=True)
class LearnedSettings:
    """How the per-clip representation is learned (``tracker.learned``)."""

    long_side: int = 64  # network pixels along the body; across it follows the clip's shape
    dim: int = 16  # size of the embedding
    max_steps: int = 400  # training budget in steps (reproducible); cluster quality may stop first
    # a wall-clock cap on top, only against a machine far slower than a 2-core CPU (400 steps
    # take 20-40 s there): a run it stops is not reproducible, and says so
    seconds: float = 300.0
    batch_pairs: int = 128  # pairs of views per training step, half of them positive
    margins: tuple[float, float] = (0.3, 1.2)  # same-fragment pairs pulled within the first,
    # coexisting-fragment pairs pushed beyond the second (unit-sphere distances)
    learning_rate: float = 2e-3
    check_every: int = 50  # steps between cluster-quality checks
    patience: int = 4  # checks without improvement before stopping
    held_out: float = 0.2  # share of fragments kept out of training to judge the clustering
    min_held_out_pool: int = 5  # fewer usable fragments: judged on the training ones, never
    # trusted
    min_views: int = 2  # views a fragment needs to take part
    judge_views: int = 1500  # views embedded and clustered at each check, at most
    min_pairs: int = 1  # coexisting pairs needed: fewer, nothing to learn from
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class ImageGeometry:
    """The identification images of one clip: ``shape`` (rows, columns) network pixels, the
    columns along the body. Each mask's own extent along and across its major axis is drawn
    onto that shape, so the body fills the image whatever its size or bend; the clip's typical
    aspect ratio sets the rows, so a typical body is not distorted."""

    shape: tuple[int, int]

    @classmethod
    def from_extents(cls, extents: np.ndarray, long_side: int) -> ImageGeometry:
        """From the clip's masks' extents ``(n, 2)`` (along, across the major axis)."""
        extents = np.asarray(extents, np.float32).reshape(-1, 2)
        extents = extents[extents[:, 0] > 0]
        ratio = float(np.median(extents[:, 1] / extents[:, 0])) if len(extents) else 1.0
        rows = int(max(16, 8 * round(long_side * min(ratio, 1.0) / 8)))
        return cls((rows, long_side))


def mask_extents(objects: FrameObjects) -> np.ndarray:
    """``(n, 2)``: each mask's extent along and across its major axis (pixels)."""
    out = np.zeros((len(objects), 2), np.float32)
    for i, (patch, _) in enumerate(objects.crops):
        frame = _body_frame(patch)
        if frame is not None:
            _, _, _, (p0, p1, q0, q1) = frame
            out[i] = (p1 - p0, q1 - q0)
    return out


def _body_frame(patch: np.ndarray, pad: float = 0.1):
    """The mask's centroid (patch coordinates), major and minor unit axes, and its extent
    along and across them, padded by ``pad``. The major axis points away from the end with the
    larger spread (third moment), so one body is drawn the same way round from frame to frame
    while it keeps its shape."""
    ys, xs = np.nonzero(patch)
    if xs.size < 3:
        return None
    cx, cy = float(xs.mean()), float(ys.mean())
    dx, dy = xs - cx, ys - cy
    a, b, c = float(np.mean(dx * dx)), float(np.mean(dx * dy)), float(np.mean(dy * dy))
    theta = 0.5 * np.arctan2(2 * b, a - c)
    major = np.array([np.cos(theta), np.sin(theta)])
    proj = dx * major[0] + dy * major[1]
    if np.mean(proj ** 3) > 0:
        major, proj = -major, -proj
    minor = np.array([-major[1], major[0]])
    across = dx * minor[0] + dy * minor[1]
    p0, p1 = float(proj.min()) - 0.5, float(proj.max()) + 0.5
    q0, q1 = float(across.min()) - 0.5, float(across.max()) + 0.5
    dp, dq = pad * (p1 - p0) / 2, pad * (q1 - q0) / 2
    return (cx, cy), major, minor, (p0 - dp, p1 + dp, q0 - dq, q1 + dq)


def identification_images(image: np.ndarray, objects: FrameObjects, geometry: ImageGeometry,
                          rows: np.ndarray | None = None) -> np.ndarray:
    """``(n, *geometry.shape, 3)`` uint8: BGR images of each mask's body, major axis
    horizontal, its extent filling the image; 0 outside the mask (inside values are at least 1,
    so the mask travels with the image)."""
    rows = np.arange(len(objects)) if rows is None else np.asarray(rows)
    height, width = geometry.shape
    out = np.zeros((len(rows), height, width, 3), np.uint8)
    crops = objects.crops
    corners = np.float32([[0, 0], [width, 0], [0, height]])
    for k, i in enumerate(rows):
        patch, (x0, y0) = crops[int(i)]
        frame = _body_frame(patch)
        if frame is None:
            continue
        (cx, cy), major, minor, (p0, p1, q0, q1) = frame
        centre = np.array([cx, cy])
        source = np.float32([centre + p0 * major + q0 * minor, centre + p1 * major + q0 * minor,
                             centre + p0 * major + q1 * minor])
        local = cv2.getAffineTransform(source, corners)  # patch coordinates -> image
        inside = cv2.warpAffine(patch.astype(np.uint8) * 255, local, (width, height),
                                flags=cv2.INTER_LINEAR) > 127
        in_frame = local.copy()
        in_frame[:, 2] -= local[:, :2] @ np.array([x0, y0], np.float64)
        crop = cv2.warpAffine(image, in_frame, (width, height), flags=cv2.INTER_AREA,
                              borderValue=(0, 0, 0))
        colour = crop if crop.ndim == 3 else cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        out[k] = np.where(inside[..., None], np.maximum(colour, 1), 0)
    return out


def standardise(images: np.ndarray):
    """uint8 identification images -> float tensor (n, 3, rows, columns), each image
    standardised over its mask: one brightness and one contrast for its three channels
    (lighting changes shift and scale every animal alike; the balance of colours stays)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    inside = (x > 0).float()
    count = inside.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    mean = (x * inside).sum(dim=(2, 3), keepdim=True) / count
    var = (((x - mean) * inside) ** 2).sum(dim=(1, 2, 3), keepdim=True) / count.sum(
        dim=1, keepdim=True)
    return ((x - mean.mean(dim=1, keepdim=True)) / (var + 1.0).sqrt() * inside).contiguous()


def identity_network(dim: int):
    """A fresh, untrained :class:`IdentityNet` with a ``dim``-sized output."""
    import torch
    from torch import nn

    class IdentityNet(nn.Module):
        """Three conv blocks (16, 32, 64 channels), global average pooling, a linear head."""

        def __init__(self) -> None:
            super().__init__()

            def block(a: int, b: int) -> nn.Sequential:
                return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b),
                                     nn.ReLU(), nn.MaxPool2d(2))

            self.features = nn.Sequential(block(3, 16), block(16, 32), block(32, 64))
            self.head = nn.Linear(64, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # channels-last: the CPU's convolution and pooling kernels run 1.5-3x faster on it
            x = self.features(x.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))
            return nn.functional.normalize(self.head(x), dim=1)

    return IdentityNet().to(memory_format=torch.channels_last)


def inference_network(net):
    """A copy of a (trained) :class:`IdentityNet` for embedding only: each batch norm folded
    into the convolution before it. Why: in evaluation a batch norm is a fixed affine map per
    channel, so the convolution can apply it; that saves a pass over every activation map,
    which on a CPU costs a small network like this one as much as its arithmetic (a batch ran
    1.3-2.7x faster folded: eval/results/speed.md). The embeddings agree with the network's own
    to float rounding. ``net`` itself is left as it is (it is what a run saves)."""
    import copy

    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    copied = copy.deepcopy(net).eval()
    copied.features = nn.Sequential(*(
        nn.Sequential(fuse_conv_bn_eval(conv, norm), nn.ReLU(inplace=True), pool)
        for conv, norm, _, pool in copied.features))
    return copied.to(memory_format=torch.channels_last)


@dataclass
class TrainingReport:
    """What training did, for ``summary.json``."""

    trained: bool
    why: str = ""
    steps: int = 0
    seconds: float = 0.0
    quality: ClusterQuality | None = None  # the judgement of the kept checkpoint
    without: ClusterQuality | None = None  # the same judgement of the engine's own features
    trusted: bool = False  # no worse than those on held-out fragments: see train_representation
    stopped: str = ""  # "converged" | "steps" | "time" (the wall-clock cap)
    fragments: int = 0
    held_out: int = 0
    pairs: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def silhouette(self) -> float:
        """The judged views' clustering at the kept checkpoint (NaN: none was judged)."""
        return self.quality.silhouette if self.quality is not None else float("nan")

    def summary(self) -> dict:
        out = {"trained": self.trained, "why": self.why, "steps": self.steps,
               "seconds": round(self.seconds, 2), "stopped": self.stopped,
               "fragments": self.fragments, "held_out_fragments": self.held_out,
               "pairs": self.pairs, "trusted": self.trusted}
        if self.quality is not None:
            out.update(_judged(self.quality, ("silhouette", "spread", "held_out_agreement",
                                              "held_out_separation")))
            if self.quality.held_out_judged:
                out["held_out_judged"] = self.quality.held_out_judged
        if self.without is not None:
            out["without"] = _judged(self.without, ("silhouette", "held_out_agreement",
                                                    "held_out_separation"))
        return out


def _judged(quality: ClusterQuality, keys: tuple[str, ...]) -> dict[str, float | int]:
    """``quality``'s finite measures among ``keys``, and how many held-out judgements it made
    right where it made any."""
    out = _measured(quality, keys)
    if quality.held_out_judged:
        out["held_out_right"] = quality.held_out_right
    return out


def _measured(source, keys: tuple[str, ...]) -> dict[str, float]:
    """``source``'s finite measures among ``keys``, rounded for ``summary.json``."""
    return {key: round(float(value), 4) for key in keys
            if np.isfinite(value := getattr(source, key))}


@dataclass
class ClusterQuality:
    """How the views of a clip's fragments fall into ``k`` groups (k-means)."""

    silhouette: float  # of the clustering (higher is better)
    spread: float  # 90th percentile of a view's distance to its cluster's centre
    held_out_agreement: float  # share of held-out fragments whose views fall 90% in one group
    held_out_separation: float = float("nan")  # share of pairs of held-out fragments seen at
    # the same time (two individuals) whose views fall mostly in different groups
    held_out_right: int = 0  # held-out judgements made right: fragments kept in one group
    # plus pairs seen together put in different groups
    held_out_judged: int = 0  # how many judgements that is (fragments plus pairs)

    def at_least_as_good_as(self, other: ClusterQuality) -> bool:
        """At least as many of the held-out judgements right as ``other``'s features make
        on the same held-out fragments (each fragment kept in one group, each pair seen
        together put in two), and the groups tighter (silhouette is a ratio of distances, so
        it compares across spaces).

        Why the two kinds of judgement are counted together, not each held to "no worse":
        each is a few dozen yes-or-no outcomes on a clip, so a single fragment split by an
        odd pose decided the whole comparison, whatever the representation did on every
        other judgement (one fragment more split and five pairs more told apart was
        refused). Counted together, every judgement weighs the same
        (``eval/results/learned_trust.md``)."""
        return self.held_out_right >= other.held_out_right and \
            self.silhouette > other.silhouette


def cluster_quality(embeddings: np.ndarray, fragment: np.ndarray, held: set[int], k: int,
                    seed: int, spans: list[tuple[int, int]] | None = None,
                    ) -> ClusterQuality | None:
    """``embeddings`` of views of several fragments (``fragment``: each view's fragment).
    With more fragments than ``k``, tight clusters mean that fragments of one individual,
    never paired in training, came together (idtracker.ai's stopping criterion: the clusters
    as tight as training asked one fragment to be). With ``spans`` (each fragment's first and
    last frame), also how often held-out fragments present at the same time fall in different
    groups. None when there are too few views."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    if len(embeddings) <= k or k < 2:
        return None
    kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(embeddings)
    if len(set(kmeans.labels_)) < 2:
        return None
    spread = float(np.quantile(kmeans.transform(embeddings).min(axis=1), 0.9))
    counts = {i: np.bincount(kmeans.labels_[fragment == i], minlength=k) for i in held}
    agree = [bool(c.max() >= 0.9 * c.sum()) for c in counts.values()]
    apart: list[bool] = []
    if spans is not None:
        apart = [int(np.argmax(counts[a])) != int(np.argmax(counts[b]))
                 for a, b in _coexisting(spans, sorted(held))]
    return ClusterQuality(float(silhouette_score(embeddings, kmeans.labels_)), spread,
                          float(np.mean(agree)) if agree else float("nan"),
                          float(np.mean(apart)) if apart else float("nan"),
                          held_out_right=sum(agree) + sum(apart),
                          held_out_judged=len(agree) + len(apart))


def _coexisting(spans: list[tuple[int, int]], fragments: list[int]) -> list[tuple[int, int]]:
    """The pairs of ``fragments`` whose spans share a frame: two individuals."""
    return [(a, b) for n, a in enumerate(fragments) for b in fragments[n + 1:]
            if spans[a][0] <= spans[b][1] and spans[b][0] <= spans[a][1]]


def _pairs(spans: list[tuple[int, int]], fragments: list[int], sizes: dict[int, int],
           ) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Negative pairs (fragments that coexist: two individuals) then positive pairs (a fragment
    with itself), with sampling weights proportional to the views they hold; the two kinds are
    drawn equally often."""
    negatives = _coexisting(spans, fragments)
    positives = [(a, a) for a in fragments]
    w_neg = np.array([sizes[a] + sizes[b] for a, b in negatives], float)
    w_pos = np.array([sizes[a] for a in fragments], float)
    if w_neg.size:
        w_neg /= w_neg.sum()
    w_pos /= max(w_pos.sum(), 1e-12)
    return negatives + positives, np.concatenate([w_neg, w_pos]) / 2, \
        np.array([False] * len(negatives) + [True] * len(positives))


def fragments_to_judge(k: int, settings: LearnedSettings) -> int:
    """The fewest usable fragments from which :func:`train_representation` holds out two per
    individual (``k``): fewer can never give a trusted representation."""
    n = settings.min_held_out_pool
    while _held_out_count(n, settings) < 2 * k:
        n += 1
    return n


def _held_out_count(usable: int, settings: LearnedSettings) -> int:
    if usable < settings.min_held_out_pool:
        return 0
    return max(1, round(settings.held_out * usable))


def train_representation(images: list[np.ndarray], spans: list[tuple[int, int]], k: int,
                         settings: LearnedSettings | None = None,
                         without: list[np.ndarray] | None = None,
                         cancel: threading.Event | None = None,
                         ) -> tuple[LearnedEmbedder | None, TrainingReport]:
    """Learn a representation from fragments: ``images[i]`` the identification images of
    fragment ``i`` (uint8, from :func:`identification_images`), ``spans[i]`` its first and last
    frame, ``k`` how many individuals; ``without[i]``, one row per image, the features the
    identity engine has for those views without it (the tracker's embedder). Returns (None,
    report saying why) when the clip offers too little to learn from: fewer than
    ``min_pairs`` pairs of coexisting fragments.

    The report calls the representation *trusted* when, judged on fragments held out of
    training (at least two per individual), it does at least as well as ``without``: as many
    held-out judgements right (the views of one held-out fragment falling into one of ``k``
    groups, held-out fragments seen at the same time falling into different groups, counted
    together), and the groups tighter (:meth:`ClusterQuality.at_least_as_good_as`). The
    engine then decides on it and lets it overrule the input's links. Why relative, not a
    fixed bar: how often a fragment holds together depends on the clip (fragments that contain
    a missed swap split under any representation), so no number fitted to some clips says
    whether a representation is good enough on another; that it tells held-out individuals
    apart better than what the engine would use instead is what the decision needs. Without
    ``without``, or with fewer held-out fragments, it is not trusted and the engine does not
    use it. ``cancel`` set (a stream that ended while this trained in the background) stops it
    at the next step: (None, report saying so)."""
    import torch

    s = settings or LearnedSettings()
    if without is not None and (len(without) != len(images) or any(
            len(w) != len(im) for w, im in zip(without, images, strict=False))):
        raise ValueError("without: one row of features per identification image of each "
                         "fragment, in the order of images")
    report = TrainingReport(trained=False, fragments=len(images))
    usable = [i for i, im in enumerate(images) if len(im) >= s.min_views]
    rng = np.random.default_rng(s.seed)
    views = {i: np.asarray(images[i]) for i in usable}  # uint8: standardised per batch
    # judged on whole fragments never trained on (views of a trained fragment look like its
    # training views, frame to frame, and would make any representation look good)
    order = rng.permutation(usable).tolist()
    n_held = _held_out_count(len(order), s)
    held, train_ids = sorted(order[:n_held]), sorted(order[n_held:])
    # held-out fragments with up to 5 views each (whether each falls into one group), the
    # rest of the view budget spread over training fragments (the check runs every
    # ``check_every`` steps: its cost must stay small on a clip of a thousand fragments)
    held_views = {i: min(5, len(views[i])) for i in held[: s.judge_views // 10]}
    left = max(s.judge_views - sum(held_views.values()), 1)
    per = max(1, min(20, left // max(len(train_ids), 1)))
    chosen = sorted(rng.permutation(train_ids)[: max(1, left // per)].tolist())
    counts = {**held_views, **{i: min(per, len(views[i])) for i in chosen}}
    judge = list(counts)
    picks = {i: np.linspace(0, len(views[i]) - 1, n).round().astype(int)
             for i, n in counts.items()}
    judge_x = standardise(np.concatenate([views[i][picks[i]] for i in judge]))
    judge_fragment = np.concatenate([np.full(len(picks[i]), i) for i in judge])
    sizes = {i: len(views[i]) for i in train_ids}
    pairs, weights, positive = _pairs(spans, train_ids, sizes)
    report.pairs, report.held_out = int((~positive).sum()), len(held)
    if report.pairs < s.min_pairs:
        report.why = (f"{report.pairs} pairs of fragments seen apart at the same time "
                      f"(need {s.min_pairs})")
        return None, report
    torch.manual_seed(s.seed)
    generator = torch.Generator().manual_seed(s.seed)
    device = s.device
    net = identity_network(s.dim).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=s.learning_rate)
    best_state, best_score, since_best = None, -np.inf, 0
    best_quality: ClusterQuality | None = None
    started = time.perf_counter()
    step = 0
    report.stopped = "steps"
    first, second = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    while step < s.max_steps:
        if cancel is not None and cancel.is_set():
            report.stopped, report.why = "cancelled", "the stream ended during the training"
            return None, report
        if time.perf_counter() - started > s.seconds:
            report.stopped = "time"
            break
        net.train()
        pick = rng.choice(len(pairs), size=s.batch_pairs, p=weights)
        a = [views[i][rng.integers(sizes[i])] for i in first[pick]]
        b = [views[i][rng.integers(sizes[i])] for i in second[pick]]
        z = net(augment(standardise(np.stack(a + b)), generator).to(device))
        distance = (z[:len(pick)] - z[len(pick):]).norm(dim=1)
        same = torch.from_numpy(positive[pick]).to(device)
        loss = torch.where(same, torch.relu(distance - s.margins[0]),
                           torch.relu(s.margins[1] - distance)).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step % s.check_every == 0:
            snapshot = LearnedEmbedder(net, None, settings=s)  # embeds in evaluation mode
            quality = cluster_quality(snapshot.embed_images(judge_x), judge_fragment,
                                      set(held_views), k, s.seed, spans)
            score = quality.silhouette if quality else float("nan")
            report.history.append((step, round(score, 4)))
            if quality and score > best_score + 1e-3:
                best_score, since_best = score, 0
                best_quality = quality
                best_state = {n: v.detach().clone() for n, v in net.state_dict().items()}
            else:
                since_best += 1
                if since_best >= s.patience:
                    report.stopped = "converged"
                    break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    embedder = LearnedEmbedder(net, None, settings=s)
    report.trained, report.steps = True, step
    report.seconds = time.perf_counter() - started
    report.quality = best_quality
    if best_quality is not None:
        if without is not None:
            without_x = np.concatenate([np.asarray(without[i], np.float32)[picks[i]]
                                        for i in judge])
            report.without = cluster_quality(without_x, judge_fragment, set(held_views), k,
                                             s.seed, spans)
            # features that put every view in one group tell nobody apart: nothing to beat
            report.trusted = len(held) >= 2 * k and (
                report.without is None or best_quality.at_least_as_good_as(report.without))
        else:
            report.why = "no features of the identity engine's own to compare it with"
    return embedder, report


def augment(x, generator):
    """Shifts of a few pixels, a small rotation, brightness and contrast changes, and the
    head-tail half turn for half of the images."""
    import torch

    n = len(x)
    turn = torch.rand(n, generator=generator) < 0.5
    x = torch.where(turn[:, None, None, None], torch.flip(x, dims=(2, 3)), x)
    angle = (torch.rand(n, generator=generator) - 0.5) * (2 * np.pi / 18)  # +-10 degrees
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.15
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, align_corners=False)
    gain = 1 + 0.1 * torch.randn(n, 1, 1, 1, generator=generator)
    return x * gain


class LearnedEmbedder:
    """A representation trained on one clip (:func:`train_representation`): a snapshot,
    embedding with the network's weights as they were when it was made (training the network
    further needs a new embedder)."""

    name = "learned"
    # images per forward pass: a 2-core CPU ran this network 1.7-3x slower per image on batches
    # of 256 than on 32-64, whose activations stay in its caches (eval/results/speed.md)
    chunk = 64

    def __init__(self, net, geometry: ImageGeometry | None,
                 settings: LearnedSettings | None = None) -> None:
        self.net = net
        self.geometry = geometry
        self.settings = settings or LearnedSettings()
        self.dim = self.settings.dim
        self._inference = inference_network(net)

    def embed_images(self, images) -> np.ndarray:
        """Embeddings of identification images (a uint8 array, a sequence of uint8 images
        of one shape, or an already standardised tensor), both head-tail orders averaged."""
        import torch

        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.chunk):
                batch = images[start:start + self.chunk]
                if not isinstance(batch, torch.Tensor):  # uint8: standardised a batch at a time
                    batch = standardise(np.asarray(batch))
                batch = batch.to(self.settings.device)
                z = self._inference(batch) + self._inference(torch.flip(batch, dims=(2, 3)))
                out.append(z.cpu().numpy())
        return l2_normalize(np.concatenate(out))

    def embed(self, image: np.ndarray, objects: FrameObjects) -> np.ndarray:
        if len(objects) == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.geometry is None:
            raise ValueError("LearnedEmbedder.embed needs the clip's image geometry")
        return self.embed_images(identification_images(image, objects, self.geometry))

    def save(self, path: str | Path) -> None:
        """Write the representation (network weights, image shape, size of the embedding) for
        ``tracker.embedder: learned``."""
        import torch

        if self.geometry is None:
            raise ValueError("a representation is saved with its clip's image geometry")
        torch.save({"format": SAVED_FORMAT, "state": self.net.state_dict(),
                    "shape": list(self.geometry.shape), "dim": self.dim}, str(path))


def load_representation(path: str | Path, device: str = "cpu") -> LearnedEmbedder:
    """A representation a run saved (``learned.pt``); ConfigError naming the file when it is
    missing or not one."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (tracker.appearance.weights: the learned.pt a "
                          "run with tracker.learned.enabled saved)")
    try:
        saved = torch.load(str(path), map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many kinds on a file it cannot read
        raise ConfigError(f"{path}: not a saved representation ({type(exc).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != SAVED_FORMAT:
        raise ConfigError(f"{path}: not a representation saved by samtrack (learned.pt)")
    try:
        dim = int(saved["dim"])
        geometry = ImageGeometry(tuple(int(v) for v in saved["shape"]))
        net = identity_network(dim)
        net.load_state_dict(saved["state"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: a damaged representation ({first})") from None
    net.to(device).eval()
    return LearnedEmbedder(net, geometry, settings=LearnedSettings(dim=dim, device=device))


def _saved(argument: str | None, s: EmbedderSettings) -> LearnedEmbedder:
    if not s.weights:
        raise ConfigError("tracker.embedder learned needs tracker.appearance.weights: the "
                          "learned.pt a run with tracker.learned.enabled saved")
    return load_representation(s.weights, resolve_device(s.device))


register_embedder("learned", _saved)

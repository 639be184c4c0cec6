"""Identity engine v2: who each fragment is, decided for the whole clip from the clip itself.

How it decides (README, "How identities are decided"):

1. **Fragments** (:mod:`reid.fragments`): the online tracklets cut at every place an identity
   could silently change (crossings, touches, gaps, re-entries, source-id changes, weak links).
2. **How many individuals**: given (``num_identities``) or estimated (:func:`estimate_count`):
   the largest number of objects present together for a sustained stretch (short tracklets
   left out unless the view cut their lives short).
3. **Training data for free**: the stretch where that many fragments are present together and
   apart, with the most views each (a *global fragment*): each of them is a different
   individual. An LDA model (:mod:`reid.identity_model`) learns them.
4. **Global assignment** (:mod:`reid.identity_solver`): every fragment with views takes an
   identity at once, maximising the model's evidence under cannot-link. The model is re-trained
   on everything it labelled and the assignment repeated while labels change.
5. **What the input already says**: consecutive fragments of one tracklet's path
   (:attr:`Fragment.chain`) or one source id stay linked unless the model separates them by
   more than the clip's same-individual limit (:func:`held_out_limit`); a cut that tracker
   and source both carry across stays linked regardless. The labelling that keeps *every*
   source link is chosen when the model's evidence against it is within that limit over
   those links ("never worse than the input").
   Identities are named after the source's ids, so an already-right input comes back
   unchanged.
6. **Not an individual**: a tracklet whose every fragment lies far outside how far this clip's
   fragments lie from their own identity (beyond Tukey's far-out fence of that distribution,
   :func:`stray_fragments`) is a spurious mask, not one of the individuals: it loses its label
   unless its source id vouches for it.
7. **Pieces without views** (the crossing itself, border frames): the identity of the same
   tracklet on both sides, else (where this clip's source carried animals through touches
   more often than the tracker) of the same source id on both sides, else the online
   tracker's, else one side's or the source id's, when free (:func:`_fill_viewless`);
   pieces present together choose at once, the fewest frames named by a weaker witness.
   With a trusted learned representation, a piece chooses among the same witnesses by how
   well its own frames fit them (:func:`pieces_look`). Pieces of tracklets the online
   tracker never confirmed take only the source id's identity.
8. **Late entrants**: a tracklet seen only at the border, come in too late for the count to
   see it and left without an identity, takes a new one (:func:`_name_late_entrants`).

With a representation learned from the clip (``learned``, :func:`learn_views`) that is
*trusted* (on fragments held out of its training it tells individuals apart at least as
well as the tracker's embedder, :func:`reid.embedders.learned.train_representation`), the
views of step 3 on are its embeddings, the links of step 5 are no longer hard and the "never
worse than the input" rule is not applied: a swap that tracker and source both carried
through a crossing is then cut where the learned model says so. Not trusted, it is not used.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from samtrack.pipeline.core.frames import FrameObjects
from samtrack.reid.embedders.learned import (
    LearnedEmbedder,
    LearnedSettings,
    fragments_to_judge,
    train_representation,
)
from samtrack.reid.fragments import Fragment, cliques, cut_fragments, evenly_spread
from samtrack.reid.identity_model import (
    LOG_FLOOR,
    IdentityModel,
    fit_on_fragments,
    fragment_evidence,
    log_mean_posteriors,
    own_distances,
)
from samtrack.reid.identity_solver import SolverLog, solve_assignment
from samtrack.reid.tracks import FrameLog

MAX_ROUNDS = 5
SAME_QUANTILE = 0.95
MIN_RUN = 3  # frames: a count reached for one or two frames is a glitch
STRAY_FENCE = 3.0  # Tukey's "far out": beyond Q3 + 3 IQR of the clip's own-identity distances
MIN_STRAY_SAMPLE = 10  # labelled fragments needed before quartiles describe anything
# per frame and place in a piece's ranked witnesses: where a piece's own look decides (step 7),
# the witnesses' order only breaks its ties (a look is a log posterior, at least LOG_FLOOR)
WITNESS_TIE_BREAK = 1e-3


@dataclass
class IdentityResult:
    labels: list[np.ndarray]  # per log entry, per row: the identity (-1 none)
    num_identities: int
    estimated: bool  # the count was estimated, not given
    rounds: int = 0
    links_kept: dict[str, float] = field(default_factory=dict)  # share kept, per kind
    fragments: int = 0
    details: dict = field(default_factory=dict)
    representation: LearnedEmbedder | None = None  # learned from the clip, where it decided

    def summary(self) -> dict:
        """What ``summary.json`` says about how identities were decided."""
        return {"num_identities": self.num_identities,
                "num_identities_estimated": self.estimated, "fragments": self.fragments,
                "rounds": self.rounds, "links_kept": self.links_kept, **self.details}


def presence_counts(fragments: list[Fragment], num_frames: int) -> np.ndarray:
    counts = np.zeros(num_frames + 1, np.int64)
    for f in fragments:
        counts[f.start] += 1
        counts[f.end + 1] -= 1
    return np.cumsum(counts)[:num_frames]


def sustained_max(counts: np.ndarray, min_run: int) -> int:
    """The largest ``n`` such that at least ``n`` objects are present in ``min_run``
    consecutive frames (a spurious blob or a duplicate mask for a few frames does not count)."""
    best = 0
    for n in range(1, int(counts.max(initial=0)) + 1):
        run = longest = 0
        for c in counts >= n:
            run = run + 1 if c else 0
            longest = max(longest, run)
        if longest >= min_run:
            best = n
    return best


def estimate_count(fragments: list[Fragment], num_frames: int) -> int:
    """How many individuals the clip shows: the largest number of objects present together in
    a few consecutive frames, counting only objects whose tracklet lives at least a quarter as
    long as the tracklet of the clip's median *object-frame* (the frame-weighted median life),
    or whose short life the view cut (it neither began nor ended in view,
    :func:`began_or_ended_in_view`) and that was seen whole, apart, at least once.
    Why: a duplicate mask or a spurious blob makes a short tracklet of its own; such tracklets
    can be most of the tracklets, but they hold few of the frames, while an individual, even
    one seen all together with the others only briefly, lives as long as anyone, unless it
    walked out of the view (or the clip began or ended) on both sides of its short life. A
    mask only ever seen cut by a frame border may be a piece of anything there (a shadow, a
    wrong seed at the edge), so a short one does not count."""
    life: dict[int, int] = defaultdict(int)
    for f in fragments:
        life[f.tracklet] += f.length
    if not life:
        return 0
    lives = np.sort(np.array(list(life.values())))
    cumulative = np.cumsum(lives)
    # (and at most a tenth of the clip: in a short clip one long tracklet must not set the bar)
    shortest = min(lives[np.searchsorted(cumulative, cumulative[-1] / 2)] / 4, num_frames / 10)
    in_view = began_or_ended_in_view(fragments, num_frames)
    seen_whole = {f.tracklet for f in fragments if f.views}
    lasting = [f for f in fragments if life[f.tracklet] >= shortest
               or (f.tracklet not in in_view and f.tracklet in seen_whole)]
    return sustained_max(presence_counts(lasting, num_frames), MIN_RUN)


def began_or_ended_in_view(fragments: list[Fragment], num_frames: int) -> set[int]:
    """Tracklets that began or ended in view: not at the clip's first or last frame, and not
    at a frame border. The others' lives are cut by the view (an animal that swims out
    after ten frames lives on outside it), so their length says nothing about whether they are
    an individual; a spurious mask appears and vanishes in view."""
    out = set()
    for key, chain in _chains(fragments, "tracklet").items():
        first, last = min(chain, key=lambda f: f.start), max(chain, key=lambda f: f.end)
        begun_outside = first.start == 0 or bool(first.first_at_border)
        ended_outside = last.end == num_frames - 1 or bool(last.last_at_border)
        if not (begun_outside and ended_outside):
            out.add(key)
    return out


def global_fragment(fragments: list[Fragment], groups: list[list[int]], k: int) -> list[int]:
    """The clique of ``k`` fragments with views whose poorest member has the most views (its
    members are the training data of the first model); [] if none has ``k`` members."""
    best: list[int] = []
    score = -1
    for group in groups:
        members = [i for i in group if fragments[i].views and fragments[i].apart]
        if len(members) < k:
            continue
        members = sorted(members, key=lambda i: -len(fragments[i].views))[:k]
        poorest = min(len(fragments[i].views) for i in members)
        if poorest > score:
            best, score = members, poorest
    return best


def _seed_labels(fragments: list[Fragment], groups: list[list[int]], k: int) -> dict[int, int]:
    seed = global_fragment(fragments, groups, k)
    if seed:
        return {fragments[i].index: n + 1 for n, i in enumerate(seed)}
    # no moment shows everyone apart: start from the mask source's k longest-lived ids (the
    # input is the labelling the result must not fall below)
    frames: Counter = Counter()
    for f in fragments:
        frames[f.source_id] += f.length
    keep = [i for i, _ in frames.most_common() if i >= 0][:k]
    rename = {i: n + 1 for n, i in enumerate(keep)}
    return {f.index: rename[f.source_id] for f in fragments if f.source_id in rename}


def link_pairs(fragments: list[Fragment]) -> dict[str, list[tuple[int, int]]]:
    """Pairs of fragments (positions in ``fragments``) that something other than appearance
    says are one object: ``tracklet`` (consecutive fragments of one online tracklet's path, cut
    at a crossing, a touch or a weak step; after a touch the tracker resolved by motion, the
    path goes on along the identity, :attr:`Fragment.chain`) and ``source`` (consecutive
    fragments carrying one source id, e.g. a masklet that left and came back)."""
    chains: dict[str, dict[int, list[int]]] = {"tracklet": defaultdict(list),
                                               "source": defaultdict(list)}
    for r, f in enumerate(fragments):
        chains["tracklet"][f.chain].append(r)
        if f.source_id >= 0:
            chains["source"][f.source_id].append(r)
    out: dict[str, list[tuple[int, int]]] = {}
    for kind, chain in chains.items():
        pairs = []
        for members in chain.values():
            members = sorted(members, key=lambda r: fragments[r].start)
            pairs.extend(itertools.pairwise(members))
        out[kind] = pairs
    return out


def split_evidence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How much the model prefers two *different* identities for two fragments over their best
    common one, per frame (rows of per-frame log-evidence; 0 = the model sees no difference)."""
    same = (a + b).max(axis=1)
    return a.max(axis=1) + b.max(axis=1) - same


def _half_splits(model: IdentityModel, fragments: list[Fragment], min_views: int) -> np.ndarray:
    """The split evidence between the first and second half of each fragment with at least
    ``min_views`` views (one value per such fragment)."""
    halves: list[np.ndarray] = []
    for f in fragments:
        views = f.view_matrix()
        if len(views) >= min_views:
            half = len(views) // 2
            halves += [views[:half], views[half:]]
    if not halves:
        return np.zeros(0)
    evidence = log_mean_posteriors(model, halves)
    return split_evidence(evidence[0::2], evidence[1::2])


def held_out_limit(fragments: list[Fragment], labels: dict[int, int],
                   quantile: float = SAME_QUANTILE, min_views: int = 6, folds: int = 2,
                   unmeasured: float = 0.0) -> float:
    """The split evidence that pairs known to be one individual reach in this clip: each long
    fragment's first and second half (the ``quantile`` of those values: the clip's own null
    distribution, no absolute number). Measured on fragments the model was *not* fitted on
    (the labelled fragments in ``folds`` interleaved folds, each judged by a model of the
    others); ``unmeasured`` where no held-out fragment has ``min_views`` views (0 offline,
    where every link is judged at the end; the online model, deciding as it goes, passes
    infinity: a model not yet measured overrules no continuation).

    Why held out: a model judged on its own training fragments sees its halves agree almost
    always (the in-sample limit was 0 on every long tuning clip), which leaves no margin for
    the disagreement a new fragment of a known individual shows. Every decision this limit
    serves judges such a fragment: a link between two fragments, the "never worse than the
    input" guard, the online model's; in-sample, a link whose two sides the model names
    differently is cut however weak the model is (eval/results/held_out_link_limit.md)."""
    labelled = [f for f in fragments if labels.get(f.index, -1) > 0 and f.views]
    values: list[np.ndarray] = []
    for fold in range(folds):
        train = [f for k, f in enumerate(labelled) if k % folds != fold]
        test = [f for k, f in enumerate(labelled) if k % folds == fold]
        model = fit_on_fragments(train, labels)
        if model is not None:
            values.append(_half_splits(model, test, min_views))
    pooled = np.concatenate(values) if values else np.zeros(0)
    return float(np.quantile(pooled, quantile)) if pooled.size else unmeasured


def kept_links(fragments: list[Fragment], evidence: np.ndarray, limit: float,
               hard_agreed: bool = True,
               ) -> tuple[list[tuple[int, int]], dict[str, float]]:
    """The tracker's and the source's links (:func:`link_pairs`) that appearance does not
    contradict, as hard must-links, and the share of each kind kept.

    Why keep them hard: they are the input's own answer, and the rule is "never worse than
    the input". Where the model cannot tell two individuals apart (look-alike larvae) it
    cannot contradict a link, so the source's masklets stand and the solver only decides which
    masklets are the same individual after an exit; where the source handed one masklet to
    another animal, the two sides look different by more than one individual ever differs from
    itself in this clip (``limit``), and the link is cut."""
    lengths = np.array([max(f.length, 1) for f in fragments], float)
    per_frame = evidence / lengths[:, None]
    links: list[tuple[int, int]] = []
    kept: dict[str, float] = {}
    pairs_by_kind = link_pairs(fragments)
    # a cut that the tracker (motion) and the source both carry across is kept whatever
    # appearance says: two independent witnesses agreeing outweigh a model that can be
    # consistently wrong on look-alikes (orientation and size change a larva's crop)
    # (``hard_agreed=False``: a representation shown to tell these individuals apart on views
    # it never trained on may overrule them too)
    agreed = set(pairs_by_kind["tracklet"]) & set(pairs_by_kind["source"]) if hard_agreed \
        else set()
    for kind, pairs in pairs_by_kind.items():
        if not pairs:
            continue
        f, g = np.array(pairs).T
        keep = split_evidence(per_frame[f], per_frame[g]) <= limit
        keep |= np.array([p in agreed for p in pairs])
        kept[kind] = round(float(keep.mean()), 4)
        links.extend((int(a), int(b)) for a, b, k in zip(f, g, keep, strict=True) if k)
    return links, kept


def _never_worse_than_input(fragments: list[Fragment], groups: list[list[int]],
                            model: IdentityModel, labels: dict[int, int],
                            links: list[tuple[int, int]], limit: float,
                            evidence: np.ndarray, log: SolverLog,
                            ) -> tuple[dict[int, int], bool]:
    """The rule "never worse than the input": the labelling that keeps *every* source link
    (the solver may then only decide which masklets are one individual, never split one) is
    preferred whenever the model's evidence against it is within what the clip's own
    same-individual scale allows over those links (``limit`` per frame of each link's shorter
    side). So a source whose ids are self-consistent under the model is kept as it is, and
    only a source that the model contradicts beyond chance is overruled."""
    pairs = link_pairs(fragments)["source"]
    if not pairs:
        return labels, False
    tracklet_links = [(f, g) for f, g in links if fragments[f].chain == fragments[g].chain]
    constrained, _ = _solve(fragments, groups, model, log, tracklet_links + pairs, evidence)

    def score(chosen: dict[int, int]) -> float:
        total = 0.0
        for r, f in enumerate(fragments):
            column = np.flatnonzero(model.labels == chosen.get(f.index, -1))
            total += float(evidence[r, column[0]]) if column.size else float(evidence[r].min())
        return total

    budget = sum(limit * min(fragments[f].length, fragments[g].length) for f, g in pairs)
    if score(labels) - score(constrained) <= budget:
        return constrained, True
    return labels, False


def _solve(fragments: list[Fragment], groups: list[list[int]], model: IdentityModel,
           log: SolverLog, links: list[tuple[int, int]] | None = None,
           evidence: np.ndarray | None = None) -> tuple[dict[int, int], np.ndarray]:
    """Labels by the solver, and the evidence used (``evidence``: the model's, if already
    computed for these fragments; columns follow ``model.labels``)."""
    if evidence is None:
        evidence = fragment_evidence(model, fragments)
    chosen = solve_assignment(evidence, groups, links, log=log)
    labels = {f.index: int(model.labels[c]) for f, c in zip(fragments, chosen, strict=True)
              if c >= 0}
    return labels, evidence


def link_identities(log: list[FrameLog], num_identities: int | None = None,
                    max_rounds: int = MAX_ROUNDS, *, progress: bool = False,
                    learned: LearnedSettings | None = None) -> IdentityResult:
    """Identity per logged object (aligned with each entry's rows); see the module docstring.

    ``progress``: a bar on stderr over the solve's steps (cutting fragments, fitting the
    model, each re-labelling round up to ``max_rounds``, the final checks).
    ``learned``: decide on a representation learned from the clip's fragments
    (:mod:`reid.embedders.learned`; the log must carry identification images) instead of
    the tracker's embeddings."""
    bar = tqdm(total=max_rounds + 3, desc="samtrack: offline identities", unit="step",
               leave=False, disable=not progress)
    with bar:
        return _link(log, num_identities, max_rounds, bar, learned)


def learn_views(fragments: list[Fragment], k: int, settings: LearnedSettings,
                ) -> tuple[dict, LearnedEmbedder | None]:
    """Train a representation on these fragments (their identification images) and, where it
    is *trusted*, replace each fragment's views by its embeddings; the report for
    ``summary.json``, and the representation where it was used. Not trusted, or nothing to
    learn from, the fragments keep the tracker's embeddings (the report says why): a
    representation that has not shown it tells these individuals apart must not decide, so
    the identities are those without it."""
    with_images = [f for f in fragments if len(f.images) == len(f.views) and f.views]
    usable = sum(len(f.views) >= settings.min_views for f in with_images)
    needed = fragments_to_judge(k, settings)
    if usable < needed:  # it could not be trusted: not worth its training time
        return {"trained": False, "used": False, "fragments": len(with_images),
                "why": f"{usable} fragments with {settings.min_views} or more views; {needed} "
                       f"are needed to hold out two per individual and judge a "
                       f"representation"}, None
    images = [np.stack(f.images) for f in with_images]
    spans = [(f.start, f.end) for f in with_images]
    embedder, report = train_representation(images, spans, k, settings,
                                            without=[np.stack(f.views) for f in with_images])
    if embedder is None or not report.trusted:
        return {**report.summary(), "used": False}, None
    embed_views(fragments, embedder)
    return {**report.summary(), "used": True}, embedder


def embed_views(fragments: list[Fragment], embedder: LearnedEmbedder) -> None:
    """Each fragment's views become the representation's embeddings of their identification
    images; views without images (none in a log that carries them) are from another space
    and are dropped."""
    embedded: list[Fragment] = []
    for f in fragments:
        if f.views and len(f.images) == len(f.views):
            embedded.append(f)
        else:
            f.views = []
    if not embedded:
        return
    # all fragments' images in one stream of full batches: one short batch per fragment left
    # the network's fixed cost per pass dominant on a clip of a thousand short fragments
    vectors = embedder.embed_images([image for f in embedded for image in f.images])
    ends = np.cumsum([len(f.images) for f in embedded])[:-1]
    for f, rows in zip(embedded, np.split(vectors, ends), strict=True):
        f.views = list(rows)


def _link(log: list[FrameLog], num_identities: int | None, max_rounds: int,
          bar: tqdm, learned: LearnedSettings | None = None) -> IdentityResult:
    every_fragment = cut_fragments(log)
    confirmed_tracklets = {f.tracklet for f in every_fragment if f.online_id > 0}
    fragments = [f for f in every_fragment if f.tracklet in confirmed_tracklets]
    unconfirmed = [f for f in every_fragment if f.tracklet not in confirmed_tracklets]
    num_frames = (log[-1].frame + 1) if log else 0
    estimated = num_identities is None
    k = estimate_count(fragments, num_frames) if estimated else int(num_identities)
    result = IdentityResult([np.full(len(e.tracklet_keys), -1, np.int64) for e in log],
                            k, estimated, fragments=len(fragments))
    trusted = False  # a learned representation decides, and may overrule the input's links
    if learned is not None and k >= 2:
        # training takes seconds where the clip has enough fragments: say what the bar waits on
        bar.set_postfix_str("learning the clip's appearance", refresh=True)
        result.details["learned"], result.representation = learn_views(fragments, k, learned)
        trusted = result.representation is not None
        bar.set_postfix_str("", refresh=False)
    viewed = [f for f in fragments if f.views]
    groups = cliques(viewed)
    bar.update(1)
    labels = _seed_labels(viewed, groups, k)
    model = fit_on_fragments(viewed, labels)
    bar.update(1)
    if model is None or k < 2:
        # one individual, or nothing to learn from: every fragment is the online identity
        labels = {f.index: f.online_id for f in fragments}
    else:
        solver_log = SolverLog()
        evidence = np.zeros((len(viewed), 0))
        for result.rounds in range(1, max_rounds + 1):
            new, evidence = _solve(viewed, groups, model, solver_log)
            model_next = fit_on_fragments(viewed, new)
            bar.update(1)
            changed = new != labels
            labels = new
            if model_next is None:
                break
            model = model_next
            if not changed:
                break
        links, kept = kept_links(viewed, evidence, held_out_limit(viewed, labels),
                                 hard_agreed=not trusted)
        result.links_kept = kept
        final_evidence = fragment_evidence(model, viewed)
        if links:
            labels, _ = _solve(viewed, groups, model, solver_log, links, final_evidence)
        # the guard's limit comes from the labels after the links: the fragments it judges
        # are labelled as they will be shown (eval/results/identity_rules_provenance.md)
        if not trusted:
            labels, result.details["kept_source_ids"] = _never_worse_than_input(
                viewed, groups, model, labels, links, held_out_limit(viewed, labels),
                final_evidence, solver_log)
        result.details["solver"] = solver_log.summary()
        strays = stray_fragments(model, viewed, fragments, labels)
        result.details["stray_tracklets"] = len({f.tracklet for f in fragments
                                                 if f.index in strays})
        labels = {i: v for i, v in labels.items() if i not in strays}
        # a stray is judged like a piece the tracker never confirmed: only its source id's
        # identity, when free, may claim it back
        unconfirmed = unconfirmed + [f for f in fragments if f.index in strays]
        fragments = [f for f in fragments if f.index not in strays]
        # a trusted representation names the pieces without views by their own look too
        look = pieces_look(log, fragments, labels, model, result.representation) \
            if result.representation is not None else None
        labels = _fill_viewless(fragments, labels, k, look)
        labels = _fill_unconfirmed(fragments, unconfirmed, labels)
        labels = _name_late_entrants(fragments + unconfirmed, labels, num_frames - 1)
    bar.update(bar.total - bar.n)  # rounds that were not needed
    fragments = fragments + unconfirmed
    labels = _name_by_source(fragments, labels)
    for f in fragments:
        identity = labels.get(f.index, -1)
        for position, row in f.entries:
            result.labels[position][row] = identity
    result.details["identities_used"] = len(set(labels.values()) - {-1})
    return result


def stray_fragments(model: IdentityModel, viewed: list[Fragment], fragments: list[Fragment],
                    labels: dict[int, int], fence: float = STRAY_FENCE) -> set[int]:
    """Fragments (indices) of tracklets that are not one of the individuals: every fragment of
    the tracklet with views lies farther from the identity it was given
    (:meth:`IdentityModel.distances`) than ``Q3 + fence * IQR`` of the same distance over all
    labelled fragments, weighted by their frames.

    Why: the solver gives every fragment with views an identity that is free at the time, so a
    spurious mask (a wrong automatic seed on the background, a shadow) takes the identity of
    whoever is out of view, and every frame of it counts against that identity. Such a mask
    looks like none of the individuals; how far is "none" comes from the clip: the frames of
    real individuals dominate the distribution, so its quartiles describe them, and Tukey's
    far-out fence (3 IQR) flags only what lies well outside it; a tighter fence cuts real
    tracklets lying just past it (measurements: eval/results/identity_rules_provenance.md)."""
    own = own_distances(model, viewed, labels)
    limit = stray_limit(own, {f.index: f.length for f in viewed}, fence)
    if not np.isfinite(limit):
        return set()
    out: set[int] = set()
    for chain in _chains(fragments, "tracklet").values():
        judged = [own[f.index] for f in chain if f.index in own]
        if judged and min(judged) > limit:
            out.update(f.index for f in chain)
    return out


def stray_limit(own: dict[int, float], lengths: dict[int, int],
                fence: float = STRAY_FENCE) -> float:
    """``Q3 + fence * IQR`` of the labelled fragments' distances from their own identity
    (``own``, by fragment index), weighted by their frames (``lengths``; see
    :func:`stray_fragments`); ``inf`` (nobody is a stray) with fewer than
    :data:`MIN_STRAY_SAMPLE` fragments or no spread between the quartiles.

    Why the minimum: in a short clip of two sheep, four fragments can give Q1 = Q3 (two of
    them holding half the frames each), a fence at the third quartile itself, which cuts a
    real animal just beyond it."""
    if len(own) < MIN_STRAY_SAMPLE:
        return np.inf
    values = np.array(list(own.values()))
    weights = np.array([lengths[i] for i in own], float)
    # inverted_cdf: the smallest distance below which the share of frames is reached (the
    # one quantile method numpy weights)
    q1, q3 = np.quantile(values, [0.25, 0.75], weights=weights, method="inverted_cdf")
    return float(q3 + fence * (q3 - q1)) if q3 > q1 else np.inf


def relabel(objects: FrameObjects, entry: FrameLog, labels: np.ndarray) -> FrameObjects:
    """``objects`` with the identities decided for their log entry (others unlabelled)."""
    ids = np.full(len(objects), -1, np.int64)
    ids[entry.det_index] = labels
    return objects.with_track_ids(ids)


def _label_maps(fragments: list[Fragment], labels: dict[int, int],
                ) -> tuple[dict[int, list[Fragment]], dict[int, Counter], dict[int, Counter]]:
    """Who holds each identity (its fragments), and for each source id and each online id the
    frames it spent under each identity."""
    holders: dict[int, list[Fragment]] = defaultdict(list)
    source_map: dict[int, Counter] = defaultdict(Counter)
    online_map: dict[int, Counter] = defaultdict(Counter)
    for f in fragments:
        identity = labels.get(f.index, -1)
        if identity <= 0:
            continue
        holders[identity].append(f)
        if f.source_id >= 0:
            source_map[f.source_id][identity] += f.length
        if f.online_id > 0:
            online_map[f.online_id][identity] += f.length
    return holders, source_map, online_map


def _chains(fragments: list[Fragment], key: str) -> dict[int, list[Fragment]]:
    """Each value of ``key`` ("tracklet" or "source_id") -> its fragments, in the order given
    (time order for cut fragments); -1 (no source id) makes no chain."""
    chains: dict[int, list[Fragment]] = defaultdict(list)
    for f in fragments:
        if getattr(f, key) >= 0:
            chains[getattr(f, key)].append(f)
    return chains


def pieces_look(log: list[FrameLog], fragments: list[Fragment], labels: dict[int, int],
                model: IdentityModel, embedder: LearnedEmbedder) -> dict[int, dict[int, float]]:
    """Fragment index -> identity -> how well the fragment's own frames fit it (the log of the
    mean posterior under ``model``), for the fragments ``labels`` leaves without an identity:
    the pieces without views, from the learned representation's embeddings of their
    identification images (touching or cut by the border; up to
    :data:`reid.fragments.MAX_VIEWS` frames each, evenly spread). Pieces whose frames have no
    images (before the first clean mask fixed their shape, or blank) are left out.

    Why a trusted learned representation may judge frames it never trained on: its crops hold
    the mask's own pixels only, so a touching animal's crop is its own body, partly hidden;
    on the long clips of both benchmark families where it was trusted, choosing among the
    witnesses by it named more of their frames right, in all, than their order did
    (eval/results/viewless_look.md)."""
    pieces, chunks = [], []
    for f in fragments:
        if f.index in labels:
            continue
        # a blank image: no body could be laid out (a sliver at the border)
        images = [image for p, r in f.entries if log[p].id_images is not None
                  and (image := log[p].id_images[r]).any()]
        if not images:
            continue
        pieces.append(f)
        chunks.append(np.stack(evenly_spread(images)))
    if not pieces:
        return {}
    vectors = embedder.embed_images(np.concatenate(chunks))
    ends = np.cumsum([len(c) for c in chunks])[:-1]
    identities = [int(i) for i in model.labels]
    evidence = log_mean_posteriors(model, np.split(vectors, ends))
    return {f.index: dict(zip(identities, row.tolist(), strict=True))
            for f, row in zip(pieces, evidence, strict=True)}


def _fill_viewless(fragments: list[Fragment], labels: dict[int, int], k: int,
                   look: dict[int, dict[int, float]] | None = None) -> dict[int, int]:
    """Fragments without views take the identity of their tracklet's neighbouring fragments
    where both sides agree; else, on a clip whose mask source carried individuals through
    touches more often than the tracker did, that of their source id's neighbouring fragments
    where both sides agree; else the one their online identity maps to; else the neighbour
    before, after, or the identity their source id maps to (each mapping: the identity it
    covers most frames of); never one held at the same time by another fragment. Pieces
    present together choose together (:func:`_choose_jointly`).

    Why the online identity before a single neighbour: a viewless fragment is mostly a touch
    or a crossing, and when its neighbours disagree the swap happened somewhere inside it; the
    online tracker followed it frame by frame on motion and appearance, which on the tuning
    clips was right far more often than extending one side (measurements:
    eval/results/identity_rules_provenance.md). Why the source's sides, on some clips: which
    of the two follows an individual through a touch depends on the source (SAM2 swaps
    masklets at crossings, a detector exchanges ids after a merge, a per-frame segmenter
    whose ids are right between renumberings does neither), so the clip says which: over its
    viewless pieces, how often the fragments on both sides of the piece, decided on their own
    views, got one identity along the tracklet and how often along the source id.

    With ``look`` (:func:`pieces_look`, a trusted learned representation), each piece chooses
    among the same witnesses by how well its own frames fit them, their order breaking ties."""
    by_tracklet = _chains(fragments, "tracklet")
    by_source = _chains(fragments, "source_id")
    holders, source_map, online_map = _label_maps(fragments, labels)
    viewless = [f for f in fragments if f.index not in labels]
    carried = np.zeros(2, np.int64)  # pieces carried through by the tracklet, by the source id
    for f in viewless:
        for n, chain in enumerate((by_tracklet[f.tracklet], by_source.get(f.source_id, []))):
            before, after = _labelled_sides(f, chain, labels)
            carried[n] += before == after > 0
    source_first = carried[1] > carried[0]
    options = []
    for f in viewless:
        before, after = _labelled_sides(f, by_tracklet[f.tracklet], labels)
        along_source = _labelled_sides(f, by_source.get(f.source_id, []), labels)
        online = _most_frames(online_map[f.online_id])  # the online tracker's, as named here
        ranked = [before if before == after else -1,
                  along_source[0] if source_first and along_source[0] == along_source[1]
                  else -1,
                  online, before, after, _most_frames(source_map[f.source_id])]
        # an individual nobody was given (never seen clean): that is who this is
        options.append(ranked + [i for i in range(1, k + 1) if i not in holders])
    return _choose_jointly(viewless, options, holders, labels, look)


def _choose_jointly(pieces: list[Fragment], options: list[list[int]],
                    holders: dict[int, list[Fragment]], labels: dict[int, int],
                    look: dict[int, dict[int, float]] | None = None) -> dict[int, int]:
    """Each of ``pieces`` takes one of its ``options`` (best first), none held at the same time
    by a fragment in ``holders`` or by another piece; chosen together, so that the frames
    named by a later option are as few as possible (a piece left without any costs more
    than its last option).

    Why together: pieces present at once (two animals touching) often offer each other's
    identity; one by one, the first to choose can take the identity that is the other's only
    good option, and both end up named by a weaker witness or not at all. This is the same
    program as the global assignment of fragments with views (:mod:`reid.identity_solver`),
    with an option's rank as its evidence, or, given ``look``, how well the piece's frames fit
    the option (:func:`pieces_look`; unknown identities fit at the floor), ranks breaking
    ties."""
    out = dict(labels)
    identities = sorted({i for opts in options for i in opts if i > 0})
    if not pieces or not identities:
        return out
    column = {identity: c for c, identity in enumerate(identities)}
    lengths = np.array([f.length for f in pieces], float)
    worst = float(max(len(opts) for opts in options)) + 1.0
    rank = np.full((len(pieces), len(identities)), np.inf)
    for row, (f, opts) in enumerate(zip(pieces, options, strict=True)):
        for place, identity in enumerate(opts):
            if identity > 0 and np.isinf(rank[row, column[identity]]) and \
                    _free_for(f, identity, holders):
                rank[row, column[identity]] = place
    if look is None:
        per_frame, floor = -rank, -worst
    else:
        # a piece without images fits every option alike: its ranks decide
        fit = np.array([[look[f.index].get(identity, LOG_FLOOR) if f.index in look else 0.0
                         for identity in identities] for f in pieces])
        per_frame = fit - WITNESS_TIE_BREAK * rank
        floor = LOG_FLOOR - WITNESS_TIE_BREAK * worst - 1.0
    # not an option: below leaving the piece unlabelled, so never chosen
    evidence = lengths[:, None] * np.where(np.isinf(rank), 2.0 * floor, per_frame)
    chosen = solve_assignment(evidence, cliques(pieces), unassigned=lengths * floor)
    for row, (f, c) in enumerate(zip(pieces, chosen, strict=True)):
        if c >= 0 and np.isfinite(rank[row, c]):
            out[f.index] = identities[c]
    return out


def _labelled_sides(fragment: Fragment, chain: list[Fragment], labels: dict[int, int],
                    ) -> tuple[int, int]:
    """The identities of the nearest labelled fragments of ``chain`` that end before
    ``fragment`` starts and that start after it ends (-1 where there is none)."""
    before = [g for g in chain if g.end < fragment.start and g.index in labels]
    after = [g for g in chain if g.start > fragment.end and g.index in labels]
    return (labels[max(before, key=lambda g: g.end).index] if before else -1,
            labels[min(after, key=lambda g: g.start).index] if after else -1)


def _fill_unconfirmed(fragments: list[Fragment], unconfirmed: list[Fragment],
                      labels: dict[int, int]) -> dict[int, int]:
    """Pieces of tracklets the online tracker never confirmed (a frame or two at a border)
    take the identity their source id maps to, when that identity is not held at the time.

    Why: the model has nothing to judge them by, but the source kept following the object
    under the id it had before, and dropping them loses masks the input had right. Only the
    source map, never a free identity: an unconfirmed piece with a new source id is as often
    a spurious blob as a newcomer."""
    out = dict(labels)
    holders, source_map, _ = _label_maps(fragments, out)
    for f in unconfirmed:
        _take_first_free(f, [_most_frames(source_map[f.source_id])], holders, out)
    return out


def _name_late_entrants(fragments: list[Fragment], labels: dict[int, int],
                        last_frame: int) -> dict[int, int]:
    """A tracklet left without an identity that was only ever seen cut by the border, came in
    during the clip's last ``MIN_RUN - 1`` frames and is still there when it ends, takes an
    identity of its own (one the clip has not used).

    Why: it is an object coming into view while every known individual is held elsewhere,
    too late for the count estimate to see it (a count needs ``MIN_RUN`` frames) and for
    anything to say who it is. The input kept it under its own new id, and dropping it loses
    those masks. Only at the border, and only that late: elsewhere an unlabelled piece is
    mostly a duplicate or a spurious blob, and a returning animal seen for a few frames
    would take a new identity (measurements: eval/results/identity_rules_provenance.md)."""
    out = dict(labels)
    next_identity = max(out.values(), default=0) + 1
    for chain in _chains(fragments, "tracklet").values():
        if any(f.index in out for f in chain) or any(f.views for f in chain) or \
                not any(f.rough_views for f in chain) or chain[-1].end != last_frame or \
                last_frame - chain[0].start + 1 >= MIN_RUN:
            continue
        for f in chain:
            out[f.index] = next_identity
        next_identity += 1
    return out


def _most_frames(mapping: Counter) -> int:
    """The identity a source or online id spent most frames under (-1: none)."""
    return mapping.most_common(1)[0][0] if mapping else -1


def _free_for(fragment: Fragment, identity: int, holders: dict[int, list[Fragment]]) -> bool:
    """Whether no fragment holding ``identity`` (in ``holders``) is present at the same time
    as ``fragment``."""
    return not any(g.overlaps(fragment) for g in holders[identity])


def _take_first_free(fragment: Fragment, options: list[int],
                     holders: dict[int, list[Fragment]], labels: dict[int, int]) -> None:
    """``fragment`` takes the first of ``options`` that no other fragment holds at the same
    time (in ``labels`` and ``holders``); none if every option is taken."""
    for identity in options:
        if identity > 0 and _free_for(fragment, identity, holders):
            labels[fragment.index] = identity
            holders[identity].append(fragment)
            return


def _name_by_source(fragments: list[Fragment], labels: dict[int, int]) -> dict[int, int]:
    """Identities renamed after the mask source's ids: in order of first appearance, each takes
    the earliest source id it carried that no other identity took (what the user prompted, or
    what the source called it first), so an input that was already right comes back with its
    own ids; the rest are numbered after them."""
    carried: dict[int, list[tuple[int, int]]] = defaultdict(list)  # identity -> (frame, src)
    for f in fragments:
        if labels.get(f.index, -1) > 0 and f.source_id > 0:
            carried[labels[f.index]].append((f.start, f.source_id))
    names: dict[int, int] = {}
    used: set[int] = set()
    for identity in sorted(carried, key=lambda i: min(carried[i])):
        for _, source in sorted(carried[identity]):
            if source not in used:
                names[identity] = source
                used.add(source)
                break
    next_name = max(used, default=0) + 1
    for identity in sorted(set(labels.values()) - {-1} - set(names)):
        names[identity] = next_name
        next_name += 1
    return {f: names.get(i, -1) for f, i in labels.items()}

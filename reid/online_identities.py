"""The per-clip identity model, online: the same fragments and model as :mod:`reid.identities`,
decided frame by frame without hindsight.

* **Warm-up**: until the first *global fragment* (as many fragments present together and apart
  as individuals, each with ``min_views`` clean views), the tracker's own identities are
  reported. Then the model is fitted on those fragments, each named by the identity the tracker
  gave it, so names do not change at the switch-over.
* **Continuity**: a fragment that continues a path (after a crossing, a touch, a source-id
  change) reports its predecessor's identity while it gathers views. A path is a tracklet's,
  until a crossing the tracker resolved by motion hands the tracklet another's identity
  (``Fragment.chain``): the fragment then continues the piece whose identity it was handed.
  Where the mask source kept its id too and the predecessor was decided, it keeps that
  identity (``agreed_links``, as the offline engine keeps such links).
* **Guess**: a new tracklet (a re-entry, a newcomer) has the model's best guess among the
  individuals not in view, made on its first views (rough ones at a border too) and re-made
  each frame. It is shown once it has been the best for as many frames in a row as, on this
  clip's earlier re-entries, made a guess agree with the later decision at least
  ``guess_precision`` of the time (``min_views`` frames until five re-entries were measured;
  until shown, the object is shown without an identity), and only while the model gives it
  at least chance (``1 / count``). With ``show_border_guesses=False`` only once the object
  has been seen whole: a guess on views cut by the border is made but not shown.
* **Decision**: once a fragment has ``min_views`` clean views, every fragment reaching that
  point in this frame is assigned at once (Hungarian) to the identities not held by a decided
  fragment in view, on the model's per-frame log-evidence. The shown identity gets the
  clip's same-individual limit as a bonus, measured on held-out fragments
  (:func:`reid.identities.held_out_limit`): it is given up only on more evidence than one
  individual shows against itself in this clip. Until a refit has held-out fragments to
  measure that on (the first fit has one fragment per individual), the limit is infinite: a
  model not yet measured overrules no continuation.
* **Refit** every ``refit_every`` frames on the decided fragments, so the model follows
  changes of light and pose.
* **A representation learned from the clip** (``learned``): once the model has taken over and
  the clip so far holds enough fragments to judge one (``held_out`` of them, two per
  individual, see :func:`reid.embedders.learned.train_representation`), a representation is
  trained on their identification images. Trusted, it takes over: every fragment's views are
  re-embedded with it, the model is refitted on them, and later views come from it. Not
  trusted, it is tried again when the clip holds twice as many fragments. Training pauses the
  stream once per try (tens of seconds on a 2-core CPU; ``summary.json`` says when it took
  over), or, with ``train_in_background``, runs in a thread while the stream goes on: the model
  decides on the tracker's embeddings meanwhile, and the representation takes over on the
  first frame after training ends. Why both: a recorded clip must give the same identities
  every run, so it waits; a live stream does not wait, and the frame training ends on depends
  on the machine.
* **New individuals** (count not given): a fragment farther from every known individual than
  the clip's own scale allows (:func:`reid.identity_model.novelty_limit`) and lasting as long
  as an ordinary fragment, while the clip so far shows more individuals together than the
  model knows (the offline count estimate); or a larger global fragment.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable

import numpy as np

from samtrack.reid.association import assign
from samtrack.reid.embedders.learned import (
    LearnedEmbedder,
    LearnedSettings,
    TrainingReport,
    fragments_to_judge,
    train_representation,
)
from samtrack.reid.fragments import Fragment, FragmentCutter
from samtrack.reid.identities import embed_views, estimate_count, held_out_limit
from samtrack.reid.identity_model import (
    IdentityModel,
    fit_on_fragments,
    log_mean_posteriors,
    novelty_limit,
)
from samtrack.reid.tracks import FrameLog

MIN_VIEWS = 5
REFIT_EVERY = 100
ESTIMATE_EVERY = 25  # frames between count estimates (each reads every fragment so far)
GUESS_VIEWS = 10  # the latest rough views a guess is made on (the object's look now)
# a guess shown and then replaced costs two switches: show it only where the clip's earlier
# re-entries say it is nearly always right (tuned: eval/results/identity_rules_provenance.md)
GUESS_PRECISION = 0.99
# a guess made on views cut by the border must hold this many times the calibrated wait (see
# ``_guess``; the default of tracker.model.border_guess_wait)
BORDER_WAIT_FACTOR = 1.5
MAX_WAIT = 30  # frames: the longest stability a guess is calibrated for
MIN_CALIBRATION = 5  # earlier re-entries a wait must have been measured on
MAX_TRAINING_FRAGMENTS = 300  # the most recent decided fragments: bounded refit cost


class OnlineIdentities:
    """``observe(entry)`` per frame -> identity per row of the entry, or ``None`` while warming
    up (the tracker then reports its own identities)."""

    def __init__(self, num_identities: int | None = None, min_views: int = MIN_VIEWS,
                 refit_every: int = REFIT_EVERY,
                 guess_precision: float = GUESS_PRECISION,
                 show_border_guesses: bool = True,
                 border_wait_factor: float = BORDER_WAIT_FACTOR,
                 learned: LearnedSettings | None = None, agreed_links: bool = True,
                 train_in_background: bool = False) -> None:
        self.num_identities = num_identities
        self.train_in_background = train_in_background
        self.agreed_links = agreed_links
        self.learned = learned
        self.show_border_guesses = show_border_guesses
        self.border_wait_factor = border_wait_factor
        self.min_views = min_views
        self.refit_every = refit_every
        self.guess_precision = guess_precision
        self.reset()

    def reset(self) -> None:
        self.cutter = FragmentCutter()
        self.model: IdentityModel | None = None
        self.labels: dict[int, int] = {}  # fragment index -> identity (decided)
        # fragment index -> identity shown until decided (its predecessor's, or the model's guess)
        self.provisional: dict[int, int] = {}
        self.limit = 0.0
        self._guesses: dict[int, list[int]] = {}  # fragment -> its best guess, frame by frame
        # per wait (frames a guess has been best in a row): [agreed with the decision, measured]
        self._agreement = np.zeros((MAX_WAIT + 1, 2), np.int64)
        self.novel_limit = np.inf
        self.count = 0  # individuals in the model
        self._fitted_at = 0
        self._position = 0
        self._estimate = 0  # individuals the presence counts show so far
        self._estimated_at = -ESTIMATE_EVERY
        self.learned_report: dict = {}  # the last training's report (summary.json)
        self.learned_at: int | None = None  # frame the learned representation took over
        self.embedder: LearnedEmbedder | None = None  # the representation, once it took over
        self._learn_when = 0  # usable fragments needed for the next training
        self._learn_tries = 0
        self._training: Background | None = None  # a training running in the background

    @property
    def ready(self) -> bool:
        return self.model is not None

    def summary(self) -> dict:
        """What ``summary.json`` says about the online model: whether it took over, how many
        individuals it knows, and the guess wait it measured on the clip's re-entries."""
        out = {"online_identity_model": self.ready, "num_identities": self.count,
               "num_identities_estimated": self.num_identities is None,
               "guess_wait_frames": self.guess_wait,
               "reentries_measured": int(self._agreement[self.min_views, 1])}
        if self.learned is not None:
            out["learned"] = {**self.learned_report, "tries": self._learn_tries,
                              "took_over_frame": self.learned_at,
                              "training_unfinished": self._training is not None}
        return out

    def observe(self, entry: FrameLog) -> np.ndarray | None:
        rows = self.cutter.add(self._position, entry)
        self._position += 1
        self._warm_up(rows, entry)
        if self.model is None:
            return None
        self._learn(entry.frame)
        if entry.frame - self._fitted_at >= self.refit_every:
            self._refit(entry.frame)
        self._continue(rows)
        self._guess(rows)
        self._decide(rows)
        out = np.full(len(rows), -1, np.int64)
        shown: set[int] = set()
        for r, f in enumerate(rows):
            identity = self.labels.get(f.index, self.provisional.get(f.index, -1))
            if identity > 0 and identity not in shown:  # never one identity twice in a frame
                out[r] = identity
                shown.add(identity)
        return out

    # ---------------------------------------------------------------- steps
    def _warm_up(self, rows: list[Fragment], entry: FrameLog) -> None:
        needed = self._needed() if self.model is not None else self.min_views
        apart = [f for f in rows if f.apart and len(f.views) >= needed]
        if self.num_identities is not None:  # one warm-up, on everyone
            if self.model is not None or len(apart) < self.num_identities:
                return
        elif len(apart) < max(2, self.count + 1):  # more together than the model knows
            return
        # a (larger) global fragment: everyone in it is a different individual
        names: dict[int, int] = {}
        taken = set(self.labels.get(f.index, -1) for f in apart) - {-1}
        next_name = max([*self.labels.values(), *(f.online_ids[-1] for f in apart), 0]) + 1
        for f in apart:
            if f.index in self.labels:
                names[f.index] = self.labels[f.index]
                continue
            name = f.online_ids[-1]  # what the tracker calls it right now: no visible rename
            if name <= 0 or name in taken:
                name, next_name = next_name, next_name + 1
            names[f.index] = name
            taken.add(name)
        self.labels.update(names)
        self.count = len(set(self.labels.values()))
        self._refit(entry.frame)

    def _learn(self, frame: int) -> None:
        """Train a representation on the fragments so far when there are enough to judge it;
        trusted, it replaces the embedder's views from here on (module docstring)."""
        if self._training is not None:  # in the background: taken up once it has ended
            if self._training.done():
                training, self._training = self._training, None
                self._take_up(*training.value(), frame)
            return
        if self.learned is None or self.learned_at is not None or self.count < 2:
            return
        usable = [f for f in self.cutter.fragments
                  if len(f.views) >= self.learned.min_views and len(f.images) == len(f.views)]
        needed = max(self._learn_when, fragments_to_judge(self.count, self.learned))
        if len(usable) < needed:
            return
        self._learn_tries += 1
        self._learn_when = 2 * len(usable)
        # copies (np.stack): the stream may go on adding views to these fragments meanwhile
        data = ([np.stack(f.images) for f in usable], [(f.start, f.end) for f in usable],
                self.count, self.learned, [np.stack(f.views) for f in usable])
        if self.train_in_background:
            self._training = Background(train_representation, *data)
        else:
            self._take_up(*train_representation(*data), frame)

    def _take_up(self, embedder: LearnedEmbedder | None, report: TrainingReport,
                 frame: int) -> None:
        """A finished training: trusted, its representation takes over from ``frame``."""
        self.learned_report = {**report.summary(), "used": bool(embedder and report.trusted)}
        if embedder is None or not report.trusted:
            return
        kept = [(f.views, f.rough_views) for f in self.cutter.fragments]
        embed_views(self.cutter.fragments, embedder)
        for f in self.cutter.fragments:  # embedded by the tracker's embedder: another space
            f.rough_views = []
        model = self.model
        self._refit(frame)
        if self.model is model:  # nothing to fit on in the new space: keep the old one
            for f, (views, rough) in zip(self.cutter.fragments, kept, strict=True):
                f.views, f.rough_views = views, rough
            self.learned_report["used"] = False
            return
        self.cutter.embed = embedder.embed_images
        self.embedder = embedder
        self.learned_at = frame

    def end(self) -> None:
        """The stream has ended: a training still running in the background is cancelled
        (``summary()`` says ``training_unfinished``)."""
        if self._training is not None:
            self._training.stop()

    def _more_present(self, frame: int) -> bool:
        """Whether the clip so far shows more individuals together than the model knows (the
        offline estimate, :func:`reid.identities.estimate_count`, on the fragments so far)."""
        if frame - self._estimated_at >= ESTIMATE_EVERY:
            self._estimate = estimate_count(self.cutter.fragments, frame + 1)
            self._estimated_at = frame
        return self._estimate > self.count

    def _needed(self) -> int:
        """Frames (or views) an extra object must last to count as one more individual: half
        the median decided fragment of this clip (a spurious blob or a duplicate mask lasts a
        few frames; an individual as long as anyone)."""
        lengths = [f.length for f in self.cutter.fragments[-MAX_TRAINING_FRAGMENTS:]
                   if f.index in self.labels and f.views]
        return max(self.min_views, int(np.median(lengths)) // 2 if lengths else 0)

    def _refit(self, frame: int) -> None:
        decided = [f for f in self.cutter.fragments if f.index in self.labels and f.views]
        decided = decided[-MAX_TRAINING_FRAGMENTS:]
        model = fit_on_fragments(decided, self.labels)
        if model is not None:
            self.model = model
            # unmeasured (no held-out fragment yet): the model overrules no continuation
            self.limit = held_out_limit(decided, self.labels, unmeasured=np.inf)
            self.novel_limit = novelty_limit(model, decided, self.labels)
        self._fitted_at = frame

    def _continue(self, rows: list[Fragment]) -> None:
        for f in rows:
            if f.index in self.labels:
                continue
            previous = self.cutter.predecessor(f)
            if previous is None:  # a new tracklet: the model's guess (``_guess``)
                continue
            if f.index in self.provisional:
                continue
            identity = self.labels.get(previous.index, self.provisional.get(previous.index, -1))
            if identity > 0:
                if self._agreed(previous, f) or not (f.views or f.apart):
                    self.labels[f.index] = identity
                else:
                    self.provisional[f.index] = identity

    def _agreed(self, previous: Fragment, f: Fragment) -> bool:
        """Whether the tracker and the mask source both say ``f`` continues the last stretch
        before it that was decided on its own views: one path, and one source id all the
        way back through the pieces without views between them (a touch). Such a link is
        kept, as the offline engine keeps it (:func:`reid.identities.kept_links`): two
        witnesses that agree are right far more often than an appearance model that cannot
        tell the animals apart, and a model that drifts with the light then swaps animals the
        source never lost. A piece that changed source id, or an identity a viewless piece
        only inherited, stays the model's to decide. A trusted learned representation may
        overrule it, as offline."""
        if not self.agreed_links or self.embedder is not None or f.source_id < 0:
            return False
        anchor: Fragment | None = previous
        while anchor is not None and anchor.source_id == f.source_id:
            if anchor.views:
                return anchor.index in self.labels
            anchor = self.cutter.predecessor(anchor)
        return False

    def _guess(self, rows: list[Fragment]) -> None:
        """A new tracklet (a re-entry, a newcomer) has the model's best guess among the
        individuals not in view while it gathers clean views, re-made each frame as views
        arrive, and shown once it has been the best for :attr:`guess_wait` frames in a row.

        Why not the tracker's gallery answer: its absolute gates and border prior are the rules
        this model replaces, and they err more often on such tracklets. Why a wait, and why
        measured on the clip: the first views are rough (half out of the frame), a wrong
        guess shown and replaced costs two identity switches, and how long a guess must hold
        before it is right depends on the animals, the camera and the embedder, so it is read
        off the clip's own earlier re-entries (:meth:`_learn_wait`).

        Why ``show_border_guesses`` (default on) can hide a guess until the object has been
        seen whole (one clean view): a guess made on views cut by the border is often wrong
        and never checked, since such an object mostly leaves again before it is decided, so
        the calibration above never sees it. Why it stays on by default: on short clips the
        hidden frames cost more than the wrong names, so it is the user's trade: fewer wrong
        names shown, or more frames named. Hidden guesses are still made and calibrated on.

        Why a guess on border views alone waits ``border_wait_factor`` times as long (1.5):
        those are the guesses the calibration seldom checks (above), and most wrong ones were
        shown for an object that left again within a few frames; a longer wait lets such a
        short visit pass unnamed and costs a longer visit a few frames.

        Why a guess below chance is not shown: when every absent individual is less likely
        than ``1 / count`` for the views (the prior share, no number tuned), the views look
        like someone in view, and the "best" absent one is only the least bad. Such guesses
        are still recorded, so the wait is calibrated as before (dropping them from the
        record breaks the streaks it measures). Measurements for each of these choices:
        eval/results/identity_rules_provenance.md."""
        present = {f.index for f in rows}
        for gone in [i for i in self._guesses if i not in present]:  # ended undecided
            del self._guesses[gone]
        new = [f for f in rows if f.index not in self.labels and f.apart
               and self.cutter.predecessor(f) is None and (f.views or f.rough_views)]
        if not new or self.model is None:
            return
        fresh = {f.index for f in new}
        held = {self.labels.get(f.index, self.provisional.get(f.index, -1))
                for f in rows if f.index not in fresh}
        views = [f.view_matrix() if f.views else
                 np.stack(f.rough_views[-GUESS_VIEWS:]).astype(np.float32) for f in new]
        wait = self.guess_wait
        chance = -np.log(max(self.count, 1))
        for f, identity, posterior in self._assign_absent(new, views, held):
            guesses = self._guesses.setdefault(f.index, [])
            guesses.append(identity)
            if posterior < chance:
                continue  # looks like someone in view: no absent individual fits
            if not f.views and not self.show_border_guesses:  # seen only cut by the border
                continue
            # best for the last ``wait`` frames in a row (a bounded look back, every frame)
            need = wait
            if wait is not None and not f.views:  # rough views only: a longer wait
                need = int(np.ceil(wait * self.border_wait_factor))
            if need is not None and len(guesses) >= need and \
                    guesses[-need:].count(identity) == need:
                self.provisional[f.index] = identity

    @property
    def guess_wait(self) -> int | None:
        """Frames a guess must have been the best in a row to be shown: the shortest (at least
        ``min_views``) after which guesses of this clip's earlier re-entries agreed with their
        decision at least ``guess_precision`` of the time, measured on at least
        ``MIN_CALIBRATION`` of them. ``min_views`` until that many were measured (a short clip
        has few re-entries: the first guesses are shown as before); ``None`` (no guess shown,
        only decisions) when no measured wait is right often enough."""
        agreed, measured = self._agreement[:, 0], self._agreement[:, 1]
        for wait in range(self.min_views, MAX_WAIT + 1):
            if measured[wait] >= MIN_CALIBRATION and \
                    agreed[wait] >= self.guess_precision * measured[wait]:
                return wait
        if measured[self.min_views] < MIN_CALIBRATION:
            return self.min_views  # too few re-entries yet to measure on (short clips)
        return None

    def _learn_wait(self, guesses: list[int], decided: int) -> None:
        """For each wait, whether the first guess that held that many frames in a row (the one
        that wait would have shown first) was the identity the fragment was then decided to be.
        A wrong first guess is what costs switches: shown, then replaced."""
        streak, previous = 0, None
        seen = np.zeros(MAX_WAIT + 1, bool)
        for guess in guesses:
            streak = streak + 1 if guess == previous else 1
            previous = guess
            if streak <= MAX_WAIT and not seen[streak]:
                seen[streak] = True
                self._agreement[streak, 0] += int(guess == decided)
                self._agreement[streak, 1] += 1

    def _decide(self, rows: list[Fragment]) -> None:
        due = [f for f in rows if f.index not in self.labels and len(f.views) >= self.min_views]
        if not due or self.model is None:
            return
        if self.num_identities is None:
            # someone farther from every known individual than the clip's own scale allows is
            # a new one (an individual never seen apart with everyone else)
            # a blob or a duplicate mask looks new too, but does not last: a newcomer waits,
            # unlabelled, until it has lived as long as an ordinary fragment of this clip; and
            # only while the clip shows more individuals together than the model knows (else
            # an odd-looking view of someone known is assigned as usual)
            needed = self._needed()
            for f in list(due):
                if self.model.distances(f.view_matrix()).min() <= self.novel_limit or \
                        not self._more_present(f.end):
                    continue
                due.remove(f)
                if f.apart and len(f.views) >= needed:
                    self.labels[f.index] = max(self.labels.values(), default=0) + 1
                    self.count += 1
                    self._fitted_at = -self.refit_every  # refit next frame: learn it
            if not due:
                return
        # with everyone known in view nothing is assigned: a duplicate or a spurious mask (a
        # newcomer is found by its appearance above)
        held = {self.labels[f.index] for f in rows if f.index in self.labels}
        for f, identity, _ in self._assign_absent(due, [f.view_matrix() for f in due], held,
                                               keep_bonus=self.limit):
            self.labels[f.index] = identity
            if f.index in self._guesses:
                self._learn_wait(self._guesses.pop(f.index), identity)

    def _assign_absent(self, fragments: list[Fragment], views: list[np.ndarray],
                       held: set[int], keep_bonus: float = 0.0,
                       ) -> list[tuple[Fragment, int, float]]:
        """``fragments`` assigned at once (Hungarian) to the model's individuals not in
        ``held``, on the log mean posterior of their ``views``; the identity a fragment shows
        now gets ``keep_bonus``. Each comes with the log mean posterior of the identity it was
        given (without the bonus). Empty when every individual is held."""
        identities = [int(i) for i in self.model.labels if int(i) not in held]
        if not identities:
            return []
        columns = [int(np.flatnonzero(self.model.labels == i)[0]) for i in identities]
        posterior = log_mean_posteriors(self.model, views)[:, columns]
        evidence = posterior.copy()
        if np.isinf(keep_bonus):
            # an infinite entry would make the pair impossible for the assignment: a bonus no
            # exchange of identities between these fragments can outweigh does the same job
            keep_bonus = 1.0 + len(fragments) * float(np.ptp(posterior))
        for r, f in enumerate(fragments):
            keep = self.provisional.get(f.index, -1)
            if keep in identities:
                evidence[r, identities.index(keep)] += keep_bonus
        return [(fragments[r], identities[c], float(posterior[r, c]))
                for r, c in assign(-evidence, np.inf, full=True)]


class Background:
    """A training run in a daemon thread (a stream that ends does not wait for it to finish);
    ``done()`` says whether it has ended, ``value()`` gives its result or raises its error,
    ``stop()`` cancels it and waits. Why stopped at interpreter exit too: a thread still inside
    torch when the process exits aborts it."""

    def __init__(self, train: Callable, *args) -> None:
        self._result = None
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(train, args), daemon=True,
                                        name="samtrack-learn")
        atexit.register(self.stop)
        self._thread.start()

    def _run(self, train: Callable, args: tuple) -> None:
        try:
            self._result = train(*args, cancel=self._cancel)
        except BaseException as error:  # raised again in the stream's thread by value()
            self._error = error

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._cancel.set()
        self._thread.join()
        atexit.unregister(self.stop)

    def value(self):
        atexit.unregister(self.stop)
        if self._error is not None:
            raise self._error
        return self._result

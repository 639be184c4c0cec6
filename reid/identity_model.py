"""A per-clip appearance model: which individual a view shows, learned from the clip itself.

Why learned per clip: whether two crops show the same animal depends on the animals, the light
and the embedder. A fixed cosine gate tuned on one kind of footage (the first round's 0.45/0.6)
is wrong on the next; the clip itself says how far apart *its* individuals are. Fragments that are
visible at the same time are certainly different individuals (idtracker.ai's "global
fragments"), so they are labelled training data at no cost.

The model is linear discriminant analysis with a shrunk covariance (scikit-learn's ``lsqr``
solver, Ledoit-Wolf shrinkage chosen from the data, plus a small variance floor): one mean per
individual and one shared covariance, i.e. a distance whose scale and directions come from how
much *this* clip's views of one individual vary against how far its individuals lie apart. It
trains in milliseconds on thousands of views, works on any embedder's vectors (a colour
histogram, MobileNetV2, SAM2's encoder), and its posteriors turn into per-fragment
log-likelihoods that the solver of :mod:`reid.identity_solver` can add up. Priors are uniform:
an individual seen more often is not more likely to be the one returning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from samtrack.reid.fragments import Fragment

LOG_FLOOR = np.log(1e-4)  # one odd view cannot veto an identity: posteriors are floored


def _floored_ledoit_wolf():
    """Ledoit-Wolf shrinkage plus a small variance floor. Why the floor: views that do not vary
    at all within an individual (a flat-coloured synthetic object, a static crop) give a zero
    covariance, and LDA then has no direction to separate anyone; the floor, a thousandth of the
    average variance (or 1e-6), leaves real data unchanged and such data perfectly separable.

    Built on first use: scikit-learn takes 0.4 s to import, which a run that never fits a
    model (and ``import samtrack``) should not pay."""
    from sklearn.covariance import LedoitWolf

    class FlooredLedoitWolf(LedoitWolf):
        def fit(self, X, y=None):
            super().fit(X, y)
            p = self.covariance_.shape[0]
            floor = 1e-3 * float(np.trace(self.covariance_)) / p + 1e-6
            self.covariance_ = self.covariance_ + floor * np.eye(p)
            return self

    return FlooredLedoitWolf()


class IdentityModel:
    """``fit(views, labels)`` then ``posteriors(views)`` (rows sum to 1, columns = ``labels``)."""

    def __init__(self) -> None:
        self.labels: np.ndarray = np.zeros(0, np.int64)
        self._lda: LinearDiscriminantAnalysis | None = None
        self._precision: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self._lda is not None

    def fit(self, views: np.ndarray, labels: np.ndarray) -> IdentityModel:
        classes = np.unique(labels)
        if len(classes) < 2:
            raise ValueError("an identity model needs views of at least two individuals")
        self.labels = classes
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        self._lda = LinearDiscriminantAnalysis(
            solver="lsqr", covariance_estimator=_floored_ledoit_wolf(),
            priors=np.full(len(classes), 1.0 / len(classes)))
        self._lda.fit(views.astype(np.float64), labels)
        self._precision = np.linalg.pinv(self._lda.covariance_)
        return self

    def closest_pair(self) -> float:
        """Mahalanobis distance between the two closest individuals' means."""
        if self._lda is None:
            raise RuntimeError("IdentityModel.closest_pair before fit")
        means = self._lda.means_
        diff = means[:, None, :] - means[None, :, :]
        squared = np.einsum("ijd,de,ije->ij", diff, self._precision, diff)
        np.fill_diagonal(squared, np.inf)
        return float(np.sqrt(max(squared.min(), 0.0)))

    def distances(self, views: np.ndarray) -> np.ndarray:
        """Per identity, the median over ``views`` of their Mahalanobis distance to its mean
        under the shared covariance: how far the views lie from each individual on the clip's
        own scale (posteriors only say which individual is nearest, never that none is)."""
        if self._lda is None:
            raise RuntimeError("IdentityModel.distances before fit")
        diff = views.astype(np.float64)[:, None, :] - self._lda.means_[None, :, :]
        squared = np.einsum("nkd,de,nke->nk", diff, self._precision, diff)
        return np.median(np.sqrt(np.maximum(squared, 0.0)), axis=0)

    def posteriors(self, views: np.ndarray) -> np.ndarray:
        if self._lda is None:
            raise RuntimeError("IdentityModel.posteriors before fit")
        return self._lda.predict_proba(views.astype(np.float64))


def fit_on_fragments(fragments: list[Fragment], labels: dict[int, int]) -> IdentityModel | None:
    """The model trained on the views of the labelled fragments (``labels``: fragment index ->
    identity); ``None`` when fewer than two identities have views."""
    views, y = [], []
    for f in fragments:
        identity = labels.get(f.index, -1)
        if identity > 0 and f.views:
            m = f.view_matrix()
            views.append(m)
            y.append(np.full(len(m), identity, np.int64))
    if not views:
        return None
    x, y_all = np.concatenate(views), np.concatenate(y)
    # an identity with a single view has no spread to estimate: it waits for more
    ids, counts = np.unique(y_all, return_counts=True)
    keep = np.isin(y_all, ids[counts >= 2])
    if len(np.unique(y_all[keep])) < 2:
        return None
    return IdentityModel().fit(x[keep], y_all[keep])


def novelty_limit(model: IdentityModel, fragments: list[Fragment],
                  labels: dict[int, int]) -> float:
    """How far (:meth:`IdentityModel.distances`) a fragment must lie from *every* individual to
    be someone new: the larger of the farthest labelled fragment from its own individual (these
    fragments trained the model, so their distances are optimistic: the maximum, not a
    quantile) and half the distance between the two closest individuals (a newcomer is as
    distinct as the known ones are from each other). ``inf`` without data."""
    own = own_distances(model, fragments, labels)
    if not own:
        return np.inf
    return max(max(own.values()), model.closest_pair() / 2)


def own_distances(model: IdentityModel, fragments: list[Fragment],
                  labels: dict[int, int]) -> dict[int, float]:
    """Fragment index -> its distance (:meth:`IdentityModel.distances`) from the identity
    ``labels`` gives it, for the labelled fragments with views whose identity the model knows."""
    own: dict[int, float] = {}
    for f in fragments:
        column = np.flatnonzero(model.labels == labels.get(f.index, -1))
        if column.size and f.views:
            own[f.index] = float(model.distances(f.view_matrix())[column[0]])
    return own


def log_mean_posterior(model: IdentityModel, views: np.ndarray) -> np.ndarray:
    """Per identity (``model.labels``), the log of the mean posterior over ``views``, floored
    at :data:`LOG_FLOOR`."""
    return log_mean_posteriors(model, [views])[0]


def log_mean_posteriors(model: IdentityModel, view_sets: list[np.ndarray]) -> np.ndarray:
    """:func:`log_mean_posterior` of each array of ``view_sets``, one row each (``nan``
    for an empty one).

    Why at once: the model's posteriors are computed row by row, so one call on all views
    gives each set's rows as its own call would (to rounding in the last bits), without
    scikit-learn's input checks per set; on a clip of thousands of fragments those checks
    cost more than the arithmetic."""
    out = np.full((len(view_sets), len(model.labels)), np.nan)  # nan: no views, no evidence
    counts = np.array([len(v) for v in view_sets], np.int64)
    filled = np.flatnonzero(counts)
    if not len(filled):
        return out
    posteriors = model.posteriors(np.concatenate([view_sets[i] for i in filled]))
    starts = np.r_[0, np.cumsum(counts[filled])[:-1]]
    mean = np.add.reduceat(posteriors, starts, axis=0) / counts[filled, None]
    out[filled] = np.maximum(np.log(np.maximum(mean, 1e-300)), LOG_FLOOR)
    return out


def fragment_evidence(model: IdentityModel, fragments: list[Fragment]) -> np.ndarray:
    """(fragments, identities) log-evidence: the log of the mean posterior over a fragment's
    views, times its length in frames.

    Why the mean posterior and not the sum of log-posteriors: views of one fragment are strongly
    correlated, so summing their logs would count one piece of evidence many times and let one
    odd pose veto the right answer; averaging the posteriors keeps one vote per fragment, which
    is then weighted by the frames it decides (what IDF1 counts)."""
    out = np.zeros((len(fragments), len(model.labels)))
    rows = [r for r, f in enumerate(fragments) if f.views]
    if rows:
        lengths = np.array([fragments[r].length for r in rows], np.float64)
        out[rows] = lengths[:, None] * log_mean_posteriors(
            model, [fragments[r].view_matrix() for r in rows])
    return out

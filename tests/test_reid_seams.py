"""The tracker's seams on their own: the cost model and its terms, the policies, the fragment
cutter and the per-clip identity model."""

import numpy as np
import pytest

from samtrack.reid.costs import (
    AppearanceCost,
    CostModel,
    MotionCost,
    PositionCost,
    Side,
    SourceIdAgreement,
    Weighted,
    partial_view_scale,
)
from samtrack.reid.fragments import FragmentCutter
from samtrack.reid.identity_model import IdentityModel
from samtrack.reid.policies import ReentryRules, SourceTrust
from samtrack.reid.tracks import FrameLog


def _unit(*rows):
    a = np.array(rows, np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_cost_model_sums_weighted_terms_fills_missing_and_scales_partial_columns():
    rows = Side(views=[_unit([1, 0]), None], positions=np.array([[0.0, 0.0], [100.0, 0.0]]),
                source_ids=np.array([7, 8]), size=2)
    cols = Side(views=_unit([1, 0], [0, 1]), positions=np.array([[0.0, 0.0], [100.0, 0.0]]),
                source_ids=np.array([7, -1]), partial=np.array([False, True]), size=2)
    model = CostModel([Weighted(AppearanceCost(), 2.0, missing=0.5,
                                column_scale=partial_view_scale(0.25)),
                       Weighted(PositionCost(100.0), 1.0),
                       Weighted(SourceIdAgreement(), -0.3)])
    total, parts = model(rows, cols)
    assert parts["appearance"][0].tolist() == pytest.approx([0.0, 1.0])
    assert np.isnan(parts["appearance"][1]).all()  # a row with no views has no opinion
    assert parts["source_id"].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    # row 0, col 0: same look, same place, same source id; col 1 is partial: appearance x 0.25
    assert total[0, 0] == pytest.approx(-0.3)
    assert total[0, 1] == pytest.approx(2.0 * 0.25 * 1.0 + 1.0)
    # row 1: appearance missing -> 0.5, then the column's scale
    assert total[1, 0] == pytest.approx(2.0 * 0.5 + 1.0)
    assert total[1, 1] == pytest.approx(2.0 * 0.25 * 0.5 + 0.0)


def test_motion_and_position_terms_have_no_opinion_without_their_inputs():
    empty = Side(size=2)
    assert np.isnan(MotionCost().matrix(empty, Side(size=3))).all()
    assert np.isnan(PositionCost(10.0).matrix(empty, Side(size=3))).all()
    assert SourceIdAgreement().matrix(empty, Side(size=3)).shape == (2, 3)


def test_reentry_rules_limit_by_the_clip_s_contrast_and_hold_by_mode():
    rules = ReentryRules(gate=0.6, contrast=0.5, hold_contested="margin", hold_margin=0.1)
    assert rules.limit() == 0.6  # no contrast observed yet: the fixed gate
    rng = np.random.default_rng(0)
    for _ in range(15):  # two distinct look-alikes seen together, frame after frame
        a = _unit(rng.normal(size=8))[0]
        b = _unit(a + rng.normal(scale=0.3, size=8))[0]
        views = np.stack([a, b])
        rules.scene.observe(views, views)
    scale = rules.scene.scale()
    assert scale is not None and rules.limit() == pytest.approx(min(0.6, 0.5 * scale))
    assert rules.limit() < 0.6
    kw = {"close_call": True, "disagrees": False, "vouched": False, "source_agrees": False}
    assert rules.hold(**kw)
    assert not rules.hold(**{**kw, "vouched": True})  # a trusted, agreeing source settles it
    off = ReentryRules(gate=0.6, contrast=None, hold_contested="off", hold_margin=0.1)
    assert off.limit() == 0.6 and not off.hold(**{**kw, "disagrees": True})
    source = ReentryRules(gate=0.6, contrast=None, hold_contested="source", hold_margin=0.1)
    assert not source.hold(**{**kw, "source_agrees": True})


def test_source_trust_is_lost_at_the_first_disagreement_and_regained_by_reset():
    trust = SourceTrust()
    assert trust.trusted
    trust.disagree()
    assert not trust.trusted and trust.disagreements == 1
    trust.reset()
    assert trust.trusted


def _entry(frame, keys, isolated, source_ids, step_iou):
    n = len(keys)
    return FrameLog(frame=frame, det_index=np.arange(n), tracklet_keys=np.array(keys),
                    track_ids=np.array(keys), clean=np.array(isolated),
                    isolated=np.array(isolated), embeddings=np.ones((n, 2), np.float16),
                    positions=np.zeros((n, 2), np.float32), source_ids=np.array(source_ids),
                    step_iou=np.array(step_iou, np.float32))


def test_fragments_are_cut_at_touches_source_id_changes_and_gaps():
    cutter = FragmentCutter()
    rows = []
    rows.append(cutter.add(0, _entry(0, [1, 2], [True, True], [5, 6], [np.nan, np.nan])))
    rows.append(cutter.add(1, _entry(1, [1, 2], [True, True], [5, 6], [0.9, 0.9])))
    rows.append(cutter.add(2, _entry(2, [1, 2], [False, False], [5, 6], [0.9, 0.9])))  # touch
    rows.append(cutter.add(3, _entry(3, [1, 2], [True, True], [5, 9], [0.9, 0.9])))  # renamed
    first, touching, after = rows[1][0], rows[2][0], rows[3][0]
    assert rows[0][0] is first  # one fragment while nothing happens
    assert touching is not first and after is not touching
    assert rows[3][1] is not rows[2][1]  # the source renamed tracklet 2: a new fragment
    assert first.apart and not touching.apart


def test_a_fragment_after_a_resolved_crossing_continues_the_path_it_was_handed():
    """Two tracklets touch; inside the touch they followed each other's animal, and when apart
    the tracker hands the identities back (each row's ``chains`` names the other tracklet).
    The fragment after the touch continues the path it was handed: its predecessor is the
    other tracklet's piece, which is whose identity it carries."""
    cutter = FragmentCutter()
    for t in range(3):
        cutter.add(t, _entry(t, [1, 2], [t != 2, t != 2], [5, 6], [0.9, 0.9]))
    touch_1, touch_2 = cutter.fragments[-2:]
    handed = _entry(3, [1, 2], [True, True], [5, 6], [0.9, 0.9])
    handed.chains = np.array([2, 1])
    after_1, after_2 = cutter.add(3, handed)
    assert (after_1.chain, after_2.chain) == (2, 1)
    assert cutter.predecessor(after_1) is touch_2 and cutter.predecessor(after_2) is touch_1


def test_the_identity_model_tells_two_clusters_apart_and_says_how_far_they_are():
    rng = np.random.default_rng(1)
    views = np.concatenate([rng.normal(0, 0.1, (40, 6)) + 1, rng.normal(0, 0.1, (40, 6)) - 1])
    labels = np.array([3] * 40 + [8] * 40)
    model = IdentityModel().fit(views, labels)
    assert model.labels.tolist() == [3, 8]
    posterior = model.posteriors(np.array([[1.0] * 6, [-1.0] * 6]))
    assert posterior.argmax(axis=1).tolist() == [0, 1]
    assert np.allclose(posterior.sum(axis=1), 1.0)
    assert model.closest_pair() > 5  # far apart in the clip's own units
    with pytest.raises(ValueError, match="two individuals"):
        IdentityModel().fit(views[:40], labels[:40])
